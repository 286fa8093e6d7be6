//! SIP-specific event notification (RFC 6665) as a UAS: SUBSCRIBE dialogs from phones and the
//! NOTIFYs FlowPBX sends on them, sans-IO like the rest of the core.
//!
//! A subscription is a dialog ([`sip::dialog::Dialog`]) keyed by its [`DialogId`], carrying
//! its event [`Package`], the extension that subscribed and the resource it watches. What a
//! NOTIFY says is per package ([`Package::body`] over the [`State`] the core keeps); today the
//! only package is `message-summary` (RFC 3842, the message-waiting lamp), whose state is the
//! voicemail counts of each extension, pushed in by [`crate::PbxHandle::voicemail_changed`].
//! Another package (`dialog`, `presence`) plugs in as a [`Package`] variant with its body and
//! the state it reads.
//!
//! Rules: the Event header must name a package we serve (else 489 with Allow-Events; an
//! unreadable Event header is 400); the subscriber authenticates like any request (407);
//! the resource must be the subscriber's own (403); Expires is clamped to
//! [`MAX_EXPIRES`] (absent: [`DEFAULT_EXPIRES`]), under [`MIN_EXPIRES`] but not 0 is 423;
//! `Expires: 0` ends the subscription (a last NOTIFY, `terminated`); new subscriptions are
//! limited per source address ([`PER_SOURCE_WINDOW`]) and in number per source
//! ([`MAX_PER_SOURCE`]) and per extension ([`MAX_PER_EXTENSION`]). A NOTIFY answered 481 or
//! not at all ends the subscription; one that lapses gets a `terminated;reason=timeout`.
//!
//! Unsolicited MWI (an extension's `mwi_unsolicited`): a phone that does not subscribe is
//! sent an out-of-dialog NOTIFY ([`Subscriptions::notify_unsolicited`], as Asterisk and
//! FreeSWITCH do): Request-URI its registered contact, From and To the extension's address
//! (From with a fresh tag), a fresh Call-ID, `Event: message-summary`, no
//! Subscription-State (there is no subscription), the RFC 3842 body. It goes to each
//! registered contact without a message-summary subscription from the same address, when
//! it registers and whenever the counts change; its answer (or timeout) ends that attempt —
//! nothing is retried.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use sip::dialog::{Dialog, DialogId};
use sip::msg::name_addr;
use sip::transaction::{ClientTxId, Peer};
use sip::{HeaderName, Instant, Message, Method};

use crate::registrar::Binding;
use crate::signalling::Signalling;

/// Expires when the SUBSCRIBE has none (RFC 3842 suggests an hour).
pub(crate) const DEFAULT_EXPIRES: u32 = 3600;
/// The longest subscription granted; longer requests are shortened to it.
pub(crate) const MAX_EXPIRES: u32 = 3600;
/// The shortest subscription accepted (shorter: 423 with Min-Expires).
pub(crate) const MIN_EXPIRES: u32 = 60;
/// Subscriptions held at once for one source address.
pub(crate) const MAX_PER_SOURCE: usize = 64;
/// Subscriptions held at once for one extension.
pub(crate) const MAX_PER_EXTENSION: usize = 16;
/// New subscriptions (not refreshes) one source may open per window.
pub(crate) const PER_SOURCE_NEW: u32 = 20;
/// The window of [`PER_SOURCE_NEW`].
pub(crate) const PER_SOURCE_WINDOW: Duration = Duration::from_secs(60);

/// An event package we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    /// RFC 3842: voicemail message counts (the message-waiting lamp).
    MessageSummary,
}

impl Package {
    /// Every package served, for Allow-Events.
    pub(crate) const ALL: &'static [Package] = &[Package::MessageSummary];

    /// The package's name in an Event header.
    pub fn as_str(self) -> &'static str {
        match self {
            Package::MessageSummary => "message-summary",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Package::MessageSummary => "application/simple-message-summary",
        }
    }

    /// The NOTIFY body for `sub` over the current state.
    fn body(self, sub: &Subscription, state: &State) -> String {
        match self {
            Package::MessageSummary => {
                let c = state.mwi.get(&sub.extension_id).copied().unwrap_or_default();
                message_summary(c, &sub.account)
            }
        }
    }
}

