//! Login throttling. An attempt to check a password (a login, or the current password of a
//! password change) is *reserved* before the hash is verified, under one lock, so parallel
//! attempts cannot all pass a check that only counts finished ones: however many arrive at
//! once, at most [`PAIR_FAILURES`] are verified for one username from one source.
//!
//! Three records, all in memory (a restart forgets them):
//! - **(username, source)**: [`PAIR_FAILURES`] failures within [`WINDOW`] lock that pair for
//!   [`LOCK`]; a success clears it. Attempts in flight count as failures until they finish.
//! - **source**: [`SOURCE_FAILURES`] failures within [`WINDOW`], whatever the usernames, lock
//!   the source for [`LOCK`] (one address spraying many usernames).
//! - **username**: once [`USER_FAILURES`] failures within [`WINDOW`] come from anywhere, the
//!   username is under attack and only *clean* sources may still try it: a source with no
//!   failure on record and no attempt in flight, or one that has signed in as this user before.
//!   An attacker elsewhere therefore cannot lock the owner out: the owner's address has not
//!   failed (or has signed in before), and a locked pair or source is only ever the failing one.
//!
//! A source is the client's address; IPv6 addresses count per /64 (one host usually has a
//! whole /64), IPv4-mapped IPv6 addresses as their IPv4 address.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Failed attempts for one username from one source within [`WINDOW`] that lock the pair.
pub const PAIR_FAILURES: usize = 5;
/// Failed attempts from one source within [`WINDOW`], any usernames, that lock the source.
pub const SOURCE_FAILURES: usize = 20;
/// Failed attempts for one username within [`WINDOW`], any sources, after which only clean
/// sources may try it.
pub const USER_FAILURES: usize = 20;
/// How far back failures are counted.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a pair or a source stays locked.
pub const LOCK: Duration = Duration::from_secs(15 * 60);
/// What `Retry-After` says while the attempts that fill a limit are still being checked.
const IN_FLIGHT_RETRY_SECS: u64 = 1;
/// Records kept before the stale ones are dropped.
const PRUNE_AT: usize = 10_000;
/// Sources remembered per username as having signed in.
const KNOWN_GOOD_MAX: usize = 32;
/// The longest username kept as a key (longer ones cannot exist; they still count).
const USERNAME_KEY_MAX: usize = 64;

/// Where attempts come from: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Source(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    in_flight: usize,
    locked_until: Option<Instant>,
}

impl Record {
    fn expire(&mut self, now: Instant) {
        while self.failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|u| u <= now) {
            self.locked_until = None;
        }
    }

    /// Err(seconds to wait) when one more attempt would pass `limit`.
    fn admits(&mut self, now: Instant, limit: usize) -> Result<(), u64> {
        self.expire(now);
        if let Some(until) = self.locked_until {
            return Err(secs(until - now));
        }
        if self.failures.len() + self.in_flight >= limit {
            return Err(match self.failures.front() {
                // only finished failures fill it: it frees when the oldest leaves the window
                Some(oldest) if self.in_flight == 0 => secs(WINDOW.saturating_sub(now.saturating_duration_since(*oldest))),
                _ => IN_FLIGHT_RETRY_SECS,
            });
        }
        Ok(())
    }

    /// A failure; Some(lock seconds) when it locks the record.
    fn fail(&mut self, now: Instant, limit: usize) -> Option<u64> {
        self.expire(now);
        self.failures.push_back(now);
        if self.failures.len() >= limit && self.locked_until.is_none() {
            self.failures.clear();
            self.locked_until = Some(now + LOCK);
            return Some(LOCK.as_secs());
        }
        None
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.in_flight == 0 && self.locked_until.is_none_or(|u| u <= now) && self.failures.back().is_none_or(|t| now.saturating_duration_since(*t) >= WINDOW)
    }
}

#[derive(Debug, Default)]
struct UserRecord {
    failures: VecDeque<Instant>,
    /// Sources that signed in as this user (most recent last).
    known_good: VecDeque<Source>,
}

impl UserRecord {
    fn expire(&mut self, now: Instant) {
        while self.failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            self.failures.pop_front();
        }
    }
}

#[derive(Debug, Default)]
struct Records {
    pairs: HashMap<(String, Source), Record>,
    sources: HashMap<Source, Record>,
    users: HashMap<String, UserRecord>,
}

impl Records {
    fn prune(&mut self, now: Instant) {
        if self.pairs.len() + self.sources.len() + self.users.len() < PRUNE_AT {
            return;
        }
        self.pairs.retain(|_, r| !r.is_stale(now));
        self.sources.retain(|_, r| !r.is_stale(now));
        self.users.retain(|_, u| {
            u.expire(now);
            !u.failures.is_empty() || !u.known_good.is_empty()
        });
    }
}

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after_secs: u64,
}

