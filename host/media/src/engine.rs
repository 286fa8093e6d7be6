//! The socket layer: relay worker threads that own the UDP sockets and drive the sans-IO
//! [`Session`]s, behind the handle API the B2BUA uses.
//!
//! Design for the relay's cost per packet: a small fixed number of worker threads, each with
//! its own epoll (mio) over the sockets of the sessions it owns. A datagram is read into the
//! worker's one buffer, rewritten in place by the session, and sent from the other leg's socket,
//! all on that thread: no allocation, no lock, no channel hop on the passthrough path.
//! Commands from handles travel on a channel plus a waker; events go back on a bounded tokio
//! channel per session (`try_send`, so a slow consumer never stalls the relay).
//!
//! ```no_run
//! # async fn demo() -> media::Result<()> {
//! use media::*;
//! let engine = MediaEngine::new(EngineConfig::default())?;
//! let mut call = engine.create_session("call-id@host")?;
//! let a_port = call.local_rtp(LegId::A).port(); // into the SDP answered to the caller
//! # let (a_addr, b_addr) = ("192.0.2.1:4000".parse().unwrap(), "192.0.2.2:4000".parse().unwrap());
//! let codecs = LegCodecs::new(&[CodecSpec::pcmu()], None)?;
//! call.set_remote(LegId::A, RemoteMedia::new(Some(a_addr), codecs.clone()));
//! call.set_remote(LegId::B, RemoteMedia::new(Some(b_addr), codecs));
//! call.bridge();
//! while let Some(ev) = call.next_event().await {
//!     if let MediaEvent::MediaTimeout { .. } = ev { break; }
//! }
//! let stats = call.close().await?; // for the CDR
//! # let _ = (a_port, stats); Ok(()) }
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::sync::{mpsc as tmpsc, oneshot};

pub mod conference;

use crate::player::PlayRequest;
use crate::ports::PortAllocator;
use crate::record::{self, RecordMode};
pub use crate::recorder::RecordingInfo;
use crate::recorder::{RecorderPool, RecordingSink};
use crate::session::{DigitEvent, DtmfSource, MediaEvent, RemoteMedia, Session, SessionConfig, StreamKind};
use crate::stats::SessionStats;
use crate::webrtc::{DtlsIdentity, WebRtcLeg, VIRTUAL_PEER};
use crate::{LegId, MediaError, Result};
pub use conference::{Conference, ConferenceEvent, ConferenceSettings, ConferenceSummary, JoinOptions, LeaveReason, Participant, ParticipantInfo};

/// Configuration of the media engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (`FLOWPBX_EXTERNAL_IP`); the bound address when `None`
    /// (and not unspecified).
    pub advertised_ip: Option<IpAddr>,
    /// Lowest RTP port (`FLOWPBX_RTP_PORT_MIN`, default 10000).
    pub port_min: u16,
    /// Highest RTP port (`FLOWPBX_RTP_PORT_MAX`, default 20000).
    pub port_max: u16,
    /// Relay worker threads.
    pub workers: usize,
    /// Per-session tunables (media timeout, Opus, …).
    pub session: SessionConfig,
    /// `<data-dir>`: recordings go under `<data-dir>/recordings/YYYY/MM/DD/`.
    pub data_dir: PathBuf,
    /// Recording is skipped (with an admin alert) below this much free disk.
    pub min_free_disk: u64,
    /// Audio bytes that may wait for the disk before recorder blocks are dropped.
    pub recorder_queue_bytes: usize,
    /// A session whose legs have sent nothing for this long, and that nothing plays to, is
    /// closed and its ports reclaimed even if its handle is still held (a leaked call).
    pub orphan_timeout: Duration,
    /// Capacity of each session's event channel.
    pub event_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            advertised_ip: None,
            port_min: 10000,
            port_max: 20000,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()).min(2),
            session: SessionConfig::default(),
            data_dir: PathBuf::from("data"),
            min_free_disk: 1 << 30,
            recorder_queue_bytes: 8 << 20,
            orphan_timeout: Duration::from_secs(3600),
            event_capacity: 256,
        }
    }
}

impl EngineConfig {
    /// Reads `FLOWPBX_RTP_PORT_MIN`, `FLOWPBX_RTP_PORT_MAX`, `FLOWPBX_EXTERNAL_IP`,
    /// `FLOWPBX_RTP_STRICT_PROBATION` and `FLOWPBX_RTP_STRICT_LEARNING` over the defaults,
    /// with `data_dir`.
    pub fn from_env(data_dir: PathBuf) -> Result<Self> {
        let mut c = EngineConfig { data_dir, ..Default::default() };
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("FLOWPBX_RTP_PORT_MIN") {
            c.port_min = v.trim().parse().map_err(|_| MediaError::Config(format!("FLOWPBX_RTP_PORT_MIN: {v:?} is not a port")))?;
        }
        if let Some(v) = var("FLOWPBX_RTP_PORT_MAX") {
            c.port_max = v.trim().parse().map_err(|_| MediaError::Config(format!("FLOWPBX_RTP_PORT_MAX: {v:?} is not a port")))?;
        }
        if let Some(v) = var("FLOWPBX_EXTERNAL_IP") {
            c.advertised_ip = Some(v.trim().parse().map_err(|_| MediaError::Config(format!("FLOWPBX_EXTERNAL_IP: {v:?} is not an IP address")))?);
        }
        if let Some(v) = var("FLOWPBX_RTP_STRICT_PROBATION") {
            c.session.strict.probation =
                v.trim().parse().map_err(|_| MediaError::Config(format!("FLOWPBX_RTP_STRICT_PROBATION: {v:?} is not a packet count")))?;
        }
        if let Some(v) = var("FLOWPBX_RTP_STRICT_LEARNING") {
            c.session.strict.learning = v.parse().map_err(|e| MediaError::Config(format!("FLOWPBX_RTP_STRICT_LEARNING: {e}")))?;
        }
        Ok(c)
    }
}

