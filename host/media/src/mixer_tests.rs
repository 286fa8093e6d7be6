//! Mixer tests: fake participants that send tones, a made-up clock, and the spectrum of what
//! each one hears.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::*;
use crate::negotiate::LegCodecs;
use crate::rtp::{self, RtpHeader, RtpPacket};
use crate::session::{RemoteMedia, Session, SessionConfig, StreamKind};
use crate::LegId;

/// A participant: sends a tone (or silence) in its codec, decodes what the room sends it.
struct Peer {
    id: ParticipantId,
    codec: CodecSpec,
    frame_ms: u32,
    pcm_rate: u32,
    enc: AudioEncoder,
    dec: AudioDecoder,
    freq: f64,
    amp: f64,
    sent: usize,
    seq: u16,
    heard: Vec<i16>,
    frames: Vec<(usize, u32)>,
}

impl Peer {
    /// A peer decoding what it hears at `listen_rate`.
    fn new(id: u64, codec: CodecSpec, freq: f64, pcm_rate: u32, listen_rate: u32) -> Self {
        let enc = AudioEncoder::new(&codec, &OpusSettings { pcm_rate, ..Default::default() }).unwrap();
        let dec = AudioDecoder::new(&codec, &OpusSettings { pcm_rate: listen_rate, ..Default::default() }).unwrap();
        Peer {
            id: ParticipantId(id),
            codec,
            frame_ms: 20,
            pcm_rate: enc.pcm_rate(),
            enc,
            dec,
            freq,
            amp: 4000.0,
            sent: 0,
            seq: 1000,
            heard: Vec::new(),
            frames: Vec::new(),
        }
    }

    fn join(&self, room: &mut Room, t0: Instant) {
        room.join(self.id, &self.codec, self.frame_ms, false, t0).unwrap();
    }

    /// The next 20 ms of its tone, encoded.
    fn next_packet(&mut self) -> (u16, Vec<u8>) {
        let n = self.pcm_rate as usize / 50;
        let pcm: Vec<i16> = (self.sent..self.sent + n)
            .map(|i| (self.amp * (2.0 * std::f64::consts::PI * self.freq * i as f64 / f64::from(self.pcm_rate)).sin()).round() as i16)
            .collect();
        self.sent += n;
        let mut buf = [0u8; 1500];
        let len = self.enc.encode(&pcm, &mut buf).unwrap();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        (seq, buf[..len].to_vec())
    }

    fn send(&mut self, room: &mut Room) {
        let (seq, payload) = self.next_packet();
        room.push(self.id, self.codec.kind, seq, &payload);
    }

    fn hear(&mut self, f: &OutFrame<'_>) {
        assert_eq!(f.codec, self.codec.kind);
        let n = self.dec.decode(f.payload, 0, &mut self.heard).unwrap();
        self.frames.push((n, f.units));
    }
}

/// Runs `ticks` ticks: every peer in `talkers` sends one packet per tick, then the room mixes
/// and each peer decodes what it gets.
fn drive(room: &mut Room, peers: &mut [Peer], talkers: &[usize], t0: Instant, from: usize, ticks: usize) {
    for i in from..from + ticks {
        let now = t0 + TICK * i as u32;
        for &t in talkers {
            peers[t].send(room);
        }
        while room.handle_timeout(now) {
            for f in room.outputs() {
                let p = peers.iter_mut().find(|p| p.id == f.participant).expect("a frame for a known participant");
                p.hear(&f);
            }
        }
    }
}

/// Amplitude of the `freq` component of `x` (Goertzel / one DFT bin).
fn amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        re += f64::from(v) * (w * i as f64).cos();
        im += f64::from(v) * (w * i as f64).sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

/// The steady part of what a peer heard: 0.5 s after the first 200 ms.
fn steady(p: &Peer, rate: u32) -> &[i16] {
    let start = rate as usize / 5;
    &p.heard[start..start + rate as usize / 2]
}

const FREQS: [f64; 3] = [500.0, 1100.0, 1700.0];

fn three(codecs: [CodecSpec; 3], mix_rate: u32) -> (Room, Vec<Peer>) {
    let room = Room::new(RoomConfig { mix_rate, ..Default::default() }).unwrap();
    let peers = codecs.into_iter().enumerate().map(|(i, c)| Peer::new(i as u64 + 1, c, FREQS[i], mix_rate, 8000)).collect();
    (room, peers)
}

