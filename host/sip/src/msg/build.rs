//! Building header values from data we do not control (caller numbers and names from trunks
//! and plugins, user parts, display names): every value written into a message goes through
//! [`check_value`] (no CR, LF or NUL: a line break would start a header of the sender's
//! choosing), user parts are escaped per RFC 3261 §25, display names are quoted with their
//! quotes and backslashes escaped and their control characters dropped.

use std::borrow::Cow;
use std::fmt::Write;

/// A header value (or Request-URI, or Content-Type) refused because it holds CR, LF or NUL:
/// written out, it would end the header line and start one of the sender's choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a header value may not contain CR, LF or NUL")]
pub struct HeaderInjection;

/// Refuses a value holding CR, LF or NUL.
pub fn check_value(v: &str) -> Result<(), HeaderInjection> {
    if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(HeaderInjection)
    } else {
        Ok(())
    }
}

/// Whether `c` may stand unescaped in a user part (RFC 3261 §25: `unreserved` and
/// `user-unreserved`).
fn user_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&c)
}

/// Escapes a user part for a SIP URI (RFC 3261 §25, §19.1.2): everything but `unreserved`
/// and `user-unreserved` becomes `%XX`, so `@`, `:`, `>`, spaces and control characters can
/// never end the user part or the header.
pub fn escape_user(user: &str) -> Cow<'_, str> {
    if user.bytes().all(user_char) {
        return Cow::Borrowed(user);
    }
    let mut out = String::with_capacity(user.len() + 8);
    for b in user.bytes() {
        if user_char(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// A display name as a quoted-string (RFC 3261 §25 `quoted-string`): `"` and `\` escaped,
/// control characters (CR, LF and NUL among them, which no quoted-string may hold) dropped.
pub fn quote_display(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c.is_control() && c != '\t' {
            continue;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A `sip:` URI from its parts: the user escaped, the host checked to be a host (a name, an
/// IPv4 address or a bracketed IPv6 address, optionally with a port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUriBuilder<'a> {
    user: Option<&'a str>,
    hostport: &'a str,
    params: Vec<(&'static str, Option<&'a str>)>,
}

impl<'a> SipUriBuilder<'a> {
    /// A URI for `hostport` (`host`, `host:port`, `[v6]:port`).
    pub fn new(hostport: &'a str) -> SipUriBuilder<'a> {
        SipUriBuilder { user: None, hostport, params: Vec::new() }
    }

    /// With a user part (escaped when built).
    pub fn user(mut self, user: &'a str) -> Self {
        self.user = Some(user);
        self
    }

    /// With a URI parameter (`;name` or `;name=value`; the value must be a token).
    pub fn param(mut self, name: &'static str, value: Option<&'a str>) -> Self {
        self.params.push((name, value));
        self
    }

    /// The URI text, or `None` when the host is not a host or a parameter value not a token.
    pub fn build(&self) -> Option<String> {
        super::uri::parse_hostport(self.hostport)?;
        if self.params.iter().any(|(_, v)| v.is_some_and(|v| !super::is_token(v))) {
            return None;
        }
        let mut s = String::with_capacity(16 + self.hostport.len());
        s.push_str("sip:");
        if let Some(u) = self.user.filter(|u| !u.is_empty()) {
            s.push_str(&escape_user(u));
            s.push('@');
        }
        s.push_str(self.hostport);
        for (n, v) in &self.params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        Some(s)
    }
}

/// A name-addr (`"Display" <uri>;tag=...`) from a display name we may not trust, a URI we
/// built and an optional tag (a token).
pub fn name_addr(display: Option<&str>, uri: &str, tag: Option<&str>) -> String {
    let mut s = String::with_capacity(uri.len() + 32);
    if let Some(d) = display.filter(|d| !d.trim().is_empty()) {
        s.push_str(&quote_display(d));
        s.push(' ');
    }
    s.push('<');
    s.push_str(uri);
    s.push('>');
    if let Some(t) = tag {
        s.push_str(";tag=");
        s.push_str(t);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{HeaderName, Message, Method};

    #[test]
    fn values_with_line_breaks_or_nul_are_refused() {
        for bad in ["a\r\nVia: x", "a\nb", "a\rb", "a\0b"] {
            assert_eq!(check_value(bad), Err(HeaderInjection), "{bad:?}");
        }
        assert!(check_value("Alice <sip:a@b>;tag=1").is_ok());
        let mut m = Message::request(Method::Options, "sip:a@b").unwrap();
        assert!(m.push_header(HeaderName::Subject, "hi\r\nContact: <sip:evil@x>").is_err());
        assert!(m.set_header(HeaderName::Subject, "x\0").is_err());
        assert!(m.prepend_header(HeaderName::Via, "SIP/2.0/UDP a\nX: y").is_err());
        assert!(m.push_header_named("X-Evil\r\nA", "b").is_err());
        assert!(m.push_header_named("X-Ok", "b\n").is_err());
        assert!(m.set_body(Some("application/sdp\r\nX: y"), bytes::Bytes::new()).is_err());
        assert!(Message::request(Method::Invite, "sip:a@b\r\nX: y").is_err());
        assert!(Message::request(Method::Invite, "sip:a@b c").is_err());
        m.push_header(HeaderName::Subject, "fine").unwrap();
        let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        assert!(!text.contains("evil") && !text.contains("X-Evil") && text.contains("Subject: fine"), "{text}");
        // a reason phrase cannot carry a line break either
        let r = Message::response(200, "OK\r\nX-Injected: 1");
        assert!(!String::from_utf8_lossy(&r.to_bytes()).contains("\r\nX-Injected"));
    }

    #[test]
    fn dialog_answers_keep_the_record_route() {
        let req = Message::parse(
            b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP p2;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP p1;branch=z9hG4bK1\r\n\
              Record-Route: <sip:p2;lr>\r\nRecord-Route: <sip:p1;lr>\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
              Contact: <sip:c@d>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        for code in [180, 200] {
            let r = Message::response_to(&req, code, None, Some("t"));
            assert_eq!(r.headers(HeaderName::RecordRoute).collect::<Vec<_>>(), vec!["<sip:p2;lr>", "<sip:p1;lr>"], "{code}");
        }
        for code in [100, 486] {
            assert_eq!(Message::response_to(&req, code, None, Some("t")).headers(HeaderName::RecordRoute).count(), 0, "{code}");
        }
    }

    #[test]
    fn user_parts_are_escaped() {
        assert_eq!(escape_user("+15551234567"), "+15551234567");
        assert_eq!(escape_user("alice;x=1?y"), "alice;x=1?y");
        assert_eq!(escape_user("a@b:c>d e"), "a%40b%3Ac%3Ed%20e");
        assert_eq!(escape_user("x\r\nVia: y"), "x%0D%0AVia%3A%20y");
        assert_eq!(escape_user("é"), "%C3%A9");
        let uri = SipUriBuilder::new("pbx.example.com:5060").user("1 0>1@x").build().unwrap();
        assert_eq!(uri, "sip:1%200%3E1%40x@pbx.example.com:5060");
        assert!(crate::msg::Uri::parse(&uri).is_some());
        assert!(SipUriBuilder::new("bad host").build().is_none());
        assert!(SipUriBuilder::new("h").param("transport", Some("tcp>")).build().is_none());
        assert_eq!(SipUriBuilder::new("[2001:db8::1]:5070").param("transport", Some("tcp")).build().unwrap(), "sip:[2001:db8::1]:5070;transport=tcp");
    }

    #[test]
    fn display_names_are_quoted_and_stripped() {
        assert_eq!(quote_display("Alice \"A\" \\ B"), "\"Alice \\\"A\\\" \\\\ B\"");
        assert_eq!(quote_display("Eve\r\nVia: x\0"), "\"EveVia: x\"");
        let na = name_addr(Some("Bob\"> <sip:evil@x>"), "sip:101@pbx", Some("t1"));
        assert_eq!(na, "\"Bob\\\"> <sip:evil@x>\" <sip:101@pbx>;tag=t1");
        let parsed = crate::msg::NameAddr::parse(&na).unwrap();
        assert_eq!(parsed.uri_str, "sip:101@pbx");
        assert_eq!(parsed.display_name().as_deref(), Some("Bob\"> <sip:evil@x>"));
        assert_eq!(name_addr(Some("  "), "sip:a@b", None), "<sip:a@b>");
    }
}
