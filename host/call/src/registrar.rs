//! The registrar (RFC 3261 §10.3): bindings of extensions to contacts, in a `DashMap` the
//! event loop writes and the API reads, persisted write-behind so they survive a restart.
//!
//! NAT: a binding remembers where its REGISTER came from. Requests for it go to the contact's
//! own address only when the contact names the very IP the REGISTER came from (a phone with a
//! public or LAN address, or a second socket on the same host); otherwise — a private address
//! behind NAT, a host name, any stream transport — they go back to the source address
//! and port (the NAT binding, or the TCP connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use sip::msg::{Contact, Uri};
use sip::transaction::{Peer, Transport};
use sip::{Instant, Message};

use crate::clock::wall;
use crate::config::RegistrarConfig;
use crate::directory::User;
use crate::persist::PersistOp;

/// One binding of an extension to a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI, as registered (what the Request-URI of a call to it is).
    pub contact: String,
    /// RFC 5626 `+sip.instance`, when given: a new contact with the same instance replaces
    /// the old one.
    pub instance: Option<String>,
    /// Where the REGISTER came from.
    pub source: Peer,
    /// Where requests for this contact go.
    pub next_hop: Peer,
    /// When it expires (on the PBX clock, which counts from the Unix epoch).
    pub expires: Instant,
    /// When it was first registered.
    pub registered_at: Instant,
    /// The REGISTER's Call-ID.
    pub call_id: String,
    /// The REGISTER's CSeq number.
    pub cseq: u32,
    /// The phone's User-Agent.
    pub user_agent: Option<String>,
    /// The expiry the store holds, if it holds the binding.
    persisted_expires: Option<Instant>,
}

impl Binding {
    /// Seconds left at `now`.
    pub fn remaining(&self, now: Instant) -> u64 {
        (self.expires - now).as_secs()
    }

    fn record(&self, extension_id: i64) -> store::NewRegistration {
        store::NewRegistration {
            extension_id,
            contact_uri: self.contact.clone(),
            transport: Some(transport_name(self.source.transport).to_owned()),
            user_agent: self.user_agent.clone(),
            source_ip: Some(self.source.addr.ip().to_string()),
            source_port: Some(i64::from(self.source.addr.port())),
            expires: wall(self.expires),
            call_id: Some(self.call_id.clone()),
            cseq: Some(i64::from(self.cseq)),
            push_token: None,
            push_platform: None,
            device_id: self.instance.clone(),
        }
    }
}

/// The store's name of a transport.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
    }
}

fn transport_from_name(s: &str) -> Option<Transport> {
    Some(match s.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        "ws" => Transport::Ws,
        "wss" => Transport::Wss,
        _ => return None,
    })
}

/// Where requests for `contact`, registered from `source`, go (see the module docs).
pub fn next_hop(contact: &str, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    let Some(Uri::Sip(u)) = Uri::parse(contact) else { return source };
    match u.host.ip() {
        Some(ip) if ip == source.addr.ip() => {
            Peer { transport: source.transport, addr: SocketAddr::new(ip, u.port.unwrap_or(if u.secure { 5061 } else { 5060 })) }
        }
        _ => source,
    }
}

/// What a REGISTER came to.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Accepted: the bindings now held, as `(contact, seconds left)`, for the 200's Contacts.
    Ok(Vec<(String, u64)>),
    /// An expiry below the minimum: answer 423 with this Min-Expires.
    TooBrief(u32),
    /// A malformed request: answer with this status and reason.
    Reject(u16, &'static str),
}

/// The shared bindings: extension id → its contacts.
pub type Bindings = Arc<DashMap<i64, Vec<Binding>>>;

/// The registrar.
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    bindings: Bindings,
    next_sweep: Instant,
}

/// What changed for an extension, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The extension.
    pub extension_id: i64,
    /// Its number of contacts now.
    pub count: usize,
    /// Whether a contact was added, removed or only refreshed.
    pub action: ChangeAction,
}

