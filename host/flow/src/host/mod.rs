//! The host side of the node contract: the store data of one node run ([`HostState`]) and
//! the implementations of the imported interfaces, one module each (`call`, `directory`,
//! `clock`, `http`, `kv`, `log`). Each capability check happens here, before any service is
//! touched; whatever a node was not granted answers `denied`.
//!
//! Resource accounting of a run also lives in the store data: the memory limiter
//! ([`MemLimiter`]) and the CPU meter ([`CpuMeter`]) that the epoch callback reads.

mod call;
mod clock;
mod directory;
mod http;
mod kv;
mod log;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bindings::types as wit;
use crate::control::{CallControl, CallError, HangupCause, Party};
use crate::services::Services;
use crate::trace::LogLine;
use crate::types::{Capability, Grants};

/// Why the call has left the flow (after which every call function is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Left {
    Bridged(String),
    Transferred(String),
    HungUp(HangupCause),
    CallerHungUp,
}

/// The call as the walk sees it, shared by the walker and every node run of the call.
#[derive(Debug)]
pub(crate) struct CallShared {
    pub caller: Party,
    pub variables: Vec<(String, String)>,
    pub left: Option<Left>,
}

/// What a node run knows about its call.
#[derive(Clone)]
pub(crate) struct CallCtx {
    pub control: Arc<dyn CallControl>,
    pub shared: Arc<Mutex<CallShared>>,
    pub flow_id: i64,
    pub flow_version: i64,
    pub entry_node: Arc<str>,
    /// The entities the flow version runs with (`None`: a draft, which reads the live ones).
    pub pinned: Option<Arc<crate::entity::Pinned>>,
}

impl CallCtx {
    pub fn shared(&self) -> std::sync::MutexGuard<'_, CallShared> {
        // Held only for short, non-panicking updates; a poisoned lock still holds valid data.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Memory limit of one run: growth past `cap` fails (and is remembered, so a trap that
/// follows is reported as the memory limit).
pub(crate) struct MemLimiter {
    pub cap: usize,
    pub denied: bool,
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Guest CPU time of one run. The run's future is polled through [`CpuMeter::guest`], which
/// adds up the time spent inside each poll; host calls go through [`HostState::timed`], whose
/// own polls are taken back out. Time the run spends waiting — for a host call to complete,
/// or for the executor to poll it again after the epoch callback made it yield — is no one's
/// CPU and is not counted, so a busy machine does not push a well-behaved node over its
/// budget. A poll is timed by the monotonic clock (a few ns to read) until the run first
/// reaches the epoch callback, i.e. has run for a slice; from then on, by the CPU clock of
/// the polling thread (a system call to read, paid only by long runs), so that time the
/// thread was preempted does not count either. The epoch callback, which runs on the polling
/// thread, compares [`CpuMeter::used`] with the budget.
pub(crate) struct CpuMeter {
    pub budget: Duration,
    clock: Arc<CpuClock>,
    pub exceeded: bool,
}

/// The counters a run's polls write (a run is polled by one thread at a time, but not
/// always the same one: atomics keep the store data `Send`).
#[derive(Default)]
pub(crate) struct CpuClock {
    /// Time inside finished polls of the run, in ns.
    polled_ns: AtomicU64,
    /// The clock when the poll in progress began (0: none in progress).
    poll_start_ns: AtomicU64,
    /// Whether the poll in progress is timed by the thread CPU clock.
    poll_precise: AtomicBool,
    /// Time inside polls of host calls, in ns.
    host_ns: AtomicU64,
    /// The run reached the epoch callback: later polls use the thread CPU clock.
    precise: AtomicBool,
}

impl CpuClock {
    fn now(precise: bool) -> u64 {
        if precise {
            thread_cpu_ns()
        } else {
            monotonic_ns()
        }
    }
}

impl CpuMeter {
    pub fn new(budget: Duration) -> CpuMeter {
        CpuMeter { budget, clock: Arc::new(CpuClock::default()), exceeded: false }
    }

