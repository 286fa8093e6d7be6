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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
#[cfg(not(unix))]
use std::time::Instant;

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

/// Guest CPU time of one run, read from the CPU clock of the thread that runs it: the run's
/// future is polled through [`CpuMeter::guest`], which adds up the thread CPU time spent
/// inside each poll; host calls go through [`HostState::timed`], whose own polls are taken
/// back out. Time the run spends waiting — for a host call to complete, or for the executor
/// to poll it again after the epoch callback made it yield — is no one's CPU and is not
/// counted, so a busy machine does not push a well-behaved node over its budget. The epoch
/// callback, which runs on the polling thread, compares [`CpuMeter::used`] with the budget.
pub(crate) struct CpuMeter {
    pub budget: Duration,
    clock: Arc<CpuClock>,
    pub exceeded: bool,
}

/// The counters a run's polls write (a run is polled by one thread at a time, but not
/// always the same one: atomics keep the store data `Send`).
#[derive(Default)]
pub(crate) struct CpuClock {
    /// Thread CPU time inside finished polls of the run.
    polled_ns: AtomicU64,
    /// The thread CPU clock when the poll in progress began (0: none in progress).
    poll_start_ns: AtomicU64,
    /// Thread CPU time inside polls of host calls.
    host_ns: AtomicU64,
}

impl CpuMeter {
    pub fn new(budget: Duration) -> CpuMeter {
        CpuMeter { budget, clock: Arc::new(CpuClock::default()), exceeded: false }
    }

    /// Guest CPU time so far (call it from the thread polling the run).
    pub fn used(&self) -> Duration {
        let c = &self.clock;
        let start = c.poll_start_ns.load(Ordering::Relaxed);
        let current = if start == 0 { 0 } else { thread_cpu_ns().saturating_sub(start) };
        let total = c.polled_ns.load(Ordering::Relaxed) + current;
        Duration::from_nanos(total.saturating_sub(c.host_ns.load(Ordering::Relaxed)))
    }

    /// Runs the run's future `f` (instantiation and the guest calls), metering its polls.
    /// Take the clock (`meter.clock()`) before `f` borrows the store.
    pub async fn guest<F: Future>(clock: Arc<CpuClock>, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            let t0 = thread_cpu_ns().max(1);
            clock.poll_start_ns.store(t0, Ordering::Relaxed);
            let r = f.as_mut().poll(cx);
            clock.poll_start_ns.store(0, Ordering::Relaxed);
            clock.polled_ns.fetch_add(thread_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
            r
        })
        .await
    }

    /// The counters [`CpuMeter::guest`] writes.
    pub fn clock(&self) -> Arc<CpuClock> {
        self.clock.clone()
    }
}

/// CPU time of the calling thread, in nanoseconds.
#[cfg(unix)]
fn thread_cpu_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Elsewhere: wall time since the process first asked (counts waiting, so it errs toward
/// stopping a node early).
#[cfg(not(unix))]
fn thread_cpu_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
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

    /// Awaits a host operation: the CPU time its polls take is host time, not the guest's.
    pub async fn timed<F: Future>(&mut self, f: F) -> F::Output {
        let clock = self.meter.clock();
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            let t0 = thread_cpu_ns();
            let r = f.as_mut().poll(cx);
            clock.host_ns.fetch_add(thread_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
            r
        })
        .await
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
