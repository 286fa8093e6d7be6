//! The PBX as a state machine: bytes, commands and instants in; bytes to send, store writes,
//! events and deadlines out. It owns the transaction layer, the registrar, the calls
//! (b2bua.rs) and the security guard, and never touches a socket or reads the clock — the
//! event loop (event_loop.rs) drives it, and the tests drive it with bytes and a fake clock.
//!
//! Order of a request's checks: banned source (dropped before parsing), parse errors
//! (answered per `ParseError::disposition`), scanner User-Agent (dropped), rate limit
//! (dropped; trusted trunks exempt), transaction matching, then the method's handler.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sip::auth::{Algorithm, AuthError, Credentials, DigestServer, ReplayGuard};
use sip::transaction::{Event, Peer, ServerTxId, Transmit, Transport};
use sip::msg::{split_list, HeaderInjection};
use sip::{Disposition, HeaderName, IdGenerator, Instant, Message, Method, ParseError, TransactionLayer};

use crate::anchor::MediaPort;
use crate::b2bua::CallTable;
use crate::config::SipConfig;
use crate::directory::{Directory, User};
use crate::events::{PbxEvent, Shared};
use crate::persist::PersistOp;
use crate::registrar::{RegisterOutcome, Registrar};
use crate::security::Guard;

/// The methods we answer or relay, for Allow.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, MESSAGE, NOTIFY";
/// What we support, for Supported.
pub(crate) const SUPPORTED: &str = "timer";

/// A digest HA1 used for users that do not exist, so a made-up user costs the same work as a
/// wrong password and fails the same way.
const DUMMY_HA1_MD5: &str = "00000000000000000000000000000000";
const DUMMY_HA1_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Finds the local IP a peer reaches us at (the route's source address, or the external
/// address for peers outside the local networks).
pub(crate) type Locator = Box<dyn FnMut(IpAddr) -> IpAddr + Send>;

/// Commands from the async world (the handle) to the core.
pub(crate) enum Command {
    /// A new directory snapshot.
    Directory(Arc<Directory>),
    /// Ring extensions for a call held by an async controller.
    Ring { call: u64, request: crate::RingRequest, reply: tokio::sync::oneshot::Sender<Result<crate::RingOutcome, crate::CallError>> },
    /// Stop ringing for a call held by an async controller (its ring was abandoned); the
    /// caller keeps waiting.
    StopRing { call: u64 },
    /// End a call (or refuse it with `code` when it is not answered yet).
    Hangup { call: u64, code: u16, reply: tokio::sync::oneshot::Sender<Result<(), crate::CallError>> },
    /// Answer a call held by an async controller (FlowPBX answers the caller itself).
    Answer { call: u64, reply: tokio::sync::oneshot::Sender<Result<(), crate::CallError>> },
    /// A leg of a call sent no media for the media timeout.
    MediaTimeout { call: u64, leg: media::LegId },
    /// A leg of a call pressed a digit (RFC 4733 or SIP INFO).
    Dtmf { call: u64, digit: media::DigitEvent },
    /// Stop: end every call, flush the registrations.
    Shutdown,
}

/// Where the core is bound, per transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub udp: u16,
    pub tcp: u16,
}

/// What authenticating a request came to.
pub(crate) enum AuthResult {
    /// The user proved who they are.
    Ok(Arc<User>),
    /// Answer with a challenge (401/407); `stale` when the nonce merely expired.
    Challenge { stale: bool },
}

