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
        if precise { thread_cpu_ns() } else { monotonic_ns() }
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

/// How many log lines a run keeps, and how long each may be.
pub(crate) const MAX_LOG_LINES: usize = 100;
pub(crate) const MAX_LOG_BYTES: usize = 4096;

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
}

impl HostState {
    pub fn new(cap: usize, budget: Duration, node_id: Arc<str>, type_id: Arc<str>, grants: Arc<Grants>, services: Services, call: Option<CallCtx>) -> HostState {
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

    /// Keeps a line for the trace and sends it to the log.
    pub fn log_line(&mut self, level: &str, message: &str) {
        let call_id = self.call.as_ref().map(|c| c.control.call_id().to_string()).unwrap_or_default();
        match level {
            "error" => tracing::error!(call_id, node = %self.node_id, node_type = %self.type_id, "{message}"),
            "warn" => tracing::warn!(call_id, node = %self.node_id, node_type = %self.type_id, "{message}"),
            "info" => tracing::info!(call_id, node = %self.node_id, node_type = %self.type_id, "{message}"),
            "debug" => tracing::debug!(call_id, node = %self.node_id, node_type = %self.type_id, "{message}"),
            _ => tracing::trace!(call_id, node = %self.node_id, node_type = %self.type_id, "{message}"),
        }
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return;
        }
        let mut m = message.to_string();
        if m.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        self.logs.push(LogLine { level: level.to_string(), message: m });
    }

    /// `Ok` when the node holds `c`; else logs the refusal and returns what to tell the guest.
    pub fn require(&mut self, c: &Capability) -> Result<(), String> {
        if self.grants.allows(c) {
            return Ok(());
        }
        self.log_line("warn", &format!("denied: the node lacks the capability {c}"));
        Err(c.to_string())
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

/// Maps a call error onto the guest's error, noting a hang-up on the shared call.
pub(crate) fn call_error(call: &CallCtx, e: CallError) -> wit::NodeError {
    match e {
        CallError::CallerHungUp => {
            call.shared().left.get_or_insert(Left::CallerHungUp);
            wit::NodeError::CallerHungUp
        }
        CallError::Failed(m) => wit::NodeError::Failed(m),
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
