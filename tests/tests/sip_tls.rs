//! SIP over TLS through the real binary (`--sip-tls-port`, the certificate store's
//! certificate): baresip phones registering and calling over TLS (the call reaches the callee
//! on the connection it registered over), RFC 5626 keep-alive over TLS, a registration trunk
//! over TLS to Kamailio with its `tls` module (certificate verified against a test CA the
//! PBX trusts through `SSL_CERT_FILE`, a certificate of an unknown CA or for another name
//! refused with a clear status, `tls_verify` off), and attackers: a client that never
//! finishes its handshake, garbage after the handshake, too many connections from one IP.
//!
//! SIPp is not used here: Debian's sip-tester is built without OpenSSL ("To use a TLS
//! transport you must compile SIPp with OpenSSL").

mod carrier_support;
mod sip_support;
mod tls_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use carrier_support::{Account, Carrier, CarrierOptions};
use serde_json::{json, Value};
use sip_support::baresip::{Baresip, Phone};
use sip_support::Pbx;
use tls_support::TestCa;

const TRUNK_PW: &str = "Trunk-pw-1";

/// A PBX serving a certificate of `ca` for `pbx.test` and 127.0.0.1 on SIP over TLS.
async fn pbx_with_cert(ca: &TestCa, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(Pbx, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (chain, key) = ca.issue(&["pbx.test", "127.0.0.1"], -1, 30);
    std::fs::write(dir.path().join("cert.pem"), chain)?;
    std::fs::write(dir.path().join("key.pem"), key)?;
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let mut args: Vec<&str> = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    let pbx = if env.is_empty() {
        Pbx::start(&args).await?
    } else {
        let mut a: Vec<String> = vec!["--log-level".into(), "info,call=debug".into(), "--sip-log".into(), "headers".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        let server = flowpbx_tests::Server::start_with(flowpbx_tests::ServerOptions {
            args: a,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        })
        .await?;
        let admin = server.admin().await?;
        Pbx { server, admin }
    };
    Ok((pbx, dir))
}

/// A TLS client connection to the PBX, trusting `ca`.
fn tls_connect(port: u16, ca: &TestCa) -> anyhow::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("pbx.test")?;
    let conn = rustls::ClientConnection::new(Arc::new(tls_support::client_config(&ca.pem)), name)?;
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Reads until `want` is in what arrived (or the stream ends or times out).
fn read_until(s: &mut impl Read, want: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&got).contains(want) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn options(port: u16, branch: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bK{branch};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p{branch}\r\n\
         To: <sip:127.0.0.1>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Whether the server closed `s` within `within` (a read that ends or fails).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let _ = s.set_read_timeout(Some(within));
    let mut b = [0u8; 512];
    let t0 = Instant::now();
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
        if t0.elapsed() > within {
            return false;
        }
    }
}

#[tokio::test]
async fn baresip_phones_register_and_call_over_tls() -> anyhow::Result<()> {
    let pbx = Pbx::start(&[]).await?;
    let tls = format!("127.0.0.1:{}", pbx.server.ports().sip_tls);
    let a_id = pbx.extension("101", "Secret-101-pw").await?;
    let b_id = pbx.extension("102", "Secret-102-pw").await?;
    pbx.wait_directory(2, 0, 0).await?;
    // (the self-signed certificate the PBX makes on first start: baresip 1.0 does not verify)
    let mut a = Baresip::start_phone(&Phone { tls: true, ..Phone::new("101", "Secret-101-pw", &tls, false) }).await?;
    let mut b = Baresip::start_phone(&Phone { tls: true, ..Phone::new("102", "Secret-102-pw", &tls, true) }).await?;
    let ra = pbx.wait_registrations(a_id, 1).await?;
    let rb = pbx.wait_registrations(b_id, 1).await?;
    for r in [&ra[0], &rb[0]] {
        assert_eq!(r["transport"], "tls", "{r}");
        assert!(r["contact_uri"].as_str().unwrap_or_default().contains("transport=tls"), "{r}");
    }

    // the INVITE to 102 goes down the connection 102 registered over: baresip has no server
    // certificate, so a connection the PBX opened towards it could not be TLS at all
    a.command("dial", &format!("sip:102@{tls};transport=tls")).await?;
    b.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    a.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
    a.wait_event("CALL_RTPESTAB", Duration::from_secs(10)).await?;
    a.command("hangup", "").await?;
    a.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    b.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("answered"), Some("normal_clearing")), "{c}");
    assert_eq!((c["caller_id_num"].as_str(), c["callee"].as_str()), (Some("101"), Some("102")));
    let log = pbx.server.logs();
    assert!(log.contains("SIP/2.0/TLS"), "the SIP log shows TLS Vias");
    Ok(())
}

