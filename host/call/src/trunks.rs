//! The carrier side of trunks, sans-IO: registering registration trunks with their provider
//! and keeping every enabled trunk's reachability with OPTIONS.
//!
//! Registration (RFC 3261 §10.2): REGISTER to the trunk's domain (through its outbound proxy
//! when it has one) with digest auth on 401/407 (the auth username may differ from the user
//! part; MD5 or SHA-256, whichever the provider offers, SHA-256 first); refreshed before it
//! expires (at 85 % of the granted interval, or 30 s before it ends, whichever is earlier);
//! a failure retries after 30 s, doubling to 30 minutes with ±20 % jitter, or after the
//! provider's Retry-After; 423 takes the Min-Expires and retries at once; 403 stops until
//! the trunk is edited (its fingerprint changes). Keep-alive: an OPTIONS every
//! `options_interval` seconds; a trunk whose OPTIONS times out is down (routes skip it), and
//! up again at its next answer. Every change of state is published (the handle's
//! `trunk_status`, a `PbxEvent::TrunkStatus` for the WebSocket).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use sip::auth::{Algorithm, Challenge};
use sip::msg::{name_addr, HeaderInjection, SipUriBuilder};
use sip::transaction::{ClientTxId, Peer};
use sip::{HeaderName, Instant, Message, Method};

use crate::clock::wall;
use crate::core::ALLOW;
use crate::directory::{Directory, Trunk};
use crate::events::{PbxEvent, Shared};
use crate::signalling::Signalling;

/// The first retry after a failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(30);
/// The longest wait between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);
/// How long an OPTIONS may go unanswered before the trunk counts as down.
const OPTIONS_TIMEOUT: Duration = Duration::from_secs(8);

/// Where a trunk's registration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is on its way (the first, a refresh after a failure, or a retry).
    Registering,
    /// The provider holds our contact.
    Registered,
    /// The last attempt failed; another follows at `next_attempt_at`.
    Failed,
    /// The provider refused with 403: no retry until the trunk is edited.
    Stopped,
}

impl RegistrationState {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::Registering => "registering",
            RegistrationState::Registered => "registered",
            RegistrationState::Failed => "failed",
            RegistrationState::Stopped => "stopped",
        }
    }
}

/// A registration trunk's registration, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    /// Where it is.
    pub state: RegistrationState,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The last final response: status and reason.
    pub last_response: Option<(u16, String)>,
    /// When the registration runs out (Unix ms), while registered.
    pub expires_at_ms: Option<i64>,
    /// When the next REGISTER goes (Unix ms): the refresh, or the retry.
    pub next_attempt_at_ms: Option<i64>,
}

/// What the PBX knows of one enabled trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    /// The trunk's id.
    pub trunk_id: i64,
    /// Registration trunks only.
    pub registration: Option<RegistrationStatus>,
    /// From OPTIONS: `Some(true)` answering, `Some(false)` down, `None` not checked (yet, or
    /// keep-alive off).
    pub reachable: Option<bool>,
    /// The last OPTIONS round trip, ms.
    pub rtt_ms: Option<u64>,
    /// The last OPTIONS answer: status.
    pub options_status: Option<u16>,
    /// Why its connection failed the last time (stream transports: "TLS certificate not
    /// trusted: …", "cannot connect …"); cleared by its next answer.
    pub transport_error: Option<String>,
}

impl TrunkStatus {
    /// The one-word state the Trunks page shows: `registered`, `registering`, `failed`,
    /// `stopped`, `down`, `up`, `unknown`.
    pub fn summary(&self) -> &'static str {
        if self.transport_error.is_some() {
            return "failed";
        }
        match (&self.registration, self.reachable) {
            (_, Some(false)) => "down",
            (Some(r), _) => r.state.as_str(),
            (None, Some(true)) => "up",
            (None, None) => "unknown",
        }
    }
}

/// What one probe of a trunk test came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    /// The final response's status.
    pub status: Option<u16>,
    /// Its reason phrase.
    pub reason: Option<String>,
    /// The round trip, ms.
    pub rtt_ms: Option<u64>,
    /// Why there is no answer (no answer in time, not reachable, not resolved).
    pub error: Option<String>,
}