/// See [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// A new contact.
    Added,
    /// A contact went (unregistered, replaced, expired, evicted).
    Removed,
    /// Only expiries moved.
    Refreshed,
}

impl Registrar {
    /// An empty registrar writing into `bindings`.
    pub fn new(cfg: RegistrarConfig, bindings: Bindings) -> Registrar {
        Registrar { cfg, bindings, next_sweep: Instant::ZERO }
    }

    /// The shared map.
    #[cfg(test)]
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// The contacts of an extension that are live at `now`.
    pub fn contacts(&self, extension_id: i64, now: Instant) -> Vec<Binding> {
        self.bindings.get(&extension_id).map(|v| v.iter().filter(|b| b.expires > now).cloned().collect()).unwrap_or_default()
    }

    /// Applies a REGISTER from `user` (already authenticated and authorised for the AOR).
    pub fn register(&mut self, now: Instant, user: &User, req: &Message, source: Peer, ops: &mut Vec<PersistOp>, changes: &mut Vec<Change>) -> RegisterOutcome {
        let out = {
            let mut entry = self.bindings.entry(user.id).or_default();
            apply(&self.cfg, entry.value_mut(), now, user, req, source, ops, changes)
        };
        self.bindings.remove_if(&user.id, |_, v| v.is_empty());
        out
    }

