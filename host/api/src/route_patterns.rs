//! The dialled-number patterns of an outbound route, parsed to check them (a malformed one is
//! a 422 naming it) and to tell when one route's pattern can never be reached because an
//! earlier route takes every number it matches.
//!
//! A pattern is one of:
//! - a **prefix** of `0-9 + * #` (1 to 32): every number starting with it (`9`, `1800`, `+44`);
//! - an **Asterisk pattern**, `_` then elements (at most 64 characters in all): a digit,
//!   `+`, `*` or `#` matches itself, `X` any digit, `Z` 1-9, `N` 2-9, `[...]` one of a set
//!   of those characters and ranges of digits (`[2-5]`, `[13-6#]`), `.` one or more of
//!   anything and `!` zero or more (each only last); `x`, `z` and `n` are read as upper case;
//! - a **regular expression** starting with `^` (at most 256 characters, the `regex` crate's
//!   syntax), which must compile within [`REGEX_SIZE_LIMIT`].

/// The most a route's regular expression may take once compiled (bytes): enough for any
/// pattern of digits, far below what would let one route hold memory or time per call.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

pub const MAX_PREFIX: usize = 32;
pub const MAX_ASTERISK: usize = 64;
pub const MAX_REGEX: usize = 256;

/// One position of an Asterisk pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    /// One of these characters (a literal is a set of one), sorted.
    Set(Vec<u8>),
    /// `.`: one or more of anything.
    OneOrMore,
    /// `!`: zero or more of anything.
    ZeroOrMore,
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Prefix(String),
    Asterisk(Vec<Elem>),
    Regex,
}

fn is_dial_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#')
}

/// The pattern as stored: trimmed, and an Asterisk pattern's letters in upper case.
pub fn normalise(s: &str) -> String {
    let s = s.trim();
    if s.starts_with('_') {
        s.to_ascii_uppercase()
    } else {
        s.to_owned()
    }
}

/// Parses a (normalised) pattern; the error says what is wrong, in words.
pub fn parse(s: &str) -> Result<Pattern, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(body) = s.strip_prefix('_') {
        return asterisk(body).map(Pattern::Asterisk);
    }
    if s.starts_with('^') {
        return regex(s).map(|()| Pattern::Regex);
    }
    if s.len() <= MAX_PREFIX && s.bytes().all(is_dial_char) {
        return Ok(Pattern::Prefix(s.to_owned()));
    }
    Err(format!("must be a prefix of digits, +, * and # (at most {MAX_PREFIX}), an Asterisk pattern starting with _ or a regular expression starting with ^"))
}

fn asterisk(body: &str) -> Result<Vec<Elem>, String> {
    if body.len() + 1 > MAX_ASTERISK {
        return Err(format!("an Asterisk pattern is at most {MAX_ASTERISK} characters"));
    }
    if body.is_empty() {
        return Err("_ must be followed by the pattern (such as _NXXXXXX)".into());
    }
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // positions are 1-based in the whole pattern, counting the leading _
    let pos = |i: usize| i + 2;
    while i < b.len() {
        let c = b[i];
        match c {
            b'X' => out.push(Elem::Set((b'0'..=b'9').collect())),
            b'Z' => out.push(Elem::Set((b'1'..=b'9').collect())),
            b'N' => out.push(Elem::Set((b'2'..=b'9').collect())),
            b'.' | b'!' => {
                if i + 1 != b.len() {
                    return Err(format!("'{}' (at {}) must be the last character", c as char, pos(i)));
                }
                out.push(if c == b'.' { Elem::OneOrMore } else { Elem::ZeroOrMore });
            }
            b'[' => {
                let start = i;
                let Some(len) = b[i + 1..].iter().position(|&x| x == b']') else {
                    return Err(format!("'[' (at {}) is not closed", pos(start)));
                };
                let inner = &b[i + 1..i + 1 + len];
                out.push(Elem::Set(set(inner, pos(start))?));
                i += len + 1;
            }
            b']' => return Err(format!("']' (at {}) closes no '['", pos(i))),
            b'-' => return Err(format!("'-' (at {}) is only for a range inside [ ]", pos(i))),
            _ if is_dial_char(c) => out.push(Elem::Set(vec![c])),
            _ => {
                let ch = body[i..].chars().next().unwrap_or('?');
                return Err(format!("'{ch}' (at {}) is not part of an Asterisk pattern (0-9 X Z N [ ] - . ! + * #)", pos(i)));
            }
        }
        i += 1;
    }
    Ok(out)
}

/// The characters of a `[...]` set (without the brackets); `at` is where its `[` is.
fn set(inner: &[u8], at: usize) -> Result<Vec<u8>, String> {
    if inner.is_empty() {
        return Err(format!("'[]' (at {at}) is empty"));
    }
    let mut chars = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c == b'[' {
            return Err(format!("'[' (at {at}) is not closed before another '['"));
        }
        if inner.get(i + 1) == Some(&b'-') {
            let Some(&hi) = inner.get(i + 2) else {
                return Err(format!("the range in '[' (at {at}) has no end"));
            };
            if !c.is_ascii_digit() || !hi.is_ascii_digit() {
                return Err(format!("a range in '[' (at {at}) must be between digits"));
            }
            if hi < c {
                return Err(format!("the range {}-{} in '[' (at {at}) goes backwards", c as char, hi as char));
            }
            chars.extend(c..=hi);
            i += 3;
            continue;
        }
        if c == b'-' {
            return Err(format!("a range in '[' (at {at}) has no start"));
        }
        if !is_dial_char(c) {
            let ch = String::from_utf8_lossy(&inner[i..]).chars().next().unwrap_or('?');
            return Err(format!("'{ch}' in '[' (at {at}) is not a digit, +, * or #"));
        }
        chars.push(c);
        i += 1;
    }
    chars.sort_unstable();
    chars.dedup();
    Ok(chars)
}

