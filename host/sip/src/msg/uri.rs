//! URIs (sip:, sips:, tel:, anything else kept raw), hosts, parameters and escaping.
//! Everything borrows from the message text: parsing allocates nothing.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A host: a domain name or an IP literal (`[2001:db8::1]` in text, without brackets here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, as written.
    Domain(&'a str),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl Host<'_> {
    /// Parses a host, IPv6 literals in brackets.
    pub fn parse(s: &str) -> Option<Host<'_>> {
        if s.is_empty() {
            return None;
        }
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']')?;
            return inner.parse::<Ipv6Addr>().ok().map(|a| Host::Ip(IpAddr::V6(a)));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && let Ok(a) = s.parse::<Ipv4Addr>()
        {
            return Some(Host::Ip(IpAddr::V4(a)));
        }
        let valid = s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        valid.then_some(Host::Domain(s))
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }

    /// Case-insensitive comparison of domains, exact comparison of addresses.
    pub fn same_as(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ip(a), Host::Ip(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets).
pub(crate) fn parse_hostport(s: &str) -> Option<(Host<'_>, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return None,
        };
        (&s[..=end], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Some((Host::parse(host)?, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// `;`-separated parameters, kept raw and read on demand. Names compare case-insensitively;
/// values are returned as written (quoted values with their quotes; see [`unquote`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(&'a str);

impl<'a> Params<'a> {
    /// Wraps raw parameter text, with or without the leading `;`.
    pub fn new(raw: &'a str) -> Self {
        Params(raw.trim().strip_prefix(';').unwrap_or(raw.trim()))
    }

    /// The raw text, without the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// Every `(name, value)` pair; a parameter without `=` has no value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_outside_quotes(self.0, b';').filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            Some(match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p, None),
            })
        })
    }

    /// `None` when absent, `Some(None)` when present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// The value of `name` with quotes removed (`None` if absent or valueless).
    pub fn value(&self, name: &str) -> Option<Cow<'a, str>> {
        self.get(name).flatten().map(unquote)
    }

    /// Whether `name` is present (with or without value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Splits on `sep` where it is outside double quotes (with `\` escapes) and angle brackets.
pub(crate) fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_q = false;
        let mut angle = 0u32;
        while i < bytes.len() {
            let b = bytes[i];
            if in_q {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    in_q = false;
                }
            } else if b == b'"' {
                in_q = true;
            } else if b == b'<' {
                angle += 1;
            } else if b == b'>' {
                angle = angle.saturating_sub(1);
            } else if b == sep && angle == 0 {
                let part = &s[start..i];
                i += 1;
                start = i;
                return Some(part);
            }
            i += 1;
        }
        done = true;
        Some(&s[start.min(s.len())..])
    })
}

/// Removes surrounding double quotes and `\` escapes; other text is returned as is.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Quotes `s` as a SIP quoted-string (control characters dropped: see
/// [`super::build::quote_display`]).
pub fn quote(s: &str) -> String {
    super::build::quote_display(s)
}

/// Decodes `%XX` escapes (RFC 3261 §19.1.2). Invalid escapes are kept as written; bytes that
/// do not form UTF-8 are replaced.
pub fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// The scheme of a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
}

impl Scheme {
    /// The scheme as written in a URI, without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// A `sip:`/`sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// Whether the scheme is `sips:`.
    pub secure: bool,
    /// The user part, still escaped (see [`unescape`]).
    pub user: Option<&'a str>,
    /// The password part (deprecated, but it occurs).
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `lr`, `maddr`, `user`, `ob`, ...).
    pub params: Params<'a>,
    /// The `?`-headers, raw and escaped, without the `?`.
    pub headers: Option<&'a str>,
}

impl SipUri<'_> {
    /// The `transport` parameter, if any.
    pub fn transport(&self) -> Option<&str> {
        self.params.get("transport").flatten()
    }

    /// Whether the `lr` parameter is present (a loose router, RFC 3261 §16.12).
    pub fn is_loose_router(&self) -> bool {
        self.params.has("lr")
    }

    /// The user part with escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'_, str>> {
        self.user.map(unescape)
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number, as written (`+15551234567`, `5551234;phone-context=...` has its context
    /// in `params`).
    pub number: &'a str,
    /// Parameters (`phone-context`, `ext`, ...).
    pub params: Params<'a>,
}

/// A URI as found in a Request-URI or a name-addr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`
    Sip(SipUri<'a>),
    /// `tel:`
    Tel(TelUri<'a>),
    /// Another scheme (`http:`, `urn:`, ...), kept raw.
    Other {
        /// The scheme, as written.
        scheme: &'a str,
        /// Everything after the colon.
        rest: &'a str,
    },
}

fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic()) && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

