//! Malformed and hostile input against the real binary, over UDP and TCP: the `sip` crate's
//! RFC 4475-style corpus (host/sip/tests/data/torture/invalid) and our own cases
//! (tests/sip/malformed), each answered with the expected 4xx or met with silence, a message
//! over 64 KiB on a stream dropped with its connection — and afterwards a valid OPTIONS still
//! gets 200.

mod sip_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use flowpbx_tests::workspace_root;
use sip_support::Pbx;

/// A corpus file's name and what it gets: `Some((code, reason))`, or `None` for a drop.
type Expectation = (String, Option<(u16, String)>);

/// The expectations of an EXPECT file.
fn expectations(dir: &Path) -> anyhow::Result<Vec<Expectation>> {
    let text = std::fs::read_to_string(dir.join("EXPECT"))?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut parts = line.splitn(3, ' ');
        let name = parts.next().unwrap_or_default().to_owned();
        let what = parts.next().unwrap_or_default();
        if what == "drop" {
            out.push((name, None));
        } else {
            out.push((name, Some((what.parse()?, parts.next().unwrap_or_default().to_owned()))));
        }
    }
    Ok(out)
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Sends each message of `dir` and checks the answer (or the silence) it gets.
fn run_corpus(sock: &UdpSocket, pbx: &str, dir: &Path) -> anyhow::Result<usize> {
    let me = sock.local_addr()?.to_string();
    let mut checked = 0;
    let mut buf = vec![0u8; 70_000];
    for (name, expect) in expectations(dir)? {
        let raw = std::fs::read(dir.join(format!("{name}.sip")))?;
        // answers go where the top Via says: make that us
        let msg = replace(&raw, b"192.0.2.1:5060", me.as_bytes());
        if msg.len() > 65_507 {
            // more than a datagram holds: over TCP, where the framer drops it with the connection
            assert!(expect.is_none(), "{name}");
            let mut tcp = TcpStream::connect(pbx)?;
            tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
            let _ = tcp.write_all(&msg);
            let mut back = Vec::new();
            let _ = tcp.read_to_end(&mut back);
            assert!(!String::from_utf8_lossy(&back).contains("SIP/2.0"), "{name}: answered over TCP");
            checked += 1;
            continue;
        }
        sock.send_to(&msg, pbx)?;
        sock.set_read_timeout(Some(Duration::from_millis(if expect.is_some() { 2000 } else { 300 })))?;
        // the first final answer (an INVITE hears 100 Trying first)
        let got = loop {
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 1") => continue,
                Ok((n, _)) => break Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break None,
            }
        };
        match (&expect, &got) {
            (None, None) => {}
            (Some((code, reason)), Some(text)) => {
                let status = text.lines().next().unwrap_or_default();
                assert_eq!(status, format!("SIP/2.0 {code} {reason}"), "{name}: {text}");
            }
            _ => panic!("{name}: expected {expect:?}, got {got:?}"),
        }
        // an error answer to an INVITE is retransmitted until acknowledged: acknowledge it
        if let Some(text) = &got
            && let Some(ack) = ack_for(text)
        {
            sock.send_to(ack.as_bytes(), pbx)?;
        }
        // drain retransmissions of error answers before the next case
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        while sock.recv_from(&mut buf).is_ok() {}
        checked += 1;
    }
    Ok(checked)
}

/// The ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3), from the
/// response's own Via, From, To, Call-ID and CSeq number; `None` for anything else.
fn ack_for(response: &str) -> Option<String> {
    let code: u16 = response.split(' ').nth(1)?.parse().ok()?;
    let header = |name: &str| response.lines().find(|l| l.split(':').next().is_some_and(|n| n.trim().eq_ignore_ascii_case(name))).map(|l| l.to_owned());
    let cseq = header("CSeq")?;
    if code < 300 || !cseq.ends_with("INVITE") {
        return None;
    }
    let n = cseq.split(':').nth(1)?.split_whitespace().next()?;
    Some(format!(
        "ACK sip:pbx SIP/2.0\r\n{}\r\nMax-Forwards: 70\r\n{}\r\n{}\r\n{}\r\nCSeq: {n} ACK\r\nContent-Length: 0\r\n\r\n",
        header("Via")?,
        header("From")?,
        header("To")?,
        header("Call-ID")?
    ))
}

