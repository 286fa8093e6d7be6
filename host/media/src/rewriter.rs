//! The output side of a leg: FlowPBX owns the SSRC, sequence numbers and timestamps a leg
//! receives, whatever feeds it (the other leg's packets, transcoded frames, a prompt, DTMF).
//!
//! Switching sources (a re-INVITE that changes the other leg's SSRC, a prompt spliced into a
//! bridged call, hold and unhold, a codec change) keeps the SSRC, continues the sequence
//! without a gap, and advances the timestamp by the wall-clock time since the last packet
//! (at least one frame), setting the marker bit on the first packet of the new source, so the
//! receiver's jitter buffer sees one continuous stream with a talkspurt boundary.

use std::time::{Duration, Instant};

use crate::rtp::seq_newer;

/// Who is feeding a leg's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    None,
    /// Packets of the other leg forwarded as they are (same clock): offsets map their numbers.
    Relay {
        ssrc: u32,
        seq_offset: u16,
        ts_offset: u32,
    },
    /// Frames transcoded from the other leg: timestamps map from the input's through a clock ratio.
    Mapped {
        ssrc: u32,
        in_base: u32,
        out_base: u32,
        in_rate: u32,
    },
    /// Frames FlowPBX generates (prompts, DTMF), identified by a caller-chosen id.
    Local {
        id: u64,
        next_ts: u32,
    },
}

/// One leg's outgoing RTP numbering.
#[derive(Debug, Clone)]
pub struct OutputStream {
    ssrc: u32,
    /// Invariant: the next sequence number never used on this stream.
    next_seq: u16,
    last_ts: u32,
    last_time: Option<Instant>,
    /// Clock rate the last timestamp was in.
    clock: u32,
    source: Source,
    initial_ts: u32,
    /// Packets and payload bytes sent (for RTCP SR).
    pub packets: u64,
    /// Payload octets sent.
    pub octets: u64,
}

/// Numbers for one outgoing packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutNumbers {
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Marker bit: set on the first packet after a source change.
    pub marker: bool,
}

/// The minimum a timestamp advances across a source switch: one 20 ms frame.
const MIN_GAP: Duration = Duration::from_millis(20);

impl OutputStream {
    /// A stream with the given SSRC and random-looking initial sequence and timestamp
    /// (derived from `seed`; the caller supplies randomness, the core has none).
    pub fn new(ssrc: u32, seed: u64) -> Self {
        OutputStream {
            ssrc,
            next_seq: (seed >> 16) as u16 & 0x7fff,
            last_ts: (seed >> 32) as u32,
            last_time: None,
            clock: 8000,
            source: Source::None,
            initial_ts: (seed >> 32) as u32,
            packets: 0,
            octets: 0,
        }
    }

    /// The SSRC this leg receives from FlowPBX.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Timestamp for a new source starting at `now` in `clock` units.
    fn continue_ts(&self, now: Instant, clock: u32) -> u32 {
        match self.last_time {
            None => self.initial_ts,
            Some(t) => {
                let gap = now.saturating_duration_since(t).max(MIN_GAP);
                let units = (gap.as_micros() as u64 * u64::from(clock) / 1_000_000) as u32;
                // when the clock changes, express the last timestamp in the new clock's units
                // is impossible without an epoch; the stream simply continues from it.
                self.last_ts.wrapping_add(units)
            }
        }
    }

    fn note_sent(&mut self, seq: u16, ts: u32, clock: u32, now: Instant, payload_len: usize) {
        if !seq_newer(self.next_seq, seq) {
            // seq is the newest so far
            self.next_seq = seq.wrapping_add(1);
            self.last_ts = ts;
            self.last_time = Some(now);
            self.clock = clock;
        }
        self.packets += 1;
        self.octets += payload_len as u64;
    }