/// What the health endpoint shows about media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineHealth {
    /// Sessions open.
    pub sessions: usize,
    /// RTP port pairs in use and in the range.
    pub port_pairs_in_use: usize,
    /// Port pairs in the range.
    pub port_pairs: usize,
    /// Recording is being skipped because free disk is under the threshold.
    pub recording_disk_low: bool,
    /// Events dropped because a session's consumer did not keep up.
    pub events_dropped: u64,
    /// SRTP/SRTCP datagrams dropped because their authentication tag did not verify
    /// (forged, corrupted, another key, plain RTP on an SRTP leg), by the sessions closed
    /// since start; never forwarded.
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP datagrams dropped as replays, by the sessions closed since start.
    pub srtp_replays: u64,
}

enum Cmd {
    Add(Box<NewSession>),
    SetRemote(u64, LegId, Box<RemoteMedia>),
    SetSrtp(u64, LegId, Option<Box<crate::srtp::SrtpKeys>>),
    SetWebRtc(u64, LegId, Box<WebRtcLeg>),
    Bridge(u64, bool),
    Play(u64, LegId, PlayRequest, oneshot::Sender<u64>),
    StopPlay(u64, LegId),
    SendDtmf(u64, LegId, char, Duration, oneshot::Sender<Result<()>>),
    InfoDtmf(u64, LegId, char, Option<Duration>, oneshot::Sender<Result<()>>),
    StartRecording(u64, RecordMode, RecordingSink),
    StopRecording(u64, oneshot::Sender<Result<RecordingInfo>>),
    Stats(u64, oneshot::Sender<SessionStats>),
    Close(u64, Option<oneshot::Sender<SessionStats>>),
    Conference(Box<conference::RoomCmd>),
    Shutdown,
}

struct NewSession {
    id: u64,
    call_id: String,
    session: Session,
    sockets: [UdpSocket; 4],
    ports: [u16; 2],
    events: tmpsc::Sender<MediaEvent>,
    route: Arc<AtomicUsize>,
}

struct WorkerLink {
    tx: mpsc::Sender<Cmd>,
    waker: Waker,
    sessions: AtomicUsize,
}

impl WorkerLink {
    fn send(&self, cmd: Cmd) -> Result<()> {
        self.tx.send(cmd).map_err(|_| MediaError::SessionClosed)?;
        self.waker.wake().map_err(MediaError::from)
    }
}

struct Shared {
    cfg: EngineConfig,
    ports: Mutex<PortAllocator>,
    workers: Vec<Arc<WorkerLink>>,
    recorder: RecorderPool,
    prompts: crate::prompts::PromptStore,
    next_id: AtomicU64,
    sessions: AtomicUsize,
    events_dropped: AtomicU64,
    srtp_auth_failures: AtomicU64,
    srtp_replays: AtomicU64,
    /// Totals of the sessions closed since start (added once per session, off the relay path).
    totals: MediaTotals,
    conferences: conference::Registry,
    /// The DTLS certificate of WebRTC legs (None: it could not be made, no WebRTC).
    identity: Option<DtlsIdentity>,
}

/// Upper bounds (seconds) of the interarrival-jitter histogram (per leg, at session close).
pub const JITTER_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25];
/// Upper bounds of the loss histogram (fraction of expected packets lost, per leg).
pub const LOSS_BUCKETS: [f64; 6] = [0.0, 0.001, 0.01, 0.03, 0.05, 0.1];

#[derive(Default)]
struct MediaTotals {
    sessions: AtomicU64,
    packets_received: AtomicU64,
    packets_sent: AtomicU64,
    packets_expected: AtomicU64,
    packets_lost: AtomicU64,
    jitter: [AtomicU64; 9],
    jitter_sum_micros: AtomicU64,
    loss: [AtomicU64; 7],
    /// Sum of the legs' loss fractions, in millionths.
    loss_sum_ppm: AtomicU64,
}

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

impl MediaTotals {
    fn add(&self, stats: &crate::stats::SessionStats) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        for leg in [&stats.a, &stats.b] {
            let r = &leg.received;
            self.packets_received.fetch_add(r.packets, Ordering::Relaxed);
            self.packets_sent.fetch_add(leg.sent_packets, Ordering::Relaxed);
            self.packets_expected.fetch_add(r.expected, Ordering::Relaxed);
            self.packets_lost.fetch_add(r.lost, Ordering::Relaxed);
            if r.packets == 0 {
                continue; // a leg that never sent says nothing about jitter or loss
            }
            self.jitter[bucket(&JITTER_BUCKETS, r.jitter.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
            self.jitter_sum_micros.fetch_add(r.jitter.as_micros() as u64, Ordering::Relaxed);
            let loss = if r.expected == 0 { 0.0 } else { r.lost as f64 / r.expected as f64 };
            self.loss[bucket(&LOSS_BUCKETS, loss)].fetch_add(1, Ordering::Relaxed);
            self.loss_sum_ppm.fetch_add((loss * 1e6) as u64, Ordering::Relaxed);
        }
    }
}

/// The media engine's counters for the metrics endpoint ([`MediaEngine::metrics`]).
#[derive(Debug, Clone, Default)]
pub struct MediaMetrics {
    /// Sessions open now.
    pub sessions_open: usize,
    /// Sessions closed since start.
    pub sessions_closed: u64,
    /// RTP port pairs in use.
    pub port_pairs_in_use: usize,
    /// RTP port pairs in the range.
    pub port_pairs: usize,
    /// RTP packets received on both legs of the closed sessions.
    pub packets_received: u64,
    /// RTP packets sent on both legs of the closed sessions.
    pub packets_sent: u64,
    /// Packets the closed sessions expected (by sequence numbers).
    pub packets_expected: u64,
    /// Packets the closed sessions lost (by sequence numbers).
    pub packets_lost: u64,
    /// Per leg with media: interarrival jitter, non-cumulative counts per
    /// [`JITTER_BUCKETS`] bound plus one over the last; and the sum (seconds).
    pub jitter_counts: Vec<u64>,
    /// Sum of the legs' jitter, seconds.
    pub jitter_sum: f64,
    /// Per leg with media: fraction lost, non-cumulative counts per [`LOSS_BUCKETS`] bound
    /// plus one over the last.
    pub loss_counts: Vec<u64>,
    /// Sum of the legs' loss fractions.
    pub loss_sum: f64,
    /// SRTP packets dropped for a bad tag (closed sessions).
    pub srtp_auth_failures: u64,
    /// SRTP packets dropped as replays (closed sessions).
    pub srtp_replays: u64,
    /// Session events dropped (a slow consumer).
    pub events_dropped: u64,
}

impl Shared {
    /// `<data-dir>/recordings/YYYY/MM/DD/<name>.wav` for today's date (UTC).
    fn dated_recording_path(&self, name: &str) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let date = record::Date { year: now.year(), month: u8::from(now.month()), day: now.day() };
        record::recording_path(&self.cfg.data_dir, date, name)
    }

