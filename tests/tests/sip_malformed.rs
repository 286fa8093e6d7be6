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

/// `(name, Some((code, reason)))` or `(name, None)` for drop, from an EXPECT file.
fn expectations(dir: &Path) -> anyhow::Result<Vec<(String, Option<(u16, String)>)>> {
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
        // drain retransmissions of error answers before the next case
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        while sock.recv_from(&mut buf).is_ok() {}
        checked += 1;
    }
    Ok(checked)
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
