//! SIP security on the request path: bans after repeated failed authentications, a
//! per-source request rate limit, and scanner User-Agents. Sans-IO: time is passed in.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use sip::Instant;

use crate::config::SecurityConfig;

/// Most sources tracked by the rate limiter; beyond it new sources are not limited (a flood
/// from that many addresses is not one source anyway).
const MAX_BUCKETS: usize = 65_536;
/// Most sources with failed authentications tracked.
const MAX_FAILURE_SOURCES: usize = 65_536;
/// How often stale entries are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Whether the limit was hit since the bucket last refilled (to log once per episode).
    throttled: bool,
}

/// The guard's counters, for health and stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// IPs banned right now.
    pub banned: usize,
    /// Requests dropped because their source was banned.
    pub dropped_banned: u64,
    /// Requests dropped by the rate limit.
    pub dropped_rate: u64,
    /// Requests dropped for a scanner User-Agent.
    pub dropped_scanner: u64,
    /// Failed authentications.
    pub auth_failures: u64,
    /// Bans imposed.
    pub bans: u64,
}

/// Bans, failure windows and rate-limit buckets per source IP.
#[derive(Debug)]
pub struct Guard {
    cfg: SecurityConfig,
    scanners: Vec<String>,
    bans: HashMap<IpAddr, Instant>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
    buckets: HashMap<IpAddr, Bucket>,
    next_sweep: Instant,
    stats: GuardStats,
}

impl Guard {
    /// A guard with these thresholds.
    pub fn new(cfg: SecurityConfig) -> Guard {
        let scanners = cfg.scanner_user_agents.iter().map(|s| s.to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        Guard {
            cfg,
            scanners,
            bans: HashMap::new(),
            failures: HashMap::new(),
            buckets: HashMap::new(),
            next_sweep: Instant::ZERO,
            stats: GuardStats::default(),
        }
    }

    /// Whether `ip` is banned at `now` (then everything from it is dropped unanswered).
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.bans.get(&ip) {
            Some(&until) if until > now => {
                self.stats.dropped_banned += 1;
                true
            }
            Some(_) => {
                self.bans.remove(&ip);
                tracing::info!(%ip, "SIP ban lifted");
                false
            }
            None => false,
        }
    }

    /// Takes one request from `ip`'s budget; false when the source is over its rate (drop
    /// the request unanswered).
    pub fn allow_request(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.cfg.rate_limit;
        if rate == 0 {
            return true;
        }
        let burst = f64::from(self.cfg.rate_burst.max(rate));
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_BUCKETS {
            return true;
        }
        let b = self.buckets.entry(ip).or_insert(Bucket { tokens: burst, last: now, throttled: false });
        let elapsed = (now - b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * f64::from(rate)).min(burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            if b.throttled && b.tokens >= burst / 2.0 {
                b.throttled = false;
            }
            true
        } else {
            if !b.throttled {
                b.throttled = true;
                tracing::warn!(%ip, rate, "SIP source over its request rate: dropping its requests");
            }
            self.stats.dropped_rate += 1;
            false
        }
    }

    /// Whether a User-Agent belongs to a known scanner (its requests are dropped silently).
    pub fn is_scanner(&mut self, user_agent: Option<&str>) -> bool {
        let Some(ua) = user_agent else { return false };
        if self.scanners.is_empty() {
            return false;
        }
        let lc = ua.to_ascii_lowercase();
        let hit = self.scanners.iter().any(|s| lc.contains(s.as_str()));
        if hit {
            self.stats.dropped_scanner += 1;
        }
        hit
    }

    /// Records a failed authentication from `ip`; true when it got the source banned.
    pub fn auth_failed(&mut self, ip: IpAddr, now: Instant, user: &str) -> bool {
        self.stats.auth_failures += 1;
        let limit = self.cfg.auth_fail_limit as usize;
        if limit == 0 {
            return false;
        }
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_FAILURE_SOURCES {
            self.sweep(now);
        }
        let window = self.cfg.auth_fail_window;
        let q = self.failures.entry(ip).or_default();
        while q.front().is_some_and(|&t| now - t >= window) {
            q.pop_front();
        }
        q.push_back(now);
        if q.len() < limit {
            tracing::debug!(%ip, user, failures = q.len(), "SIP authentication failed");
            return false;
        }
        self.failures.remove(&ip);
        self.bans.insert(ip, now + self.cfg.ban_duration);
        self.stats.bans += 1;
        tracing::warn!(
            %ip,
            user,
            failures = limit,
            window_secs = window.as_secs(),
            ban_secs = self.cfg.ban_duration.as_secs(),
            "SIP source banned after repeated failed authentications"
        );
        true
    }