/// The Allow-Events value.
pub(crate) fn allow_events() -> String {
    Package::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

/// An Event header read: the package token (parameters such as `id` ignored).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EventHeader {
    /// No Event header.
    Missing,
    /// Not a token (empty, control characters, stray separators).
    Malformed,
    /// A package we do not serve.
    Unsupported,
    /// A package we serve.
    Known(Package),
}

/// Reads a SUBSCRIBE's Event header.
pub(crate) fn event_of(msg: &Message) -> EventHeader {
    let Some(v) = msg.header(HeaderName::Event) else { return EventHeader::Missing };
    let name = v.split(';').next().unwrap_or("").trim();
    if name.is_empty() || !sip::msg::is_token(name) || v.chars().any(|c| c.is_control()) {
        return EventHeader::Malformed;
    }
    match Package::ALL.iter().find(|p| p.as_str().eq_ignore_ascii_case(name)) {
        Some(p) => EventHeader::Known(*p),
        None => EventHeader::Unsupported,
    }
}

/// The Expires a SUBSCRIBE asks for: absent → default, digits (any length) saturating,
/// anything else → `None` (400).
pub(crate) fn requested_expires(msg: &Message) -> Option<u32> {
    match msg.header(HeaderName::Expires) {
        None => Some(DEFAULT_EXPIRES),
        Some(v) => {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(v.parse::<u64>().map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)))
        }
    }
}

/// Voicemail counts of one extension (all boxes whose lamp is on it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MwiCounts {
    /// Unread messages.
    pub new: u32,
    /// Read (saved) messages.
    pub old: u32,
}

/// The RFC 3842 body.
pub(crate) fn message_summary(c: MwiCounts, account: &str) -> String {
    let waiting = if c.new > 0 { "yes" } else { "no" };
    format!("Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n", c.new, c.old)
}

/// What the packages' bodies are made from.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Voicemail counts per extension id.
    pub(crate) mwi: HashMap<i64, MwiCounts>,
}

/// One subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) package: Package,
    pub(crate) extension_id: i64,
    /// `sip:<user>@<domain>`, the Message-Account.
    account: String,
    dialog: Dialog,
    /// Where NOTIFYs go: where the SUBSCRIBE came from (the NAT binding or connection).
    peer: Peer,
    pub(crate) expires_at: Instant,
    /// Set once the last NOTIFY (terminated) is out.
    ended: bool,
}

/// A subscription as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The event package.
    pub package: Package,
    /// Where the subscriber is.
    pub peer: std::net::SocketAddr,
    /// The transport.
    pub transport: sip::transaction::Transport,
    /// Unix seconds when it lapses unless refreshed.
    pub expires_unix: i64,
}

/// Why a SUBSCRIBE was refused (the status and reason to answer).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: u16,
    pub(crate) reason: Option<&'static str>,
    pub(crate) min_expires: bool,
    pub(crate) retry_after: bool,
}

impl Refusal {
    fn new(code: u16, reason: &'static str) -> Refusal {
        Refusal { code, reason: Some(reason), min_expires: false, retry_after: false }
    }
}

/// The table of subscriptions, with the NOTIFYs in flight and the per-source limits.
#[derive(Default)]
pub(crate) struct Subscriptions {
    subs: HashMap<DialogId, Subscription>,
    notifies: HashMap<ClientTxId, DialogId>,
    /// Unsolicited (out-of-dialog) NOTIFYs in flight: their answers end nothing.
    unsolicited: HashSet<ClientTxId>,
    /// New subscriptions per source in the current window: (window start, count).
    recent: HashMap<IpAddr, (Instant, u32)>,
    pub(crate) state: State,
}

impl Subscriptions {
    /// Whether a client transaction is one of our NOTIFYs.
    pub(crate) fn owns(&self, tx: ClientTxId) -> bool {
        self.notifies.contains_key(&tx) || self.unsolicited.contains(&tx)
    }

