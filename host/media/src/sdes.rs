//! SDES (RFC 4568): SRTP master keys in SDP `a=crypto` attributes. Strings in, strings and
//! [`SrtpKeys`] out; nothing here knows SIP or SDP beyond the attribute's value.
//!
//! `a=crypto:<tag> <suite> inline:<base64 of key || salt>[|<lifetime>][|<MKI>:<length>] [<session params>]`
//!
//! What FlowPBX accepts of an endpoint's attribute: the three suites of [`SrtpSuite`] (others
//! are skipped: [`SdesError::UnknownSuite`]); one key, without MKI (FlowPBX sends and expects
//! no MKI field, so an MKI is refused rather than misread); a lifetime of at least
//! [`MIN_LIFETIME`] packets (FlowPBX does not re-key during a call, so a shorter one would cut
//! the audio; a longer one is enforced by the context); the session parameters `KDR=0`,
//! `WSH=<n>` (a hint) and `FEC_ORDER` (moot without FEC). Everything else (`UNENCRYPTED_*`,
//! `UNAUTHENTICATED_SRTP`, `KDR=<n>`, `FEC_KEY`, unknown ones) makes the attribute unusable.
//!
//! - Answering an offer: [`answer`] picks by FlowPBX's preference among the usable attributes
//!   and answers with a fresh key under the offer's tag.
//! - Offering: [`offer`] makes one attribute per suite with fresh keys; [`accept_answer`]
//!   matches the answer to the offered tag.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::srtp::{SrtpError, SrtpKey, SrtpKeys, SrtpSuite};

/// The shortest key lifetime accepted: 2^31 packets (over a year of 20 ms packets).
pub const MIN_LIFETIME: u64 = 1 << 31;

/// The longest lifetime a suite allows (RFC 3711 §9.2: 2^48 SRTP packets).
pub const MAX_LIFETIME: u64 = 1 << 48;

/// Standard base64 (RFC 4648 §4) that writes padding and reads it or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(true).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an `a=crypto` attribute is unusable, or no answer could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdesError {
    /// Not `<tag> <suite> <key params> [<session params>]`.
    #[error("malformed a=crypto: {0}")]
    Syntax(String),
    /// A suite FlowPBX does not implement (the attribute is skipped).
    #[error("unsupported crypto suite {0}")]
    UnknownSuite(String),
    /// The `inline:` key is not base64, or not the suite's length.
    #[error("bad inline key: {0}")]
    Key(String),
    /// An MKI: FlowPBX uses a single key without an MKI field.
    #[error("MKI {0} is not supported (FlowPBX uses one key without MKI)")]
    Mki(String),
    /// Several keys (only meaningful with MKI).
    #[error("several keys in one a=crypto are not supported")]
    SeveralKeys,
    /// A lifetime FlowPBX cannot honour: shorter than [`MIN_LIFETIME`] (it would expire
    /// during the call, and FlowPBX does not re-key) or longer than [`MAX_LIFETIME`].
    #[error("key lifetime {lifetime} packets is outside {MIN_LIFETIME}..={MAX_LIFETIME} (FlowPBX does not re-key during a call)")]
    Lifetime {
        /// The lifetime given.
        lifetime: u64,
    },
    /// A session parameter FlowPBX does not implement.
    #[error("unsupported session parameter {0}")]
    SessionParameter(String),
    /// The offer had no usable attribute; each one's reason.
    #[error("no usable a=crypto in the offer{}", reasons(.0))]
    NoUsableCrypto(Vec<SdesError>),
    /// The answer's tag is not one we offered.
    #[error("the answer's a=crypto tag {0} was not offered")]
    TagNotOffered(u32),
    /// The answer's suite is not the one offered under its tag.
    #[error("the answer's a=crypto tag {tag} has suite {answered}, the offer had {offered}")]
    SuiteMismatch {
        /// The tag.
        tag: u32,
        /// The suite offered under it.
        offered: SrtpSuite,
        /// The suite answered.
        answered: String,
    },
    /// Making a key failed (the OS random number generator).
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

fn reasons(list: &[SdesError]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = list.iter().map(|e| e.to_string()).collect();
    format!(": {}", parts.join("; "))
}

