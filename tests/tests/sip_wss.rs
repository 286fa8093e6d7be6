//! SIP over secure WebSocket (RFC 7118) through the real binary (`--sip-wss-port`, path
//! `/ws/sip`, the certificate store's certificate): a client of this test's own (rustls, the
//! RFC 6455 client side written here, masked frames) registers with digest over WSS (the
//! registration is listed with transport `wss`), and a call from another WSS client reaches it
//! down the connection it registered on (Via `SIP/2.0/WSS`). Attackers: a handshake for another
//! path or without the `sip` subprotocol, garbage instead of a handshake, unmasked frames,
//! frames that are not SIP, an oversized frame, a connection flood — each refused, dropped and
//! counted (health's "WebSocket frames dropped"), and the listener serves on.

mod sip_support;
mod tls_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use md5::Digest as _;
use serde_json::json;
use sip_support::Pbx;
use tls_support::TestCa;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A PBX serving a certificate of `ca` for `pbx.test` and 127.0.0.1.
async fn pbx_with_cert(ca: &TestCa) -> anyhow::Result<(Pbx, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (chain, key) = ca.issue(&["pbx.test", "127.0.0.1"], -1, 30);
    std::fs::write(dir.path().join("cert.pem"), chain)?;
    std::fs::write(dir.path().join("key.pem"), key)?;
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let pbx = Pbx::start(&["--tls-cert", &cert, "--tls-key", &key]).await?;
    Ok((pbx, dir))
}

fn tls_connect(port: u16, ca: &TestCa) -> anyhow::Result<Tls> {
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

fn handshake_request(path: &str, protocol: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: pbx.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\nOrigin: https://pbx.test\r\n\r\n"
    )
}

/// Reads an HTTP head (up to the blank line).
fn read_head(s: &mut impl Read) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => got.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A WebSocket client frame (masked).
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let m = if masked { 0x80 } else { 0 };
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n <= 0xffff => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Reads one server frame: (opcode, payload); None when the stream ends or times out.
fn read_frame(s: &mut impl Read) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).ok()?;
    Some((h[0] & 0x0f, p))
}

/// A SIP-over-WebSocket client of its own.
struct WsClient {
    s: Tls,
    host: String,
}

impl WsClient {
    fn open(port: u16, ca: &TestCa) -> anyhow::Result<WsClient> {
        let mut s = tls_connect(port, ca)?;
        s.write_all(handshake_request("/ws/sip", "sip").as_bytes())?;
        let head = read_head(&mut s);
        if !head.starts_with("HTTP/1.1 101") {
            bail!("handshake refused: {head}");
        }
        // RFC 6455 §1.3's example key and accept
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        assert!(head.contains("Sec-WebSocket-Protocol: sip"), "{head}");
        let host = format!("{}.invalid", rand_token());
        Ok(WsClient { s, host })
    }

    fn send(&mut self, msg: &str) -> anyhow::Result<()> {
        self.s.write_all(&frame(1, msg.as_bytes(), true))?;
        Ok(self.s.flush()?)
    }

    /// The next SIP message (text or binary frame), answering pings.
    fn recv(&mut self) -> anyhow::Result<String> {
        loop {
            let (op, p) = read_frame(&mut self.s).context("no frame from the PBX")?;
            match op {
                1 | 2 => return Ok(String::from_utf8(p)?),
                9 => self.s.write_all(&frame(0xA, &p, true))?,
                8 => bail!("closed by the PBX"),
                _ => {}
            }
        }
    }

    /// The next message that is not a provisional response.
    fn recv_final(&mut self) -> anyhow::Result<String> {
        loop {
            let m = self.recv()?;
            if !m.starts_with("SIP/2.0 1") {
                return Ok(m);
            }
        }
    }
}

fn rand_token() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{:x}", t ^ u128::from(std::process::id()))
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

fn param(h: &str, name: &str) -> Option<String> {
    h.split([',', ' ']).find_map(|p| p.trim().strip_prefix(&format!("{name}="))).map(|v| v.trim_matches('"').to_owned())
}

fn md5_hex(s: &str) -> String {
    md5::Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The Authorization value answering `challenge` (MD5, qop=auth).
fn digest(challenge: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    let realm = param(challenge, "realm").unwrap_or_default();
    let nonce = param(challenge, "nonce").unwrap_or_default();
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let cnonce = "0a4f113b";
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\""
    )
}