    /// Removes the bindings expired at `now` (checked once a second at most).
    pub fn expire(&mut self, now: Instant, ops: &mut Vec<PersistOp>, changes: &mut Vec<Change>) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_secs(1);
        let mut emptied = Vec::new();
        for mut e in self.bindings.iter_mut() {
            let id = *e.key();
            let before = e.len();
            e.value_mut().retain(|b| {
                let live = b.expires > now;
                if !live {
                    ops.push(PersistOp::RegDelete { extension_id: id, contact_uri: b.contact.clone() });
                }
                live
            });
            if e.len() != before {
                changes.push(Change { extension_id: id, count: e.len(), action: ChangeAction::Removed });
            }
            if e.is_empty() {
                emptied.push(id);
            }
        }
        for id in emptied {
            self.bindings.remove_if(&id, |_, v| v.is_empty());
        }
    }

    /// Forgets the bindings of extensions that no longer exist (the store deleted their rows
    /// with them).
    pub fn retain_extensions(&mut self, exists: impl Fn(i64) -> bool, changes: &mut Vec<Change>) {
        let gone: Vec<i64> = self.bindings.iter().map(|e| *e.key()).filter(|id| !exists(*id)).collect();
        for id in gone {
            if self.bindings.remove(&id).is_some() {
                changes.push(Change { extension_id: id, count: 0, action: ChangeAction::Removed });
            }
        }
    }

    /// Writes every binding whose stored expiry lags (at shutdown).
    pub fn flush_all(&self, ops: &mut Vec<PersistOp>) {
        for mut e in self.bindings.iter_mut() {
            let id = *e.key();
            for b in e.value_mut() {
                if b.persisted_expires != Some(b.expires) {
                    ops.push(PersistOp::RegUpsert(b.record(id)));
                    b.persisted_expires = Some(b.expires);
                }
            }
        }
    }

    /// Loads bindings the store kept across a restart (unexpired ones only).
    pub fn restore(&mut self, now: Instant, rows: Vec<store::Registration>) -> usize {
        let mut n = 0;
        for r in rows {
            let expires = Instant::from_duration(Duration::from_millis(u64::try_from(r.expires.unix_millis()).unwrap_or(0)));
            if expires <= now {
                continue;
            }
            let registered_at = Instant::from_duration(Duration::from_millis(u64::try_from(r.registered_at.unix_millis()).unwrap_or(0)));
            let (Some(ip), Some(port)) = (r.source_ip.as_deref().and_then(|s| s.parse().ok()), r.source_port) else {
                continue;
            };
            let transport = r.transport.as_deref().and_then(transport_from_name).unwrap_or(Transport::Udp);
            let source = Peer { transport, addr: SocketAddr::new(ip, u16::try_from(port).unwrap_or(5060)) };
            let b = Binding {
                next_hop: next_hop(&r.contact_uri, source),
                contact: r.contact_uri,
                instance: r.device_id,
                source,
                expires,
                registered_at,
                call_id: r.call_id.unwrap_or_default(),
                cseq: r.cseq.and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
                user_agent: r.user_agent,
                persisted_expires: Some(expires),
            };
            let mut list = self.bindings.entry(r.extension_id).or_default();
            list.reserve_exact(1);
            list.push(b);
            n += 1;
        }
        n
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    cfg: &RegistrarConfig,
    list: &mut Vec<Binding>,
    now: Instant,
    user: &User,
    req: &Message,
    source: Peer,
    ops: &mut Vec<PersistOp>,
    changes: &mut Vec<Change>,
) -> RegisterOutcome {
    let (Some(call_id), Some(cseq)) = (req.call_id(), req.cseq()) else {
        return RegisterOutcome::Reject(400, "Bad Request");
    };
    let contacts: Vec<Contact<'_>> = req.contacts().collect();
    let header_expires = req.expires();
    let before = list.len();
    let mut added = false;
    let mut removed = false;

    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        if contacts.len() != 1 || header_expires != Some(0) {
            return RegisterOutcome::Reject(400, "Invalid Contact *");
        }
        // RFC 3261 §10.3 step 6: a binding with the same Call-ID and a higher CSeq wins.
        if list.iter().any(|b| b.call_id == call_id && b.cseq > cseq.seq) {
            return RegisterOutcome::Reject(500, "Out of Order");
        }
        for b in list.drain(..) {
            ops.push(PersistOp::RegDelete { extension_id: user.id, contact_uri: b.contact });
        }
        if before > 0 {
            changes.push(Change { extension_id: user.id, count: 0, action: ChangeAction::Removed });
        }
        return RegisterOutcome::Ok(Vec::new());
    }

    // First pass: validate everything, so a failure leaves the bindings untouched.
    let mut wanted: Vec<(String, Option<String>, u32)> = Vec::with_capacity(contacts.len());
    let mut repeated = false;
    for c in &contacts {
        let Some(addr) = c.addr() else { continue };
        let asked = c.expires().or(header_expires).unwrap_or(cfg.default_expires);
        if asked != 0 && asked < cfg.min_expires {
            return RegisterOutcome::TooBrief(cfg.min_expires);
        }
        let instance = c.instance().map(|i| i.into_owned());
        if let Some(b) = list.iter().find(|b| same_binding(b, addr.uri_str, instance.as_deref()))
            && b.call_id == call_id
        {
            if b.cseq > cseq.seq {
                return RegisterOutcome::Reject(500, "Out of Order");
            }
            // the very request again (its answer was lost): the same answer, no change
            repeated |= b.cseq == cseq.seq;
        }
        wanted.push((addr.uri_str.to_owned(), instance, asked.min(cfg.max_expires)));
    }
    if repeated {
        return RegisterOutcome::Ok(list.iter().map(|b| (b.contact.clone(), b.remaining(now))).collect());
    }

    // Second pass: apply.
    let user_agent = req.user_agent().map(str::to_owned);
    for (contact, instance, secs) in wanted {
        let pos = list.iter().position(|b| same_binding(b, &contact, instance.as_deref()));
        if secs == 0 {
            if let Some(i) = pos {
                let b = list.remove(i);
                ops.push(PersistOp::RegDelete { extension_id: user.id, contact_uri: b.contact });
                removed = true;
            }
            continue;
        }
        let expires = now + Duration::from_secs(u64::from(secs));
        let hop = next_hop(&contact, source);
        match pos {
            Some(i) => {
                let b = &mut list[i];
                let moved = b.contact != contact || b.source != source || b.next_hop != hop || b.user_agent != user_agent;
                if b.contact != contact {
                    // the same instance under a new contact: the old row goes
                    ops.push(PersistOp::RegDelete { extension_id: user.id, contact_uri: std::mem::take(&mut b.contact) });
                    b.persisted_expires = None;
                }
                b.contact = contact;
                b.instance = instance;
                b.source = source;
                b.next_hop = hop;
                b.expires = expires;
                b.call_id = call_id.to_owned();
                b.cseq = cseq.seq;
                b.user_agent = user_agent.clone();
                // Refreshes that only move the expiry a little are not written: the store
                // is at most a tenth of the interval behind (exact again at shutdown).
                let lag = b.persisted_expires.map(|p| expires - p);
                let slack = Duration::from_secs(u64::from(secs) / 10).max(Duration::from_secs(1));
                if moved || lag.is_none_or(|l| l >= slack) {
                    ops.push(PersistOp::RegUpsert(b.record(user.id)));
                    b.persisted_expires = Some(expires);
                }
            }
            None => {
                let b = Binding {
                    contact,
                    instance,
                    source,
                    next_hop: hop,
                    expires,
                    registered_at: now,
                    call_id: call_id.to_owned(),
                    cseq: cseq.seq,
                    user_agent: user_agent.clone(),
                    persisted_expires: Some(expires),
                };
                ops.push(PersistOp::RegUpsert(b.record(user.id)));
                // most extensions have one or two phones: no room for four (Vec's default)
                list.reserve_exact(1);
                list.push(b);
                added = true;
            }
        }
    }

    // Over the limit: the oldest contacts make room (a phone that re-registers under a
    // new contact must not lock itself out until the old binding expires).
    let max = user.max_registrations.max(1) as usize;
    while list.len() > max {
        let Some((i, _)) = list.iter().enumerate().min_by_key(|(_, b)| b.registered_at) else { break };
        let b = list.remove(i);
        tracing::info!(extension = %user.extension, contact = %b.contact, max, "registration limit reached: oldest contact dropped");
        ops.push(PersistOp::RegDelete { extension_id: user.id, contact_uri: b.contact });
        removed = true;
    }
    let now_held: Vec<(String, u64)> = list.iter().map(|b| (b.contact.clone(), b.remaining(now))).collect();
    let count = list.len();
    let action = if added {
        Some(ChangeAction::Added)
    } else if removed {
        Some(ChangeAction::Removed)
    } else if count > 0 {
        Some(ChangeAction::Refreshed)
    } else {
        None
    };
    if let Some(action) = action {
        changes.push(Change { extension_id: user.id, count, action });
    }
    RegisterOutcome::Ok(now_held)
}

