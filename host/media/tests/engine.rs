//! The socket layer on loopback: real UDP peers relayed through a session.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use media::dtmf::TelephoneEvent;
use media::rtp::{self, RtpHeader, RtpPacket};
use media::*;

fn engine(range: (u16, u16), tweak: impl FnOnce(&mut EngineConfig)) -> MediaEngine {
    let mut cfg = EngineConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        port_min: range.0,
        port_max: range.1,
        workers: 1,
        data_dir: std::env::temp_dir().join(format!("flowpbx-media-engine-{}-{}", std::process::id(), range.0)),
        ..Default::default()
    };
    tweak(&mut cfg);
    MediaEngine::new(cfg).unwrap()
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
    s
}

fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    rtp::build(&RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc }, payload, &mut b).unwrap();
    b
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut b = [0u8; 2048];
    let (n, from) = s.recv_from(&mut b).ok()?;
    Some((b[..n].to_vec(), from))
}

fn pcmu() -> LegCodecs {
    LegCodecs::new(&[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_between_two_peers_and_reclaims_ports() {
    let e = engine((31000, 31099), |_| {});
    let call = e.create_session("relay-test").unwrap();
    let (caller, callee) = (peer(), peer());
    // the callee's SDP is right; the caller's SDP names another port of its address (a NAT
    // that kept the IP): latching finds it after probation
    call.set_remote(LegId::A, RemoteMedia::new(Some("127.0.0.1:9".parse().unwrap()), pcmu()));
    call.set_remote(LegId::B, RemoteMedia::new(Some(callee.local_addr().unwrap()), pcmu()));
    call.bridge();
    let a_local = call.local_rtp(LegId::A);
    let b_local = call.local_rtp(LegId::B);
    assert_eq!(a_local.port() % 2, 0);
    assert_eq!(call.local_rtcp(LegId::A).port(), a_local.port() + 1);
    assert_eq!(e.health().port_pairs_in_use, 2);

    // the first three of four consecutive packets serve the probation: refused, not relayed
    callee.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    for i in 0..3u16 {
        caller.send_to(&pkt(0, 997 + i, 160 * u32::from(i), 0xabc, &[0xee; 160]), a_local).unwrap();
    }
    assert!(recv(&callee).is_none(), "a source on probation is not relayed");
    callee.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
    let mut seen = Vec::new();
    for i in 0..50u16 {
        caller.send_to(&pkt(0, 1000 + i, 160 * u32::from(i), 0xabc, &[i as u8; 160]), a_local).unwrap();
        let (b, from) = recv(&callee).expect("relayed packet");
        assert_eq!(from, b_local, "symmetric: sent from the B leg's advertised port");
        seen.push(RtpPacket::parse(&b).unwrap().header);
        assert_eq!(b[12], i as u8);
    }
    assert!(seen.iter().all(|h| h.ssrc == seen[0].ssrc && h.ssrc != 0xabc));
    for w in seen.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
    }
    // and back, to the caller's real (latched) address
    callee.send_to(&pkt(0, 1, 0, 0xdef, &[7; 160]), b_local).unwrap();
    let (b, from) = recv(&caller).expect("reverse direction");
    assert_eq!(from, a_local);
    assert_eq!(b[12], 7);

    let stats = call.stats().await.unwrap();
    assert_eq!((stats.a.received.packets, stats.a.refused), (50, 3));
    assert_eq!(stats.a.received.lost, 0);
    assert_eq!(stats.b.sent_packets, 50);
    assert_eq!(stats.b.received.packets, 1);
    let fin = call.close().await.unwrap();
    assert_eq!(fin.a.received.packets, 50);
    assert_eq!(e.health().port_pairs_in_use, 0);
    assert_eq!(e.health().sessions, 0);
    // the ports are closed: the engine no longer answers on them
    caller.send_to(&pkt(0, 2000, 0, 0xabc, &[0; 160]), a_local).unwrap();
    callee.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(recv(&callee).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_a_prompt_paced_at_20ms_and_reports_the_end() {
    let e = engine((31100, 31199), |_| {});
    let mut call = e.create_session("play-test").unwrap();
    let phone = peer();
    call.set_remote(LegId::A, RemoteMedia::new(Some(phone.local_addr().unwrap()), pcmu()));
    let beep = e.prompts().load(media::prompts::BEEP).unwrap();
    let expected = beep.samples().len().div_ceil(160);
    let id = call.play(LegId::A, PlayRequest::once(beep)).await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < expected {
        let (b, from) = recv(&phone).expect("prompt packet");
        assert_eq!(from, call.local_rtp(LegId::A));
        if b[1] & 0x7f == 0 {
            got.push((Instant::now(), RtpPacket::parse(&b).unwrap().header));
        }
    }
    let elapsed = got.last().unwrap().0 - start;
    // 400 ms of beep in 20 ms packets: paced, not burst
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(got[0].1.marker);
    for w in got.windows(2) {
        assert_eq!(w[1].1.sequence, w[0].1.sequence.wrapping_add(1));
        assert_eq!(w[1].1.timestamp, w[0].1.timestamp.wrapping_add(160));
    }
    let ev = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match call.next_event().await {
                Some(MediaEvent::PlaybackFinished { id: got, completed, .. }) => break (got, completed),
                Some(_) => continue,
                None => panic!("closed"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ev, (id, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_fires_media_timeout() {
    let e = engine((31200, 31299), |c| c.session.media_timeout = Duration::from_secs(1));
    let mut call = e.create_session("timeout-test").unwrap();
    let phone = peer();
    call.set_remote(LegId::A, RemoteMedia::new(Some(phone.local_addr().unwrap()), pcmu()));
    let started = Instant::now();
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(MediaEvent::MediaTimeout { leg, silent_for }) = call.next_event().await {
                break (leg, silent_for);
            }
        }
    })
    .await
    .expect("timeout event");
    assert_eq!(ev.0, LegId::A);
    assert!(ev.1 >= Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_from_rtp_and_sip_info_reach_the_listener() {
    let e = engine((31300, 31399), |_| {});
    let mut call = e.create_session("dtmf-test").unwrap();
    let phone = peer();
    call.set_remote(LegId::A, RemoteMedia::new(Some(phone.local_addr().unwrap()), pcmu()));
    let a_local = call.local_rtp(LegId::A);
    for (i, (end, d)) in [(false, 160u16), (false, 320), (true, 480), (true, 480), (true, 480)].iter().enumerate() {
        let te = TelephoneEvent { event: 9, end: *end, volume: 10, duration: *d }.to_bytes();
        phone.send_to(&pkt(101, i as u16, 8000, 1, &te), a_local).unwrap();
    }
    let digit = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(MediaEvent::Dtmf(d)) = call.next_event().await {
                break d;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((digit.leg, digit.digit, digit.duration, digit.source), (LegId::A, '9', Duration::from_millis(60), DtmfSource::Rfc4733));
    let d = call.sip_info(LegId::B, "application/dtmf-relay", b"Signal=*\r\nDuration=120\r\n").await.unwrap();
    assert_eq!(d.digit, '*');
    let next = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(MediaEvent::Dtmf(d)) = call.next_event().await {
                break d;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!((next.leg, next.digit, next.source), (LegId::B, '*', DtmfSource::SipInfo));
    assert!(matches!(call.sip_info(LegId::B, "text/plain", b"1").await, Err(MediaError::InvalidDtmf(_))));
    // generating toward the phone
    call.send_dtmf(LegId::A, '4', Duration::from_millis(100)).await.unwrap();
    let mut ends = 0;
    while ends < 3 {
        let (b, _) = recv(&phone).expect("generated DTMF");
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.header.payload_type, 101);
        let ev = TelephoneEvent::parse(p.payload).unwrap();
        assert_eq!(ev.event, 4);
        ends += usize::from(ev.end);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_bridged_call_in_stereo() {
    let e = engine((31400, 31499), |_| {});
    let call = e.create_session("rec/test@host").unwrap();
    let (caller, callee) = (peer(), peer());
    call.set_remote(LegId::A, RemoteMedia::new(Some(caller.local_addr().unwrap()), pcmu()));
    call.set_remote(LegId::B, RemoteMedia::new(Some(callee.local_addr().unwrap()), pcmu()));
    call.bridge();
    let path = call.start_recording(RecordMode::Both, "rec-test").unwrap();
    assert!(path.to_string_lossy().contains("/recordings/"));
    let (a, b) = (call.local_rtp(LegId::A), call.local_rtp(LegId::B));
    let loud = media::g711::linear_to_ulaw(6000);
    for i in 0..25u16 {
        caller.send_to(&pkt(0, i, u32::from(i) * 160, 1, &[loud; 160]), a).unwrap();
        callee.send_to(&pkt(0, i, u32::from(i) * 160, 2, &[0xff; 160]), b).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let info = call.stop_recording().await.unwrap();
    assert_eq!(info.path, path);
    assert_eq!(info.channels, 2);
    assert!(info.duration >= Duration::from_millis(400), "{:?}", info.duration);
    let wav = media::wav::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(wav.format.channels, 2);
    assert!(!media::record::temporary_path(&path).exists());
    // raw interleaved check: left carries the caller's tone, right the callee's silence
    let bytes = std::fs::read(&path).unwrap();
    let samples: Vec<i16> = bytes[44..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    let left_loud = samples.iter().step_by(2).filter(|&&s| s > 5000).count();
    let right_loud = samples.iter().skip(1).step_by(2).filter(|&&s| s.abs() > 100).count();
    assert!(left_loud >= 3000, "{left_loud}");
    assert_eq!(right_loud, 0);
    let _ = std::fs::remove_dir_all(&e.config().data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_disk_skips_recording_and_flags_health() {
    let e = engine((31500, 31599), |c| c.min_free_disk = u64::MAX);
    let call = e.create_session("disk").unwrap();
    assert!(matches!(call.start_recording(RecordMode::Both, "x"), Err(MediaError::DiskFull { .. })));
    assert!(e.health().recording_disk_low);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_handle_reclaims_its_ports() {
    let e = engine((31600, 31609), |_| {});
    let calls: Vec<_> = (0..2).map(|i| e.create_session(&format!("c{i}")).unwrap()).collect();
    assert_eq!(e.health().port_pairs_in_use, 4);
    assert!(matches!(e.create_session("full"), Err(MediaError::PortsExhausted { .. })));
    drop(calls);
    for _ in 0..100 {
        if e.health().port_pairs_in_use == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(e.health().port_pairs_in_use, 0);
    assert!(e.create_session("again").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcodes_a_pcmu_caller_to_an_opus_only_callee() {
    let e = engine((31700, 31799), |_| {});
    let call = e.create_session("transcode").unwrap();
    let (caller, callee) = (peer(), peer());
    // the callee offered only Opus: FlowPBX answers the caller PCMU and transcodes
    let caller_offer = vec![CodecSpec::pcmu()];
    let callee_answer = vec![CodecSpec::opus(111)];
    let to_caller = answer_to_caller(&caller_offer, &callee_answer).unwrap();
    assert_eq!(to_caller, vec![CodecSpec::pcmu()]);
    call.set_remote(LegId::A, RemoteMedia::new(Some(caller.local_addr().unwrap()), LegCodecs::new(&to_caller, None).unwrap()));
    call.set_remote(LegId::B, RemoteMedia::new(Some(callee.local_addr().unwrap()), LegCodecs::new(&callee_answer, None).unwrap()));
    call.bridge();
    // a 700 Hz tone from the caller, one second
    let tone: Vec<i16> = (0..8000).map(|i| (9000.0 * (2.0 * std::f64::consts::PI * 700.0 * f64::from(i) / 8000.0).sin()) as i16).collect();
    let mut dec = media::codec::AudioDecoder::new(&CodecSpec::opus(111), &OpusSettings::default()).unwrap();
    let mut heard = Vec::new();
    for (i, frame) in tone.chunks(160).enumerate() {
        let mut u = [0u8; 160];
        media::g711::encode_ulaw(frame, &mut u);
        caller.send_to(&pkt(0, i as u16, i as u32 * 160, 3, &u), call.local_rtp(LegId::A)).unwrap();
        let (b, _) = recv(&callee).expect("opus packet");
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.header.payload_type, 111);
        dec.decode(p.payload, 0, &mut heard).unwrap();
    }
    assert_eq!(heard.len(), 8000);
    // the callee hears the 700 Hz tone (Goertzel power at 700 Hz dominates 1.4 kHz and 300 Hz)
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / 8000.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in heard[2000..].iter().enumerate() {
            re += f64::from(v) * (w * i as f64).cos();
            im += f64::from(v) * (w * i as f64).sin();
        }
        re * re + im * im
    };
    assert!(power(700.0) > 100.0 * power(1400.0));
    assert!(power(700.0) > 100.0 * power(300.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_control_plays_from_another_task_while_the_handle_reads_events() {
    let e = engine((31800, 31899), |_| {});
    let mut call = e.create_session("control").unwrap();
    let phone = peer();
    call.set_remote(LegId::A, RemoteMedia::new(Some(phone.local_addr().unwrap()), pcmu()));
    let control = call.control();
    let prompt = e.prompts().load(media::prompts::BEEP).unwrap();
    let id = tokio::spawn(async move { control.play(LegId::A, PlayRequest::once(prompt)).await.unwrap() }).await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Some(MediaEvent::PlaybackFinished { id, completed, .. }) = call.next_event().await {
                break (id, completed);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(finished, (id, true));
    let control = call.control();
    call.close().await.unwrap();
    // the session is gone: commands that answer say so
    assert!(matches!(control.stats().await, Err(MediaError::SessionClosed)));
}
