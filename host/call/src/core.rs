//! The PBX as a state machine: bytes, commands and instants in; bytes to send, store writes,
//! events and deadlines out. It owns the transaction layer, the registrar, the calls
//! (b2bua.rs) and the security guard, and never touches a socket or reads the clock — the
//! event loop (event_loop.rs) drives it, and the tests drive it with bytes and a fake clock.
//!
//! Order of a request's checks: banned source (dropped before parsing), parse errors
//! (answered per `ParseError::disposition`), scanner User-Agent (dropped), rate limit
//! (dropped; trusted trunks exempt), transaction matching, then the method's handler.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::auth::{Algorithm, AuthError, Credentials, DigestServer, ReplayGuard};
use sip::msg::{split_list, HeaderInjection};
use sip::transaction::{Event, Peer, ServerTxId, Transmit};
use sip::{Disposition, HeaderName, IdGenerator, Instant, Message, Method, ParseError, TransactionLayer};

use crate::anchor::MediaPort;
use crate::b2bua::{B2bua, Ctx};
use crate::config::SipConfig;
use crate::directory::{Directory, User};
use crate::events::{PbxEvent, Shared};
use crate::persist::PersistOp;
use crate::registrar::{RegisterOutcome, Registrar};
use crate::security::Guard;
use crate::signalling::Signalling;
pub(crate) use crate::signalling::{Locator, Ports};
use crate::subscriptions::{self, EventHeader, MwiCounts, Subscriptions};
use crate::trunks::Trunks;

/// The methods we answer or relay, for Allow.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, MESSAGE, NOTIFY, SUBSCRIBE";
/// What we support, for Supported.
pub(crate) const SUPPORTED: &str = "timer, replaces";

/// A digest HA1 used for users that do not exist, so a made-up user costs the same work as a
/// wrong password and fails the same way.
/// Retry-After (seconds) of the 503 a draining server answers new calls and OPTIONS with.
const DRAIN_RETRY_AFTER: &str = "300";

const DUMMY_HA1_MD5: &str = "00000000000000000000000000000000";
const DUMMY_HA1_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Commands from the async world (the handle) to the core.
pub(crate) enum Command {
    /// A new directory snapshot.
    Directory(Arc<Directory>),
    /// Something for a call (a controller's action, a media event).
    Call(crate::b2bua::CallCommand),
    /// Test a trunk: an OPTIONS, and a REGISTER for a registration trunk.
    TestTrunk { trunk_id: i64, reply: tokio::sync::oneshot::Sender<Result<crate::trunks::TrunkTest, crate::CallError>> },
    /// Voicemail counts of every extension with a box (the message-waiting lamps); an
    /// extension not in the map has none.
    Mwi(std::collections::HashMap<i64, MwiCounts>),
    /// Stop: end every call, flush the registrations.
    Shutdown,
}

/// What authenticating a request came to.
pub(crate) enum AuthResult {
    /// The user proved who they are.
    Ok(Arc<User>),
    /// Answer with a challenge (401/407); `stale` when the nonce merely expired.
    Challenge { stale: bool },
}

/// The PBX state machine: requests in, checked (ban, parse, scanner, rate, RFC 3261 §8.2.2),
/// authenticated, and dispatched to the registrar or the B2BUA; bytes, store writes and
/// deadlines out.
pub(crate) struct Core {
    pub(crate) cfg: SipConfig,
    pub(crate) sig: Signalling,
    /// Tags and nonce salts of challenges (built with `&self`).
    nonce_ids: std::cell::RefCell<IdGenerator>,
    digest: DigestServer,
    replay: ReplayGuard,
    pub(crate) guard: Guard,
    pub(crate) dir: Arc<Directory>,
    pub(crate) registrar: Registrar,
    /// The calls.
    pub(crate) b2bua: B2bua,
    /// The trunks' registrations and keep-alives.
    pub(crate) trunks: Trunks,
    /// SUBSCRIBE dialogs and their NOTIFYs (message-summary).
    pub(crate) subs: Subscriptions,
    /// The subscriptions changed since the shared view was last written.
    subs_changed: bool,
    /// The registrar's store writes.
    ops: Vec<PersistOp>,
    pub(crate) shared: Arc<Shared>,
    /// The next housekeeping (registration expiry, guard sweep).
    next_sweep: Instant,
    pub(crate) shutting_down: bool,
    changes: Vec<crate::registrar::Change>,
    /// The clock of the latest input (what the SIP message viewer stamps outgoing messages
    /// with).
    last_now: Instant,
}

