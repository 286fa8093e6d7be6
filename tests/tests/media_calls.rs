//! Calls whose media crosses the real binary: every call's RTP is anchored in FlowPBX.
//!
//! SIPp does the signalling (UAC → PBX → UAS, both registered extensions); the media is
//! either SIPp's own (`pcap_play` of sip-tester's G.711 A-law speech and RFC 2833 digit) or an
//! RTP endpoint of the test (`media_support::RtpEndpoint`: tones in G.711 or Opus, everything
//! it receives recorded). Covered: packets re-addressed from FlowPBX's port with the payload
//! untouched and one continuous output stream, the digit relayed on the callee's own
//! telephone-event payload type, PCMU ↔ Opus transcoding both ways, a stereo recording with
//! the caller left and the callee right, a media timeout (BYE both ways, ports reclaimed),
//! and the CDR's media statistics.

mod media_support;
mod sip_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use media_support::{
    active_span, best_correlation, dropouts, free_media_port, median_purity, opus_decode, opus_tone, pcap_udp_payloads, pcmu_tone, rr_ssrcs, rtcp_packets,
    rtcp_receiver_report, sipp_received_sdps, tone_purity, ulaw_decode, wait_sdp_sent_to, Rtp, RtpEndpoint, Sdp,
};
use serde_json::{json, Value};
use sip_support::baresip::{write_wav, Baresip, Phone};
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";
const WAIT: Duration = Duration::from_secs(30);

/// A PBX (full SIP log: the tests read the SDP it sent) with extensions 101 and 102
/// (`callee` is 102's settings).
async fn pbx(flags: &[&str], callee: Value) -> anyhow::Result<Pbx> {
    // compiled node components shared between runs (written atomically): start-up without
    // recompiling every built-in node
    let cache = flowpbx_tests::flowpbx_bin()?.with_file_name("flowpbx-test-component-cache");
    let cache = cache.to_string_lossy().into_owned();
    let mut args = vec!["--sip-log", "full", "--cache-dir", &cache];
    args.extend_from_slice(flags);
    let pbx = Pbx::start(&args).await?;
    pbx.extension("101", PW_101).await?;
    let mut b = json!({"extension": "102", "name": "Ext 102", "sip_password": PW_102});
    if let (Some(b), Some(extra)) = (b.as_object_mut(), callee.as_object()) {
        b.extend(extra.clone());
    }
    pbx.extension_with(b).await?;
    pbx.wait_directory(2, 0, 0).await?;
    Ok(pbx)
}

