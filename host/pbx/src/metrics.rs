//! The flow engine's counters for the metrics endpoint: node runs, errors, traps, limit hits
//! and durations per node type, taken from each call's trace when its walk ends (once per
//! call, off the media and signalling paths).

use std::collections::BTreeMap;
use std::sync::Mutex;

use flow::trace::Trace;

/// Upper bounds (seconds) of the node-run duration histogram.
pub const NODE_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// One node type's totals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// Runs.
    pub runs: u64,
    /// Runs that failed (their error output or the fallback was taken).
    pub errors: u64,
    /// Failures that were a Wasm trap (a crash of the plugin, a stack overflow).
    pub traps: u64,
    /// Failures that were a limit (CPU budget, memory, wall clock).
    pub limit_hits: u64,
    /// Non-cumulative counts per [`NODE_BUCKETS`] bound, plus one over the last.
    pub duration_counts: Vec<u64>,
    /// Sum of the run durations, seconds.
    pub duration_sum: f64,
}

/// What went wrong with a node run, from the walker's error text (`flow::RunError`'s
/// `Display`: the trace keeps the error as text for the CDR).
fn failure_kind(error: &str) -> Option<&'static str> {
    if error.starts_with("trap:") || error.starts_with("wasm stack overflow") {
        Some("trap")
    } else if error.starts_with("CPU budget") || error.starts_with("memory limit") || error.starts_with("wall-clock limit") {
        Some("limit")
    } else {
        None
    }
}

/// Totals per node type, since start.
#[derive(Debug, Default)]
pub struct FlowMetrics {
    nodes: Mutex<BTreeMap<String, NodeStats>>,
    walks: std::sync::atomic::AtomicU64,
}

impl FlowMetrics {
    /// Adds a finished walk's steps.
    pub fn record(&self, trace: &Trace) {
        self.walks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(mut nodes) = self.nodes.lock() else { return };
        for step in &trace.steps {
            let s =
                nodes.entry(step.node_type.clone()).or_insert_with(|| NodeStats { duration_counts: vec![0; NODE_BUCKETS.len() + 1], ..NodeStats::default() });
            s.runs += 1;
            if let Some(e) = &step.error {
                s.errors += 1;
                match failure_kind(e) {
                    Some("trap") => s.traps += 1,
                    Some(_) => s.limit_hits += 1,
                    None => {}
                }
            }
            let secs = step.duration_ms as f64 / 1000.0;
            let i = NODE_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(NODE_BUCKETS.len());
            s.duration_counts[i] += 1;
            s.duration_sum += secs;
        }
    }

    /// Node types and their totals.
    pub fn snapshot(&self) -> Vec<(String, NodeStats)> {
        self.nodes.lock().map(|n| n.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }

    /// Flow walks finished.
    pub fn walks(&self) -> u64 {
        self.walks.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(failure_kind("trap: unreachable"), Some("trap"));
        assert_eq!(failure_kind("CPU budget of 10ms exceeded"), Some("limit"));
        assert_eq!(failure_kind("wall-clock limit of 1s exceeded"), Some("limit"));
        assert_eq!(failure_kind("denied: http"), None);
    }
}