/// The login throttle of one process.
#[derive(Debug, Default, Clone)]
pub struct LoginLimiter(Arc<Mutex<Records>>);

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn user_key(username: &str) -> String {
    username.chars().take(USERNAME_KEY_MAX).flat_map(char::to_lowercase).collect()
}

impl LoginLimiter {
    fn lock(&self) -> MutexGuard<'_, Records> {
        // a panic while holding the lock leaves counters, never a broken invariant
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves an attempt to check `username`'s password from `ip`, before the hash is
    /// verified. Finish it with [`Attempt::succeeded`] or [`Attempt::failed`]; an attempt
    /// dropped unfinished counts as a failure (it may have been checked).
    pub fn reserve(&self, username: &str, ip: IpAddr, now: Instant) -> Result<Attempt, Refused> {
        let source = Source::of(ip);
        let user = user_key(username);
        let mut r = self.lock();
        r.prune(now);
        let refuse = |s: u64| Refused { retry_after_secs: s.max(1) };
        let src = r.sources.entry(source).or_default();
        src.admits(now, SOURCE_FAILURES).map_err(refuse)?;
        let clean = src.failures.is_empty() && src.in_flight == 0;
        let pair = r.pairs.entry((user.clone(), source)).or_default();
        pair.admits(now, PAIR_FAILURES).map_err(refuse)?;
        if let Some(u) = r.users.get_mut(&user) {
            u.expire(now);
            if u.failures.len() >= USER_FAILURES && !clean && !u.known_good.contains(&source) {
                let oldest = u.failures.len() - USER_FAILURES;
                let frees_in = u.failures.get(oldest).map_or(WINDOW, |t| WINDOW.saturating_sub(now.saturating_duration_since(*t)));
                return Err(refuse(secs(frees_in)));
            }
        }
        // (both entries exist: made above under the same lock)
        if let Some(p) = r.pairs.get_mut(&(user.clone(), source)) {
            p.in_flight += 1;
        }
        if let Some(s) = r.sources.get_mut(&source) {
            s.in_flight += 1;
        }
        Ok(Attempt { limiter: self.clone(), user, source, done: false })
    }

    fn finish(&self, user: &str, source: Source, ok: bool, now: Instant) -> Option<u64> {
        let mut r = self.lock();
        let key = (user.to_owned(), source);
        if let Some(p) = r.pairs.get_mut(&key) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        if let Some(s) = r.sources.get_mut(&source) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        if ok {
            r.pairs.remove(&key);
            let u = r.users.entry(user.to_owned()).or_default();
            u.known_good.retain(|s| *s != source);
            u.known_good.push_back(source);
            if u.known_good.len() > KNOWN_GOOD_MAX {
                u.known_good.pop_front();
            }
            return None;
        }
        let u = r.users.entry(user.to_owned()).or_default();
        u.expire(now);
        u.failures.push_back(now);
        let source_locked = r.sources.entry(source).or_default().fail(now, SOURCE_FAILURES);
        let pair_locked = r.pairs.entry(key).or_default().fail(now, PAIR_FAILURES);
        pair_locked.or(source_locked)
    }
}

/// A reserved attempt (see [`LoginLimiter::reserve`]).
#[derive(Debug)]
pub struct Attempt {
    limiter: LoginLimiter,
    user: String,
    source: Source,
    done: bool,
}

impl Attempt {
    pub fn source(&self) -> Source {
        self.source
    }

    /// The password was right: the pair's failures are forgotten and the source is known good
    /// for this username.
    pub fn succeeded(mut self) {
        self.done = true;
        self.limiter.finish(&self.user, self.source, true, Instant::now());
    }

    /// The password was wrong; Some(lock seconds) when this failure locked the pair or the
    /// source.
    pub fn failed(mut self) -> Option<u64> {
        self.done = true;
        self.limiter.finish(&self.user, self.source, false, Instant::now())
    }

