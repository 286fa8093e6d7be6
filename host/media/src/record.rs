//! The recorder's sans-IO half: lines up one or two legs' decoded audio on a common
//! timeline, fills gaps with silence, and hands out interleaved blocks for the writer.
//! File naming lives here too; the files themselves are written by [`crate::recorder`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Samples per second of recordings.
pub const RATE: u32 = 8000;
/// Audio is held this long before it is written, so late packets still land in place.
pub const LATENCY: Duration = Duration::from_millis(200);
/// A channel whose audio runs further behind the clock than this gets silence inserted.
const GAP_TOLERANCE: u64 = RATE as u64 / 25; // 40 ms
/// Audio further ahead of the clock than this is dropped (a sender flooding).
const MAX_AHEAD: u64 = RATE as u64 * 2;

/// What a recording captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// One leg's incoming audio, mono (voicemail).
    Leg(crate::LegId),
    /// Both legs, stereo: leg A (the caller) left, leg B (the callee) right.
    Both,
}

impl RecordMode {
    /// Channels in the file.
    pub fn channels(self) -> usize {
        match self {
            RecordMode::Leg(_) => 1,
            RecordMode::Both => 2,
        }
    }

    /// The channel a leg's audio goes to, if it is recorded.
    pub fn channel_of(self, leg: crate::LegId) -> Option<usize> {
        match self {
            RecordMode::Leg(l) if l == leg => Some(0),
            RecordMode::Leg(_) => None,
            RecordMode::Both => Some(leg.index()),
        }
    }
}

/// Where a block of decoded audio sits in its RTP stream: placing it by timestamp keeps it in
/// place whatever the network or the relay thread did to its arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTime {
    /// The stream (a new SSRC starts a new anchor).
    pub ssrc: u32,
    /// The packet's RTP timestamp.
    pub timestamp: u32,
    /// The RTP clock rate of the payload type.
    pub clock_rate: u32,
}

/// A stream's RTP timestamp pinned to a timeline position.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    clock_rate: u32,
    timestamp: u32,
    pos: u64,
}

/// A timestamp that puts audio further than this from where its arrival time would is not
/// trusted (a sender's clock jumped, or drifted that far): the stream is anchored again.
const RESYNC: u64 = RATE as u64 * 2 / 5; // 400 ms
/// Audio that starts within this of where the channel ends is joined on (resampling and
/// rounding move a block's length by a sample or two; a click is worse than 2 ms of shift).
const SNAP: u64 = RATE as u64 / 500; // 2 ms

/// Aligns 8 kHz audio of one or two channels on the wall clock. Audio with RTP timing is
/// placed by its timestamp relative to the first packet of its stream (itself placed by
/// arrival): jitter, a late burst, reordering and loss leave everything else in place, and a
/// lost packet leaves silence where it was. Audio without timing is placed by arrival.
#[derive(Debug, Clone)]
pub struct Aligner {
    start: Instant,
    /// Invariant: `bufs[c][0]` is the sample at timeline position `flushed`.
    bufs: Vec<Vec<i16>>,
    anchors: Vec<Option<Anchor>>,
    flushed: u64,
}

impl Aligner {
    /// Starts the timeline at `now`.
    pub fn new(channels: usize, now: Instant) -> Self {
        let channels = channels.clamp(1, 2);
        Aligner { start: now, bufs: vec![Vec::new(); channels], anchors: vec![None; channels], flushed: 0 }
    }

