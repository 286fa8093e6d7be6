//! Per-stream reception statistics (RFC 3550 appendix A.1, A.3, A.8) and per-leg snapshots.

use std::time::{Duration, Instant};

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Reception statistics of one leg's incoming RTP, across SSRC changes.
///
/// Loss is counted from sequence numbers: packets expected (extended highest sequence minus
/// base, plus one) minus packets received, with 16-bit wrap (cycles) and reordering handled as in
/// RFC 3550 A.1 (late packets count as received, they do not move the highest sequence). When the
/// source changes SSRC, the old source's counts are folded into the totals and tracking restarts.
#[derive(Debug, Clone)]
pub struct RecvStats {
    epoch: Instant,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: Option<u16>,
    received: u64,
    received_prior: u64,
    expected_prior: u64,
    /// Invariant: totals of the sources seen before `ssrc`.
    prior_expected: u64,
    prior_received: u64,
    packets: u64,
    bytes: u64,
    duplicates_or_late: u64,
    transit: Option<i64>,
    /// Interarrival jitter in timestamp units, RFC 3550 A.8 (kept ×16 as in the RFC's integer form).
    jitter_x16: u64,
    clock_rate: u32,
}

impl RecvStats {
    /// Starts empty. `epoch` is any fixed instant: arrival times are measured from it.
    pub fn new(epoch: Instant) -> Self {
        RecvStats {
            epoch,
            ssrc: None,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            bad_seq: None,
            received: 0,
            received_prior: 0,
            expected_prior: 0,
            prior_expected: 0,
            prior_received: 0,
            packets: 0,
            bytes: 0,
            duplicates_or_late: 0,
            transit: None,
            jitter_x16: 0,
            clock_rate: 8000,
        }
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        if self.ssrc.is_some() {
            self.prior_expected += self.expected_current();
            self.prior_received += self.received;
        }
        self.ssrc = Some(ssrc);
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.transit = None;
    }

    /// Accounts one packet: its SSRC, sequence, timestamp, size on the wire, the payload's
    /// clock rate, and when it arrived.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, ts: u32, bytes: usize, clock_rate: u32, now: Instant) {
        self.account(ssrc, seq, bytes, Some((ts, clock_rate, now)));
    }

    /// A packet whose timestamp is not its sampling instant: RFC 4733 gives every packet of
    /// an event the event's start timestamp, so they count for packets and loss but would
    /// read as 20 ms of jitter each.
    pub fn on_untimed_packet(&mut self, ssrc: u32, seq: u16, bytes: usize) {
        self.account(ssrc, seq, bytes, None);
    }

    fn account(&mut self, ssrc: u32, seq: u16, bytes: usize, timing: Option<(u32, u32, Instant)>) {
        self.packets += 1;
        self.bytes += bytes as u64;
        if self.ssrc != Some(ssrc) {
            self.restart(ssrc, seq);
            self.received = 1;
        } else {
            let udelta = seq.wrapping_sub(self.max_seq);
            if udelta == 0 {
                self.duplicates_or_late += 1;
                return;
            } else if udelta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += 1;
                }
                self.max_seq = seq;
                self.bad_seq = None;
                self.received += 1;
            } else if udelta <= u16::MAX - MAX_MISORDER {
                // a very large jump: the source restarted unless it is a one-off
                if self.bad_seq == Some(seq) {
                    let s = self.ssrc.unwrap_or(ssrc);
                    self.restart(s, seq);
                    self.received = 1;
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return;
                }
            } else {
                // reordered or duplicate within the misorder window: received, not newest
                self.duplicates_or_late += 1;
                self.received += 1;
                if let Some((ts, clock_rate, now)) = timing {
                    self.update_jitter(ts, clock_rate, now);
                }
                return;
            }
        }
        if let Some((ts, clock_rate, now)) = timing {
            self.update_jitter(ts, clock_rate, now);
        }
    }

    fn update_jitter(&mut self, ts: u32, clock_rate: u32, now: Instant) {
        if clock_rate != self.clock_rate {
            self.clock_rate = clock_rate.max(1);
            self.transit = None;
            self.jitter_x16 = 0;
        }
        let elapsed = now.saturating_duration_since(self.epoch);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u64 as u32;
        let transit = i64::from(arrival.wrapping_sub(ts) as i32);
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs();
            // J += (|D| - J) / 16, in the ×16 integer form of A.8
            self.jitter_x16 = self.jitter_x16 + d - ((self.jitter_x16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    fn expected_current(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let ext_max = (u64::from(self.cycles) << 16) + u64::from(self.max_seq);
        ext_max + 1 - u64::from(self.base_seq)
    }

    /// Extended highest sequence number of the current source.
    pub fn extended_highest_seq(&self) -> u32 {
        (self.cycles << 16) | u32::from(self.max_seq)
    }

    /// Current SSRC, if any packet arrived.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter_units(&self) -> u32 {
        (self.jitter_x16 >> 4) as u32
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter(&self) -> Duration {
        Duration::from_micros(u64::from(self.jitter_units()) * 1_000_000 / u64::from(self.clock_rate.max(1)))
    }

    /// Packets expected over all sources.
    pub fn expected(&self) -> u64 {
        self.prior_expected + self.expected_current()
    }

    /// Packets lost over all sources (never negative: duplicates do not make negative loss).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.prior_received + self.received)
    }

    /// A report block about the current source, and the fraction lost since the previous call
    /// (RFC 3550 A.3). `None` before the first packet.
    pub fn report_block(&mut self) -> Option<crate::rtcp::ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected_current();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8).checked_div(expected_interval).map_or(0, |f| f.min(255) as u8);
        let cumulative = expected.saturating_sub(self.received).min(0x7f_ffff) as i32;
        Some(crate::rtcp::ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: cumulative,
            highest_seq: self.extended_highest_seq(),
            jitter: self.jitter_units(),
            last_sr: 0,
            delay_since_last_sr: 0,
        })
    }

    /// A copyable summary.
    pub fn snapshot(&self) -> StreamStats {
        StreamStats {
            packets: self.packets,
            bytes: self.bytes,
            expected: self.expected(),
            lost: self.lost(),
            late_or_duplicate: self.duplicates_or_late,
            jitter: self.jitter(),
        }
    }
}

