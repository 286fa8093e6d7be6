//! Time as data: the crate never reads a clock, the driver passes instants in.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time on the driver's monotonic clock, measured from an epoch the driver picks
/// (usually the moment it started). Only differences between instants matter.
///
/// The driver makes one with [`Instant::from_duration`] (for example from
/// `std::time::Instant::now() - start`); tests make them from plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(Duration);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_epoch` after the driver's epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Instant(since_epoch)
    }

    /// The instant `ms` milliseconds after the epoch (handy in tests).
    pub const fn from_millis(ms: u64) -> Self {
        Instant(Duration::from_millis(ms))
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let a = Instant::from_millis(500);
        assert_eq!(a + Duration::from_millis(250), Instant::from_millis(750));
        assert_eq!(Instant::from_millis(100) - a, Duration::ZERO);
        assert_eq!(a - Instant::from_millis(100), Duration::from_millis(400));
    }
}
