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

/// Aligns 8 kHz audio of one or two channels on the wall clock.
#[derive(Debug, Clone)]
pub struct Aligner {
    start: Instant,
    /// Invariant: `bufs[c][0]` is the sample at timeline position `flushed`.
    bufs: Vec<Vec<i16>>,
    flushed: u64,
}

impl Aligner {
    /// Starts the timeline at `now`.
    pub fn new(channels: usize, now: Instant) -> Self {
        Aligner { start: now, bufs: vec![Vec::new(); channels.clamp(1, 2)], flushed: 0 }
    }

    fn position(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_micros() as u64) * u64::from(RATE) / 1_000_000
    }

    /// Adds `pcm` that arrived at `now` (so it ends about now) to a channel.
    pub fn push(&mut self, channel: usize, pcm: &[i16], now: Instant) {
        let pos_now = self.position(now);
        let Some(buf) = self.bufs.get_mut(channel) else { return };
        let end = self.flushed + buf.len() as u64;
        let expected_start = pos_now.saturating_sub(pcm.len() as u64);
        if end + GAP_TOLERANCE < expected_start {
            buf.resize((expected_start - self.flushed) as usize, 0);
        }
        if end > pos_now + MAX_AHEAD {
            return;
        }
        buf.extend_from_slice(pcm);
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
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .take(120)
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "recording".into() } else { s }
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
