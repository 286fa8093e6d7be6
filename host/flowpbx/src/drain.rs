//! Graceful drain: on SIGTERM/SIGINT or `POST /api/v1/system/drain` the PBX stops taking
//! calls (new INVITEs and OPTIONS get 503 with Retry-After, so carriers fail over), the calls
//! in progress may finish until the deadline (`--drain-timeout-secs`, 1 h by default), then
//! the server stops; a second signal ends the calls at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How often the drain looks at the calls left.
const CHECK_EVERY: Duration = Duration::from_millis(250);

pub struct Drain {
    pbx: call::PbxHandle,
    deadline: Duration,
    started: Mutex<Option<Instant>>,
    forced: AtomicBool,
    wake: Notify,
}

impl Drain {
    pub fn new(pbx: call::PbxHandle, deadline: Duration) -> Arc<Drain> {
        Arc::new(Drain { pbx, deadline, started: Mutex::new(None), forced: AtomicBool::new(false), wake: Notify::new() })
    }

    fn started(&self) -> Option<Instant> {
        self.started.lock().ok().and_then(|s| *s)
    }

    /// Starts draining (a second call does nothing).
    pub fn begin(&self, why: &str) {
        let Ok(mut s) = self.started.lock() else { return };
        if s.is_some() {
            return;
        }
        *s = Some(Instant::now());
        self.pbx.set_draining(true);
        tracing::info!(
            why,
            calls = self.pbx.health().calls,
            deadline_secs = self.deadline.as_secs(),
            "draining: new calls are refused, the server stops after the last call"
        );
        self.wake.notify_one();
    }

    /// Ends the calls left at once.
    pub fn force(&self) {
        self.forced.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn status(&self) -> api::DrainStatus {
        let started = self.started();
        api::DrainStatus {
            draining: started.is_some(),
            active_calls: self.pbx.health().calls,
            elapsed_seconds: started.map(|s| s.elapsed().as_secs()),
            deadline_seconds: started.map(|s| self.deadline.saturating_sub(s.elapsed()).as_secs()),
        }
    }

    /// What the API shows and how it starts a drain.
    pub fn probe(self: &Arc<Self>) -> api::DrainProbe {
        let (a, b) = (self.clone(), self.clone());
        api::DrainProbe { status: Arc::new(move || a.status()), start: Arc::new(move || b.begin("POST /api/v1/system/drain")) }
    }

    /// Returns once the drain is over: every call ended, the deadline passed, or forced.
    pub async fn finished(&self) {
        let started = loop {
            let notified = self.wake.notified();
            if let Some(s) = self.started() {
                break s;
            }
            notified.await;
        };
        loop {
            let calls = self.pbx.health().calls;
            if calls == 0 {
                tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "drained: no call left");
                return;
            }
            if self.forced.load(Ordering::Acquire) {
                tracing::info!(calls, "drain cut short: the calls left are ended");
                return;
            }
            if started.elapsed() >= self.deadline {
                tracing::warn!(calls, "drain deadline passed: the calls left are ended");
                return;
            }
            let _ = tokio::time::timeout(CHECK_EVERY, self.wake.notified()).await;
        }
    }
}

/// The first SIGTERM/SIGINT starts the drain, the next one forces the end.
pub async fn on_signals(drain: Arc<Drain>) {
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let mut first = true;
    loop {
        #[cfg(unix)]
        let term_recv = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term_recv = std::future::pending::<()>();
        let which = tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                    std::future::pending::<()>().await;
                }
                "SIGINT"
            }
            _ = term_recv => "SIGTERM",
        };
        tracing::info!("{which} received");
        if first && drain.started().is_none() {
            drain.begin(which);
        } else {
            drain.force();
        }
        first = false;
    }
}