/// What `POST /trunks/{id}/test` reports: an OPTIONS, and a REGISTER for a registration
/// trunk (a real refresh of its registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkTest {
    /// The OPTIONS.
    pub options: Probe,
    /// The REGISTER (registration trunks).
    pub register: Option<Probe>,
}

/// How long a test waits for its answers.
const TEST_TIMEOUT: Duration = Duration::from_secs(8);

struct PendingTest {
    replies: Vec<tokio::sync::oneshot::Sender<Result<TrunkTest, crate::CallError>>>,
    started: Instant,
    options: Option<Probe>,
    /// `Some(None)`: a REGISTER is awaited.
    register: Option<Option<Probe>>,
}

impl PendingTest {
    fn done(&self) -> bool {
        self.options.is_some() && !matches!(self.register, Some(None))
    }
}

/// A REGISTER or OPTIONS of ours, by purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    /// The last REGISTER (Expires 0): the trunk went away or the PBX stops.
    Unregister,
    Options,
    /// A test's OPTIONS (does not change the keep-alive's state).
    TestOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Due {
    Register,
    Options,
    OptionsTimeout,
    TestDeadline,
}

struct Registration {
    state: RegistrationState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The interval we ask for (the account's, or more after a 423).
    expires: u32,
    /// When the current registration runs out.
    until: Option<Instant>,
    next_at: Option<Instant>,
    backoff: Duration,
    error: Option<String>,
    last_response: Option<(u16, String)>,
    /// The challenge answered in the REGISTER in flight (a second 401 to it means the
    /// credentials are wrong, unless the nonce was stale).
    answered: Option<Challenge>,
    /// The challenge to answer in the next REGISTER, and its nonce count.
    challenge: Option<(Challenge, u32)>,
}

struct Keepalive {
    reachable: Option<bool>,
    rtt: Option<Duration>,
    status: Option<u16>,
    /// The OPTIONS in flight: when it left.
    sent_at: Option<Instant>,
}

struct State {
    trunk: Arc<Trunk>,
    reg: Option<Registration>,
    keepalive: Keepalive,
    /// Our contact user toward the provider.
    contact_user: String,
    /// Why the connection to it failed last (see [`TrunkStatus::transport_error`]).
    transport_error: Option<String>,
}

/// Every enabled trunk's registration and keep-alive.
pub(crate) struct Trunks {
    states: HashMap<i64, State>,
    timers: BTreeSet<(Instant, i64, Due)>,
    scheduled: HashMap<(i64, Due), Instant>,
    clients: HashMap<ClientTxId, (i64, Purpose)>,
    tests: HashMap<i64, PendingTest>,
    shared: Arc<Shared>,
}

/// `after` ± 20 %, from a few random bits.
fn jitter(after: Duration, sig: &mut Signalling) -> Duration {
    let bits = sig.ids.tag().bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let permille = 800 + (bits % 401);
    after * permille / 1000
}

/// When to refresh a registration granted for `granted` seconds.
fn refresh_after(granted: u32) -> Duration {
    let g = u64::from(granted.max(2));
    let at = (g * 85 / 100).min(g.saturating_sub(30)).max(g / 2);
    Duration::from_secs(at.max(1))
}

/// The best challenge in a 401/407: SHA-256 before MD5, the digest kinds we implement.
fn best_challenge(resp: &Message) -> Option<Challenge> {
    let header = if resp.status() == Some(407) { HeaderName::ProxyAuthenticate } else { HeaderName::WwwAuthenticate };
    let mut all: Vec<Challenge> = resp.headers(header).filter_map(|v| Challenge::parse(v).ok()).collect();
    all.sort_by_key(|c| if c.algorithm.base() == Algorithm::Sha256 { 0 } else { 1 });
    all.into_iter().next()
}

impl Trunks {
    pub(crate) fn new(shared: Arc<Shared>) -> Trunks {
        Trunks { states: HashMap::new(), timers: BTreeSet::new(), scheduled: HashMap::new(), clients: HashMap::new(), tests: HashMap::new(), shared }
    }