    fn position(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_micros() as u64) * u64::from(RATE) / 1_000_000
    }

    /// Adds `pcm` that arrived at `now` (so it ends about now) to a channel, placed by arrival.
    pub fn push(&mut self, channel: usize, pcm: &[i16], now: Instant) {
        self.push_timed(channel, pcm, None, now);
    }

    /// Adds `pcm` that arrived at `now` to a channel, placed by its RTP timing when given.
    pub fn push_timed(&mut self, channel: usize, pcm: &[i16], timing: Option<MediaTime>, now: Instant) {
        let pos_now = self.position(now);
        let flushed = self.flushed;
        let (Some(buf), Some(anchor)) = (self.bufs.get_mut(channel), self.anchors.get_mut(channel)) else { return };
        let end = flushed + buf.len() as u64;
        let arrival_start = pos_now.saturating_sub(pcm.len() as u64);
        // by arrival: joined on when it follows closely, else where it arrived (a gap)
        let by_arrival = if end + GAP_TOLERANCE >= arrival_start { end } else { arrival_start };
        let mut start = by_arrival;
        if let Some(t) = timing.filter(|t| t.clock_rate > 0) {
            let predicted = anchor
                .filter(|a| a.ssrc == t.ssrc && a.clock_rate == t.clock_rate)
                .and_then(|a| {
                    let units = i64::from(t.timestamp.wrapping_sub(a.timestamp) as i32);
                    u64::try_from(a.pos as i64 + units * i64::from(RATE) / i64::from(t.clock_rate)).ok()
                })
                .filter(|p| p.abs_diff(arrival_start) <= RESYNC);
            match predicted {
                Some(p) if p.abs_diff(end) <= SNAP => start = end,
                Some(p) => start = p,
                None => *anchor = Some(Anchor { ssrc: t.ssrc, clock_rate: t.clock_rate, timestamp: t.timestamp, pos: by_arrival }),
            }
        }
        if start > pos_now + MAX_AHEAD {
            return;
        }
        // what falls before the flushed point is too late to be written
        let skip = flushed.saturating_sub(start) as usize;
        let Some(pcm) = pcm.get(skip..).filter(|p| !p.is_empty()) else { return };
        let off = (start.max(flushed) - flushed) as usize;
        if off > buf.len() {
            buf.resize(off, 0);
        }
        // a reordered or repeated packet lands on what is there (silence, or itself)
        let overlap = (buf.len() - off).min(pcm.len());
        buf[off..off + overlap].copy_from_slice(&pcm[..overlap]);
        buf.extend_from_slice(&pcm[overlap..]);
    }

    /// Appends to `out` everything up to `now − LATENCY`, interleaved, channels padded with
    /// silence where they had nothing. Returns the number of frames (samples per channel).
    pub fn flush(&mut self, now: Instant, out: &mut Vec<i16>) -> usize {
        let target = self.position(now).saturating_sub(self.position(self.start + LATENCY));
        self.flush_to(target, out)
    }

    /// Appends everything buffered (the end of a recording).
    pub fn finish(&mut self, out: &mut Vec<i16>) -> usize {
        let target = self.bufs.iter().map(|b| self.flushed + b.len() as u64).max().unwrap_or(self.flushed);
        self.flush_to(target, out)
    }

    fn flush_to(&mut self, target: u64, out: &mut Vec<i16>) -> usize {
        if target <= self.flushed {
            return 0;
        }
        let n = (target - self.flushed) as usize;
        for b in &mut self.bufs {
            if b.len() < n {
                b.resize(n, 0);
            }
        }
        out.reserve(n * self.bufs.len());
        for i in 0..n {
            for b in &self.bufs {
                out.push(b[i]);
            }
        }
        for b in &mut self.bufs {
            b.drain(..n);
        }
        self.flushed = target;
        n
    }

    /// Frames written so far.
    pub fn frames_flushed(&self) -> u64 {
        self.flushed
    }
}

/// A civil date (UTC) for the recordings folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
}

/// Keeps a file name to characters safe everywhere (call ids carry `@`, `/`, …).
pub fn sanitize(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).take(120).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "recording".into()
    } else {
        s
    }
}

/// `<data_dir>/recordings/YYYY/MM/DD/<name>.wav`.
pub fn recording_path(data_dir: &Path, date: Date, name: &str) -> PathBuf {
    data_dir
        .join("recordings")
        .join(format!("{:04}", date.year))
        .join(format!("{:02}", date.month))
        .join(format!("{:02}", date.day))
        .join(format!("{}.wav", sanitize(name)))
}