    /// Opens a recording that will end up at `path`, after the free-disk check.
    fn open_recording(&self, path: PathBuf, channels: u16) -> Result<RecordingSink> {
        let dir = path.parent().map_or_else(|| self.cfg.data_dir.clone(), std::path::Path::to_path_buf);
        self.recorder.check_disk(&dir, self.cfg.min_free_disk)?;
        self.recorder.open(path, channels)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for w in &self.workers {
            let _ = w.send(Cmd::Shutdown);
        }
    }
}

/// The media engine: owns the port range, the relay workers and the recorder. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine").field("health", &self.health()).finish()
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}

impl MediaEngine {
    /// Starts the workers and the recorder thread.
    pub fn new(cfg: EngineConfig) -> Result<Self> {
        let ports = PortAllocator::new(cfg.port_min, cfg.port_max)?;
        let recorder = RecorderPool::start(cfg.recorder_queue_bytes)?;
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for i in 0..cfg.workers.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, rx) = mpsc::channel();
            let link = Arc::new(WorkerLink { tx, waker, sessions: AtomicUsize::new(0) });
            workers.push(link.clone());
            threads.push((i, poll, rx, link));
        }
        let prompts = crate::prompts::PromptStore::new(&cfg.data_dir);
        let identity = match DtlsIdentity::generate() {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(error = %e, "no DTLS certificate: WebRTC calls are refused");
                None
            }
        };
        let shared = Arc::new(Shared {
            cfg,
            ports: Mutex::new(ports),
            workers,
            recorder,
            prompts,
            next_id: AtomicU64::new(1),
            sessions: AtomicUsize::new(0),
            events_dropped: AtomicU64::new(0),
            srtp_auth_failures: AtomicU64::new(0),
            srtp_replays: AtomicU64::new(0),
            totals: MediaTotals::default(),
            conferences: conference::Registry::default(),
            identity,
        });
        // workers hold a weak-free view: the allocator and counters they need, not the engine
        for (i, poll, rx, link) in threads {
            let ctx = WorkerCtx { ports: PortsRef(Arc::downgrade(&shared)), link, orphan_timeout: shared.cfg.orphan_timeout, index: i };
            std::thread::Builder::new().name(format!("media-relay-{i}")).spawn(move || Worker::new(poll, rx, ctx).run())?;
        }
        Ok(MediaEngine { shared })
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.cfg
    }

    /// Prompts by name under `<data-dir>/prompts` (custom, then system, then embedded).
    pub fn prompts(&self) -> &crate::prompts::PromptStore {
        &self.shared.prompts
    }

    /// The address to put in SDP `c=` lines.
    pub fn advertised_ip(&self) -> IpAddr {
        let c = &self.shared.cfg;
        c.advertised_ip.unwrap_or(if c.bind_ip.is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { c.bind_ip })
    }

    /// Counters for the health endpoint.
    pub fn health(&self) -> EngineHealth {
        let (in_use, cap) = self.shared.ports.lock().map(|p| (p.in_use(), p.capacity())).unwrap_or((0, 0));
        EngineHealth {
            sessions: self.shared.sessions.load(Ordering::Relaxed),
            port_pairs_in_use: in_use,
            port_pairs: cap,
            recording_disk_low: self.shared.recorder.disk_low.load(Ordering::Relaxed),
            events_dropped: self.shared.events_dropped.load(Ordering::Relaxed),
            srtp_auth_failures: self.shared.srtp_auth_failures.load(Ordering::Relaxed),
            srtp_replays: self.shared.srtp_replays.load(Ordering::Relaxed),
        }
    }

    /// Counters for the metrics endpoint: what is open now, and the totals of the sessions
    /// closed since start (the relay adds them once per session as it closes).
    pub fn metrics(&self) -> MediaMetrics {
        let h = self.health();
        let t = &self.shared.totals;
        let load = |a: &[AtomicU64]| a.iter().map(|x| x.load(Ordering::Relaxed)).collect();
        MediaMetrics {
            sessions_open: h.sessions,
            sessions_closed: t.sessions.load(Ordering::Relaxed),
            port_pairs_in_use: h.port_pairs_in_use,
            port_pairs: h.port_pairs,
            packets_received: t.packets_received.load(Ordering::Relaxed),
            packets_sent: t.packets_sent.load(Ordering::Relaxed),
            packets_expected: t.packets_expected.load(Ordering::Relaxed),
            packets_lost: t.packets_lost.load(Ordering::Relaxed),
            jitter_counts: load(&t.jitter),
            jitter_sum: t.jitter_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            loss_counts: load(&t.loss),
            loss_sum: t.loss_sum_ppm.load(Ordering::Relaxed) as f64 / 1e6,
            srtp_auth_failures: h.srtp_auth_failures,
            srtp_replays: h.srtp_replays,
            events_dropped: h.events_dropped,
        }
    }

    fn bind_pair(&self) -> Result<(u16, UdpSocket, UdpSocket)> {
        let ip = self.shared.cfg.bind_ip;
        // ports some other program holds are skipped (the pair is quarantined) and another
        // random pair is tried
        for _ in 0..64 {
            let port = self.shared.ports.lock().map_err(|_| MediaError::SessionClosed)?.allocate()?;
            let bound = std::net::UdpSocket::bind(SocketAddr::new(ip, port)).and_then(|rtp| {
                let rtcp = std::net::UdpSocket::bind(SocketAddr::new(ip, port + 1))?;
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                Ok((rtp, rtcp))
            });
            match bound {
                Ok((rtp, rtcp)) => return Ok((port, UdpSocket::from_std(rtp), UdpSocket::from_std(rtcp))),
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port pair busy, trying the next");
                    if let Ok(mut p) = self.shared.ports.lock() {
                        p.release(port);
                    }
                }
            }
        }
        Err(MediaError::PortsExhausted { min: self.shared.cfg.port_min, max: self.shared.cfg.port_max })
    }

    /// Allocates two port pairs (leg A, leg B) and starts a session on the least loaded worker.
    pub fn create_session(&self, call_id: &str) -> Result<SessionHandle> {
        let (pa, a_rtp, a_rtcp) = self.bind_pair()?;
        let (pb, b_rtp, b_rtcp) = match self.bind_pair() {
            Ok(x) => x,
            Err(e) => {
                if let Ok(mut p) = self.shared.ports.lock() {
                    p.release(pa);
                }
                return Err(e);
            }
        };
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (index, worker) =
            self.shared.workers.iter().enumerate().min_by_key(|(_, w)| w.sessions.load(Ordering::Relaxed)).ok_or(MediaError::SessionClosed)?;
        // the worker that owns the session now; a conference may move it to the room's worker
        let route = Arc::new(AtomicUsize::new(index));
        let (etx, erx) = tmpsc::channel(self.shared.cfg.event_capacity.max(8));
        let now = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut scfg = self.shared.cfg.session.clone();
        if scfg.cname == SessionConfig::default().cname {
            scfg.cname = format!("flowpbx-{id}");
        }
        let session = Session::new(scfg, now, wall, random_seed() ^ id);
        let ip = self.advertised_ip();
        worker.sessions.fetch_add(1, Ordering::Relaxed);
        self.shared.sessions.fetch_add(1, Ordering::Relaxed);
        let added = worker.send(Cmd::Add(Box::new(NewSession {
            id,
            call_id: call_id.to_string(),
            session,
            sockets: [a_rtp, a_rtcp, b_rtp, b_rtcp],
            ports: [pa, pb],
            events: etx,
            route: route.clone(),
        })));
        if let Err(e) = added {
            worker.sessions.fetch_sub(1, Ordering::Relaxed);
            self.shared.sessions.fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut p) = self.shared.ports.lock() {
                p.release(pa);
                p.release(pb);
            }
            return Err(e);
        }
        tracing::debug!(call_id, id, a = pa, b = pb, "media session created");
        Ok(SessionHandle {
            control: SessionControl { id, call_id: call_id.into(), ports: [pa, pb], ip, route, engine: self.clone() },
            events: erx,
            closed: false,
        })
    }
}

