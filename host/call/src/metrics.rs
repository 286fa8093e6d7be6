//! The SIP stack's counters for the metrics endpoint: plain atomics bumped on the signalling
//! path (no lock, no allocation, one `fetch_add` each), read as a [`SipMetrics`] snapshot
//! when the endpoint is scraped.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use store::{CallDirection, CallDisposition};

/// The methods counted by name; anything else is `other`.
pub const METHODS: [&str; 15] =
    ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH", "other"];

/// Upper bounds (seconds) of the call set-up histogram's buckets (the last is +Inf).
pub const SETUP_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Upper bounds (seconds) of the store write-behind flush histogram's buckets.
pub const FLUSH_BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

const DIRS: usize = 3;
const DISPS: usize = 5;

/// A histogram of fixed buckets over atomics (`B` finite buckets plus +Inf).
#[derive(Debug)]
pub struct AtomicHistogram<const B: usize> {
    bounds: [f64; B],
    counts: [AtomicU64; B],
    inf: AtomicU64,
    sum_micros: AtomicU64,
}

impl<const B: usize> AtomicHistogram<B> {
    pub fn new(bounds: [f64; B]) -> Self {
        AtomicHistogram { bounds, counts: std::array::from_fn(|_| AtomicU64::new(0)), inf: AtomicU64::new(0), sum_micros: AtomicU64::new(0) }
    }

    /// Counts one observation (non-cumulative buckets; the snapshot accumulates).
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        self.sum_micros.fetch_add(d.as_micros().min(u128::from(u64::MAX)) as u64, Relaxed);
        match self.bounds.iter().position(|b| secs <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.inf.fetch_add(1, Relaxed),
        };
    }

    /// Sum (seconds), count, and cumulative `(upper bound, count)` buckets (+Inf excluded:
    /// it is the count).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c.load(Relaxed);
                (*b, acc)
            })
            .collect();
        let count = acc + self.inf.load(Relaxed);
        HistogramSnapshot { sum: self.sum_micros.load(Relaxed) as f64 / 1e6, count, buckets }
    }
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// Cumulative counts per upper bound.
    pub buckets: Vec<(f64, u64)>,
}

/// The live counters (in `Shared`).
#[derive(Debug)]
pub(crate) struct Metrics {
    requests_in: [AtomicU64; METHODS.len()],
    requests_out: [AtomicU64; METHODS.len()],
    /// 1xx..6xx at 0..5.
    responses_in: [AtomicU64; 6],
    responses_out: [AtomicU64; 6],
    pub(crate) retransmissions: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) bans: AtomicU64,
    calls_started: [AtomicU64; DIRS],
    calls_ended: [[AtomicU64; DISPS]; DIRS],
    pub(crate) setup: AtomicHistogram<10>,
    pub(crate) flush: AtomicHistogram<8>,
    pub(crate) flush_errors: AtomicU64,
    pub(crate) drain_refused: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_in: std::array::from_fn(|_| AtomicU64::new(0)),
            requests_out: std::array::from_fn(|_| AtomicU64::new(0)),
            responses_in: std::array::from_fn(|_| AtomicU64::new(0)),
            responses_out: std::array::from_fn(|_| AtomicU64::new(0)),
            retransmissions: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            bans: AtomicU64::new(0),
            calls_started: std::array::from_fn(|_| AtomicU64::new(0)),
            calls_ended: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            setup: AtomicHistogram::new(SETUP_BUCKETS),
            flush: AtomicHistogram::new(FLUSH_BUCKETS),
            flush_errors: AtomicU64::new(0),
            drain_refused: AtomicU64::new(0),
        }
    }
}

fn method_index(m: &[u8]) -> usize {
    METHODS.iter().position(|n| n.as_bytes() == m).unwrap_or(METHODS.len() - 1)
}

