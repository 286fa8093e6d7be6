//! The message-waiting lamp (RFC 3842) in the real binary: a SIPp phone subscribed for
//! `message-summary` gets NOTIFYs with the right counts as a carrier's caller leaves a
//! message through a flow (1/0), the API marks it read (0/1) and deletes it (0/0), then
//! unsubscribes (a terminated NOTIFY); its huge Expires is granted as 3600. And what an
//! attacker tries, over a raw UDP socket with a digest client of the test's own: no
//! credentials (407), another extension's mailbox (403), an unreadable Event header (400), a
//! package we do not serve (489 with Allow-Events), a too-short Expires (423), and a flood of
//! new subscriptions from one source (503).
//!
//! Unsolicited MWI: an extension with `mwi_unsolicited` whose phone (a SIPp UAS on its
//! registered contact) never subscribes gets an out-of-dialog NOTIFY when it registers (0/0)
//! and when a message is left (1/0); with the flag off it gets none.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use flowpbx_tests::{flow_edge, flow_node};
use md5::{Digest, Md5};
use serde_json::json;
use sip_support::{free_port, register, sipp, Pbx};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const CARRIER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PW_201: &str = "Secret-201-pw";
const PW_202: &str = "Secret-202-pw";
const WAIT: Duration = Duration::from_secs(60);