impl Core {
    pub(crate) fn new(
        cfg: SipConfig,
        ports: Ports,
        dir: Arc<Directory>,
        seed: [u8; 32],
        shared: Arc<Shared>,
        locate: Locator,
        media: Option<Box<dyn MediaPort>>,
    ) -> Core {
        let digest = DigestServer::new(cfg.digest_key, dir.realm.clone(), cfg.nonce_ttl);
        let registrar = Registrar::new(cfg.registrar, shared.bindings.clone());
        shared.set_directory_counts(&dir);
        // 100 Trying is ours to send, once an INVITE is authenticated and routed: a
        // challenge goes out alone
        let txl = TransactionLayer::new(sip::transaction::Config { auto_trying: false, ..cfg.timers });
        let sig = Signalling::new(txl, IdGenerator::new(seed), ports, locate, cfg.hostname.clone(), cfg.user_agent.clone());
        Core {
            sig,
            guard: Guard::new(cfg.security.clone()),
            nonce_ids: std::cell::RefCell::new(IdGenerator::new(derive_seed(&seed))),
            digest,
            replay: ReplayGuard::new(20_000),
            dir,
            registrar,
            b2bua: B2bua::new(media, shared.clone(), cfg.session_expires, cfg.outbound.clone()),
            trunks: Trunks::new(shared.clone()),
            subs: Subscriptions::default(),
            subs_changed: false,
            ops: Vec::new(),
            shared,
            next_sweep: Instant::ZERO,
            shutting_down: false,
            changes: Vec::new(),
            last_now: Instant::ZERO,
            cfg,
        }
    }

    /// The context a B2BUA input runs in.
    fn cx(&mut self) -> (&mut B2bua, Ctx<'_>) {
        (&mut self.b2bua, Ctx { sig: &mut self.sig, dir: &self.dir, registrar: &self.registrar, trunks: &self.trunks })
    }

    /// Starts the trunks' registrations and keep-alives (the event loop calls it once, with
    /// the clock, before its first turn).
    pub(crate) fn start(&mut self, now: Instant) {
        self.trunks.set_directory(&mut self.sig, now, &self.dir);
    }

    // ----- inputs -----