    /// Guest CPU time so far. Called by the epoch callback (on the polling thread), which
    /// also switches the run's later polls to the thread CPU clock.
    pub fn used(&self) -> Duration {
        let c = &self.clock;
        c.precise.store(true, Ordering::Relaxed);
        let start = c.poll_start_ns.load(Ordering::Relaxed);
        let current = if start == 0 { 0 } else { CpuClock::now(c.poll_precise.load(Ordering::Relaxed)).saturating_sub(start) };
        let total = c.polled_ns.load(Ordering::Relaxed) + current;
        Duration::from_nanos(total.saturating_sub(c.host_ns.load(Ordering::Relaxed)))
    }

    /// Runs the run's future `f` (instantiation and the guest calls), metering its polls.
    /// Take the clock (`meter.clock()`) before `f` borrows the store.
    pub async fn guest<F: Future>(clock: Arc<CpuClock>, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            let precise = clock.precise.load(Ordering::Relaxed);
            let t0 = CpuClock::now(precise).max(1);
            clock.poll_precise.store(precise, Ordering::Relaxed);
            clock.poll_start_ns.store(t0, Ordering::Relaxed);
            let r = f.as_mut().poll(cx);
            clock.poll_start_ns.store(0, Ordering::Relaxed);
            clock.polled_ns.fetch_add(CpuClock::now(precise).saturating_sub(t0), Ordering::Relaxed);
            r
        })
        .await
    }

    /// Runs a host operation `f` inside a guest poll: the time its polls take is taken back
    /// out of the guest's.
    pub async fn host<F: Future>(clock: Arc<CpuClock>, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            // the same clock as the guest poll this host poll runs inside
            let precise = clock.poll_precise.load(Ordering::Relaxed);
            let t0 = CpuClock::now(precise);
            let r = f.as_mut().poll(cx);
            clock.host_ns.fetch_add(CpuClock::now(precise).saturating_sub(t0), Ordering::Relaxed);
            r
        })
        .await
    }

    /// The counters [`CpuMeter::guest`] writes.
    pub fn clock(&self) -> Arc<CpuClock> {
        self.clock.clone()
    }
}

/// The monotonic clock, in ns since the process first asked (never 0).
fn monotonic_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

/// CPU time of the calling thread, in nanoseconds.
#[cfg(unix)]
fn thread_cpu_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Elsewhere: the monotonic clock (counts preemption, so it errs toward stopping a node early).
#[cfg(not(unix))]
fn thread_cpu_ns() -> u64 {
    monotonic_ns()
}

/// The wall clock of one run, with two limits. The node's own time — guest code and the
/// host calls that do not wait on the caller (HTTP, kv, directory, answering, hanging up…) —
/// is held to `own`: the host's limit, or less if the node type asked for less. Time inside
/// a host call that waits on the caller (a prompt or TTS playing, collecting digits,
/// ringing, voicemail, a transfer, a conference; see [`HostState::waiting`]) is not own time:
/// each is bounded by its own arguments, which the host clamps, and ends when the caller
/// hangs up. `total` bounds the whole run, waits included.
pub(crate) struct WallClock {
    own: Duration,
    total: Duration,
    start: tokio::time::Instant,
    waits: Mutex<Waits>,
}

#[derive(Default)]
struct Waits {
    /// Waits in progress (host calls do not nest; counted all the same).
    depth: u32,
    since: Option<tokio::time::Instant>,
    /// Time spent in finished waits.
    waited: Duration,
}