fn same_binding(b: &Binding, contact: &str, instance: Option<&str>) -> bool {
    match (instance, b.instance.as_deref()) {
        (Some(i), Some(j)) => i == j,
        _ => b.contact == contact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Peer {
        Peer { transport: Transport::Udp, addr: s.parse().unwrap() }
    }

    fn register(contacts: &[&str], expires: Option<u32>, call_id: &str, cseq: u32) -> Message {
        let mut m = Message::request(sip::Method::Register, "sip:pbx")
            .unwrap()
            .with_header(sip::HeaderName::Via, "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKx")
            .unwrap()
            .with_header(sip::HeaderName::From, "<sip:alice@pbx>;tag=1")
            .unwrap()
            .with_header(sip::HeaderName::To, "<sip:alice@pbx>")
            .unwrap()
            .with_header(sip::HeaderName::CallId, call_id)
            .unwrap()
            .with_header(sip::HeaderName::CSeq, &format!("{cseq} REGISTER"))
            .unwrap();
        for c in contacts {
            m.push_header(sip::HeaderName::Contact, c).unwrap();
        }
        if let Some(e) = expires {
            m.push_header(sip::HeaderName::Expires, &e.to_string()).unwrap();
        }
        Message::parse(&m.to_bytes()).unwrap()
    }

    fn setup() -> (Registrar, User) {
        let r = Registrar::new(RegistrarConfig::default(), Arc::new(DashMap::new()));
        let mut u = User::for_test(1, "101", "alice", "r", "pw");
        u.max_registrations = 2;
        (r, u)
    }

    const T0: Instant = Instant::from_millis(1_700_000_000_000);

    #[test]
    fn nat_next_hop() {
        let src = peer("203.0.113.5:40000");
        assert_eq!(next_hop("sip:a@192.168.1.10:5060", src), src, "private contact behind NAT");
        assert_eq!(next_hop("sip:a@203.0.113.5:5070", src), peer("203.0.113.5:5070"), "same IP: trust the port");
        assert_eq!(next_hop("sip:a@203.0.113.5", src), peer("203.0.113.5:5060"));
        assert_eq!(next_hop("sip:a@phone.example.com", src), src);
        let tcp = Peer { transport: Transport::Tcp, addr: "203.0.113.5:40000".parse().unwrap() };
        assert_eq!(next_hop("sip:a@203.0.113.5:5070;transport=tcp", tcp), tcp, "streams reuse the connection");
    }

    #[test]
    fn register_refresh_unregister() {
        let (mut r, u) = setup();
        let (mut ops, mut ch) = (Vec::new(), Vec::new());
        let src = peer("10.0.0.5:5060");
        let out = r.register(T0, &u, &register(&["<sip:alice@10.0.0.5>"], Some(120), "c1", 1), src, &mut ops, &mut ch);
        assert_eq!(out, RegisterOutcome::Ok(vec![("sip:alice@10.0.0.5".into(), 120)]));
        assert!(matches!(&ops[..], [PersistOp::RegUpsert(n)] if n.contact_uri == "sip:alice@10.0.0.5"));
        assert_eq!(ch, vec![Change { extension_id: 1, count: 1, action: ChangeAction::Added }]);
        assert_eq!(r.contacts(1, T0)[0].next_hop, peer("10.0.0.5:5060"));

        // a quick refresh is not written; one a tenth of the interval later is
        ops.clear();
        r.register(T0 + Duration::from_secs(2), &u, &register(&["<sip:alice@10.0.0.5>"], Some(120), "c1", 2), src, &mut ops, &mut ch);
        assert!(ops.is_empty(), "{ops:?}");
        r.register(T0 + Duration::from_secs(13), &u, &register(&["<sip:alice@10.0.0.5>"], Some(120), "c1", 3), src, &mut ops, &mut ch);
        assert_eq!(ops.len(), 1);
        // an older CSeq on the same Call-ID fails and changes nothing
        let out = r.register(T0 + Duration::from_secs(14), &u, &register(&["<sip:alice@10.0.0.5>"], Some(0), "c1", 2), src, &mut ops, &mut ch);
        assert_eq!(out, RegisterOutcome::Reject(500, "Out of Order"));
        assert_eq!(r.contacts(1, T0).len(), 1);
        // the same request again (a retransmission) gets the same answer and changes nothing
        ops.clear();
        let out = r.register(T0 + Duration::from_secs(14), &u, &register(&["<sip:alice@10.0.0.5>"], Some(0), "c1", 3), src, &mut ops, &mut ch);
        assert_eq!(out, RegisterOutcome::Ok(vec![("sip:alice@10.0.0.5".into(), 119)]));
        assert!(ops.is_empty());

        ops.clear();
        let out = r.register(T0 + Duration::from_secs(20), &u, &register(&["<sip:alice@10.0.0.5>"], Some(0), "c1", 4), src, &mut ops, &mut ch);
        assert_eq!(out, RegisterOutcome::Ok(vec![]));
        assert!(matches!(&ops[..], [PersistOp::RegDelete { .. }]));
        assert!(r.bindings().get(&1).is_none());
    }

    #[test]
    fn bounds_star_and_limit() {
        let (mut r, u) = setup();
        let (mut ops, mut ch) = (Vec::new(), Vec::new());
        let src = peer("10.0.0.5:5060");
        assert_eq!(r.register(T0, &u, &register(&["<sip:a@10.0.0.5>"], Some(30), "c1", 1), src, &mut ops, &mut ch), RegisterOutcome::TooBrief(60));
        let out = r.register(T0, &u, &register(&["<sip:a@10.0.0.5>;expires=99999"], None, "c1", 2), src, &mut ops, &mut ch);
        assert_eq!(out, RegisterOutcome::Ok(vec![("sip:a@10.0.0.5".into(), 3600)]), "clamped to max");
        r.register(T0 + Duration::from_secs(1), &u, &register(&["<sip:b@10.0.0.5>"], None, "c2", 1), src, &mut ops, &mut ch);
        let out = r.register(T0 + Duration::from_secs(2), &u, &register(&["<sip:c@10.0.0.5>"], None, "c3", 1), src, &mut ops, &mut ch);
        let RegisterOutcome::Ok(held) = out else { panic!() };
        let names: Vec<&str> = held.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["sip:b@10.0.0.5", "sip:c@10.0.0.5"], "the oldest was evicted at max_registrations=2");
        assert_eq!(r.register(T0, &u, &register(&["*"], Some(60), "c9", 1), src, &mut ops, &mut ch), RegisterOutcome::Reject(400, "Invalid Contact *"));
        ops.clear();
        assert_eq!(r.register(T0, &u, &register(&["*"], Some(0), "c9", 1), src, &mut ops, &mut ch), RegisterOutcome::Ok(vec![]));
        assert_eq!(ops.len(), 2);
        assert!(r.contacts(1, T0).is_empty());
    }

    #[test]
    fn instance_replaces_and_expiry_sweeps() {
        let (mut r, u) = setup();
        let (mut ops, mut ch) = (Vec::new(), Vec::new());
        let src = peer("10.0.0.5:5060");
        let inst = ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"";
        r.register(T0, &u, &register(&[&format!("<sip:a@10.0.0.5:5060>{inst}")], Some(60), "c1", 1), src, &mut ops, &mut ch);
        let src2 = peer("10.0.0.5:5062");
        r.register(T0, &u, &register(&[&format!("<sip:a@10.0.0.5:5062>{inst}")], Some(60), "c2", 1), src2, &mut ops, &mut ch);
        let held = r.contacts(1, T0);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].contact, "sip:a@10.0.0.5:5062");
        ops.clear();
        r.expire(T0 + Duration::from_secs(61), &mut ops, &mut ch);
        assert!(matches!(&ops[..], [PersistOp::RegDelete { contact_uri, .. }] if contact_uri == "sip:a@10.0.0.5:5062"));
        assert!(r.bindings().is_empty());
    }

    #[test]
    fn deleted_extensions_lose_their_bindings() {
        let (mut r, u) = setup();
        let (mut ops, mut ch) = (Vec::new(), Vec::new());
        r.register(T0, &u, &register(&["<sip:a@10.0.0.5>"], Some(600), "c1", 1), peer("10.0.0.5:5060"), &mut ops, &mut ch);
        ch.clear();
        r.retain_extensions(|id| id != 1, &mut ch);
        assert!(r.contacts(1, T0).is_empty());
        assert_eq!(ch, vec![Change { extension_id: 1, count: 0, action: ChangeAction::Removed }]);
    }

    #[test]
    fn restore_skips_expired() {
        let (mut r, _) = setup();
        let row = |contact: &str, secs: i64| store::Registration {
            id: 1,
            extension_id: 7,
            contact_uri: contact.into(),
            transport: Some("udp".into()),
            user_agent: None,
            source_ip: Some("203.0.113.9".into()),
            source_port: Some(4000),
            expires: store::Timestamp::from_unix_millis(1_700_000_000_000 + secs * 1000).unwrap(),
            registered_at: store::Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            call_id: Some("x".into()),
            cseq: Some(3),
            push_token: None,
            push_platform: None,
            device_id: None,
        };
        let n = r.restore(T0 + Duration::from_secs(10), vec![row("sip:a@192.168.0.2", 60), row("sip:b@192.168.0.3", 5)]);
        assert_eq!(n, 1);
        let c = r.contacts(7, T0 + Duration::from_secs(10));
        assert_eq!(c[0].next_hop, peer("203.0.113.9:4000"));
    }
}
