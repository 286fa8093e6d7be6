//! FlowPBX's PBX: SIP transports (UDP, TCP, TLS), the registrar, the B2BUA that connects
//! extensions, trusted and registration trunks (with follow-me, transfers and SRTP), CDRs
//! and SIP security, built on the sans-IO `sip` crate.
//!
//! Entry point: [`start`] binds the sockets, loads the in-memory directory and the
//! registrations the store kept, and runs the event loop on its own thread. The returned
//! [`PbxHandle`] is what the rest of the process uses: registrations and calls in progress
//! (for the API), events (for the WebSocket), and the async call operations a flow drives —
//! [`PbxHandle::ring`] and [`PbxHandle::hangup`] on calls taken from
//! [`PbxHandle::incoming_calls`].
//!
//! Performance shape: one event-loop thread owns the transaction layer and every call; no
//! database access on the request path (credentials live decrypted in memory and are
//! reloaded when the store's change stamp moves; registrations and CDRs are written behind,
//! in batches); SIP logging formats nothing when it is off.
//!
//! **Architecture invariant:** the state machine ([`core`](crate) and the B2BUA) never touches
//! a socket or the database and never reads the clock: the event loop passes instants in and
//! takes bytes and store writes out, so the PBX's behaviour is unit-tested with bytes and a
//! fake clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod anchor;
mod b2bua;
mod clock;
mod config;
mod core;
mod directory;
mod error;
mod event_loop;
mod events;
mod metrics;
mod persist;
mod registrar;
pub mod routing;
mod sdp_media;
mod security;
mod signalling;
mod sip_tls;
mod sip_trace;
mod siplog;
mod srtp;
mod subscriptions;
mod trunks;
mod websocket;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Poll, Waker};
use store::Store;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

pub use anchor::CallMedia;
pub use clock::wall;
pub use config::{OutboundConfig, RegistrarConfig, SecurityConfig, SipConfig, SipLogMode};
pub use directory::{Directory, VOICEMAIL_ANY, VOICEMAIL_OWN};
pub use error::CallError;
pub use events::{ActiveCall, CallKey, CallState, DirectoryCounts, PbxEvent};
pub use metrics::{HistogramSnapshot, SipMetrics, METHODS as SIP_METHODS};
pub use registrar::{Binding, ChangeAction};
pub use security::GuardStats;
pub use sip::auth::Algorithm as DigestAlgorithm;
pub use sip::transaction::{Peer, Transport};
pub use sip_tls::SipTls;
pub use sip_trace::{TracedMessage, PER_CALL as SIP_MESSAGES_PER_CALL};
pub use subscriptions::{MwiCounts, Package as EventPackage, SubscriptionInfo};
pub use trunks::{Probe, RegistrationState, RegistrationStatus, TrunkStatus, TrunkTest};
pub use websocket::WS_PATH;

use crate::b2bua::CallCommand;
use crate::core::{Command, Core, Ports};

/// What to ring for a call held by a controller ([`PbxHandle::ring`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingRequest {
    /// The extensions (by id) whose live contacts all ring at once.
    pub extensions: Vec<i64>,
    /// Numbers outside (E.164 or dial strings) rung at the same time through the outbound
    /// routes (one number alone fails over along its route's trunks).
    pub numbers: Vec<String>,
    /// How long they ring before [`RingOutcome::NoAnswer`].
    pub timeout: Duration,
    /// The caller id the phones show (name, number); the call's caller when `None`.
    pub caller_id: Option<(Option<String>, String)>,
}

/// How ringing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingOutcome {
    /// A contact of this extension (id) answered; the call is bridged and lives until a BYE.
    Answered(i64),
    /// A number outside answered through this trunk; the call is bridged.
    AnsweredOutside {
        /// The trunk.
        trunk_id: i64,
    },
    /// Nobody answered within the timeout (or every contact said 480/408).
    NoAnswer,
    /// Busy (486/600, or do-not-disturb).
    Busy,
    /// Rejected (603).
    Declined,
    /// No contact is registered.
    Unavailable,
    /// Another failure, with the status the caller would get.
    Failed(u16),
    /// The caller hung up while it rang; the call is over.
    CallerHungUp,
}