/// Each peer hears the other two tones at about their amplitude and its own at most `leak`.
fn assert_mix_minus(peers: &[Peer], min_other: f64, max_own: f64) {
    for (i, p) in peers.iter().enumerate() {
        let x = steady(p, 8000);
        for (j, &f) in FREQS.iter().enumerate() {
            let a = amplitude(x, f, 8000);
            if i == j {
                assert!(a < max_own, "peer {i} ({:?}) hears itself at {f} Hz: amplitude {a:.1}", p.codec.kind);
            } else {
                assert!(a > min_other, "peer {i} ({:?}) hears peer {j} at {f} Hz only at {a:.1}", p.codec.kind);
            }
        }
    }
}

#[test]
fn each_participant_hears_the_other_two_and_not_itself() {
    let t0 = Instant::now();
    let (mut room, mut peers) = three([CodecSpec::pcmu(), CodecSpec::pcmu(), CodecSpec::pcmu()], 8000);
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0, 1, 2], t0, 0, 50);
    // one 20 ms frame per tick to each, 160 samples, 160 timestamp units
    for p in &peers {
        assert_eq!(p.frames.len(), 50);
        assert!(p.frames.iter().all(|&(n, units)| n == 160 && units == 160));
    }
    // G.711 is near lossless at these levels: the others at ~4000, itself under 0.5 %
    assert_mix_minus(&peers, 3800.0, 20.0);
    assert!(room.participants().all(|s| s.talking && !s.muted && s.level > 2000));
}

#[test]
fn pcma_pcmu_and_opus_participants_each_hear_the_others() {
    let t0 = Instant::now();
    let (mut room, mut peers) = three([CodecSpec::pcma(), CodecSpec::pcmu(), CodecSpec::opus(111)], 8000);
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0, 1, 2], t0, 0, 60);
    assert!(peers[2].frames.iter().all(|&(n, units)| n == 160 && units == 960), "Opus frames are 20 ms at the 48 kHz RTP clock");
    // Opus at 24 kbit/s keeps tones within a few per cent; its own tone never reaches it
    assert_mix_minus(&peers, 3000.0, 60.0);
}

#[test]
fn a_wideband_room_carries_what_narrowband_cannot() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig { mix_rate: 16000, ..Default::default() }).unwrap();
    // an Opus talker with a 5 kHz tone, an Opus listener and a PCMU listener (8 kHz)
    let mut talker = Peer::new(1, CodecSpec::opus(111), 5000.0, 16000, 16000);
    talker.amp = 6000.0;
    let mut peers = vec![talker, Peer::new(2, CodecSpec::opus(96), 0.0, 16000, 16000), Peer::new(3, CodecSpec::pcmu(), 0.0, 8000, 8000)];
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0], t0, 0, 60);
    let wide = amplitude(steady(&peers[1], 16000), 5000.0, 16000);
    assert!(wide > 3000.0, "the Opus listener hears the 5 kHz tone: {wide:.0}");
    // the G.711 listener's 8 kHz stream cannot hold it: the resampler filtered it out
    let narrow: f64 = peers[2].heard[1600..5600].iter().map(|&s| f64::from(s).abs()).sum::<f64>() / 4000.0;
    assert!(narrow < 50.0, "nothing above 4 kHz reaches PCMU: mean level {narrow:.0}");
    assert_eq!(peers[2].frames[10], (160, 160));
}