fn options(sock: &UdpSocket, pbx: &str, n: u32) -> anyhow::Result<String> {
    let me = sock.local_addr()?;
    let msg = format!(
        "OPTIONS sip:{pbx} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKok{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=p{n}\r\n\
         To: <sip:{pbx}>\r\nCall-ID: probe-{n}@example.com\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), pbx)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn malformed_input_is_answered_or_dropped() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&[]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let addr = pbx.sip();
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let torture = workspace_root().join("host/sip/tests/data/torture/invalid");
    let ours = workspace_root().join("tests/sip/malformed");
    let a = run_corpus(&sock, &addr, &torture)?;
    let b = run_corpus(&sock, &addr, &ours)?;
    assert!(a >= 30 && b >= 8, "{a} + {b} cases");

    // over 64 KiB on a stream: the connection is closed without an answer
    let mut tcp = TcpStream::connect(&addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut big = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKbig\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:{addr}>\r\nCall-ID: big@b\r\nCSeq: 1 OPTIONS\r\n"
    );
    big.push_str(&format!("X-Padding: {}\r\n", "a".repeat(70 * 1024)));
    big.push_str("Content-Length: 0\r\n\r\n");
    let _ = tcp.write_all(big.as_bytes());
    let mut buf = Vec::new();
    let n = tcp.read_to_end(&mut buf);
    assert!(n.is_ok() || buf.is_empty(), "{n:?}");
    assert!(!String::from_utf8_lossy(&buf).contains("SIP/2.0"), "no answer to an over-size message: {}", String::from_utf8_lossy(&buf));

    // ...and a valid request is still served, from the same address
    let ok = options(&sock, &addr, 1)?;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(ok.contains("Allow: ") && ok.contains("Accept: application/sdp"), "{ok}");
    assert!(pbx.server.is_running());
    Ok(())
}

/// PROTOS c07-sip style mutations (the suite itself is a Java jar that no package carries):
/// each field of a valid INVITE replaced by overflows, format strings, control and
/// non-UTF-8 bytes, huge and negative numbers, empty values. None gets a 2xx, every one is
/// answered with a 4xx/5xx or dropped, and the server serves on.
#[tokio::test]
async fn protos_style_invite_mutations_never_get_a_2xx() -> anyhow::Result<()> {
    let mut pbx = Pbx::start(&["--sip-rate-limit", "0"]).await?;
    pbx.extension("101", "Secret-101-pw").await?;
    pbx.wait_directory(1, 0, 0).await?;
    let addr = pbx.sip();
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let me = sock.local_addr()?.to_string();
    let fields = ["METHOD", "RURI", "VERSION", "VIA", "FROM", "TO", "CALLID", "CSEQ", "CONTACT", "MAXFWD", "CTYPE", "CLEN", "SDPV", "SDPO", "SDPC", "SDPM"];
    let payloads: Vec<Vec<u8>> = vec![
        b"a".repeat(2048),
        b"a".repeat(70_000),
        b"%s%s%s%s%n%n%x".to_vec(),
        b"\x00".to_vec(),
        b"\x1b[2J\x07".to_vec(),
        b"\xff\xfe\xfd\xc0\xaf".to_vec(),
        b"4294967296".to_vec(),
        b"-1".to_vec(),
        b"99999999999999999999999999".to_vec(),
        b"".to_vec(),
        b"<sip:@>".to_vec(),
        b"\"\\\"".to_vec(),
        b"sip:%00@%0d%0a".to_vec(),
        b":::@@@;;;===".to_vec(),
        b"\r\n\r\n".to_vec(),
    ];
    let template = "METHOD RURI VERSION\r\nVia: SIP/2.0/UDP VIA;branch=z9hG4bKBRANCH\r\nFrom: FROM;tag=t1\r\nTo: TO\r\nCall-ID: CALLID\r\nCSeq: CSEQ INVITE\r\nContact: CONTACT\r\nMax-Forwards: MAXFWD\r\nContent-Type: CTYPE\r\nContent-Length: CLEN\r\n\r\nSDPBODY";
    let sdp = "v=SDPV\r\no=SDPO\r\ns=-\r\nc=IN IP4 SDPC\r\nt=0 0\r\nm=SDPM\r\n";
    let defaults = [
        ("METHOD", "INVITE".to_owned()),
        ("RURI", format!("sip:101@{addr}")),
        ("VERSION", "SIP/2.0".to_owned()),
        ("VIA", me.clone()),
        ("FROM", "<sip:p@example.com>".to_owned()),
        ("TO", format!("<sip:101@{addr}>")),
        ("CALLID", "protos-N@example.com".to_owned()),
        ("CSEQ", "1".to_owned()),
        ("CONTACT", format!("<sip:p@{me}>")),
        ("MAXFWD", "70".to_owned()),
        ("CTYPE", "application/sdp".to_owned()),
        ("SDPV", "0".to_owned()),
        ("SDPO", "- 1 1 IN IP4 127.0.0.1".to_owned()),
        ("SDPC", "127.0.0.1".to_owned()),
        ("SDPM", "audio 4000 RTP/AVP 0".to_owned()),
    ];
    let mut n = 0;
    let mut buf = vec![0u8; 70_000];
    let mut answered = 0;
    for field in fields {
        for p in &payloads {
            n += 1;
            let fill = |key: &str| -> Vec<u8> {
                if key == field {
                    return p.clone();
                }
                let v = defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap_or_default();
                v.replace('N', &n.to_string()).into_bytes()
            };
            let mut body = sdp.as_bytes().to_vec();
            for key in ["SDPV", "SDPO", "SDPC", "SDPM"] {
                body = replace(&body, key.as_bytes(), &fill(key));
            }
            let mut msg = template.as_bytes().to_vec();
            for key in ["METHOD", "RURI", "VERSION", "VIA", "FROM", "TO", "CALLID", "CSEQ", "CONTACT", "MAXFWD", "CTYPE"] {
                msg = replace(&msg, key.as_bytes(), &fill(key));
            }
            msg = replace(&msg, b"BRANCH", format!("protos{n}").as_bytes());
            let clen = if field == "CLEN" { p.clone() } else { body.len().to_string().into_bytes() };
            msg = replace(&msg, b"CLEN", &clen);
            msg = replace(&msg, b"SDPBODY", &body);
            if msg.len() > 65_000 {
                msg.truncate(65_000);
            }
            sock.send_to(&msg, &addr)?;
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            while let Ok((len, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                assert!(!text.starts_with("SIP/2.0 2"), "case {n} ({field}) got a 2xx: {text}");
                if !text.starts_with("SIP/2.0 1") {
                    answered += 1;
                    if let Some(ack) = ack_for(&text) {
                        sock.send_to(ack.as_bytes(), &addr)?;
                    }
                }
            }
        }
    }
    assert!(answered > n / 2, "{answered} of {n} answered");
    let ok = options(&sock, &addr, 77)?;
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert!(pbx.server.is_running());
    Ok(())
}