fn register(c: &WsClient, user: &str, cseq: u32, auth: Option<&str>) -> String {
    let host = &c.host;
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS {host};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@pbx.test>;tag=r{user}\r\n\
         To: <sip:{user}@pbx.test>\r\nCall-ID: reg-{user}@{host}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{host};transport=ws>;expires=300\r\n\
         {auth}User-Agent: wss-test\r\nContent-Length: 0\r\n\r\n",
        b = rand_token() + &cseq.to_string(),
    )
}

fn register_over_ws(c: &mut WsClient, user: &str, password: &str) -> anyhow::Result<()> {
    let m = register(c, user, 1, None);
    c.send(&m)?;
    let r = c.recv_final()?;
    anyhow::ensure!(r.starts_with("SIP/2.0 401"), "{r}");
    let auth = digest(header(&r, "WWW-Authenticate").context("challenge")?, user, password, "REGISTER", "sip:pbx.test");
    let m = register(c, user, 2, Some(&auth));
    c.send(&m)?;
    let r = c.recv_final()?;
    anyhow::ensure!(r.starts_with("SIP/2.0 200"), "{r}");
    Ok(())
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn invite(c: &WsClient, from: &str, to: &str, cseq: u32, auth: Option<&str>) -> String {
    let host = &c.host;
    let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS {host};branch=z9hG4bKinv{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}@pbx.test>;tag=c{from}\r\n\
         To: <sip:{to}@pbx.test>\r\nCall-ID: call-{from}@{host}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{from}@{host};transport=ws>\r\n{auth}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn ack_for(c: &WsClient, resp: &str, to: &str, cseq: u32) -> String {
    let host = &c.host;
    let from = header(resp, "From").unwrap_or_default();
    let to_h = header(resp, "To").unwrap_or_default();
    let call_id = header(resp, "Call-ID").unwrap_or_default();
    format!(
        "ACK sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS {host};branch=z9hG4bKinv{cseq}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to_h}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The response to `req` with `code`, its headers copied back.
fn answer(req: &str, code: &str) -> String {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for l in req.split("\r\n").skip(1) {
        if l.is_empty() {
            break;
        }
        let name = l.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq"].contains(&name.as_str()) {
            out.push_str(l);
            out.push_str("\r\n");
        } else if name == "to" {
            out.push_str(l);
            out.push_str(";tag=busy1\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

#[tokio::test]
async fn register_and_call_over_wss() -> anyhow::Result<()> {
    let ca = TestCa::new("FlowPBX WSS test CA");
    let (pbx, _dir) = pbx_with_cert(&ca).await?;
    let port = pbx.server.ports().sip_wss;
    let a = pbx.extension("101", "Secret-101").await?;
    pbx.extension("102", "Secret-102").await?;
    pbx.wait_directory(2, 0, 0).await?;

    // 101 registers over WSS
    let mut phone = WsClient::open(port, &ca)?;
    register_over_ws(&mut phone, "101", "Secret-101")?;
    let regs = pbx.wait_registrations(a, 1).await?;
    assert_eq!((&regs[0]["transport"], &regs[0]["media_encryption"]), (&json!("wss"), &json!("dtls-srtp")), "{regs:?}");

    // 102, on another WSS connection, calls 101: the INVITE reaches 101 down its own connection
    let mut caller = WsClient::open(port, &ca)?;
    let m = invite(&caller, "102", "101", 1, None);
    caller.send(&m)?;
    let r = caller.recv_final()?;
    assert!(r.starts_with("SIP/2.0 407"), "{r}");
    let m = ack_for(&caller, &r, "101", 1);
    caller.send(&m)?;
    let auth = digest(header(&r, "Proxy-Authenticate").context("challenge")?, "102", "Secret-102", "INVITE", "sip:101@pbx.test");
    let m = invite(&caller, "102", "101", 2, Some(&auth));
    caller.send(&m)?;
    let inv = phone.recv()?;
    assert!(inv.starts_with("INVITE "), "{inv}");
    let via = header(&inv, "Via").unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/WSS "), "{via}");
    assert!(header(&inv, "Contact").unwrap_or_default().contains(";transport=ws"), "{inv}");
    // 101 is busy: the caller hears it
    phone.send(&answer(&inv, "486 Busy Here"))?;
    let ack = phone.recv()?;
    assert!(ack.starts_with("ACK "), "{ack}");
    let r = caller.recv_final()?;
    assert!(r.starts_with("SIP/2.0 486"), "{r}");
    let m = ack_for(&caller, &r, "101", 2);
    caller.send(&m)?;

    // the listener shows in the TLS status
    let status = pbx.admin.get("/system/tls").await?;
    assert!(status.text.contains("sip-wss"), "{}", status.text);
    Ok(())
}

fn closed_within(s: &mut impl Read, within: Duration) -> bool {
    let t0 = Instant::now();
    let mut b = [0u8; 512];
    while t0.elapsed() < within {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

fn options(c: &WsClient, branch: &str) -> String {
    let host = &c.host;
    format!(
        "OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS {host};branch=z9hG4bK{branch}\r\nFrom: <sip:probe@pbx.test>;tag=p{branch}\r\n\
         To: <sip:pbx.test>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn dropped(pbx: &Pbx) -> anyhow::Result<u64> {
    let h = pbx.sip_health().await?;
    let n = h.split(", ").find_map(|p| p.strip_suffix(" WebSocket frames dropped")).context(h.clone())?;
    Ok(n.parse()?)
}

#[tokio::test]
async fn wss_attackers_are_dropped_and_counted() -> anyhow::Result<()> {
    let ca = TestCa::new("FlowPBX WSS attack CA");
    let (pbx, _dir) = pbx_with_cert(&ca).await?;
    let port = pbx.server.ports().sip_wss;
    assert_eq!(dropped(&pbx).await?, 0);

    // handshakes refused: another path, no `sip` subprotocol, garbage
    for (req, status) in [
        (handshake_request("/ws/other", "sip"), "HTTP/1.1 404"),
        (handshake_request("/ws/sip", "chat"), "HTTP/1.1 400"),
        ("\u{1}\u{2}\u{3} not http at all\r\n\r\n".to_owned(), "HTTP/1.1 400"),
    ] {
        let mut s = tls_connect(port, &ca)?;
        s.write_all(req.as_bytes())?;
        let head = read_head(&mut s);
        assert!(head.starts_with(status), "{req:?}: {head:?}");
        assert!(closed_within(&mut s, Duration::from_secs(3)), "{req:?} left open");
    }

    // frames that are not SIP: dropped, the connection stays and answers SIP after
    let mut c = WsClient::open(port, &ca)?;
    c.s.write_all(&frame(1, b"hello, this is not SIP", true))?;
    c.s.write_all(&frame(2, &[0, 1, 2, 3, 255, 254, 0, 0], true))?;
    c.s.write_all(&frame(1, b"{\"json\":\"rpc\"}", true))?;
    let m = options(&c, "after-garbage");
    c.send(&m)?;
    let r = c.recv_final()?;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");

    // an unmasked frame breaks the protocol: a close frame (1002) and the end
    let mut u = WsClient::open(port, &ca)?;
    u.s.write_all(&frame(1, options(&u, "unmasked").as_bytes(), false))?;
    let (op, p) = read_frame(&mut u.s).context("a close frame")?;
    assert_eq!((op, p), (8, 1002u16.to_be_bytes().to_vec()));
    assert!(closed_within(&mut u.s, Duration::from_secs(3)));

    // a frame announcing 4 GiB: 1009 at once, nothing that large is awaited
    let mut big = WsClient::open(port, &ca)?;
    big.s.write_all(&[0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4])?;
    let (op, p) = read_frame(&mut big.s).context("a close frame")?;
    assert_eq!((op, p), (8, 1009u16.to_be_bytes().to_vec()));

    // a connection flood from one IP: past 64 (all stream transports together) refused
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect((Ipv4Addr::LOCALHOST, port))?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    extra.set_read_timeout(Some(Duration::from_secs(3)))?;
    assert!(closed_within(&mut extra, Duration::from_secs(3)), "the 65th connection of one IP is kept");
    drop(held);
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // every one was counted (3 handshakes, 3 messages that are not SIP, 2 protocol errors),
    // and the listener serves on
    assert!(dropped(&pbx).await? >= 8, "{}", pbx.sip_health().await?);
    let mut ok = WsClient::open(port, &ca)?;
    let m = options(&ok, "after-all");
    ok.send(&m)?;
    assert!(ok.recv_final()?.starts_with("SIP/2.0 200"));
    let h = pbx.admin.get("/health").await?;
    assert_eq!(h.data()["components"]["sip"]["status"], "ok", "{}", h.text);
    Ok(())
}