#[test]
fn the_sum_is_soft_clipped_never_wrapped() {
    // the curve: identity below the knee, monotonic, continuous, bounded
    assert_eq!(soft_clip(1234), 1234);
    assert_eq!(soft_clip(-KNEE), -KNEE as i16);
    assert!(soft_clip(KNEE + 1) >= KNEE as i16);
    let mut prev = soft_clip(-40 * 32768);
    for x in (-40 * 32768..40 * 32768).step_by(97) {
        let y = soft_clip(x);
        assert!(y >= prev, "monotonic at {x}");
        assert!(y.unsigned_abs() < 32767, "bounded at {x}");
        prev = y;
    }
    assert_eq!(soft_clip(i32::MAX), soft_clip(i32::MAX - 1));
    assert!(soft_clip(i32::MIN) < -32000);

    // two talkers near full scale, in phase: the listener gets a squashed peak, not a wrap
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let mut peers: Vec<Peer> = (0..3).map(|i| Peer::new(i + 1, CodecSpec::pcmu(), 400.0, 8000, 8000)).collect();
    peers[0].amp = 30000.0;
    peers[1].amp = 30000.0;
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0, 1], t0, 0, 30);
    let x = &peers[2].heard[800..4000];
    let reference: Vec<f64> = (0..8000).map(|i| (2.0 * std::f64::consts::PI * 400.0 * i as f64 / 8000.0).sin()).collect();
    // find the alignment, then check every sample keeps the sign of the sine: no wrap-around
    let lag = (0..20).max_by_key(|&l| x.iter().zip(&reference[l..]).map(|(&a, &b)| (f64::from(a) * b) as i64).sum::<i64>()).unwrap();
    let flips = x.iter().zip(&reference[lag..]).filter(|&(&a, &b)| b.abs() > 0.2 && (f64::from(a) * b) < 0.0).count();
    assert_eq!(flips, 0);
    let peak = x.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 30000, "loud: {peak}");
    // each talker hears the other alone: only the peaks above the knee are bent
    assert!(amplitude(&peers[0].heard[800..4000], 400.0, 8000) > 26000.0);
}

#[test]
fn a_muted_participant_is_not_heard_but_hears() {
    let t0 = Instant::now();
    let (mut room, mut peers) = three([CodecSpec::pcmu(), CodecSpec::pcma(), CodecSpec::pcmu()], 8000);
    peers[0].join(&mut room, t0);
    room.join(peers[1].id, &peers[1].codec, 20, true, t0).unwrap();
    peers[2].join(&mut room, t0);
    drive(&mut room, &mut peers, &[0, 1, 2], t0, 0, 50);
    for (i, p) in peers.iter().enumerate() {
        let heard_muted = amplitude(steady(p, 8000), FREQS[1], 8000);
        // 40 dB under the others: what is left is G.711's own distortion of their two tones
        assert!(heard_muted < 40.0, "peer {i} hears the muted one: {heard_muted:.0}");
    }
    // the muted one hears both others
    assert!(amplitude(steady(&peers[1], 8000), FREQS[0], 8000) > 3800.0);
    assert!(amplitude(steady(&peers[1], 8000), FREQS[2], 8000) > 3800.0);
    assert!(room.participant(peers[1].id).unwrap().muted);
    // unmuted: heard again (after its jitter buffer refills)
    assert!(room.set_muted(peers[1].id, false).unwrap());
    assert!(!room.set_muted(peers[1].id, false).unwrap());
    for p in &mut peers {
        p.heard.clear();
    }
    drive(&mut room, &mut peers, &[0, 1, 2], t0, 50, 50);
    // (A-law distorts the two-tone mix a little more than µ-law, as measured while muted)
    assert_mix_minus(&peers, 3800.0, 40.0);
    assert!(matches!(room.set_muted(ParticipantId(99), true), Err(MediaError::NotInConference)));
}