/// What one leg sent us, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// RTP packets received.
    pub packets: u64,
    /// RTP bytes received (whole datagrams).
    pub bytes: u64,
    /// Packets expected from the sequence numbers.
    pub expected: u64,
    /// Packets lost (expected − received, never negative).
    pub lost: u64,
    /// Packets that arrived late (reordered) or twice.
    pub late_or_duplicate: u64,
    /// Interarrival jitter (RFC 3550 A.8).
    pub jitter: Duration,
}

/// What the leg's endpoint told us in its RTCP receiver reports about the stream we send it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RemoteReport {
    /// Fraction lost in the last interval, 0.0–1.0.
    pub fraction_lost: f32,
    /// Cumulative packets lost.
    pub cumulative_lost: i32,
    /// Jitter the endpoint measured.
    pub jitter: Duration,
    /// RTCP compounds received from this leg.
    pub rtcp_packets: u64,
}

/// Per-leg statistics: the CDR keeps these.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LegStats {
    /// What the leg sent us.
    pub received: StreamStats,
    /// RTP packets we sent to the leg.
    pub sent_packets: u64,
    /// RTP bytes we sent to the leg.
    pub sent_bytes: u64,
    /// Datagrams from an accepted source dropped because they did not parse or carried a
    /// payload type the leg did not negotiate (or, SRTP, were malformed, or could not be
    /// protected for the other leg).
    pub dropped: u64,
    /// Datagrams refused for their source (strict RTP, [`crate::latch`]): from an address
    /// the leg is not latched to, including a new source's packets while it served its
    /// probation. Never forwarded, never answered.
    pub refused: u64,
    /// The crypto suite when the leg's media was SRTP ([`crate::session::Session::set_srtp`]).
    pub srtp: Option<crate::srtp::SrtpSuite>,
    /// The leg was WebRTC: DTLS-SRTP through [`crate::webrtc`] (its counters above are of the
    /// plain RTP the session saw).
    pub webrtc: bool,
    /// SRTP/SRTCP datagrams whose authentication tag did not verify (forged, corrupted,
    /// another key, or plain RTP on an SRTP leg): dropped, never forwarded.
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP datagrams refused as replays: an index seen already, or older than the
    /// 128-packet window. RFC 3711 §3.3 checks this before the tag, so a forgery carrying an
    /// old index is counted here too. Dropped, never forwarded.
    pub srtp_replays: u64,
    /// The leg's own RTCP view of what we send it.
    pub remote: RemoteReport,
}

