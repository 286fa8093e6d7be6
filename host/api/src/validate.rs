//! Field validation: collect every problem, then answer one 422 naming each field.

use std::net::IpAddr;

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
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.0)) }
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

/// An IP address or CIDR block ("203.0.113.0/24", "2001:db8::/32").
pub fn is_ip_or_cidr(s: &str) -> bool {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
            (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
            (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
            _ => false,
        },
    }
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
        assert!(is_ip_or_cidr("203.0.113.0/24") && is_ip_or_cidr("::1") && !is_ip_or_cidr("1.2.3.4/33"));
        assert!(is_email("a@b.co") && !is_email("a@b") && !is_email("a b@c.de"));
        assert!(is_host("sip.example.com") && is_host("10.0.0.1") && !is_host("-bad-.com"));
    }
}