#[test]
fn reordered_packets_play_in_order_and_late_ones_are_concealed() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let mut peers: Vec<Peer> = (0..2).map(|i| Peer::new(i + 1, CodecSpec::pcmu(), 700.0, 8000, 8000)).collect();
    for p in &peers {
        p.join(&mut room, t0);
    }
    // the talker's 40 packets, sent with every pair swapped, packet 21 held back 5 ticks
    // (late) and packet 31 never sent (lost)
    let packets: Vec<(u16, Vec<u8>)> = (0..40).map(|_| peers[0].next_packet()).collect();
    let mut order: Vec<usize> = (0..40).map(|i| i ^ 1).filter(|&i| i != 21 && i != 31).collect();
    order.insert(25, 21);
    let mut late = Vec::new();
    for tick in 0..45usize {
        if let Some(&i) = order.get(tick) {
            let (seq, payload) = &packets[i];
            let pushed = room.push(peers[0].id, CodecKind::Pcmu, *seq, payload);
            if i == 21 {
                late.push(pushed);
            }
        }
        while room.handle_timeout(t0 + TICK * tick as u32) {
            for f in room.outputs() {
                if f.participant == peers[1].id {
                    peers[1].frames.push((f.payload.len(), f.units));
                    peers[1].heard.extend(f.payload.iter().map(|&c| i16::from(c)));
                }
            }
        }
    }
    assert_eq!(late, vec![Some(Push::Late)]);
    // the listener's payloads are the talker's, byte for byte (µ-law re-encodes exactly),
    // in sequence order, with silence where 21 and 31 were
    let silence = i16::from(crate::g711::linear_to_ulaw(0));
    let heard: Vec<&[i16]> = peers[1].heard.chunks(160).collect();
    let first = heard.iter().position(|f| f.iter().any(|&c| c != silence)).unwrap();
    for (k, (_, payload)) in packets.iter().enumerate().take(38) {
        let got = heard[first + k];
        if k == 21 || k == 31 {
            assert!(got.iter().all(|&c| c == silence), "packet {k} concealed with silence");
        } else {
            assert!(got.iter().zip(payload).all(|(&a, &b)| a == i16::from(b)), "packet {k} in its place");
        }
    }
    let j = room.participant(peers[0].id).unwrap().jitter;
    assert_eq!((j.late, j.lost), (1, 2));
}

#[test]
fn listeners_share_one_encode_and_talkers_get_their_own() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let codecs = [CodecSpec::pcmu(), CodecSpec::pcmu(), CodecSpec::pcmu(), CodecSpec::pcmu(), CodecSpec::pcma(), CodecSpec::opus(111), CodecSpec::opus(96)];
    let mut peers: Vec<Peer> = codecs.into_iter().enumerate().map(|(i, c)| Peer::new(i as u64 + 1, c, 600.0 + 200.0 * i as f64, 8000, 8000)).collect();
    for p in &peers {
        p.join(&mut room, t0);
    }
    // peers 0 and 1 talk; 2..6 listen
    drive(&mut room, &mut peers, &[0, 1], t0, 0, 10);
    for p in &peers[2..] {
        assert!(amplitude(&p.heard[480..1600], 600.0, 8000) > 3000.0 && amplitude(&p.heard[480..1600], 800.0, 8000) > 3000.0, "{:?} hears both", p.codec.kind);
    }
    for p in [0usize, 1] {
        peers[p].send(&mut room);
    }
    assert!(room.handle_timeout(t0 + TICK * 10));
    let frames: Vec<OutFrame<'_>> = room.outputs().collect();
    assert_eq!(frames.len(), 7);
    let by = |i: usize| frames.iter().find(|f| f.participant == peers[i].id).unwrap();
    // the talkers' mixes differ from each other and from the listeners'
    assert_ne!(by(0).payload, by(1).payload);
    assert_ne!(by(0).payload.as_ptr(), by(2).payload.as_ptr());
    // the PCMU listeners share one PCMU encode; the two Opus listeners share one Opus encode
    // though they number the codec differently; PCMA has its own
    assert_eq!(by(2).payload.as_ptr(), by(3).payload.as_ptr());
    assert_eq!(by(5).payload.as_ptr(), by(6).payload.as_ptr());
    assert_ne!(by(4).payload.as_ptr(), by(2).payload.as_ptr());
    assert_eq!((by(4).codec, by(5).codec), (CodecKind::Pcma, CodecKind::Opus));
}

#[test]
fn packetisation_other_than_20ms_is_reframed() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let mut peers = vec![
        Peer::new(1, CodecSpec::pcmu(), 500.0, 8000, 8000),
        Peer::new(2, CodecSpec::pcmu(), 0.0, 8000, 8000),
        Peer::new(3, CodecSpec::pcma(), 0.0, 8000, 8000),
    ];
    peers[1].frame_ms = 40;
    peers[2].frame_ms = 10;
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0], t0, 0, 50);
    assert_eq!(peers[1].frames.len(), 25);
    assert!(peers[1].frames.iter().all(|&f| f == (320, 320)));
    assert_eq!(peers[2].frames.len(), 100);
    assert!(peers[2].frames.iter().all(|&f| f == (80, 80)));
    for p in &peers[1..] {
        assert!(amplitude(steady(p, 8000), 500.0, 8000) > 3800.0);
    }
    // a re-negotiation to Opus 20 ms takes effect on the next tick
    room.set_codec(peers[1].id, &CodecSpec::opus(111), 20).unwrap();
    peers[0].send(&mut room);
    assert!(room.handle_timeout(t0 + TICK * 50));
    let f = room.outputs().find(|f| f.participant == peers[1].id).unwrap();
    assert_eq!((f.codec, f.units), (CodecKind::Opus, 960));
}