    /// Whether a routed call may try this trunk: not down by its keep-alive.
    pub(crate) fn usable(&self, trunk_id: i64) -> bool {
        self.states.get(&trunk_id).is_none_or(|s| s.keepalive.reachable != Some(false))
    }

    /// Whether this client transaction is ours.
    pub(crate) fn owns(&self, tx: ClientTxId) -> bool {
        self.clients.contains_key(&tx)
    }

    /// When [`Trunks::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _, _)| *t)
    }

    fn schedule(&mut self, id: i64, due: Due, at: Option<Instant>) {
        if let Some(old) = self.scheduled.remove(&(id, due)) {
            self.timers.remove(&(old, id, due));
        }
        if let Some(at) = at {
            self.scheduled.insert((id, due), at);
            self.timers.insert((at, id, due));
        }
    }

    /// A new directory: trunks added start registering and pinging, trunks gone are
    /// unregistered, trunks whose registration details changed start again (a 403 stop is
    /// lifted by an edit).
    pub(crate) fn set_directory(&mut self, sig: &mut Signalling, now: Instant, dir: &Directory) {
        let wanted: HashMap<i64, &Arc<Trunk>> = dir.trunks().iter().map(|t| (t.id, t)).collect();
        let gone: Vec<i64> = self.states.keys().copied().filter(|id| !wanted.contains_key(id)).collect();
        for id in gone {
            self.unregister(sig, now, id);
            self.schedule(id, Due::Register, None);
            self.schedule(id, Due::Options, None);
            self.schedule(id, Due::OptionsTimeout, None);
            self.states.remove(&id);
            self.shared.trunks.remove(&id);
        }
        for (id, trunk) in wanted {
            let restart = match self.states.get(&id) {
                None => true,
                Some(s) => s.trunk.fingerprint != trunk.fingerprint,
            };
            let keepalive_changed = self.states.get(&id).is_some_and(|s| s.trunk.options_interval != trunk.options_interval);
            if restart {
                let reg = trunk.account.as_ref().map(|a| Registration {
                    state: RegistrationState::Registering,
                    call_id: sig.ids.call_id(),
                    from_tag: sig.ids.tag(),
                    cseq: 0,
                    expires: a.expiry,
                    until: None,
                    next_at: Some(now),
                    backoff: BACKOFF_FIRST,
                    error: None,
                    last_response: None,
                    answered: None,
                    challenge: None,
                });
                let contact_user = trunk.account.as_ref().map(|a| a.username.clone()).unwrap_or_else(|| "flowpbx".into());
                let keepalive = Keepalive { reachable: None, rtt: None, status: None, sent_at: None };
                self.states.insert(id, State { trunk: trunk.clone(), reg, keepalive, contact_user, transport_error: None });
                self.schedule(id, Due::Register, trunk.account.as_ref().map(|_| now));
                self.schedule(id, Due::Options, (trunk.options_interval > 0).then_some(now));
                self.publish(id);
            } else if let Some(s) = self.states.get_mut(&id) {
                s.trunk = trunk.clone();
                if keepalive_changed {
                    self.schedule(id, Due::Options, (trunk.options_interval > 0).then_some(now));
                    if trunk.options_interval == 0 {
                        if let Some(s) = self.states.get_mut(&id) {
                            s.keepalive.reachable = None;
                        }
                        self.publish(id);
                    }
                }
            }
        }
    }

