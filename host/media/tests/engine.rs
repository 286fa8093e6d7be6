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

/// An SRTP phone (keys from an SDES offer/answer, its own contexts made from the parsed
/// strings) and a plain RTP trunk through the engine on loopback, RTP and RTCP both ways;
/// forged and replayed packets are counted and never reach the trunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_phone_talks_to_a_plain_peer_over_sockets() {
    use media::rtcp::{self, RtcpPacket};
    use media::sdes;
    use media::srtp::{SrtpContext, MAX_OVERHEAD};

    let e = engine((31900, 31999), |_| {});
    let call = e.create_session("srtp-test").unwrap();
    let (phone, trunk, trunk_rtcp) = (peer(), peer(), peer());
    // SDES: the phone offers, FlowPBX answers; each side keeps its keys from the strings
    let offered = sdes::offer(&[SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AesCm128HmacSha1_32]).unwrap();
    let lines: Vec<String> = offered.iter().map(|a| format!("a=crypto:{a}")).collect();
    let answer = sdes::answer(lines.iter().map(String::as_str), &SrtpSuite::ALL).unwrap();
    assert_eq!(answer.attribute.tag, 1);
    let phone_keys = sdes::accept_answer(&offered, &answer.attribute.to_string()).unwrap();
    let (mut phone_tx, mut phone_rx) = (SrtpContext::new(&phone_keys.outbound), SrtpContext::new(&phone_keys.inbound));
    call.set_srtp(LegId::A, Some(answer.keys));
    call.set_remote(LegId::A, RemoteMedia { rtcp_mux: true, ..RemoteMedia::new(Some(phone.local_addr().unwrap()), pcmu()) });
    call.set_remote(LegId::B, RemoteMedia { rtcp: Some(trunk_rtcp.local_addr().unwrap()), ..RemoteMedia::new(Some(trunk.local_addr().unwrap()), pcmu()) });
    call.bridge();
    let (a_local, b_local, b_local_rtcp) = (call.local_rtp(LegId::A), call.local_rtp(LegId::B), call.local_rtcp(LegId::B));
    let protect = |ctx: &mut SrtpContext, plain: &[u8], rtcp: bool| {
        let mut b = plain.to_vec();
        b.resize(plain.len() + MAX_OVERHEAD, 0);
        let n = if rtcp { ctx.protect_rtcp(&mut b, plain.len()) } else { ctx.protect_rtp(&mut b, plain.len()) }.unwrap();
        b.truncate(n);
        b
    };

    let mut last_srtp = Vec::new();
    for i in 0..30u16 {
        // phone → trunk: plain on the trunk's side
        let srtp = protect(&mut phone_tx, &pkt(0, 40_000 + i, 160 * u32::from(i), 0xabc, &[i as u8; 160]), false);
        assert_eq!(srtp.len(), 182);
        phone.send_to(&srtp, a_local).unwrap();
        last_srtp = srtp;
        let (b, from) = recv(&trunk).expect("relayed to the trunk");
        assert_eq!((from, b.len()), (b_local, 172));
        assert_eq!(RtpPacket::parse(&b).unwrap().payload, &[i as u8; 160][..]);
        // trunk → phone: SRTP the phone opens with the key from FlowPBX's a=crypto
        trunk.send_to(&pkt(0, 7 + i, 160 * u32::from(i), 0xdef, &[0x80 | i as u8; 160]), b_local).unwrap();
        let (mut b, from) = recv(&phone).expect("relayed to the phone");
        assert_eq!((from, b.len()), (a_local, 182));
        let n = phone_rx.unprotect_rtp(&mut b).expect("authentic SRTP");
        assert_eq!(RtpPacket::parse(&b[..n]).unwrap().payload, &[0x80 | i as u8; 160][..]);
    }

    // SRTCP from the phone (rtcp-mux, on its RTP port) reaches the trunk's RTCP socket as RTCP
    let mut rr = Vec::new();
    rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc: 0xabc, reports: vec![] }], &mut rr);
    phone.send_to(&protect(&mut phone_tx, &rr, true), a_local).unwrap();
    let (b, from) = recv(&trunk_rtcp).expect("RTCP relayed to the trunk");
    assert_eq!(from, b_local_rtcp);
    assert!(matches!(&rtcp::parse_compound(&b).unwrap()[0], RtcpPacket::ReceiverReport { .. }));
    // and the trunk's RTCP reaches the phone as SRTCP on its RTP port
    let mut rr = Vec::new();
    rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc: 0xdef, reports: vec![] }], &mut rr);
    trunk_rtcp.send_to(&rr, b_local_rtcp).unwrap();
    let (mut b, from) = recv(&phone).expect("SRTCP relayed to the phone");
    assert_eq!(from, a_local);
    assert_eq!(b.len(), rr.len() + 14);
    let n = phone_rx.unprotect_rtcp(&mut b).expect("authentic SRTCP");
    assert!(matches!(&rtcp::parse_compound(&b[..n]).unwrap()[0], RtcpPacket::ReceiverReport { .. }));

    // a forged packet, a replay and plain RTP from the phone's address: nothing reaches the trunk
    let mut forged = protect(&mut phone_tx, &pkt(0, 40_100, 0, 0xabc, &[1; 160]), false);
    forged[30] ^= 0x10;
    phone.send_to(&forged, a_local).unwrap();
    phone.send_to(&last_srtp, a_local).unwrap();
    phone.send_to(&pkt(0, 40_101, 0, 0xabc, &[2; 160]), a_local).unwrap();
    trunk.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(recv(&trunk).is_none(), "nothing forged or replayed is relayed");
    let st = call.close().await.unwrap();
    assert_eq!(st.a.srtp, Some(SrtpSuite::AesCm128HmacSha1_80));
    assert_eq!((st.a.srtp_auth_failures, st.a.srtp_replays), (2, 1));
    assert_eq!(st.a.received.packets, 30);
    assert_eq!(st.b.srtp, None);
}