    /// Whether an in-dialog request belongs to a subscription.
    pub(crate) fn has_dialog(&self, msg: &Message) -> bool {
        DialogId::of_incoming(msg).is_some_and(|id| self.subs.contains_key(&id))
    }

    /// Checks a new subscription against the limits. Counts it when allowed.
    pub(crate) fn admit(&mut self, now: Instant, source: IpAddr, extension_id: i64) -> Result<(), Refusal> {
        let from_source = self.subs.values().filter(|s| s.peer.addr.ip() == source).count();
        if from_source >= MAX_PER_SOURCE {
            return Err(Refusal { retry_after: true, ..Refusal::new(503, "Too Many Subscriptions") });
        }
        if self.subs.values().filter(|s| s.extension_id == extension_id).count() >= MAX_PER_EXTENSION {
            return Err(Refusal { retry_after: true, ..Refusal::new(503, "Too Many Subscriptions") });
        }
        let e = self.recent.entry(source).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= PER_SOURCE_WINDOW {
            *e = (now, 0);
        }
        if e.1 >= PER_SOURCE_NEW {
            return Err(Refusal { retry_after: true, ..Refusal::new(503, "Subscription Rate Exceeded") });
        }
        e.1 += 1;
        Ok(())
    }

    /// Files a new subscription whose 200 went out with `dialog`'s local tag, and sends its
    /// first NOTIFY.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        sig: &mut Signalling,
        now: Instant,
        package: Package,
        extension_id: i64,
        account: String,
        dialog: Dialog,
        peer: Peer,
        expires: u32,
    ) {
        let id = dialog.id.clone();
        let sub = Subscription { package, extension_id, account, dialog, peer, expires_at: now + Duration::from_secs(u64::from(expires)), ended: false };
        self.subs.insert(id.clone(), sub);
        self.notify(sig, now, &id, expires == 0);
    }

    /// A refresh (or `Expires: 0`) of an existing subscription: its id (then answer 200
    /// and [`Subscriptions::notify`]), or the status to answer.
    pub(crate) fn refresh(&mut self, now: Instant, msg: &Message, extension_id: i64, expires: u32) -> Result<DialogId, u16> {
        let id = DialogId::of_incoming(msg).ok_or(481u16)?;
        let sub = self.subs.get_mut(&id).ok_or(481u16)?;
        if sub.extension_id != extension_id {
            return Err(403);
        }
        if sub.dialog.on_request(msg).is_err() {
            return Err(500);
        }
        sub.expires_at = now + Duration::from_secs(u64::from(expires));
        Ok(id)
    }

    /// Sends a NOTIFY on `id` with the package's current body; `last` terminates it.
    pub(crate) fn notify(&mut self, sig: &mut Signalling, now: Instant, id: &DialogId, last: bool) {
        let Some(sub) = self.subs.get_mut(id) else { return };
        if sub.ended {
            return;
        }
        let body = sub.package.body(sub, &self.state);
        let remaining = sub.expires_at.saturating_duration_since(now).as_secs();
        let state = if last {
            sub.ended = true;
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={remaining}")
        };
        let via = sig.via_for(sub.peer);
        let mut n = sub.dialog.request(Method::Notify, &via);
        let built = n
            .push_header(HeaderName::Event, sub.package.as_str())
            .and_then(|()| n.push_header(HeaderName::SubscriptionState, &state))
            .and_then(|()| n.set_body(Some(sub.package.content_type()), bytes::Bytes::from(body)));
        let peer = sub.peer;
        if built.is_err() {
            tracing::warn!("a NOTIFY could not be written");
            return;
        }
        match sig.txl.send_request(now, peer, n) {
            Ok(tx) => {
                self.notifies.insert(tx, id.clone());
            }
            Err(e) => tracing::debug!(error = %e, "NOTIFY not sent"),
        }
        if last {
            // nothing more goes out on it; answers to the last NOTIFY find no subscription
            self.subs.remove(id);
        }
    }

    /// The answer to a NOTIFY: 481 (or any failure other than a transient 5xx) ends the
    /// subscription (RFC 6665 §4.2.2).
    pub(crate) fn on_notify_answer(&mut self, tx: ClientTxId, code: u16) {
        if self.unsolicited.remove(&tx) {
            if code >= 300 {
                tracing::debug!(code, "unsolicited MWI NOTIFY refused");
            }
            return;
        }
        let Some(id) = self.notifies.remove(&tx) else { return };
        if code >= 300
            && !matches!(code, 401 | 407 | 491 | 500..=599)
            && let Some(s) = self.subs.remove(&id)
        {
            tracing::info!(extension_id = s.extension_id, code, package = s.package.as_str(), "subscription ended by the subscriber's answer to NOTIFY");
        }
    }

    /// No answer to a NOTIFY: the subscriber is gone.
    pub(crate) fn on_notify_failure(&mut self, tx: ClientTxId) {
        if self.unsolicited.remove(&tx) {
            return tracing::debug!("unsolicited MWI NOTIFY unanswered");
        }
        let Some(id) = self.notifies.remove(&tx) else { return };
        if let Some(s) = self.subs.remove(&id) {
            tracing::info!(extension_id = s.extension_id, package = s.package.as_str(), "subscription ended: NOTIFY unanswered");
        }
    }

    /// New voicemail counts for an extension: NOTIFY its message-summary subscribers when
    /// they changed. Whether they changed.
    pub(crate) fn set_mwi(&mut self, sig: &mut Signalling, now: Instant, extension_id: i64, counts: MwiCounts) -> bool {
        let before = self.state.mwi.insert(extension_id, counts);
        if before == Some(counts) || (before.is_none() && counts == MwiCounts::default()) {
            return false;
        }
        let ids: Vec<DialogId> =
            self.subs.iter().filter(|(_, s)| s.package == Package::MessageSummary && s.extension_id == extension_id).map(|(id, _)| id.clone()).collect();
        for id in ids {
            self.notify(sig, now, &id, false);
        }
        true
    }

    /// Whether a phone at `source` holds a message-summary subscription of `extension_id`.
    fn subscribed(&self, extension_id: i64, source: Peer) -> bool {
        self.subs.values().any(|s| s.package == Package::MessageSummary && s.extension_id == extension_id && s.peer == source && !s.ended)
    }

    /// Sends the extension's current counts in an out-of-dialog NOTIFY to each of
    /// `bindings` (its registered contacts) that holds no message-summary subscription.
    pub(crate) fn notify_unsolicited(&mut self, sig: &mut Signalling, now: Instant, extension_id: i64, extension: &str, bindings: &[Binding]) {
        let counts = self.state.mwi.get(&extension_id).copied().unwrap_or_default();
        let quiet: Vec<&Binding> = bindings.iter().filter(|b| !self.subscribed(extension_id, b.source)).collect();
        for b in quiet {
            let dest = b.next_hop;
            let aor = format!("sip:{extension}@{}", sig.domain_for(dest));
            let body = message_summary(counts, &aor);
            let via = sig.via_for(dest);
            let tag = sig.ids.tag();
            let call_id = sig.ids.call_id();
            let built = (|| {
                let mut m = Message::request(Method::Notify, &b.contact)?;
                m.push_header(HeaderName::Via, &via)?;
                m.push_header(HeaderName::MaxForwards, "70")?;
                m.push_header(HeaderName::From, &name_addr(None, &aor, Some(&tag)))?;
                m.push_header(HeaderName::To, &name_addr(None, &aor, None))?;
                m.push_header(HeaderName::CallId, &call_id)?;
                m.push_header(HeaderName::CSeq, "1 NOTIFY")?;
                m.push_header(HeaderName::Event, Package::MessageSummary.as_str())?;
                m.push_header(HeaderName::UserAgent, &sig.user_agent)?;
                m.set_body(Some(Package::MessageSummary.content_type()), bytes::Bytes::from(body))?;
                Ok::<_, sip::msg::HeaderInjection>(m)
            })();
            let Ok(m) = built else {
                tracing::debug!(extension_id, contact = %b.contact, "an unsolicited MWI NOTIFY could not be written");
                continue;
            };
            match sig.txl.send_request(now, dest, m) {
                Ok(tx) => {
                    self.unsolicited.insert(tx);
                }
                Err(e) => tracing::debug!(error = %e, "unsolicited MWI NOTIFY not sent"),
            }
        }
    }

    /// Ends the subscriptions that lapsed (a last NOTIFY each), and forgets quiet sources.
    pub(crate) fn expire(&mut self, sig: &mut Signalling, now: Instant) {
        let due: Vec<DialogId> = self.subs.iter().filter(|(_, s)| s.expires_at <= now).map(|(id, _)| id.clone()).collect();
        for id in due {
            self.notify(sig, now, &id, true);
        }
        self.recent.retain(|_, (start, _)| now.saturating_duration_since(*start) < PER_SOURCE_WINDOW);
    }

    /// Drops the subscriptions of extensions that no longer exist.
    pub(crate) fn retain_extensions(&mut self, keep: impl Fn(i64) -> bool) {
        self.subs.retain(|_, s| keep(s.extension_id));
    }

    /// Every subscription of each extension, for the shared view.
    pub(crate) fn infos(&self, wall: impl Fn(Instant) -> i64) -> HashMap<i64, Vec<SubscriptionInfo>> {
        let mut m: HashMap<i64, Vec<SubscriptionInfo>> = HashMap::new();
        for s in self.subs.values() {
            m.entry(s.extension_id).or_default().push(SubscriptionInfo {
                package: s.package,
                peer: s.peer.addr,
                transport: s.peer.transport,
                expires_unix: wall(s.expires_at),
            });
        }
        m
    }

    /// How many subscriptions are held.
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Message {
        let raw = format!(
            "SUBSCRIBE sip:201@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\nFrom: <sip:201@pbx>;tag=a\r\nTo: <sip:201@pbx>\r\nCall-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:201@127.0.0.1:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn event_headers() {
        assert_eq!(event_of(&req("")), EventHeader::Missing);
        assert_eq!(event_of(&req("Event: message-summary\r\n")), EventHeader::Known(Package::MessageSummary));
        assert_eq!(event_of(&req("Event: Message-Summary;id=3\r\n")), EventHeader::Known(Package::MessageSummary));
        assert_eq!(event_of(&req("Event: presence\r\n")), EventHeader::Unsupported);
        assert_eq!(event_of(&req("Event: ;;\r\n")), EventHeader::Malformed);
        assert_eq!(event_of(&req("Event: mess<age>\r\n")), EventHeader::Malformed);
    }

    #[test]
    fn expires_is_read_saturating() {
        assert_eq!(requested_expires(&req("")), Some(DEFAULT_EXPIRES));
        assert_eq!(requested_expires(&req("Expires: 0\r\n")), Some(0));
        assert_eq!(requested_expires(&req("Expires: 4294967295\r\n")), Some(u32::MAX));
        // (a negative or non-numeric Expires never parses: the message is answered 400)
        assert!(Message::parse(req("").to_bytes().as_ref()).is_ok());
    }

    #[test]
    fn message_summary_body() {
        let b = message_summary(MwiCounts { new: 2, old: 1 }, "sip:201@pbx");
        assert_eq!(b, "Messages-Waiting: yes\r\nMessage-Account: sip:201@pbx\r\nVoice-Message: 2/1 (0/0)\r\n");
        assert!(message_summary(MwiCounts { new: 0, old: 4 }, "sip:x@y").starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn sources_are_limited() {
        let mut s = Subscriptions::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::ZERO + Duration::from_secs(10);
        for _ in 0..PER_SOURCE_NEW {
            assert!(s.admit(t, ip, 1).is_ok());
        }
        assert_eq!(s.admit(t, ip, 1).unwrap_err().code, 503);
        // another source is not affected, and the window passes
        assert!(s.admit(t, "192.0.2.2".parse().unwrap(), 1).is_ok());
        assert!(s.admit(t + PER_SOURCE_WINDOW, ip, 1).is_ok());
    }
}
