//! The SIP message viewer's memory: the last messages of recent calls, grouped by the
//! caller's Call-ID (the CDR's `call_id`), the callee legs' messages included. Kept only while
//! the SIP log is on (`--sip-log headers|full`: what it keeps follows the mode), redacted as
//! the log is (digest responses and SDES keys never kept), and bounded: at most
//! [`PER_CALL`] messages per call (the last ones) and [`CALLS`] calls (the oldest dropped).

use std::collections::{HashMap, VecDeque};

use sip::transaction::Peer;

use crate::config::SipLogMode;

/// Messages kept per call (the last ones).
pub const PER_CALL: usize = 200;
/// Calls kept.
pub const CALLS: usize = 500;

/// One message as the viewer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedMessage {
    /// When, Unix ms.
    pub at_ms: i64,
    /// `in` (received) or `out` (sent).
    pub direction: &'static str,
    /// `udp`, `tcp`, `tls`, `ws`…
    pub transport: &'static str,
    /// The other side's address.
    pub peer: String,
    /// The message's Call-ID (a callee leg's differs from the caller's).
    pub call_id: String,
    /// The message (headers, or all of it with `full`), redacted.
    pub text: String,
}

#[derive(Debug, Default)]
pub(crate) struct TraceStore {
    calls: HashMap<String, VecDeque<TracedMessage>>,
    /// Caller Call-IDs, oldest first.
    order: VecDeque<String>,
    /// A leg's Call-ID → its call's caller Call-ID (kept as long as the call is).
    alias: HashMap<String, String>,
}

impl TraceStore {
    /// Files `msg` under `group` (the caller's Call-ID).
    pub(crate) fn add(&mut self, group: &str, msg: TracedMessage) {
        if msg.call_id != group && !self.alias.contains_key(&msg.call_id) {
            self.alias.insert(msg.call_id.clone(), group.to_owned());
        }
        if !self.calls.contains_key(group) {
            if self.order.len() >= CALLS
                && let Some(old) = self.order.pop_front()
            {
                self.calls.remove(&old);
                self.alias.retain(|_, g| *g != old);
            }
            self.order.push_back(group.to_owned());
        }
        let q = self.calls.entry(group.to_owned()).or_default();
        if q.len() >= PER_CALL {
            q.pop_front();
        }
        q.push_back(msg);
    }

    /// The group a Call-ID was filed under before (a leg's messages after its call ended).
    pub(crate) fn group_of(&self, call_id: &str) -> Option<&str> {
        self.alias.get(call_id).map(String::as_str)
    }

    /// The messages of the call whose caller Call-ID is `call_id`, oldest first.
    pub(crate) fn messages(&self, call_id: &str) -> Vec<TracedMessage> {
        self.calls.get(call_id).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The message as the log would show it (None when the mode is off or it has no Call-ID).
pub(crate) fn capture(mode: SipLogMode, direction: &'static str, peer: Peer, data: &[u8], at_ms: i64) -> Option<TracedMessage> {
    let (call_id, text) = crate::siplog::shown(mode, data)?;
    Some(TracedMessage { at_ms, direction, transport: peer.transport.as_str(), peer: peer.addr.to_string(), call_id, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(call_id: &str, n: usize) -> TracedMessage {
        TracedMessage { at_ms: n as i64, direction: "in", transport: "udp", peer: "127.0.0.1:5060".into(), call_id: call_id.into(), text: format!("{n}") }
    }

    #[test]
    fn calls_and_messages_are_bounded_and_legs_grouped() {
        let mut t = TraceStore::default();
        for n in 0..PER_CALL + 5 {
            t.add("a", m("a", n));
        }
        t.add("a", m("b-leg", 999));
        let got = t.messages("a");
        assert_eq!(got.len(), PER_CALL);
        assert_eq!(got.last().map(|x| x.text.as_str()), Some("999"));
        assert_eq!(t.group_of("b-leg"), Some("a"));
        for i in 0..CALLS {
            t.add(&format!("c{i}"), m(&format!("c{i}"), i));
        }
        assert!(t.messages("a").is_empty(), "the oldest call is dropped");
        assert_eq!(t.group_of("b-leg"), None);
        assert_eq!(t.messages(&format!("c{}", CALLS - 1)).len(), 1);
    }
}