impl WallClock {
    /// A clock starting now (tokio's clock: virtual in a simulation).
    pub fn new(own: Duration, total: Duration) -> Arc<WallClock> {
        Arc::new(WallClock { own, total: total.max(own), start: tokio::time::Instant::now(), waits: Mutex::new(Waits::default()) })
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, Waits> {
        self.waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the run must have ended, and the limit that is: while the run waits on the
    /// caller only the total applies.
    fn deadline(&self) -> (tokio::time::Instant, Duration) {
        let w = self.waits();
        let total = self.start + self.total;
        if w.depth > 0 {
            return (total, self.total);
        }
        let own = self.start + w.waited + self.own;
        if own < total {
            (own, self.own)
        } else {
            (total, self.total)
        }
    }

    /// Starts a wait on the caller; it ends when the guard is dropped.
    fn begin_wait(self: &Arc<Self>) -> WaitGuard {
        let mut w = self.waits();
        if w.depth == 0 {
            w.since = Some(tokio::time::Instant::now());
        }
        w.depth += 1;
        WaitGuard(self.clone())
    }
}

/// A wait on the caller in progress.
pub(crate) struct WaitGuard(Arc<WallClock>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut w = self.0.waits();
        w.depth = w.depth.saturating_sub(1);
        if w.depth == 0
            && let Some(since) = w.since.take()
        {
            w.waited += since.elapsed();
        }
    }
}

/// Runs a run's future (instantiation and the guest calls) under its wall clock: `Err` with
/// the limit that ran out, when one did (the future is dropped, which ends the run).
pub(crate) async fn wall_limited<F: Future>(wall: Arc<WallClock>, f: F) -> Result<F::Output, Duration> {
    let mut f = std::pin::pin!(f);
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(wall.deadline().0));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        // The deadline moves when a wait ends; a wait's own end wakes this (the host call
        // completing wakes the run), so it is re-read after every poll.
        let (deadline, limit) = wall.deadline();
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).map(|()| Err(limit))
    })
    .await
}

/// How many log lines a run keeps (and logs), and how long each may be: the rest is counted
/// and reported in one line at the end of the run.
pub(crate) const MAX_LOG_LINES: usize = 100;
pub(crate) const MAX_LOG_BYTES: usize = 1024;

/// Text from a guest made fit for a log line: control characters (a newline would forge a
/// line of the process log, an escape sequence would reach a terminal) escaped, and cut to
/// `max` bytes (with `…`).
pub(crate) fn guest_text(message: &str, max: usize) -> String {
    let mut out = String::with_capacity(message.len().min(max + 4));
    for c in message.chars() {
        let before = out.len();
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            out.push('…');
            break;
        }
    }
    out
}

/// The store data of one node run.
pub(crate) struct HostState {
    pub limiter: MemLimiter,
    pub meter: CpuMeter,
    pub node_id: Arc<str>,
    pub type_id: Arc<str>,
    pub grants: Arc<Grants>,
    pub services: Services,
    /// `None` for `describe` and `outputs`, which run without a call.
    pub call: Option<CallCtx>,
    pub logs: Vec<LogLine>,
    pub dropped_logs: usize,
    pub wall: Arc<WallClock>,
    /// Keeps the engine's epoch ticking while this store lives.
    pub awake: Option<crate::engine::Awake>,
}

