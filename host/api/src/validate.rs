//! Field validation: collect every problem, then answer one 422 naming each field.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ApiError, FieldError};

/// Collects field errors.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// Ok when nothing was added, else the 422.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }

    pub fn non_empty(&mut self, field: &str, v: &str, max: usize) {
        if v.trim().is_empty() {
            self.add(field, "must not be empty");
        } else if v.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    pub fn opt_len(&mut self, field: &str, v: &Option<String>, max: usize) {
        if let Some(v) = v
            && v.chars().count() > max
        {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    pub fn range(&mut self, field: &str, v: i64, lo: i64, hi: i64) {
        if !(lo..=hi).contains(&v) {
            self.add(field, format!("must be between {lo} and {hi}"));
        }
    }
}

/// Dialable internal numbers: 2 to 6 digits.
pub fn is_internal_number(s: &str) -> bool {
    (2..=6).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// E.164: "+", a non-zero digit, at most 15 digits in all.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

/// A number to dial out: optional "+", then 2 to 20 digits (also "*" and "#").
pub fn is_dial_string(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (2..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// A SIP user part we accept for usernames: letters, digits, . _ - (1 to 64).
pub fn is_sip_username(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A short sanity check of an e-mail address (something@domain.tld, no spaces).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
}

pub use pbx::settings::{is_host, is_hostname};

/// A trunk's remote host as the API takes it: an IP address (a network of one) or a CIDR
/// block ("203.0.113.0/24", "2001:db8::/32"; host bits are allowed and ignored when
/// matching). Parsed once here; it is stored as its [`Display`](std::fmt::Display) text,
/// which the SIP directory reads back strictly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteHost {
    Address(IpAddr),
    Block(IpNet),
}

impl RemoteHost {
    /// `None` for anything else (a name, a prefix too long for the family, spaces).
    pub fn parse(s: &str) -> Option<RemoteHost> {
        if s.contains('/') {
            s.parse::<IpNet>().ok().map(RemoteHost::Block)
        } else {
            s.parse::<IpAddr>().ok().map(RemoteHost::Address)
        }
    }

    /// The network it covers.
    pub fn network(self) -> IpNet {
        match self {
            RemoteHost::Address(a) => IpNet::from(a),
            RemoteHost::Block(n) => n.trunc(),
        }
    }
}

impl std::fmt::Display for RemoteHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteHost::Address(a) => a.fmt(f),
            RemoteHost::Block(n) => n.fmt(f),
        }
    }
}

/// A caller id number to present: an optional "+", then 1 to 32 digits, "*" or "#".
pub fn is_caller_id_num(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    (1..=32).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
}

/// A caller id name to present: at most 64 characters, none a control character.
pub fn is_caller_id_name(s: &str) -> bool {
    s.chars().count() <= 64 && !s.chars().any(char::is_control)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok_and(|p| p > 0)
}

/// `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1-65535.
pub fn is_host_port(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else { return false };
        return ip.parse::<std::net::Ipv6Addr>().is_ok() && (after.is_empty() || after.strip_prefix(':').is_some_and(is_port));
    }
    match s.split_once(':') {
        None => is_host(s),
        Some((h, p)) => is_host(h) && is_port(p),
    }
}

/// A SIP or SIPS URI naming a host: `sip:[user@]host[:port][;param[=value]]...` (no headers).
pub fn is_sip_uri(s: &str) -> bool {
    let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("sip:") {
        &s[4..]
    } else if lower == "sips:" {
        &s[5..]
    } else {
        return false;
    };
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'%+".contains(&b));
    let (hostport, params) = match rest.rsplit_once('@') {
        Some((user, after)) => {
            if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/".contains(&b)) {
                return false;
            }
            after.split_once(';').map_or((after, None), |(h, p)| (h, Some(p)))
        }
        None => rest.split_once(';').map_or((rest, None), |(h, p)| (h, Some(p))),
    };
    is_host_port(hostport)
        && params.is_none_or(|p| {
            p.split(';').all(|kv| match kv.split_once('=') {
                Some((k, v)) => token(k) && token(v),
                None => token(kv),
            })
        })
}

/// An IANA time-zone name known to the bundled tz database.
pub fn is_iana_timezone(s: &str) -> bool {
    !s.is_empty() && jiff::tz::TimeZone::get(s).is_ok()
}

/// "HH:MM", 00:00 to 23:59 (24:00 accepted as end of day).
pub fn is_hhmm(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || !b.iter().enumerate().all(|(i, c)| i == 2 || c.is_ascii_digit()) {
        return false;
    }
    let h = (b[0] - b'0') * 10 + (b[1] - b'0');
    let m = (b[3] - b'0') * 10 + (b[4] - b'0');
    (h < 24 && m < 60) || (h == 24 && m == 0)
}

/// "YYYY-MM-DD", a real date.
pub fn is_date(s: &str) -> bool {
    s.len() == 10 && time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
}

