//! The attacker's tests of the SIP side against the real binary: answers never aimed at an
//! address the request names (UDP reflection towards a victim or a loopback service),
//! credentials kept out of the SIP log, the files of the data dir private to the server.

mod sip_support;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use sip_support::Pbx;

/// Collects every datagram a socket receives for `d`.
fn drain(sock: &UdpSocket, d: Duration) -> Vec<String> {
    let end = Instant::now() + d;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => return got,
        }
    }
}

/// Requests from 127.0.0.1 whose Via names a victim on 127.0.0.2 (with and without forged
/// `received`/`rport`, on the stateless path, the INVITE transaction with its 407
/// retransmissions, and a request too broken to parse): the victim hears nothing, the sender
/// hears every answer.
#[tokio::test]
async fn answers_are_never_reflected_at_the_address_a_request_names() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&[]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let addr = pbx.sip();
    let victim = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))?;
    let v = victim.local_addr()?;
    let attacker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let me = attacker.local_addr()?;
    let vias = [
        format!("SIP/2.0/UDP {v}"),
        format!("SIP/2.0/UDP {v};rport"),
        format!("SIP/2.0/UDP {me};received={};rport={}", v.ip(), v.port()),
        format!("SIP/2.0/UDP 127.0.0.9:5060;received={}", v.ip()),
    ];
    let mut expected = 0;
    for (i, via) in vias.iter().enumerate() {
        let options = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: {via};branch=z9hG4bKrefl{i}\r\nMax-Forwards: 70\r\nFrom: <sip:x@example.com>;tag=r{i}\r\n\
             To: <sip:{addr}>\r\nCall-ID: refl-{i}@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        attacker.send_to(options.as_bytes(), &addr)?;
        let register =
            options.replace("OPTIONS sip:", "REGISTER sip:").replace("1 OPTIONS", "1 REGISTER").replace("refl-", "reg-").replace("z9hG4bKrefl", "z9hG4bKreg");
        attacker.send_to(register.as_bytes(), &addr)?;
        let invite = format!(
            "INVITE sip:101@{addr} SIP/2.0\r\nVia: {via};branch=z9hG4bKinv{i}\r\nMax-Forwards: 70\r\nFrom: <sip:x@example.com>;tag=i{i}\r\n\
             To: <sip:101@{addr}>\r\nCall-ID: inv-{i}@example.com\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\nContent-Length: 0\r\n\r\n"
        );
        attacker.send_to(invite.as_bytes(), &addr)?;
        let broken = format!("OPTIONS sip:{addr} SIP/2.0\r\nVia: {via};branch=z9hG4bKbad{i}\r\nMax-Forwards: 70\r\nFrom: <sip:x@e>;tag=b{i}\r\nTo: <sip:{addr}>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        attacker.send_to(broken.as_bytes(), &addr)?;
        expected += 4;
    }
    // long enough for the 407s to be retransmitted (T1 = 500 ms, then 1 s)
    let heard = drain(&attacker, Duration::from_millis(2500));
    let victim_heard = drain(&victim, Duration::from_millis(200));
    assert!(victim_heard.is_empty(), "the victim was sent {victim_heard:?}");
    let finals = heard.iter().filter(|m| !m.starts_with("SIP/2.0 1")).count();
    assert!(finals >= expected, "the sender hears its answers: {finals} of {expected}: {heard:?}");
    assert!(heard.iter().any(|m| m.starts_with("SIP/2.0 400 Missing Call-ID")));
    assert!(heard.iter().filter(|m| m.starts_with("SIP/2.0 407")).count() > vias.len(), "407 retransmissions reach the sender");
    for m in &heard {
        let via = m.lines().find(|l| l.starts_with("Via:")).unwrap_or_default();
        assert!(!via.contains("received=127.0.0.2") && !via.contains(&format!("rport={}", v.port())), "our answer kept a forged value: {via}");
    }
    assert!(pbx.server.is_running());
    Ok(())
}

/// Digest credentials do not reach the SIP log (`--sip-log full`).
#[tokio::test]
async fn the_sip_log_holds_no_credentials() -> anyhow::Result<()> {
    let pbx = Pbx::start(&["--sip-log", "full"]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let contact = sip_support::free_port(Ipv4Addr::LOCALHOST);
    sip_support::register(&pbx, "101", "Secret-101-pw", contact, 300)?.assert_ok();
    let logs = pbx.server.logs();
    assert!(logs.contains("Authorization: username=\\\"101\\\", <redacted>"), "the username stays, the rest goes: {logs}");
    assert!(!logs.contains("response=") && !logs.contains("cnonce="), "digest response in the log");
    Ok(())
}

/// The database, the secret key and the data dir's folders are the server's alone.
#[tokio::test]
async fn the_data_dir_is_private() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let pbx = Pbx::start(&[]).await?;
    let dir = pbx.server.data_dir().to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for f in ["flowpbx.db", "secret.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let mut checked = 0;
    for e in walk(&dir) {
        let m = mode(&e);
        assert_eq!(m & 0o077, 0, "{} is {m:o}", e.display());
        checked += 1;
    }
    assert!(checked >= 5, "{checked} entries");
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
