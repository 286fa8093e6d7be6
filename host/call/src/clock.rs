//! The PBX clock: a monotonic `sip::Instant` whose epoch is the Unix epoch at start-up, so
//! one reading serves both as the transaction layer's time and as the wall-clock time
//! written to the store, and digest nonces (which carry their issue time) stay valid across
//! a restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sip::Instant;
use store::Timestamp;

/// Reads the time. Only the event loop owns one; the state machines get instants passed in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: std::time::Instant,
    base: Duration,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock { start: std::time::Instant::now(), base: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_duration(self.base + self.start.elapsed())
    }
}

/// The wall-clock time of an instant of the PBX clock.
pub fn wall(i: Instant) -> Timestamp {
    let ms = i64::try_from(i.since_epoch().as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(ms).unwrap_or_else(Timestamp::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_counts_from_the_unix_epoch() {
        let c = Clock::new();
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let diff = c.now().since_epoch().abs_diff(sys);
        assert!(diff < Duration::from_secs(1), "{diff:?}");
        assert_eq!(wall(Instant::from_millis(1_700_000_000_123)).unix_millis(), 1_700_000_000_123);
    }
}