/// One call's media, as the B2BUA holds it. Dropping it closes the session (ports reclaimed);
/// [`SessionHandle::close`] does the same and returns the final statistics for the CDR.
///
/// It owns the session's event stream; every command is a method of [`SessionControl`], which
/// the handle dereferences to and which [`SessionHandle::control`] clones for other tasks
/// (the flow engine playing prompts while the call task reads events).
pub struct SessionHandle {
    control: SessionControl,
    events: tmpsc::Receiver<MediaEvent>,
    closed: bool,
}

/// The commands of one session, cloneable. Commands to a closed session are ignored or
/// answer [`MediaError::SessionClosed`].
#[derive(Clone)]
pub struct SessionControl {
    id: u64,
    call_id: Arc<str>,
    ports: [u16; 2],
    ip: IpAddr,
    /// Index of the worker that owns the session (shared with it: a session that joins a
    /// conference hosted elsewhere moves to that worker and updates it).
    route: Arc<AtomicUsize>,
    engine: MediaEngine,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.control.fmt(f)
    }
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("call_id", &self.call_id).field("ports", &self.ports).finish()
    }
}

impl std::ops::Deref for SessionHandle {
    type Target = SessionControl;
    fn deref(&self) -> &SessionControl {
        &self.control
    }
}

impl SessionHandle {
    /// A cloneable handle on the commands (not the events) for another task.
    pub fn control(&self) -> SessionControl {
        self.control.clone()
    }

    /// The next event (digits, playback ends, media timeouts, latching); `None` once closed.
    pub async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }

    /// The event receiver itself, for `select!`.
    pub fn events(&mut self) -> &mut tmpsc::Receiver<MediaEvent> {
        &mut self.events
    }

    /// Closes the session: a running recording is finished, sockets closed, ports reclaimed.
    /// Returns the final statistics for the CDR.
    pub async fn close(mut self) -> Result<SessionStats> {
        self.closed = true;
        let (tx, rx) = oneshot::channel();
        self.control.cmd(Cmd::Close(self.control.id, Some(tx)))?;
        rx.await.map_err(|_| MediaError::SessionClosed)
    }
}

impl SessionControl {
    /// The engine-wide session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The call id given at creation.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The RTP address to write into the SDP sent to `leg` (`c=` and `m=audio <port>`).
    pub fn local_rtp(&self, leg: LegId) -> SocketAddr {
        SocketAddr::new(self.ip, self.ports[leg.index()])
    }

    /// The RTCP address for `leg` (RTP port + 1; `a=rtcp` need not be written).
    pub fn local_rtcp(&self, leg: LegId) -> SocketAddr {
        SocketAddr::new(self.ip, self.ports[leg.index()] + 1)
    }

    fn cmd(&self, c: Cmd) -> Result<()> {
        self.engine.shared.workers.get(self.route.load(Ordering::Acquire)).ok_or(MediaError::SessionClosed)?.send(c)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.cmd(make(tx))?;
        rx.await.map_err(|_| MediaError::SessionClosed)
    }

    /// Sets what a leg's SDP says (offer or answer, and again on every re-INVITE).
    pub fn set_remote(&self, leg: LegId, remote: RemoteMedia) {
        let _ = self.cmd(Cmd::SetRemote(self.id, leg, Box::new(remote)));
    }

    /// Makes a leg's media SRTP with the keys SDES negotiated (the endpoint's as
    /// `inbound`, ours as `outbound`), or plain RTP with `None`; see
    /// [`Session::set_srtp`]. Send it before the `set_remote` of the same offer/answer.
    pub fn set_srtp(&self, leg: LegId, keys: Option<crate::srtp::SrtpKeys>) {
        let _ = self.cmd(Cmd::SetSrtp(self.id, leg, keys.map(Box::new)));
    }

