//! Conference rooms on loopback: real UDP phones (PCMU, PCMA, Opus) in one room, each
//! sending its own tone; what each hears is measured with the Goertzel algorithm.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use media::codec::{AudioDecoder, AudioEncoder};
use media::rtp::{self, RtpHeader, RtpPacket};
use media::*;

fn engine(range: (u16, u16), workers: usize) -> MediaEngine {
    let cfg = EngineConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        port_min: range.0,
        port_max: range.1,
        workers,
        min_free_disk: 1,
        data_dir: std::env::temp_dir().join(format!("flowpbx-media-conf-{}-{}", std::process::id(), range.0)),
        ..Default::default()
    };
    MediaEngine::new(cfg).unwrap()
}

const OPUS: OpusSettings = OpusSettings { pcm_rate: 16000, bitrate: 32000, complexity: 3 };

/// A phone: its socket, codec, tone, and its RTP state (kept across phases).
struct Phone {
    sock: UdpSocket,
    spec: CodecSpec,
    freq: f64,
    enc: AudioEncoder,
    dec: AudioDecoder,
    seq: u16,
    ts: u32,
    phase: f64,
    ssrc: u32,
    /// Headers of everything received (for continuity checks).
    headers: Vec<RtpHeader>,
}

impl Phone {
    fn new(spec: CodecSpec, freq: f64, ssrc: u32) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let enc = AudioEncoder::new(&spec, &OPUS).unwrap();
        let dec = AudioDecoder::new(&spec, &OPUS).unwrap();
        Phone { sock, spec, freq, enc, dec, seq: 1000, ts: 0, phase: 0.0, ssrc, headers: Vec::new() }
    }

    fn codecs(&self) -> LegCodecs {
        LegCodecs::new(std::slice::from_ref(&self.spec), None).unwrap()
    }

    fn rate(&self) -> u32 {
        self.dec.pcm_rate()
    }

    /// Sends its tone (or silence) every 20 ms for `dur` to `to`; what it received meanwhile
    /// (read on a thread of its own, so a late sender never delays reading), decoded.
    ///
    /// It goes on past `dur` (up to 5×) until every phone of the phase has received `dur`
    /// worth of packets (`ready` counts those that have), so a machine too loaded to keep
    /// time stretches the phase instead of starving the measurement.
    fn run(&mut self, to: SocketAddr, dur: Duration, silent: bool, want: bool, ready: &AtomicUsize, phones: usize) -> Vec<i16> {
        let rate = self.enc.pcm_rate() as usize;
        let n = rate / 50;
        let units = self.enc.rtp_units(n);
        let start = Instant::now();
        let rx = self.sock.try_clone().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let received = std::thread::scope(|s| {
            let enough = (dur.as_millis() / 20) as usize * 9 / 10;
            if !want {
                ready.fetch_add(1, Ordering::AcqRel);
            }
            let go_on = move || {
                let t = start.elapsed();
                t < dur || (ready.load(Ordering::Acquire) < phones && t < dur * 5)
            };
            let reader = s.spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                while go_on() {
                    if let Ok((k, _)) = rx.recv_from(&mut buf) {
                        got.push(buf[..k].to_vec());
                        if want && got.len() == enough {
                            ready.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                }
                got
            });
            let mut next = start;
            while go_on() {
                let pcm: Vec<i16> = (0..n)
                    .map(|_| {
                        let v = if silent { 0.0 } else { 8000.0 * self.phase.sin() };
                        self.phase += 2.0 * std::f64::consts::PI * self.freq / rate as f64;
                        v as i16
                    })
                    .collect();
                let mut payload = [0u8; 1500];
                let len = self.enc.encode(&pcm, &mut payload).unwrap();
                let mut p = vec![0u8; 12 + len];
                rtp::build(
                    &RtpHeader { marker: false, payload_type: self.spec.pt, sequence: self.seq, timestamp: self.ts, ssrc: self.ssrc },
                    &payload[..len],
                    &mut p,
                )
                .unwrap();
                self.sock.send_to(&p, to).unwrap();
                self.seq = self.seq.wrapping_add(1);
                self.ts = self.ts.wrapping_add(units);
                next += Duration::from_millis(20);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            reader.join().unwrap()
        });
        let mut heard = Vec::new();
        for b in received {
            if let Ok(pkt) = RtpPacket::parse(&b) {
                self.headers.push(pkt.header);
                let _ = self.dec.decode(pkt.payload, 0, &mut heard);
            }
        }
        heard
    }
}

