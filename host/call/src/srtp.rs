//! SRTP with SDES (RFC 4568) per leg: what a leg's policy (`off` / `optional` / `required`)
//! makes of the `a=crypto` lines it offers or answers, and what FlowPBX offers it.
//!
//! FlowPBX terminates SRTP on each leg: the keys it answers or offers toward a leg are fresh
//! and its own, never another leg's, so an SRTP phone can talk to a plain trunk and the
//! recorder and DTMF detector hear plain audio. The rules:
//! - `off`: plain RTP only; crypto lines in an RTP/AVP offer are ignored, an RTP/SAVP offer
//!   (SRTP mandatory) is refused (488). FlowPBX offers RTP/AVP without crypto.
//! - `optional`: FlowPBX offers RTP/AVP with `a=crypto` lines (best-effort SDES: a phone
//!   that knows no SRTP answers plain), and answers crypto when offered crypto it can use.
//! - `required`: FlowPBX offers RTP/SAVP with `a=crypto` lines; an offer or answer without
//!   usable crypto is refused (488).
//!
//! An offer whose crypto lines are all unusable (unknown suites, MKI, short lifetimes, odd
//! session parameters, malformed or oversized keys) counts as no crypto. Key material is
//! never logged: only the reason's kind is.

use media::sdes::{self, CryptoAttribute, SdesAnswer, SdesError};
use media::{SrtpKey, SrtpKeys, SrtpSuite};
use store::SrtpPolicy;

use crate::sdp_media::{LegSdp, SdpFault};

/// What FlowPBX offers, in order: the 80-bit tag first (every SDES phone has it), then GCM,
/// then the 32-bit tag.
pub(crate) const OFFER_SUITES: [SrtpSuite; 3] = [SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm, SrtpSuite::AesCm128HmacSha1_32];

/// What FlowPBX answers with, best first (the strongest the offer has).
pub(crate) const ANSWER_PREFERENCE: [SrtpSuite; 3] = SrtpSuite::ALL;

/// Why an attribute was unusable, without its text (which may hold a key).
pub(crate) fn reason(e: &SdesError) -> &'static str {
    match e {
        SdesError::Syntax(_) => "malformed",
        SdesError::UnknownSuite(_) => "unknown suite",
        SdesError::Key(_) => "bad key",
        SdesError::Mki(_) => "MKI",
        SdesError::SeveralKeys => "several keys",
        SdesError::Lifetime { .. } => "lifetime",
        SdesError::SessionParameter(_) => "session parameter",
        SdesError::NoUsableCrypto(_) => "no usable crypto",
        SdesError::TagNotOffered(_) => "tag not offered",
        SdesError::SuiteMismatch { .. } => "suite mismatch",
        SdesError::Srtp(_) => "key generation",
        _ => "other",
    }
}

fn log_unusable(what: &str, e: &SdesError) {
    let reasons: Vec<&'static str> = match e {
        SdesError::NoUsableCrypto(list) => list.iter().map(reason).collect(),
        other => vec![reason(other)],
    };
    tracing::info!(?reasons, "{what}: no usable a=crypto");
}

/// FlowPBX's answer to a leg's offer under the leg's policy: `Some` is the attribute to
/// answer with and the leg's keys; `None` answers plain RTP. `ours` is the key FlowPBX
/// answered this leg with before (a re-offer of the same suite keeps it).
pub(crate) fn answer(policy: SrtpPolicy, offer: &LegSdp, ours: Option<&SrtpKey>) -> Result<Option<SdesAnswer>, SdpFault> {
    if policy == SrtpPolicy::Off {
        return if offer.secure { Err(SdpFault::Crypto) } else { Ok(None) };
    }
    let must = offer.secure || policy == SrtpPolicy::Required;
    if offer.crypto.is_empty() {
        return if must { Err(SdpFault::Crypto) } else { Ok(None) };
    }
    match sdes::answer_keeping(offer.crypto.iter().map(String::as_str), &ANSWER_PREFERENCE, ours) {
        Ok(a) => Ok(Some(a)),
        Err(e) => {
            log_unusable("an SDP offer", &e);
            if must {
                Err(SdpFault::Crypto)
            } else {
                Ok(None)
            }
        }
    }
}

/// What FlowPBX offers a leg under its policy: `None` for plain RTP (`off`); otherwise one
/// attribute per suite, tags 1, 2, 3. `keep` is FlowPBX's current key toward the leg: on a
/// re-offer its suite is offered with it again, so an unchanged answer keeps the context.
pub(crate) fn offer(policy: SrtpPolicy, keep: Option<&SrtpKey>) -> Option<Vec<CryptoAttribute>> {
    if policy == SrtpPolicy::Off {
        return None;
    }
    let mut out = Vec::with_capacity(OFFER_SUITES.len());
    for (suite, tag) in OFFER_SUITES.iter().zip(1..) {
        match keep.filter(|k| k.suite() == *suite) {
            Some(k) => out.push(CryptoAttribute { tag, key: k.clone() }),
            None => match CryptoAttribute::generate(tag, *suite) {
                Ok(a) => out.push(a),
                Err(e) => {
                    tracing::error!(reason = reason(&e), "no SRTP key could be made: offering without crypto");
                    return None;
                }
            },
        }
    }
    Some(out)
}

/// The offer's lines as written: `(secure profile, a=crypto values)` for a leg of `policy`
/// given the attributes made by [`offer`].
pub(crate) fn offer_lines(policy: SrtpPolicy, crypto: Option<&[CryptoAttribute]>) -> (bool, Vec<String>) {
    match (policy, crypto) {
        (SrtpPolicy::Off, _) | (_, None) => (false, Vec::new()),
        (p, Some(list)) => (p == SrtpPolicy::Required, list.iter().map(ToString::to_string).collect()),
    }
}

/// The leg's keys from its answer to FlowPBX's offer (`offered`: the attributes it was
/// offered, `None` when it was offered plain RTP). `Ok(None)`: the leg's media is plain.
pub(crate) fn accept(policy: SrtpPolicy, offered: Option<&[CryptoAttribute]>, answer: &LegSdp) -> Result<Option<SrtpKeys>, SdpFault> {
    let offered = match offered {
        Some(o) if policy != SrtpPolicy::Off => o,
        // offered plain: a plain answer; an SRTP one answers something never offered
        _ => return if answer.secure { Err(SdpFault::Crypto) } else { Ok(None) },
    };
    match answer.crypto.as_slice() {
        [] if answer.secure || policy == SrtpPolicy::Required => Err(SdpFault::Crypto),
        [] => Ok(None),
        [value] => sdes::accept_answer(offered, value).map(Some).map_err(|e| {
            log_unusable("an SDP answer", &e);
            SdpFault::Crypto
        }),
        _ => {
            tracing::info!("an SDP answer with several a=crypto lines: refused");
            Err(SdpFault::Crypto)
        }
    }
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
