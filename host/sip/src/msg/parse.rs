//! The parser: one pass over the header section, then validation of the headers the stack
//! relies on. See [`super::Message::parse`].

use bytes::Bytes;

use super::hdr::{parse_u32, split_list, CSeq, Contact, NameAddr, SessionExpires, Via};
use super::uri::Uri;
use super::{Header, HeaderName, Message, Method, Name, Span, StartLine};
use crate::error::{ParseError, ParseErrorKind as K};

/// Where the header section ends: `(end of the last header line, start of the body)`.
/// Without an empty line the whole input is header section.
pub(crate) fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = data[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let rest = &data[nl + 1..];
        if rest.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        if rest.starts_with(b"\n") {
            return Some((nl, nl + 2));
        }
        i = nl + 1;
    }
    None
}

fn looks_like_response(data: &[u8]) -> bool {
    data.len() >= 4 && data[..4].eq_ignore_ascii_case(b"SIP/")
}

pub(crate) fn parse(data: &[u8], max: usize) -> Result<Message, ParseError> {
    let skip = data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(data.len());
    let data = &data[skip..];
    let is_request = !looks_like_response(data);
    if data.len() > max {
        return Err(ParseError::new(K::TooLarge, is_request));
    }
    if data.is_empty() {
        return Err(ParseError::new(K::BadStartLine, false));
    }
    let (head_end, body_start) = find_head_end(data).unwrap_or((data.len(), data.len()));
    let head_bytes = &data[..head_end];
    let (head, encoding_ok) = match std::str::from_utf8(head_bytes) {
        Ok(s) => (std::borrow::Cow::Borrowed(s), true),
        Err(_) => (String::from_utf8_lossy(head_bytes), false),
    };
    let (mut msg, mut first_err) = read_head(&head, is_request)?;
    if !encoding_ok {
        first_err = Some(K::BadEncoding);
    }
    let fail = |kind, msg: Message| Err(ParseError::new(kind, is_request).with_partial(msg));
    if let Some(kind) = first_err {
        return fail(kind, msg);
    }

    // Content-Length: absent means "the rest of the datagram"; several must agree.
    let mut length: Option<u32> = None;
    let mut bad_length = false;
    for v in msg.headers(HeaderName::ContentLength) {
        match parse_u32(v) {
            Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
            _ => bad_length = true,
        }
    }
    if bad_length {
        return fail(K::BadContentLength, msg);
    }
    let avail = &data[body_start.min(data.len())..];
    let body = match length {
        Some(n) if n as usize > avail.len() => return fail(K::BadContentLength, msg),
        Some(n) => &avail[..n as usize],
        None => avail,
    };
    msg.remove_headers(HeaderName::ContentLength);
    msg.body = if body.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(body) };

    if let Err(kind) = validate(&msg) {
        return fail(kind, msg);
    }
    Ok(msg)
}

/// Reads the start line and header lines. Returns the message and the first non-fatal error
/// (the message is still useful to address a 400 to); `Err` when the start line is garbage.
fn read_head(head: &str, is_request: bool) -> Result<(Message, Option<K>), ParseError> {
    let mut err: Option<K> = None;
    let note = |k: K, err: &mut Option<K>| {
        if err.is_none() {
            *err = Some(k);
        }
    };
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or("");
    let first = first.strip_suffix('\r').unwrap_or(first);
    if first.ends_with([' ', '\t']) && is_request {
        note(K::BadStartLine, &mut err);
    }
    let first = first.trim_end_matches([' ', '\t']);
    let mut msg = Message {
        head: String::with_capacity(head.len() + 64),
        start: StartLine::Response { code: 0, reason: Span::of(0, 0) },
        headers: Vec::with_capacity(16),
        body: Bytes::new(),
    };
    msg.head.push_str(head);
    // Every slice handed to this borrows from `head`.
    let line_off = |line: &str| (line.as_ptr() as usize).saturating_sub(head.as_ptr() as usize);

    if !is_request {
        let bad = || ParseError::new(K::BadStartLine, false);
        let rest = first.get(..8).filter(|v| v.eq_ignore_ascii_case("SIP/2.0 ")).map(|_| &first[8..]).ok_or_else(bad)?;
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, &rest[rest.len()..]),
        };
        let code: u16 = match code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
            true => code.parse().map_err(|_| bad())?,
            false => return Err(bad()),
        };
        if !(100..=699).contains(&code) {
            return Err(bad());
        }
        let r0 = line_off(reason);
        msg.start = StartLine::Response { code, reason: Span::of(r0, r0 + reason.len()) };
    } else {
        let bad = || ParseError::new(K::BadStartLine, true);
        let (method, rest) = first.split_once(' ').ok_or_else(bad)?;
        let (uri, version) = rest.rsplit_once(' ').ok_or_else(bad)?;
        if !super::is_token(method) || !version.get(..4).is_some_and(|v| v.eq_ignore_ascii_case("SIP/")) {
            return Err(bad());
        }
        let u0 = line_off(uri);
        msg.start = StartLine::Request { method: Method::parse(method), uri: Span::of(u0, u0 + uri.len()) };
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            note(K::BadVersion, &mut err);
        }
        match Uri::parse(uri) {
            None => note(K::BadRequestUri, &mut err),
            Some(Uri::Other { .. }) => note(K::UnsupportedUriScheme, &mut err),
            Some(Uri::Sip(s)) if s.headers.is_some() => note(K::BadRequestUri, &mut err),
            Some(_) => {}
        }
    }

    // Header lines; a line starting with SP/HT continues the previous one (folding).
    let mut folded: Option<(usize, String)> = None;
    for raw in lines {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if has_bare_control(line) {
            note(K::BadEncoding, &mut err);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = msg.headers.len().checked_sub(1) else {
                note(K::BadHeaderLine, &mut err);
                continue;
            };
            let cont = line.trim();
            if cont.is_empty() {
                continue;
            }
            match &mut folded {
                Some((idx, text)) if *idx == last => {
                    text.push(' ');
                    text.push_str(cont);
                }
                _ => {
                    flush_fold(&mut msg, folded.take());
                    let h = msg.headers[last];
                    let mut text = msg.span(h.value).to_owned();
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(cont);
                    folded = Some((last, text));
                }
            }
            continue;
        }
        flush_fold(&mut msg, folded.take());
        let Some((name, value)) = line.split_once(':') else {
            note(K::BadHeaderLine, &mut err);
            continue;
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !super::is_token(name) {
            note(K::BadHeaderLine, &mut err);
            continue;
        }
        let value = value.trim_matches([' ', '\t']);
        let v0 = line_off(value);
        let name = match HeaderName::from_name(name) {
            Some(k) => Name::Known(k),
            None => {
                let n0 = line_off(name);
                Name::Other(Span::of(n0, n0 + name.len()))
            }
        };
        msg.headers.push(Header { name, value: Span::of(v0, v0 + value.len()) });
    }
    flush_fold(&mut msg, folded.take());
    Ok((msg, err))
}