    /// Makes a leg a WebRTC one (ICE-lite, DTLS-SRTP, rtcp-mux on its RTP port) by answering
    /// the browser's `offer` with `codecs` (the B2BUA's choice for the leg); returns the SDP
    /// answer. From then on the leg's RTP socket speaks to str0m, and the session hears the
    /// leg's plain RTP as if from [`crate::webrtc::VIRTUAL_PEER`] (its `set_remote` address is
    /// replaced by it).
    pub fn webrtc_answer(&self, leg: LegId, offer: &str, codecs: &[crate::CodecSpec]) -> Result<String> {
        let identity = self.engine.shared.identity.as_ref().ok_or_else(|| MediaError::Config("WebRTC is unavailable (no DTLS certificate)".into()))?;
        let (w, answer) = WebRtcLeg::accept_offer(offer, codecs, &self.webrtc_candidates(leg), identity, Instant::now())?;
        self.cmd(Cmd::SetWebRtc(self.id, leg, Box::new(w)))?;
        Ok(answer)
    }

    /// FlowPBX's WebRTC offer for a leg (a call to a browser): `codecs` in that order. Keep
    /// the pending offer for [`SessionControl::webrtc_accept`] with the browser's answer.
    pub fn webrtc_offer(&self, leg: LegId, codecs: &[crate::CodecSpec]) -> Result<(crate::webrtc::PendingWebRtc, String)> {
        let identity = self.engine.shared.identity.as_ref().ok_or_else(|| MediaError::Config("WebRTC is unavailable (no DTLS certificate)".into()))?;
        WebRtcLeg::offer(codecs, &self.webrtc_candidates(leg), identity, Instant::now())
    }

    /// Completes FlowPBX's WebRTC offer with the browser's answer; the leg is WebRTC from
    /// then on (as after [`SessionControl::webrtc_answer`]).
    pub fn webrtc_accept(&self, leg: LegId, pending: crate::webrtc::PendingWebRtc, answer: &str) -> Result<()> {
        let w = pending.accept_answer(answer, Instant::now())?;
        self.cmd(Cmd::SetWebRtc(self.id, leg, Box::new(w)))
    }

    /// The host candidates of a leg: the advertised address, then every interface address
    /// when the socket listens on all of them.
    fn webrtc_candidates(&self, leg: LegId) -> Vec<SocketAddr> {
        let local = self.local_rtp(leg);
        let mut candidates = vec![local];
        if self.engine.shared.cfg.bind_ip.is_unspecified() {
            candidates.extend(crate::webrtc::local_addresses().into_iter().map(|ip| SocketAddr::new(ip, local.port())));
        }
        candidates
    }

    /// Connects the legs' audio and DTMF.
    pub fn bridge(&self) {
        let _ = self.cmd(Cmd::Bridge(self.id, true));
    }

    /// Disconnects them (prompts and digit collection go on per leg).
    pub fn unbridge(&self) {
        let _ = self.cmd(Cmd::Bridge(self.id, false));
    }

    /// Plays to a leg (a prompt, a sequence, or looping music on hold), replacing what played.
    /// Returns the playback id that [`MediaEvent::PlaybackFinished`] carries.
    pub async fn play(&self, leg: LegId, req: PlayRequest) -> Result<u64> {
        self.ask(|tx| Cmd::Play(self.id, leg, req, tx)).await
    }

    /// Stops what plays to a leg.
    pub fn stop_playback(&self, leg: LegId) {
        let _ = self.cmd(Cmd::StopPlay(self.id, leg));
    }

    /// Sends a digit to a leg as RFC 4733 (an error if the leg has no telephone-event: then
    /// send SIP INFO instead).
    pub async fn send_dtmf(&self, leg: LegId, digit: char, duration: Duration) -> Result<()> {
        self.ask(|tx| Cmd::SendDtmf(self.id, leg, digit, duration, tx)).await?
    }

    /// Hands in the body of a SIP INFO a leg sent (`application/dtmf-relay` or
    /// `application/dtmf`). The digit is reported as a [`MediaEvent::Dtmf`] and relayed like an
    /// RFC 4733 one. Returns the digit; an unreadable body is [`MediaError::InvalidDtmf`]
    /// (answer the INFO with 415/400).
    pub async fn sip_info(&self, leg: LegId, content_type: &str, body: &[u8]) -> Result<DigitEvent> {
        let (digit, duration) = crate::dtmf::parse_sip_info(content_type, body)?;
        self.ask(|tx| Cmd::InfoDtmf(self.id, leg, digit, duration, tx)).await??;
        Ok(DigitEvent { leg, digit, duration: duration.unwrap_or(Duration::from_millis(250)), source: DtmfSource::SipInfo })
    }

    /// Starts recording to `<data-dir>/recordings/YYYY/MM/DD/<name>.wav` (UTC date), written
    /// as a hidden `.part` file and renamed when stopped. Refused with
    /// [`MediaError::DiskFull`] (and an admin alert in the log and in
    /// [`EngineHealth::recording_disk_low`]) when free disk is under the threshold: the call
    /// goes on unrecorded. Returns the final path.
    pub fn start_recording(&self, mode: RecordMode, name: &str) -> Result<PathBuf> {
        let path = self.engine.shared.dated_recording_path(name);
        self.start_recording_at(mode, path.clone())?;
        Ok(path)
    }

    /// Starts recording to an explicit final path (voicemail keeps its messages elsewhere);
    /// same temporary name, rename, disk check and bounded queue as
    /// [`SessionHandle::start_recording`]. The caller stops it (e.g. at the box's maximum
    /// message length).
    pub fn start_recording_at(&self, mode: RecordMode, path: PathBuf) -> Result<()> {
        let sink = self.engine.shared.open_recording(path, mode.channels() as u16)?;
        self.cmd(Cmd::StartRecording(self.id, mode, sink))
    }

    /// Stops the recording and waits until its file is complete under its final name.
    pub async fn stop_recording(&self) -> Result<RecordingInfo> {
        self.ask(|tx| Cmd::StopRecording(self.id, tx)).await?
    }

    /// Both legs' statistics now.
    pub async fn stats(&self) -> Result<SessionStats> {
        self.ask(|tx| Cmd::Stats(self.id, tx)).await
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.control.cmd(Cmd::Close(self.control.id, None));
        }
    }
}

const WAKER: Token = Token(usize::MAX);

/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 8;
const DATAGRAM_MAX: usize = 2048;
/// Each receive buffer has room after the largest datagram for the SRTP trailer the packet
/// may gain on its way to the other leg.
const BUFFER_LEN: usize = DATAGRAM_MAX + crate::srtp::MAX_OVERHEAD;

