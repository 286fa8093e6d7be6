//! Typed views of the headers the stack relies on. Each borrows from the message text and is
//! parsed on demand; `parse` returns `None` when the value is malformed.

use std::borrow::Cow;

use super::uri::{parse_hostport, split_outside_quotes, unquote, Host, Params, Uri};
use super::Method;

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport token (`UDP`, `TCP`, `TLS`, `WS`, `WSS`, ...), as written.
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port, when written.
    pub port: Option<u16>,
    /// The sent-by text, as written (`host[:port]`).
    pub sent_by: &'a str,
    /// The parameters (`branch`, `received`, `rport`, `maddr`, `ttl`, ...).
    pub params: Params<'a>,
}

/// The RFC 3261 magic cookie that starts every branch of a compliant element.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl<'a> Via<'a> {
    /// Parses one Via value (`SIP/2.0/UDP host:port;params`), tolerating LWS around `/`.
    pub fn parse(s: &'a str) -> Option<Via<'a>> {
        let s = s.trim();
        let mut rest = s;
        let mut parts = [""; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            rest = rest.trim_start();
            let end = if i < 2 { rest.find('/')? } else { rest.find(|c: char| c.is_ascii_whitespace())? };
            *part = rest[..end].trim_end();
            rest = if i < 2 { &rest[end + 1..] } else { &rest[end..] };
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || !is_token(parts[2]) {
            return None;
        }
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        let (host, port) = parse_hostport(sent_by)?;
        let params = Params::new(params);
        // A branch must be a token: a quoted or empty branch cannot be matched.
        if let Some(b) = params.get("branch")
            && !b.is_some_and(is_token)
        {
            return None;
        }
        Some(Via { transport: parts[2], host, port, sent_by, params })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch starts with the RFC 3261 magic cookie.
    pub fn has_magic_cookie(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `None` when absent, `Some(None)` for a bare `rport` (a request for one, RFC 3581),
    /// `Some(Some(port))` when filled in. A malformed value counts as a bare `rport`.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The default port of the transport: 5061 for TLS, 5060 otherwise.
    pub fn default_port(&self) -> u16 {
        if self.transport.eq_ignore_ascii_case("TLS") {
            5061
        } else {
            5060
        }
    }
}

/// A name-addr or addr-spec with header parameters: the shape of From, To, Contact, Route,
/// Record-Route, Refer-To (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, as written (quoted or a run of tokens); see [`NameAddr::display_name`].
    pub display: Option<&'a str>,
    /// The URI text, without angle brackets.
    pub uri_str: &'a str,
    /// The parsed URI.
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q`, `+sip.instance`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses a name-addr (`"Alice" <sip:a@b>;tag=1`) or an addr-spec (`sip:a@b;tag=1`, in which
    /// case parameters after the URI belong to the header, RFC 3261 §20).
    pub fn parse(s: &'a str) -> Option<NameAddr<'a>> {
        let s = s.trim();
        let (display, uri_str, rest) = if let Some(after) = s.strip_prefix('"') {
            let end = closing_quote(after)?;
            let display = &s[..end + 2];
            let rest = after[end + 1..].trim_start();
            let inner = rest.strip_prefix('<')?;
            let close = inner.find('>')?;
            (Some(display), &inner[..close], &inner[close + 1..])
        } else if let Some(lt) = s.find('<') {
            let display = s[..lt].trim();
            if !display.split_ascii_whitespace().all(is_token) {
                return None;
            }
            let inner = &s[lt + 1..];
            let close = inner.find('>')?;
            ((!display.is_empty()).then_some(display), &inner[..close], &inner[close + 1..])
        } else {
            match s.find(';') {
                Some(i) => (None, &s[..i], &s[i..]),
                None => (None, s, ""),
            }
        };
        let uri_str = uri_str.trim();
        let uri = Uri::parse(uri_str)?;
        let rest = rest.trim();
        if !rest.is_empty() && !rest.starts_with(';') {
            return None;
        }
        let params = Params::new(rest);
        if params.iter().any(|(n, _)| !is_token(n)) {
            return None;
        }
        Some(NameAddr { display, uri_str, uri, params })
    }

    /// The display name without quotes and escapes.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(unquote)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

fn closing_quote(after_open: &str) -> Option<usize> {
    let b = after_open.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// One Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings; only with `Expires: 0`).
    Star,
    /// An address with its parameters.
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact value.
    pub fn parse(s: &'a str) -> Option<Contact<'a>> {
        if s.trim() == "*" {
            return Some(Contact::Star);
        }
        NameAddr::parse(s).map(Contact::Addr)
    }

    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `expires` parameter, when present and numeric.
    pub fn expires(&self) -> Option<u32> {
        self.addr()?.params.get("expires").flatten().and_then(parse_u32)
    }

    /// The `+sip.instance` parameter (RFC 5626), without quotes and angle brackets.
    pub fn instance(&self) -> Option<Cow<'a, str>> {
        let v = self.addr()?.params.value("+sip.instance")?;
        Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_start_matches('<').trim_end_matches('>')),
            Cow::Owned(o) => Cow::Owned(o.trim_start_matches('<').trim_end_matches('>').to_owned()),
        })
    }

    /// The `reg-id` parameter (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        self.addr()?.params.get("reg-id").flatten().and_then(parse_u32)
    }

    /// The `q` parameter in thousandths (`q=0.5` is 500), when present and valid.
    pub fn q(&self) -> Option<u16> {
        let v = self.addr()?.params.get("q").flatten()?;
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let i = match int {
            "0" => 0,
            "1" => 1000,
            _ => return None,
        };
        let mut f = 0u16;
        for (k, d) in frac.bytes().enumerate() {
            f += u16::from(d - b'0') * [100, 10, 1][k];
        }
        (i + f <= 1000).then_some(i + f)
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (below 2^31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1234 INVITE`.
    pub fn parse(s: &str) -> Option<CSeq> {
        let mut it = s.split_ascii_whitespace();
        let seq = parse_u32(it.next()?)?;
        let method = it.next()?;
        if it.next().is_some() || seq >= 1 << 31 || !is_token(method) {
            return None;
        }
        Some(CSeq { seq, method: Method::parse(method) })
    }
}

/// Which side refreshes a session (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The UAC of the refreshing transaction.
    Uac,
    /// The UAS of the refreshing transaction.
    Uas,
}

impl Refresher {
    /// `uac` or `uas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// The Session-Expires header (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The interval, in seconds.
    pub interval: u32,
    /// The refresher, when named.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses `1800;refresher=uac`.
    pub fn parse(s: &str) -> Option<SessionExpires> {
        let (num, params) = match s.find(';') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let interval = parse_u32(num.trim())?;
        let refresher = match Params::new(params).get("refresher") {
            None => None,
            Some(Some(v)) if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(v)) if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return None,
        };
        Some(SessionExpires { interval, refresher })
    }
}

