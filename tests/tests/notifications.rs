//! Webhooks end to end: a local HTTP receiver started by the test checks every request's
//! HMAC-SHA256 signature and timestamp; a real PBX event (a registration removed) and a test
//! delivery reach it; a receiver that answers 500 sees retries in the delivery log and, after
//! five failures in a row, its circuit opens and nothing more is sent; a URL the egress
//! policy forbids is refused with the error envelope naming the field; the secret is never in
//! clear in the database file nor in the API's answers. A missed call to an extension with an
//! ntfy push target reaches that (local) ntfy with its token.

mod sip_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sip_support::{free_port, register, sipp, Pbx};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "receiver-secret-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The signature checked out (HMAC-SHA256 of `<timestamp>.<body>` under [`SECRET`]) and
    /// the timestamp is within five minutes.
    signed: bool,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A strict little HTTP/1.1 receiver on 127.0.0.1: one request per connection, answers
/// `status`.
struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(status: u16) -> anyhow::Result<Receiver> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let h = h.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = s.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p;
                        }
                        if buf.len() > 64 * 1024 {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let request_line = lines.next().unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> =
                        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
                    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < len {
                        let Ok(n) = s.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                    let signed = request_line.starts_with("POST /hook ")
                        && match (get("x-flowpbx-timestamp").and_then(|t| t.parse::<i64>().ok()), get("x-flowpbx-signature")) {
                            (Some(ts), Some(sig)) => {
                                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("any key length");
                                mac.update(format!("{ts}.").as_bytes());
                                mac.update(&body);
                                let want: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
                                sig == format!("sha256={want}") && (now - ts).abs() < 300
                            }
                            _ => false,
                        };
                    if let Ok(mut v) = h.lock() {
                        v.push(Hit { headers, body, signed });
                    }
                    let reason = if status < 300 { "OK" } else { "Internal Server Error" };
                    let resp = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Ok(Receiver { port, hits })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|v| v.clone()).unwrap_or_default()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Hit> {
        let t0 = Instant::now();
        loop {
            let h = self.hits();
            if h.len() >= n || t0.elapsed() > within {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn checked(r: anyhow::Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

async fn pbx_allowing(ports: &[u16]) -> anyhow::Result<Pbx> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports = ports.join(",");
    Pbx::start(&["--webhook-allow-networks", "127.0.0.1", "--webhook-allow-ports", &ports]).await
}

async fn deliveries(pbx: &Pbx, id: i64) -> anyhow::Result<Vec<Value>> {
    let r = pbx.admin.get(&format!("/webhooks/{id}/deliveries?limit=100")).await?;
    anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text);
    Ok(r.body["data"].as_array().cloned().unwrap_or_default())
}

#[tokio::test]
async fn signed_events_reach_the_receiver_and_a_failing_one_opens_its_circuit() {
    checked(signed_and_failing().await);
}

async fn signed_and_failing() -> anyhow::Result<()> {
    let good = Receiver::start(200).await?;
    let bad = Receiver::start(500).await?;
    let pbx = pbx_allowing(&[good.port, bad.port]).await?;
    let ext = pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;

    let r = pbx.admin.post("/webhooks", &json!({"name": "crm", "url": good.url(), "events": ["registration.lost", "webhook.test"], "secret": SECRET})).await?;
    anyhow::ensure!(r.status == 201, "create: {} {}", r.status, r.text);
    let id = r.data()["id"].as_i64().unwrap_or_default();
    assert!(r.data().get("secret").is_none(), "a given secret is not echoed: {}", r.text);
    assert!(!r.text.contains(SECRET));
    assert_eq!(r.data()["circuit"], "closed");

    // a test delivery
    let r = pbx.admin.post(&format!("/webhooks/{id}/test"), &json!({})).await?;
    anyhow::ensure!(r.status == 201, "test: {} {}", r.status, r.text);
    let hits = good.wait_for(1, Duration::from_secs(10)).await;
    anyhow::ensure!(!hits.is_empty(), "the test delivery arrived");
    assert!(hits[0].signed, "signature and timestamp check out: {:?}", hits[0].headers);
    assert_eq!(hits[0].header("x-flowpbx-event"), Some("webhook.test"));
    assert_eq!(hits[0].header("content-type"), Some("application/json"));
    assert_eq!(hits[0].json()["event"], "webhook.test");

    // a real event: 101 registers, then removes its binding → registration.lost
    let contact = free_port(std::net::Ipv4Addr::LOCALHOST);
    register(&pbx, "101", "Secret-101-pw", contact, 300)?.assert_ok();
    pbx.wait_registrations(ext, 1).await?;
    register(&pbx, "101", "Secret-101-pw", contact, 0)?.assert_ok();
    let hits = good.wait_for(2, Duration::from_secs(10)).await;
    anyhow::ensure!(hits.len() >= 2, "registration.lost arrived: {hits:?}");
    let lost = &hits[1];
    assert!(lost.signed);
    assert_eq!(lost.header("x-flowpbx-event"), Some("registration.lost"));
    assert_eq!(lost.json()["data"]["extension_id"], ext);
    let log = deliveries(&pbx, id).await?;
    assert!(log.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1), "{log:?}");

    // a receiver that fails: retried with backoff, then its circuit opens
    let r = pbx.admin.post("/webhooks", &json!({"name": "down", "url": bad.url(), "events": ["webhook.test"], "secret": SECRET})).await?;
    anyhow::ensure!(r.status == 201, "create: {} {}", r.status, r.text);
    let bad_id = r.data()["id"].as_i64().unwrap_or_default();
    let first = pbx.admin.post(&format!("/webhooks/{bad_id}/test"), &json!({})).await?.data()["id"].as_i64().unwrap_or_default();
    // the first attempt fails, the retry ~2 s later fails too: both in the log
    let t0 = Instant::now();
    loop {
        let log = deliveries(&pbx, bad_id).await?;
        let d = log.iter().find(|d| d["id"] == first).cloned().unwrap_or(Value::Null);
        if d["attempts"].as_i64().unwrap_or(0) >= 2 {
            assert_eq!(d["status"], "pending", "still retried: {d}");
            assert_eq!(d["last_status"], 500, "{d}");
            assert!(d["last_error"].as_str().unwrap_or_default().contains("500"), "{d}");
            assert!(d["next_attempt_at"].is_string(), "{d}");
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "no retry seen: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // three more failures make five in a row: the circuit opens
    for _ in 0..3 {
        pbx.admin.post(&format!("/webhooks/{bad_id}/test"), &json!({})).await?;
    }
    let hits = bad.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(hits.len(), 5, "five attempts reached the failing receiver");
    assert!(hits.iter().all(|h| h.signed));
    let t0 = Instant::now();
    loop {
        let r = pbx.admin.get(&format!("/webhooks/{bad_id}")).await?;
        if r.data()["circuit"] == "open" {
            assert!(r.data()["circuit_open_until"].is_string(), "{}", r.text);
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(5), "the circuit did not open: {}", r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // while open, nothing is sent: a new delivery waits, marked as such
    let held = pbx.admin.post(&format!("/webhooks/{bad_id}/test"), &json!({})).await?.data()["id"].as_i64().unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bad.hits().len(), 5, "nothing more reached the failing receiver while its circuit is open");
    let log = deliveries(&pbx, bad_id).await?;
    let d = log.iter().find(|d| d["id"] == held).cloned().unwrap_or(Value::Null);
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"], 0, "{d}");
    assert!(d["last_error"].as_str().unwrap_or_default().contains("circuit open"), "{d}");
    // the good endpoint is unaffected
    pbx.admin.post(&format!("/webhooks/{id}/test"), &json!({})).await?;
    assert!(good.wait_for(3, Duration::from_secs(10)).await.len() >= 3, "the other endpoint still receives");
    Ok(())
}

#[tokio::test]
async fn forbidden_urls_bad_events_and_the_secret_at_rest() {
    checked(forbidden().await);
}

async fn forbidden() -> anyhow::Result<()> {
    // only 127.0.0.1:<port> is granted
    let port = free_port(std::net::Ipv4Addr::LOCALHOST);
    let pbx = pbx_allowing(&[port]).await?;
    for (url, why) in [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/hook", "private"),
        ("http://127.0.0.2/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://127.0.0.1:22/hook", "port 22"),
        ("http://0.0.0.0/", "unspecified"),
        ("file:///etc/passwd", "http or https"),
        ("http://user:pw@127.0.0.1/", "credentials"),
    ] {
        let r = pbx.admin.post("/webhooks", &json!({"name": "x", "url": url, "events": ["*"]})).await?;
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.error_fields(), ["url"], "{url}: {}", r.text);
        assert!(r.text.contains(why), "{url}: {}", r.text);
    }
    let r = pbx.admin.post("/webhooks", &json!({"name": "x", "url": format!("http://127.0.0.1:{port}/"), "events": ["call.started", "nope"]})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_fields(), ["events[1]"], "{}", r.text);
    let r = pbx.admin.post("/webhooks", &json!({"name": "x", "url": format!("http://127.0.0.1:{port}/"), "events": ["*"], "secret": "short"})).await?;
    assert_eq!(r.error_fields(), ["secret"], "{}", r.text);

    // a generated secret is shown once, never stored in clear
    let r = pbx.admin.post("/webhooks", &json!({"name": "ok", "url": format!("http://127.0.0.1:{port}/"), "events": ["*"]})).await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.len() >= 32, "{}", r.text);
    let id = r.data()["id"].as_i64().unwrap_or_default();
    let again = pbx.admin.get(&format!("/webhooks/{id}")).await?;
    assert!(!again.text.contains(&secret) && again.data().get("secret").is_none(), "{}", again.text);
    // an update to a forbidden address is refused too, and the row keeps its URL
    let r = pbx.admin.put(&format!("/webhooks/{id}"), &json!({"name": "ok", "url": "http://192.168.1.1/", "events": ["*"]})).await?;
    assert_eq!(r.error_fields(), ["url"], "{}", r.text);
    assert_eq!(pbx.admin.get(&format!("/webhooks/{id}")).await?.data()["url"], format!("http://127.0.0.1:{port}/"));
    let list = pbx.admin.get("/webhooks").await?;
    assert!(!list.text.contains(&secret));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = pbx.server.data_dir().to_path_buf();
    let mut in_clear = false;
    for f in ["flowpbx.db", "flowpbx.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            in_clear |= b.windows(secret.len()).any(|w| w == secret.as_bytes());
        }
    }
    assert!(!in_clear, "the webhook secret is sealed at rest");
    // ids are numbers: anything else is a 400 with the envelope
    let r = pbx.admin.get("/webhooks/..%2f1/deliveries").await?;
    assert_eq!(r.status, 400, "{}", r.text);
    Ok(())
}

#[tokio::test]
async fn a_missed_call_pushes_to_the_extensions_ntfy() {
    checked(missed_call_push().await);
}

async fn missed_call_push() -> anyhow::Result<()> {
    let ntfy = Receiver::start(200).await?;
    let pbx = pbx_allowing(&[ntfy.port]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    let callee = pbx.extension_with(json!({"extension": "102", "name": "Busy", "sip_password": "Secret-102-pw", "dnd": true})).await?;
    pbx.wait_directory(2, 0, 0).await?;
    // a forbidden address is refused naming the field; the token never comes back
    let r = pbx.admin.put(&format!("/extensions/{callee}/push"), &json!({"kind": "ntfy", "url": "http://10.0.0.1/topic"})).await?;
    assert_eq!(r.error_fields(), ["url"], "{}", r.text);
    let r = pbx.admin.put(&format!("/extensions/{callee}/push"), &json!({"kind": "pager", "url": "http://127.0.0.1/x"})).await?;
    assert_eq!(r.error_fields(), ["kind"], "an unknown kind: {}", r.text);
    let topic = format!("http://127.0.0.1:{}/hook", ntfy.port);
    let r = pbx.admin.put(&format!("/extensions/{callee}/push"), &json!({"kind": "ntfy", "url": topic, "token": "tk_ntfy_secret_123"})).await?;
    anyhow::ensure!(r.status == 200, "{}", r.text);
    assert_eq!(r.data()["token_set"], true);
    assert!(!r.text.contains("tk_ntfy_secret_123"));
    // 101 calls 102, which is on do-not-disturb: busy, a missed call
    let run = sipp(
        "uac_refused.xml",
        (std::net::Ipv4Addr::LOCALHOST, free_port(std::net::Ipv4Addr::LOCALHOST)),
        Some(&pbx.sip()),
        &["-s", "102", "-au", "101", "-ap", "Secret-101-pw", "-key", "caller", "101", "-m", "1"],
    )?;
    run.wait(Duration::from_secs(30)).assert_ok();
    let hits = ntfy.wait_for(1, Duration::from_secs(10)).await;
    anyhow::ensure!(!hits.is_empty(), "the push reached ntfy");
    let h = &hits[0];
    assert_eq!(h.header("authorization"), Some("Bearer tk_ntfy_secret_123"));
    assert_eq!(h.header("title"), Some("Missed call"));
    let body = String::from_utf8_lossy(&h.body).into_owned();
    assert!(body.starts_with("Missed call from ") && body.contains("101"), "{body}");
    Ok(())
}
