//! A small jitter buffer for one conference participant, sans-IO.
//!
//! The mixer runs on its own 20 ms clock; a participant's packets arrive on the network's.
//! The buffer sits between them: packets go in as they arrive ([`JitterBuffer::push`]), in any
//! order, and come out in sequence order one per request ([`JitterBuffer::pop`]) once a few
//! are queued (the target depth, 40 ms by default). A packet missing when its turn comes is
//! reported [`Pop::Lost`] (the mixer conceals it: Opus PLC, silence for G.711); one arriving
//! after its turn is dropped as late. When the buffer runs dry (the sender paused, or a
//! jitter spike) it refills to the target before playing again, which adapts the delay
//! upward; when it holds more than its maximum (a sender whose clock runs fast), the oldest
//! packets are dropped down to the target.
//!
//! Payloads are copied into storage allocated once, so pushing and popping allocate nothing.

use crate::codec::CodecKind;
use crate::rtp::seq_newer;

/// The largest payload kept (an Opus frame is at most 1275 bytes; 60 ms of G.711 is 480).
pub const MAX_PAYLOAD: usize = 1280;
/// Packets the buffer can hold.
const SLOTS: usize = 16;
/// A sequence number this far behind the playout point is a new stream, not a late packet.
const RESTART_DISTANCE: u16 = 1000;

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued.
    Accepted,
    /// The same sequence number is queued already.
    Duplicate,
    /// Its turn has passed: dropped.
    Late,
    /// Larger than [`MAX_PAYLOAD`]: dropped.
    TooLarge,
    /// Far outside the window (a new stream after a re-INVITE, or a long outage): the buffer
    /// was emptied and restarts from this packet.
    Restarted,
}

/// What the mixer gets for its next frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Pop<'a> {
    /// The next packet in sequence.
    Packet {
        /// Its codec.
        codec: CodecKind,
        /// Its payload.
        payload: &'a [u8],
    },
    /// The next packet did not arrive in time (later ones did): conceal one packet.
    Lost,
    /// Nothing to play: the buffer is (re)filling.
    Empty,
}