    /// Numbers for a packet of the other leg forwarded without transcoding (same clock rate).
    pub fn relay(&mut self, in_ssrc: u32, in_seq: u16, in_ts: u32, clock: u32, now: Instant, payload_len: usize) -> OutNumbers {
        let mut marker = false;
        let (seq_offset, ts_offset) = match self.source {
            Source::Relay { ssrc, seq_offset, ts_offset } if ssrc == in_ssrc && self.clock == clock => (seq_offset, ts_offset),
            _ => {
                marker = true;
                let ts = self.continue_ts(now, clock);
                let so = self.next_seq.wrapping_sub(in_seq);
                let to = ts.wrapping_sub(in_ts);
                self.source = Source::Relay { ssrc: in_ssrc, seq_offset: so, ts_offset: to };
                (so, to)
            }
        };
        let seq = in_seq.wrapping_add(seq_offset);
        let ts = in_ts.wrapping_add(ts_offset);
        self.note_sent(seq, ts, clock, now, payload_len);
        OutNumbers { seq, ts, marker }
    }

    /// The timestamp, in `out_rate` units, of a transcoded frame whose first sample had
    /// timestamp `in_ts` at `in_rate` on the other leg. Returns it and whether a new source began.
    pub fn map_ts(&mut self, in_ssrc: u32, in_ts: u32, in_rate: u32, out_rate: u32, now: Instant) -> (u32, bool) {
        match self.source {
            Source::Mapped { ssrc, in_base, out_base, in_rate: r } if ssrc == in_ssrc && r == in_rate && self.clock == out_rate => {
                let delta = i64::from(in_ts.wrapping_sub(in_base) as i32);
                let out = delta * i64::from(out_rate) / i64::from(in_rate.max(1));
                (out_base.wrapping_add(out as i32 as u32), false)
            }
            _ => {
                let ts = self.continue_ts(now, out_rate);
                self.source = Source::Mapped { ssrc: in_ssrc, in_base: in_ts, out_base: ts, in_rate };
                self.clock = out_rate;
                (ts, true)
            }
        }
    }

    /// Numbers for a frame FlowPBX generates from source `id` covering `units` of `clock`.
    /// Consecutive frames of one source are contiguous in timestamp.
    pub fn local(&mut self, id: u64, units: u32, clock: u32, now: Instant, payload_len: usize) -> OutNumbers {
        let (ts, marker) = match self.source {
            Source::Local { id: cur, next_ts } if cur == id && self.clock == clock => (next_ts, false),
            _ => (self.continue_ts(now, clock), true),
        };
        self.source = Source::Local { id, next_ts: ts.wrapping_add(units) };
        let seq = self.next_seq;
        self.note_sent(seq, ts, clock, now, payload_len);
        OutNumbers { seq, ts, marker }
    }

    /// A sequence number for a packet whose timestamp the caller fixed (transcoded frames,
    /// DTMF events); records it as sent.
    pub fn numbered(&mut self, ts: u32, clock: u32, now: Instant, payload_len: usize) -> u16 {
        let seq = self.next_seq;
        self.note_sent(seq, ts, clock, now, payload_len);
        seq
    }

    /// Records that the stream's media reached timestamp `ts` at `now` (the end of a DTMF
    /// event, whose packets all carry its start timestamp), so the next source continues
    /// after it.
    pub fn mark(&mut self, ts: u32, now: Instant) {
        self.last_ts = ts;
        self.last_time = Some(now);
    }

    /// Forgets the current source: the next packet of any source starts a new talkspurt.
    pub fn interrupt(&mut self) {
        self.source = Source::None;
    }