/// The SDP keys of `media_uac.xml` / `media_uas.xml`.
fn sdp_keys(rtp_port: u16, pt: u8, codec: &str, te_pt: u8) -> Vec<String> {
    ["-key", "rtp_port", &rtp_port.to_string(), "-key", "pt", &pt.to_string(), "-key", "codec", codec, "-key", "te_pt", &te_pt.to_string()]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// 102 as a SIPp UAS (`media_uas.xml`) whose media is `rtp_port`; returns it and its SIP port.
fn callee(pbx: &Pbx, keys: &[String]) -> anyhow::Result<(Sipp, u16)> {
    let port = free_port(LO);
    let mut args: Vec<&str> = vec!["-m", "1"];
    args.extend(keys.iter().map(String::as_str));
    let run = sipp("media_uas.xml", (LO, port), None, &args)?;
    register(pbx, "102", PW_102, port, 300)?.assert_ok();
    Ok((run, port))
}

/// 101 calling 102 with `scenario`; returns it and its SIP port.
fn caller(pbx: &Pbx, scenario: &str, extra: &[String]) -> anyhow::Result<(Sipp, u16)> {
    let port = free_port(LO);
    let mut args: Vec<&str> = vec!["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1"];
    args.extend(extra.iter().map(String::as_str));
    Ok((sipp(scenario, (LO, port), Some(&pbx.sip()), &args)?, port))
}

/// The one SDP a SIPp run received.
fn received_sdp(messages: &str) -> anyhow::Result<Sdp> {
    let mut s = sipp_received_sdps(messages);
    anyhow::ensure!(!s.is_empty(), "no SDP received:\n{messages}");
    Ok(s.remove(s.len() - 1))
}

/// Every RTP packet `ep` received came from `from`; returns the packets.
fn all_from(ep: &RtpEndpoint, from: SocketAddr) -> Vec<Rtp> {
    let got = ep.rtp();
    let strangers: Vec<SocketAddr> = got.iter().map(|(a, _)| *a).filter(|a| *a != from).collect();
    assert!(strangers.is_empty(), "RTP from {strangers:?}, FlowPBX's port is {from}");
    got.into_iter().map(|(_, p)| p).collect()
}

/// One output stream: one SSRC, sequence numbers each one more than the last.
fn assert_continuous(packets: &[Rtp]) {
    let ssrcs: std::collections::BTreeSet<u32> = packets.iter().map(|p| p.ssrc).collect();
    assert_eq!(ssrcs.len(), 1, "one SSRC toward a leg: {ssrcs:x?}");
    for w in packets.windows(2) {
        // a retransmission in the input (RFC 4733's end packet, sent three times with one
        // sequence number) stays one in the output
        let repeated = w[1].seq == w[0].seq && w[1].payload == w[0].payload && w[1].ts == w[0].ts;
        assert!(
            repeated || w[1].seq == w[0].seq.wrapping_add(1),
            "sequence continuous: {} then {} ({:?})",
            w[0].seq,
            w[1].seq,
            packets.iter().map(|p| (p.pt, p.seq, p.ts)).collect::<Vec<_>>()
        );
    }
}

/// Whether the CDR has its media statistics (written just after the end, once the call's
/// media session has closed).
fn has_media_stats(cdr: &Value) -> bool {
    cdr["media_stats"].is_object()
}

/// The CDR's per-leg statistics, after checking they are there.
fn media_stats(cdr: &Value) -> (Value, Value) {
    let s = &cdr["media_stats"];
    assert!(s.is_object(), "cdrs.media_stats written: {cdr}");
    for leg in ["a", "b"] {
        for f in ["packets_received", "packets_lost", "jitter_ms", "packets_sent", "bytes_received"] {
            assert!(s[leg][f].is_number(), "media_stats.{leg}.{f}: {s}");
        }
    }
    (s["a"].clone(), s["b"].clone())
}

/// Fails the test with `r`'s error while the caller still holds the PBX (its log is shown
/// when it is dropped during the panic).
fn checked(r: anyhow::Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

async fn health_media(pbx: &Pbx) -> anyhow::Result<String> {
    let r = pbx.admin.get("/health").await?;
    Ok(r.data()["components"]["media"]["detail"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn sipp_pcap_audio_and_dtmf_cross_the_pbx_readdressed() {
    let pbx = pbx(&[], json!({})).await.expect("PBX started");
    checked(sipp_pcap_audio_and_dtmf_cross_the_pbx_readdressed_on(&pbx).await);
}

async fn sipp_pcap_audio_and_dtmf_cross_the_pbx_readdressed_on(pbx: &Pbx) -> anyhow::Result<()> {
    // the callee answers PCMA and telephone-event on 100, though the offer said 101
    let sink = RtpEndpoint::bind()?;
    let (uas, _) = callee(pbx, &sdp_keys(sink.port, 8, "PCMA/8000", 100))?;
    let sipp_media = free_media_port();
    let (uac, _) = caller(pbx, "media_uac_pcap.xml", &["-mp".to_owned(), sipp_media.to_string()])?;
    let uac = uac.wait(WAIT);
    uac.assert_ok();
    let uas = uas.wait(WAIT);
    uas.assert_ok();

    // what each side was told: FlowPBX's address and a port of its own, toward each
    let offer = received_sdp(&uas.messages)?;
    let answer = received_sdp(&uac.messages)?;
    assert_eq!((offer.ip.as_str(), answer.ip.as_str()), ("127.0.0.1", "127.0.0.1"));
    assert_ne!(offer.port, answer.port, "a port per leg");
    assert!(offer.port != sipp_media && answer.port != sipp_media);
    assert_eq!(offer.encoding(8), Some("PCMA/8000"), "the caller's codec offered first: {}", offer.text);
    assert_eq!(offer.formats.first(), Some(&8));
    assert_eq!(answer.formats, vec![8, 101], "the caller's payload types answered back: {}", answer.text);

    let got = all_from(&sink, offer.addr()?);
    let audio: Vec<&Rtp> = got.iter().filter(|p| p.pt == 8).collect();
    let events: Vec<&Rtp> = got.iter().filter(|p| p.pt == 100).collect();
    let others: Vec<u8> = got.iter().map(|p| p.pt).filter(|pt| ![8, 100].contains(pt)).collect();
    eprintln!(
        "callee got {} PCMA packets, {} telephone-event packets, other payload types {others:?}; {} RTCP datagrams",
        audio.len(),
        events.len(),
        sink.rtcp().len()
    );
    assert!(others.is_empty(), "only PCMA and the callee's telephone-event: {others:?}");
    // 2 s of 30 ms packets
    assert!((55..=75).contains(&audio.len()), "about 66 PCMA packets: {}", audio.len());
    // passthrough: the payloads are sip-tester's, byte for byte, in order
    let pcap = pcap_udp_payloads("/usr/share/sip-tester/g711a.pcap")?;
    let sent: Vec<Vec<u8>> = pcap.iter().filter_map(|p| Rtp::parse(p)).map(|p| p.payload).collect();
    let first = sent.iter().position(|p| *p == audio[0].payload).context("the first PCMA payload is one of the pcap's")?;
    for (i, p) in audio.iter().enumerate() {
        assert_eq!(p.payload, sent[first + i], "payload {i} relayed unchanged");
    }
    // the digit: RFC 4733 on the callee's payload type, event 1, ended
    assert!(events.len() >= 3, "the digit's packets: {}", events.len());
    assert!(events.iter().all(|p| p.payload.len() >= 4 && p.payload[0] == 1), "event 1: {:?}", events.iter().map(|p| p.payload.clone()).collect::<Vec<_>>());
    assert!(events.iter().any(|p| p.payload[1] & 0x80 != 0), "an end packet");
    assert!(events.windows(2).all(|w| w[0].ts == w[1].ts), "one event, one timestamp");
    // one stream toward the callee across SIPp's two recordings (two SSRCs, two sequences)
    assert_continuous(&got);

    let c = &pbx.wait_cdrs_with(1, has_media_stats).await?[0];
    let (a, b) = media_stats(c);
    eprintln!("media_stats: a {a}\n b {b}");
    let a_rx = a["packets_received"].as_u64().unwrap_or(0);
    assert!(a_rx >= audio.len() as u64 + 3, "the caller's packets counted: {a}");
    assert_eq!(a["packets_lost"].as_u64(), Some(0), "{a}");
    assert!(b["packets_sent"].as_u64().unwrap_or(0) >= audio.len() as u64, "{b}");
    Ok(())
}

#[tokio::test]
async fn opus_only_caller_reaches_a_pcmu_only_callee_through_the_transcoder() {
    let pbx = pbx(&[], json!({})).await.expect("PBX started");
    checked(opus_only_caller_reaches_a_pcmu_only_callee_through_the_transcoder_on(&pbx).await);
}

async fn opus_only_caller_reaches_a_pcmu_only_callee_through_the_transcoder_on(pbx: &Pbx) -> anyhow::Result<()> {
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let (uas, uas_port) = callee(pbx, &sdp_keys(eb.port, 0, "PCMU/8000", 101))?;
    let (uac, uac_port) = caller(pbx, "media_uac.xml", &[sdp_keys(ea.port, 111, "opus/48000/2", 101), vec!["-d".into(), "2500".into()]].concat())?;
    // learn FlowPBX's ports from what it sent, then talk: 440 Hz in Opus, 1 kHz in PCMU
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    ea.send(to_a.addr()?, 0x1111_0001, opus_tone(111, 440.0)?);
    eb.send(to_b.addr()?, 0x2222_0002, pcmu_tone(0, 1000.0));
    let uac = uac.wait(WAIT);
    uac.assert_ok();
    uas.wait(WAIT).assert_ok();
    ea.stop_sending();
    eb.stop_sending();

    // the SDPs: the callee was offered the caller's Opus and FlowPBX's G.711; the caller was
    // answered Opus only
    assert_eq!(to_b.encoding(111), Some("opus/48000/2"), "{}", to_b.text);
    assert_eq!(to_b.encoding(0), Some("PCMU/8000"), "{}", to_b.text);
    assert_eq!(to_a.formats, vec![111, 101], "{}", to_a.text);
    assert_eq!(to_a.encoding(111), Some("opus/48000/2"));

    let at_b = all_from(&eb, to_b.addr()?);
    let at_a = all_from(&ea, to_a.addr()?);
    let b_pts: std::collections::BTreeSet<u8> = at_b.iter().map(|p| p.pt).collect();
    let a_pts: std::collections::BTreeSet<u8> = at_a.iter().map(|p| p.pt).collect();
    eprintln!("callee got {} packets (payload types {b_pts:?}), caller got {} ({a_pts:?}); sent {} / {}", at_b.len(), at_a.len(), ea.sent(), eb.sent());
    assert_eq!(b_pts.into_iter().collect::<Vec<_>>(), vec![0], "PCMU toward the callee");
    assert_eq!(a_pts.into_iter().collect::<Vec<_>>(), vec![111], "Opus toward the caller");
    assert!(at_b.len() >= 80 && at_a.len() >= 80, "about 2 s each way: {} {}", at_b.len(), at_a.len());
    assert_continuous(&at_b);
    assert_continuous(&at_a);
    assert!(at_b.iter().all(|p| p.payload.len() == 160), "20 ms of PCMU per packet");
    assert!(at_a.windows(2).all(|w| w[1].ts.wrapping_sub(w[0].ts) == 960), "Opus timestamps at 48 kHz, 20 ms apart");

    // and it is the audio that was sent: the tones, decoded
    let pcm_b: Vec<i16> = at_b.iter().skip(10).flat_map(|p| p.payload.iter().map(|&c| ulaw_decode(c))).collect();
    let payloads_a: Vec<Vec<u8>> = at_a.iter().map(|p| p.payload.clone()).collect();
    let pcm_a = opus_decode(&payloads_a)?;
    let pcm_a = &pcm_a[pcm_a.len().min(48000 / 5)..];
    let (p440, p1k) = (tone_purity(&pcm_b, 8000, 440.0), tone_purity(pcm_a, 48000, 1000.0));
    eprintln!("440 Hz purity at the callee (PCMU) {p440:.3}, 1 kHz purity at the caller (Opus) {p1k:.3}");
    assert!(p440 > 0.8, "the caller's 440 Hz reached the callee: {p440}");
    assert!(p1k > 0.8, "the callee's 1 kHz reached the caller: {p1k}");
    assert!(tone_purity(&pcm_b, 8000, 1000.0) < 0.05, "not an echo of the callee's own tone");

    let c = &pbx.wait_cdrs_with(1, has_media_stats).await?[0];
    assert_eq!(c["hangup_cause"].as_str(), Some("normal_clearing"));
    let (a, b) = media_stats(c);
    assert!(a["packets_received"].as_u64().unwrap_or(0) >= 80 && b["packets_received"].as_u64().unwrap_or(0) >= 80, "{a} {b}");
    Ok(())
}

#[tokio::test]
async fn a_pcmu_call_latches_relays_rtcp_and_is_recorded_caller_left_callee_right() {
    let pbx = pbx(&[], json!({"recording_mode": "always"})).await.expect("PBX started");
    checked(a_pcmu_call_latches_relays_rtcp_and_is_recorded_caller_left_callee_right_on(&pbx).await);
}

async fn a_pcmu_call_latches_relays_rtcp_and_is_recorded_caller_left_callee_right_on(pbx: &Pbx) -> anyhow::Result<()> {
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    // the caller's SDP names a port it does not send from (a phone behind NAT): FlowPBX must
    // answer where the packets come from
    let decoy = RtpEndpoint::bind()?;
    let (uas, uas_port) = callee(pbx, &sdp_keys(eb.port, 0, "PCMU/8000", 101))?;
    let (uac, uac_port) = caller(pbx, "media_uac.xml", &[sdp_keys(decoy.port, 0, "PCMU/8000", 101), vec!["-d".into(), "2500".into()]].concat())?;
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    let (ssrc_a, ssrc_b) = (0x3333_0003, 0x4444_0004);
    ea.send(to_a.addr()?, ssrc_a, pcmu_tone(0, 440.0));
    eb.send(to_b.addr()?, ssrc_b, pcmu_tone(0, 1000.0));
    // once media flows, the caller reports on what it receives from FlowPBX
    anyhow::ensure!(ea.wait_rtp(10, Duration::from_secs(5)) >= 10, "no audio reached the caller's real address");
    let toward_a = ea.rtp()[0].1.ssrc;
    let rtcp_to = SocketAddr::new(to_a.addr()?.ip(), to_a.port + 1);
    ea.send_rtcp(rtcp_to, &rtcp_receiver_report(ssrc_a, toward_a, 1234, "caller@test"))?;
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    ea.stop_sending();
    eb.stop_sending();
    // latched: the callee's audio went where the caller's packets came from
    let (at_a, at_decoy) = (ea.rtp().len(), decoy.rtp().len());
    eprintln!("caller got {at_a} packets at its real address, {at_decoy} at its SDP's; callee got {}", eb.rtp().len());
    assert!(at_a >= 80, "the caller's real address got the callee's audio: {at_a}");
    assert!(at_decoy <= 5, "at most what was sent before the first packet latched: {at_decoy}");
    // recording did not stop the relay
    assert!(eb.rtp().len() >= 80, "{}", eb.rtp().len());
    all_from(&ea, to_a.addr()?);
    let toward_b = all_from(&eb, to_b.addr()?)[0].ssrc;
    // both directions pass through: the caller's report reaches the callee, from FlowPBX's
    // RTCP port, with its SSRCs in the callee's terms (sender: the stream the callee receives;
    // subject: the callee's own stream)
    let reports: Vec<(u32, u32)> = eb
        .rtcp()
        .iter()
        .flat_map(|d| {
            assert_eq!(d.from, SocketAddr::new(to_b.addr().map(|a| a.ip()).unwrap_or(LO.into()), to_b.port + 1), "RTCP from FlowPBX's RTCP port");
            rtcp_packets(&d.data)
        })
        .filter(|(pt, _)| *pt == 201)
        .filter_map(|(_, body)| rr_ssrcs(&body))
        .collect();
    eprintln!("callee got receiver reports {reports:x?} (FlowPBX toward it {toward_b:x}, its own {ssrc_b:x})");
    assert!(reports.contains(&(toward_b, ssrc_b)), "the caller's report relayed and rewritten: {reports:x?}");

    let c = &pbx.wait_cdrs(1).await?[0];
    let file = c["recording_file"].as_str().with_context(|| format!("recording_file: {c}"))?.to_owned();
    let today = time::OffsetDateTime::now_utc();
    let dir = format!("recordings/{:04}/{:02}/{:02}/", today.year(), u8::from(today.month()), today.day());
    assert!(file.starts_with(&dir) && file.ends_with(".wav"), "{file} under {dir}");
    let path = pbx.server.data_dir().join(&file);
    // the CDR names the file once it is closed; give the writer a moment to rename
    let t0 = Instant::now();
    while !path.is_file() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut wav = hound::WavReader::open(&path).with_context(|| format!("{}", path.display()))?;
    let spec = wav.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16), "{spec:?}");
    let samples: Vec<i16> = wav.samples::<i16>().collect::<Result<_, _>>()?;
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let secs = left.len() as f64 / f64::from(spec.sample_rate);
    let rate = spec.sample_rate;
    let block = rate as usize / 10;
    let (l440, r1k) = (median_purity(&left, rate, 440.0, block), median_purity(&right, rate, 1000.0, block));
    let (lrms, rrms) = (media_support::rms(&left), media_support::rms(&right));
    let (ls, rs) = (active_span(&left, 1000), active_span(&right, 1000));
    eprintln!("recording {file}: {secs:.2} s at {rate} Hz; left 440 Hz purity {l440:.3} (rms {lrms:.0}, sound {ls:?}), right 1 kHz purity {r1k:.3} (rms {rrms:.0}, sound {rs:?})");
    assert!(secs >= 1.5, "the call's length: {secs}");
    assert!(lrms > 1000.0 && rrms > 1000.0, "both channels hold audio: {lrms} {rrms}");
    assert!(l440 > 0.9 && r1k > 0.9, "caller left, callee right: {l440} {r1k}");
    assert!(median_purity(&left, rate, 1000.0, block) < 0.05 && median_purity(&right, rate, 440.0, block) < 0.05, "no crosstalk");
    // the tones were continuous: so is what was recorded (5 ms of silence is a dropout), and
    // the two sides started together (both phones started talking at the same moment)
    let ((l0, l1), (r0, r1)) = (ls.context("left silent")?, rs.context("right silent")?);
    let (ld, rd) = (dropouts(&left[l0..=l1], 200, rate as usize / 200), dropouts(&right[r0..=r1], 200, rate as usize / 200));
    assert!(ld.is_empty() && rd.is_empty(), "dropouts (start, samples): left {ld:?}, right {rd:?}");
    assert!(l0.abs_diff(r0) < rate as usize / 10, "the channels line up: left from {l0}, right from {r0}");
    Ok(())
}

#[tokio::test]
async fn hold_and_resume_keep_one_stream_and_no_media_timeout_on_hold() {
    let pbx = pbx(&["--media-timeout-secs", "2"], json!({})).await.expect("PBX started");
    checked(hold_and_resume_keep_one_stream_and_no_media_timeout_on_hold_on(&pbx).await);
}

async fn hold_and_resume_keep_one_stream_and_no_media_timeout_on_hold_on(pbx: &Pbx) -> anyhow::Result<()> {
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let port = free_port(LO);
    let mut args: Vec<String> = vec!["-m".into(), "1".into()];
    args.extend(sdp_keys(eb.port, 0, "PCMU/8000", 101));
    let uas = sipp("media_uas_hold.xml", (LO, port), None, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    register(pbx, "102", PW_102, port, 300)?.assert_ok();
    let (uac, uac_port) = caller(pbx, "media_uac_hold.xml", &sdp_keys(ea.port, 0, "PCMU/8000", 101))?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    ea.send(to_a.addr()?, 0x7777_0007, pcmu_tone(0, 440.0));
    // the caller talks 1 s, then holds for 3 s (longer than the 2 s media timeout) silent
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ea.stop_sending();
    let before = eb.rtp().len();
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // resumed: a phone restarting its stream (new SSRC, its own sequence)
    ea.send(to_a.addr()?, 0x7777_0008, pcmu_tone(0, 440.0));
    let uac = uac.wait(WAIT);
    uac.assert_ok();
    let uas = uas.wait(WAIT);
    uas.assert_ok();
    ea.stop_sending();

    // the hold crossed as a direction, each way
    let offers = sipp_received_sdps(&uas.messages);
    let answers = sipp_received_sdps(&uac.messages);
    let dir = |s: &Sdp| ["sendonly", "recvonly", "inactive", "sendrecv"].into_iter().find(|d| s.text.contains(&format!("a={d}"))).unwrap_or("sendrecv");
    let offered: Vec<&str> = offers.iter().map(dir).collect();
    let answered: Vec<&str> = answers.iter().map(dir).collect();
    eprintln!("callee offered {offered:?}, caller answered {answered:?}");
    assert_eq!(offered, vec!["sendrecv", "sendonly", "sendrecv"], "the callee was told of the hold");
    assert_eq!(answered, vec!["sendrecv", "recvonly", "sendrecv"], "the caller's hold was answered");
    assert!(offers.iter().all(|o| o.port == offers[0].port) && answers.iter().all(|a| a.port == answers[0].port), "FlowPBX's ports kept");

    // one stream toward the callee across the hold and the caller's new SSRC
    let got = all_from(&eb, offers[0].addr()?);
    assert_continuous(&got);
    // the hold is where the callee heard nothing for longest (counting what had arrived when
    // the caller stopped would race with the packets still crossing the relay)
    let arrivals: Vec<Instant> = eb.datagrams().iter().filter(|d| !d.rtcp && Rtp::parse(&d.data).is_some()).map(|d| d.at).collect();
    let (quiet, held_after) = arrivals.windows(2).enumerate().map(|(i, w)| (w[1] - w[0], i + 1)).max().context("no audio at the callee")?;
    eprintln!("callee got {} packets, {held_after} before a {quiet:?} silence ({before} when the caller stopped)", got.len());
    assert!(quiet >= Duration::from_secs(2), "the hold silenced the callee's audio: {quiet:?}");
    assert!(held_after >= 40 && got.len() >= held_after + 60, "audio before and after the hold: {held_after} then {}", got.len());
    let (last_before, first_after) = (&got[held_after - 1], &got[held_after]);
    let gap = first_after.ts.wrapping_sub(last_before.ts);
    assert!((8000..8000 * 10).contains(&gap), "the timestamp moved on with the time on hold: {gap}");
    assert!(first_after.marker, "the resumed stream starts a talkspurt");

    // silence on hold is not a media timeout: the caller hung up
    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!(c["hangup_cause"].as_str(), Some("normal_clearing"), "{c}");
    Ok(())
}

#[tokio::test]
async fn a_silent_leg_ends_the_call_with_media_timeout() {
    let pbx = pbx(&["--media-timeout-secs", "2"], json!({})).await.expect("PBX started");
    checked(a_silent_leg_ends_the_call_with_media_timeout_on(&pbx).await);
}

async fn a_silent_leg_ends_the_call_with_media_timeout_on(pbx: &Pbx) -> anyhow::Result<()> {
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let (uas, uas_port) = callee(pbx, &sdp_keys(eb.port, 0, "PCMU/8000", 101))?;
    let (uac, uac_port) = caller(pbx, "media_uac_hungup.xml", &sdp_keys(ea.port, 0, "PCMU/8000", 101))?;
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    ea.send(to_a.addr()?, 0x5555_0005, pcmu_tone(0, 440.0));
    eb.send(to_b.addr()?, 0x6666_0006, pcmu_tone(0, 1000.0));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = health_media(pbx).await?;
    assert!(during.starts_with("1 sessions, 2/"), "a port pair per leg: {during}");
    // the caller goes silent; the callee keeps talking
    ea.stop_sending();
    let silent_at = Instant::now();
    let uac = uac.wait(WAIT);
    let ended_after = silent_at.elapsed();
    uac.assert_ok();
    uas.wait(WAIT).assert_ok();
    eb.stop_sending();
    eprintln!("BYE {ended_after:?} after the caller went silent");
    assert!(ended_after >= Duration::from_millis(1800) && ended_after < Duration::from_secs(6), "{ended_after:?}");

    let c = &pbx.wait_cdrs(1).await?[0];
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("answered"), Some("media_timeout")), "{c}");
    let t0 = Instant::now();
    loop {
        let h = health_media(pbx).await?;
        if h.starts_with("0 sessions, 0/") {
            break;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(5), "ports not reclaimed: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pbx.sip_health().await?.contains(" 0 calls"), "{}", pbx.sip_health().await?);
    Ok(())
}

/// A baresip phone's audio: which codec modules it loads, which codecs its account allows,
/// the rate and channels of its microphone file (the codec's).
struct Audio {
    modules: &'static [&'static str],
    codecs: Option<&'static str>,
    rate: u32,
    channels: u16,
    /// The account's `mediaenc` (SRTP).
    mediaenc: Option<&'static str>,
}

const G711: Audio = Audio { modules: &["g711"], codecs: None, rate: 8000, channels: 1, mediaenc: None };

/// `secs` of band-limited noise at 8 kHz (white noise through two one-pole low-passes, about
/// 1 kHz): no period, so a window of it correlates with one place only; smooth enough that a
/// resampler's fractional delay does not decorrelate it.
fn noise(seed: u64, secs: u32) -> Vec<i16> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let (mut y1, mut y2) = (0.0f64, 0.0f64);
    (0..8000 * secs)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let white = (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            y1 += 0.55 * (white * 30000.0 - y1);
            y2 += 0.55 * (y1 - y2);
            y2.round().clamp(-32000.0, 32000.0) as i16
        })
        .collect()
}

/// An 8 kHz signal at `rate` (linear interpolation) on `channels` identical channels.
fn upsample(pcm: &[i16], rate: u32, channels: u16) -> Vec<i16> {
    let k = (rate / 8000) as usize;
    let mut out = Vec::with_capacity(pcm.len() * k * usize::from(channels));
    for (i, &s) in pcm.iter().enumerate() {
        let next = pcm.get(i + 1).copied().unwrap_or(s);
        for j in 0..k {
            let v = (f64::from(s) + (f64::from(next) - f64::from(s)) * j as f64 / k as f64).round() as i16;
            out.extend(std::iter::repeat_n(v, usize::from(channels)));
        }
    }
    out
}

/// A WAV's first channel at 8 kHz (every n-th sample; what arrives is band-limited already).
fn read_8k(path: &std::path::Path) -> anyhow::Result<Vec<i16>> {
    let mut r = hound::WavReader::open(path)?;
    let spec = r.spec();
    let all: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    let step = usize::from(spec.channels) * (spec.sample_rate / 8000).max(1) as usize;
    Ok(all.into_iter().step_by(step).collect())
}

/// How well what a phone decoded matches what the other sent: the best normalised
/// correlation of a 0.25 s window (from 1 s into what it heard) against the sent signal within
/// a second either way, and against its own microphone (an echo would show there); and the
/// lag found.
fn heard(received: &[i16], sent: &[i16], own: &[i16]) -> anyhow::Result<(f64, f64, usize)> {
    const AT: usize = 8000;
    anyhow::ensure!(received.len() >= AT + 2000, "only {} samples decoded", received.len());
    let window = &received[AT..AT + 2000];
    let (c, lag) = best_correlation(sent, window, 0..2 * AT);
    let (echo, _) = best_correlation(own, window, 0..2 * AT);
    Ok((c, echo, lag))
}

/// 101 calls 102 between two baresip phones whose microphones play different noise; after
/// `talk` both hang up; returns (what 102 heard of 101, what 101 heard of 102) as
/// (correlation with the sender, correlation with its own microphone).
async fn baresip_call(pbx: &Pbx, a: &Audio, b: &Audio, talk: Duration) -> anyhow::Result<[(f64, f64); 2]> {
    let mut phones = BaresipPair::start(pbx, a, b, false).await?;
    phones.call(&format!("sip:102@{}", pbx.sip()), talk).await
}

/// Two baresip phones registered to the PBX, 101 and 102 (which answers by itself), whose
/// microphones play different noise (`na`, `nb`).
struct BaresipPair {
    pa: Baresip,
    pb: Baresip,
    na: Vec<i16>,
    nb: Vec<i16>,
    _dir: tempfile::TempDir,
}

impl BaresipPair {
    /// With `a_sips`, 101's account is `sips:101@` the PBX's TLS address (registered over
    /// TLS); 102 is always on UDP.
    async fn start(pbx: &Pbx, a: &Audio, b: &Audio, a_sips: bool) -> anyhow::Result<BaresipPair> {
        let dir = tempfile::tempdir()?;
        let (na, nb) = (noise(1, 12), noise(2, 12));
        let (src_a, src_b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
        write_wav(&src_a, a.rate, a.channels, &upsample(&na, a.rate, a.channels))?;
        write_wav(&src_b, b.rate, b.channels, &upsample(&nb, b.rate, b.channels))?;
        let (sip, tls) = (pbx.sip(), format!("127.0.0.1:{}", pbx.server.ports().sip_tls));
        let phone = |user, pw, at, auto, au: &Audio, src| Phone {
            codec_modules: au.modules,
            audio_codecs: au.codecs,
            source: Some(src),
            dump: true,
            mediaenc: au.mediaenc,
            ..Phone::new(user, pw, at, auto)
        };
        let pa = if a_sips {
            Baresip::start_phone(&Phone { sips: true, ..phone("101", PW_101, &tls, false, a, &src_a) }).await?
        } else {
            Baresip::start_phone(&phone("101", PW_101, &sip, false, a, &src_a)).await?
        };
        let pb = Baresip::start_phone(&phone("102", PW_102, &sip, true, b, &src_b)).await?;
        for id in [1, 2] {
            pbx.wait_registrations(id, 1).await?;
        }
        Ok(BaresipPair { pa, pb, na, nb, _dir: dir })
    }

    /// 101 dials `uri`; after `talk` it hangs up; returns what each heard (as `baresip_call`).
    async fn call(&mut self, uri: &str, talk: Duration) -> anyhow::Result<[(f64, f64); 2]> {
        let (pa, pb) = (&mut self.pa, &mut self.pb);
        pa.command("dial", uri).await?;
        pb.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
        pa.wait_event("CALL_ESTABLISHED", Duration::from_secs(10)).await?;
        tokio::time::sleep(talk).await;
        pa.command("hangup", "").await?;
        pa.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
        pb.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
        // baresip closes its dumps when the call's audio is torn down
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_b = read_8k(&pb.decoded_dump()?)?;
        let at_a = read_8k(&pa.decoded_dump()?)?;
        let (cb, eb, lb) = heard(&at_b, &self.na, &self.nb).with_context(|| pb.log())?;
        let (ca, ea, la) = heard(&at_a, &self.nb, &self.na).with_context(|| pa.log())?;
        eprintln!(
            "102 heard 101: correlation {cb:.4} (own microphone {eb:.3}) at {lb} samples; 101 heard 102: {ca:.4} (own {ea:.3}) at {la}; decoded {} / {} samples",
            at_b.len(),
            at_a.len()
        );
        Ok([(cb, eb), (ca, ea)])
    }
}

#[tokio::test]
async fn baresip_phones_hear_each_other_through_the_relay() {
    let pbx = pbx(&[], json!({})).await.expect("PBX started");
    checked(baresip_phones_hear_each_other_through_the_relay_on(&pbx).await);
}

async fn baresip_phones_hear_each_other_through_the_relay_on(pbx: &Pbx) -> anyhow::Result<()> {
    let [(to_b, echo_b), (to_a, echo_a)] = baresip_call(pbx, &G711, &G711, Duration::from_secs(3)).await?;
    // G.711 passed through untouched: what arrives is what was sent, up to μ-law's quantisation
    assert!(to_b > 0.95 && to_a > 0.95, "each phone hears the other: {to_b} {to_a}");
    assert!(echo_b < 0.3 && echo_a < 0.3, "and not itself: {echo_b} {echo_a}");
    let c = &pbx.wait_cdrs_with(1, has_media_stats).await?[0];
    assert_eq!(c["hangup_cause"].as_str(), Some("normal_clearing"));
    let (a, b) = media_stats(c);
    assert!(a["packets_received"].as_u64().unwrap_or(0) >= 100 && b["packets_received"].as_u64().unwrap_or(0) >= 100, "{a} {b}");
    Ok(())
}

#[tokio::test]
async fn baresip_opus_phone_and_pcmu_phone_hear_each_other_through_the_transcoder() {
    let pbx = pbx(&[], json!({})).await.expect("PBX started");
    checked(baresip_opus_phone_and_pcmu_phone_hear_each_other_through_the_transcoder_on(&pbx).await);
}

async fn baresip_opus_phone_and_pcmu_phone_hear_each_other_through_the_transcoder_on(pbx: &Pbx) -> anyhow::Result<()> {
    let opus = Audio { modules: &["opus"], codecs: None, rate: 48000, channels: 2, mediaenc: None };
    let pcmu = Audio { modules: &["g711"], codecs: Some("PCMU/8000/1"), rate: 8000, channels: 1, mediaenc: None };
    let [(to_b, echo_b), (to_a, echo_a)] = baresip_call(pbx, &opus, &pcmu, Duration::from_secs(3)).await?;
    // decoded, resampled and encoded again: not the same bytes, still the same sound. Toward
    // the PCMU phone the waveform survives (0.99 measured); toward the Opus phone FlowPBX
    // encodes narrowband Opus at 24 kbit/s, i.e. SILK, a speech model that keeps noise's
    // spectrum rather than its waveform (about 0.8 measured). Chance level is about 0.15.
    assert!(to_b > 0.9, "the PCMU phone hears the Opus phone: {to_b}");
    assert!(to_a > 0.6, "the Opus phone hears the PCMU phone: {to_a}");
    assert!(echo_b < 0.3 && echo_a < 0.3, "and not itself: {echo_b} {echo_a}");
    Ok(())
}

/// SRTP with SDES terminated per leg: 101 is a baresip with `mediaenc=srtp-mand` (RTP/SAVP,
/// `a=crypto`) on an extension that requires SRTP; 102 is a baresip on plain RTP (its
/// extension's SRTP is off) and records the call. FlowPBX decrypts 101's audio, relays it
/// plain to 102 and encrypts 102's toward 101: each phone hears the other, the recording holds
/// 101's plain audio, and the CDR says which leg was encrypted.
#[tokio::test]
async fn baresip_srtp_phone_and_plain_phone_hear_each_other() {
    let pbx = pbx(&[], json!({"srtp": "off", "recording_mode": "always"})).await.expect("PBX started");
    checked(baresip_srtp_phone_and_plain_phone_hear_each_other_on(&pbx).await);
}

async fn baresip_srtp_phone_and_plain_phone_hear_each_other_on(pbx: &Pbx) -> anyhow::Result<()> {
    let r = pbx.admin.put("/extensions/1", &json!({"srtp": "required"})).await?;
    anyhow::ensure!(r.status == 200 && r.data()["srtp"] == "required", "{} {}", r.status, r.text);
    // the SIP directory follows the store within its refresh interval
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let srtp = Audio { mediaenc: Some("srtp-mand"), ..G711 };
    // during the call, forged SRTP (a made-up tag) reaches FlowPBX's port toward 101
    let (call, forged) = tokio::join!(baresip_call(pbx, &srtp, &G711, Duration::from_secs(3)), forge_srtp(pbx));
    let [(to_b, echo_b), (to_a, echo_a)] = call?;
    let forged = forged?;
    assert!(to_b > 0.95 && to_a > 0.95, "each phone hears the other across SRTP↔RTP: {to_b} {to_a}");
    assert!(echo_b < 0.3 && echo_a < 0.3, "and not itself: {echo_b} {echo_a}");
    // what FlowPBX said: RTP/SAVP with a=crypto to 101, plain RTP/AVP without keys to 102
    let log = pbx.server.logs();
    let answered_savp = log.lines().any(|l| l.contains("sip send") && l.contains("200 OK") && l.contains("RTP/SAVP") && l.contains("a=crypto:"));
    assert!(answered_savp, "FlowPBX answered 101 with SRTP");
    let plain_to_b = log.lines().any(|l| l.contains("sip send") && l.contains("INVITE sip:102") && l.contains("RTP/AVP") && !l.contains("a=crypto"));
    assert!(plain_to_b, "102 (off) was offered plain RTP without keys");
    assert!(log.contains("inline:<redacted>"), "the SIP log shows the crypto lines");
    for line in log.lines().filter(|l| l.contains("inline:")) {
        for part in line.split("inline:").skip(1) {
            assert!(part.starts_with("<redacted>"), "an SDES key in the log: {:.80}", part);
        }
    }
    let c = &pbx.wait_cdrs_with(1, has_media_stats).await?[0];
    assert_eq!(c["caller_srtp"].as_str(), Some("AES_CM_128_HMAC_SHA1_80"), "the caller's leg was encrypted: {c}");
    assert!(c["callee_srtp"].is_null(), "the callee's was plain: {c}");
    let (a, b) = media_stats(c);
    assert_eq!(a["srtp"].as_str(), Some("AES_CM_128_HMAC_SHA1_80"), "{a}");
    // Every forged packet is dropped and counted. Debian's baresip (libre 1.1) sometimes sends
    // an SRTCP report that fails authentication too (seen as one failure beside one RTCP
    // packet, with nothing forged): at most one such per RTCP report may join the count.
    let failures = a["srtp_auth_failures"].as_u64().unwrap_or(0);
    let rtcp = a["rtcp_packets"].as_u64().unwrap_or(0);
    assert!(failures >= forged && failures - forged <= rtcp + 1, "every forged packet dropped and counted: {a}");
    let health = health_media(pbx).await?;
    assert!(health.contains(&format!("{failures} SRTP packets dropped (bad tag)")), "{health}");
    assert!(b["srtp"].is_null(), "{b}");
    assert!(a["packets_received"].as_u64().unwrap_or(0) >= 100 && b["packets_received"].as_u64().unwrap_or(0) >= 100, "{a} {b}");
    // the recorder heard plain audio: the caller's channel correlates with 101's noise
    let file = c["recording_file"].as_str().with_context(|| format!("recording_file: {c}"))?.to_owned();
    let path = pbx.server.data_dir().join(&file);
    let t0 = Instant::now();
    while !path.is_file() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = read_8k_channel(&path, 0)?;
    let (rec, _, _) = heard(&left, &noise(1, 12), &noise(2, 12))?;
    eprintln!("recording {file}: caller channel correlates {rec:.4} with 101's microphone");
    assert!(rec > 0.9, "the recording holds the caller's decrypted audio: {rec}");
    Ok(())
}

/// Issue 14's TLS test: 101 is a baresip whose account is `sips:101@` FlowPBX's TLS port
/// (registered over TLS) with `mediaenc=srtp-mand` on an extension requiring SRTP; 102 is a
/// baresip on UDP and plain RTP. First the attacker's side: 101 dials `sips:102`, which asks
/// for TLS on every hop (RFC 5630), and 102 can only be reached in clear, so 101 gets 480 and
/// 102 never rings. Then 101 dials `sip:102` over its TLS connection: the call connects, each
/// phone hears the other (the audio check of the plain and SRTP calls above), FlowPBX's 200 OK
/// goes back over TLS with RTP/SAVP, and the CDR says the caller's leg was SRTP and the
/// callee's plain.
#[tokio::test]
async fn baresip_sips_srtp_phone_and_plain_udp_phone_hear_each_other() {
    let pbx = pbx(&[], json!({"srtp": "off"})).await.expect("PBX started");
    checked(baresip_sips_srtp_phone_and_plain_udp_phone_hear_each_other_on(&pbx).await);
}

async fn baresip_sips_srtp_phone_and_plain_udp_phone_hear_each_other_on(pbx: &Pbx) -> anyhow::Result<()> {
    let r = pbx.admin.put("/extensions/1", &json!({"srtp": "required"})).await?;
    anyhow::ensure!(r.status == 200 && r.data()["srtp"] == "required", "{} {}", r.status, r.text);
    // the SIP directory follows the store within its refresh interval
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tls = format!("127.0.0.1:{}", pbx.server.ports().sip_tls);
    let srtp = Audio { mediaenc: Some("srtp-mand"), ..G711 };
    let mut phones = BaresipPair::start(pbx, &srtp, &G711, true).await?;
    let (ra, rb) = (pbx.registrations(1).await?, pbx.registrations(2).await?);
    eprintln!("101 registered {}, 102 {}", ra[0], rb[0]);
    assert_eq!(ra[0]["transport"], "tls", "101 registered over TLS: {}", ra[0]);
    assert_eq!(rb[0]["transport"], "udp", "102 registered over UDP: {}", rb[0]);
    assert_eq!((ra[0]["media_encryption"].as_str(), rb[0]["media_encryption"].as_str()), (Some("srtp"), Some("none")), "{} {}", ra[0], rb[0]);

    // a sips: call to a phone reached only in clear: 480 back to 101 over TLS, 102 not rung
    // (baresip 1.0 puts `sip:` before any dial string without "sip:" in it, `sips:` ones
    // too: a URI parameter holding "sip:" keeps its own scheme)
    phones.pa.command("dial", &format!("sips:102@{tls};x=sip:")).await?;
    let closed = phones.pa.wait_event("CALL_CLOSED", Duration::from_secs(10)).await?;
    eprintln!("the sips: call ended: {closed}");
    assert!(closed.to_string().contains("480"), "101 got 480 for sips:102: {closed}");
    let log = pbx.server.logs();
    let sent_480 = log.lines().any(|l| l.contains("sip send") && l.contains("SIP/2.0 480") && l.contains("Via: SIP/2.0/TLS") && l.contains("To: <sips:102@"));
    assert!(sent_480, "FlowPBX answered the sips: INVITE with 480 over TLS");
    assert!(!log.lines().any(|l| l.contains("sip send") && l.contains("INVITE sip:102")), "102 was sent an INVITE in clear");
    assert!(phones.pb.wait_event("CALL_INCOMING", Duration::from_millis(500)).await.is_err(), "102 rang");

    // the same phone calls sip:102 over its TLS connection: connected, audio both ways
    let [(to_b, echo_b), (to_a, echo_a)] = phones.call(&format!("sip:102@{tls};transport=tls"), Duration::from_secs(3)).await?;
    assert!(to_b > 0.95 && to_a > 0.95, "each phone hears the other across sips:/SRTP ↔ UDP/RTP: {to_b} {to_a}");
    assert!(echo_b < 0.3 && echo_a < 0.3, "and not itself: {echo_b} {echo_a}");
    let log = pbx.server.logs();
    let ok_to_a: Vec<&str> = log.lines().filter(|l| l.contains("sip send") && l.contains("200 OK") && l.contains("RTP/SAVP")).collect();
    eprintln!("FlowPBX's 200 OK to 101: {:.600}", ok_to_a.first().copied().unwrap_or_default());
    assert_eq!(ok_to_a.len(), 1, "one SRTP answer to 101");
    assert!(ok_to_a[0].contains("Via: SIP/2.0/TLS") && ok_to_a[0].contains("a=crypto:"), "answered over TLS with keys: {:.600}", ok_to_a[0]);
    // the Request-URI was sip: (a sips: one could not reach 102), so the Contact is a sip:
    // URI (RFC 3261 §12.1.1 asks for sips: only after a sips: Request-URI) that keeps 101's
    // in-dialog requests on TLS
    assert!(ok_to_a[0].contains(&format!("Contact: <sip:102@{tls};transport=tls>")), "the dialog stays on TLS: {:.600}", ok_to_a[0]);
    let plain_to_b = log.lines().any(|l| l.contains("sip send") && l.contains("INVITE sip:102") && l.contains("RTP/AVP") && !l.contains("a=crypto"));
    assert!(plain_to_b, "102 was offered plain RTP without keys");

    // newest first: the call (with its media statistics), then the refused sips: attempt
    let cdrs = pbx.wait_cdrs_with(2, |c| c["disposition"] != "answered" || has_media_stats(c)).await?;
    let (c, refused) = (&cdrs[0], &cdrs[1]);
    let outcome = |c: &Value| (c["disposition"].as_str().map(str::to_owned), c["hangup_cause"].as_str().map(str::to_owned));
    assert_eq!(outcome(refused), (Some("failed".into()), Some("subscriber_absent".into())), "the sips: call never rang: {refused}");
    assert_eq!((c["disposition"].as_str(), c["hangup_cause"].as_str()), (Some("answered"), Some("normal_clearing")), "{c}");
    assert_eq!(c["caller_srtp"].as_str(), Some("AES_CM_128_HMAC_SHA1_80"), "the caller's leg was encrypted: {c}");
    assert!(c["callee_srtp"].is_null(), "the callee's was plain: {c}");
    let (a, b) = media_stats(c);
    assert_eq!(a["srtp"].as_str(), Some("AES_CM_128_HMAC_SHA1_80"), "{a}");
    assert!(b["srtp"].is_null(), "{b}");
    assert!(a["packets_received"].as_u64().unwrap_or(0) >= 100 && b["packets_received"].as_u64().unwrap_or(0) >= 100, "{a} {b}");
    eprintln!("media_stats: a {a}\n b {b}");
    Ok(())
}

/// Once FlowPBX has answered 101 with SRTP, sends 50 packets that look like SRTP (a valid
/// RTP header, a payload, a made-up 80-bit tag) from another socket to FlowPBX's port in
/// that answer; returns how many were sent.
async fn forge_srtp(pbx: &Pbx) -> anyhow::Result<u64> {
    let t0 = Instant::now();
    let port = loop {
        let log = pbx.server.logs();
        let found = log.lines().filter(|l| l.contains("sip send") && l.contains("200 OK") && l.contains("RTP/SAVP")).find_map(|l| {
            let rest = &l[l.find("m=audio ")? + 8..];
            rest.split(' ').next()?.parse::<u16>().ok()
        });
        if let Some(p) = found {
            break p;
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(15), "FlowPBX never answered 101 with RTP/SAVP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sock = tokio::net::UdpSocket::bind((LO, 0)).await?;
    let mut sent = 0;
    for i in 0..50u16 {
        let mut pkt = vec![0x80, 0x00];
        pkt.extend_from_slice(&(1000 + i).to_be_bytes());
        pkt.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
        pkt.extend_from_slice(&0x5eed_f00du32.to_be_bytes());
        pkt.extend(std::iter::repeat_n(0xd5u8, 160));
        pkt.extend_from_slice(&[0xa5; 10]);
        sock.send_to(&pkt, (LO, port)).await?;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(sent)
}

/// One channel of a WAV at 8 kHz.
fn read_8k_channel(path: &std::path::Path, channel: usize) -> anyhow::Result<Vec<i16>> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let spec = r.spec();
    let all: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    let step = usize::from(spec.channels) * (spec.sample_rate / 8000).max(1) as usize;
    Ok(all.into_iter().skip(channel).step_by(step).collect())
}