/// Counters of one buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets queued.
    pub accepted: u64,
    /// Packets dropped because their turn had passed.
    pub late: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets concealed because they were missing at their turn.
    pub lost: u64,
    /// Packets dropped to bring an overfull buffer back to its target.
    pub overflow: u64,
    /// Times the buffer ran dry while playing.
    pub underruns: u64,
    /// Times it restarted on a sequence jump.
    pub restarts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    used: bool,
    seq: u16,
    codec: CodecKind,
    len: usize,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    meta: Vec<Meta>,
    data: Vec<u8>,
    count: usize,
    /// Invariant: when `Some`, no queued packet is older than `next` (older ones are dropped
    /// as late), and every queued packet is less than `SLOTS` ahead of it.
    next: Option<u16>,
    /// The newest sequence number queued since the last restart.
    newest: u16,
    playing: bool,
    /// Whether anything was played since the last restart (before that, a reordered packet
    /// may still lower `next`).
    played: bool,
    waited: usize,
    target: usize,
    max: usize,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer that starts playing with `target` packets queued and trims back to `target`
    /// when more than `max` are (both clamped to the buffer's 16 slots).
    pub fn new(target: usize, max: usize) -> Self {
        let target = target.clamp(1, SLOTS - 1);
        JitterBuffer {
            meta: vec![Meta { used: false, seq: 0, codec: CodecKind::Pcmu, len: 0 }; SLOTS],
            data: vec![0; SLOTS * MAX_PAYLOAD],
            count: 0,
            next: None,
            newest: 0,
            playing: false,
            played: false,
            waited: 0,
            target,
            max: max.clamp(target + 1, SLOTS),
            stats: JitterStats::default(),
        }
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Forgets everything queued and the playout position (a participant unmuted, or its
    /// stream was replaced). The counters are kept.
    pub fn reset(&mut self) {
        for m in &mut self.meta {
            m.used = false;
        }
        self.count = 0;
        self.next = None;
        self.playing = false;
        self.played = false;
        self.waited = 0;
    }

    fn store(&mut self, seq: u16, codec: CodecKind, payload: &[u8]) -> bool {
        let i = usize::from(seq) % SLOTS;
        let m = &mut self.meta[i];
        if m.used && m.seq == seq {
            self.stats.duplicates += 1;
            return false;
        }
        if !m.used {
            self.count += 1;
        }
        *m = Meta { used: true, seq, codec, len: payload.len() };
        self.data[i * MAX_PAYLOAD..i * MAX_PAYLOAD + payload.len()].copy_from_slice(payload);
        if self.count == 1 || seq_newer(seq, self.newest) {
            self.newest = seq;
        }
        self.stats.accepted += 1;
        true
    }

    /// Queues a packet.
    pub fn push(&mut self, seq: u16, codec: CodecKind, payload: &[u8]) -> Push {
        if payload.len() > MAX_PAYLOAD {
            return Push::TooLarge;
        }
        let Some(next) = self.next else {
            self.next = Some(seq);
            self.store(seq, codec, payload);
            return Push::Accepted;
        };
        let ahead = seq.wrapping_sub(next);
        if seq_newer(next, seq) {
            let behind = next.wrapping_sub(seq);
            // reordered before anything played: it may still open the stream, if the window
            // holds it together with the newest packet
            if !self.played && self.newest.wrapping_sub(seq) < SLOTS as u16 {
                self.next = Some(seq);
                return if self.store(seq, codec, payload) { Push::Accepted } else { Push::Duplicate };
            }
            if behind < RESTART_DISTANCE {
                self.stats.late += 1;
                return Push::Late;
            }
            return self.restart(seq, codec, payload);
        }
        if usize::from(ahead) >= SLOTS {
            return self.restart(seq, codec, payload);
        }
        if !self.store(seq, codec, payload) {
            return Push::Duplicate;
        }
        if self.playing && self.count > self.max {
            while self.count > self.target {
                self.drop_next();
            }
        }
        Push::Accepted
    }

    fn restart(&mut self, seq: u16, codec: CodecKind, payload: &[u8]) -> Push {
        self.reset();
        self.stats.restarts += 1;
        self.next = Some(seq);
        self.store(seq, codec, payload);
        Push::Restarted
    }

    /// Drops the packet at the playout point (or skips its empty slot).
    fn drop_next(&mut self) {
        let Some(next) = self.next else { return };
        let m = &mut self.meta[usize::from(next) % SLOTS];
        if m.used && m.seq == next {
            m.used = false;
            self.count -= 1;
            self.stats.overflow += 1;
        }
        self.next = Some(next.wrapping_add(1));
    }

    /// The next packet to play, a loss to conceal, or nothing.
    pub fn pop(&mut self) -> Pop<'_> {
        let Some(next) = self.next else { return Pop::Empty };
        if !self.playing {
            if self.count == 0 {
                return Pop::Empty;
            }
            self.waited += 1;
            // a lone packet (the end of a talkspurt) does not wait for company forever
            if self.count < self.target && self.waited <= self.target {
                return Pop::Empty;
            }
            self.playing = true;
            self.waited = 0;
        }
        if self.count == 0 {
            self.playing = false;
            self.stats.underruns += 1;
            return Pop::Empty;
        }
        self.next = Some(next.wrapping_add(1));
        self.played = true;
        let i = usize::from(next) % SLOTS;
        let m = &mut self.meta[i];
        if m.used && m.seq == next {
            m.used = false;
            self.count -= 1;
            let (codec, len) = (m.codec, m.len);
            return Pop::Packet { codec, payload: &self.data[i * MAX_PAYLOAD..i * MAX_PAYLOAD + len] };
        }
        self.stats.lost += 1;
        Pop::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: CodecKind = CodecKind::Pcmu;

    /// Pops one frame and describes it: the payload's first byte, `L` lost, `-` empty.
    fn step(j: &mut JitterBuffer) -> String {
        match j.pop() {
            Pop::Packet { payload, .. } => payload[0].to_string(),
            Pop::Lost => "L".into(),
            Pop::Empty => "-".into(),
        }
    }

    fn run(j: &mut JitterBuffer, n: usize) -> Vec<String> {
        (0..n).map(|_| step(j)).collect()
    }

    #[test]
    fn in_order_packets_play_after_the_target_depth() {
        let mut j = JitterBuffer::new(2, 8);
        assert_eq!(j.push(100, U, &[1]), Push::Accepted);
        assert_eq!(step(&mut j), "-");
        assert_eq!(j.push(101, U, &[2]), Push::Accepted);
        assert_eq!(step(&mut j), "1");
        j.push(102, U, &[3]);
        assert_eq!(step(&mut j), "2");
        assert_eq!(step(&mut j), "3");
        // dry: one underrun, then silence until it refills
        assert_eq!(run(&mut j, 2), ["-", "-"]);
        assert_eq!(j.stats().underruns, 1);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut j = JitterBuffer::new(2, 8);
        // 11 arrives before 10, and 13 before 12
        j.push(11, U, &[11]);
        assert_eq!(j.push(10, U, &[10]), Push::Accepted);
        j.push(13, U, &[13]);
        j.push(12, U, &[12]);
        assert_eq!(run(&mut j, 4), ["10", "11", "12", "13"]);
        assert_eq!(j.stats().late, 0);
    }

    #[test]
    fn a_missing_packet_is_lost_and_its_late_arrival_dropped() {
        let mut j = JitterBuffer::new(2, 8);
        for s in [1u16, 2, 4, 5] {
            j.push(s, U, &[s as u8]);
        }
        assert_eq!(run(&mut j, 4), ["1", "2", "L", "4"]);
        assert_eq!(j.push(3, U, &[3]), Push::Late);
        assert_eq!(j.push(5, U, &[5]), Push::Duplicate);
        assert_eq!(run(&mut j, 1), ["5"]);
        let s = j.stats();
        assert_eq!((s.lost, s.late, s.duplicates), (1, 1, 1));
    }

    #[test]
    fn a_lone_packet_plays_after_waiting_its_turn() {
        let mut j = JitterBuffer::new(3, 8);
        j.push(7, U, &[7]);
        assert_eq!(run(&mut j, 4), ["-", "-", "-", "7"]);
    }

    #[test]
    fn an_overfull_buffer_trims_to_its_target() {
        let mut j = JitterBuffer::new(2, 4);
        j.push(0, U, &[0]);
        j.push(1, U, &[1]);
        assert_eq!(step(&mut j), "0");
        // a burst of 5 more: the fifth queued is over the maximum of 4, so the oldest three
        // go and the target of 2 remains; the sixth queues behind them
        for s in 2u16..7 {
            j.push(s, U, &[s as u8]);
        }
        assert_eq!(j.len(), 3);
        assert_eq!(run(&mut j, 3), ["4", "5", "6"]);
        assert_eq!(j.stats().overflow, 3);
    }

    #[test]
    fn sequence_wrap_and_stream_restarts() {
        let mut j = JitterBuffer::new(2, 8);
        for s in [65534u16, 65535, 0, 1] {
            j.push(s, U, &[s as u8]);
        }
        assert_eq!(run(&mut j, 4), ["254", "255", "0", "1"]);
        // a new numbering far away (a re-INVITE): restarts instead of dropping everything
        assert_eq!(j.push(30000, U, &[9]), Push::Restarted);
        j.push(30001, U, &[10]);
        assert_eq!(run(&mut j, 2), ["9", "10"]);
        // far behind is a restart too, near behind is late
        assert_eq!(j.push(29990, U, &[1]), Push::Late);
        assert_eq!(j.push(1000, U, &[1]), Push::Restarted);
        assert_eq!(j.push(2000, U, &[0; MAX_PAYLOAD + 1]), Push::TooLarge);
        assert_eq!(j.stats().restarts, 2);
    }

    #[test]
    fn codecs_and_payloads_are_kept_per_packet() {
        let mut j = JitterBuffer::new(1, 8);
        j.push(5, CodecKind::Opus, &[1, 2, 3]);
        assert_eq!(j.pop(), Pop::Packet { codec: CodecKind::Opus, payload: &[1, 2, 3] });
        j.reset();
        assert!(j.is_empty());
        assert_eq!(j.pop(), Pop::Empty);
    }
}