    #[cfg(test)]
    fn finish_at(mut self, ok: bool, now: Instant) -> Option<u64> {
        self.done = true;
        self.limiter.finish(&self.user, self.source, ok, now)
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.limiter.finish(&self.user, self.source, false, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parallel_attempts_are_reserved_before_any_is_checked() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        // 200 at once, none finished yet: only the first five are let through
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..200 {
            match l.reserve("admin", ip("192.0.2.1"), t) {
                Ok(a) => held.push(a),
                Err(r) => {
                    assert_eq!(r.retry_after_secs, IN_FLIGHT_RETRY_SECS);
                    refused += 1;
                }
            }
        }
        assert_eq!((held.len(), refused), (PAIR_FAILURES, 195));
        let locks: Vec<_> = held.into_iter().map(|a| a.finish_at(false, t)).collect();
        assert_eq!(locks.iter().filter(|l| l.is_some()).count(), 1, "the fifth failure locks: {locks:?}");
        let r = l.reserve("admin", ip("192.0.2.1"), t + Duration::from_secs(1)).unwrap_err();
        assert!((LOCK.as_secs() - 2..=LOCK.as_secs()).contains(&r.retry_after_secs), "{r:?}");
        // the username is case-insensitive for counting
        assert!(l.reserve("ADMIN", ip("192.0.2.1"), t).is_err());
        // unlocked after the lock
        assert!(l.reserve("admin", ip("192.0.2.1"), t + LOCK + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn a_success_clears_the_pair_and_a_dropped_attempt_counts_as_failed() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..4 {
            l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(false, t);
        }
        l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(true, t);
        for _ in 0..4 {
            assert_eq!(l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(false, t), None);
        }
        // dropped unfinished (a client that went away mid-check): the fifth failure
        drop(l.reserve("admin", ip("192.0.2.1"), t).unwrap());
        assert!(l.reserve("admin", ip("192.0.2.1"), t).is_err());
    }

    #[test]
    fn another_source_still_signs_in_while_one_is_locked() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..PAIR_FAILURES {
            l.reserve("admin", ip("198.51.100.7"), t).unwrap().finish_at(false, t);
        }
        assert!(l.reserve("admin", ip("198.51.100.7"), t).is_err());
        l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(true, t);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        // an attacker rotating through the addresses of one /64
        for i in 0..PAIR_FAILURES {
            l.reserve("admin", ip(&format!("2001:db8:1:2::{:x}", i + 1)), t).unwrap().finish_at(false, t);
        }
        assert!(l.reserve("admin", ip("2001:db8:1:2:ffff::1"), t).is_err());
        assert!(l.reserve("admin", ip("2001:db8:1:3::1"), t).is_ok(), "another /64");
        assert_eq!(Source::of(ip("::ffff:192.0.2.9")), Source::of(ip("192.0.2.9")));
        assert_eq!(Source::of(ip("2001:db8:1:2:3:4:5:6")).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_source_spraying_usernames_is_locked() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for i in 0..SOURCE_FAILURES {
            // four per username: no pair reaches its limit
            l.reserve(&format!("user{}", i / 4), ip("203.0.113.5"), t).unwrap().finish_at(false, t);
        }
        let r = l.reserve("someone-else", ip("203.0.113.5"), t).unwrap_err();
        assert!(r.retry_after_secs > 800, "{r:?}");
        assert!(l.reserve("someone-else", ip("203.0.113.6"), t).is_ok());
    }

    /// A username attacked from many addresses: each failing address is shut out of it, a
    /// clean address and one that signed in before still get through.
    #[test]
    fn a_distributed_attack_does_not_lock_out_clean_sources() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        l.reserve("admin", ip("192.0.2.200"), t).unwrap().finish_at(true, t);
        // the owner's usual address mistypes once
        l.reserve("admin", ip("192.0.2.200"), t).unwrap().finish_at(false, t);
        for i in 0..USER_FAILURES {
            l.reserve("admin", ip(&format!("198.51.100.{}", i + 1)), t).unwrap().finish_at(false, t);
        }
        // a bot that failed once cannot try again while the username is under attack
        let r = l.reserve("admin", ip("198.51.100.1"), t).unwrap_err();
        assert!(r.retry_after_secs > 800, "{r:?}");
        // a fresh address gets one attempt at a time
        let first = l.reserve("admin", ip("203.0.113.77"), t).unwrap();
        assert!(l.reserve("admin", ip("203.0.113.77"), t).is_err(), "not clean while one is in flight");
        drop(first);
        assert!(l.reserve("admin", ip("203.0.113.77"), t).is_err(), "failed once: no longer clean");
        // the owner: from an address that has not failed, and from the one that signed in before
        l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(true, t);
        l.reserve("admin", ip("192.0.2.200"), t).unwrap().finish_at(true, t);
        // other usernames are not affected
        assert!(l.reserve("other", ip("198.51.100.1"), t).is_ok());
        // after the window the username is open again
        assert!(l.reserve("admin", ip("198.51.100.1"), t + WINDOW).is_ok());
    }

    #[test]
    fn records_are_pruned_but_locks_kept() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..PAIR_FAILURES {
            l.reserve("admin", ip("192.0.2.1"), t).unwrap().finish_at(false, t);
        }
        let later = t + Duration::from_secs(60);
        for i in 0..PRUNE_AT as u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.reserve("x", a, later).unwrap().finish_at(true, later);
        }
        let size = {
            let r = l.lock();
            r.pairs.len() + r.sources.len() + r.users.len()
        };
        assert!(size <= PRUNE_AT + 2, "{size}");
        assert!(l.reserve("admin", ip("192.0.2.1"), later).is_err(), "still locked");
    }
}