/// One `a=crypto` attribute: tag, suite (in the key) and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag (1 to 9 digits) that pairs offer and answer.
    pub tag: u32,
    /// The master key and salt, its suite and lifetime.
    pub key: SrtpKey,
}

impl CryptoAttribute {
    /// A fresh key for `suite` under `tag`, from the OS random number generator.
    pub fn generate(tag: u32, suite: SrtpSuite) -> Result<Self, SdesError> {
        Ok(CryptoAttribute { tag, key: SrtpKey::generate(suite)? })
    }

    /// The suite.
    pub fn suite(&self) -> SrtpSuite {
        self.key.suite()
    }

    /// Parses the attribute's value (`1 AES_CM_128_HMAC_SHA1_80 inline:…`); a leading
    /// `a=crypto:` or `crypto:` is skipped.
    pub fn parse(value: &str) -> Result<Self, SdesError> {
        let v = value.trim();
        let v = v.strip_prefix("a=").unwrap_or(v);
        let v = v.strip_prefix("crypto:").unwrap_or(v);
        let mut fields = v.split_ascii_whitespace();
        let (Some(tag), Some(suite), Some(key_params)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(SdesError::Syntax(format!("expected <tag> <suite> <key params>, got {value:?}")));
        };
        if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SdesError::Syntax(format!("tag {tag:?} is not 1 to 9 digits")));
        }
        let tag: u32 = tag.parse().map_err(|_| SdesError::Syntax(format!("tag {tag:?}")))?;
        let suite = SrtpSuite::from_name(suite).ok_or_else(|| SdesError::UnknownSuite(suite.to_string()))?;
        if key_params.contains(';') {
            return Err(SdesError::SeveralKeys);
        }
        let Some(inline) = key_params.get(..7).filter(|m| m.eq_ignore_ascii_case("inline:")).map(|_| &key_params[7..]) else {
            return Err(SdesError::Syntax(format!("key method of {key_params:?} is not inline")));
        };
        let mut parts = inline.split('|');
        let material = parts.next().unwrap_or_default();
        if let Some(mki) = parts.clone().find(|p| p.contains(':')) {
            return Err(SdesError::Mki(mki.to_string()));
        }
        let lifetime = parts.next().map(parse_lifetime).transpose()?;
        if let Some(extra) = parts.next() {
            return Err(SdesError::Syntax(format!("unexpected key parameter {extra:?}")));
        }
        let bytes = BASE64.decode(material).map_err(|e| SdesError::Key(format!("not base64: {e}")))?;
        let key = SrtpKey::new(suite, &bytes).map_err(|e| SdesError::Key(e.to_string()))?.with_lifetime(lifetime);
        for param in fields {
            check_session_parameter(param)?;
        }
        Ok(CryptoAttribute { tag, key })
    }
}

/// The attribute's value, as the SDP line `a=crypto:{value}` carries it.
impl std::fmt::Display for CryptoAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} inline:{}", self.tag, self.suite(), BASE64.encode(self.key.key_and_salt()))?;
        match self.key.lifetime() {
            Some(l) if l.is_power_of_two() => write!(f, "|2^{}", l.trailing_zeros()),
            Some(l) => write!(f, "|{l}"),
            None => Ok(()),
        }
    }
}

/// `2^n` or a decimal number of packets.
fn parse_lifetime(s: &str) -> Result<u64, SdesError> {
    let value = match s.strip_prefix("2^") {
        Some(exp) => {
            let exp: u32 = exp.parse().map_err(|_| SdesError::Syntax(format!("lifetime {s:?}")))?;
            1u64.checked_shl(exp).filter(|_| exp < 64).ok_or(SdesError::Lifetime { lifetime: u64::MAX })?
        }
        None => s.parse().map_err(|_| SdesError::Syntax(format!("lifetime {s:?}")))?,
    };
    if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&value) {
        return Err(SdesError::Lifetime { lifetime: value });
    }
    Ok(value)
}