#[test]
fn announcements_reach_everyone_and_the_recording() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let mut peers: Vec<Peer> = (0..2).map(|i| Peer::new(i + 1, CodecSpec::pcmu(), 500.0, 8000, 8000)).collect();
    for p in &peers {
        p.join(&mut room, t0);
    }
    room.start_recording().unwrap();
    // a 300 ms 1 kHz beep while peer 0 talks
    let beep: Vec<i16> = (0..2400).map(|i| (5000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0).sin()) as i16).collect();
    let id = room.announce(PlayRequest::once(Prompt::from_samples("beep", beep)));
    drive(&mut room, &mut peers, &[0], t0, 0, 25);
    let events: Vec<RoomEvent> = std::iter::from_fn(|| room.poll_event()).collect();
    assert!(events.contains(&RoomEvent::AnnouncementFinished { id }));
    assert!(events.contains(&RoomEvent::Talking { participant: peers[0].id, talking: true }));
    // both hear the beep (the talker too); only the listener hears the talker
    for p in &peers {
        assert!(amplitude(&p.heard[..2400], 1000.0, 8000) > 4800.0);
    }
    assert!(amplitude(&peers[1].heard[800..2400], 500.0, 8000) > 3800.0);
    assert!(amplitude(&peers[0].heard[800..2400], 500.0, 8000) < 20.0);
    room.stop_recording();
    let rec: Vec<i16> = std::iter::from_fn(|| room.poll_recording()).flatten().collect();
    assert_eq!(rec.len(), 25 * 160);
    assert!(amplitude(&rec[..2400], 1000.0, 8000) > 4800.0);
    assert!(amplitude(&rec[800..2400], 500.0, 8000) > 3800.0);
}

#[test]
fn the_gate_reports_talking_and_keeps_noise_out() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig { talk_hangover: Duration::from_millis(100), ..Default::default() }).unwrap();
    let mut peers: Vec<Peer> = (0..3).map(|i| Peer::new(i + 1, CodecSpec::pcmu(), 300.0 + 400.0 * i as f64, 8000, 8000)).collect();
    peers[1].amp = 60.0; // quiet background noise: under the threshold
    for p in &peers {
        p.join(&mut room, t0);
    }
    drive(&mut room, &mut peers, &[0, 1], t0, 0, 20);
    assert!(amplitude(&peers[2].heard[800..3200], 700.0, 8000) < 5.0, "the quiet one is gated out");
    let talking: Vec<RoomEvent> = std::iter::from_fn(|| room.poll_event()).collect();
    assert_eq!(talking, vec![RoomEvent::Talking { participant: peers[0].id, talking: true }]);
    // peer 0 stops sending: its gate closes after the hangover (5 ticks) and the buffer's drain
    drive(&mut room, &mut peers, &[1], t0, 20, 12);
    let ev: Vec<RoomEvent> = std::iter::from_fn(|| room.poll_event()).collect();
    assert_eq!(ev, vec![RoomEvent::Talking { participant: peers[0].id, talking: false }]);
    // with the gate off (threshold 0) the quiet one is mixed too
    let mut open = Room::new(RoomConfig { talk_threshold: 0, ..Default::default() }).unwrap();
    for p in &mut peers {
        p.heard.clear();
        p.join(&mut open, t0);
    }
    drive(&mut open, &mut peers, &[0, 1], t0, 0, 50);
    assert!(amplitude(steady(&peers[2], 8000), 700.0, 8000) > 30.0);
}

