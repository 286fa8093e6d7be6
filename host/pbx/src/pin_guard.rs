//! Failed conference-PIN entries counted across calls: a caller who hangs up after three
//! wrong PINs and calls again keeps their count. Per source (the trunk and the caller number
//! the call came with) and per bridge: a source that failed [`SOURCE_LIMIT`] times within
//! [`WINDOW`] is refused without a check until the window has passed; a bridge that saw
//! [`BRIDGE_LIMIT`] failures within the window (a guesser rotating caller numbers) refuses
//! every entry for the rest of it. A right PIN clears the source's count.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures from one source for one bridge before it is refused.
pub const SOURCE_LIMIT: usize = 6;
/// Failures for one bridge, from any source, before it refuses every entry.
pub const BRIDGE_LIMIT: usize = 30;
/// Sources remembered at most (oldest first out), so a flood of made-up numbers cannot grow
/// the map without bound.
const MAX_SOURCES: usize = 10_000;

/// Where a PIN entry comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinSource {
    pub bridge_id: i64,
    pub trunk_id: i64,
    pub caller: String,
}

#[derive(Default)]
struct State {
    sources: HashMap<PinSource, VecDeque<Instant>>,
    bridges: HashMap<i64, VecDeque<Instant>>,
}

/// See the module documentation.
pub struct PinGuard {
    state: Mutex<State>,
    source_limit: usize,
    bridge_limit: usize,
}

impl Default for PinGuard {
    fn default() -> PinGuard {
        PinGuard::with_limits(SOURCE_LIMIT, BRIDGE_LIMIT)
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
        q.pop_front();
    }
}

impl PinGuard {
    pub fn new() -> PinGuard {
        PinGuard::default()
    }

    /// A guard with its own limits: failures per source, and per target (a conference
    /// bridge, a voicemail box) from any source, within [`WINDOW`].
    pub fn with_limits(source_limit: usize, bridge_limit: usize) -> PinGuard {
        PinGuard { state: Mutex::default(), source_limit, bridge_limit }
    }

    /// Whether `source` may try a PIN now.
    pub fn allowed(&self, source: &PinSource, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let bridge_ok = s.bridges.get_mut(&source.bridge_id).is_none_or(|q| {
            prune(q, now);
            q.len() < self.bridge_limit
        });
        let source_ok = s.sources.get_mut(source).is_none_or(|q| {
            prune(q, now);
            q.len() < self.source_limit
        });
        bridge_ok && source_ok
    }

    /// A wrong PIN from `source`.
    pub fn failed(&self, source: &PinSource, now: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.sources.len() >= MAX_SOURCES && !s.sources.contains_key(source) {
            s.sources.retain(|_, q| {
                prune(q, now);
                !q.is_empty()
            });
            if s.sources.len() >= MAX_SOURCES {
                // still full of live entries: forget the one whose last failure is oldest
                if let Some(k) = s.sources.iter().min_by_key(|(_, q)| q.back().copied()).map(|(k, _)| k.clone()) {
                    s.sources.remove(&k);
                }
            }
        }
        s.sources.entry(source.clone()).or_default().push_back(now);
        let q = s.bridges.entry(source.bridge_id).or_default();
        q.push_back(now);
        prune(q, now);
        if q.len() == self.bridge_limit {
            tracing::warn!(target_id = source.bridge_id, failures = self.bridge_limit, "PIN guessing: the bridge or box refuses PIN entries for a while");
        }
    }

    /// A right PIN from `source`: its count starts again.
    pub fn succeeded(&self, source: &PinSource) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).sources.remove(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(caller: &str) -> PinSource {
        PinSource { bridge_id: 1, trunk_id: 9, caller: caller.into() }
    }

    #[test]
    fn failures_count_across_calls_per_source_and_per_bridge() {
        let g = PinGuard::new();
        let t0 = Instant::now();
        for _ in 0..SOURCE_LIMIT {
            assert!(g.allowed(&src("+100"), t0));
            g.failed(&src("+100"), t0);
        }
        assert!(!g.allowed(&src("+100"), t0), "locked across calls");
        assert!(g.allowed(&src("+200"), t0), "another caller is not");
        assert!(g.allowed(&PinSource { bridge_id: 2, ..src("+100") }, t0), "nor another bridge");
        assert!(g.allowed(&src("+100"), t0 + WINDOW), "the window passes");
        // a right PIN clears the count
        g.failed(&src("+300"), t0);
        g.succeeded(&src("+300"));
        // rotating numbers hits the bridge's limit
        for i in 0..BRIDGE_LIMIT {
            g.failed(&src(&format!("+9{i}")), t0);
        }
        assert!(!g.allowed(&src("+400"), t0), "the bridge refuses everyone for a while");
        assert!(g.allowed(&src("+400"), t0 + WINDOW));
    }
}