    /// Runs what is due at `now`.
    pub(crate) fn handle_timeout(&mut self, sig: &mut Signalling, now: Instant) {
        while let Some(&(at, id, due)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id, due));
            self.scheduled.remove(&(id, due));
            match due {
                Due::Register => self.send_register(sig, now, id),
                Due::Options => self.send_options(sig, now, id),
                Due::OptionsTimeout => self.options_failed(now, id, None),
                Due::TestDeadline => self.finish_test(id, true),
            }
        }
    }

    /// Unregisters every trunk (the PBX stops).
    pub(crate) fn shutdown(&mut self, sig: &mut Signalling, now: Instant) {
        let ids: Vec<i64> = self.states.keys().copied().collect();
        for id in ids {
            self.unregister(sig, now, id);
        }
        self.timers.clear();
        self.scheduled.clear();
    }

    fn unregister(&mut self, sig: &mut Signalling, now: Instant, id: i64) {
        let registered = self.states.get(&id).and_then(|s| s.reg.as_ref()).is_some_and(|r| r.state == RegistrationState::Registered);
        if registered && let Some(req) = self.register_request(sig, id, 0) {
            self.send(sig, now, id, Purpose::Unregister, req);
        }
    }

    fn send(&mut self, sig: &mut Signalling, now: Instant, id: i64, purpose: Purpose, (dest, msg): (Peer, Message)) -> bool {
        match sig.txl.send_request(now, dest, msg) {
            Ok(tx) => {
                self.clients.insert(tx, (id, purpose));
                true
            }
            Err(e) => {
                tracing::warn!(trunk = id, error = %e, "a request to a trunk could not be sent");
                false
            }
        }
    }

    /// The REGISTER of trunk `id` asking for `expires` seconds, with credentials when a
    /// challenge is pending.
    fn register_request(&mut self, sig: &mut Signalling, id: i64, expires: u32) -> Option<(Peer, Message)> {
        let s = self.states.get_mut(&id)?;
        let account = s.trunk.account.clone()?;
        let dest = s.trunk.next_hop?;
        let reg = s.reg.as_mut()?;
        reg.cseq += 1;
        let hostport = if s.trunk.port == 0 { s.trunk.domain.clone() } else { format!("{}:{}", s.trunk.domain, s.trunk.port) };
        let built = (|| -> Result<Message, HeaderInjection> {
            let ruri = SipUriBuilder::new(&hostport).build().ok_or(HeaderInjection)?;
            let aor = SipUriBuilder::new(&hostport).user(&account.username).build().ok_or(HeaderInjection)?;
            let mut m = Message::request(Method::Register, &ruri)?;
            m.push_header(HeaderName::Via, &sig.via_for(dest))?;
            m.push_header(HeaderName::MaxForwards, "70")?;
            if let Some(route) = &s.trunk.route {
                m.push_header(HeaderName::Route, &format!("<{route}>"))?;
            }
            m.push_header(HeaderName::From, &name_addr(None, &aor, Some(&reg.from_tag)))?;
            m.push_header(HeaderName::To, &name_addr(None, &aor, None))?;
            m.push_header(HeaderName::CallId, &reg.call_id)?;
            m.push_header(HeaderName::CSeq, &format!("{} REGISTER", reg.cseq))?;
            m.push_header(HeaderName::Contact, &format!("<{}>", sig.contact_for(&s.contact_user, dest)))?;
            m.push_header(HeaderName::Expires, &expires.to_string())?;
            m.push_header(HeaderName::Allow, ALLOW)?;
            m.push_header(HeaderName::UserAgent, &sig.user_agent)?;
            if let Some((ch, nc)) = reg.challenge.as_mut() {
                let header = if ch.stale || reg.last_response.as_ref().is_some_and(|(c, _)| *c == 407) {
                    HeaderName::ProxyAuthorization
                } else {
                    HeaderName::Authorization
                };
                *nc += 1;
                let cnonce = sig.ids.tag();
                m.push_header(header, &ch.authorization("REGISTER", &ruri, &account.auth_username, &account.password, &cnonce, *nc))?;
                reg.answered = Some(ch.clone());
            } else {
                reg.answered = None;
            }
            Ok(m)
        })();
        match built {
            Ok(m) => Some((dest, m)),
            Err(_) => {
                tracing::warn!(trunk = id, "a trunk's REGISTER could not be written (its domain or username)");
                None
            }
        }
    }

    fn send_register(&mut self, sig: &mut Signalling, now: Instant, id: i64) {
        let Some(s) = self.states.get(&id) else { return };
        if s.trunk.next_hop.is_none() {
            let domain = s.trunk.domain.clone();
            return self.register_failed(sig, now, id, format!("{domain} does not resolve"), None, None);
        }
        let expires = s.reg.as_ref().map_or(0, |r| r.expires);
        let Some(req) = self.register_request(sig, id, expires) else {
            return self.register_failed(sig, now, id, "the REGISTER cannot be written".into(), None, None);
        };
        if let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) {
            if r.state != RegistrationState::Registered {
                r.state = RegistrationState::Registering;
            }
            r.next_at = None;
        }
        if !self.send(sig, now, id, Purpose::Register, req) {
            return self.register_failed(sig, now, id, "the REGISTER could not be sent".into(), None, None);
        }
        self.publish(id);
    }

    fn register_failed(&mut self, sig: &mut Signalling, now: Instant, id: i64, error: String, response: Option<(u16, String)>, retry_after: Option<Duration>) {
        let jittered = self.states.get(&id).and_then(|s| s.reg.as_ref()).map(|r| jitter(r.backoff, sig));
        let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) else { return };
        tracing::warn!(trunk = id, %error, "trunk registration failed");
        r.state = RegistrationState::Failed;
        r.error = Some(error);
        if response.is_some() {
            r.last_response = response;
        }
        r.challenge = None;
        r.answered = None;
        let wait = retry_after.unwrap_or_else(|| jittered.unwrap_or(BACKOFF_FIRST));
        r.backoff = (r.backoff * 2).min(BACKOFF_MAX);
        // the registration may still hold until it runs out
        if r.until.is_some_and(|u| u <= now) {
            r.until = None;
        }
        let at = now + wait;
        r.next_at = Some(at);
        self.schedule(id, Due::Register, Some(at));
        self.publish(id);
    }

    fn send_options(&mut self, sig: &mut Signalling, now: Instant, id: i64) {
        let Some(s) = self.states.get(&id) else { return };
        let interval = Duration::from_secs(u64::from(s.trunk.options_interval));
        if interval.is_zero() {
            return;
        }
        let outstanding = s.keepalive.sent_at.is_some();
        self.schedule(id, Due::Options, Some(now + interval));
        if outstanding {
            return; // the last one is still out
        }
        let Some(req) = self.options_request(sig, id) else {
            return self.options_failed(now, id, None);
        };
        if self.send(sig, now, id, Purpose::Options, req) {
            if let Some(s) = self.states.get_mut(&id) {
                s.keepalive.sent_at = Some(now);
            }
            self.schedule(id, Due::OptionsTimeout, Some(now + OPTIONS_TIMEOUT.min(interval)));
        }
    }

    /// An OPTIONS to trunk `id` (`None` when its host does not resolve).
    fn options_request(&mut self, sig: &mut Signalling, id: i64) -> Option<(Peer, Message)> {
        let s = self.states.get(&id)?;
        let dest = s.trunk.next_hop?;
        let hostport = if s.trunk.port == 0 { s.trunk.domain.clone() } else { format!("{}:{}", s.trunk.domain, s.trunk.port) };
        let route = s.trunk.route.clone();
        let from_tag = sig.ids.tag();
        let call_id = sig.ids.call_id();
        let ours = sig.domain_for(dest);
        let built = (|| -> Result<Message, HeaderInjection> {
            let ruri = SipUriBuilder::new(&hostport).build().ok_or(HeaderInjection)?;
            let from = SipUriBuilder::new(&ours).user("flowpbx").build().ok_or(HeaderInjection)?;
            let mut m = Message::request(Method::Options, &ruri)?;
            m.push_header(HeaderName::Via, &sig.via_for(dest))?;
            m.push_header(HeaderName::MaxForwards, "70")?;
            if let Some(route) = &route {
                m.push_header(HeaderName::Route, &format!("<{route}>"))?;
            }
            m.push_header(HeaderName::From, &name_addr(None, &from, Some(&from_tag)))?;
            m.push_header(HeaderName::To, &name_addr(None, &ruri, None))?;
            m.push_header(HeaderName::CallId, &call_id)?;
            m.push_header(HeaderName::CSeq, "1 OPTIONS")?;
            m.push_header(HeaderName::UserAgent, &sig.user_agent)?;
            Ok(m)
        })();
        built.ok().map(|m| (dest, m))
    }

    fn options_failed(&mut self, now: Instant, id: i64, status: Option<u16>) {
        let _ = now;
        let Some(s) = self.states.get_mut(&id) else { return };
        s.keepalive.sent_at = None;
        s.keepalive.status = status;
        if s.keepalive.reachable != Some(false) {
            tracing::warn!(trunk = id, name = %s.trunk.name, "trunk down: its OPTIONS went unanswered");
        }
        s.keepalive.reachable = Some(false);
        self.schedule(id, Due::OptionsTimeout, None);
        self.publish(id);
    }

    /// The trunk transactions in flight to `peer` (its connection failed).
    pub(crate) fn client_txs_to(&self, peer: Peer) -> Vec<ClientTxId> {
        self.clients.iter().filter(|(_, (id, _))| self.states.get(id).is_some_and(|s| s.trunk.next_hop == Some(peer))).map(|(tx, _)| *tx).collect()
    }

    /// The connection to `peer` failed: the trunks behind it keep why (shown in their
    /// status until they answer again).
    pub(crate) fn note_transport_error(&mut self, peer: Peer, why: Option<String>) {
        let ids: Vec<i64> = self.states.iter().filter(|(_, s)| s.trunk.next_hop == Some(peer)).map(|(id, _)| *id).collect();
        for id in ids {
            let why = why.clone().unwrap_or_else(|| format!("cannot connect to {} over {}", peer.addr, peer.transport.as_str()));
            if let Some(s) = self.states.get_mut(&id) {
                if s.transport_error.as_deref() != Some(why.as_str()) {
                    tracing::warn!(trunk = id, name = %s.trunk.name, error = %why, "trunk connection failed");
                }
                s.transport_error = Some(why);
            }
            self.publish(id);
        }
    }

    /// A response to a request of ours; false when the transaction is not a trunk's.
    pub(crate) fn handle_response(&mut self, sig: &mut Signalling, now: Instant, tx: ClientTxId, msg: &Message) -> bool {
        let Some(&(id, purpose)) = self.clients.get(&tx) else { return false };
        if let Some(s) = self.states.get_mut(&id)
            && s.transport_error.take().is_some()
        {
            self.publish(id);
        }
        let Some(code) = msg.status() else { return true };
        if code < 200 {
            return true;
        }
        self.clients.remove(&tx);
        match purpose {
            Purpose::Unregister => {}
            Purpose::Options => self.on_options_answer(now, id, code),
            Purpose::TestOptions => self.test_answer(now, id, false, code, msg.reason()),
            Purpose::Register => {
                // a test waiting for the registration hears its final answer (a challenge is
                // not final: the REGISTER goes again with credentials)
                if !matches!(code, 401 | 407) || self.states.get(&id).and_then(|s| s.reg.as_ref()).is_some_and(|r| r.answered.is_some()) {
                    self.test_answer(now, id, true, code, msg.reason());
                }
                self.on_register_answer(sig, now, id, code, msg)
            }
        }
        true
    }

    /// A request of ours failed without an answer (timeout: 408, transport error: 503);
    /// false when it is not a trunk's.
    pub(crate) fn handle_failure(&mut self, sig: &mut Signalling, now: Instant, tx: ClientTxId, code: u16) -> bool {
        let Some((id, purpose)) = self.clients.remove(&tx) else { return false };
        let transport_error = self.states.get(&id).and_then(|s| s.transport_error.clone()).filter(|_| code != 408);
        let short = transport_error.clone().unwrap_or_else(|| if code == 408 { "no answer".into() } else { "not reachable".into() });
        match purpose {
            Purpose::Unregister => {}
            Purpose::Options => self.options_failed(now, id, None),
            Purpose::TestOptions => self.test_failed(id, false, &short),
            Purpose::Register => {
                self.test_failed(id, true, &short);
                let why = match transport_error {
                    Some(e) => e,
                    None if code == 408 => "no answer from the provider".to_string(),
                    None => "the provider cannot be reached".to_string(),
                };
                self.register_failed(sig, now, id, why, None, None);
            }
        }
        true
    }

    /// Starts a test of trunk `id`; the answer comes on `reply` within [`TEST_TIMEOUT`]
    /// (`NoSuchTrunk` at once for a trunk that is not an enabled trunk the PBX knows).
    pub(crate) fn start_test(&mut self, sig: &mut Signalling, now: Instant, id: i64, reply: tokio::sync::oneshot::Sender<Result<TrunkTest, crate::CallError>>) {
        let Some(s) = self.states.get(&id) else {
            let _ = reply.send(Err(crate::CallError::NoSuchTrunk));
            return;
        };
        if let Some(t) = self.tests.get_mut(&id) {
            t.replies.push(reply);
            return;
        }
        let registers = s.reg.is_some();
        let stopped = s.reg.as_ref().is_some_and(|r| r.state == RegistrationState::Stopped);
        self.tests.insert(id, PendingTest { replies: vec![reply], started: now, options: None, register: registers.then_some(None) });
        self.schedule(id, Due::TestDeadline, Some(now + TEST_TIMEOUT));
        // the OPTIONS
        match self.options_request(sig, id) {
            Some(req) => {
                if !self.send(sig, now, id, Purpose::TestOptions, req) {
                    self.test_failed(id, false, "could not be sent");
                }
            }
            None => self.test_failed(id, false, "its host does not resolve"),
        }
        // a registration attempt now (a test is the administrator's edit: a 403 stop is tried
        // again too)
        if registers {
            if let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) {
                if stopped {
                    r.state = RegistrationState::Registering;
                }
                r.challenge = None;
            }
            self.schedule(id, Due::Register, None);
            self.send_register(sig, now, id);
        }
        self.finish_test(id, false);
    }

    fn test_answer(&mut self, now: Instant, id: i64, register: bool, code: u16, reason: Option<&str>) {
        let Some(t) = self.tests.get_mut(&id) else { return };
        let probe = Probe {
            status: Some(code),
            reason: reason.map(str::to_owned),
            rtt_ms: Some(now.saturating_duration_since(t.started).as_millis().min(u128::from(u64::MAX)) as u64),
            error: None,
        };
        if register {
            if matches!(t.register, Some(None)) {
                t.register = Some(Some(probe));
            }
        } else if t.options.is_none() {
            t.options = Some(probe);
        }
        self.finish_test(id, false);
    }

    fn test_failed(&mut self, id: i64, register: bool, why: &str) {
        let Some(t) = self.tests.get_mut(&id) else { return };
        let probe = Probe { error: Some(why.to_owned()), ..Probe::default() };
        if register {
            if matches!(t.register, Some(None)) {
                t.register = Some(Some(probe));
            }
        } else if t.options.is_none() {
            t.options = Some(probe);
        }
        self.finish_test(id, false);
    }

    /// Answers a test once both probes are in (or, at its deadline, with what is).
    fn finish_test(&mut self, id: i64, deadline: bool) {
        let Some(t) = self.tests.get(&id) else { return };
        if !deadline && !t.done() {
            return;
        }
        let Some(t) = self.tests.remove(&id) else { return };
        self.schedule(id, Due::TestDeadline, None);
        let timeout = || Probe { error: Some("no answer in 8 s".into()), ..Probe::default() };
        let result = TrunkTest { options: t.options.unwrap_or_else(timeout), register: t.register.map(|r| r.unwrap_or_else(timeout)) };
        for reply in t.replies {
            let _ = reply.send(Ok(result.clone()));
        }
    }

    fn on_options_answer(&mut self, now: Instant, id: i64, code: u16) {
        let Some(s) = self.states.get_mut(&id) else { return };
        let rtt = s.keepalive.sent_at.map(|t| now.saturating_duration_since(t));
        s.keepalive.sent_at = None;
        s.keepalive.rtt = rtt;
        s.keepalive.status = Some(code);
        if s.keepalive.reachable == Some(false) {
            tracing::info!(trunk = id, name = %s.trunk.name, code, "trunk up again: it answers OPTIONS");
        }
        // any answer is a live carrier (some answer OPTIONS with 404 or 405)
        s.keepalive.reachable = Some(true);
        self.schedule(id, Due::OptionsTimeout, None);
        self.publish(id);
    }

    fn on_register_answer(&mut self, sig: &mut Signalling, now: Instant, id: i64, code: u16, msg: &Message) {
        let reason = msg.reason().unwrap_or("").to_owned();
        let response = Some((code, reason.clone()));
        let retry_after = msg
            .header(HeaderName::RetryAfter)
            .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .map(Duration::from_secs);
        match code {
            200..=299 => {
                let Some(s) = self.states.get_mut(&id) else { return };
                let contact_user = s.contact_user.clone();
                let Some(r) = s.reg.as_mut() else { return };
                // the interval granted to our contact, else the Expires header, else ours
                let ours = msg.contacts().find(|c| c.addr().is_some_and(|a| a.uri.user().is_some_and(|u| u == contact_user)));
                let granted = ours.and_then(|c| c.expires()).or_else(|| msg.expires()).unwrap_or(r.expires);
                if granted == 0 {
                    return self.register_failed(sig, now, id, "the provider granted no time".into(), response, None);
                }
                if r.state != RegistrationState::Registered {
                    tracing::info!(trunk = id, granted, "trunk registered");
                }
                r.state = RegistrationState::Registered;
                r.until = Some(now + Duration::from_secs(u64::from(granted)));
                r.error = None;
                r.last_response = response;
                r.backoff = BACKOFF_FIRST;
                r.challenge = None;
                r.answered = None;
                let at = now + refresh_after(granted);
                r.next_at = Some(at);
                self.schedule(id, Due::Register, Some(at));
                self.publish(id);
            }
            401 | 407 => {
                let ch = best_challenge(msg);
                let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) else { return };
                r.last_response = response.clone();
                let Some(ch) = ch else {
                    return self.register_failed(sig, now, id, format!("{code} without a digest challenge we can answer"), response, None);
                };
                // a second challenge to credentials we just sent: they are wrong (unless the
                // provider only says our nonce was stale)
                if r.answered.is_some() && !ch.stale {
                    return self.register_failed(sig, now, id, "the provider refused the credentials".into(), response, None);
                }
                r.challenge = Some((ch, 0));
                self.send_register(sig, now, id);
            }
            403 => {
                let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) else { return };
                tracing::warn!(trunk = id, "the provider forbids this registration (403): not retried until the trunk is edited");
                r.state = RegistrationState::Stopped;
                r.error = Some("forbidden by the provider (403): edit the trunk to try again".into());
                r.last_response = response;
                r.next_at = None;
                r.until = None;
                r.challenge = None;
                self.schedule(id, Due::Register, None);
                self.publish(id);
            }
            423 => {
                let min = msg.header(HeaderName::MinExpires).and_then(|v| v.trim().parse::<u32>().ok());
                let Some(r) = self.states.get_mut(&id).and_then(|s| s.reg.as_mut()) else { return };
                match min {
                    Some(m) if m > r.expires && m <= 86_400 => {
                        r.expires = m;
                        r.last_response = response;
                        r.challenge = None;
                        self.send_register(sig, now, id);
                    }
                    _ => self.register_failed(sig, now, id, "423 without a usable Min-Expires".into(), response, None),
                }
            }
            _ => {
                let why = if reason.is_empty() { format!("{code}") } else { format!("{code} {reason}") };
                self.register_failed(sig, now, id, why, response, retry_after);
            }
        }
    }

    fn publish(&mut self, id: i64) {
        let Some(s) = self.states.get(&id) else { return };
        let registration = s.reg.as_ref().map(|r| RegistrationStatus {
            state: r.state,
            error: r.error.clone(),
            last_response: r.last_response.clone(),
            expires_at_ms: r.until.map(|u| wall(u).unix_millis()),
            next_attempt_at_ms: r.next_at.map(|n| wall(n).unix_millis()),
        });
        let status = TrunkStatus {
            trunk_id: id,
            registration,
            reachable: s.keepalive.reachable,
            rtt_ms: s.keepalive.rtt.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
            options_status: s.keepalive.status,
            transport_error: s.transport_error.clone(),
        };
        let changed = self.shared.trunks.get(&id).is_none_or(|old| *old != status);
        if changed {
            self.shared.trunks.insert(id, status.clone());
            self.shared.emit(|| PbxEvent::TrunkStatus(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_before_the_end() {
        assert_eq!(refresh_after(300), Duration::from_secs(255));
        assert_eq!(refresh_after(3600), Duration::from_secs(3060));
        assert_eq!(refresh_after(120), Duration::from_secs(90));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(30), Duration::from_secs(15));
    }
}