/// Reads up to [`BATCH`] datagrams with one `recvmmsg` into preallocated buffers. A batch
/// shorter than `BATCH` means the socket was empty at that moment, which spares the extra
/// `recvfrom` that only returns `EAGAIN` (edge-triggered epoll otherwise needs it).
struct BatchReceiver {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Vec<Vec<u8>>,
    meta: [(usize, Option<SocketAddr>); BATCH],
}

impl BatchReceiver {
    fn new() -> Self {
        BatchReceiver { headers: MultiHeaders::preallocate(BATCH, None), bufs: vec![vec![0u8; BUFFER_LEN]; BATCH], meta: [(0, None); BATCH] }
    }

    /// Receives into `self.bufs`; returns how many datagrams (0 when the socket is empty).
    fn recv(&mut self, fd: std::os::fd::RawFd) -> std::io::Result<usize> {
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = {
            let mut it = self.bufs.iter_mut();
            std::array::from_fn(|_| [IoSliceMut::new(it.next().map_or(&mut [][..], |b| &mut b[..DATAGRAM_MAX]))])
        };
        let results = match recvmmsg(fd, &mut self.headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(std::io::Error::from(e)),
        };
        let mut n = 0;
        for (i, msg) in results.enumerate() {
            let addr = msg.address.and_then(|a: SockaddrStorage| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6))))
            });
            self.meta[i] = (msg.bytes, addr);
            n = i + 1;
        }
        Ok(n)
    }
}
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// What a worker keeps of the engine: the allocator (weakly: the engine may be gone).
struct PortsRef(std::sync::Weak<Shared>);

struct WorkerCtx {
    ports: PortsRef,
    link: Arc<WorkerLink>,
    orphan_timeout: Duration,
    /// This worker's index in the engine's list.
    index: usize,
}

struct Slot {
    id: u64,
    call_id: String,
    session: Session,
    sockets: [UdpSocket; 4],
    ports: [u16; 2],
    events: tmpsc::Sender<MediaEvent>,
    recording: Option<RecordingSink>,
    scheduled: Option<Instant>,
    generation: u32,
    route: Arc<AtomicUsize>,
    /// Each leg's WebRTC transport, when it is a WebRTC leg.
    webrtc: [Option<Box<WebRtcLeg>>; 2],
    /// Each leg's remote media as the B2BUA gave it.
    remotes: [Option<RemoteMedia>; 2],
}

struct Worker {
    poll: Poll,
    rx: mpsc::Receiver<Cmd>,
    ctx: WorkerCtx,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    generation: u32,
    rx_batch: BatchReceiver,
    next_housekeeping: Instant,
    rooms: conference::Rooms,
    /// Sessions that moved to another worker (into a conference there), by id, with their
    /// route: commands that were already on their way here follow them.
    moved: HashMap<u64, Arc<AtomicUsize>>,
}

const SOCKET_KINDS: [(LegId, StreamKind); 4] =
    [(LegId::A, StreamKind::Rtp), (LegId::A, StreamKind::Rtcp), (LegId::B, StreamKind::Rtp), (LegId::B, StreamKind::Rtcp)];

fn socket_index(leg: LegId, stream: StreamKind) -> usize {
    leg.index() * 2 + usize::from(stream == StreamKind::Rtcp)
}

