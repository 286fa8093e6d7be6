//! The conference mixer, sans-IO: one room's N-way mix-minus on a 20 ms clock.
//!
//! Each participant's packets go into its own [`JitterBuffer`]; every 20 ms tick the room
//! takes one frame from each (decoded to linear PCM at the room's mixing rate, lost packets
//! concealed, silence when there is nothing), sums the talkers, and gives every participant
//! the sum *minus its own voice*, encoded in the codec it negotiated. Participants whose voice
//! is not in the sum (muted, or quiet this frame) all hear the same thing, so that mix is
//! encoded once per codec and shared; only the talkers, whose mixes differ, get an encode of
//! their own. Nothing allocates per tick: every buffer is sized when a participant joins.
//!
//! Talkers are told apart by a level gate with hangover ([`RoomConfig::talk_threshold`]):
//! a frame whose mean absolute amplitude reaches the threshold opens the participant's gate,
//! which stays open for [`RoomConfig::talk_hangover`] after the last loud frame. Only open
//! gates are mixed, so the open microphones of a large room do not add up to a noise floor,
//! and the gate gives the talking indication. A threshold of 0 mixes every frame.
//!
//! The sum is clipped softly (linear up to 3/4 of full scale, then a curve that approaches
//! full scale without reaching it), so several loud talkers distort gently instead of
//! wrapping around.
//!
//! Sharing one stateful encoder (Opus) among the listeners means a participant who starts
//! talking switches from the shared encoder's stream to its own encoder's: the decoder sees
//! a discontinuity at that moment, as with a lost packet. The saving is the point: a 30-party
//! room with a few talkers runs a few encoders, not 30.
//!
//! Driving a room (the socket layer does this; tests do it with made-up instants):
//! - inputs: [`Room::join`] / [`Room::leave`] / [`Room::set_muted`] / [`Room::set_codec`],
//!   [`Room::push`] for every audio packet of a participant, [`Room::announce`] for a prompt
//!   everybody hears, [`Room::start_recording`];
//! - [`Room::handle_timeout`] when [`Room::poll_timeout`] is reached; call it again until it
//!   returns `false`, and after each `true` send every [`Room::outputs`] frame to its
//!   participant (numbered on that participant's own output stream), then drain
//!   [`Room::poll_event`] and [`Room::poll_recording`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{AudioDecoder, AudioEncoder, CodecKind, CodecSpec, OpusSettings};
use crate::jitter::{JitterBuffer, JitterStats, Pop, Push};
use crate::player::{PlayRequest, Player, Prompt};
use crate::resample::Resampler;
use crate::{MediaError, Result};

/// The mixing period.
pub const TICK: Duration = Duration::from_millis(20);
const TICK_MS: u32 = 20;
/// How far behind schedule the room may fall (a stalled worker) before it skips ahead
/// instead of sending a burst.
const MAX_LAG: Duration = Duration::from_millis(100);
/// Room for one encoded frame.
const PAYLOAD_MAX: usize = 1500;
/// Recorded audio is handed out in blocks of this many ticks (200 ms).
const REC_BLOCK_TICKS: usize = 10;
/// Soft clipping: linear below this, curved above.
const KNEE: i32 = 24576;

/// A participant of a room (unique across the engine: the socket layer numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Tunables of one room.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Rate of the linear PCM that is mixed: 8000 (narrowband: G.711 needs no resampling) or
    /// 16000, 24000, 48000 (wideband for Opus participants; G.711 ones are resampled).
    pub mix_rate: u32,
    /// Most participants at once; 0 for no limit.
    pub max_members: usize,
    /// Mean absolute amplitude (of 32767) a frame needs to open the participant's gate; 0
    /// mixes every frame.
    pub talk_threshold: u16,
    /// How long a gate stays open after the last loud frame.
    pub talk_hangover: Duration,
    /// Packets a jitter buffer holds before it plays (2 = 40 ms at 20 ms packets).
    pub jitter_target: usize,
    /// Packets above which a jitter buffer drops back to its target.
    pub jitter_max: usize,
    /// Opus bit rate and complexity (the PCM rate is the mixing rate).
    pub opus: OpusSettings,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            mix_rate: 8000,
            max_members: 0,
            talk_threshold: 100,
            talk_hangover: Duration::from_millis(400),
            jitter_target: 2,
            jitter_max: 8,
            opus: OpusSettings::default(),
        }
    }
}