fn check_session_parameter(p: &str) -> Result<(), SdesError> {
    let (name, value) = p.split_once('=').unwrap_or((p, ""));
    match name {
        "KDR" if value == "0" => Ok(()),
        "WSH" if value.parse::<u32>().is_ok_and(|n| n >= 64) => Ok(()),
        "FEC_ORDER" if matches!(value, "FEC_SRTP" | "SRTP_FEC") => Ok(()),
        _ => Err(SdesError::SessionParameter(p.to_string())),
    }
}

/// FlowPBX's side of an SDES answer: the attribute to write, and the leg's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesAnswer {
    /// Ours, under the chosen offer attribute's tag: goes into the answer as
    /// `a=crypto:{attribute}`.
    pub attribute: CryptoAttribute,
    /// The offerer's key (inbound) and ours (outbound), for the leg's media.
    pub keys: SrtpKeys,
}

/// Answers an offer's `a=crypto` values: the usable attribute whose suite comes first in
/// `preference` (among attributes of one suite, the offer's first), answered with a fresh
/// key of that suite under its tag. Unusable attributes are skipped; when none is left,
/// [`SdesError::NoUsableCrypto`] lists why.
pub fn answer<'a>(offer: impl IntoIterator<Item = &'a str>, preference: &[SrtpSuite]) -> Result<SdesAnswer, SdesError> {
    answer_keeping(offer, preference, None)
}

/// [`answer`] for a re-offer: when the chosen suite is that of `ours` (the key FlowPBX
/// answered with before), `ours` is answered again instead of a fresh key, so the endpoint's
/// context for FlowPBX's stream carries on (RFC 4568 §7.1.4 lets the answerer keep its key).
pub fn answer_keeping<'a>(offer: impl IntoIterator<Item = &'a str>, preference: &[SrtpSuite], ours: Option<&SrtpKey>) -> Result<SdesAnswer, SdesError> {
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for line in offer {
        match CryptoAttribute::parse(line) {
            Ok(a) if preference.contains(&a.suite()) => usable.push(a),
            Ok(a) => skipped.push(SdesError::UnknownSuite(format!("{} (not enabled)", a.suite()))),
            Err(e) => skipped.push(e),
        }
    }
    let chosen = preference.iter().find_map(|s| usable.iter().find(|a| a.suite() == *s)).ok_or(SdesError::NoUsableCrypto(skipped))?;
    let ours = match ours.filter(|k| k.suite() == chosen.suite()) {
        Some(key) => CryptoAttribute { tag: chosen.tag, key: key.clone() },
        None => CryptoAttribute::generate(chosen.tag, chosen.suite())?,
    };
    Ok(SdesAnswer { keys: SrtpKeys { inbound: chosen.key.clone(), outbound: ours.key.clone() }, attribute: ours })
}

/// An offer: one attribute per suite, in the order given, tags 1, 2, …, fresh keys.
pub fn offer(suites: &[SrtpSuite]) -> Result<Vec<CryptoAttribute>, SdesError> {
    suites.iter().zip(1..).map(|(s, tag)| CryptoAttribute::generate(tag, *s)).collect()
}

/// The keys from the answer to our `offered` attributes: the answer's tag must be one we
/// offered, with the same suite.
pub fn accept_answer(offered: &[CryptoAttribute], answer: &str) -> Result<SrtpKeys, SdesError> {
    let theirs = CryptoAttribute::parse(answer).map_err(|e| match e {
        // the suite is checked against the offer below, for a clearer message
        SdesError::UnknownSuite(name) => match answer_tag(answer).and_then(|t| offered.iter().find(|o| o.tag == t)) {
            Some(o) => SdesError::SuiteMismatch { tag: o.tag, offered: o.suite(), answered: name },
            None => SdesError::UnknownSuite(name),
        },
        other => other,
    })?;
    let ours = offered.iter().find(|o| o.tag == theirs.tag).ok_or(SdesError::TagNotOffered(theirs.tag))?;
    if ours.suite() != theirs.suite() {
        return Err(SdesError::SuiteMismatch { tag: theirs.tag, offered: ours.suite(), answered: theirs.suite().to_string() });
    }
    Ok(SrtpKeys { inbound: theirs.key, outbound: ours.key.clone() })
}