fn dir_index(d: CallDirection) -> usize {
    CallDirection::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

impl Metrics {
    /// Counts a message by its first line (request method or response class), reading the
    /// bytes in place: `out` for what FlowPBX sends.
    pub(crate) fn count_message(&self, bytes: &[u8], out: bool) {
        if let Some(rest) = bytes.strip_prefix(b"SIP/2.0 ") {
            let class = rest.first().map(|c| c.wrapping_sub(b'1')).filter(|c| *c < 6);
            if let Some(c) = class {
                let arr = if out { &self.responses_out } else { &self.responses_in };
                arr[c as usize].fetch_add(1, Relaxed);
            }
            return;
        }
        let end = bytes.iter().take(16).position(|b| *b == b' ').unwrap_or(0);
        if end == 0 {
            return;
        }
        let arr = if out { &self.requests_out } else { &self.requests_in };
        arr[method_index(&bytes[..end])].fetch_add(1, Relaxed);
    }

    /// Counts a request received, by its method's name.
    pub(crate) fn count_request_in(&self, method: &str) {
        self.requests_in[method_index(method.as_bytes())].fetch_add(1, Relaxed);
    }

    /// Counts a response received, by its class.
    pub(crate) fn count_response_in(&self, code: u16) {
        if let Some(c) = (code / 100).checked_sub(1).filter(|c| *c < 6) {
            self.responses_in[c as usize].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn call_started(&self, d: CallDirection) {
        self.calls_started[dir_index(d)].fetch_add(1, Relaxed);
    }

    pub(crate) fn call_ended(&self, d: CallDirection, disp: CallDisposition) {
        let j = CallDisposition::ALL.iter().position(|x| *x == disp).unwrap_or(0);
        self.calls_ended[dir_index(d)][j].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SipMetrics {
        let load = |a: &[AtomicU64]| a.iter().map(|x| x.load(Relaxed)).collect::<Vec<_>>();
        SipMetrics {
            requests_in: load(&self.requests_in),
            requests_out: load(&self.requests_out),
            responses_in: load(&self.responses_in),
            responses_out: load(&self.responses_out),
            retransmissions: self.retransmissions.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            bans: self.bans.load(Relaxed),
            calls_started: CallDirection::ALL.iter().zip(&self.calls_started).map(|(d, c)| (*d, c.load(Relaxed))).collect(),
            calls_ended: CallDirection::ALL
                .iter()
                .zip(&self.calls_ended)
                .flat_map(|(d, row)| CallDisposition::ALL.iter().zip(row).map(move |(x, c)| (*d, *x, c.load(Relaxed))))
                .collect(),
            setup: self.setup.snapshot(),
            store_flush: self.flush.snapshot(),
            store_flush_errors: self.flush_errors.load(Relaxed),
            drain_refused: self.drain_refused.load(Relaxed),
        }
    }
}

/// The SIP stack's counters at one moment ([`crate::PbxHandle::metrics`]).
#[derive(Debug, Clone, Default)]
pub struct SipMetrics {
    /// Requests received, by [`METHODS`] index.
    pub requests_in: Vec<u64>,
    /// Requests sent, by [`METHODS`] index (retransmissions included).
    pub requests_out: Vec<u64>,
    /// Responses received, 1xx..6xx.
    pub responses_in: Vec<u64>,
    /// Responses sent, 1xx..6xx.
    pub responses_out: Vec<u64>,
    /// Requests and responses the transaction layer sent again (timers A, E, G).
    pub retransmissions: u64,
    /// Failed digest authentications.
    pub auth_failures: u64,
    /// Sources banned.
    pub bans: u64,
    /// Calls started, by direction.
    pub calls_started: Vec<(CallDirection, u64)>,
    /// Calls ended, by direction and disposition.
    pub calls_ended: Vec<(CallDirection, CallDisposition, u64)>,
    /// INVITE received → caller answered.
    pub setup: HistogramSnapshot,
    /// Write-behind flushes to the database (one transaction each).
    pub store_flush: HistogramSnapshot,
    /// Flushes that failed.
    pub store_flush_errors: u64,
    /// New calls and OPTIONS refused with 503 while draining.
    pub drain_refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_by_first_line() {
        let m = Metrics::default();
        m.count_message(b"INVITE sip:a@b SIP/2.0\r\n", false);
        m.count_message(b"FOO sip:a@b SIP/2.0\r\n", false);
        m.count_message(b"SIP/2.0 180 Ringing\r\n", true);
        m.count_message(b"SIP/2.0 486 Busy\r\n", true);
        m.count_message(b"SIP/2.0 9xx\r\n", true);
        m.count_message(b"\r\n\r\n", false);
        let s = m.snapshot();
        assert_eq!(s.requests_in[0], 1);
        assert_eq!(s.requests_in[METHODS.len() - 1], 1);
        assert_eq!(s.responses_out, vec![1, 0, 0, 1, 0, 0]);
        assert_eq!(s.requests_in.iter().sum::<u64>(), 2);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = AtomicHistogram::new([0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets, vec![(0.1, 1), (1.0, 2)]);
        assert!((s.sum - 5.55).abs() < 1e-6);
    }
}