    /// The latest timestamp sent, its clock, and when (for RTCP SR).
    pub fn last_sent(&self) -> Option<(u32, u32, Instant)> {
        self.last_time.map(|t| (self.last_ts, self.clock, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn relay_is_offset_only_and_keeps_gaps_and_reordering() {
        let t0 = Instant::now();
        let mut o = OutputStream::new(42, 0x1234_5678_9abc_def0);
        let first = o.relay(7, 100, 1000, 8000, t0, 160);
        assert!(first.marker);
        let n = o.relay(7, 101, 1160, 8000, t0 + ms(20), 160);
        assert_eq!((n.seq, n.ts, n.marker), (first.seq.wrapping_add(1), first.ts.wrapping_add(160), false));
        // loss (102 missing) and reordering pass through as the same gap and order
        let a = o.relay(7, 104, 1640, 8000, t0 + ms(80), 160);
        let b = o.relay(7, 103, 1480, 8000, t0 + ms(81), 160);
        assert_eq!(a.seq, first.seq.wrapping_add(4));
        assert_eq!(b.seq, first.seq.wrapping_add(3));
        // a late packet does not rewind next_seq
        let c = o.local(1, 160, 8000, t0 + ms(100), 160);
        assert_eq!(c.seq, first.seq.wrapping_add(5));
    }

    #[test]
    fn source_switch_is_continuous() {
        let t0 = Instant::now();
        let mut o = OutputStream::new(42, 99 << 32);
        let mut last = o.relay(7, 65534, 5000, 8000, t0, 160);
        for i in 1..5u16 {
            last = o.relay(7, 65534u16.wrapping_add(i), 5000 + 160 * u32::from(i), 8000, t0 + ms(20 * u64::from(i)), 160);
        }
        // a prompt splices in 20 ms later: next seq, ts advanced by 20 ms, marker set
        let p = o.local(9, 160, 8000, t0 + ms(100), 160);
        assert_eq!(p.seq, last.seq.wrapping_add(1));
        assert_eq!(p.ts, last.ts.wrapping_add(160));
        assert!(p.marker);
        let p2 = o.local(9, 160, 8000, t0 + ms(119), 160);
        assert_eq!((p2.seq, p2.ts, p2.marker), (p.seq.wrapping_add(1), p.ts.wrapping_add(160), false));
        // the other leg comes back after a re-INVITE with a new SSRC and numbering, 3 s later (hold)
        let r = o.relay(8, 10, 777, 8000, t0 + ms(3119), 160);
        assert_eq!(r.seq, p2.seq.wrapping_add(1));
        assert_eq!(r.ts, p2.ts.wrapping_add(24000));
        assert!(r.marker);
        let r2 = o.relay(8, 11, 937, 8000, t0 + ms(3139), 160);
        assert_eq!((r2.seq, r2.ts, r2.marker), (r.seq.wrapping_add(1), r.ts.wrapping_add(160), false));
        assert_eq!(o.ssrc(), 42);
    }

    #[test]
    fn mapped_timestamps_follow_the_input_clock() {
        let t0 = Instant::now();
        let mut o = OutputStream::new(1, 0);
        let (ts0, new) = o.map_ts(5, 1000, 8000, 48000, t0);
        assert!(new);
        let (ts1, new1) = o.map_ts(5, 1160, 8000, 48000, t0 + ms(20));
        assert!(!new1);
        assert_eq!(ts1.wrapping_sub(ts0), 960);
        // input loss shows as a timestamp gap, not a compressed stream
        let (ts3, _) = o.map_ts(5, 1480, 8000, 48000, t0 + ms(60));
        assert_eq!(ts3.wrapping_sub(ts0), 2880);
        // wrap of the input timestamp
        let mut o = OutputStream::new(1, 0);
        let (a, _) = o.map_ts(5, u32::MAX - 79, 48000, 8000, t0);
        let (b, _) = o.map_ts(5, 880, 48000, 8000, t0);
        assert_eq!(b.wrapping_sub(a), 160);
    }

    #[test]
    fn sequence_wraps() {
        let t0 = Instant::now();
        let mut o = OutputStream::new(1, 0x7fff << 16);
        let mut prev = o.local(1, 160, 8000, t0, 1).seq;
        for i in 1..70000u32 {
            let s = o.local(1, 160, 8000, t0 + ms(u64::from(i)), 1).seq;
            assert_eq!(s, prev.wrapping_add(1));
            prev = s;
        }
    }
}