    /// A datagram (or a stream frame's bytes) from `peer`.
    pub(crate) fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        if self.guard.is_banned(peer.addr.ip(), now) {
            return;
        }
        self.last_now = now;
        self.trace(now, "in", peer, data);
        match Message::parse(data) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => self.handle_parse_error(now, peer, e),
        }
    }

    /// A message parsed by a stream framer.
    pub(crate) fn handle_frame(&mut self, now: Instant, peer: Peer, frame: Result<Message, ParseError>) {
        if self.guard.is_banned(peer.addr.ip(), now) {
            return;
        }
        if let (Ok(m), true) = (&frame, self.cfg.log != crate::config::SipLogMode::Off) {
            self.trace(now, "in", peer, &m.to_bytes());
        }
        match frame {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => self.handle_parse_error(now, peer, e),
        }
    }

    fn handle_parse_error(&mut self, now: Instant, peer: Peer, e: ParseError) {
        let Disposition::Reply(code, reason) = e.disposition() else {
            tracing::debug!(peer = %peer.addr, error = %e, "unreadable SIP message dropped");
            return;
        };
        let Some(req) = e.request() else { return };
        if self.guard.is_scanner(req.user_agent()) || !self.allow(now, peer) {
            return;
        }
        tracing::debug!(peer = %peer.addr, error = %e, code, "malformed SIP request answered");
        let mut req = req.clone();
        req.stamp_received(peer.addr);
        let dest = TransactionLayer::response_destination(&req, peer);
        self.sig.reply_to(dest, &req, code, Some(reason), |_| Ok(()));
    }

    fn allow(&mut self, now: Instant, peer: Peer) -> bool {
        let ip = peer.addr.ip();
        self.dir.trunk_for(ip).is_some() || self.guard.allow_request(ip, now)
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, mut msg: Message) {
        match (msg.method(), msg.status()) {
            (Some(m), _) => self.shared.metrics.count_request_in(m.as_str()),
            (None, Some(code)) => self.shared.metrics.count_response_in(code),
            _ => {}
        }
        if msg.is_request() {
            if self.guard.is_scanner(msg.user_agent()) || !self.allow(now, peer) {
                return;
            }
            // REGISTER and OPTIONS are answered at once and statelessly (RFC 3261 §8.2.7), as
            // a registrar may be: no transaction is kept for 64·T1 per registration. A
            // retransmission is simply answered again.
            if msg.to_tag().is_none() && matches!(msg.method(), Some(Method::Register | Method::Options)) {
                msg.stamp_received(peer.addr);
                let to = TransactionLayer::response_destination(&msg, peer);
                if let Some(f) = request_fault(&msg) {
                    return self.sig.reply_to(to, &msg, f.code, None, |r| f.headers(r));
                }
                return self.on_stateless(now, to, &msg, peer);
            }
        }
        self.sig.txl.handle_message(now, peer, msg);
        self.drain_events(now);
    }

    /// `to` is where the answer goes (RFC 3261 §18.2.2).
    fn on_stateless(&mut self, now: Instant, to: Peer, msg: &Message, source: Peer) {
        if self.shutting_down {
            return self.sig.reply_to(to, msg, 503, None, |r| r.push_header(HeaderName::RetryAfter, "30"));
        }
        // draining: keep-alives are refused so that carriers fail over to another server;
        // phones keep registering (their calls in progress go on)
        if self.draining() && msg.method() == Some(&Method::Options) {
            self.shared.metrics.drain_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.sig.reply_to(to, msg, 503, None, |r| r.push_header(HeaderName::RetryAfter, DRAIN_RETRY_AFTER));
        }
        match msg.method() {
            Some(Method::Register) => self.on_register(now, to, msg, source),
            _ => self.sig.reply_to(to, msg, 200, None, |r| {
                r.push_header(HeaderName::Allow, ALLOW)?;
                r.push_header(HeaderName::Accept, "application/sdp")?;
                r.push_header(HeaderName::Supported, SUPPORTED)
            }),
        }
    }

    /// Runs the timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.sig.txl.handle_timeout(now);
        self.shared.metrics.retransmissions.store(self.sig.txl.retransmissions(), std::sync::atomic::Ordering::Relaxed);
        self.drain_events(now);
        if self.next_sweep <= now {
            self.registrar.expire(now, &mut self.ops, &mut self.changes);
            let held = self.subs.len();
            self.subs.expire(&mut self.sig, now);
            self.subs_changed |= held != self.subs.len();
            self.guard.sweep(now);
            self.next_sweep = now + Duration::from_secs(1);
        }
        self.trunks.handle_timeout(&mut self.sig, now);
        let (b2bua, mut cx) = self.cx();
        b2bua.handle_timeout(&mut cx, now);
        self.drain_events(now);
        self.publish_changes();
    }

    /// A command from the handle.
    pub(crate) fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.last_now = now;
        match cmd {
            Command::Directory(d) => {
                self.set_directory(d);
                self.trunks.set_directory(&mut self.sig, now, &self.dir);
            }
            Command::Shutdown => self.shutdown(now),
            Command::Mwi(counts) => {
                let mut known: Vec<i64> = self.subs.state.mwi.keys().copied().collect();
                known.retain(|id| !counts.contains_key(id));
                let mut changed = Vec::new();
                for id in known {
                    if self.subs.set_mwi(&mut self.sig, now, id, MwiCounts::default()) {
                        changed.push(id);
                    }
                }
                for (id, c) in counts {
                    if self.subs.set_mwi(&mut self.sig, now, id, c) {
                        changed.push(id);
                    }
                }
                for id in changed {
                    let Some(user) = self.dir.by_id(id).filter(|u| u.mwi_unsolicited).cloned() else { continue };
                    let bindings = self.registrar.contacts(id, now);
                    self.subs.notify_unsolicited(&mut self.sig, now, id, &user.extension, &bindings);
                }
            }
            Command::TestTrunk { trunk_id, reply } => self.trunks.start_test(&mut self.sig, now, trunk_id, reply),
            Command::Call(c) => {
                let (b2bua, mut cx) = self.cx();
                b2bua.handle_command(&mut cx, now, c);
            }
        }
        self.drain_events(now);
        self.publish_changes();
    }

    /// A stream to `peer` failed (connection refused, reset, a TLS handshake refused): its
    /// client transactions fail; a trunk behind it keeps `why` for its status.
    pub(crate) fn handle_transport_error(&mut self, now: Instant, peer: Peer, why: Option<String>) {
        self.trunks.note_transport_error(peer, why);
        let mut txs = self.b2bua.client_txs_to(peer);
        txs.extend(self.trunks.client_txs_to(peer));
        for tx in txs {
            self.sig.txl.handle_transport_error(tx);
        }
        self.drain_events(now);
    }

    fn set_directory(&mut self, d: Arc<Directory>) {
        if d.realm != self.dir.realm {
            tracing::info!(realm = %d.realm, "SIP realm changed");
            self.digest = DigestServer::new(self.cfg.digest_key, d.realm.clone(), self.cfg.nonce_ttl);
        }
        self.shared.set_directory_counts(&d);
        self.registrar.retain_extensions(|id| d.by_id(id).is_some(), &mut self.changes);
        let held = self.subs.len();
        self.subs.retain_extensions(|id| d.by_id(id).is_some());
        self.subs_changed |= held != self.subs.len();
        self.dir = d;
    }

    // ----- outputs -----

    /// The next bytes to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.sig.poll_transmit()?;
        self.shared.metrics.count_message(&t.payload, true);
        self.trace_at_last_turn(&t);
        Some(t)
    }

    /// Keeps a message for the SIP message viewer (only while the SIP log is on), under its
    /// call's caller Call-ID.
    fn trace(&mut self, now: Instant, direction: &'static str, peer: Peer, data: &[u8]) {
        let Some(m) = crate::sip_trace::capture(self.cfg.log, direction, peer, data, crate::clock::wall(now).unix_millis()) else { return };
        let Ok(mut store) = self.shared.sip_trace.lock() else { return };
        let group = self.b2bua.caller_call_id(&m.call_id).or_else(|| store.group_of(&m.call_id).map(str::to_owned)).unwrap_or_else(|| m.call_id.clone());
        store.add(&group, m);
    }

    /// An outgoing message, stamped with the clock of the turn that made it.
    fn trace_at_last_turn(&mut self, t: &Transmit) {
        if self.cfg.log != crate::config::SipLogMode::Off {
            let now = self.last_now;
            self.trace(now, "out", t.dest, &t.payload);
        }
    }

    /// Whether the binary asked the PBX to drain (no new calls).
    fn draining(&self) -> bool {
        self.shared.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When `handle_timeout` is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [Some(self.next_sweep), self.sig.txl.poll_timeout(), self.b2bua.poll_timeout(), self.trunks.poll_timeout()].into_iter().flatten().min()
    }

    /// The store writes queued since the last call.
    pub(crate) fn take_ops(&mut self, into: &mut Vec<PersistOp>) {
        into.append(&mut self.ops);
        self.b2bua.take_ops(into);
    }

    /// Whether shutdown has finished its work (no call left).
    pub(crate) fn is_stopped(&self) -> bool {
        self.shutting_down && self.b2bua.is_empty()
    }

    // ----- dispatch -----

    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.sig.txl.poll_event() {
            match ev {
                Event::Request { tx, msg, source } => self.on_request(now, tx, msg, source),
                // a 2xx that matches no transaction of ours is not ours to answer: an ACK and
                // BYE towards whoever sent it would let anyone aim our requests (RFC 3261
                // §18.1.2: a response matching no transaction is discarded)
                Event::StrayResponse { msg, source } => {
                    tracing::debug!(peer = %source.addr, call_id = msg.call_id().unwrap_or(""), "stray response dropped");
                }
                Event::Response { tx, msg } if self.trunks.owns(tx) => {
                    self.trunks.handle_response(&mut self.sig, now, tx, &msg);
                }
                Event::Timeout { tx } if self.trunks.owns(tx) => {
                    self.trunks.handle_failure(&mut self.sig, now, tx, 408);
                }
                Event::TransportError { tx } if self.trunks.owns(tx) => {
                    self.trunks.handle_failure(&mut self.sig, now, tx, 503);
                }
                Event::Response { tx, msg } if self.subs.owns(tx) => {
                    if let Some(code) = msg.status().filter(|c| *c >= 200) {
                        let held = self.subs.len();
                        self.subs.on_notify_answer(tx, code);
                        self.subs_changed |= held != self.subs.len();
                    }
                }
                Event::Timeout { tx } | Event::TransportError { tx } if self.subs.owns(tx) => {
                    self.subs.on_notify_failure(tx);
                    self.subs_changed = true;
                }
                ev => {
                    let (b2bua, mut cx) = self.cx();
                    b2bua.handle_event(&mut cx, now, ev);
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: ServerTxId, msg: Message, source: Peer) {
        let Some(method) = msg.method().cloned() else { return };
        if let Some(f) = request_fault(&msg) {
            return self.sig.reply_with(now, tx, f.code, None, |r| f.headers(r));
        }
        if self.shutting_down && msg.to_tag().is_none() {
            self.sig.reply_with(now, tx, 503, None, |r| r.push_header(HeaderName::RetryAfter, "30"));
            return;
        }
        if self.draining() && msg.to_tag().is_none() && method == Method::Invite {
            self.shared.metrics.drain_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.sig.reply_with(now, tx, 503, None, |r| r.push_header(HeaderName::RetryAfter, DRAIN_RETRY_AFTER));
            return;
        }
        if msg.to_tag().is_some() {
            if method == Method::Subscribe && self.subs.has_dialog(&msg) {
                return self.on_subscribe(now, tx, msg, source, true);
            }
            let (b2bua, mut cx) = self.cx();
            return b2bua.on_in_dialog(&mut cx, now, tx, msg);
        }
        match method {
            Method::Invite => self.on_invite(now, tx, msg, source),
            Method::Bye | Method::Update | Method::Info | Method::Prack => self.sig.reply(now, tx, 481),
            Method::Subscribe => self.on_subscribe(now, tx, msg, source, false),
            Method::Publish => self.sig.reply_with(now, tx, 489, None, |r| r.push_header(HeaderName::AllowEvents, &subscriptions::allow_events())),
            Method::Message | Method::Notify | Method::Refer => self.sig.reply_with(now, tx, 405, None, |r| r.push_header(HeaderName::Allow, ALLOW)),
            _ => self.sig.reply_with(now, tx, 501, None, |r| r.push_header(HeaderName::Allow, ALLOW)),
        }
    }

    /// A new INVITE: from a trusted trunk's address a trunk call, else it must authenticate
    /// as an extension; the B2BUA takes it from there.
    fn on_invite(&mut self, now: Instant, tx: ServerTxId, msg: Message, source: Peer) {
        if msg.max_forwards() == Some(0) {
            return self.sig.reply(now, tx, 483);
        }
        if let Some(trunk) = self.dir.trunk_for(source.addr.ip()) {
            let trunk_id = trunk.id;
            let (b2bua, mut cx) = self.cx();
            return b2bua.inbound_from_trunk(&mut cx, now, tx, msg, source, trunk_id);
        }
        // a carrier we register with sends calls to the contact we registered, from its
        // own addresses: anything else claiming to be it is an ordinary request (407)
        let ruri_user = msg.uri().and_then(|u| u.user().map(|u| u.into_owned()));
        if let Some(trunk) = self.dir.registration_trunk_for(source.addr.ip(), ruri_user.as_deref()) {
            let trunk_id = trunk.id;
            let (b2bua, mut cx) = self.cx();
            return b2bua.inbound_from_trunk(&mut cx, now, tx, msg, source, trunk_id);
        }
        let caller = match self.authenticate(now, &msg, source) {
            AuthResult::Ok(u) => u,
            AuthResult::Challenge { stale } => return self.challenge(now, tx, source, stale),
        };
        let (b2bua, mut cx) = self.cx();
        // RFC 3891: a new INVITE that takes an existing dialog's place (call pull)
        if msg.header_named("Replaces").is_some() {
            return b2bua.invite_with_replaces(&mut cx, now, tx, msg, source, caller);
        }
        b2bua.internal_call(&mut cx, now, tx, msg, source, caller);
    }

    // ----- authentication -----

    /// Checks the request's digest credentials (`Authorization` for REGISTER, else
    /// `Proxy-Authorization`). Unknown users and wrong passwords fail alike: both are checked
    /// against an HA1, both count towards the source's ban, both get the same challenge.
    pub(crate) fn authenticate(&mut self, now: Instant, msg: &Message, source: Peer) -> AuthResult {
        let header = if msg.method() == Some(&Method::Register) { HeaderName::Authorization } else { HeaderName::ProxyAuthorization };
        let ip = source.addr.ip();
        let creds = match Credentials::from_message(msg, header, &self.dir.realm) {
            Ok(c) => c,
            // No credentials (the usual first request), or only for another realm.
            Err(AuthError::Malformed | AuthError::WrongRealm) if msg.header(header).is_none() => {
                return AuthResult::Challenge { stale: false };
            }
            Err(e) => {
                tracing::debug!(%ip, error = %e, "unusable SIP credentials");
                return AuthResult::Challenge { stale: false };
            }
        };
        if !self.cfg.digest_algorithms.iter().any(|a| *a == creds.algorithm.base()) {
            return AuthResult::Challenge { stale: false };
        }
        let user = self.dir.user(&creds.username).cloned();
        let ha1 = match &user {
            Some(u) => u.ha1(creds.algorithm).to_owned(),
            None if creds.algorithm.base() == Algorithm::Sha256 => DUMMY_HA1_SHA256.to_owned(),
            None => DUMMY_HA1_MD5.to_owned(),
        };
        // credentials computed for another Request-URI answer someone else's challenge
        if !msg.uri_str().is_some_and(|r| sip::auth::digest_uri_matches(&creds.uri, r)) {
            tracing::debug!(%ip, user = %creds.username, uri = %creds.uri, "SIP credentials for another Request-URI");
            return AuthResult::Challenge { stale: false };
        }
        let method = msg.method().map(|m| m.as_str()).unwrap_or("");
        match self.digest.verify(now, ip, method, &creds, &ha1, &mut self.replay) {
            Ok(()) => match user {
                Some(u) => AuthResult::Ok(u),
                None => {
                    self.auth_failed(ip, now, &creds.username);
                    AuthResult::Challenge { stale: false }
                }
            },
            // An expired nonce, one issued under an old key or to the phone's previous
            // address, or a reused nonce-count: ask again; not a guess at the password.
            Err(AuthError::Stale | AuthError::InvalidNonce | AuthError::Replay) => AuthResult::Challenge { stale: true },
            Err(e) => {
                tracing::debug!(%ip, user = %creds.username, error = %e, "SIP authentication failed");
                self.auth_failed(ip, now, &creds.username);
                AuthResult::Challenge { stale: false }
            }
        }
    }

    /// Counts a failed authentication towards the source's ban. A trusted trunk's address
    /// never goes to the ban list: over UDP a source address is easily forged, and banning a
    /// carrier's address would cut every call it brings.
    fn auth_failed(&mut self, ip: IpAddr, now: Instant, user: &str) {
        if self.dir.trunk_for(ip).is_some() || self.dir.registration_trunk_for(ip, None).is_some() {
            tracing::info!(%ip, %user, "failed SIP authentication from a trunk's address (not counted towards a ban)");
            return;
        }
        self.shared.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.guard.auth_failed(ip, now, user) {
            self.shared.metrics.bans.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.emit(|| PbxEvent::SourceBanned { ip, until_secs: self.cfg.security.ban_duration.as_secs() });
        }
    }

    /// Answers with a 401 (REGISTER) or 407 challenge. The same headers for everyone.
    pub(crate) fn challenge(&mut self, now: Instant, tx: ServerTxId, source: Peer, stale: bool) {
        let Some(req) = self.sig.txl.request(tx) else { return };
        let resp = self.challenge_for(now, req, source, stale);
        let _ = self.sig.txl.send_response(now, tx, resp);
    }

    fn challenge_to(&mut self, now: Instant, dest: Peer, req: &Message, source: Peer, stale: bool) {
        let resp = self.challenge_for(now, req, source, stale);
        self.sig.send_stateless(Transmit { dest, payload: resp.to_bytes() });
    }

    fn challenge_for(&self, now: Instant, req: &Message, source: Peer, stale: bool) -> Message {
        // (an immutable borrow of self: the nonce's salt comes from a generator of its own)
        let code = if req.method() == Some(&Method::Register) { 401 } else { 407 };
        let header = if code == 401 { HeaderName::WwwAuthenticate } else { HeaderName::ProxyAuthenticate };
        let mut ids = self.nonce_ids.borrow_mut();
        let tag = ids.tag();
        let mut resp = Message::response_to(req, code, None, Some(&tag));
        let nonce = self.digest.nonce(now, source.addr.ip(), &mut ids);
        for alg in &self.cfg.digest_algorithms {
            let mut v = String::with_capacity(160);
            v.push_str("Digest realm=\"");
            // the digest server's realm: quotes and control characters dropped
            v.push_str(self.digest.realm());
            v.push_str("\", nonce=\"");
            v.push_str(&nonce);
            v.push_str("\", algorithm=");
            v.push_str(alg.as_str());
            v.push_str(", qop=\"auth\"");
            if stale {
                v.push_str(", stale=true");
            }
            if resp.push_header(header, &v).is_err() {
                tracing::warn!("a challenge could not be written");
            }
        }
        resp
    }

    // ----- REGISTER -----

    fn on_register(&mut self, now: Instant, to: Peer, msg: &Message, source: Peer) {
        // a trusted trunk's address is a carrier, not a phone: nothing registers from it (and
        // a forged REGISTER from it must not cost the carrier anything)
        if self.dir.trunk_for(source.addr.ip()).is_some() || self.dir.registration_trunk_for(source.addr.ip(), None).is_some() {
            tracing::info!(peer = %source.addr, "REGISTER from a trunk's address refused");
            return self.sig.reply_to(to, msg, 403, Some("Registration Not Allowed From A Trunk Address"), |_| Ok(()));
        }
        let user = match self.authenticate(now, msg, source) {
            AuthResult::Ok(u) => u,
            AuthResult::Challenge { stale } => return self.challenge_to(now, to, msg, source, stale),
        };
        // The address of record must be the user's own (by username or extension number).
        let aor = msg.to().and_then(|t| t.uri.user().map(|u| u.into_owned()));
        if !aor.as_deref().is_some_and(|a| a == user.username || a == user.extension) {
            tracing::info!(user = %user.username, aor = ?aor, "REGISTER for another user's address refused");
            return self.sig.reply_to(to, msg, 403, None, |_| Ok(()));
        }
        let out = self.registrar.register(now, &user, msg, source, &mut self.ops, &mut self.changes);
        match out {
            RegisterOutcome::Ok(held) => {
                self.sig.reply_to(to, msg, 200, None, |r| {
                    for (c, secs) in &held {
                        r.push_header(HeaderName::Contact, &format!("<{c}>;expires={secs}"))?;
                    }
                    Ok(())
                });
                if user.mwi_unsolicited {
                    // the contacts this REGISTER added or refreshed get the lamp's state
                    let call_id = msg.call_id().unwrap_or_default();
                    let fresh: Vec<_> = self.registrar.contacts(user.id, now).into_iter().filter(|b| b.source == source && b.call_id == call_id).collect();
                    self.subs.notify_unsolicited(&mut self.sig, now, user.id, &user.extension, &fresh);
                }
            }
            RegisterOutcome::TooBrief(min) => self.sig.reply_to(to, msg, 423, None, |r| r.push_header(HeaderName::MinExpires, &min.to_string())),
            RegisterOutcome::Reject(code, reason) => self.sig.reply_to(to, msg, code, Some(reason), |_| Ok(())),
        }
        self.publish_changes();
    }

    // ----- SUBSCRIBE -----

    /// A SUBSCRIBE (RFC 6665): a new subscription, or a refresh / `Expires: 0` of one of
    /// ours (`in_dialog`). See `subscriptions.rs` for the rules.
    fn on_subscribe(&mut self, now: Instant, tx: ServerTxId, msg: Message, source: Peer, in_dialog: bool) {
        let package = match subscriptions::event_of(&msg) {
            EventHeader::Known(p) => p,
            EventHeader::Malformed => return self.sig.reply_with(now, tx, 400, Some("Bad Event Header"), |_| Ok(())),
            EventHeader::Missing | EventHeader::Unsupported => {
                return self.sig.reply_with(now, tx, 489, None, |r| r.push_header(HeaderName::AllowEvents, &subscriptions::allow_events()));
            }
        };
        let user = match self.authenticate(now, &msg, source) {
            AuthResult::Ok(u) => u,
            AuthResult::Challenge { stale } => return self.challenge(now, tx, source, stale),
        };
        // the resource watched is the subscriber's own mailbox (by username or number)
        let resource = msg.uri().and_then(|u| u.user().map(|u| u.into_owned()));
        if !resource.as_deref().is_some_and(|r| r == user.username || r == user.extension) {
            tracing::info!(user = %user.username, resource = ?resource, package = package.as_str(), "SUBSCRIBE for another user's resource refused");
            return self.sig.reply_with(now, tx, 403, None, |_| Ok(()));
        }
        let Some(asked) = subscriptions::requested_expires(&msg) else {
            return self.sig.reply_with(now, tx, 400, Some("Bad Expires"), |_| Ok(()));
        };
        if asked != 0 && asked < subscriptions::MIN_EXPIRES {
            return self.sig.reply_with(now, tx, 423, None, |r| r.push_header(HeaderName::MinExpires, &subscriptions::MIN_EXPIRES.to_string()));
        }
        let expires = asked.min(subscriptions::MAX_EXPIRES);
        let expires_value = expires.to_string();
        if in_dialog {
            // answer first: the NOTIFY the refresh triggers follows its 200
            let id = match self.subs.refresh(now, &msg, user.id, expires) {
                Ok(id) => id,
                Err(code) => return self.sig.reply(now, tx, code),
            };
            self.sig.reply_with(now, tx, 200, None, |r| r.push_header(HeaderName::Expires, &expires_value));
            self.subs.notify(&mut self.sig, now, &id, expires == 0);
            self.subs_changed = true;
            return self.publish_changes();
        }
        if let Err(r) = self.subs.admit(now, source.addr.ip(), user.id) {
            tracing::info!(peer = %source.addr, user = %user.username, code = r.code, "SUBSCRIBE refused by a limit");
            return self.sig.reply_with(now, tx, r.code, r.reason, |m| if r.retry_after { m.push_header(HeaderName::RetryAfter, "60") } else { Ok(()) });
        }
        let tag = self.sig.ids.tag();
        let contact = self.sig.contact_for(&user.extension, source);
        let dialog = match sip::dialog::Dialog::uas(&msg, &tag, &contact, true) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "SUBSCRIBE without a usable dialog");
                return self.sig.reply_with(now, tx, 400, Some("Bad Dialog"), |_| Ok(()));
            }
        };
        let Some(req) = self.sig.txl.request(tx) else { return };
        let mut resp = Message::response_to(req, 200, None, Some(&tag));
        if resp.push_header(HeaderName::Expires, &expires_value).and_then(|()| resp.push_header(HeaderName::Contact, &format!("<{contact}>"))).is_err() {
            return self.sig.reply(now, tx, 500);
        }
        if let Err(e) = self.sig.txl.send_response(now, tx, resp) {
            return tracing::debug!(error = %e, "SUBSCRIBE answer not sent");
        }
        let domain = self.sig.domain_for(source);
        let account = format!("sip:{}@{}", user.extension, domain);
        tracing::info!(user = %user.username, peer = %source.addr, package = package.as_str(), expires, "subscription accepted");
        self.subs.insert(&mut self.sig, now, package, user.id, account, dialog, source, expires);
        self.subs_changed = true;
        self.publish_changes();
    }

    fn publish_changes(&mut self) {
        if std::mem::take(&mut self.subs_changed) {
            let infos = self.subs.infos(|i| crate::clock::wall(i).unix_millis() / 1000);
            self.shared.subscriptions.retain(|k, _| infos.contains_key(k));
            for (k, v) in infos {
                self.shared.subscriptions.insert(k, v);
            }
        }
        if self.changes.is_empty() {
            return;
        }
        for c in self.changes.drain(..) {
            self.shared.emit(|| PbxEvent::Registration { extension_id: c.extension_id, count: c.count, action: c.action });
        }
    }

    /// Ends every call, writes the bindings' exact expiries; the loop stops when no call is
    /// left.
    fn shutdown(&mut self, now: Instant) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.registrar.flush_all(&mut self.ops);
        self.trunks.shutdown(&mut self.sig, now);
        let (b2bua, mut cx) = self.cx();
        b2bua.shutdown(&mut cx, now);
    }
}