/// The PBX state machine.
pub(crate) struct Core {
    pub(crate) cfg: SipConfig,
    pub(crate) ports: Ports,
    pub(crate) txl: TransactionLayer,
    pub(crate) ids: IdGenerator,
    /// Tags and nonce salts of challenges (built with `&self`).
    nonce_ids: std::cell::RefCell<IdGenerator>,
    digest: DigestServer,
    replay: ReplayGuard,
    pub(crate) guard: Guard,
    pub(crate) dir: Arc<Directory>,
    pub(crate) registrar: Registrar,
    pub(crate) calls: CallTable,
    pub(crate) ops: Vec<PersistOp>,
    pub(crate) shared: Arc<Shared>,
    locate: Locator,
    /// Our own timers: (when, what).
    pub(crate) timers: BTreeSet<(Instant, Timer)>,
    /// Stateless answers and other sends outside the transaction layer.
    stateless: std::collections::VecDeque<Transmit>,
    pub(crate) shutting_down: bool,
    changes: Vec<crate::registrar::Change>,
    /// Where calls' media is anchored (None: SDP passes through, as in unit tests without
    /// a media engine).
    pub(crate) media: Option<Box<dyn MediaPort>>,
}

/// The core's own timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// Housekeeping: registration expiry, guard sweep.
    Sweep,
    /// A call's ring timeout.
    Ring(u64),
    /// A call's session timer expiry (RFC 4028).
    Session(u64),
}

impl Core {
    pub(crate) fn new(cfg: SipConfig, ports: Ports, dir: Arc<Directory>, seed: [u8; 32], shared: Arc<Shared>, locate: Locator, media: Option<Box<dyn MediaPort>>) -> Core {
        let digest = DigestServer::new(cfg.digest_key, dir.realm.clone(), cfg.nonce_ttl);
        let registrar = Registrar::new(cfg.registrar, shared.bindings.clone());
        let mut timers = BTreeSet::new();
        timers.insert((Instant::ZERO, Timer::Sweep));
        shared.set_directory_counts(&dir);
        Core {
            // 100 Trying is ours to send, once an INVITE is authenticated and routed: a
            // challenge goes out alone
            txl: TransactionLayer::new(sip::transaction::Config { auto_trying: false, ..cfg.timers }),
            guard: Guard::new(cfg.security.clone()),
            ids: IdGenerator::new(seed),
            nonce_ids: std::cell::RefCell::new(IdGenerator::new(derive_seed(&seed))),
            digest,
            replay: ReplayGuard::new(20_000),
            dir,
            registrar,
            calls: CallTable::default(),
            ops: Vec::new(),
            shared,
            locate,
            timers,
            stateless: Default::default(),
            shutting_down: false,
            changes: Vec::new(),
            media,
            ports,
            cfg,
        }
    }

    // ----- inputs -----

