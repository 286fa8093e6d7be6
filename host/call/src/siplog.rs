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
    fn finds_call_id_in_both_forms() {
        assert_eq!(super::call_id("OPTIONS sip:a SIP/2.0\r\nVia: x\r\nCall-ID: abc@h\r\n"), Some("abc@h"));
        assert_eq!(super::call_id("SIP/2.0 200 OK\r\ni:  x1 \r\n"), Some("x1"));
        assert_eq!(super::call_id("SIP/2.0 200 OK\r\n"), None);
    }
}