impl Worker {
    fn new(poll: Poll, rx: mpsc::Receiver<Cmd>, ctx: WorkerCtx) -> Self {
        Worker {
            poll,
            rx,
            ctx,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            generation: 0,
            rx_batch: BatchReceiver::new(),
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            rooms: conference::Rooms::default(),
            moved: HashMap::new(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let next = self.timers.peek().map_or(self.next_housekeeping, |Reverse((t, _, _))| (*t).min(self.next_housekeeping));
            let next = self.rooms.next_timeout().map_or(next, |t| t.min(next));
            let timeout = next.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media worker poll failed");
                return;
            }
            let now = Instant::now();
            // commands first: a packet that arrived with the set_remote/bridge that concerns
            // it must see their effect
            if events.iter().any(|ev| ev.token() == WAKER) && !self.commands(now) {
                return;
            }
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.read_socket(ev.token().0, now);
                }
            }
            self.run_timers(Instant::now());
            self.run_rooms(Instant::now());
        }
    }

    fn read_socket(&mut self, token: usize, now: Instant) {
        let (slot_index, sock) = (token / 4, token % 4);
        let Some(Some(slot)) = self.slots.get_mut(slot_index) else { return };
        let (leg, stream) = SOCKET_KINDS[sock];
        // edge-triggered: read until a batch comes back short (the socket was empty)
        let fd = slot.sockets[sock].as_raw_fd();
        loop {
            let n = match self.rx_batch.recv(fd) {
                Ok(n) => n,
                // EINTR, and ICMP errors (connection refused) reported once: read on
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionRefused) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, call_id = slot.call_id, "RTP socket read failed");
                    break;
                }
            };
            for i in 0..n {
                let (len, from) = self.rx_batch.meta[i];
                let Some(from) = from else { continue };
                let buf = &mut self.rx_batch.bufs[i][..];
                if slot.webrtc[leg.index()].is_some() {
                    // a WebRTC leg: ICE, DTLS and SRTP go to str0m (rtcp-mux: its RTCP port
                    // is unused); the plain RTP it gives back goes to the session
                    if stream == StreamKind::Rtp
                        && let Some(w) = slot.webrtc[leg.index()].as_mut()
                    {
                        w.handle_datagram(from, &buf[..len.min(DATAGRAM_MAX)], now);
                        pump_webrtc_rooms(slot, leg, now, &mut self.rooms, buf);
                    }
                    continue;
                }
                if let Some(f) = slot.session.handle_datagram(leg, stream, from, buf, len.min(DATAGRAM_MAX), now) {
                    send_leg(slot, f.leg, f.stream, f.to, &buf[..f.len], now);
                }
                if let Some(p) = slot.session.take_conference_packet() {
                    self.rooms.input(&p, buf);
                }
            }
            flush(slot, &self.ctx);
            if n < BATCH {
                break;
            }
        }
        schedule(slot, slot_index, &mut self.timers);
    }

    /// Runs queued commands; false on shutdown.
    fn commands(&mut self, now: Instant) -> bool {
        while let Ok(cmd) = self.rx.try_recv() {
            let id = match &cmd {
                Cmd::Add(_) | Cmd::Conference(_) | Cmd::Shutdown => 0,
                Cmd::SetRemote(id, ..)
                | Cmd::SetSrtp(id, ..)
                | Cmd::SetWebRtc(id, ..)
                | Cmd::Bridge(id, _)
                | Cmd::Play(id, ..)
                | Cmd::StopPlay(id, _)
                | Cmd::SendDtmf(id, ..)
                | Cmd::InfoDtmf(id, ..)
                | Cmd::StartRecording(id, ..)
                | Cmd::StopRecording(id, _)
                | Cmd::Stats(id, _)
                | Cmd::Close(id, _) => *id,
            };
            match cmd {
                Cmd::Shutdown => {
                    // rooms first: their participants learn it was a shutdown, not a hangup
                    self.rooms_shutdown();
                    for i in 0..self.slots.len() {
                        self.close_slot(i, None);
                    }
                    return false;
                }
                Cmd::Add(new) => self.add(*new),
                Cmd::Conference(c) => self.room_command(*c, now),
                Cmd::Close(_, reply) => match self.by_id.get(&id) {
                    Some(&i) => self.close_slot(i, reply),
                    None => self.forward(id, Cmd::Close(id, reply)),
                },
                other => {
                    let Some(&i) = self.by_id.get(&id) else {
                        // a session that moved to a conference's worker a moment ago
                        self.forward(id, other);
                        continue;
                    };
                    let Some(slot) = self.slots[i].as_mut() else { continue };
                    let s = &mut slot.session;
                    match other {
                        Cmd::SetRemote(_, leg, r) => {
                            slot.remotes[leg.index()] = Some((*r).clone());
                            let r = if slot.webrtc[leg.index()].is_some() { webrtc_remote(*r) } else { *r };
                            s.set_remote(leg, r, now);
                            self.rooms.codec_changed(s, leg);
                        }
                        Cmd::SetWebRtc(_, leg, w) => {
                            slot.webrtc[leg.index()] = Some(w);
                            if let Some(r) = slot.remotes[leg.index()].clone() {
                                s.set_remote(leg, webrtc_remote(r), now);
                                self.rooms.codec_changed(s, leg);
                            }
                            pump_webrtc(slot, leg, now);
                        }
                        Cmd::SetSrtp(_, leg, keys) => s.set_srtp(leg, keys.map(|k| *k)),
                        Cmd::Bridge(_, true) => s.bridge(),
                        Cmd::Bridge(_, false) => s.unbridge(),
                        Cmd::Play(_, leg, req, tx) => {
                            let _ = tx.send(s.play(leg, req, now));
                        }
                        Cmd::StopPlay(_, leg) => s.stop_playback(leg),
                        Cmd::SendDtmf(_, leg, d, dur, tx) => {
                            let _ = tx.send(s.send_dtmf(leg, d, dur, now));
                        }
                        Cmd::InfoDtmf(_, leg, d, dur, tx) => {
                            let _ = tx.send(s.sip_info_dtmf(leg, d, dur, now));
                        }
                        Cmd::StartRecording(_, mode, sink) => {
                            if let Some(old) = slot.recording.take() {
                                s.stop_recording();
                                while let Some(b) = s.poll_recording() {
                                    old.push(b);
                                }
                                old.close(None);
                            }
                            slot.session.start_recording(mode, now);
                            slot.recording = Some(sink);
                        }
                        Cmd::StopRecording(_, tx) => {
                            s.stop_recording();
                            match slot.recording.take() {
                                Some(sink) => {
                                    while let Some(b) = slot.session.poll_recording() {
                                        sink.push(b);
                                    }
                                    sink.close(Some(tx));
                                }
                                None => {
                                    let _ = tx.send(Err(MediaError::Config("no recording is running".into())));
                                }
                            }
                        }
                        Cmd::Stats(_, tx) => {
                            let mut st = s.stats();
                            st.a.webrtc = slot.webrtc[0].is_some();
                            st.b.webrtc = slot.webrtc[1].is_some();
                            let _ = tx.send(st);
                        }
                        Cmd::Add(_) | Cmd::Close(..) | Cmd::Conference(_) | Cmd::Shutdown => {}
                    }
                    flush(slot, &self.ctx);
                    schedule(slot, i, &mut self.timers);
                }
            }
        }
        true
    }

    fn add(&mut self, new: NewSession) {
        let NewSession { id, call_id, session, sockets, ports, events, route } = new;
        self.insert_slot(Slot {
            id,
            call_id,
            session,
            sockets,
            ports,
            events,
            recording: None,
            scheduled: None,
            generation: 0,
            route,
            webrtc: [None, None],
            remotes: [None, None],
        });
    }

    /// Takes a session (new, or moved here from another worker) into a free slot.
    fn insert_slot(&mut self, mut slot: Slot) -> usize {
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        for (k, s) in slot.sockets.iter_mut().enumerate() {
            if let Err(e) = self.poll.registry().register(s, Token(index * 4 + k), Interest::READABLE) {
                tracing::error!(error = %e, call_id = slot.call_id, "cannot register RTP socket");
            }
        }
        self.generation = self.generation.wrapping_add(1);
        slot.generation = self.generation;
        slot.scheduled = None;
        schedule(&mut slot, index, &mut self.timers);
        self.by_id.insert(slot.id, index);
        self.slots[index] = Some(slot);
        index
    }

    fn close_slot(&mut self, index: usize, reply: Option<oneshot::Sender<SessionStats>>) {
        let Some(mut slot) = self.slots.get_mut(index).and_then(Option::take) else { return };
        self.by_id.remove(&slot.id);
        self.free.push(index);
        for leg in [LegId::A, LegId::B] {
            if let Some(tag) = slot.session.conference_tag(leg) {
                self.member_gone(tag, LeaveReason::Hangup, Instant::now());
            }
        }
        if let Some(sink) = slot.recording.take() {
            slot.session.stop_recording();
            while let Some(b) = slot.session.poll_recording() {
                sink.push(b);
            }
            sink.close(None);
        }
        for s in &mut slot.sockets {
            let _ = self.poll.registry().deregister(s);
        }
        let mut stats = slot.session.stats();
        stats.a.webrtc = slot.webrtc[0].is_some();
        stats.b.webrtc = slot.webrtc[1].is_some();
        drop(slot.sockets);
        if let Some(shared) = self.ctx.ports.0.upgrade() {
            if let Ok(mut p) = shared.ports.lock() {
                p.release(slot.ports[0]);
                p.release(slot.ports[1]);
            }
            shared.sessions.fetch_sub(1, Ordering::Relaxed);
            shared.srtp_auth_failures.fetch_add(stats.a.srtp_auth_failures + stats.b.srtp_auth_failures, Ordering::Relaxed);
            shared.srtp_replays.fetch_add(stats.a.srtp_replays + stats.b.srtp_replays, Ordering::Relaxed);
            shared.totals.add(&stats);
        }
        self.ctx.link.sessions.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!(call_id = slot.call_id, "media session closed");
        if let Some(r) = reply {
            let _ = r.send(stats);
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, index, generation))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(Some(slot)) = self.slots.get_mut(index) else { continue };
            if slot.generation != generation || slot.scheduled != Some(t) {
                continue;
            }
            slot.scheduled = None;
            slot.session.handle_timeout(now);
            for leg in [LegId::A, LegId::B] {
                if let Some(w) = slot.webrtc[leg.index()].as_mut()
                    && w.poll_timeout().is_some_and(|t| t <= now)
                {
                    w.handle_timeout(now);
                    pump_webrtc(slot, leg, now);
                }
            }
            flush(slot, &self.ctx);
            schedule(slot, index, &mut self.timers);
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.rooms_housekeeping(now);
            let orphans: Vec<usize> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
                .filter(|(_, s)| {
                    let idle = now.saturating_duration_since(s.session.last_activity()) >= self.ctx.orphan_timeout;
                    let playing = s.session.is_playing(LegId::A) || s.session.is_playing(LegId::B);
                    (idle && !playing) || s.events.is_closed()
                })
                .map(|(i, _)| i)
                .collect();
            for i in orphans {
                if let Some(Some(s)) = self.slots.get(i) {
                    tracing::warn!(call_id = s.call_id, "orphaned media session closed, ports reclaimed");
                }
                self.close_slot(i, None);
            }
        }
    }
}