    /// A datagram (or a stream frame's bytes) from `peer`.
    pub(crate) fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        if self.guard.is_banned(peer.addr.ip(), now) {
            return;
        }
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
        let tag = self.ids.tag();
        let resp = Message::response_to(&req, code, Some(reason), Some(&tag));
        let dest = TransactionLayer::response_destination(&req, peer);
        self.stateless.push_back(Transmit { dest, payload: resp.to_bytes() });
    }

    fn allow(&mut self, now: Instant, peer: Peer) -> bool {
        let ip = peer.addr.ip();
        self.dir.trunk_for(ip).is_some() || self.guard.allow_request(ip, now)
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, mut msg: Message) {
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
                    return self.reply_to(now, to, &msg, f.code, None, |r| f.headers(r));
                }
                return self.on_stateless(now, to, &msg, peer);
            }
        }
        self.txl.handle_message(now, peer, msg);
        self.drain_events(now);
    }

    /// `to` is where the answer goes (RFC 3261 §18.2.2).
    fn on_stateless(&mut self, now: Instant, to: Peer, msg: &Message, source: Peer) {
        if self.shutting_down {
            return self.reply_to(now, to, msg, 503, None, |r| r.push_header(HeaderName::RetryAfter, "30"));
        }
        match msg.method() {
            Some(Method::Register) => self.on_register(now, to, msg, source),
            _ => self.reply_to(now, to, msg, 200, None, |r| {
                r.push_header(HeaderName::Allow, ALLOW)?;
                r.push_header(HeaderName::Accept, "application/sdp")?;
                r.push_header(HeaderName::Supported, SUPPORTED)
            }),
        }
    }

    /// Runs the timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.txl.handle_timeout(now);
        self.drain_events(now);
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t));
            match t {
                Timer::Sweep => {
                    self.registrar.expire(now, &mut self.ops, &mut self.changes);
                    self.guard.sweep(now);
                    self.timers.insert((now + Duration::from_secs(1), Timer::Sweep));
                }
                Timer::Ring(key) => self.ring_timeout(now, key),
                Timer::Session(key) => self.session_timeout(now, key),
            }
            self.drain_events(now);
        }
        self.publish_changes();
    }

    /// A command from the handle.
    pub(crate) fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Directory(d) => self.set_directory(d),
            Command::Ring { call, request, reply } => {
                let r = self.ring_for_controller(now, call, request, reply);
                if let Err((e, reply)) = r {
                    let _ = reply.send(Err(e));
                }
            }
            Command::StopRing { call } => self.ring_timeout(now, call),
            Command::Hangup { call, code, reply } => {
                let r = self.hangup_for_controller(now, call, code);
                let _ = reply.send(r);
            }
            Command::Answer { call, reply } => {
                let r = self.answer_for_controller(now, call);
                let _ = reply.send(r);
            }
            Command::MediaTimeout { call, leg } => self.on_media_timeout(now, call, leg),
            Command::Dtmf { call, digit } => self.on_media_digit(now, call, digit),
            Command::Shutdown => self.shutdown(now),
        }
        self.drain_events(now);
        self.publish_changes();
    }

    /// A stream to `peer` failed (connection refused, reset): its client transactions fail.
    pub(crate) fn handle_transport_error(&mut self, now: Instant, peer: Peer) {
        for tx in self.calls.client_txs_to(peer) {
            self.txl.handle_transport_error(tx);
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
        self.dir = d;
    }

    // ----- outputs -----

    /// The next bytes to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.stateless.pop_front().or_else(|| self.txl.poll_transmit())
    }

    /// When `handle_timeout` is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.first().map(|(t, _)| *t);
        match (own, self.txl.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        }
    }

    /// The store writes queued since the last call.
    pub(crate) fn take_ops(&mut self, into: &mut Vec<PersistOp>) {
        into.append(&mut self.ops);
    }

    /// Whether shutdown has finished its work (no call left).
    pub(crate) fn is_stopped(&self) -> bool {
        self.shutting_down && self.calls.is_empty()
    }

    // ----- dispatch -----

    fn drain_events(&mut self, now: Instant) {
        while let Some(ev) = self.txl.poll_event() {
            match ev {
                Event::Request { tx, msg, source } => self.on_request(now, tx, msg, source),
                Event::Cancel { tx, invite, msg: _ } => self.on_cancel(now, tx, invite),
                Event::Ack { tx, msg, source: _ } => self.on_ack(now, tx, msg),
                Event::Response { tx, msg } => self.on_response(now, tx, msg),
                // a 2xx that matches no transaction of ours is not ours to answer: an ACK and
                // BYE towards whoever sent it would let anyone aim our requests (RFC 3261
                // §18.1.2: a response matching no transaction is discarded)
                Event::StrayResponse { msg, source } => {
                    tracing::debug!(peer = %source.addr, call_id = msg.call_id().unwrap_or(""), "stray response dropped");
                }
                Event::Timeout { tx } => self.on_client_failure(now, tx, 408),
                Event::TransportError { tx } => self.on_client_failure(now, tx, 503),
                Event::AckTimeout { tx } => self.on_ack_timeout(now, tx),
                _ => {}
            }
        }
    }

    fn on_request(&mut self, now: Instant, tx: ServerTxId, msg: Message, source: Peer) {
        let Some(method) = msg.method().cloned() else { return };
        if let Some(f) = request_fault(&msg) {
            return self.reply_with(now, tx, f.code, None, |r| f.headers(r));
        }
        if self.shutting_down && msg.to_tag().is_none() {
            self.reply_with(now, tx, 503, None, |r| r.push_header(HeaderName::RetryAfter, "30"));
            return;
        }
        if msg.to_tag().is_some() {
            return self.on_in_dialog(now, tx, msg);
        }
        match method {
            Method::Invite => self.on_invite(now, tx, msg, source),
            Method::Bye | Method::Update | Method::Info | Method::Prack => self.reply(now, tx, 481),
            Method::Subscribe | Method::Publish => self.reply(now, tx, 489),
            Method::Message | Method::Notify | Method::Refer => {
                self.reply_with(now, tx, 405, None, |r| r.push_header(HeaderName::Allow, ALLOW))
            }
            _ => self.reply_with(now, tx, 501, None, |r| r.push_header(HeaderName::Allow, ALLOW)),
        }
    }

    // ----- responses -----

    /// Answers a server transaction with a status and its standard reason.
    pub(crate) fn reply(&mut self, now: Instant, tx: ServerTxId, code: u16) {
        self.reply_with(now, tx, code, None, |_| Ok(()));
    }

    /// Answers with extra headers; final responses get a To-tag.
    /// A header the closure adds that is refused ([`HeaderInjection`]) turns the answer
    /// into a plain 500: nothing unchecked reaches the wire.
    pub(crate) fn reply_with(&mut self, now: Instant, tx: ServerTxId, code: u16, reason: Option<&str>, f: impl FnOnce(&mut Message) -> Result<(), HeaderInjection>) {
        let Some(req) = self.txl.request(tx) else { return };
        let tag = if code > 100 { Some(self.ids.tag()) } else { None };
        let mut resp = Message::response_to(req, code, reason, tag.as_deref());
        if f(&mut resp).is_err() {
            tracing::warn!(code, "a response header was refused (CR/LF/NUL): answered 500");
            resp = Message::response_to(req, 500, None, tag.as_deref());
        }
        if let Err(e) = self.txl.send_response(now, tx, resp) {
            tracing::debug!(error = %e, code, "response not sent");
        }
    }

    /// Answers `req` statelessly, to `dest`.
    fn reply_to(&mut self, _now: Instant, dest: Peer, req: &Message, code: u16, reason: Option<&str>, f: impl FnOnce(&mut Message) -> Result<(), HeaderInjection>) {
        let tag = self.ids.tag();
        let mut resp = Message::response_to(req, code, reason, Some(&tag));
        if f(&mut resp).is_err() {
            tracing::warn!(code, "a response header was refused (CR/LF/NUL): answered 500");
            resp = Message::response_to(req, 500, None, Some(&tag));
        }
        self.stateless.push_back(Transmit { dest, payload: resp.to_bytes() });
    }

    // ----- addresses -----

    /// Our address as `peer` should see it.
    pub(crate) fn local_addr(&mut self, peer: Peer) -> SocketAddr {
        let ip = (self.locate)(peer.addr.ip());
        let port = match peer.transport {
            Transport::Udp => self.ports.udp,
            _ => self.ports.tcp,
        };
        SocketAddr::new(ip, port)
    }

    /// A top Via for a request to `peer`, with a fresh branch.
    pub(crate) fn via_for(&mut self, peer: Peer) -> String {
        let addr = self.local_addr(peer);
        let branch = self.ids.branch();
        format!("SIP/2.0/{} {};branch={branch};rport", peer.transport.as_str(), fmt_addr(addr))
    }

    /// Our Contact URI (without brackets) for `user` towards `peer`.
    pub(crate) fn contact_for(&mut self, user: &str, peer: Peer) -> String {
        let addr = self.local_addr(peer);
        let mut c = format!("sip:{}@{}", sanitize_user(user), fmt_addr(addr));
        if peer.transport != Transport::Udp {
            c.push_str(";transport=");
            c.push_str(crate::registrar::transport_name(peer.transport));
        }
        c
    }

    /// The domain we write in From/To of the calls we place.
    pub(crate) fn domain_for(&mut self, peer: Peer) -> String {
        match &self.cfg.hostname {
            Some(h) => h.clone(),
            None => {
                let addr = self.local_addr(peer);
                match addr.ip() {
                    IpAddr::V6(a) => format!("[{a}]"),
                    IpAddr::V4(a) => a.to_string(),
                }
            }
        }
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
        if self.dir.trunk_for(ip).is_some() {
            tracing::info!(%ip, %user, "failed SIP authentication from a trusted trunk's address (not counted towards a ban)");
            return;
        }
        if self.guard.auth_failed(ip, now, user) {
            self.shared.emit(|| PbxEvent::SourceBanned { ip, until_secs: self.cfg.security.ban_duration.as_secs() });
        }
    }

    /// Answers with a 401 (REGISTER) or 407 challenge. The same headers for everyone.
    pub(crate) fn challenge(&mut self, now: Instant, tx: ServerTxId, source: Peer, stale: bool) {
        let Some(req) = self.txl.request(tx) else { return };
        let resp = self.challenge_for(now, req, source, stale);
        let _ = self.txl.send_response(now, tx, resp);
    }

    fn challenge_to(&mut self, now: Instant, dest: Peer, req: &Message, source: Peer, stale: bool) {
        let resp = self.challenge_for(now, req, source, stale);
        self.stateless.push_back(Transmit { dest, payload: resp.to_bytes() });
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
        if self.dir.trunk_for(source.addr.ip()).is_some() {
            tracing::info!(peer = %source.addr, "REGISTER from a trusted trunk's address refused");
            return self.reply_to(now, to, msg, 403, Some("Registration Not Allowed From A Trunk Address"), |_| Ok(()));
        }
        let user = match self.authenticate(now, msg, source) {
            AuthResult::Ok(u) => u,
            AuthResult::Challenge { stale } => return self.challenge_to(now, to, msg, source, stale),
        };
        // The address of record must be the user's own (by username or extension number).
        let aor = msg.to().and_then(|t| t.uri.user().map(|u| u.into_owned()));
        if !aor.as_deref().is_some_and(|a| a == user.username || a == user.extension) {
            tracing::info!(user = %user.username, aor = ?aor, "REGISTER for another user's address refused");
            return self.reply_to(now, to, msg, 403, None, |_| Ok(()));
        }
        let out = self.registrar.register(now, &user, msg, source, &mut self.ops, &mut self.changes);
        match out {
            RegisterOutcome::Ok(held) => self.reply_to(now, to, msg, 200, None, |r| {
                for (c, secs) in &held {
                    r.push_header(HeaderName::Contact, &format!("<{c}>;expires={secs}"))?;
                }
                Ok(())
            }),
            RegisterOutcome::TooBrief(min) => {
                self.reply_to(now, to, msg, 423, None, |r| r.push_header(HeaderName::MinExpires, &min.to_string()))
            }
            RegisterOutcome::Reject(code, reason) => self.reply_to(now, to, msg, code, Some(reason), |_| Ok(())),
        }
        self.publish_changes();
    }

    fn publish_changes(&mut self) {
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
        for key in self.calls.keys() {
            self.end_call(now, key, 503, crate::b2bua::Cause::Shutdown, None);
        }
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

/// `ip:port`, IPv6 in brackets.
pub(crate) fn fmt_addr(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Keeps a user part to what needs no escaping.
fn sanitize_user(u: &str) -> String {
    let s: String = u.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(*c)).collect();
    if s.is_empty() { "flowpbx".to_owned() } else { s }
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

/// The extensions a `Require` may name (RFC 4028 session timers).
const SUPPORTED_EXTENSIONS: &[&str] = &["timer"];

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