/// Both legs' statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionStats {
    /// Leg A (the caller).
    pub a: LegStats,
    /// Leg B (the callee).
    pub b: LegStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u16]) -> RecvStats {
        let t0 = Instant::now();
        let mut s = RecvStats::new(t0);
        for (i, &q) in seqs.iter().enumerate() {
            s.on_packet(1, q, u32::from(q) * 160, 172, 8000, t0 + Duration::from_millis(20 * i as u64));
        }
        s
    }

    #[test]
    fn no_loss_in_order() {
        let s = feed(&(0..100).collect::<Vec<_>>());
        assert_eq!(s.expected(), 100);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.snapshot().packets, 100);
        assert_eq!(s.snapshot().bytes, 17200);
    }

    #[test]
    fn loss_counted_across_wrap() {
        let seqs: Vec<u16> = (65500u32..65600).map(|x| x as u16).filter(|q| q % 10 != 3).collect();
        let s = feed(&seqs);
        // 65500..=65535 then 0..=62 (63 itself is filtered out, so never expected)
        assert_eq!(s.expected(), 99);
        assert_eq!(s.lost(), 10);
        assert_eq!(s.extended_highest_seq(), (1 << 16) | 62);
    }

    #[test]
    fn reordering_is_not_loss_and_duplicates_are_not_gain() {
        let s = feed(&[1, 2, 4, 3, 5, 5, 6]);
        assert_eq!(s.expected(), 6);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.snapshot().late_or_duplicate, 2);
        let s = feed(&[1, 2, 4, 6]);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn ssrc_change_keeps_totals() {
        let t0 = Instant::now();
        let mut s = RecvStats::new(t0);
        for q in 0..10u16 {
            if q != 5 {
                s.on_packet(1, q, 0, 10, 8000, t0);
            }
        }
        for q in 1000..1010u16 {
            s.on_packet(2, q, 0, 10, 8000, t0);
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.ssrc(), Some(2));
    }

    #[test]
    fn big_jump_needs_two_packets_to_restart() {
        let s = feed(&[1, 2, 3, 30000, 30001, 30002]);
        // 30000 is ignored as a probe; 30001 restarts the sequence space
        assert_eq!(s.lost(), 0);
        assert_eq!(s.expected(), 5);
    }

    #[test]
    fn jitter_zero_for_perfect_pacing_and_grows_with_variance() {
        let s = feed(&(0..50).collect::<Vec<_>>());
        assert_eq!(s.jitter_units(), 0);
        let t0 = Instant::now();
        let mut s = RecvStats::new(t0);
        for i in 0..200u32 {
            // every other packet arrives 10 ms late: |D| = 80 units each time
            let late = if i % 2 == 1 { 10 } else { 0 };
            s.on_packet(1, i as u16, i * 160, 172, 8000, t0 + Duration::from_millis(u64::from(i) * 20 + late));
        }
        // J converges to |D| = 80 units = 10 ms
        assert!((75..=80).contains(&s.jitter_units()), "{}", s.jitter_units());
        assert!(s.jitter() >= Duration::from_micros(9_300));
    }

    #[test]
    fn telephone_events_count_but_add_no_jitter() {
        let t0 = Instant::now();
        let mut s = RecvStats::new(t0);
        let at = |i: u64| t0 + Duration::from_millis(20 * i);
        for i in 0..10u16 {
            s.on_packet(1, i, u32::from(i) * 160, 172, 8000, at(u64::from(i)));
        }
        // a digit: 8 packets, one timestamp (the event's start), 20 ms apart
        for i in 10..18u16 {
            s.on_untimed_packet(1, i, 16);
        }
        for i in 18..30u16 {
            s.on_packet(1, i, u32::from(i) * 160, 172, 8000, at(u64::from(i)));
        }
        assert_eq!((s.expected(), s.lost(), s.snapshot().packets), (30, 0, 30));
        assert_eq!(s.jitter_units(), 0);
    }

    #[test]
    fn report_block_fraction() {
        let mut s = feed(&[0, 1, 2, 3, 5, 6, 7, 8]);
        let r = s.report_block().unwrap();
        assert_eq!(r.cumulative_lost, 1);
        assert_eq!(r.fraction_lost, (256 / 9) as u8);
        assert_eq!(r.highest_seq, 8);
        let r2 = s.report_block().unwrap();
        assert_eq!(r2.fraction_lost, 0);
    }
}