/// Something the room reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// A participant's gate opened (started talking) or closed.
    Talking {
        /// Who.
        participant: ParticipantId,
        /// Whether the gate is open now.
        talking: bool,
    },
    /// An announcement played to its end (or was stopped).
    AnnouncementFinished {
        /// The id [`Room::announce`] returned.
        id: u64,
    },
}

/// A participant as the room sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipantState {
    /// Who.
    pub id: ParticipantId,
    /// Muted: not heard, still hears.
    pub muted: bool,
    /// The gate is open (talking).
    pub talking: bool,
    /// The codec it hears.
    pub codec: CodecKind,
    /// Its packetisation.
    pub frame_ms: u32,
    /// Mean absolute amplitude of its last frame.
    pub level: u16,
    /// Its jitter buffer's counters.
    pub jitter: JitterStats,
}

/// One encoded frame for one participant, out of the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutFrame<'a> {
    /// Who receives it.
    pub participant: ParticipantId,
    /// Its codec (the participant's send codec when it joined or last changed).
    pub codec: CodecKind,
    /// The encoded payload.
    pub payload: &'a [u8],
    /// RTP timestamp units it covers.
    pub units: u32,
}

/// Linear up to [`KNEE`], then `KNEE + over·H/(over+H)` with `H = 32767 − KNEE`: continuous,
/// slope 1 at the knee, approaching but never reaching full scale.
pub fn soft_clip(x: i32) -> i16 {
    if (-KNEE..=KNEE).contains(&x) {
        return x as i16;
    }
    let head = i64::from(i16::MAX as i32 - KNEE);
    let over = i64::from(x.unsigned_abs()) - i64::from(KNEE);
    let y = (i64::from(KNEE) + over * head / (over + head)) as i16;
    if x < 0 {
        -y
    } else {
        y
    }
}

/// An encoder fed at the mixing rate: resamples to its codec's PCM rate and packs frames of
/// the participant's packetisation.
struct Enc {
    kind: CodecKind,
    encoder: AudioEncoder,
    resampler: Option<Resampler>,
    frame_samples: usize,
    units: u32,
    pending: Vec<i16>,
    payload: Vec<u8>,
    /// Invariant: the frames encoded by the last `feed`, as (offset, length) in `payload`.
    frames: Vec<(usize, usize)>,
    failures: u64,
}

impl Enc {
    fn new(codec: &CodecSpec, frame_ms: u32, mix_rate: u32, opus: &OpusSettings) -> Result<Self> {
        let encoder = AudioEncoder::new(codec, &OpusSettings { pcm_rate: mix_rate, ..*opus })?;
        let rate = encoder.pcm_rate();
        let resampler = if rate == mix_rate { None } else { Some(Resampler::new(mix_rate, rate)?) };
        let frame_samples = rate as usize * frame_ms as usize / 1000;
        if frame_samples == 0 {
            return Err(MediaError::Config(format!("a {frame_ms} ms frame is too short")));
        }
        let per_tick = (TICK_MS / frame_ms.max(1)) as usize + 1;
        Ok(Enc {
            kind: codec.kind,
            units: encoder.rtp_units(frame_samples),
            encoder,
            resampler,
            frame_samples,
            pending: Vec::with_capacity(frame_samples + rate as usize / 25 + 8),
            payload: vec![0; PAYLOAD_MAX * per_tick],
            frames: Vec::with_capacity(per_tick),
            failures: 0,
        })
    }

    /// Feeds one tick of mix and encodes the whole frames it completes.
    fn feed(&mut self, mix: &[i16]) {
        self.frames.clear();
        match &mut self.resampler {
            Some(r) => r.process_i16(mix, &mut self.pending),
            None => self.pending.extend_from_slice(mix),
        }
        let mut off = 0;
        while self.pending.len() >= self.frame_samples {
            if self.payload.len() - off < PAYLOAD_MAX {
                // more frames than a tick can hold (cannot happen with 10 ms or longer frames)
                self.pending.clear();
                break;
            }
            match self.encoder.encode(&self.pending[..self.frame_samples], &mut self.payload[off..off + PAYLOAD_MAX]) {
                Ok(n) => {
                    self.frames.push((off, n));
                    off += n;
                }
                Err(_) => self.failures += 1,
            }
            self.pending.drain(..self.frame_samples);
        }
    }
}