#[tokio::test]
async fn tls_keepalive_options_and_the_certificate_of_the_store() -> anyhow::Result<()> {
    let ca = TestCa::new("FlowPBX SIP test CA");
    let (pbx, _dir) = pbx_with_cert(&ca, &[], &[]).await?;
    let port = pbx.server.ports().sip_tls;
    // the handshake verifies against the test CA: the store's certificate is served
    let mut s = tls_connect(port, &ca)?;
    // RFC 5626: a double CRLF is answered with one CRLF
    s.write_all(b"\r\n\r\n")?;
    s.flush()?;
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong)?;
    assert_eq!(&pong, b"\r\n");
    s.write_all(options(port, "ka1").as_bytes())?;
    let got = read_until(&mut s, "\r\n\r\n");
    assert!(got.starts_with("SIP/2.0 200"), "{got}");
    assert!(got.contains("Via: SIP/2.0/TLS 127.0.0.1:40000"), "{got}");
    // the health of the certificate store names the SIP TLS listener
    let r = pbx.admin.get("/system/tls").await?;
    assert!(r.text.contains(&format!("127.0.0.1:{port}")), "{}", r.text);
    Ok(())
}

#[tokio::test]
async fn tls_attackers_do_not_hold_the_listener() -> anyhow::Result<()> {
    let ca = TestCa::new("FlowPBX SIP test CA");
    let (pbx, _dir) = pbx_with_cert(&ca, &[], &[]).await?;
    let port = pbx.server.ports().sip_tls;

    // 1. a client that opens a connection and never finishes its handshake (half a
    // ClientHello) is closed after the 10 s handshake limit
    let mut slow = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])?;
    let t0 = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(20)), "a stalled handshake is never closed");
    assert!(t0.elapsed() >= Duration::from_secs(5), "closed too soon: {:?}", t0.elapsed());

    // 2. garbage after the handshake: closed (or answered 400), and the server serves on
    let mut g = tls_connect(port, &ca)?;
    g.write_all(b"\x00\x01GARBAGE NOT SIP AT ALL\r\nContent-Length: 999999999\r\n\r\n")?;
    let _ = g.flush();
    let got = read_until(&mut g, "\r\n\r\n");
    assert!(got.is_empty() || got.starts_with("SIP/2.0 400"), "{got:?}");
    let mut ok = tls_connect(port, &ca)?;
    ok.write_all(options(port, "after-garbage").as_bytes())?;
    assert!(read_until(&mut ok, "\r\n\r\n").starts_with("SIP/2.0 200"));
    // a TLS record that is not TLS at all
    let mut raw = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    raw.write_all(b"OPTIONS sip:x SIP/2.0\r\n\r\n")?;
    assert!(closed_within(&mut raw, Duration::from_secs(5)), "plain SIP on the TLS port is not closed");

    // 3. too many connections from one IP: past 64 (TCP and TLS together) a new one is
    // closed at once; the ones held, and other addresses, still work
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect((Ipv4Addr::LOCALHOST, port))?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    assert!(closed_within(&mut extra, Duration::from_secs(3)), "the 65th connection of one IP is kept");
    assert!(pbx.server.logs().contains("too many connections"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = tls_connect(port, &ca)?;
    again.write_all(options(port, "after-flood").as_bytes())?;
    assert!(read_until(&mut again, "\r\n\r\n").starts_with("SIP/2.0 200"));
    // and the server is healthy
    let h = pbx.admin.get("/health").await?;
    assert_eq!(h.data()["components"]["sip"]["status"], "ok", "{}", h.text);
    Ok(())
}

/// Creates a registration trunk over TLS to `carrier`; returns its id.
async fn tls_trunk(pbx: &Pbx, carrier: &Carrier, name: &str, verify: bool) -> anyhow::Result<i64> {
    let addr = carrier.tls_addr().context("the carrier runs TLS")?;
    let r = pbx
        .admin
        .post(
            "/trunks",
            &json!({
                "name": name, "type": "register", "host": addr.ip().to_string(), "port": addr.port(), "transport": "tls",
                "tls_verify": verify, "username": "acme", "auth_username": "acme-auth", "password": TRUNK_PW,
                "register_expiry": 300, "options_interval": 0,
            }),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "{}", r.text);
    r.data()["id"].as_i64().context("trunk id")
}

async fn wait_trunk(pbx: &Pbx, id: i64, want: impl Fn(&Value) -> bool, timeout: Duration) -> anyhow::Result<Value> {
    let t0 = Instant::now();
    loop {
        let r = pbx.admin.get(&format!("/trunks/{id}/status")).await?;
        if want(r.data()) {
            return Ok(r.data().clone());
        }
        if t0.elapsed() > timeout {
            anyhow::bail!("trunk {id}: status {}", r.text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn carrier_with(ip: Ipv4Addr, cert: (String, String)) -> anyhow::Result<Carrier> {
    Carrier::start(CarrierOptions { ip, accounts: vec![Account::new("acme", "acme-auth", TRUNK_PW, &[])], tls: Some(cert), ..CarrierOptions::default() })
}

#[tokio::test]
async fn registration_trunk_over_tls_to_kamailio() -> anyhow::Result<()> {
    let ca = TestCa::new("Carrier test CA");
    let ca_dir = tempfile::tempdir()?;
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem)?;
    // the PBX trusts the test CA through the system store's SSL_CERT_FILE
    let own = TestCa::new("FlowPBX SIP test CA");
    let (pbx, _dir) = pbx_with_cert(&own, &[], &[("SSL_CERT_FILE", &ca_file.display().to_string())]).await?;

    let good_ip = Ipv4Addr::new(127, 0, 0, 5);
    let good = carrier_with(good_ip, ca.issue(&["127.0.0.5", "carrier.test"], -1, 30))?;
    let stranger = TestCa::new("Nobody's CA");
    let unknown = carrier_with(Ipv4Addr::new(127, 0, 0, 7), stranger.issue(&["127.0.0.7"], -1, 30))?;
    let mismatched = carrier_with(Ipv4Addr::new(127, 0, 0, 8), ca.issue(&["other.test"], -1, 30))?;

    let t_good = tls_trunk(&pbx, &good, "TLS carrier", true).await?;
    let t_unknown = tls_trunk(&pbx, &unknown, "Unknown CA", true).await?;
    let t_mismatch = tls_trunk(&pbx, &mismatched, "Wrong name", true).await?;

    // verified and registered, over TLS
    wait_trunk(&pbx, t_good, |s| s["status"] == "registered", Duration::from_secs(20)).await?;
    let contacts = good.wait_registered("acme", 1, Duration::from_secs(10))?;
    assert!(format!("{contacts:?}").to_ascii_lowercase().contains("transport=tls"), "{contacts:?}");
    assert!(good.events_of("REGISTER").iter().any(|e| format!("{e:?}").contains("tls:")), "{:?}", good.events_of("REGISTER"));

    // refused with the reason
    let s = wait_trunk(&pbx, t_unknown, |s| s["status"] == "failed", Duration::from_secs(20)).await?;
    assert_eq!(s["detail"], "TLS certificate not trusted: issued by an unknown CA (or self-signed)", "{s}");
    let s = wait_trunk(&pbx, t_mismatch, |s| s["status"] == "failed", Duration::from_secs(20)).await?;
    assert_eq!(s["detail"], "TLS certificate not trusted: not valid for the trunk's host name", "{s}");
    assert!(unknown.events_of("REGISTER").is_empty(), "nothing was said over a refused connection");
    let list = pbx.admin.get("/trunks").await?;
    assert!(list.text.contains("TLS certificate not trusted"), "{}", list.text);

    // the private-CA switch: verification off registers
    let r = pbx.admin.put(&format!("/trunks/{t_unknown}"), &json!({"tls_verify": false})).await?;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_trunk(&pbx, t_unknown, |s| s["status"] == "registered", Duration::from_secs(40)).await?;

    // tls_verify off applies to TLS only; the API names the field
    let r = pbx.admin.put(&format!("/trunks/{t_good}"), &json!({"transport": "udp", "tls_verify": false})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.error_fields().contains(&"tls_verify".to_owned()), "{}", r.text);
    let r = pbx.admin.put(&format!("/trunks/{t_good}"), &json!({"tls_verify": "yes"})).await?;
    assert_eq!(r.status, 422, "{}", r.text);
    let _ = SocketAddr::from((good_ip, 0));
    Ok(())
}