impl HostState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cap: usize,
        budget: Duration,
        wall: Arc<WallClock>,
        node_id: Arc<str>,
        type_id: Arc<str>,
        grants: Arc<Grants>,
        services: Services,
        call: Option<CallCtx>,
    ) -> HostState {
        HostState {
            limiter: MemLimiter { cap, denied: false },
            meter: CpuMeter::new(budget),
            node_id,
            type_id,
            grants,
            services,
            call,
            logs: Vec::new(),
            dropped_logs: 0,
            wall,
            awake: None,
        }
    }

    /// Wall-clock time as the call sees it (the system's when there is no call).
    pub fn call_now(&self) -> jiff::Timestamp {
        match &self.call {
            Some(c) => c.control.now(),
            None => jiff::Timestamp::now(),
        }
    }

    /// Awaits a host operation: the time its polls take is host time, not the guest's.
    pub async fn timed<F: Future>(&mut self, f: F) -> F::Output {
        CpuMeter::host(self.meter.clock(), f).await
    }

    /// Awaits a host operation that waits on the caller: host time (as [`timed`]), and not
    /// the node's own wall-clock time (see [`WallClock`]).
    ///
    /// [`timed`]: HostState::timed
    pub async fn waiting<F: Future>(&mut self, f: F) -> F::Output {
        let _wait = self.wall.begin_wait();
        self.timed(f).await
    }

    /// Keeps a line for the trace and sends it to the process log: at most
    /// [`MAX_LOG_LINES`] a run, each cut to [`MAX_LOG_BYTES`] with control characters
    /// escaped; further lines are only counted ([`HostState::finish_logs`] reports them).
    pub fn log_line(&mut self, level: &str, message: &str) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return;
        }
        let m = guest_text(message, MAX_LOG_BYTES);
        self.emit(level, &m);
        self.logs.push(LogLine { level: level.to_string(), message: m });
    }

    fn emit(&self, level: &str, m: &str) {
        let call_id = self.call.as_ref().map(|c| c.control.call_id().to_string()).unwrap_or_default();
        match level {
            "error" => tracing::error!(call_id, node = %self.node_id, node_type = %self.type_id, "{m}"),
            "warn" => tracing::warn!(call_id, node = %self.node_id, node_type = %self.type_id, "{m}"),
            "info" => tracing::info!(call_id, node = %self.node_id, node_type = %self.type_id, "{m}"),
            "debug" => tracing::debug!(call_id, node = %self.node_id, node_type = %self.type_id, "{m}"),
            _ => tracing::trace!(call_id, node = %self.node_id, node_type = %self.type_id, "{m}"),
        }
    }

    /// The run's log lines, with one line saying how many more were dropped, if any (that
    /// line also goes to the process log).
    pub fn finish_logs(&mut self) -> Vec<LogLine> {
        let mut logs = std::mem::take(&mut self.logs);
        if self.dropped_logs > 0 {
            let m = format!("{} more log lines dropped", self.dropped_logs);
            self.emit("warn", &m);
            logs.push(LogLine { level: "warn".into(), message: m });
            self.dropped_logs = 0;
        }
        logs
    }

    /// `Ok` when the node holds `c`; else logs the refusal and returns it (the guest is told
    /// through `From<NotGranted> for NodeError`).
    pub fn require(&mut self, c: &Capability) -> Result<(), NotGranted> {
        if self.grants.allows(c) {
            return Ok(());
        }
        self.log_line("warn", &format!("denied: the node lacks the capability {c}"));
        Err(NotGranted(c.clone()))
    }

    /// The call, if the run has one and it is still in the flow.
    pub fn live_call(&self) -> Result<CallCtx, wit::NodeError> {
        let Some(c) = &self.call else {
            return Err(wit::NodeError::Denied("there is no call here (describe and outputs run without one)".into()));
        };
        match &c.shared().left {
            None => Ok(c.clone()),
            Some(Left::CallerHungUp) => Err(wit::NodeError::CallerHungUp),
            Some(other) => Err(wit::NodeError::Denied(format!("the call has left the flow ({other:?})"))),
        }
    }
}

/// A capability the node was not granted (the text is the capability, as the guest sees it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotGranted(pub Capability);

impl From<NotGranted> for wit::NodeError {
    fn from(e: NotGranted) -> wit::NodeError {
        wit::NodeError::Denied(e.to_string())
    }
}

/// Maps a call error onto the guest's error, noting a hang-up on the shared call.
pub(crate) fn call_error(call: &CallCtx, e: CallError) -> wit::NodeError {
    match e {
        CallError::CallerHungUp => {
            call.shared().left.get_or_insert(Left::CallerHungUp);
            wit::NodeError::CallerHungUp
        }
        e => wit::NodeError::Failed(e.to_string()),
    }
}

impl wit::Host for HostState {}

#[cfg(test)]
mod meter_tests {
    use super::*;

    fn spin(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test]
    async fn waiting_between_polls_is_not_guest_time_but_work_inside_them_is() {
        let meter = CpuMeter::new(Duration::from_millis(50));
        CpuMeter::guest(meter.clock(), async {
            // pending for 80 ms (as a run waiting for the executor or a host call)
            tokio::time::sleep(Duration::from_millis(80)).await;
            spin(Duration::from_millis(5));
        })
        .await;
        let used = meter.used();
        assert!(used >= Duration::from_millis(5) && used < Duration::from_millis(40), "{used:?}");
    }