/// A decoder of one codec a participant sends, with its resampler to the mixing rate.
struct Dec {
    kind: CodecKind,
    decoder: AudioDecoder,
    resampler: Option<Resampler>,
}

impl Dec {
    fn new(kind: CodecKind, mix_rate: u32, opus: &OpusSettings) -> Result<Self> {
        let spec = match kind {
            CodecKind::Pcmu => CodecSpec::pcmu(),
            CodecKind::Pcma => CodecSpec::pcma(),
            CodecKind::Opus => CodecSpec::opus(111),
            CodecKind::TelephoneEvent => return Err(MediaError::UnsupportedCodec("telephone-event is not audio".into())),
        };
        let decoder = AudioDecoder::new(&spec, &OpusSettings { pcm_rate: mix_rate, ..*opus })?;
        let rate = decoder.pcm_rate();
        let resampler = if rate == mix_rate { None } else { Some(Resampler::new(rate, mix_rate)?) };
        Ok(Dec { kind, decoder, resampler })
    }

    fn append(&mut self, pcm: &[i16], fifo: &mut Vec<i16>) {
        match &mut self.resampler {
            Some(r) => r.process_i16(pcm, fifo),
            None => fifo.extend_from_slice(pcm),
        }
    }
}

struct Member {
    id: ParticipantId,
    muted: bool,
    talking: bool,
    hangover: u32,
    /// Whether this tick's input is in the sum.
    contributing: bool,
    level: u16,
    jb: JitterBuffer,
    decoders: Vec<Dec>,
    /// The decoder of the last packet and its length in samples, for concealing a loss.
    last: Option<(usize, usize)>,
    /// Decoded audio at the mixing rate not yet mixed.
    fifo: Vec<i16>,
    /// Invariant after a tick's input phase: exactly one frame at the mixing rate.
    input: Vec<i16>,
    frame_ms: u32,
    own: Enc,
    undecodable: u64,
}

impl Member {
    /// Takes one frame from the jitter buffer into `input`; returns how many of its samples
    /// are real audio (the rest is silence).
    fn fill(&mut self, n: usize, scratch: &mut Vec<i16>) -> usize {
        self.input.clear();
        if self.muted {
            self.input.resize(n, 0);
            return 0;
        }
        while self.fifo.len() < n {
            match self.jb.pop() {
                Pop::Packet { codec, payload } => {
                    let Some(di) = self.decoders.iter().position(|d| d.kind == codec) else { continue };
                    scratch.clear();
                    let dec = &mut self.decoders[di];
                    match dec.decoder.decode(payload, 0, scratch) {
                        Ok(k) => {
                            self.last = Some((di, k));
                            dec.append(scratch, &mut self.fifo);
                        }
                        Err(_) => self.undecodable += 1,
                    }
                }
                Pop::Lost => {
                    let Some((di, k)) = self.last else { continue };
                    scratch.clear();
                    let dec = &mut self.decoders[di];
                    if dec.decoder.decode(&[], k, scratch).is_err() {
                        scratch.clear();
                        scratch.resize(k, 0);
                    }
                    dec.append(scratch, &mut self.fifo);
                }
                Pop::Empty => break,
            }
        }
        let take = n.min(self.fifo.len());
        self.input.extend_from_slice(&self.fifo[..take]);
        self.fifo.drain(..take);
        self.input.resize(n, 0);
        take
    }