    /// Drops expired bans, idle buckets and old failures; call it now and then.
    pub fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY;
        self.bans.retain(|ip, until| {
            let keep = *until > now;
            if !keep {
                tracing::info!(%ip, "SIP ban lifted");
            }
            keep
        });
        let window = self.cfg.auth_fail_window;
        self.failures.retain(|_, q| q.back().is_some_and(|&t| now - t < window));
        let rate = f64::from(self.cfg.rate_limit.max(1));
        let burst = f64::from(self.cfg.rate_burst.max(self.cfg.rate_limit));
        self.buckets.retain(|_, b| b.tokens + (now - b.last).as_secs_f64() * rate < burst);
    }

    /// The counters.
    pub fn stats(&self) -> GuardStats {
        GuardStats { banned: self.bans.len(), ..self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SecurityConfig {
        SecurityConfig {
            auth_fail_limit: 3,
            auth_fail_window: Duration::from_secs(60),
            ban_duration: Duration::from_secs(900),
            rate_limit: 10,
            rate_burst: 20,
            ..SecurityConfig::default()
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    #[test]
    fn failures_in_window_ban_then_expire() {
        let mut g = Guard::new(cfg());
        let t = Instant::from_millis(1_000_000);
        assert!(!g.auth_failed(IP, t, "a"));
        assert!(!g.auth_failed(IP, t + Duration::from_secs(1), "a"));
        // the first failure leaves the window before the third arrives
        assert!(!g.auth_failed(IP, t + Duration::from_millis(60_500), "a"));
        assert!(!g.is_banned(IP, t + Duration::from_millis(60_500)));
        let third = t + Duration::from_millis(60_800);
        assert!(g.auth_failed(IP, third, "a"), "three within 60 s");
        assert!(g.is_banned(IP, third + Duration::from_secs(1)));
        assert!(!g.is_banned("192.0.2.8".parse().unwrap(), third));
        assert!(g.is_banned(IP, third + Duration::from_secs(899)));
        assert!(!g.is_banned(IP, third + Duration::from_secs(900)));
        assert_eq!(g.stats().bans, 1);
    }

    #[test]
    fn zero_limit_never_bans() {
        let mut g = Guard::new(SecurityConfig { auth_fail_limit: 0, ..cfg() });
        let t = Instant::from_millis(5);
        for _ in 0..100 {
            assert!(!g.auth_failed(IP, t, "a"));
        }
        assert!(!g.is_banned(IP, t));
    }

    #[test]
    fn rate_limit_allows_burst_then_rate() {
        let mut g = Guard::new(cfg());
        let t = Instant::from_millis(1_000);
        let allowed = (0..30).filter(|_| g.allow_request(IP, t)).count();
        assert_eq!(allowed, 20, "the burst");
        assert!(!g.allow_request(IP, t + Duration::from_millis(50)));
        assert!(g.allow_request(IP, t + Duration::from_millis(100)), "one token per 100 ms at 10/s");
        assert!(!g.allow_request(IP, t + Duration::from_millis(100)));
        assert!(g.allow_request("192.0.2.9".parse().unwrap(), t), "other sources are not affected");
        let mut off = Guard::new(SecurityConfig { rate_limit: 0, ..cfg() });
        assert!((0..10_000).all(|_| off.allow_request(IP, t)));
    }

    #[test]
    fn scanners_by_substring() {
        let mut g = Guard::new(cfg());
        assert!(g.is_scanner(Some("friendly-scanner")));
        assert!(g.is_scanner(Some("SIPVicious 0.3.0")));
        assert!(g.is_scanner(Some("sipcli/v1.8")));
        assert!(!g.is_scanner(Some("Yealink SIP-T46S 66.86.0.15")));
        assert!(!g.is_scanner(None));
    }

    #[test]
    fn sweep_forgets_idle_sources() {
        let mut g = Guard::new(cfg());
        let t = Instant::from_millis(1_000);
        g.allow_request(IP, t);
        g.auth_failed(IP, t, "a");
        g.sweep(t + Duration::from_secs(120));
        assert!(g.buckets.is_empty());
        assert!(g.failures.is_empty());
    }
}
