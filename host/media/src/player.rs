//! The prompt player: hands out 8 kHz PCM frames of a prompt, a sequence of prompts, or a
//! looping track (music on hold), each with the time it is due. The session encodes them in
//! the leg's codec and numbers them through the leg's [`crate::rewriter::OutputStream`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::wav;

/// A decoded prompt: 8 kHz mono 16-bit samples, shared cheaply.
#[derive(Clone, PartialEq, Eq)]
pub struct Prompt {
    name: Arc<str>,
    samples: Arc<[i16]>,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prompt({:?}, {} ms)", self.name, self.duration().as_millis())
    }
}

impl Prompt {
    /// A prompt from 8 kHz mono samples.
    pub fn from_samples(name: &str, samples: Vec<i16>) -> Self {
        Prompt { name: name.into(), samples: samples.into() }
    }

    /// A prompt from WAV bytes of any readable format (converted to 8 kHz mono).
    pub fn from_wav(name: &str, bytes: &[u8]) -> Result<Self> {
        Ok(Self::from_samples(name, wav::decode_internal(bytes)?))
    }

    /// The prompt's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The samples (8 kHz mono).
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// How long it plays.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 125)
    }
}

/// What to play to a leg.
#[derive(Debug, Clone)]
pub struct PlayRequest {
    /// Played one after the other without gaps (e.g. the digits of a number).
    pub prompts: Vec<Prompt>,
    /// Start again from the first prompt after the last (music on hold); stops only when
    /// stopped or interrupted.
    pub looped: bool,
    /// A DTMF digit from the leg stops the playback (the digit is still reported).
    pub interruptible: bool,
}

impl PlayRequest {
    /// One prompt, played once, not interruptible.
    pub fn once(prompt: Prompt) -> Self {
        PlayRequest { prompts: vec![prompt], looped: false, interruptible: false }
    }

    /// A sequence played once.
    pub fn sequence(prompts: Vec<Prompt>) -> Self {
        PlayRequest { prompts, looped: false, interruptible: false }
    }

    /// A track looped until stopped: music on hold.
    pub fn music_on_hold(track: Prompt) -> Self {
        PlayRequest { prompts: vec![track], looped: true, interruptible: false }
    }

    /// Sets whether a digit interrupts it.
    pub fn interruptible(mut self, yes: bool) -> Self {
        self.interruptible = yes;
        self
    }
}

/// How far behind schedule the player may fall (a stalled worker) before it skips ahead
/// instead of sending a burst.
const MAX_LAG: Duration = Duration::from_millis(100);

/// Plays one [`PlayRequest`].
#[derive(Debug, Clone)]
pub struct Player {
    id: u64,
    req: PlayRequest,
    index: usize,
    pos: usize,
    next_due: Instant,
    finished: bool,
}

impl Player {
    /// Starts playing at `now` (the first frame is due at once).
    pub fn new(id: u64, req: PlayRequest, now: Instant) -> Self {
        let finished = req.prompts.iter().all(|p| p.samples.is_empty());
        Player { id, req, index: 0, pos: 0, next_due: now, finished }
    }

    /// The playback id given at start.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether a digit stops it.
    pub fn is_interruptible(&self) -> bool {
        self.req.interruptible
    }

    /// Whether every sample was handed out.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// When the next frame is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then_some(self.next_due)
    }

    /// If a frame is due at `now`, appends its `frame_samples` samples to `out` (the last
    /// frame padded with silence) and schedules the next one `frame` later. Returns whether a
    /// frame was produced.
    pub fn poll_frame(&mut self, now: Instant, frame_samples: usize, frame: Duration, out: &mut Vec<i16>) -> bool {
        if self.finished || now < self.next_due {
            return false;
        }
        let mut need = frame_samples;
        while need > 0 {
            let Some(p) = self.req.prompts.get(self.index) else {
                if self.req.looped {
                    self.index = 0;
                    continue;
                }
                out.extend(std::iter::repeat_n(0, need));
                self.finished = true;
                break;
            };
            let take = need.min(p.samples.len() - self.pos);
            out.extend_from_slice(&p.samples[self.pos..self.pos + take]);
            self.pos += take;
            need -= take;
            if self.pos >= p.samples.len() {
                self.index += 1;
                self.pos = 0;
            }
        }
        if !self.req.looped && self.index >= self.req.prompts.len() {
            self.finished = true;
        }
        self.next_due += frame;
        if now.saturating_duration_since(self.next_due) > MAX_LAG {
            self.next_due = now;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(name: &str, n: usize, base: i16) -> Prompt {
        Prompt::from_samples(name, (0..n).map(|i| base + i as i16).collect())
    }

    #[test]
    fn frames_are_paced_and_the_tail_is_padded() {
        let t0 = Instant::now();
        let mut p = Player::new(1, PlayRequest::once(ramp("x", 400, 0)), t0);
        let mut out = Vec::new();
        let f = Duration::from_millis(20);
        assert!(p.poll_frame(t0, 160, f, &mut out));
        assert!(!p.poll_frame(t0 + Duration::from_millis(19), 160, f, &mut out));
        assert_eq!(p.poll_timeout(), Some(t0 + f));
        assert!(p.poll_frame(t0 + f, 160, f, &mut out));
        assert!(!p.is_finished());
        assert!(p.poll_frame(t0 + 2 * f, 160, f, &mut out));
        assert!(p.is_finished());
        assert_eq!(out.len(), 480);
        assert_eq!(out[399], 399);
        assert!(out[400..].iter().all(|&s| s == 0));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn sequences_are_gapless_and_loops_wrap() {
        let t0 = Instant::now();
        let seq = PlayRequest::sequence(vec![ramp("a", 100, 0), ramp("b", 100, 1000)]);
        let mut p = Player::new(2, seq, t0);
        let mut out = Vec::new();
        let f = Duration::from_millis(20);
        p.poll_frame(t0, 160, f, &mut out);
        assert_eq!(out[99], 99);
        assert_eq!(out[100], 1000);
        p.poll_frame(t0 + f, 160, f, &mut out);
        assert!(p.is_finished());

        let mut moh = Player::new(3, PlayRequest::music_on_hold(ramp("m", 240, 0)), t0);
        let mut out = Vec::new();
        for i in 0..10u32 {
            assert!(moh.poll_frame(t0 + f * i, 160, f, &mut out));
        }
        assert!(!moh.is_finished());
        assert_eq!(out[240], 0);
        assert_eq!(out[241], 1);
        assert_eq!(out[1599], (1599 % 240) as i16);
    }

    #[test]
    fn a_stall_skips_ahead_and_empty_prompts_finish() {
        let t0 = Instant::now();
        let f = Duration::from_millis(20);
        let mut p = Player::new(1, PlayRequest::music_on_hold(ramp("m", 8000, 0)), t0);
        let mut out = Vec::new();
        p.poll_frame(t0 + Duration::from_secs(1), 160, f, &mut out);
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        let e = Player::new(1, PlayRequest::music_on_hold(Prompt::from_samples("e", vec![])), t0);
        assert!(e.is_finished());
    }
}