    fn state(&self) -> ParticipantState {
        ParticipantState {
            id: self.id,
            muted: self.muted,
            talking: self.talking,
            codec: self.own.kind,
            frame_ms: self.frame_ms,
            level: self.level,
            jitter: self.jb.stats(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Src {
    /// Frame `k` of the member's own encoder.
    Own(usize),
    /// Frame `k` of shared encoder `s`.
    Shared(usize, usize),
}

struct Rec {
    resampler: Option<Resampler>,
    block: Vec<i16>,
}

/// A background track (announcements, music while alone) with its resampler to the mixing rate.
struct Track {
    player: Option<Player>,
    resampler: Option<Resampler>,
}

impl Track {
    fn new(mix_rate: u32) -> Result<Self> {
        Ok(Track { player: None, resampler: if mix_rate == 8000 { None } else { Some(Resampler::new(8000, mix_rate)?) } })
    }

    /// The next 20 ms of the track at the mixing rate into `out`, if one is due; `None` when
    /// the player produced nothing. Sets `finished` when it played its last frame.
    fn frame(&mut self, at: Instant, pcm8k: &mut Vec<i16>, out: &mut Vec<i16>) -> Option<bool> {
        let p = self.player.as_mut()?;
        pcm8k.clear();
        if !p.poll_frame(at, 160, TICK, pcm8k) {
            return None;
        }
        out.clear();
        match &mut self.resampler {
            Some(r) => r.process_i16(pcm8k, out),
            None => out.extend_from_slice(pcm8k),
        }
        Some(p.is_finished())
    }
}

/// One conference room. See the module documentation for how to drive it.
pub struct Room {
    cfg: RoomConfig,
    /// Samples per tick at the mixing rate.
    frame: usize,
    members: Vec<Member>,
    /// Encoders of the shared mix (everyone who talks), one per codec, 20 ms frames.
    shared: Vec<Enc>,
    shared_fed: Vec<bool>,
    next_tick: Option<Instant>,
    full: Vec<i32>,
    full16: Vec<i16>,
    mix16: Vec<i16>,
    scratch: Vec<i16>,
    pcm8k: Vec<i16>,
    track_pcm: Vec<i16>,
    announcer: Track,
    announcements: VecDeque<(u64, PlayRequest)>,
    announcing: u64,
    next_announcement: u64,
    music: Track,
    music_prompt: Option<Prompt>,
    recording: Option<Rec>,
    rec_blocks: VecDeque<Vec<i16>>,
    events: VecDeque<RoomEvent>,
    outputs: Vec<(usize, Src)>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("members", &self.members.len()).field("mix_rate", &self.cfg.mix_rate).finish_non_exhaustive()
    }
}

impl Room {
    /// An empty room.
    pub fn new(cfg: RoomConfig) -> Result<Self> {
        if ![8000, 16000, 24000, 48000].contains(&cfg.mix_rate) {
            return Err(MediaError::Config(format!("conference mixing rate {} Hz: use 8000, 16000, 24000 or 48000", cfg.mix_rate)));
        }
        let frame = cfg.mix_rate as usize / 50;
        Ok(Room {
            frame,
            members: Vec::new(),
            shared: Vec::new(),
            shared_fed: Vec::new(),
            next_tick: None,
            full: vec![0; frame],
            full16: vec![0; frame],
            mix16: vec![0; frame],
            scratch: Vec::with_capacity(cfg.mix_rate as usize * 120 / 1000),
            pcm8k: Vec::with_capacity(160),
            track_pcm: Vec::with_capacity(frame + 8),
            announcer: Track::new(cfg.mix_rate)?,
            announcements: VecDeque::new(),
            announcing: 0,
            next_announcement: 1,
            music: Track::new(cfg.mix_rate)?,
            music_prompt: None,
            recording: None,
            rec_blocks: VecDeque::new(),
            events: VecDeque::with_capacity(16),
            outputs: Vec::new(),
            cfg,
        })
    }

    /// The room's configuration.
    pub fn config(&self) -> &RoomConfig {
        &self.cfg
    }

    /// Participants in the room.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether `id` is in the room.
    pub fn contains(&self, id: ParticipantId) -> bool {
        self.members.iter().any(|m| m.id == id)
    }

    fn member(&mut self, id: ParticipantId) -> Result<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id).ok_or(MediaError::NotInConference)
    }

    fn ensure_shared(&mut self, codec: &CodecSpec) -> Result<()> {
        if !self.shared.iter().any(|e| e.kind == codec.kind) {
            self.shared.push(Enc::new(codec, TICK_MS, self.cfg.mix_rate, &self.cfg.opus)?);
            self.shared_fed.push(false);
        }
        Ok(())
    }

    /// Adds a participant that hears `codec` in `frame_ms` frames (its leg's send codec and
    /// packetisation). Refused when the room is full, the id is taken or the codec is not audio.
    pub fn join(&mut self, id: ParticipantId, codec: &CodecSpec, frame_ms: u32, muted: bool, now: Instant) -> Result<()> {
        if self.contains(id) {
            return Err(MediaError::Config(format!("participant {id} is in the room already")));
        }
        if self.cfg.max_members > 0 && self.members.len() >= self.cfg.max_members {
            return Err(MediaError::ConferenceFull { max: self.cfg.max_members });
        }
        let own = Enc::new(codec, frame_ms, self.cfg.mix_rate, &self.cfg.opus)?;
        if frame_ms == TICK_MS {
            self.ensure_shared(codec)?;
        }
        let n = self.frame;
        self.members.push(Member {
            id,
            muted,
            talking: false,
            hangover: 0,
            contributing: false,
            level: 0,
            jb: JitterBuffer::new(self.cfg.jitter_target, self.cfg.jitter_max),
            decoders: Vec::with_capacity(2),
            last: None,
            // one frame short of a tick plus the longest packet (120 ms)
            fifo: Vec::with_capacity(n + self.cfg.mix_rate as usize * 120 / 1000),
            input: Vec::with_capacity(n),
            frame_ms,
            own,
            undecodable: 0,
        });
        self.outputs.reserve(self.members.len() * 3);
        if self.next_tick.is_none() {
            self.next_tick = Some(now);
        }
        Ok(())
    }

    /// Removes a participant; `false` if it was not in the room. An empty room stops ticking.
    pub fn leave(&mut self, id: ParticipantId) -> bool {
        let Some(i) = self.members.iter().position(|m| m.id == id) else { return false };
        self.members.remove(i);
        self.outputs.clear();
        if self.members.is_empty() {
            self.next_tick = None;
        }
        true
    }

    /// Mutes or unmutes a participant: muted, its packets are dropped unheard; it still hears
    /// the room. Returns whether anything changed.
    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> Result<bool> {
        let m = self.member(id)?;
        if m.muted == muted {
            return Ok(false);
        }
        m.muted = muted;
        m.jb.reset();
        m.fifo.clear();
        m.contributing = false;
        let stopped = muted && std::mem::take(&mut m.talking);
        if stopped {
            self.events.push_back(RoomEvent::Talking { participant: id, talking: false });
        }
        Ok(true)
    }

    /// Changes the codec or packetisation a participant hears (its leg was re-negotiated).
    pub fn set_codec(&mut self, id: ParticipantId, codec: &CodecSpec, frame_ms: u32) -> Result<()> {
        let (mix_rate, opus) = (self.cfg.mix_rate, self.cfg.opus);
        let m = self.member(id)?;
        if m.own.kind == codec.kind && m.frame_ms == frame_ms {
            return Ok(());
        }
        m.own = Enc::new(codec, frame_ms, mix_rate, &opus)?;
        m.frame_ms = frame_ms;
        if frame_ms == TICK_MS {
            self.ensure_shared(codec)?;
        }
        self.outputs.clear();
        Ok(())
    }

    /// Queues one audio packet of a participant (`codec` is what its payload type says).
    /// `None` when the packet is not taken: unknown participant, muted, or a codec that
    /// cannot be decoded.
    pub fn push(&mut self, id: ParticipantId, codec: CodecKind, seq: u16, payload: &[u8]) -> Option<Push> {
        let (mix_rate, opus) = (self.cfg.mix_rate, self.cfg.opus);
        let m = self.members.iter_mut().find(|m| m.id == id)?;
        if m.muted {
            return None;
        }
        if !m.decoders.iter().any(|d| d.kind == codec) {
            match Dec::new(codec, mix_rate, &opus) {
                Ok(d) => m.decoders.push(d),
                Err(_) => {
                    m.undecodable += 1;
                    return None;
                }
            }
        }
        Some(m.jb.push(seq, codec, payload))
    }

    /// Plays a prompt into the room: everybody hears it (and the recording has it). Queued
    /// behind announcements already playing. Returns the id
    /// [`RoomEvent::AnnouncementFinished`] carries.
    pub fn announce(&mut self, req: PlayRequest) -> u64 {
        let id = self.next_announcement;
        self.next_announcement += 1;
        self.announcements.push_back((id, req));
        id
    }

    /// Stops the announcement playing and drops the queued ones.
    pub fn stop_announcements(&mut self) {
        for (id, _) in self.announcements.drain(..) {
            self.events.push_back(RoomEvent::AnnouncementFinished { id });
        }
        if self.announcer.player.take().is_some() {
            self.events.push_back(RoomEvent::AnnouncementFinished { id: self.announcing });
        }
    }

    /// A track looped to a participant while it is alone in the room (not recorded); `None`
    /// for silence.
    pub fn set_music(&mut self, track: Option<Prompt>) {
        self.music.player = None;
        self.music_prompt = track;
    }

    /// Starts recording the mix (everybody plus announcements, 8 kHz mono); blocks come out
    /// of [`Room::poll_recording`].
    pub fn start_recording(&mut self) -> Result<()> {
        self.stop_recording();
        let resampler = if self.cfg.mix_rate == crate::record::RATE { None } else { Some(Resampler::new(self.cfg.mix_rate, crate::record::RATE)?) };
        self.recording = Some(Rec { resampler, block: Vec::with_capacity(Self::rec_block_len()) });
        Ok(())
    }

    fn rec_block_len() -> usize {
        crate::record::RATE as usize / 50 * REC_BLOCK_TICKS + 8
    }

    /// Stops recording; the rest of the audio is queued for [`Room::poll_recording`].
    pub fn stop_recording(&mut self) {
        if let Some(r) = self.recording.take()
            && !r.block.is_empty()
        {
            self.rec_blocks.push_back(r.block);
        }
    }

    /// Whether the mix is being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The participants, in the order they joined.
    pub fn participants(&self) -> impl Iterator<Item = ParticipantState> + '_ {
        self.members.iter().map(Member::state)
    }