impl<'a> Uri<'a> {
    /// Parses a URI. Returns `None` on a syntax error (a sip: URI without a valid host, a
    /// scheme with invalid characters, whitespace, ...).
    pub fn parse(s: &'a str) -> Option<Uri<'a>> {
        if s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"') {
            return None;
        }
        let (scheme, rest) = s.split_once(':')?;
        if !valid_scheme(scheme) {
            return None;
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            Some(Uri::Sip(parse_sip(rest, scheme.len() == 4)?))
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match rest.find(';') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let ok = !number.is_empty() && number.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#'));
            ok.then(|| Uri::Tel(TelUri { number, params: Params::new(params) }))
        } else {
            if rest.is_empty() {
                return None;
            }
            Some(Uri::Other { scheme, rest })
        }
    }

    /// The scheme, `None` for other schemes.
    pub fn scheme(&self) -> Option<Scheme> {
        match self {
            Uri::Sip(u) if u.secure => Some(Scheme::Sips),
            Uri::Sip(_) => Some(Scheme::Sip),
            Uri::Tel(_) => Some(Scheme::Tel),
            Uri::Other { .. } => None,
        }
    }

    /// The SIP URI, when this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part (the number of a tel: URI), escapes decoded.
    pub fn user(&self) -> Option<Cow<'a, str>> {
        match self {
            Uri::Sip(u) => u.user.map(unescape),
            Uri::Tel(t) => Some(Cow::Borrowed(t.number)),
            Uri::Other { .. } => None,
        }
    }

    /// The host of a SIP URI.
    pub fn host(&self) -> Option<Host<'a>> {
        self.as_sip().map(|u| u.host)
    }
}

fn parse_sip(rest: &str, secure: bool) -> Option<SipUri<'_>> {
    let (userinfo, hostpart) = match rest.find('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            if u.is_empty() {
                return None;
            }
            (Some(u), p)
        }
        None => (None, None),
    };
    let (before_headers, headers) = match hostpart.split_once('?') {
        Some((a, h)) => (a, Some(h)),
        None => (hostpart, None),
    };
    let (hostport, params) = match before_headers.find(';') {
        Some(i) => (&before_headers[..i], &before_headers[i..]),
        None => (before_headers, ""),
    };
    let (host, port) = parse_hostport(hostport)?;
    Some(SipUri { secure, user, password, host, port, params: Params::new(params), headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:secret@example.com:5070;transport=tcp;lr?subject=hi").unwrap();
        let s = u.as_sip().unwrap();
        assert_eq!(s.user, Some("alice"));
        assert_eq!(s.password, Some("secret"));
        assert_eq!(s.host, Host::Domain("example.com"));
        assert_eq!(s.port, Some(5070));
        assert_eq!(s.transport(), Some("tcp"));
        assert!(s.is_loose_router());
        assert_eq!(s.headers, Some("subject=hi"));
    }

    #[test]
    fn ipv6_and_sips_and_tel() {
        let u = Uri::parse("sips:bob@[2001:db8::10]:5061").unwrap();
        assert_eq!(u.scheme(), Some(Scheme::Sips));
        assert_eq!(u.host().unwrap().ip(), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(u.as_sip().unwrap().port, Some(5061));
        let t = Uri::parse("tel:+1-555-123-4567;phone-context=example.com").unwrap();
        assert_eq!(t.user().unwrap(), "+1-555-123-4567");
        assert!(matches!(Uri::parse("http://x"), Some(Uri::Other { scheme: "http", .. })));
        assert!(Uri::parse("sip:[2001:db8::10").is_none());
        assert!(Uri::parse("sip:a b@c").is_none());
        assert!(Uri::parse("sip:alice@").is_none());
        assert!(Uri::parse("sip:host:99999").is_none());
    }

    #[test]
    fn escapes_and_quotes() {
        assert_eq!(unescape("al%20ice%00"), "al ice\0");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%4"), "%4");
        assert_eq!(unquote("\"A \\\"B\\\" C\""), "A \"B\" C");
        assert_eq!(quote("A \"B\""), "\"A \\\"B\\\"\"");
        let p = Params::new(";a=1; B = \"x;y\" ;c");
        assert_eq!(p.get("b"), Some(Some("\"x;y\"")));
        assert_eq!(p.value("b").unwrap(), "x;y");
        assert_eq!(p.get("c"), Some(None));
        assert_eq!(p.get("d"), None);
        let parts: Vec<_> = split_outside_quotes("<sip:a,b>, \"x,y\" <sip:c>,d", b',').collect();
        assert_eq!(parts, vec!["<sip:a,b>", " \"x,y\" <sip:c>", "d"]);
    }
}
