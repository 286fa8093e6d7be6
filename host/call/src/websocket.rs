//! SIP over WebSocket (RFC 7118), the server side of RFC 6455, sans-IO: bytes of one
//! connection in (after TLS for WSS), events out — the opening handshake's answer, whole SIP
//! messages (one per WebSocket message, RFC 7118 §5), the control frames to send back, and
//! why a connection must close.
//!
//! Written here rather than taken from tungstenite: the event loop owns the socket and the
//! rustls session (mio, one thread), and tungstenite's `WebSocket` wants to own a
//! `Read + Write` stream; what SIP needs of RFC 6455 (no extensions, a message at most one SIP
//! message long, masked client frames) is small and is tested below with made-up bytes.

use base64::Engine as _;
use bytes::Bytes;
use sha1::{Digest, Sha1};

/// The path SIP over WebSocket is served on.
pub const WS_PATH: &str = "/ws/sip";
/// The largest opening handshake accepted.
const MAX_HANDSHAKE: usize = 8 * 1024;
/// RFC 6455 §1.3.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a connection produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WsEvent {
    /// Bytes to write as they are (the handshake's answer, a pong, a close frame).
    Send(Bytes),
    /// One whole message's payload: a SIP message, or not (the caller parses).
    Message(Vec<u8>),
    /// Something broke the protocol (counted); the connection closes after what was sent.
    Bad(&'static str),
    /// The connection is over (after a close, a refused handshake or a protocol error).
    Close,
}

enum State {
    Handshake,
    Open,
    Closed,
}

/// One WebSocket connection's state (server side).
pub(crate) struct WsConn {
    state: State,
    buf: Vec<u8>,
    /// The message being put together from fragments.
    partial: Option<Vec<u8>>,
    max_message: usize,
}

impl WsConn {
    /// A connection that has sent nothing yet; messages longer than `max_message` close it.
    pub(crate) fn new(max_message: usize) -> WsConn {
        WsConn { state: State::Handshake, buf: Vec::new(), partial: None, max_message }
    }

    /// Whether the handshake is done and the connection not closed.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Takes bytes from the peer; what they produced is appended to `out`.
    pub(crate) fn push(&mut self, data: &[u8], out: &mut Vec<WsEvent>) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.buf.extend_from_slice(data);
        if matches!(self.state, State::Handshake) {
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > MAX_HANDSHAKE {
                    self.refuse(out, "431 Request Header Fields Too Large", "handshake too long");
                }
                return;
            };
            if end + 4 > MAX_HANDSHAKE {
                return self.refuse(out, "431 Request Header Fields Too Large", "handshake too long");
            }
            let head = self.buf[..end].to_vec();
            self.buf.drain(..end + 4);
            match handshake(&head) {
                Ok(answer) => {
                    self.state = State::Open;
                    out.push(WsEvent::Send(Bytes::from(answer)));
                }
                Err((status, why)) => return self.refuse(out, status, why),
            }
        }
        while matches!(self.state, State::Open) {
            match self.frame() {
                Ok(Some(f)) => self.on_frame(f, out),
                Ok(None) => break,
                Err((code, why)) => {
                    out.push(WsEvent::Bad(why));
                    out.push(WsEvent::Send(close_frame(code)));
                    out.push(WsEvent::Close);
                    self.state = State::Closed;
                }
            }
        }
    }

    fn refuse(&mut self, out: &mut Vec<WsEvent>, status: &str, why: &'static str) {
        out.push(WsEvent::Bad(why));
        let body = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        out.push(WsEvent::Send(Bytes::from(body)));
        out.push(WsEvent::Close);
        self.state = State::Closed;
        self.buf.clear();
    }

    /// The next whole frame in the buffer (unmasked), if one is there.
    fn frame(&mut self) -> Result<Option<Frame>, (u16, &'static str)> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err((1002, "reserved bits set (no extension was agreed)"));
        }
        let opcode = b[0] & 0x0f;
        if b[1] & 0x80 == 0 {
            return Err((1002, "client frame not masked"));
        }
        let (len, mut at) = match b[1] & 0x7f {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(l), 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode >= 8 && (len > 125 || !fin) {
            return Err((1002, "control frame too long or fragmented"));
        }
        let limit = self.max_message as u64;
        let so_far = self.partial.as_ref().map_or(0, |p| p.len() as u64);
        if len > limit || so_far + len > limit {
            return Err((1009, "message too big"));
        }
        let len = len as usize; // ≤ max_message
        if b.len() < at + 4 + len {
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&b[at..at + 4]);
        at += 4;
        let mut payload = b[at..at + len].to_vec();
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= mask[i % 4];
        }
        self.buf.drain(..at + len);
        Ok(Some(Frame { fin, opcode, payload }))
    }

    fn on_frame(&mut self, f: Frame, out: &mut Vec<WsEvent>) {
        let fail = |s: &mut WsConn, out: &mut Vec<WsEvent>, why| {
            out.push(WsEvent::Bad(why));
            out.push(WsEvent::Send(close_frame(1002)));
            out.push(WsEvent::Close);
            s.state = State::Closed;
        };
        match f.opcode {
            0x1 | 0x2 => {
                if self.partial.is_some() {
                    return fail(self, out, "new message inside a fragmented one");
                }
                if f.fin {
                    out.push(WsEvent::Message(f.payload));
                } else {
                    self.partial = Some(f.payload);
                }
            }
            0x0 => {
                let Some(mut p) = self.partial.take() else { return fail(self, out, "continuation without a message") };
                p.extend_from_slice(&f.payload);
                if f.fin {
                    out.push(WsEvent::Message(p));
                } else {
                    self.partial = Some(p);
                }
            }
            0x8 => {
                // echo the status code back (RFC 6455 §5.5.1), then close
                let code = if f.payload.len() >= 2 { u16::from_be_bytes([f.payload[0], f.payload[1]]) } else { 1000 };
                out.push(WsEvent::Send(close_frame(code)));
                out.push(WsEvent::Close);
                self.state = State::Closed;
            }
            0x9 => out.push(WsEvent::Send(encode_frame(0xA, &f.payload))),
            0xA => {}
            _ => fail(self, out, "unknown opcode"),
        }
    }
}

struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A server frame carrying one message (text when it is UTF-8, as SIP nearly always is).
pub(crate) fn encode_message(payload: &[u8]) -> Bytes {
    let opcode = if std::str::from_utf8(payload).is_ok() { 0x1 } else { 0x2 };
    encode_frame(opcode, payload)
}

fn encode_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    Bytes::from(f)
}

fn close_frame(code: u16) -> Bytes {
    encode_frame(0x8, &code.to_be_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks an opening handshake (RFC 6455 §4.2.1, RFC 7118 §4.1: the `sip` subprotocol) and
/// returns the 101 answer, or the status to refuse it with and why.
fn handshake(head: &[u8]) -> Result<String, (&'static str, &'static str)> {
    const BAD: &str = "400 Bad Request";
    let text = std::str::from_utf8(head).map_err(|_| (BAD, "handshake not text"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if method != Some("GET") || version != Some("HTTP/1.1") || parts.next().is_some() {
        return Err((BAD, "not a WebSocket handshake"));
    }
    let path = target.unwrap_or_default().split('?').next().unwrap_or_default();
    if path != WS_PATH {
        return Err(("404 Not Found", "handshake for another path"));
    }
    let (mut upgrade, mut connection, mut key, mut ws_version, mut sip) = (false, false, None, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Err((BAD, "malformed handshake header")) };
        let value = value.trim();
        let tokens = || value.split(',').map(str::trim);
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = tokens().any(|t| t.eq_ignore_ascii_case("websocket")),
            "connection" => connection = tokens().any(|t| t.eq_ignore_ascii_case("upgrade")),
            "sec-websocket-key" => key = Some(value),
            "sec-websocket-version" => ws_version = Some(value),
            "sec-websocket-protocol" => sip |= tokens().any(|t| t.eq_ignore_ascii_case("sip")),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err((BAD, "no WebSocket upgrade asked"));
    }
    if ws_version != Some("13") {
        return Err(("426 Upgrade Required\r\nSec-WebSocket-Version: 13", "unsupported WebSocket version"));
    }
    let key = key.ok_or((BAD, "no Sec-WebSocket-Key"))?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err((BAD, "malformed Sec-WebSocket-Key")),
    }
    if !sip {
        return Err((BAD, "the sip subprotocol was not asked"));
    }
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(ACCEPT_GUID.as_bytes());
    let accept = base64::engine::general_purpose::STANDARD.encode(h.finalize());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDSHAKE: &str = "GET /ws/sip HTTP/1.1\r\nHost: pbx\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\nOrigin: https://pbx\r\n\r\n";

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn open() -> WsConn {
        let mut c = WsConn::new(65535);
        let mut out = Vec::new();
        c.push(HANDSHAKE.as_bytes(), &mut out);
        assert!(c.is_open());
        c
    }

    #[test]
    fn handshake_answers_rfc6455_example_with_sip() {
        let mut c = WsConn::new(65535);
        let mut out = Vec::new();
        // in two pieces
        c.push(&HANDSHAKE.as_bytes()[..20], &mut out);
        assert!(out.is_empty());
        c.push(&HANDSHAKE.as_bytes()[20..], &mut out);
        let [WsEvent::Send(b)] = &out[..] else { panic!("{out:?}") };
        let s = std::str::from_utf8(b).unwrap();
        assert!(s.starts_with("HTTP/1.1 101 "));
        // RFC 6455 §1.3's worked example
        assert!(s.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{s}");
        assert!(s.contains("Sec-WebSocket-Protocol: sip\r\n"));
    }

    #[test]
    fn handshakes_refused() {
        for (req, status) in [
            (HANDSHAKE.replace("/ws/sip", "/other"), "404"),
            (HANDSHAKE.replace("Sec-WebSocket-Protocol: sip", "Sec-WebSocket-Protocol: chat"), "400"),
            (HANDSHAKE.replace("Version: 13", "Version: 8"), "426"),
            (HANDSHAKE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), "400"),
            (HANDSHAKE.replace("Upgrade: websocket\r\n", ""), "400"),
            ("POST /ws/sip HTTP/1.1\r\n\r\n".to_owned(), "400"),
            ("\u{0}\u{1}garbage\r\n\r\n".to_owned(), "400"),
        ] {
            let mut c = WsConn::new(65535);
            let mut out = Vec::new();
            c.push(req.as_bytes(), &mut out);
            assert!(matches!(out[0], WsEvent::Bad(_)), "{req}");
            let WsEvent::Send(b) = &out[1] else { panic!() };
            assert!(b.starts_with(format!("HTTP/1.1 {status}").as_bytes()), "{req}: {b:?}");
            assert_eq!(out[2], WsEvent::Close);
            assert!(!c.is_open());
            // nothing more comes of it
            out.clear();
            c.push(&masked(1, true, b"OPTIONS"), &mut out);
            assert!(out.is_empty());
        }
        // a head that never ends
        let mut c = WsConn::new(65535);
        let mut out = Vec::new();
        c.push(&vec![b'a'; MAX_HANDSHAKE + 1], &mut out);
        assert_eq!(out.last(), Some(&WsEvent::Close));
    }

    #[test]
    fn messages_whole_split_and_fragmented() {
        let mut c = open();
        let mut out = Vec::new();
        let f = masked(1, true, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        c.push(&f[..3], &mut out);
        assert!(out.is_empty());
        c.push(&f[3..], &mut out);
        assert_eq!(out, vec![WsEvent::Message(b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec())]);
        out.clear();
        // two frames in one read, a fragmented message with a ping between its pieces
        let mut bytes = masked(2, false, b"abc");
        bytes.extend(masked(9, true, b"hi"));
        bytes.extend(masked(0, true, b"def"));
        let big = vec![b'x'; 300];
        bytes.extend(masked(1, true, &big));
        c.push(&bytes, &mut out);
        assert_eq!(out, vec![WsEvent::Send(encode_frame(0xA, b"hi")), WsEvent::Message(b"abcdef".to_vec()), WsEvent::Message(big)]);
    }

    #[test]
    fn protocol_errors_close() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            // unmasked
            (vec![0x81, 0x02, b'h', b'i'], 1002),
            // reserved bits
            (
                {
                    let mut f = masked(1, true, b"x");
                    f[0] |= 0x40;
                    f
                },
                1002,
            ),
            // unknown opcode
            (masked(3, true, b"x"), 1002),
            // continuation with nothing to continue
            (masked(0, true, b"x"), 1002),
            // too big (declared length; nothing that large needs to arrive)
            (vec![0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0], 1009),
            // a control frame over 125 bytes
            (masked(9, true, &[0; 200]), 1002),
        ];
        for (bytes, code) in cases {
            let mut c = open();
            let mut out = Vec::new();
            c.push(&bytes, &mut out);
            assert!(matches!(out[0], WsEvent::Bad(_)), "{bytes:?}");
            assert_eq!(out[1], WsEvent::Send(close_frame(code)), "{bytes:?}");
            assert_eq!(out[2], WsEvent::Close);
            assert!(!c.is_open());
        }
        // fragments adding up past the limit
        let mut c = WsConn::new(100);
        let mut out = Vec::new();
        c.push(HANDSHAKE.as_bytes(), &mut out);
        out.clear();
        c.push(&masked(1, false, &[b'a'; 60]), &mut out);
        c.push(&masked(0, true, &[b'a'; 60]), &mut out);
        assert_eq!(out[1], WsEvent::Send(close_frame(1009)));
    }

    #[test]
    fn close_is_echoed() {
        let mut c = open();
        let mut out = Vec::new();
        c.push(&masked(8, true, &1001u16.to_be_bytes()), &mut out);
        assert_eq!(out, vec![WsEvent::Send(close_frame(1001)), WsEvent::Close]);
    }

    #[test]
    fn server_frames() {
        assert_eq!(&encode_message(b"SIP/2.0 200 OK")[..2], &[0x81, 14]);
        assert_eq!(&encode_message(&[0xff, 0xfe])[..2], &[0x82, 2]);
        let long = encode_message(&[b'a'; 300]);
        assert_eq!(&long[..4], &[0x81, 126, 1, 44]);
        assert_eq!(long.len(), 304);
        let huge = encode_message(&vec![b'a'; 70000]);
        assert_eq!(&huge[..2], &[0x81, 127]);
    }
}