#[test]
fn a_full_room_refuses_and_an_empty_one_stops_ticking() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig { max_members: 2, ..Default::default() }).unwrap();
    assert_eq!(room.poll_timeout(), None);
    room.join(ParticipantId(1), &CodecSpec::pcmu(), 20, false, t0).unwrap();
    assert_eq!(room.poll_timeout(), Some(t0));
    assert!(room.join(ParticipantId(1), &CodecSpec::pcmu(), 20, false, t0).is_err());
    room.join(ParticipantId(2), &CodecSpec::pcma(), 20, false, t0).unwrap();
    assert!(matches!(room.join(ParticipantId(3), &CodecSpec::pcmu(), 20, false, t0), Err(MediaError::ConferenceFull { max: 2 })));
    assert!(room.join(ParticipantId(4), &CodecSpec::telephone_event(101, 8000), 20, false, t0).is_err());
    assert!(room.handle_timeout(t0));
    assert!(!room.handle_timeout(t0 + Duration::from_millis(19)));
    assert_eq!(room.poll_timeout(), Some(t0 + TICK));
    // silence still flows to everyone (phones hang up on a silent stream)
    assert_eq!(room.outputs().count(), 2);
    assert!(room.leave(ParticipantId(1)));
    assert!(!room.leave(ParticipantId(1)));
    assert!(room.leave(ParticipantId(2)));
    assert!(room.is_empty());
    assert_eq!(room.poll_timeout(), None);
    assert!(room.push(ParticipantId(2), CodecKind::Pcmu, 1, &[0; 160]).is_none());
    assert!(Room::new(RoomConfig { mix_rate: 11025, ..Default::default() }).is_err());
    // a stalled worker: the room skips ahead instead of bursting
    room.join(ParticipantId(5), &CodecSpec::pcmu(), 20, false, t0).unwrap();
    assert!(room.handle_timeout(t0 + Duration::from_secs(1)));
    assert!(!room.handle_timeout(t0 + Duration::from_secs(1)));
    assert_eq!(room.poll_timeout(), Some(t0 + Duration::from_secs(1) + TICK));
}

#[test]
fn music_plays_to_a_lone_participant_only() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let music: Vec<i16> = (0..800).map(|i| (3000.0 * (2.0 * std::f64::consts::PI * 400.0 * f64::from(i) / 8000.0).sin()) as i16).collect();
    room.set_music(Some(Prompt::from_samples("moh", music)));
    room.start_recording().unwrap();
    let mut peers: Vec<Peer> = (0..2).map(|i| Peer::new(i + 1, CodecSpec::pcmu(), 900.0, 8000, 8000)).collect();
    peers[0].join(&mut room, t0);
    drive(&mut room, &mut peers, &[0], t0, 0, 25);
    assert!(amplitude(&peers[0].heard[..4000], 400.0, 8000) > 2900.0, "alone: music");
    peers[1].join(&mut room, t0);
    drive(&mut room, &mut peers, &[0], t0, 25, 25);
    assert!(amplitude(&peers[0].heard[4800..], 400.0, 8000) < 5.0, "company: no more music");
    assert!(amplitude(&peers[1].heard[800..], 900.0, 8000) > 3800.0);
    room.stop_recording();
    let rec: Vec<i16> = std::iter::from_fn(|| room.poll_recording()).flatten().collect();
    assert!(amplitude(&rec, 400.0, 8000) < 5.0, "the music is not recorded");
}

