//! When to ask the ACME CA for a certificate: a sans-IO schedule (times are passed in), so
//! the policy is tested with a fake clock and the ACME task only sleeps until
//! [`Renewer::next_attempt`].
//!
//! - No certificate yet: now.
//! - A certificate: [`RenewalPolicy::renew_before`] (30 days) before its end, or a third of
//!   its lifetime before the end for a short-lived one (so a 6-day certificate is renewed
//!   after 4 days, not at once and forever).
//! - After a failure: not before `backoff(failures)` after the failed attempt, doubling from
//!   [`RenewalPolicy::backoff_base`] up to [`RenewalPolicy::backoff_max`] — unless that is
//!   later than the due time with a certificate that still has time: never later than due.
//! - Forced (an administrator asked): now, whatever the backoff.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The renewal and retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    pub renew_before: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy { renew_before: Duration::from_secs(30 * 86400), backoff_base: Duration::from_secs(5 * 60), backoff_max: Duration::from_secs(12 * 3600) }
    }
}

impl RenewalPolicy {
    /// The wait after `failures` consecutive failures (1 → the base, doubling, capped).
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        self.backoff_base.checked_mul(factor).unwrap_or(self.backoff_max).min(self.backoff_max)
    }

    /// When a certificate valid from `not_before` to `not_after` is due for renewal.
    pub fn due(&self, not_before: SystemTime, not_after: SystemTime) -> SystemTime {
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let before = self.renew_before.min(lifetime / 3);
        not_after.checked_sub(before).unwrap_or(UNIX_EPOCH)
    }
}

/// The schedule's state: the certificate held, failures since the last success, whether an
/// administrator forced an attempt.
#[derive(Debug, Clone)]
pub struct Renewer {
    policy: RenewalPolicy,
    /// (not_before, not_after) of the ACME certificate held
    cert: Option<(SystemTime, SystemTime)>,
    failures: u32,
    last_attempt: Option<SystemTime>,
    forced: bool,
}

impl Renewer {
    pub fn new(policy: RenewalPolicy) -> Renewer {
        Renewer { policy, cert: None, failures: 0, last_attempt: None, forced: false }
    }

    pub fn policy(&self) -> &RenewalPolicy {
        &self.policy
    }

    /// The ACME certificate held (one found on disk at start, or just issued).
    pub fn set_certificate(&mut self, not_before: SystemTime, not_after: SystemTime) {
        self.cert = Some((not_before, not_after));
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next attempt should start (in the past: now).
    pub fn next_attempt(&self) -> SystemTime {
        if self.forced {
            return UNIX_EPOCH;
        }
        let due = match self.cert {
            Some((nb, na)) => self.policy.due(nb, na),
            None => UNIX_EPOCH,
        };
        match (self.failures, self.last_attempt) {
            (0, _) | (_, None) => due,
            (n, Some(last)) => due.max(last + self.policy.backoff(n)),
        }
    }

    /// Asks for an attempt now.
    pub fn force(&mut self) {
        self.forced = true;
    }

    /// An attempt starts at `now`.
    pub fn started(&mut self, now: SystemTime) {
        self.last_attempt = Some(now);
        self.forced = false;
    }

    /// The attempt got a certificate.
    pub fn succeeded(&mut self, not_before: SystemTime, not_after: SystemTime) {
        self.failures = 0;
        self.set_certificate(not_before, not_after);
    }

    /// The attempt failed.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);
    const MIN: Duration = Duration::from_secs(60);

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn due_thirty_days_before_the_end_or_a_third_of_a_short_life() {
        let p = RenewalPolicy::default();
        assert_eq!(p.due(t(0), t(0) + 90 * DAY), t(0) + 60 * DAY);
        // a 6-day certificate: 2 days before its end
        assert_eq!(p.due(t(0), t(0) + 6 * DAY), t(0) + 4 * DAY);
        // a broken one (end before start): due at once
        assert!(p.due(t(10), t(0)) <= t(0));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RenewalPolicy::default();
        assert_eq!(p.backoff(0), Duration::ZERO);
        assert_eq!(p.backoff(1), 5 * MIN);
        assert_eq!(p.backoff(2), 10 * MIN);
        assert_eq!(p.backoff(4), 40 * MIN);
        assert_eq!(p.backoff(8), 640 * MIN);
        assert_eq!(p.backoff(9), 12 * 60 * MIN, "1280 minutes is capped at 12 h");
        assert_eq!(p.backoff(40), 12 * 60 * MIN);
        assert_eq!(p.backoff(u32::MAX), 12 * 60 * MIN);
    }

    /// Drives the schedule the way the ACME task does, on a fake clock: sleep until the next
    /// attempt, attempt, report. The CA fails three times, then issues 90-day certificates.
    #[test]
    fn a_run_on_a_fake_clock() {
        let mut r = Renewer::new(RenewalPolicy::default());
        let mut now = t(0);
        let mut attempts = Vec::new();
        let mut outcomes = [false, false, false, true, true].into_iter();
        while attempts.len() < 5 {
            now = now.max(r.next_attempt());
            r.started(now);
            attempts.push(now.duration_since(t(0)).unwrap());
            if outcomes.next().unwrap() {
                r.succeeded(now, now + 90 * DAY);
            } else {
                r.failed();
            }
        }
        // at once, then 5, 10 and 20 minutes after each failure; then 60 days after the issue
        let issued = 35 * MIN;
        assert_eq!(attempts, vec![Duration::ZERO, 5 * MIN, 15 * MIN, issued, issued + 60 * DAY]);
        assert_eq!(r.failures(), 0);
    }

    #[test]
    fn failing_renewals_back_off_but_force_goes_at_once() {
        let mut r = Renewer::new(RenewalPolicy::default());
        r.set_certificate(t(0), t(0) + 90 * DAY);
        let due = t(0) + 60 * DAY;
        assert_eq!(r.next_attempt(), due);
        r.started(due);
        r.failed();
        assert_eq!(r.next_attempt(), due + 5 * MIN);
        r.started(due + 5 * MIN);
        r.failed();
        assert_eq!(r.next_attempt(), due + 15 * MIN);
        r.force();
        assert_eq!(r.next_attempt(), UNIX_EPOCH);
        r.started(due + 6 * MIN);
        // a forced attempt counts as an attempt: the backoff runs from it
        r.failed();
        assert_eq!(r.next_attempt(), due + 6 * MIN + 20 * MIN);
        r.succeeded(due + 30 * MIN, due + 30 * MIN + 90 * DAY);
        assert_eq!(r.next_attempt(), due + 30 * MIN + 60 * DAY);
    }
}