/// A call to an inbound number, handed to the controller that took
/// [`PbxHandle::incoming_calls`] (the flow engine). The caller has heard 100 Trying; the
/// controller rings extensions ([`PbxHandle::ring`]) and ends it ([`PbxHandle::hangup`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    /// The PBX's key for the call.
    pub key: CallKey,
    /// The caller's Call-ID.
    pub call_id: String,
    /// The caller's display name.
    pub caller_id_name: Option<String>,
    /// The caller's number.
    pub caller_id_num: String,
    /// The inbound number dialled, as stored.
    pub dialled: String,
    /// The trunk it came from.
    pub trunk_id: i64,
    /// The flow the number enters.
    pub flow_id: Option<i64>,
    /// Set when an extension (this id) dialled the dial-in voicemail (`*97`, `*98` or a
    /// box's mailbox number, in `dialled`) rather than a number: the controller runs the
    /// voicemail menu instead of a flow (`trunk_id` is then 0, `flow_id` None).
    pub voicemail_from: Option<i64>,
}

/// The PBX's health, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether the event loop runs.
    pub running: bool,
    /// The UDP address listened on.
    pub udp: Option<SocketAddr>,
    /// The TCP address listened on.
    pub tcp: Option<SocketAddr>,
    /// The TLS address listened on.
    pub tls: Option<SocketAddr>,
    /// The WSS address listened on.
    pub wss: Option<SocketAddr>,
    /// WebSocket frames and handshakes dropped (protocol errors, messages that are not SIP).
    pub ws_dropped: u64,
    /// Live contacts.
    pub registrations: usize,
    /// Calls in progress.
    pub calls: usize,
    /// What the SIP stack's in-memory directory holds.
    pub directory: DirectoryCounts,
    /// Security counters.
    pub guard: GuardStats,
    /// Messages received, sent, failed to send.
    pub messages: (u64, u64, u64),
}

struct Inner {
    media: Option<media::MediaEngine>,
    media_open: Arc<anchor::Open>,
    outbox: Arc<persist::Outbox>,
    commands: std::sync::mpsc::Sender<Command>,
    waker: Arc<Waker>,
    shared: Arc<events::Shared>,
    poke: Arc<Notify>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    wss: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    /// What the SIP log (and the message viewer) keeps.
    sip_log: SipLogMode,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    writer_stop: Arc<Notify>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    refresher: tokio::task::JoinHandle<()>,
    store: Store,
}

/// The handle on the running PBX. Cheap to clone.
#[derive(Clone)]
pub struct PbxHandle(Arc<Inner>);

impl std::fmt::Debug for PbxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbxHandle").field("udp", &self.0.udp).field("tcp", &self.0.tcp).finish()
    }
}

fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, CallError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| CallError::Bind { what: "UDP", addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    // Room for bursts: a registration storm must queue, not drop.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    Ok(s.into())
}