fn regex(s: &str) -> Result<(), String> {
    if s.len() > MAX_REGEX {
        return Err(format!("a regular expression is at most {MAX_REGEX} characters"));
    }
    match regex::RegexBuilder::new(s).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_SIZE_LIMIT).build() {
        Ok(_) => Ok(()),
        Err(regex::Error::CompiledTooBig(_)) => Err(format!("the regular expression is too large (over {} KiB compiled)", REGEX_SIZE_LIMIT / 1024)),
        Err(regex::Error::Syntax(msg)) => {
            // the crate's message draws the pattern with a caret; its last line says what
            let what = msg.lines().rev().find_map(|l| l.strip_prefix("error: ")).unwrap_or("malformed");
            Err(format!("is not a valid regular expression: {what}"))
        }
        Err(e) => Err(format!("is not a valid regular expression: {e}")),
    }
}

/// Does every number `p` matches start with the literal prefix `q`? (So a route with the
/// prefix `q` before one with `p` takes all of `p`'s calls.) Regular expressions are never
/// said to be covered: telling would need more than a glance.
pub fn covered_by_prefix(p: &Pattern, q: &str) -> bool {
    match p {
        Pattern::Prefix(s) => s.starts_with(q),
        Pattern::Asterisk(elems) => q.len() <= elems.len() && q.bytes().zip(elems).all(|(c, e)| matches!(e, Elem::Set(s) if s.as_slice() == [c])),
        Pattern::Regex => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse(&normalise(s)).expect_err(s)
    }

    #[test]
    fn accepts_the_three_kinds() {
        assert_eq!(parse("9").unwrap(), Pattern::Prefix("9".into()));
        assert_eq!(parse("+44").unwrap(), Pattern::Prefix("+44".into()));
        assert!(matches!(parse("*#06#").unwrap(), Pattern::Prefix(_)));
        let p = parse(&normalise(" _nxx[2-4]x.")).unwrap();
        let Pattern::Asterisk(e) = p else { panic!() };
        assert_eq!(e.len(), 6);
        assert_eq!(e[0], Elem::Set((b'2'..=b'9').collect()));
        assert_eq!(e[3], Elem::Set(vec![b'2', b'3', b'4']));
        assert_eq!(e[5], Elem::OneOrMore);
        assert_eq!(parse("_[13-5#+]!").unwrap(), Pattern::Asterisk(vec![Elem::Set(b"#+1345".to_vec()), Elem::ZeroOrMore]));
        assert_eq!(parse("_0[2-9]XXXXXXXX").map(|p| matches!(p, Pattern::Asterisk(ref e) if e.len() == 10)), Ok(true));
        assert_eq!(parse(r"^\+61[0-9]{9}$").unwrap(), Pattern::Regex);
        assert_eq!(parse(r"^\d{10}$").unwrap(), Pattern::Regex, "a Unicode class still fits the size limit");
    }

    #[test]
    fn refuses_malformed_ones_saying_why() {
        assert!(err("").contains("empty"));
        assert!(err("9a").contains("prefix"));
        assert!(err(&"1".repeat(33)).contains("prefix"));
        assert!(err("_").contains("followed"));
        assert!(err("_9[2-5").contains("not closed"));
        assert!(err("_9]").contains("closes no"));
        assert!(err("_9[]").contains("empty"));
        assert!(err("_9[5-3]").contains("backwards"));
        assert!(err("_9[a-c]").contains("between digits"));
        assert!(err("_9[2-]").contains("no end"));
        assert!(err("_9[-2]").contains("no start"));
        assert!(err("_9[1[2]]").contains("another"));
        assert!(err("_9.X").contains("last"));
        assert!(err("_9!X").contains("last"));
        assert!(err("_NXX-XXXX").contains("range"));
        assert!(err("_9Y").contains("'Y' (at 3)"));
        assert!(err("_9é").contains("'é' (at 3)"));
        assert!(err(&format!("_{}", "X".repeat(64))).contains("at most"));
        assert!(err("^(0").contains("unclosed group"), "{}", err("^(0"));
        assert!(err("^[9-0]").contains("not a valid"));
        assert!(err(&format!("^{}", "9".repeat(300))).contains("at most"));
        assert!(err("^(((([0-9]{100}){100}){100}){100})").contains("too large"));
    }

    #[test]
    fn prefixes_cover_what_starts_with_them() {
        let cov = |p: &str, q: &str| covered_by_prefix(&parse(p).unwrap(), q);
        assert!(cov("9", "9") && cov("90", "9") && !cov("9", "90"));
        assert!(cov("_9NXX", "9") && cov("_0011.", "0011") && !cov("_X11", "0") && !cov("_[01]1", "0"));
        assert!(cov("_[0]1", "01"), "a set of one is a literal");
        assert!(!cov("_0!", "00") && !cov("_0.", "00"), "a wildcard may be anything");
        assert!(!cov(r"^9", "9"), "regular expressions are not looked into");
    }
}