    /// One participant.
    pub fn participant(&self, id: ParticipantId) -> Option<ParticipantState> {
        self.members.iter().find(|m| m.id == id).map(Member::state)
    }

    /// When the next tick is due; `None` while the room is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Runs one tick if one is due at `now`; returns whether it did (then read
    /// [`Room::outputs`] before calling again).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let Some(due) = self.next_tick else { return false };
        if now < due {
            return false;
        }
        let at = if now.saturating_duration_since(due) > MAX_LAG { now } else { due };
        self.next_tick = Some(at + TICK);
        self.tick(at);
        true
    }

    /// The frames of the last tick, one (or, for 10 ms packetisation, two) per participant
    /// that has a whole frame to send.
    pub fn outputs(&self) -> impl Iterator<Item = OutFrame<'_>> + '_ {
        self.outputs.iter().filter_map(|&(i, src)| {
            let m = self.members.get(i)?;
            let (enc, k) = match src {
                Src::Own(k) => (&m.own, k),
                Src::Shared(s, k) => (self.shared.get(s)?, k),
            };
            let &(off, len) = enc.frames.get(k)?;
            Some(OutFrame { participant: m.id, codec: enc.kind, payload: &enc.payload[off..off + len], units: enc.units })
        })
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// The next block of recorded mix (8 kHz mono), if any.
    pub fn poll_recording(&mut self) -> Option<Vec<i16>> {
        self.rec_blocks.pop_front()
    }

    /// Adds the next announcement frame into `full`, starting queued announcements.
    fn mix_announcement(&mut self, at: Instant) {
        loop {
            if self.announcer.player.is_none() {
                let Some((id, req)) = self.announcements.pop_front() else { return };
                self.announcing = id;
                self.announcer.player = Some(Player::new(id, req, at));
            }
            match self.announcer.frame(at, &mut self.pcm8k, &mut self.track_pcm) {
                Some(finished) => {
                    for (f, &s) in self.full.iter_mut().zip(&self.track_pcm) {
                        *f += i32::from(s);
                    }
                    if finished {
                        self.announcer.player = None;
                        self.events.push_back(RoomEvent::AnnouncementFinished { id: self.announcing });
                    }
                    return;
                }
                None => {
                    if self.announcer.player.as_ref().is_some_and(Player::is_finished) {
                        self.announcer.player = None;
                        self.events.push_back(RoomEvent::AnnouncementFinished { id: self.announcing });
                        continue;
                    }
                    return;
                }
            }
        }
    }

    fn tick(&mut self, at: Instant) {
        let n = self.frame;
        self.outputs.clear();
        let threshold = u32::from(self.cfg.talk_threshold);
        let hang_ticks = (self.cfg.talk_hangover.as_millis() / u128::from(TICK_MS)) as u32;

        // 1. one frame of input per participant, and its gate
        for m in &mut self.members {
            let real = m.fill(n, &mut self.scratch);
            let sum: u32 = m.input.iter().map(|s| u32::from(s.unsigned_abs())).sum();
            m.level = (sum / n.max(1) as u32).min(u32::from(u16::MAX)) as u16;
            let loud = real > 0 && u32::from(m.level) >= threshold;
            if loud {
                if !m.talking {
                    m.talking = true;
                    self.events.push_back(RoomEvent::Talking { participant: m.id, talking: true });
                }
                m.hangover = hang_ticks;
            } else if m.talking {
                if m.hangover > 0 {
                    m.hangover -= 1;
                } else {
                    m.talking = false;
                    self.events.push_back(RoomEvent::Talking { participant: m.id, talking: false });
                }
            }
            m.contributing = !m.muted && m.talking && real > 0;
        }

        // 2. the sum of the talkers and the announcement
        self.full.fill(0);
        for m in self.members.iter().filter(|m| m.contributing) {
            for (f, &s) in self.full.iter_mut().zip(&m.input) {
                *f += i32::from(s);
            }
        }
        self.mix_announcement(at);
        for (o, &f) in self.full16.iter_mut().zip(&self.full) {
            *o = soft_clip(f);
        }

        // 3. the recording takes the room's sum
        if let Some(rec) = self.recording.as_mut() {
            match &mut rec.resampler {
                Some(r) => r.process_i16(&self.full16, &mut rec.block),
                None => rec.block.extend_from_slice(&self.full16),
            }
            if rec.block.len() >= crate::record::RATE as usize / 50 * REC_BLOCK_TICKS {
                let block = std::mem::replace(&mut rec.block, Vec::with_capacity(Self::rec_block_len()));
                self.rec_blocks.push_back(block);
            }
        }

        // 4. music for a participant alone in the room
        if self.members.len() == 1 {
            if let Some(track) = &self.music_prompt
                && self.music.player.is_none()
            {
                self.music.player = Some(Player::new(0, PlayRequest::music_on_hold(track.clone()), at));
            }
            if self.music.frame(at, &mut self.pcm8k, &mut self.track_pcm).is_some() {
                for ((f, o), &s) in self.full.iter_mut().zip(self.full16.iter_mut()).zip(&self.track_pcm) {
                    *f += i32::from(s);
                    *o = soft_clip(*f);
                }
            }
        } else {
            self.music.player = None;
        }

        // 5. what everyone hears, in its codec: talkers the sum minus themselves, everyone
        //    else the shared sum, encoded once per codec
        let Room { members, shared, shared_fed, full, full16, mix16, outputs, .. } = self;
        shared_fed.iter_mut().for_each(|f| *f = false);
        for (i, m) in members.iter_mut().enumerate() {
            if m.contributing {
                for ((o, &f), &s) in mix16.iter_mut().zip(full.iter()).zip(&m.input) {
                    *o = soft_clip(f - i32::from(s));
                }
                m.own.feed(mix16);
                outputs.extend((0..m.own.frames.len()).map(|k| (i, Src::Own(k))));
            } else if m.frame_ms == TICK_MS {
                let Some(s) = shared.iter().position(|e| e.kind == m.own.kind) else { continue };
                if !shared_fed[s] {
                    shared[s].feed(full16);
                    shared_fed[s] = true;
                }
                outputs.extend((0..shared[s].frames.len()).map(|k| (i, Src::Shared(s, k))));
            } else {
                m.own.feed(full16);
                outputs.extend((0..m.own.frames.len()).map(|k| (i, Src::Own(k))));
            }
        }
    }
}

#[cfg(test)]
#[path = "mixer_tests.rs"]
mod tests;