fn bind_tcp(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, CallError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| CallError::Bind { what, addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    s.listen(1024).map_err(err)?;
    Ok(s.into())
}

/// Starts the PBX without a media engine: SDP passes between the legs unchanged and the
/// phones send media to each other. See [`start_with_media`].
pub async fn start(cfg: SipConfig, store: Store) -> Result<PbxHandle, CallError> {
    start_inner(cfg, store, None).await
}

/// Starts the PBX: loads the directory and the unexpired registrations from `store`, binds
/// the SIP sockets, and runs the event loop on its own thread. Every call's media is
/// anchored in `media` (its RTP port range, its advertised address for peers the SIP
/// locator cannot place). Must be called within a tokio runtime (the write-behind,
/// directory and media event tasks run on it).
pub async fn start_with_media(cfg: SipConfig, store: Store, media: media::MediaEngine) -> Result<PbxHandle, CallError> {
    start_inner(cfg, store, Some(media)).await
}

async fn start_inner(cfg: SipConfig, store: Store, media_engine: Option<media::MediaEngine>) -> Result<PbxHandle, CallError> {
    let clock = clock::Clock::new();
    let now = clock.now();
    let stamp = directory::current_stamp(&store).await?;
    let dir = Arc::new(Directory::load(&store).await?);
    let wall_now = wall(now);
    let expired = store.registrations().delete_expired(wall_now).await?.len();
    let kept = store.registrations().list_all_unexpired(wall_now).await?;

    let udp = if cfg.udp_port != 0 { Some(bind_udp(SocketAddr::new(cfg.bind, cfg.udp_port))?) } else { None };
    let tcp = if cfg.tcp_port != 0 { Some(bind_tcp(SocketAddr::new(cfg.bind, cfg.tcp_port), "TCP")?) } else { None };
    let tls_setup = match &cfg.tls {
        Some(t) => Some((
            t.server.clone(),
            sip_tls::Clients::new(&t.provider).map_err(|e| CallError::Io(std::io::Error::other(format!("SIP TLS client configuration: {e}"))))?,
        )),
        None => None,
    };
    let tls = if cfg.tls_port != 0 && tls_setup.is_some() { Some(bind_tcp(SocketAddr::new(cfg.bind, cfg.tls_port), "TLS")?) } else { None };
    let wss = if cfg.wss_port != 0 && tls_setup.is_some() { Some(bind_tcp(SocketAddr::new(cfg.bind, cfg.wss_port), "WSS")?) } else { None };
    // plain WebSocket carries SIP digests and SDP in clear: loopback only
    let ws = if cfg.ws_port != 0 {
        let ip = if cfg.bind.is_ipv6() { IpAddr::from(std::net::Ipv6Addr::LOCALHOST) } else { IpAddr::from(std::net::Ipv4Addr::LOCALHOST) };
        Some(bind_tcp(SocketAddr::new(ip, cfg.ws_port), "WS")?)
    } else {
        None
    };
    let wss_addr = wss.as_ref().and_then(|s| s.local_addr().ok());
    let ws_addr = ws.as_ref().and_then(|s| s.local_addr().ok());
    let udp_addr = udp.as_ref().and_then(|s| s.local_addr().ok());
    let tcp_addr = tcp.as_ref().and_then(|s| s.local_addr().ok());
    let tls_addr = tls.as_ref().and_then(|s| s.local_addr().ok());
    let ports = Ports {
        udp: udp_addr.map_or(0, |a| a.port()),
        tcp: tcp_addr.map_or(0, |a| a.port()),
        tls: tls_addr.map_or(0, |a| a.port()),
        wss: wss_addr.map_or(0, |a| a.port()),
        ws: ws_addr.map_or(0, |a| a.port()),
    };

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| CallError::Io(std::io::Error::other(e.to_string())))?;
    let shared = events::Shared::new();
    let locate = event_loop::locator(cfg.bind, cfg.external_ip);
    let log = cfg.log;
    let tcp_idle = Duration::from_secs(u64::from(cfg.registrar.max_expires) + 120);
    let refresh = cfg.directory_refresh;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), event_loop::WAKER)?);
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    // the message-waiting lamps start from the store (the loop reads this first)
    match mwi_counts(&store).await {
        Ok(m) => {
            let _ = cmd_tx.send(Command::Mwi(m));
        }
        Err(e) => tracing::warn!(error = %e, "voicemail counts could not be read: the message-waiting lamps start off"),
    }
    let outbox = Arc::new(persist::Outbox::default());
    let media_open = Arc::new(anchor::Open::default());
    let port: Option<Box<dyn anchor::MediaPort>> = media_engine.clone().map(|engine| {
        let link = anchor::CoreLink { commands: cmd_tx.clone(), waker: waker.clone() };
        Box::new(anchor::EngineMedia::new(engine, tokio::runtime::Handle::current(), link, outbox.clone(), shared.media.clone(), media_open.clone()))
            as Box<dyn anchor::MediaPort>
    });
    let mut core = Core::new(cfg, ports, dir.clone(), seed, shared.clone(), locate, port);
    let restored = core.registrar.restore(now, kept);
    // outbound minutes already talked today (UTC) count towards the daily caps
    let day_start = store::Timestamp::from_unix_millis(wall_now.unix_millis().div_euclid(86_400_000) * 86_400_000).unwrap_or(wall_now);
    match store.cdrs().outbound_seconds_since(day_start).await {
        Ok(used) => core.b2bua.set_outbound_usage(now, &used),
        Err(e) => tracing::warn!(error = %e, "today's outbound minutes could not be read: caps count from now"),
    }
    tracing::info!(users = dir.user_count(), restored, expired, udp = ?udp_addr, tcp = ?tcp_addr, tls = ?tls_addr, wss = ?wss_addr, ws = ?ws_addr, media = media_engine.is_some(), "SIP stack starting");

    let writer_stop = Arc::new(Notify::new());
    let writer = tokio::spawn(persist::writer(store.clone(), outbox.clone(), writer_stop.clone(), shared.clone()));

    let lp = event_loop::Loop::new(
        poll,
        udp.map(mio::net::UdpSocket::from_std),
        tcp.map(mio::net::TcpListener::from_std),
        core,
        clock,
        cmd_rx,
        outbox.clone(),
        shared.clone(),
        log,
        tcp_idle,
    );
    let lp = match tls_setup {
        Some((server, clients)) => lp.with_tls(tls.map(mio::net::TcpListener::from_std), server, clients),
        None => lp,
    };
    let lp = lp.with_ws(wss.map(mio::net::TcpListener::from_std), ws.map(mio::net::TcpListener::from_std));
    let (stopped_tx, stopped_rx) = oneshot::channel();
    std::thread::Builder::new().name("sip".into()).spawn(move || {
        lp.run();
        let _ = stopped_tx.send(());
    })?;

    let poke = Arc::new(Notify::new());
    let refresher = {
        let cmd = cmd_tx.clone();
        let waker = waker.clone();
        tokio::spawn(directory::refresher(store.clone(), refresh, stamp, poke.clone(), move |d| {
            cmd.send(Command::Directory(d)).is_ok() && waker.wake().is_ok()
        }))
    };
    Ok(PbxHandle(Arc::new(Inner {
        media: media_engine,
        media_open,
        outbox,
        commands: cmd_tx,
        waker,
        shared,
        poke,
        udp: udp_addr,
        tcp: tcp_addr,
        tls: tls_addr,
        wss: wss_addr,
        ws: ws_addr,
        sip_log: log,
        stopped: Mutex::new(Some(stopped_rx)),
        writer_stop,
        writer: Mutex::new(Some(writer)),
        refresher,
        store,
    })))
}