/// A PBX with extensions 201 and 202, a box whose lamp is 201's behind +15550100 (in →
/// voicemail → hang up) from a trusted trunk on 127.0.0.2. Returns (pbx, 201's id, box id).
async fn mailbox_line() -> anyhow::Result<(Pbx, i64, i64)> {
    let pbx = Pbx::start(&[]).await?;
    let ext = pbx.extension("201", PW_201).await?;
    pbx.extension("202", PW_202).await?;
    let r = pbx.admin.post("/trunks", &json!({"name": "Carrier", "type": "ip", "remote_hosts": ["127.0.0.2/32"]})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let trunk = r.data()["id"].as_i64().context("trunk id")?;
    let r = pbx.admin.post("/voicemail-boxes", &json!({"name": "201", "max_message_duration": 60, "notify_extension_id": ext})).await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    let vm = r.data()["id"].as_i64().context("box id")?;
    let nodes = vec![
        flow_node("in", "inbound_number", json!({})),
        flow_node("vm", "voicemail", json!({"entity_id": vm, "entity_type": "voicemail_box", "config": {"play_greeting": false}})),
        flow_node("bye", "hangup", json!({})),
    ];
    let edges = vec![flow_edge("in", "next", "vm"), flow_edge("vm", "done", "bye")];
    pbx.admin.publish_flow_for_number("Main", nodes, edges, "+15550100", trunk).await?;
    pbx.wait_directory(2, 1, 1).await?;
    Ok((pbx, ext, vm))
}

/// An even UDP port with the three above it free on the carrier's address (SIPp's RTP/RTCP).
fn free_media_port() -> u16 {
    loop {
        let Ok(probe) = UdpSocket::bind((CARRIER, 0)) else { continue };
        let Ok(a) = probe.local_addr() else { continue };
        drop(probe);
        let p = a.port() & !1;
        if p >= 1024 && (p..p + 4).all(|q| UdpSocket::bind((CARRIER, q)).is_ok()) {
            return p;
        }
    }
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let t0 = std::time::Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_lamp_follows_leave_read_and_delete() -> anyhow::Result<()> {
    let (pbx, ext, vm) = mailbox_line().await?;
    // a huge Expires is granted as 3600 (the scenario checks the 200's Expires)
    let phone = sipp(
        "mwi_subscriber.xml",
        (LO, free_port(LO)),
        Some(&pbx.sip()),
        &["-s", "201", "-au", "201", "-ap", PW_201, "-key", "expires", "4294967295", "-m", "1"],
    )?;
    let subs = wait_for("the subscription", async || {
        let r = pbx.admin.get(&format!("/extensions/{ext}/subscriptions")).await?;
        Ok(r.data().as_array().filter(|a| !a.is_empty()).cloned())
    })
    .await?;
    assert_eq!(subs[0]["event"], "message-summary", "{subs:?}");
    assert_eq!(subs[0]["transport"], "udp", "{subs:?}");

    // a caller leaves a message: 1 new
    let media = free_media_port();
    sipp("flow_trunk_message.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "2500", "-mp", &media.to_string()])?
        .wait(WAIT)
        .assert_ok();
    let msg = wait_for("the message", async || {
        let r = pbx.admin.get(&format!("/voicemail-boxes/{vm}/messages")).await?;
        Ok(r.data().as_array().and_then(|a| a.first().cloned()))
    })
    .await?;
    let id = msg["id"].as_i64().context("message id")?;
    // the call's trace is written after the lamp was updated
    wait_for("the call's CDR", async || {
        let r = pbx.admin.get("/cdrs?limit=10").await?;
        Ok(r.data().as_array().and_then(|a| a.iter().find(|c| c["disposition"] == "voicemail").cloned()))
    })
    .await?;
    // read through the API: 0 new, 1 old
    let r = pbx.admin.put(&format!("/voicemail-boxes/{vm}/messages/{id}/read"), &json!({"read": true})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    // deleted: 0/0
    let r = pbx.admin.delete(&format!("/voicemail-boxes/{vm}/messages/{id}")).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = phone.wait(WAIT);
    if res.code != Some(0) {
        eprintln!("{}", pbx.server.logs());
    }
    res.assert_ok();
    // unsubscribed: the extension holds none
    let r = pbx.admin.get(&format!("/extensions/{ext}/subscriptions")).await?;
    assert_eq!(r.data().as_array().map(Vec::len), Some(0), "{}", r.text);
    Ok(())
}

/// A caller on the carrier leaves a message in 201's box; returns once it is stored.
async fn leave_message(pbx: &Pbx, vm: i64) -> anyhow::Result<()> {
    let media = free_media_port();
    sipp("flow_trunk_message.xml", (CARRIER, free_port(CARRIER)), Some(&pbx.sip()), &["-s", "15550100", "-m", "1", "-d", "2500", "-mp", &media.to_string()])?
        .wait(WAIT)
        .assert_ok();
    wait_for("the message", async || {
        let r = pbx.admin.get(&format!("/voicemail-boxes/{vm}/messages")).await?;
        Ok(r.data().as_array().and_then(|a| a.first().cloned()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn unsolicited_mwi_reaches_a_phone_that_does_not_subscribe() -> anyhow::Result<()> {
    let (pbx, ext, vm) = mailbox_line().await?;
    // the flag is validated, stored and read back
    let r = pbx.admin.put(&format!("/extensions/{ext}"), &json!({"mwi_unsolicited": "yes"})).await?;
    assert!((400..500).contains(&r.status) && r.text.contains("mwi_unsolicited"), "{} {}", r.status, r.text);
    let r = pbx.admin.get(&format!("/extensions/{ext}")).await?;
    assert_eq!(r.data()["mwi_unsolicited"], false, "{}", r.text);
    let r = pbx.admin.put(&format!("/extensions/{ext}"), &json!({"mwi_unsolicited": true})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["mwi_unsolicited"], true, "{}", r.text);
    let r = pbx.admin.get(&format!("/extensions/{ext}")).await?;
    assert_eq!(r.data()["mwi_unsolicited"], true, "{}", r.text);
    // (the directory polls the store every 500 ms)
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // registering: the lamp's state (off, 0/0) comes out of dialog
    let port = free_port(LO);
    let phone = sipp("mwi_unsolicited_phone.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "201", PW_201, port, 300)?.assert_ok();
    let got = phone.wait(WAIT);
    got.assert_ok();
    assert!(got.messages.contains("Messages-Waiting: no") && got.messages.contains("Voice-Message: 0/0"), "{}", got.messages);
    assert!(got.messages.contains("NOTIFY sip:201@127.0.0.1:"), "to the registered contact: {}", got.messages);

    // a message is left: on again, 1/0, in a NOTIFY of its own
    let phone = sipp("mwi_unsolicited_phone.xml", (LO, port), None, &["-m", "1"])?;
    leave_message(&pbx, vm).await?;
    let got = phone.wait(WAIT);
    if got.code != Some(0) {
        eprintln!("{}", pbx.server.logs());
    }
    got.assert_ok();
    assert!(got.messages.contains("Messages-Waiting: yes") && got.messages.contains("Voice-Message: 1/0"), "{}", got.messages);
    Ok(())
}

#[tokio::test]
async fn without_the_flag_no_unsolicited_mwi_is_sent() -> anyhow::Result<()> {
    let (pbx, _ext, vm) = mailbox_line().await?;
    let port = free_port(LO);
    // the phone waits (SIPp's 30 s -timeout) for a NOTIFY that must not come (registration
    // and a message left)
    let phone = sipp("mwi_unsolicited_phone.xml", (LO, port), None, &["-m", "1"])?;
    register(&pbx, "201", PW_201, port, 300)?.assert_ok();
    leave_message(&pbx, vm).await?;
    let got = phone.wait(WAIT);
    assert_ne!(got.code, Some(0), "a NOTIFY arrived: {}", got.messages);
    assert!(!got.messages.contains("NOTIFY sip:"), "{}", got.messages);
    assert!(got.errors.contains("timed out"), "the phone ran and waited in vain: {}", got.errors);
    Ok(())
}

// ----- attacker's side: a raw UDP SUBSCRIBE client -----

struct RawPhone {
    sock: UdpSocket,
    pbx: String,
    n: u32,
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn param(header: &str, name: &str) -> Option<String> {
    let i = header.find(&format!("{name}="))? + name.len() + 1;
    let rest = &header[i..];
    if let Some(r) = rest.strip_prefix('"') {
        return r.split('"').next().map(str::to_owned);
    }
    Some(rest.split([',', ' ', '\r']).next().unwrap_or("").to_owned())
}

impl RawPhone {
    fn new(pbx: &Pbx) -> anyhow::Result<RawPhone> {
        let sock = UdpSocket::bind((LO, 0))?;
        sock.set_read_timeout(Some(Duration::from_secs(3)))?;
        Ok(RawPhone { sock, pbx: pbx.sip(), n: 0 })
    }

    /// A SUBSCRIBE for `target` with `extra` headers; `auth` (user, password) answers a
    /// challenge. Returns the final response's head.
    fn subscribe(&mut self, target: &str, extra: &str, auth: Option<(&str, &str)>) -> anyhow::Result<String> {
        self.n += 1;
        let call_id = format!("mwi-{}-{}", self.n, std::process::id());
        let local = self.sock.local_addr()?;
        let uri = format!("sip:{target}@{}", self.pbx);
        let pbx = self.pbx.clone();
        let build = |cseq: u32, authz: &str| {
            format!(
                "SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}{cseq};rport\r\nFrom: <sip:{target}@{pbx}>;tag=t{cseq}\r\n\
                 To: <sip:{target}@{pbx}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:{target}@{local}>\r\nMax-Forwards: 70\r\n{authz}{extra}Content-Length: 0\r\n\r\n"
            )
        };
        let first = self.exchange(&build(1, ""))?;
        let (Some((user, pw)), true) = (auth, first.starts_with("SIP/2.0 407")) else { return Ok(first) };
        let challenge = first.lines().find(|l| l.to_ascii_lowercase().starts_with("proxy-authenticate:")).context("no challenge")?;
        let realm = param(challenge, "realm").context("realm")?;
        let nonce = param(challenge, "nonce").context("nonce")?;
        let ha1 = md5_hex(&format!("{user}:{realm}:{pw}"));
        let ha2 = md5_hex(&format!("SUBSCRIBE:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:abcdef:auth:{ha2}"));
        let authz = format!(
            "Proxy-Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abcdef\"\r\n"
        );
        self.exchange(&build(2, &authz))
    }

    /// Sends a request, returns the first final response (NOTIFYs in between are answered).
    fn exchange(&self, req: &str) -> anyhow::Result<String> {
        self.sock.send_to(req.as_bytes(), &self.pbx)?;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = self.sock.recv_from(&mut buf).context("no answer")?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("NOTIFY ") {
                // 200 OK it, copying Via/From/To/Call-ID/CSeq
                let mut ok = String::from("SIP/2.0 200 OK\r\n");
                for l in text.lines() {
                    let low = l.to_ascii_lowercase();
                    if ["via:", "from:", "to:", "call-id:", "cseq:"].iter().any(|h| low.starts_with(h)) {
                        ok.push_str(l);
                        ok.push_str("\r\n");
                    }
                }
                ok.push_str("Content-Length: 0\r\n\r\n");
                self.sock.send_to(ok.as_bytes(), from)?;
                continue;
            }
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            return Ok(text.split("\r\n\r\n").next().unwrap_or("").to_owned());
        }
    }
}

#[tokio::test]
async fn subscriptions_an_attacker_tries_are_refused() -> anyhow::Result<()> {
    let (pbx, ext, _) = mailbox_line().await?;
    let mut p = RawPhone::new(&pbx)?;
    let mwi = "Event: message-summary\r\nExpires: 600\r\n";

    // no credentials: challenged, nothing subscribed
    let r = p.subscribe("201", mwi, None)?;
    assert!(r.starts_with("SIP/2.0 407"), "{r}");
    // a wrong password: challenged again
    let r = p.subscribe("201", mwi, Some(("201", "not-the-password")))?;
    assert!(r.starts_with("SIP/2.0 407"), "{r}");
    // 202's credentials for 201's mailbox
    let r = p.subscribe("201", mwi, Some(("202", PW_202)))?;
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
    // an Event header that is no token; a package we do not serve; none at all
    let r = p.subscribe("201", "Event: message summary<x>\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    let r = p.subscribe("201", "Event: presence\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 489"), "{r}");
    assert!(r.to_ascii_lowercase().contains("allow-events: message-summary"), "{r}");
    let r = p.subscribe("201", "", None)?;
    assert!(r.starts_with("SIP/2.0 489"), "{r}");
    // PUBLISH is not served either
    let r = p.exchange(&format!(
        "PUBLISH sip:201@{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKpub1;rport\r\nFrom: <sip:201@{0}>;tag=p\r\nTo: <sip:201@{0}>\r\nCall-ID: pub-1\r\nCSeq: 1 PUBLISH\r\nEvent: presence\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        pbx.sip(),
        p.sock.local_addr()?
    ))?;
    assert!(r.starts_with("SIP/2.0 489"), "{r}");
    // too short, and garbage
    let r = p.subscribe("201", "Event: message-summary\r\nExpires: 5\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 423") && r.contains("Min-Expires: 60"), "{r}");
    let r = p.subscribe("201", "Event: message-summary\r\nExpires: -1\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    let r = p.subscribe("201", "Event: message-summary\r\nExpires: 99999999999999999999\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    // the largest Expires the parser takes is clamped to an hour (a longer one is 400 above)
    let r = p.subscribe("201", "Event: message-summary\r\nExpires: 4294967295\r\n", Some(("201", PW_201)))?;
    assert!(r.starts_with("SIP/2.0 200") && r.contains("Expires: 3600"), "{r}");
    let r = pbx.admin.get(&format!("/extensions/{ext}/subscriptions")).await?;
    assert_eq!(r.data().as_array().map(Vec::len), Some(1), "only the good one is held: {}", r.text);

    // a flood of new subscriptions from one source: at most 20 a minute are taken (one
    // above), then 503 with Retry-After
    let mut codes = Vec::new();
    for _ in 0..22 {
        let r = p.subscribe("201", mwi, Some(("201", PW_201)))?;
        codes.push(r[8..11].to_owned());
        if r.starts_with("SIP/2.0 503") {
            assert!(r.contains("Retry-After"), "{r}");
        }
    }
    assert!(codes.iter().filter(|c| *c == "200").count() <= 19, "{codes:?}");
    assert_eq!(codes.last().map(String::as_str), Some("503"), "{codes:?}");
    // held subscriptions per extension are bounded too
    let r = pbx.admin.get(&format!("/extensions/{ext}/subscriptions")).await?;
    assert!(r.data().as_array().map_or(0, Vec::len) <= 16, "{}", r.text);
    Ok(())
}