/// Amplitude of `freq` in `x` (Hann-windowed Goertzel), skipping the first 300 ms (the
/// jitter buffers filling, packets queued before the phone listened).
fn tone(x: &[i16], rate: u32, freq: f64) -> f64 {
    tone_after(x, rate, freq, 300)
}

fn tone_after(x: &[i16], rate: u32, freq: f64, skip_ms: usize) -> f64 {
    let x = &x[(rate as usize * skip_ms / 1000).min(x.len())..];
    let n = x.len();
    if n < 400 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for (i, &v) in x.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
        let s = f64::from(v) * hann + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - c * s1 * s2;
    // a sine of amplitude A gives |X| = A·N/4 under a Hann window
    power.max(0.0).sqrt() * 4.0 / n as f64
}

/// Runs every phone for `dur` at once (longer on a loaded machine, see [`Phone::run`]);
/// what each heard.
fn talk(phones: &mut [Phone], targets: &[SocketAddr], dur: Duration, silent: &[bool]) -> Vec<Vec<i16>> {
    talk_expecting(phones, targets, dur, silent, &vec![true; silent.len()])
}

/// As [`talk`], for phones of which some (`want` false) are not expected to hear anything.
fn talk_expecting(phones: &mut [Phone], targets: &[SocketAddr], dur: Duration, silent: &[bool], want: &[bool]) -> Vec<Vec<i16>> {
    let ready = AtomicUsize::new(0);
    let n = phones.len();
    std::thread::scope(|s| {
        let ready = &ready;
        let handles: Vec<_> =
            phones.iter_mut().zip(targets).zip(silent).zip(want).map(|(((p, &t), &q), &w)| s.spawn(move || p.run(t, dur, q, w, ready, n))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn levels(p: &Phone, heard: &[i16], freqs: &[f64]) -> Vec<f64> {
    freqs.iter().map(|&f| tone(heard, p.rate(), f)).collect()
}

const FREQS: [f64; 3] = [440.0, 770.0, 1230.0];
/// A tone sent at amplitude 8000 and heard through the room measures 5000–8000 on a quiet
/// machine; gaps while a loaded machine falls behind lower it, hence the margin.
const LOUD: f64 = 1000.0;
const QUIET: f64 = 300.0;

async fn next_event(rx: &mut tokio::sync::broadcast::Receiver<ConferenceEvent>, want: impl Fn(&ConferenceEvent) -> bool) -> ConferenceEvent {
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match rx.recv().await {
                Ok(ev) if want(&ev) => return ev,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("events closed: {e}"),
            }
        }
    })
    .await
    .expect("conference event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_codecs_hear_each_other_not_themselves_mute_kick_and_record() {
    let e = engine((32000, 32099), 1);
    let mut phones =
        vec![Phone::new(CodecSpec::pcmu(), FREQS[0], 1), Phone::new(CodecSpec::pcma(), FREQS[1], 2), Phone::new(CodecSpec::opus(111), FREQS[2], 3)];
    let mut calls = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let call = e.create_session(&format!("conf-{i}")).unwrap();
        call.set_remote(LegId::A, RemoteMedia::new(Some(p.sock.local_addr().unwrap()), p.codecs()));
        calls.push(call);
    }
    let targets: Vec<SocketAddr> = calls.iter().map(|c| c.local_rtp(LegId::A)).collect();
    let room = e.conference("bridge-1", ConferenceSettings { max_participants: 3, record: true, ..Default::default() });
    let mut events = room.subscribe();
    let mut parts = Vec::new();
    for c in &calls {
        parts.push(room.join(c, LegId::A, JoinOptions::default()).await.unwrap());
    }
    let rec_path = match next_event(&mut events, |e| matches!(e, ConferenceEvent::RecordingStarted { .. })).await {
        ConferenceEvent::RecordingStarted { path } => path,
        _ => unreachable!(),
    };
    assert!(rec_path.to_string_lossy().contains("recordings"), "{rec_path:?}");
    assert_eq!(room.len(), 3);
    assert_eq!(e.conferences(), vec![ConferenceSummary { name: "bridge-1".into(), participants: 3, recording: true }]);
    // full: a fourth is refused
    let extra = e.create_session("conf-extra").unwrap();
    extra.set_remote(LegId::A, RemoteMedia::new(Some("127.0.0.1:9".parse().unwrap()), phones[0].codecs()));
    assert!(matches!(room.join(&extra, LegId::A, JoinOptions::default()).await, Err(MediaError::ConferenceFull { max: 3 })));

    // everyone talks: each hears the other two, not itself
    let heard = talk(&mut phones, &targets, Duration::from_millis(1500), &[false; 3]);
    for (i, (p, h)) in phones.iter().zip(&heard).enumerate() {
        let l = levels(p, h, &FREQS);
        for (k, &lv) in l.iter().enumerate() {
            if k == i {
                assert!(lv < QUIET, "phone {i} hears itself: {l:?}");
            } else {
                assert!(lv > LOUD, "phone {i} does not hear phone {k}: {l:?}");
            }
        }
    }
    // each phone's stream from FlowPBX: one SSRC, sequence +1, timestamps by the frame
    for (p, units) in phones.iter().zip([160u32, 160, 960]) {
        let h = &p.headers;
        assert!(h.len() > 20, "{}", h.len());
        assert!(h.iter().all(|x| x.ssrc == h[0].ssrc && x.payload_type == p.spec.pt));
        for w in h.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            // one frame on; more only if the room had to skip ahead on a stalled machine
            let step = w[1].timestamp.wrapping_sub(w[0].timestamp);
            assert!(step >= units && step % units == 0 && step < 48000, "timestamp step {step}");
        }
        let steady = h.windows(2).filter(|w| w[1].timestamp.wrapping_sub(w[0].timestamp) == units).count();
        assert!(steady * 10 >= (h.len() - 1) * 9, "timestamps mostly one frame apart");
    }
    let list = room.participants().await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().map(|p| p.codec).collect::<Vec<_>>(), [CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus]);
    assert!(list.iter().all(|p| p.talking && !p.muted), "{list:?}");
    assert_eq!(list[1].call_id, "conf-1");

    // phone 0 muted: the others lose its tone, it still hears them
    parts[0].set_muted(true).await.unwrap();
    next_event(&mut events, |e| matches!(e, ConferenceEvent::Muted { muted: true, .. })).await;
    let heard = talk(&mut phones, &targets, Duration::from_millis(1200), &[false; 3]);
    let l1 = levels(&phones[1], &heard[1], &FREQS);
    let l2 = levels(&phones[2], &heard[2], &FREQS);
    assert!(l1[0] < QUIET && l2[0] < QUIET, "muted phone still heard: {l1:?} {l2:?}");
    assert!(l1[2] > LOUD && l2[1] > LOUD, "{l1:?} {l2:?}");
    let l0 = levels(&phones[0], &heard[0], &FREQS);
    assert!(l0[1] > LOUD && l0[2] > LOUD, "muted phone hears nothing: {l0:?}");
    assert!(room.participants().await.unwrap()[0].muted);
    parts[0].set_muted(false).await.unwrap();

    // phone 2 kicked: told why, the others lose its tone
    let kicked = parts[2].id();
    room.kick(kicked).await.unwrap();
    assert_eq!(parts[2].left().await, LeaveReason::Kicked);
    assert!(
        matches!(next_event(&mut events, |e| matches!(e, ConferenceEvent::Left { .. })).await, ConferenceEvent::Left { participant, reason: LeaveReason::Kicked } if participant == kicked)
    );
    assert_eq!(room.len(), 2);
    assert!(matches!(room.kick(kicked).await, Err(MediaError::NotInConference)));
    let heard = talk_expecting(&mut phones, &targets, Duration::from_millis(1200), &[false; 3], &[true, true, false]);
    let l0 = levels(&phones[0], &heard[0], &FREQS);
    let l1 = levels(&phones[1], &heard[1], &FREQS);
    assert!(l0[1] > LOUD && l0[2] < QUIET, "{l0:?}");
    assert!(l1[0] > LOUD && l1[2] < QUIET, "{l1:?}");
    let before = phones[2].headers.len();
    let _ = talk_expecting(&mut phones[2..], &targets[2..], Duration::from_millis(300), &[false], &[false]);
    assert_eq!(
        phones[2].headers.len(),
        before,
        "the kicked phone still gets the room: {} samples, {:?}",
        heard[2].len(),
        &phones[2].headers[before.saturating_sub(3)..]
    );

    // the last two leave: the room closes and its recording holds the mix
    let p1 = parts.remove(1);
    p1.leave().await.unwrap();
    drop(parts);
    let closed = next_event(&mut events, |e| matches!(e, ConferenceEvent::Closed { .. })).await;
    assert_eq!(closed, ConferenceEvent::Closed { recording: Some(rec_path.clone()) });
    assert!(e.conferences().is_empty());
    let deadline = Instant::now() + Duration::from_secs(3);
    while !rec_path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wav = media::wav::decode(&std::fs::read(&rec_path).unwrap()).unwrap();
    assert_eq!((wav.format.channels, wav.format.rate), (1, 8000));
    // the first 1.5 s: all three talking
    let samples: Vec<i16> = wav.samples.iter().map(|&v| v as i16).collect();
    let first = &samples[..12000.min(samples.len())];
    for f in FREQS {
        assert!(tone(first, 8000, f) > LOUD, "recording lacks {f} Hz");
    }
    // the sessions are still alive and usable after the room
    for c in calls {
        c.close().await.unwrap();
    }
    drop(extra);
    let _ = std::fs::remove_dir_all(&e.config().data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_two_workers_share_a_room_and_a_hangup_leaves_it() {
    let e = engine((32100, 32199), 2);
    let mut phones = vec![Phone::new(CodecSpec::pcmu(), FREQS[0], 11), Phone::new(CodecSpec::opus(111), FREQS[2], 12)];
    let mut calls = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let call = e.create_session(&format!("xw-{i}")).unwrap();
        call.set_remote(LegId::A, RemoteMedia::new(Some(p.sock.local_addr().unwrap()), p.codecs()));
        calls.push(call);
    }
    let room = e.conference("cross", ConferenceSettings { mix_rate: 8000, ..Default::default() });
    let mut events = room.subscribe();
    let a = room.join(&calls[0], LegId::A, JoinOptions::default()).await.unwrap();
    // the second session was created on the other worker (least loaded): it moves to the room's
    // (a command sent while it moves reaches it wherever it is by then)
    let (b, stats) = tokio::join!(room.join(&calls[1], LegId::A, JoinOptions { muted: false, announce: None }), calls[1].stats());
    let mut b = b.unwrap();
    stats.unwrap();
    let targets: Vec<SocketAddr> = calls.iter().map(|c| c.local_rtp(LegId::A)).collect();
    let heard = talk(&mut phones, &targets, Duration::from_millis(1500), &[false, false]);
    let l0 = levels(&phones[0], &heard[0], &FREQS);
    let l1 = levels(&phones[1], &heard[1], &FREQS);
    assert!(l0[2] > LOUD && l0[0] < QUIET, "{l0:?}");
    let ssrcs: std::collections::BTreeSet<(u32, u8)> = phones[1].headers.iter().map(|h| (h.ssrc, h.payload_type)).collect();
    assert!(l1[0] > LOUD && l1[2] < QUIET, "{l1:?} heard {} samples, streams {ssrcs:?}, l0 {l0:?}", heard[1].len());
    // the moved session still answers its handle's commands
    let stats = calls[1].stats().await.unwrap();
    assert!(stats.a.received.packets > 20, "{}", stats.a.received.packets);
    assert_eq!(e.health().sessions, 2);

    // the first caller hangs up while in the room: it leaves, the room goes on
    let first = calls.remove(0);
    first.close().await.unwrap();
    assert!(
        matches!(next_event(&mut events, |e| matches!(e, ConferenceEvent::Left { .. })).await, ConferenceEvent::Left { participant, reason: LeaveReason::Hangup } if participant == a.id())
    );
    assert_eq!(room.len(), 1);
    drop(a);
    // closing the moved session (its handle's route points at the room's worker) ends the room
    let second = calls.remove(0);
    second.close().await.unwrap();
    assert_eq!(b.left().await, LeaveReason::Hangup);
    assert_eq!(next_event(&mut events, |e| matches!(e, ConferenceEvent::Closed { .. })).await, ConferenceEvent::Closed { recording: None });
    assert_eq!(e.health().sessions, 0);
    assert_eq!(e.health().port_pairs_in_use, 0);
    assert!(e.conferences().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_without_media_or_twice_in_is_refused() {
    let e = engine((32200, 32299), 1);
    let call = e.create_session("no-media").unwrap();
    let room = e.conference("r", ConferenceSettings::default());
    assert!(matches!(room.join(&call, LegId::A, JoinOptions::default()).await, Err(MediaError::Config(_))));
    assert!(room.is_empty());
    call.set_remote(LegId::A, RemoteMedia::new(Some("127.0.0.1:9".parse().unwrap()), LegCodecs::new(&[CodecSpec::pcmu()], None).unwrap()));
    let p = room.join(&call, LegId::A, JoinOptions::default()).await.unwrap();
    assert!(matches!(room.join(&call, LegId::A, JoinOptions::default()).await, Err(MediaError::Config(_))));
    assert_eq!(room.participants().await.unwrap().len(), 1);
    p.leave().await.unwrap();
    assert!(room.is_empty());
    assert!(room.participants().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_announced_talkers_reported_and_a_reinvite_changes_the_codec_heard() {
    let e = engine((32300, 32399), 1);
    let mut phones = vec![Phone::new(CodecSpec::pcmu(), FREQS[0], 21), Phone::new(CodecSpec::pcmu(), FREQS[1], 22)];
    let mut calls = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let call = e.create_session(&format!("ann-{i}")).unwrap();
        call.set_remote(LegId::A, RemoteMedia::new(Some(p.sock.local_addr().unwrap()), p.codecs()));
        calls.push(call);
    }
    let targets: Vec<SocketAddr> = calls.iter().map(|c| c.local_rtp(LegId::A)).collect();
    let room = e.conference("announced", ConferenceSettings { mix_rate: 8000, ..Default::default() });
    let mut events = room.subscribe();
    let first = room.join(&calls[0], LegId::A, JoinOptions::default()).await.unwrap();
    let beep = e.prompts().load(media::prompts::BEEP).unwrap();
    let second = room.join(&calls[1], LegId::A, JoinOptions { muted: true, announce: Some(beep) }).await.unwrap();
    assert!(
        matches!(next_event(&mut events, |e| matches!(e, ConferenceEvent::Joined { .. })).await, ConferenceEvent::Joined { participant, ref call_id, leg: LegId::A } if participant == first.id() && call_id == "ann-0")
    );
    // the first phone (silent) hears the join beep (1 kHz, 400 ms); the second joined muted
    let heard = talk(&mut phones, &targets, Duration::from_millis(800), &[true, false]);
    let beep_level = tone_after(&heard[0], 8000, 1000.0, 0);
    assert!(beep_level > 500.0, "no join announcement: {beep_level}");
    assert!(tone(&heard[0], 8000, FREQS[1]) < QUIET, "a muted joiner is heard");
    // unmuted and talking: reported, and heard
    second.set_muted(false).await.unwrap();
    let heard = talk(&mut phones, &targets, Duration::from_millis(800), &[true, false]);
    assert!(tone(&heard[0], 8000, FREQS[1]) > LOUD);
    assert!(
        matches!(next_event(&mut events, |e| matches!(e, ConferenceEvent::Talking { talking: true, .. })).await, ConferenceEvent::Talking { participant, .. } if participant == second.id())
    );
    // a re-INVITE moves the first phone to PCMA: the room follows
    phones[0] = Phone::new(CodecSpec::pcma(), FREQS[0], 23);
    calls[0].set_remote(LegId::A, RemoteMedia::new(Some(phones[0].sock.local_addr().unwrap()), phones[0].codecs()));
    let heard = talk(&mut phones, &targets, Duration::from_millis(1000), &[true, false]);
    assert!(phones[0].headers.iter().all(|h| h.payload_type == 8), "still PCMU after the re-INVITE");
    assert!(tone(&heard[0], 8000, FREQS[1]) > LOUD);
    assert_eq!(room.participants().await.unwrap()[0].codec, CodecKind::Pcma);
    drop((first, second));
    next_event(&mut events, |e| matches!(e, ConferenceEvent::Closed { .. })).await;
}