async fn mwi_counts(store: &Store) -> Result<HashMap<i64, MwiCounts>, store::StoreError> {
    let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    Ok(store.voicemail_messages().mwi_counts().await?.into_iter().map(|(id, (new, old))| (id, MwiCounts { new: clamp(new), old: clamp(old) })).collect())
}

impl PbxHandle {
    fn command(&self, cmd: Command) -> Result<(), CallError> {
        self.0.commands.send(cmd).map_err(|_| CallError::Stopped)?;
        self.0.waker.wake().map_err(CallError::Io)
    }

    /// The UDP address the PBX listens on.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.0.udp
    }

    /// The TCP address the PBX listens on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.0.tcp
    }

    /// The TLS address the PBX listens on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.0.tls
    }

    /// The SIP over secure WebSocket address the PBX listens on.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.0.wss
    }

    /// The SIP over plain WebSocket address (loopback) the PBX listens on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.0.ws
    }

    /// The live contacts of an extension.
    pub fn registrations(&self, extension_id: i64) -> Vec<Binding> {
        let now = clock::Clock::new().now();
        self.0.shared.bindings.get(&extension_id).map(|v| v.iter().filter(|b| b.expires > now).cloned().collect()).unwrap_or_default()
    }

    /// How many live contacts each registered extension has.
    pub fn registration_counts(&self) -> HashMap<i64, usize> {
        self.0.shared.bindings.iter().map(|e| (*e.key(), e.value().len())).collect()
    }

    /// What the PBX knows of an enabled trunk: its registration (registration trunks) and
    /// whether it answers OPTIONS. `None` for a trunk that is disabled or unknown (or not
    /// loaded yet: the directory follows the store within its refresh interval).
    pub fn trunk_status(&self, trunk_id: i64) -> Option<TrunkStatus> {
        self.0.shared.trunks.get(&trunk_id).map(|s| s.clone())
    }

    /// Tests an enabled trunk: sends an OPTIONS and, for a registration trunk, a REGISTER
    /// (a real refresh of its registration), and reports their answers and round trips
    /// (within 8 s). `Err(NoSuchTrunk)` for a trunk the PBX does not hold (disabled, unknown,
    /// or not loaded yet).
    pub async fn test_trunk(&self, trunk_id: i64) -> Result<TrunkTest, CallError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::TestTrunk { trunk_id, reply })?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The calls in progress.
    pub fn active_calls(&self) -> Vec<ActiveCall> {
        let mut v: Vec<ActiveCall> = self.0.shared.calls.iter().map(|e| e.value().clone()).collect();
        v.sort_by_key(|c| c.key);
        v
    }

    /// Tells the listeners (webhooks, `/ws`) that a voicemail message was stored.
    pub fn voicemail_left(&self, mailbox_id: i64, message_id: i64, caller_id_num: Option<String>, caller_id_name: Option<String>, duration: i64) {
        self.0.shared.emit(|| PbxEvent::VoicemailLeft { mailbox_id, message_id, caller_id_num, caller_id_name, duration });
    }

    /// Registration, call and security events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PbxEvent> {
        self.0.shared.subscribe()
    }

    /// Takes the stream of calls to inbound numbers (once; `None` afterwards): the flow
    /// runner walks each through its number's flow. Until someone takes it — and again if
    /// the receiver is dropped — such a call is refused with 480 (never a stuck call).
    pub fn incoming_calls(&self) -> Option<mpsc::UnboundedReceiver<IncomingCall>> {
        self.0.shared.take_incoming()
    }

    /// Re-reads every extension's voicemail counts from the store and NOTIFYs the
    /// message-summary subscribers whose counts changed. Call it after a message is left,
    /// read, saved or deleted, or a box's lamp extension changes (from the API or a call).
    pub async fn refresh_mwi(&self) {
        match mwi_counts(&self.0.store).await {
            Ok(m) => {
                let _ = self.command(Command::Mwi(m));
            }
            Err(e) => tracing::warn!(error = %e, "voicemail counts could not be read for the message-waiting lamps"),
        }
    }

    /// The SIP event subscriptions (MWI) an extension's phones hold.
    pub fn subscriptions(&self, extension_id: i64) -> Vec<SubscriptionInfo> {
        self.0.shared.subscriptions.get(&extension_id).map(|v| v.clone()).unwrap_or_default()
    }

    /// Makes the directory check the store for changes now (an API write can call it; the
    /// directory also polls on its own).
    pub fn reload_directory(&self) {
        self.0.poke.notify_one();
    }

    /// Rings every live contact of the request's extensions for the call `key` (forked, the
    /// first answer wins). On [`RingOutcome::Answered`] the call is bridged; on any other
    /// outcome the caller is still waiting (except [`RingOutcome::CallerHungUp`]) and the
    /// controller decides what comes next.
    pub async fn ring(&self, key: CallKey, request: RingRequest) -> Result<RingOutcome, CallError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Call(CallCommand::Ring { call: key, request, reply }))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Stops the ringing of the call `key` (the phones get CANCEL) when the controller
    /// gives up on a [`PbxHandle::ring`] it no longer waits for; the caller keeps waiting.
    /// Nothing happens when nothing rings.
    pub fn stop_ring(&self, key: CallKey) {
        let _ = self.command(Command::Call(CallCommand::StopRing { call: key }));
    }

    /// Answers the caller of the call `key` with FlowPBX's own SDP (the flow's prompts and
    /// digit collection run on the call's media session, [`PbxHandle::call_media`]). Nothing
    /// happens when it is answered already; it fails while extensions ring.
    pub async fn answer(&self, key: CallKey) -> Result<(), CallError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Call(CallCommand::Answer { call: key, reply }))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// The media of the call `key` (None without a media engine or once the call ended).
    pub fn call_media(&self, key: CallKey) -> Option<Arc<CallMedia>> {
        self.0.shared.media.get(&key).map(|m| m.value().clone())
    }

    /// The media engine every call is anchored in (prompts, data dir).
    pub fn media_engine(&self) -> Option<&media::MediaEngine> {
        self.0.media.as_ref()
    }

    /// Ends the call `key`: a caller still waiting is answered with `code` (a 3xx–6xx
    /// status; 480 otherwise), an answered call is hung up on both sides.
    pub async fn hangup(&self, key: CallKey, code: u16) -> Result<(), CallError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Call(CallCommand::Hangup { call: key, code, reply }))?;
        rx.await.map_err(|_| CallError::Stopped)?
    }

    /// Whether the call `key` is still in progress (not ended, whatever its state).
    pub fn is_live(&self, key: CallKey) -> bool {
        self.0.shared.calls.contains_key(&key)
    }

    /// Writes what a flow did with the call `key` to its CDR (flow id and version, the
    /// trace's path, and a disposition that replaces signalling's, e.g. voicemail). Written
    /// behind with the call's other CDR writes, before or after the call's end.
    pub fn record_flow(&self, key: CallKey, flow_id: i64, version: i64, path: serde_json::Value, disposition: Option<store::CallDisposition>) {
        let mut ops = vec![persist::PersistOp::CdrFlow { key, flow_id, version, path, disposition }];
        self.0.outbox.extend(&mut ops);
    }

    /// The PBX's health and counters.
    pub fn health(&self) -> Health {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.0.shared;
        Health {
            running: s.running.load(std::sync::atomic::Ordering::Acquire),
            udp: self.0.udp,
            tcp: self.0.tcp,
            tls: self.0.tls,
            wss: self.0.wss,
            ws_dropped: s.counters.ws_dropped.load(Relaxed),
            registrations: s.bindings.iter().map(|e| e.value().len()).sum(),
            calls: s.calls.len(),
            directory: s.directory.lock().map(|d| *d).unwrap_or_default(),
            guard: s.guard.lock().map(|g| *g).unwrap_or_default(),
            messages: (s.counters.received.load(Relaxed), s.counters.sent.load(Relaxed), s.counters.send_errors.load(Relaxed)),
        }
    }

    /// The SIP stack's counters for the metrics endpoint.
    pub fn metrics(&self) -> SipMetrics {
        self.0.shared.metrics.snapshot()
    }

    /// Every enabled trunk's status (for the metrics endpoint).
    pub fn trunk_statuses(&self) -> Vec<(i64, TrunkStatus)> {
        self.0.shared.trunks.iter().map(|e| (*e.key(), e.value().clone())).collect()
    }

    /// Starts (or stops) draining: new calls (out-of-dialog INVITEs) and OPTIONS are
    /// answered 503 with Retry-After so that carriers and phones go elsewhere; calls in
    /// progress, in-dialog requests and registrations go on.
    pub fn set_draining(&self, on: bool) {
        self.0.shared.draining.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The SIP messages kept of the call whose caller Call-ID is `call_id` (a CDR's
    /// `call_id`), oldest first: its last [`sip_trace::PER_CALL`] messages, callee legs
    /// included, while the SIP log is on (`SipConfig::log`); nothing otherwise.
    pub fn sip_messages(&self, call_id: &str) -> Vec<TracedMessage> {
        self.0.shared.sip_trace.lock().map(|t| t.messages(call_id)).unwrap_or_default()
    }

    /// Whether the SIP message viewer keeps messages (the SIP log is on).
    pub fn keeps_sip_messages(&self) -> bool {
        self.0.sip_log != SipLogMode::Off
    }

    /// Whether the PBX is draining.
    pub fn is_draining(&self) -> bool {
        self.0.shared.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the PBX: refuses new calls, ends the calls in progress (their CDRs get an end
    /// time), writes the registrations' exact expiries, and waits until everything is in
    /// the store.
    pub async fn shutdown(&self) {
        let _ = self.command(Command::Shutdown);
        let stopped = self.0.stopped.lock().ok().and_then(|mut s| s.take());
        if let Some(rx) = stopped {
            let _ = rx.await;
        }
        self.0.refresher.abort();
        // the media sessions' statistics reach the CDRs before the writer stops
        self.0.media_open.wait_idle(Duration::from_secs(2)).await;
        self.0.writer_stop.notify_one();
        let writer = self.0.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = writer {
            let _ = w.await;
        }
    }
}