/// A second, independent key from the first (for the challenge generator): the generators
/// hash key and counter, so a different key gives an unrelated stream.
fn derive_seed(seed: &[u8; 32]) -> [u8; 32] {
    let mut out = *seed;
    for b in &mut out {
        *b ^= 0x5c;
    }
    out
}

/// What we refuse about a request before its method's handler sees it (RFC 3261 §8.2.2):
/// a `Require` naming an extension we do not support (420 with `Unsupported`), and a session
/// description we cannot read (415 with `Accept`/`Accept-Encoding`).
pub(crate) struct RequestFault {
    pub code: u16,
    unsupported: Option<String>,
}

impl RequestFault {
    /// Adds what the status needs to say.
    pub(crate) fn headers(&self, r: &mut Message) -> Result<(), HeaderInjection> {
        match self.code {
            420 => r.push_header(HeaderName::Unsupported, self.unsupported.as_deref().unwrap_or("")),
            415 => {
                r.push_header(HeaderName::Accept, "application/sdp")?;
                r.push_header_named("Accept-Encoding", "identity")
            }
            _ => Ok(()),
        }
    }
}

/// The extensions a `Require` may name (RFC 4028 session timers, RFC 3891 Replaces).
const SUPPORTED_EXTENSIONS: &[&str] = &["timer", "replaces"];

/// See [`RequestFault`]. ACK and CANCEL are never refused for `Require` (§8.2.2.3); a body is
/// checked on INVITE and UPDATE, the requests whose SDP we must read to anchor the media.
pub(crate) fn request_fault(msg: &Message) -> Option<RequestFault> {
    let method = msg.method()?;
    if matches!(method, Method::Ack | Method::Cancel) {
        return None;
    }
    let unsupported: Vec<&str> = msg.require().filter(|t| !SUPPORTED_EXTENSIONS.iter().any(|s| t.eq_ignore_ascii_case(s))).collect();
    if !unsupported.is_empty() {
        return Some(RequestFault { code: 420, unsupported: Some(unsupported.join(", ")) });
    }
    if matches!(method, Method::Invite | Method::Update) && !msg.body().is_empty() {
        let mime = msg.content_type().and_then(|c| c.split(';').next()).map(str::trim).unwrap_or("");
        let encoded = msg.header(HeaderName::ContentEncoding).is_some_and(|e| split_list(e).any(|e| !e.eq_ignore_ascii_case("identity")));
        if !mime.eq_ignore_ascii_case("application/sdp") || encoded {
            return Some(RequestFault { code: 415, unsupported: None });
        }
    }
    None
}