/// Sends what the session queued, forwards its events and recorder blocks.
fn flush(slot: &mut Slot, ctx: &WorkerCtx) {
    let now = if slot.webrtc.iter().any(Option::is_some) { Some(Instant::now()) } else { None };
    while let Some(t) = slot.session.poll_transmit() {
        match now {
            Some(now) => send_leg(slot, t.leg, t.stream, t.to, &t.data, now),
            None => {
                let _ = slot.sockets[socket_index(t.leg, t.stream)].send_to(&t.data, t.to);
            }
        }
        slot.session.recycle(t.data);
    }
    while let Some(ev) = slot.session.poll_event() {
        if let Err(tmpsc::error::TrySendError::Full(ev)) = slot.events.try_send(ev) {
            tracing::warn!(call_id = slot.call_id, ?ev, "media event dropped: consumer too slow");
            if let Some(shared) = ctx.ports.0.upgrade() {
                shared.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    while let Some(block) = slot.session.poll_recording() {
        if let Some(sink) = &slot.recording {
            sink.push(block);
        }
    }
}

/// Sends what the session made for a leg: from the leg's socket, or through its WebRTC
/// transport (RTP encrypted by str0m; RTCP is str0m's own there, so the session's is dropped).
fn send_leg(slot: &mut Slot, leg: LegId, stream: StreamKind, to: SocketAddr, data: &[u8], now: Instant) {
    match slot.webrtc[leg.index()].as_mut() {
        None => {
            let _ = slot.sockets[socket_index(leg, stream)].send_to(data, to);
        }
        Some(w) => {
            if stream == StreamKind::Rtp && !crate::rtp::looks_like_rtcp(data) {
                w.send_rtp(data, now);
                while let Some((dest, d)) = w.poll_transmit() {
                    let _ = slot.sockets[socket_index(leg, StreamKind::Rtp)].send_to(&d, dest);
                }
            }
        }
    }
}

/// A WebRTC leg's remote as the session sees it: the virtual peer its plain RTP comes from.
fn webrtc_remote(mut r: RemoteMedia) -> RemoteMedia {
    r.rtp = Some(VIRTUAL_PEER);
    r.rtcp = Some(VIRTUAL_PEER);
    r.rtcp_mux = true;
    r
}

/// Sends what a WebRTC leg's transport produced and gives the session its plain RTP.
fn pump_webrtc(slot: &mut Slot, leg: LegId, now: Instant) {
    let mut buf = vec![0u8; BUFFER_LEN];
    pump(slot, leg, now, None, &mut buf);
}

fn pump_webrtc_rooms(slot: &mut Slot, leg: LegId, now: Instant, rooms: &mut conference::Rooms, buf: &mut [u8]) {
    pump(slot, leg, now, Some(rooms), buf);
}

fn pump(slot: &mut Slot, leg: LegId, now: Instant, mut rooms: Option<&mut conference::Rooms>, buf: &mut [u8]) {
    loop {
        let Some(w) = slot.webrtc[leg.index()].as_mut() else { return };
        while let Some((dest, d)) = w.poll_transmit() {
            let _ = slot.sockets[socket_index(leg, StreamKind::Rtp)].send_to(&d, dest);
        }
        let Some(p) = w.poll_rtp() else { return };
        let len = p.len().min(DATAGRAM_MAX);
        buf[..len].copy_from_slice(&p[..len]);
        if let Some(f) = slot.session.handle_datagram(leg, StreamKind::Rtp, VIRTUAL_PEER, buf, len, now) {
            let out = buf[..f.len].to_vec();
            send_leg(slot, f.leg, f.stream, f.to, &out, now);
        }
        if let Some(p) = slot.session.take_conference_packet()
            && let Some(r) = rooms.as_deref_mut()
        {
            r.input(&p, buf);
        }
    }
}

fn schedule(slot: &mut Slot, index: usize, timers: &mut BinaryHeap<Reverse<(Instant, usize, u32)>>) {
    let webrtc = slot.webrtc.iter().flatten().filter_map(|w| w.poll_timeout()).min();
    let next = [slot.session.poll_timeout(), webrtc].into_iter().flatten().min();
    if let Some(t) = next
        && slot.scheduled.is_none_or(|s| t < s)
    {
        slot.scheduled = Some(t);
        timers.push(Reverse((t, index, slot.generation)));
    }
}