/// The room driving real sessions, as the worker does: every leg's stream keeps one SSRC and
/// consecutive numbers through joining, a prompt played to it, leaving and joining again.
#[test]
fn sessions_keep_their_numbering_through_join_prompt_and_leave() {
    let t0 = Instant::now();
    let mut room = Room::new(RoomConfig::default()).unwrap();
    let phones: Vec<SocketAddrV4> = (0..3).map(|i| SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10 + i), 4000)).collect();
    let mut sessions: Vec<Session> = (0..3)
        .map(|i| {
            let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 77 + i as u64);
            let codecs = LegCodecs::new(&[if i == 1 { CodecSpec::pcma() } else { CodecSpec::pcmu() }], None).unwrap();
            s.set_remote(LegId::A, RemoteMedia::new(Some(phones[i].into()), codecs), t0);
            s
        })
        .collect();
    let mut sent: Vec<Vec<RtpHeader>> = vec![Vec::new(); 3];
    let mut encoders: Vec<AudioEncoder> =
        (0..3).map(|i| AudioEncoder::new(&if i == 1 { CodecSpec::pcma() } else { CodecSpec::pcmu() }, &OpusSettings::default()).unwrap()).collect();
    let join = |room: &mut Room, s: &mut Session, i: usize, now: Instant| {
        let codecs = s.codecs(LegId::A).unwrap().clone();
        room.join(ParticipantId(i as u64 + 1), codecs.send_codec(), codecs.frame_ms(), false, now).unwrap();
        s.join_conference(LegId::A, i as u64 + 1);
    };
    for (i, s) in sessions.iter_mut().enumerate() {
        join(&mut room, s, i, t0);
    }
    let mut prompt_id = 0;
    for tick in 0..150u32 {
        let now = t0 + TICK * tick;
        // each phone sends one packet of tone; the session hands it to the room
        for (i, s) in sessions.iter_mut().enumerate() {
            let pcm: Vec<i16> = (0..160).map(|k| (3000.0 * ((k + 160 * tick as usize) as f64 * (0.3 + 0.2 * i as f64)).sin()) as i16).collect();
            let mut payload = [0u8; 160];
            encoders[i].encode(&pcm, &mut payload).unwrap();
            let pt = if i == 1 { 8 } else { 0 };
            let mut p = vec![0u8; 172];
            rtp::build(&RtpHeader { marker: false, payload_type: pt, sequence: tick as u16, timestamp: tick * 160, ssrc: 5 + i as u32 }, &payload, &mut p)
                .unwrap();
            let n = p.len();
            assert!(s.handle_datagram(LegId::A, StreamKind::Rtp, phones[i].into(), &mut p, n, now).is_none(), "a conference leg's audio is not relayed");
            if let Some(c) = s.take_conference_packet() {
                assert_eq!(c.tag, i as u64 + 1);
                room.push(ParticipantId(c.tag), c.codec, c.sequence, &p[c.payload]);
            }
        }
        // a prompt plays to phone 0 from 1 s to 1.4 s; phone 2 leaves at 1.6 s and is back at 2 s
        if tick == 50 {
            prompt_id = sessions[0].play(LegId::A, PlayRequest::once(Prompt::from_samples("p", vec![1000; 3200])), now);
        }
        if tick == 80 {
            room.leave(ParticipantId(3));
            sessions[2].leave_conference(LegId::A);
        }
        if tick == 100 {
            join(&mut room, &mut sessions[2], 2, now);
        }
        while room.handle_timeout(now) {
            for f in room.outputs() {
                let i = f.participant.0 as usize - 1;
                sessions[i].send_conference_frame(LegId::A, f.codec, f.payload, f.units, now);
            }
        }
        for (i, s) in sessions.iter_mut().enumerate() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            while let Some(t) = s.poll_transmit() {
                if t.stream == StreamKind::Rtp {
                    assert_eq!(t.to, SocketAddr::from(phones[i]));
                    sent[i].push(RtpPacket::parse(&t.data).unwrap().header);
                }
            }
        }
    }
    assert!(std::iter::from_fn(|| sessions[0].poll_event())
        .any(|e| matches!(e, crate::MediaEvent::PlaybackFinished { id, completed: true, .. } if id == prompt_id)));
    for (i, hdrs) in sent.iter().enumerate() {
        // phone 2 misses the 20 frames while it is out of the room
        assert!(hdrs.len() >= if i == 2 { 125 } else { 145 }, "phone {i}: {} packets", hdrs.len());
        assert!(hdrs.iter().all(|h| h.ssrc == hdrs[0].ssrc && h.payload_type == if i == 1 { 8 } else { 0 }));
        for w in hdrs.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1), "phone {i}: no sequence gap");
            let dt = w[1].timestamp.wrapping_sub(w[0].timestamp);
            // 160 per frame; across a switch (prompt, leave/rejoin) the elapsed time, with the marker bit
            assert!(dt == 160 || (w[1].marker && (160..=160 * 25).contains(&dt)), "phone {i}: timestamp step {dt}");
        }
        let markers = hdrs.iter().filter(|h| h.marker).count();
        // the first frame, and each return: after the prompt (phone 0), on rejoining (phone 2)
        assert_eq!(markers, [3, 1, 2][i], "phone {i}: a marker at each new source");
    }
}