    #[tokio::test]
    async fn after_the_first_slice_the_thread_cpu_clock_times_the_polls() {
        let meter = CpuMeter::new(Duration::from_millis(50));
        let _ = meter.used(); // what the epoch callback does after a slice
        CpuMeter::guest(meter.clock(), async {
            tokio::task::yield_now().await;
            // 10 ms of this thread's CPU (a wall-clock spin on a loaded machine is partly
            // preempted, and the meter rightly does not count that part)
            let t = thread_cpu_ns();
            while thread_cpu_ns() - t < 10_000_000 {
                std::hint::black_box(0u64);
            }
            // a blocking sleep inside a poll: preempted time, no CPU
            std::thread::sleep(Duration::from_millis(60));
        })
        .await;
        let used = meter.used();
        assert!(used >= Duration::from_millis(9) && used < Duration::from_millis(40), "{used:?}");
    }

    #[tokio::test]
    async fn host_calls_inside_a_poll_are_taken_back_out() {
        let meter = CpuMeter::new(Duration::from_millis(50));
        let clock = meter.clock();
        CpuMeter::guest(clock.clone(), async {
            CpuMeter::host(clock.clone(), async { spin(Duration::from_millis(60)) }).await;
            spin(Duration::from_millis(2));
        })
        .await;
        let used = meter.used();
        // the 60 ms host call is out; the bound leaves room for the 2 ms spin being preempted
        assert!(used >= Duration::from_millis(2) && used < Duration::from_millis(30), "{used:?}");
    }
}

#[cfg(test)]
mod wall_tests {
    use super::*;
    use tokio::time::{sleep, Instant};

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn own_time_is_limited() {
        let wall = WallClock::new(S, 100 * S);
        let t = Instant::now();
        assert_eq!(wall_limited(wall, sleep(2 * S)).await, Err(S));
        assert_eq!(t.elapsed(), S);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_the_caller_is_not_own_time_but_own_time_adds_up_around_waits() {
        let wall = WallClock::new(S, 100 * S);
        let w = wall.clone();
        let r = wall_limited(wall, async move {
            sleep(S * 6 / 10).await;
            let g = w.begin_wait();
            sleep(5 * S).await;
            drop(g);
            sleep(S * 3 / 10).await;
            "done"
        })
        .await;
        assert_eq!(r, Ok("done"), "0.9 s of own time around a 5 s wait");

        let wall = WallClock::new(S, 100 * S);
        let w = wall.clone();
        let t = Instant::now();
        let r = wall_limited(wall, async move {
            sleep(S * 6 / 10).await;
            let g = w.begin_wait();
            sleep(5 * S).await;
            drop(g);
            sleep(S * 6 / 10).await;
        })
        .await;
        assert_eq!(r, Err(S), "1.2 s of own time");
        assert_eq!(t.elapsed(), 6 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_bounds_waits() {
        let wall = WallClock::new(S, 3 * S);
        let w = wall.clone();
        let t = Instant::now();
        let r = wall_limited(wall, async move {
            let _g = w.begin_wait();
            sleep(3600 * S).await;
        })
        .await;
        assert_eq!(r, Err(3 * S));
        assert_eq!(t.elapsed(), 3 * S);
    }

    #[test]
    fn guest_text_escapes_control_characters_and_cuts() {
        assert_eq!(guest_text("a\nb", 100), "a\\nb");
        assert_eq!(guest_text("line\nforged: admin logged in\r\u{1b}[2J", 100), "line\\nforged: admin logged in\\r\\u{1b}[2J");
        let long = "é".repeat(1000);
        let cut = guest_text(&long, 1024);
        assert!(cut.len() <= 1024 + '…'.len_utf8() && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(guest_text("short", 1024), "short");
    }
}