fn answer_tag(value: &str) -> Option<u32> {
    let v = value.trim();
    let v = v.strip_prefix("a=").unwrap_or(v);
    let v = v.strip_prefix("crypto:").unwrap_or(v);
    v.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY80: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_the_rfc4568_example_forms() {
        let a = CryptoAttribute::parse(&format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^31")).unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(a.key.lifetime(), Some(1 << 31));
        assert_eq!(a.key.key_and_salt(), &BASE64.decode(KEY80).unwrap()[..]);
        assert_eq!(a.to_string(), format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^31"));
        // value only, decimal lifetime, session parameters FlowPBX accepts
        let b = CryptoAttribute::parse(&format!("  42 AES_CM_128_HMAC_SHA1_32 inline:{KEY80}|4294967296 KDR=0 WSH=128 FEC_ORDER=FEC_SRTP ")).unwrap();
        assert_eq!((b.tag, b.suite(), b.key.lifetime()), (42, SrtpSuite::AesCm128HmacSha1_32, Some(1 << 32)));
        // GCM: 28 bytes, with or without padding
        let gcm = CryptoAttribute::generate(7, SrtpSuite::AeadAes128Gcm).unwrap();
        let text = gcm.to_string();
        assert!(text.ends_with('='), "{text}");
        assert_eq!(CryptoAttribute::parse(&text).unwrap(), gcm);
        assert_eq!(CryptoAttribute::parse(text.trim_end_matches('=')).unwrap(), gcm);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let line = |rest: &str| format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}{rest}");
        assert_eq!(CryptoAttribute::parse(&line("|2^20|1:4")), Err(SdesError::Mki("1:4".into())));
        assert_eq!(CryptoAttribute::parse(&line("|1:4")), Err(SdesError::Mki("1:4".into())));
        assert_eq!(CryptoAttribute::parse(&line("|2^20")), Err(SdesError::Lifetime { lifetime: 1 << 20 }));
        assert_eq!(CryptoAttribute::parse(&line("|2^49")), Err(SdesError::Lifetime { lifetime: 1 << 49 }));
        assert!(matches!(CryptoAttribute::parse(&line("|2^99")), Err(SdesError::Lifetime { .. })));
        assert!(matches!(CryptoAttribute::parse(&line("|soon")), Err(SdesError::Syntax(_))));
        assert_eq!(CryptoAttribute::parse(&format!("{};inline:{KEY80}", line(""))), Err(SdesError::SeveralKeys));
        for p in ["UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP", "KDR=10", "FEC_KEY=inline:x", "WSH=10", "FOO"] {
            assert_eq!(CryptoAttribute::parse(&format!("{} {p}", line(""))), Err(SdesError::SessionParameter(p.into())), "{p}");
        }
        assert_eq!(CryptoAttribute::parse(&format!("1 F8_128_HMAC_SHA1_80 inline:{KEY80}")), Err(SdesError::UnknownSuite("F8_128_HMAC_SHA1_80".into())));
        assert!(matches!(CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ="), Err(SdesError::Key(_))));
        assert!(matches!(CryptoAttribute::parse("1 AES_CM_128_HMAC_SHA1_80 inline:@@@@"), Err(SdesError::Key(_))));
        assert!(matches!(CryptoAttribute::parse(&format!("1 AEAD_AES_128_GCM inline:{KEY80}")), Err(SdesError::Key(_))), "30 bytes for GCM");
        for bad in [
            "",
            "1",
            "1 AES_CM_128_HMAC_SHA1_80",
            "x AES_CM_128_HMAC_SHA1_80 inline:a",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:a",
            "1 AES_CM_128_HMAC_SHA1_80 uri:x",
            "1 AES_CM_128_HMAC_SHA1_80 inl",
        ] {
            assert!(matches!(CryptoAttribute::parse(bad), Err(SdesError::Syntax(_))), "{bad:?}");
        }
    }

    #[test]
    fn answers_by_our_preference_under_the_offered_tag() {
        let offer_lines = [
            format!("1 AES_CM_128_HMAC_SHA1_32 inline:{KEY80}"),
            "2 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_string(),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}|2^20|1:4"),
            format!("4 AES_CM_128_HMAC_SHA1_80 inline:{KEY80}"),
        ];
        let a = answer(offer_lines.iter().map(String::as_str), &SrtpSuite::ALL).unwrap();
        // the 80 is preferred to the 32; tag 3 has an MKI, so tag 4
        assert_eq!(a.attribute.tag, 4);
        assert_eq!(a.attribute.suite(), SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(a.keys.inbound.key_and_salt(), &BASE64.decode(KEY80).unwrap()[..]);
        assert_eq!(a.keys.outbound, a.attribute.key);
        assert_ne!(a.keys.outbound.key_and_salt(), a.keys.inbound.key_and_salt(), "a fresh key of our own");
        // the offerer can read our answer back
        assert_eq!(CryptoAttribute::parse(&a.attribute.to_string()).unwrap(), a.attribute);
        // with only the 32 enabled, tag 1
        let b = answer(offer_lines.iter().map(String::as_str), &[SrtpSuite::AesCm128HmacSha1_32]).unwrap();
        assert_eq!((b.attribute.tag, b.attribute.suite()), (1, SrtpSuite::AesCm128HmacSha1_32));
        // fresh keys each time
        let c = answer(offer_lines.iter().map(String::as_str), &SrtpSuite::ALL).unwrap();
        assert_ne!(a.keys.outbound, c.keys.outbound);
        // nothing usable: the reasons are listed
        let e = answer([offer_lines[1].as_str(), offer_lines[2].as_str()], &SrtpSuite::ALL).unwrap_err();
        let SdesError::NoUsableCrypto(reasons) = &e else { panic!("{e:?}") };
        assert_eq!(reasons.len(), 2);
        assert!(e.to_string().contains("F8_128") && e.to_string().contains("MKI"), "{e}");
        assert!(matches!(answer([], &SrtpSuite::ALL), Err(SdesError::NoUsableCrypto(v)) if v.is_empty()));
        // a re-offer: our key again when the suite is the same, a fresh one otherwise
        let again = answer_keeping(offer_lines.iter().map(String::as_str), &SrtpSuite::ALL, Some(&a.keys.outbound)).unwrap();
        assert_eq!((again.attribute.tag, &again.keys.outbound), (4, &a.keys.outbound));
        let other = answer_keeping(offer_lines.iter().map(String::as_str), &[SrtpSuite::AesCm128HmacSha1_32], Some(&a.keys.outbound)).unwrap();
        assert_ne!(other.keys.outbound.suite(), a.keys.outbound.suite());
    }

    #[test]
    fn offers_and_takes_the_answer() {
        let offered = offer(&SrtpSuite::ALL).unwrap();
        assert_eq!(
            offered.iter().map(|a| (a.tag, a.suite())).collect::<Vec<_>>(),
            vec![(1, SrtpSuite::AeadAes128Gcm), (2, SrtpSuite::AesCm128HmacSha1_80), (3, SrtpSuite::AesCm128HmacSha1_32)]
        );
        // the callee answers the 80 (tag 2) with its own key
        let lines: Vec<String> = offered.iter().map(|a| format!("a=crypto:{a}")).collect();
        let callee = answer(lines.iter().map(String::as_str), &[SrtpSuite::AesCm128HmacSha1_80]).unwrap();
        let keys = accept_answer(&offered, &format!("a=crypto:{}", callee.attribute)).unwrap();
        assert_eq!(keys.outbound, offered[1].key);
        assert_eq!(keys.inbound, callee.keys.outbound);
        assert_eq!(keys.outbound, callee.keys.inbound, "what we send, the callee decrypts");
        // wrong tag, wrong suite
        let other = CryptoAttribute::generate(9, SrtpSuite::AesCm128HmacSha1_80).unwrap();
        assert_eq!(accept_answer(&offered, &other.to_string()), Err(SdesError::TagNotOffered(9)));
        let swapped = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80).unwrap();
        assert!(matches!(accept_answer(&offered, &swapped.to_string()), Err(SdesError::SuiteMismatch { tag: 1, offered: SrtpSuite::AeadAes128Gcm, .. })));
        assert!(matches!(accept_answer(&offered, &format!("2 F8_128_HMAC_SHA1_80 inline:{KEY80}")), Err(SdesError::SuiteMismatch { tag: 2, .. })));
    }
}