/// The temporary name a recording is written under until it is closed: a hidden `.part`
/// file beside the final one, so a crash never leaves a half file under the real name.
pub fn temporary_path(final_path: &Path) -> PathBuf {
    let file = final_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    final_path.with_file_name(format!(".{file}.part"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LegId;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn stereo_alignment_with_gaps_and_silence() {
        let t0 = Instant::now();
        let mut a = Aligner::new(2, t0);
        let mut out = Vec::new();
        // caller talks for 100 ms from the start; callee only from 60 ms to 100 ms
        for i in 1..=5u64 {
            a.push(0, &[1000; 160], t0 + ms(20 * i));
        }
        a.push(1, &[-2000; 160], t0 + ms(80));
        a.push(1, &[-2000; 160], t0 + ms(100));
        // nothing is written before the latency has passed
        assert_eq!(a.flush(t0 + ms(150), &mut out), 0);
        let frames = a.flush(t0 + ms(300), &mut out);
        assert_eq!(frames, 800);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        assert!(left.iter().all(|&s| s == 1000));
        // the callee's first sample lands at 60 ms = sample 480
        assert!(right[..480].iter().all(|&s| s == 0));
        assert!(right[480..800].iter().all(|&s| s == -2000));
        // then a long silence on both (hold): time still advances
        let frames = a.flush(t0 + ms(1300), &mut out);
        assert_eq!(frames, 8000);
        assert!(out[1600..].iter().all(|&s| s == 0));
        // the caller returns at 2 s: its audio is placed at 2 s, not glued to the 100 ms mark
        a.push(0, &[7; 160], t0 + ms(2000));
        out.clear();
        a.finish(&mut out);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let start = (1980 - 1100) * 8;
        assert!(left[..start].iter().all(|&s| s == 0), "gap filled");
        assert!(left[start..start + 160].iter().all(|&s| s == 7));
        assert_eq!(a.frames_flushed(), 16000);
    }

    #[test]
    fn jittery_arrivals_stay_contiguous() {
        let t0 = Instant::now();
        let mut a = Aligner::new(1, t0);
        let mut out = Vec::new();
        // packets every 20 ms with ±15 ms jitter: no silence inserted
        for i in 1..=50u64 {
            let jitter = if i % 2 == 0 { 15 } else { 0 };
            a.push(0, &[5; 160], t0 + ms(20 * i + jitter));
        }
        a.finish(&mut out);
        assert_eq!(out.len(), 8000);
        assert!(out.iter().all(|&s| s == 5));
    }

    fn timed(ts: u32) -> Option<MediaTime> {
        Some(MediaTime { ssrc: 7, timestamp: ts, clock_rate: 8000 })
    }

    #[test]
    fn a_late_burst_lands_in_place() {
        // a steady stream whose 6th..8th packets are held up 70 ms (a stalled thread, a wifi
        // hiccup) and then arrive together: the audio stays contiguous and in place
        let t0 = Instant::now();
        let mut a = Aligner::new(1, t0);
        let mut out = Vec::new();
        for i in 1..=20u64 {
            let at = if (6..=8).contains(&i) { t0 + ms(20 * 8 + 10) } else { t0 + ms(20 * i) };
            a.push_timed(0, &[i as i16; 160], timed(1000 + 160 * i as u32), at);
        }
        a.finish(&mut out);
        assert_eq!(out.len(), 20 * 160, "no silence inserted");
        for (i, frame) in out.chunks(160).enumerate() {
            assert!(frame.iter().all(|&s| s == i as i16 + 1), "frame {i} in place: {:?}", &frame[..4]);
        }
    }

    #[test]
    fn loss_reordering_and_a_new_stream_by_timestamp() {
        let t0 = Instant::now();
        let mut a = Aligner::new(1, t0);
        let mut out = Vec::new();
        // packets 1..=10 at 48 kHz RTP clock (Opus), 4 lost, 6 and 7 swapped
        let opus = |ts: u32| Some(MediaTime { ssrc: 9, timestamp: ts, clock_rate: 48000 });
        for i in [1u32, 2, 3, 5, 7, 6, 8, 9, 10] {
            a.push_timed(0, &[i as i16; 160], opus((u32::MAX - 2000).wrapping_add(960 * i)), t0 + ms(20 * u64::from(i)));
        }
        // then the sender restarts (new SSRC, unrelated timestamps) 100 ms after its last packet
        a.push_timed(0, &[11; 160], Some(MediaTime { ssrc: 10, timestamp: 5, clock_rate: 8000 }), t0 + ms(320));
        a.finish(&mut out);
        let frames: Vec<i16> = out.chunks(160).map(|f| f[0]).collect();
        // the lost packet is 20 ms of silence in its place; the new stream starts where it arrived
        assert_eq!(frames, vec![1, 2, 3, 0, 5, 6, 7, 8, 9, 10, 0, 0, 0, 0, 0, 11]);
        assert!(out.chunks(160).all(|f| f.iter().all(|&s| s == f[0])), "whole frames");
    }

    #[test]
    fn a_timestamp_far_from_the_arrival_time_is_not_trusted() {
        let t0 = Instant::now();
        let mut a = Aligner::new(1, t0);
        let mut out = Vec::new();
        a.push_timed(0, &[1; 160], timed(0), t0 + ms(20));
        // the sender's timestamps jump 10 s ahead: re-anchored, joined on by arrival
        a.push_timed(0, &[2; 160], timed(80_000), t0 + ms(40));
        a.push_timed(0, &[3; 160], timed(80_160), t0 + ms(60));
        a.finish(&mut out);
        let frames: Vec<i16> = out.chunks(160).map(|f| f[0]).collect();
        assert_eq!(frames, vec![1, 2, 3]);
    }

    #[test]
    fn modes_and_names() {
        assert_eq!(RecordMode::Both.channel_of(LegId::B), Some(1));
        assert_eq!(RecordMode::Leg(LegId::B).channel_of(LegId::B), Some(0));
        assert_eq!(RecordMode::Leg(LegId::B).channel_of(LegId::A), None);
        let p = recording_path(Path::new("/data"), Date { year: 2026, month: 3, day: 7 }, "abc@host/../x");
        assert_eq!(p, PathBuf::from("/data/recordings/2026/03/07/abc_host_.._x.wav"));
        assert_eq!(temporary_path(&p), PathBuf::from("/data/recordings/2026/03/07/.abc_host_.._x.wav.part"));
        assert_eq!(sanitize("..."), "recording");
    }
}
