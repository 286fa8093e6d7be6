//! SIP message logging: one structured line per message at target `flowpbx::sip`, with the
//! direction, transport, peer and Call-ID as fields and the message (headers, or all of it)
//! escaped onto that one line. Nothing is formatted when logging is off.

use sip::transaction::Peer;

use crate::config::SipLogMode;

/// Logs a message received from or sent to `peer`.
pub(crate) fn log(mode: SipLogMode, direction: &'static str, peer: Peer, data: &[u8]) {
    if mode == SipLogMode::Off {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let head_end = text.find("\r\n\r\n").or_else(|| text.find("\n\n")).unwrap_or(text.len());
    let shown = match mode {
        SipLogMode::Headers => &text[..head_end],
        _ => &text[..],
    };
    let call_id = call_id(&text[..head_end]).unwrap_or("-");
    let shown = redact(shown);
    let shown = redact_keys(&shown);
    tracing::info!(
        target: "flowpbx::sip",
        direction,
        transport = peer.transport.as_str(),
        peer = %peer.addr,
        call_id,
        bytes = data.len(),
        sip = ?shown,
        "sip {direction}"
    );
}

/// What the log shows of a message under `mode` (headers, or all of it; redacted), and its
/// Call-ID; None when the mode is off or the message has no Call-ID.
pub(crate) fn shown(mode: SipLogMode, data: &[u8]) -> Option<(String, String)> {
    if mode == SipLogMode::Off {
        return None;
    }
    let text = String::from_utf8_lossy(data);
    let head_end = text.find("\r\n\r\n").or_else(|| text.find("\n\n")).unwrap_or(text.len());
    let call_id = call_id(&text[..head_end])?.to_owned();
    let shown = match mode {
        SipLogMode::Headers => &text[..head_end],
        _ => &text[..],
    };
    let shown = redact(shown);
    Some((call_id, redact_keys(&shown).into_owned()))
}

/// The credentials of `Authorization` and `Proxy-Authorization` lines (and their folded
/// continuations) replaced by `<redacted>`, the username kept: a digest response is an
/// offline-guessable hash of the password, it has no place in a log.
fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let is_auth = |line: &str| {
        line.split_once(':').is_some_and(|(n, _)| {
            let n = n.trim();
            n.eq_ignore_ascii_case("authorization") || n.eq_ignore_ascii_case("proxy-authorization")
        })
    };
    if !text.split('\n').any(is_auth) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_auth = false;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let folded = line.starts_with([' ', '\t']) && !line.trim().is_empty();
        if is_auth(line) && !folded {
            in_auth = true;
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            out.push_str(name);
            out.push_str(": ");
            let user = value.split(',').find_map(|p| p.trim().trim_start_matches("Digest").trim().strip_prefix("username=").map(str::trim));
            if let Some(u) = user {
                out.push_str("username=");
                out.push_str(u);
                out.push_str(", ");
            }
            out.push_str("<redacted>");
            if line.ends_with('\r') {
                out.push('\r');
            }
        } else if in_auth && folded {
            if line.ends_with('\r') {
                out.push('\r');
            }
        } else {
            in_auth = false;
            out.push_str(line);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// SDES keys (`a=crypto:… inline:<key||salt>`, RFC 4568) replaced by `<redacted>`: a key in
/// a log decrypts the call's audio. The `inline:` prefix is matched in any case (as the SDES
/// parser does); the key runs to a `|`, `;`, space or line end.
fn redact_keys(text: &str) -> std::borrow::Cow<'_, str> {
    const TAG: &[u8] = b"inline:";
    let bytes = text.as_bytes();
    let find = |from: usize| (from..bytes.len().saturating_sub(TAG.len() - 1)).find(|&i| bytes[i..i + TAG.len()].eq_ignore_ascii_case(TAG));
    let Some(mut at) = find(0) else { return std::borrow::Cow::Borrowed(text) };
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    loop {
        let key_start = at + TAG.len();
        let key_end = bytes[key_start..].iter().position(|b| matches!(b, b'|' | b';' | b' ' | b'\t' | b'\r' | b'\n')).map_or(bytes.len(), |n| key_start + n);
        // the boundaries are ASCII bytes: slicing at them stays on char boundaries
        out.push_str(&text[copied..key_start]);
        out.push_str("<redacted>");
        copied = key_end;
        match find(key_end) {
            Some(next) => at = next,
            None => break,
        }
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The Call-ID (or compact `i`) header's value in a header section.
fn call_id(head: &str) -> Option<&str> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i")).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_reach_the_log() {
        let msg = "REGISTER sip:pbx SIP/2.0\r\nVia: x\r\nAUTHORIZATION: Digest username=\"alice\", realm=\"pbx\", nonce=\"n\",\r\n  response=\"0123456789abcdef\"\r\n\
                   proxy-authorization : Digest username=\"bob\",response=\"fedcba\"\r\nCall-ID: c\r\n\r\n";
        let r = super::redact(msg);
        assert!(!r.contains("0123456789abcdef") && !r.contains("fedcba") && !r.contains("nonce"), "{r}");
        assert!(r.contains("AUTHORIZATION: username=\"alice\", <redacted>\r\n"), "{r}");
        assert!(r.contains("username=\"bob\""), "{r}");
        assert!(r.contains("Call-ID: c\r\n"), "{r}");
        assert!(matches!(super::redact("OPTIONS sip:a SIP/2.0\r\nVia: x\r\n"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn sdes_keys_never_reach_the_log() {
        let msg = "INVITE sip:b SIP/2.0\r\nCall-ID: c\r\n\r\nm=audio 4000 RTP/SAVP 0\r\n\
                   a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31\r\n\
                   a=crypto:2 AEAD_AES_128_GCM INLINE:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 KDR=0\r\n\
                   a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:dGFpbGtleQ==";
        let r = super::redact_keys(msg);
        assert!(!r.contains("WVNfX19") && !r.contains("c2VjcmV0") && !r.contains("dGFpbGtleQ"), "{r}");
        assert!(r.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<redacted>|2^31\r\n"), "{r}");
        assert!(r.contains("INLINE:<redacted> KDR=0\r\n") && r.ends_with("inline:<redacted>"), "{r}");
        assert!(matches!(super::redact_keys("OPTIONS sip:a SIP/2.0\r\n"), std::borrow::Cow::Borrowed(_)));
        // odd input: a trailing prefix, multi-byte text around it
        assert_eq!(super::redact_keys("é inline:"), "é inline:<redacted>");
        assert_eq!(super::redact_keys("inline"), "inline");
    }

    #[test]
    fn finds_call_id_in_both_forms() {
        assert_eq!(super::call_id("OPTIONS sip:a SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n"), Some("abc@h"));
        assert_eq!(super::call_id("SIP/2.0 200 OK\r\ni:  x1 \r\n"), Some("x1"));
        assert_eq!(super::call_id("SIP/2.0 200 OK\r\n"), None);
    }
}