/// A control character other than HT that is not escaped as a quoted-pair (`\` before it,
/// which RFC 3261 §25.1 allows inside quoted strings).
fn has_bare_control(line: &str) -> bool {
    let b = line.as_bytes();
    b.iter().enumerate().any(|(i, &c)| ((c < 0x20 && c != b'\t') || c == 0x7f) && (i == 0 || b[i - 1] != b'\\'))
}

fn flush_fold(msg: &mut Message, folded: Option<(usize, String)>) {
    if let Some((idx, text)) = folded {
        let span = msg.append(&text);
        if let Some(h) = msg.headers.get_mut(idx) {
            h.value = span;
        }
    }
}

/// Checks the headers every SIP element relies on.
fn validate(msg: &Message) -> Result<(), K> {
    let one = |name: HeaderName, required: bool| -> Result<Option<&str>, K> {
        let mut it = msg.headers(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(K::Duplicate(name));
        }
        if first.is_none() && required {
            return Err(K::Missing(name));
        }
        Ok(first)
    };
    let mut vias = msg.headers(HeaderName::Via).flat_map(split_list).peekable();
    if vias.peek().is_none() {
        return Err(K::Missing(HeaderName::Via));
    }
    if vias.any(|v| Via::parse(v).is_none()) {
        return Err(K::Bad(HeaderName::Via));
    }
    for name in [HeaderName::From, HeaderName::To] {
        if let Some(v) = one(name, true)?
            && NameAddr::parse(v).is_none()
        {
            return Err(K::Bad(name));
        }
    }
    let call_id = one(HeaderName::CallId, true)?.unwrap_or("");
    if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(K::Bad(HeaderName::CallId));
    }
    let cseq = CSeq::parse(one(HeaderName::CSeq, true)?.unwrap_or("")).ok_or(K::Bad(HeaderName::CSeq))?;
    if let Some(m) = msg.method()
        && *m != cseq.method
    {
        return Err(K::CSeqMethodMismatch);
    }
    if let Some(mf) = one(HeaderName::MaxForwards, false)?
        && parse_u32(mf).is_none_or(|v| v > 255)
    {
        return Err(K::Bad(HeaderName::MaxForwards));
    }
    if let Some(e) = one(HeaderName::Expires, false)?
        && parse_u32(e).is_none()
    {
        return Err(K::Bad(HeaderName::Expires));
    }
    let mut contacts = 0;
    let mut star = false;
    for c in msg.headers(HeaderName::Contact).flat_map(split_list) {
        contacts += 1;
        match Contact::parse(c) {
            None => return Err(K::Bad(HeaderName::Contact)),
            Some(Contact::Star) => star = true,
            Some(_) => {}
        }
    }
    if star && contacts > 1 {
        return Err(K::Bad(HeaderName::Contact));
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        if msg.headers(name).flat_map(split_list).any(|r| NameAddr::parse(r).is_none()) {
            return Err(K::Bad(name));
        }
    }
    if let Some(se) = one(HeaderName::SessionExpires, false)?
        && SessionExpires::parse(se).is_none()
    {
        return Err(K::Bad(HeaderName::SessionExpires));
    }
    if let Some(v) = one(HeaderName::MinSe, false)?
        && parse_u32(v.split(';').next().unwrap_or("")).is_none()
    {
        return Err(K::Bad(HeaderName::MinSe));
    }
    Ok(())
}
