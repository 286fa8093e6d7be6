//! Cutting a byte stream (TCP, TLS) into messages by Content-Length (RFC 3261 §18.3).

use bytes::{Buf, BytesMut};

use super::parse::find_head_end;
use super::{HeaderName, Message, MAX_MESSAGE_SIZE};
use crate::error::{ParseError, ParseErrorKind};

/// What a stream yields.
#[derive(Debug)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A double-CRLF keep-alive ping (RFC 5626 §3.5.1): answer it with a single CRLF.
    Ping,
}

/// Accumulates the bytes of one stream connection and yields complete messages.
///
/// ```text
/// loop {
///     let n = socket.read(&mut buf)?;
///     framer.push(&buf[..n]);
///     while let Some(frame) = framer.next_frame() {
///         match frame {
///             Ok(Frame::Message(msg)) => /* hand it on */,
///             Ok(Frame::Ping) => /* write "\r\n" */,
///             Err(e) if framer.is_broken() => /* close the connection */,
///             Err(e) => /* answer per e.disposition(); the stream is still in step */,
///         }
///     }
/// }
/// ```
///
/// A message without Content-Length is taken to have no body (the header is mandatory on
/// streams). Single CRLFs between messages are skipped. A header section or message larger
/// than the limit, or an unreadable Content-Length, breaks the stream: framing is lost, the
/// framer returns that error and then nothing more, and the connection must be closed.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max: usize,
    broken: bool,
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(MAX_MESSAGE_SIZE)
    }
}

impl StreamFramer {
    /// A framer accepting messages up to `max` bytes.
    pub fn new(max: usize) -> Self {
        StreamFramer { buf: BytesMut::with_capacity(4096), max, broken: false }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(data);
        }
    }

    /// Whether framing was lost; the connection must be closed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes held that do not yet form a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn fail(&mut self, kind: ParseErrorKind) -> Option<Result<Frame, ParseError>> {
        let is_request = !(self.buf.len() >= 4 && self.buf[..4].eq_ignore_ascii_case(b"SIP/"));
        self.broken = true;
        self.buf.clear();
        Some(Err(ParseError::new(kind, is_request)))
    }

    /// The next complete frame, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.broken {
            return None;
        }
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                return Some(Ok(Frame::Ping));
            }
            match self.buf.first() {
                Some(b'\r') | Some(b'\n') => {
                    // Wait to tell a ping from a lone CRLF (a pong) only while all we hold is
                    // line ends.
                    if self.buf.len() < 4 && self.buf.iter().all(|&b| b == b'\r' || b == b'\n') {
                        if self.buf.len() == 2 && &self.buf[..] == b"\r\n" {
                            self.buf.advance(2);
                        }
                        return None;
                    }
                    self.buf.advance(1);
                }
                None => return None,
                Some(_) => break,
            }
        }
        let Some((head_end, body_start)) = find_head_end(&self.buf) else {
            if self.buf.len() > self.max {
                return self.fail(ParseErrorKind::TooLarge);
            }
            return None;
        };
        let length = match content_length(&self.buf[..head_end]) {
            Ok(l) => l,
            Err(()) => return self.fail(ParseErrorKind::BadContentLength),
        };
        let total = body_start.saturating_add(length);
        if total > self.max {
            return self.fail(ParseErrorKind::TooLarge);
        }
        if self.buf.len() < total {
            return None;
        }
        let frame = self.buf.split_to(total);
        Some(Message::parse(&frame).map(Frame::Message))
    }
}

/// Finds Content-Length (or `l`) in a header section; 0 when absent.
fn content_length(head: &[u8]) -> Result<usize, ()> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = line[..colon].trim_ascii();
        let is_cl = std::str::from_utf8(name).ok().and_then(HeaderName::from_name).is_some_and(|n| n == HeaderName::ContentLength);
        if !is_cl {
            continue;
        }
        let v = std::str::from_utf8(line[colon + 1..].trim_ascii()).map_err(|_| ())?;
        let n = super::parse_u32(v).ok_or(())? as usize;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found.unwrap_or(0))
}