/// A prompt or file name we store: letters, digits, _ and -, 1 to 64.
pub fn is_prompt_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Parses a graph once, into the flow engine's [`Graph`](flow::graph::Graph): a shape error names its field
/// (`flow_data.nodes[0].id`). `None` (with the problem added) when it does not parse.
pub(crate) fn parse_graph(e: &mut Errors, g: &serde_json::Value) -> Option<flow::graph::Graph> {
    match serde_path_to_error::deserialize::<_, flow::graph::Graph>(g) {
        Ok(graph) => Some(graph),
        Err(err) => {
            let fe = crate::extract::path_error(err.path(), &err.inner().to_string());
            let field = if fe.field == "body" { "flow_data".to_owned() } else { format!("flow_data.{}", fe.field) };
            e.add(field, fe.message);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_internal_number("10") && is_internal_number("123456"));
        assert!(!is_internal_number("1") && !is_internal_number("1234567") && !is_internal_number("1a"));
        assert!(is_e164("+61299990000") && !is_e164("0299990000") && !is_e164("+0123") && !is_e164("+1234567890123456"));
        assert!(is_iana_timezone("Australia/Sydney") && is_iana_timezone("UTC") && !is_iana_timezone("Mars/Base"));
        assert!(is_hhmm("08:30") && is_hhmm("24:00") && !is_hhmm("24:01") && !is_hhmm("8:30"));
        assert!(is_date("2026-12-25") && !is_date("2026-02-30"));
        for ok in ["203.0.113.0/24", "198.51.100.7", "::1", "2001:db8::/32", "10.1.2.3/8"] {
            let h = RemoteHost::parse(ok).unwrap_or_else(|| panic!("{ok}"));
            assert_eq!(h.to_string(), ok, "stored as written");
            assert_eq!(RemoteHost::parse(&h.to_string()), Some(h));
        }
        assert_eq!(RemoteHost::parse("10.1.2.3/8").map(RemoteHost::network), "10.0.0.0/8".parse().ok());
        assert_eq!(RemoteHost::parse("198.51.100.7").map(RemoteHost::network), "198.51.100.7/32".parse().ok());
        for bad in ["1.2.3.4/33", "::1/129", "sip.example.com", " 1.2.3.4", "1.2.3.4/", "/8", ""] {
            assert_eq!(RemoteHost::parse(bad), None, "{bad:?}");
        }
        assert!(is_email("a@b.co") && !is_email("a@b") && !is_email("a b@c.de"));
        assert!(is_host("sip.example.com") && is_host("10.0.0.1") && !is_host("-bad-.com"));
        assert!(is_caller_id_num("+61290000001") && is_caller_id_num("*") && is_caller_id_num(&"9".repeat(32)));
        assert!(!is_caller_id_num("") && !is_caller_id_num("+") && !is_caller_id_num(&"9".repeat(33)) && !is_caller_id_num("12 34"));
        assert!(is_caller_id_name("Acme Pty Ltd") && is_caller_id_name("") && !is_caller_id_name("a\u{7}b") && !is_caller_id_name(&"n".repeat(65)));
        for ok in ["proxy.example.com", "proxy.example.com:5070", "10.0.0.1:5060", "[2001:db8::1]:5060", "[::1]"] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in ["", "proxy:0", "proxy:65536", "proxy:50x", "2001:db8::1", "[::1]:", "[nope]:5060", "a b", "host:5060:1"] {
            assert!(!is_host_port(bad), "{bad}");
        }
        for ok in ["sip:proxy.example.com", "SIP:proxy.example.com:5070;lr", "sips:[::1]:5061;transport=tcp", "sip:user@10.0.0.1;lr;maddr=10.0.0.2"] {
            assert!(is_sip_uri(ok), "{ok}");
        }
        for bad in ["sip:", "http://proxy", "sip:proxy;", "sip:proxy?x=1", "sip:@proxy", "sip:proxy;a=b c", "sip:pro xy"] {
            assert!(!is_sip_uri(bad), "{bad}");
        }
    }

    #[test]
    fn a_graph_is_parsed_once_and_a_bad_shape_names_its_field() {
        let fields = |v: serde_json::Value| {
            let mut e = Errors::new();
            let g = parse_graph(&mut e, &v);
            (g.is_some(), e.0.into_iter().map(|f| f.field).collect::<Vec<_>>())
        };
        assert_eq!(fields(serde_json::json!({"nodes": [{"id": "a", "type": "hangup", "data": {"entity_id": "7"}}], "edges": []})), (true, vec![]));
        assert_eq!(fields(serde_json::json!([])), (false, vec!["flow_data".to_string()]));
        assert_eq!(fields(serde_json::json!({"nodes": "no"})), (false, vec!["flow_data.nodes".to_string()]));
        assert_eq!(fields(serde_json::json!({"nodes": [{"id": 1, "type": "x"}]})), (false, vec!["flow_data.nodes[0].id".to_string()]));
        assert_eq!(fields(serde_json::json!({"nodes": [{"id": "a"}]})), (false, vec!["flow_data.nodes[0].type".to_string()]));
        assert_eq!(
            fields(serde_json::json!({"nodes": [{"id": "a", "type": "x", "data": {"entity_id": "x1"}}]})),
            (false, vec!["flow_data.nodes[0].data.entity_id".to_string()])
        );
        assert_eq!(fields(serde_json::json!({"edges": [{"id": "e", "source": "a"}]})), (false, vec!["flow_data.edges[0].target".to_string()]));
    }
}