/// A decimal number that fits in a `u32`.
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'))
}

/// Splits a header value holding a comma-separated list (Via, Contact, Route, Supported, ...),
/// ignoring commas inside quotes and angle brackets, trimming and skipping empty elements.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    split_outside_quotes(s, b',').map(str::trim).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_tolerates_whitespace_and_ipv6() {
        let v = Via::parse("SIP  /   2.0 /UDP  [2001:db8::1]:5070 ; branch = z9hG4bKabc ;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.rport(), Some(None));
        assert!(v.has_magic_cookie());
        let v = Via::parse("SIP/2.0/TCP host;received=1.2.3.4;rport=999").unwrap();
        assert_eq!(v.received(), Some("1.2.3.4"));
        assert_eq!(v.rport(), Some(Some(999)));
        assert_eq!(v.default_port(), 5060);
        assert!(Via::parse("SIP/2.0/UDP").is_none());
        assert!(Via::parse("SIP/3.0/UDP host").is_none());
        assert!(Via::parse("SIP/2.0/UDP host;branch=\"x\"").is_none());
    }

    #[test]
    fn name_addr_shapes() {
        let n = NameAddr::parse("\"Alice \\\"A\\\"\" <sip:alice@example.com>;tag=88").unwrap();
        assert_eq!(n.display_name().unwrap(), "Alice \"A\"");
        assert_eq!(n.tag(), Some("88"));
        let n = NameAddr::parse("Bob Smith <tel:+1555>").unwrap();
        assert_eq!(n.display, Some("Bob Smith"));
        assert_eq!(n.uri.user().unwrap(), "+1555");
        let n = NameAddr::parse("sip:carol@x;tag=5").unwrap();
        assert_eq!(n.uri_str, "sip:carol@x");
        assert_eq!(n.tag(), Some("5"));
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_none());
        assert!(NameAddr::parse("<sip:a@b").is_none());
        assert!(NameAddr::parse("Bad@Name <sip:a@b>").is_none());
    }

    #[test]
    fn contact_params() {
        let c = Contact::parse("<sip:a@10.0.0.1;ob>;expires=60;q=0.5;+sip.instance=\"<urn:uuid:1234>\";reg-id=1").unwrap();
        assert_eq!(c.expires(), Some(60));
        assert_eq!(c.q(), Some(500));
        assert_eq!(c.instance().unwrap(), "urn:uuid:1234");
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(Contact::parse(" * "), Some(Contact::Star));
    }

    #[test]
    fn cseq_and_session_expires() {
        assert_eq!(CSeq::parse("42  INVITE").unwrap().seq, 42);
        assert!(CSeq::parse("4294967296 INVITE").is_none());
        assert!(CSeq::parse("2147483648 INVITE").is_none());
        assert!(CSeq::parse("-1 INVITE").is_none());
        assert!(CSeq::parse("1").is_none());
        let se = SessionExpires::parse("1800;refresher=uas").unwrap();
        assert_eq!((se.interval, se.refresher), (1800, Some(Refresher::Uas)));
        assert!(SessionExpires::parse("x").is_none());
    }
}
