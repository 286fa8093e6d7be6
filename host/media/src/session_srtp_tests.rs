//! Session tests with SRTP legs: an SRTP phone on leg A (its contexts live in the test,
//! made from the same keys as the session's, independently), a plain trunk on leg B.

use super::*;
use crate::srtp::{SrtpContext, SrtpKey, SrtpKeys, SrtpSuite, MAX_OVERHEAD};

/// The phone's side of an SRTP leg: what it encrypts with (the session's inbound key) and
/// what it decrypts with (the session's outbound key).
struct Phone {
    tx: SrtpContext,
    rx: SrtpContext,
}

fn srtp_leg(s: &mut Session, leg: LegId, suite: SrtpSuite) -> Phone {
    let keys = SrtpKeys { inbound: SrtpKey::generate(suite).unwrap(), outbound: SrtpKey::generate(suite).unwrap() };
    let phone = Phone { tx: SrtpContext::new(&keys.inbound), rx: SrtpContext::new(&keys.outbound) };
    s.set_srtp(leg, Some(keys));
    phone
}

impl Phone {
    fn rtp(&mut self, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        self.protect(pkt(0, seq, ts, ssrc, payload), false)
    }

    fn protect(&mut self, mut p: Vec<u8>, rtcp: bool) -> Vec<u8> {
        let n = p.len();
        p.resize(n + MAX_OVERHEAD, 0);
        let len = if rtcp { self.tx.protect_rtcp(&mut p, n) } else { self.tx.protect_rtp(&mut p, n) }.unwrap();
        p.truncate(len);
        p
    }

    /// Decrypts what FlowPBX sent the phone.
    fn open(&mut self, p: &[u8], rtcp: bool) -> Result<Vec<u8>, crate::srtp::SrtpError> {
        let mut b = p.to_vec();
        let n = if rtcp { self.rx.unprotect_rtcp(&mut b) } else { self.rx.unprotect_rtp(&mut b) }?;
        b.truncate(n);
        Ok(b)
    }
}

fn sent(s: &mut Session, leg: LegId, from: &str, p: Vec<u8>, now: Instant) -> Option<(Forward, Vec<u8>)> {
    let mut p = p;
    let f = feed(s, leg, StreamKind::Rtp, addr(from), &mut p, now)?;
    Some((f, p))
}

#[test]
fn an_srtp_phone_and_a_plain_trunk_hear_each_other() {
    for suite in SrtpSuite::ALL {
        let t0 = Instant::now();
        let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
        let mut phone = srtp_leg(&mut s, LegId::A, suite);
        s.bridge();
        assert!(s.is_srtp(LegId::A) && !s.is_srtp(LegId::B));
        for i in 0..20u16 {
            let now = t0 + ms(20 * u64::from(i));
            // phone → trunk: decrypted, rewritten, plain
            let (f, out) = sent(&mut s, LegId::A, A_SDP, phone.rtp(100 + i, 160 * u32::from(i), 0xaaaa, &[i as u8; 160]), now).unwrap();
            assert_eq!((f.leg, f.to, f.len), (LegId::B, addr(B_SDP), 172), "{suite}");
            let p = RtpPacket::parse(&out).unwrap();
            assert_eq!(p.header.ssrc, s.output_ssrc(LegId::B));
            assert_eq!(p.payload, &[i as u8; 160][..], "{suite}: the trunk gets the plain audio");
            // trunk → phone: rewritten, then encrypted with FlowPBX's key
            let (f, out) = sent(&mut s, LegId::B, B_SDP, pkt(0, 7 + i, 160 * u32::from(i), 0xbbbb, &[0x40 | i as u8; 160]), now).unwrap();
            assert_eq!((f.leg, f.to, f.len), (LegId::A, addr(A_SDP), 172 + suite.rtp_tag_len()), "{suite}");
            assert_ne!(&out[12..172], &[0x40 | i as u8; 160][..], "{suite}: encrypted on the wire");
            let plain = phone.open(&out, false).unwrap();
            let p = RtpPacket::parse(&plain).unwrap();
            assert_eq!(p.header.ssrc, s.output_ssrc(LegId::A));
            assert_eq!(p.payload, &[0x40 | i as u8; 160][..], "{suite}: the phone decrypts the trunk's audio");
        }
        let st = s.stats();
        assert_eq!(st.a.srtp, Some(suite));
        assert_eq!(st.b.srtp, None);
        assert_eq!(st.a.received.packets, 20);
        assert_eq!(st.a.received.bytes, 20 * 172, "counted as the plain packets");
        assert_eq!((st.a.srtp_auth_failures, st.a.srtp_replays, st.a.dropped, st.a.refused), (0, 0, 0, 0));
    }
}

#[test]
fn a_tampered_a_replayed_and_a_plain_packet_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_80);
    s.bridge();
    let first = phone.rtp(1, 0, 0xaaaa, &[1; 160]);
    let second = phone.rtp(2, 160, 0xaaaa, &[2; 160]);
    // forged packets from an injector, before anything latched: not authentic, so they
    // neither latch nor count as refused sources
    let mut forged = first.clone();
    forged[20] ^= 0x01;
    assert!(sent(&mut s, LegId::A, INJECTOR, forged.clone(), t0).is_none());
    assert!(sent(&mut s, LegId::A, A_SDP, forged, t0).is_none(), "a bit flipped in the payload");
    let mut bad_tag = first.clone();
    let n = bad_tag.len();
    bad_tag[n - 1] ^= 0x80;
    assert!(sent(&mut s, LegId::A, A_SDP, bad_tag, t0).is_none(), "a bit flipped in the tag");
    assert!(sent(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 0xaaaa, &[1; 160]), t0).is_none(), "plain RTP on an SRTP leg");
    assert!(latched_events(&mut s).is_empty());
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_SDP)));
    // the genuine packets pass, once each
    assert!(sent(&mut s, LegId::A, A_SDP, first.clone(), t0).is_some());
    assert!(sent(&mut s, LegId::A, A_SDP, second.clone(), t0 + ms(20)).is_some());
    assert!(sent(&mut s, LegId::A, A_SDP, first, t0 + ms(30)).is_none(), "replayed");
    assert!(sent(&mut s, LegId::A, A_SDP, second.clone(), t0 + ms(40)).is_none(), "replayed");
    // a replay from elsewhere is no way to steal the latch either
    assert!(sent(&mut s, LegId::A, INJECTOR, second, t0 + ms(50)).is_none());
    assert!(drain(&mut s).is_empty(), "nothing reaches the trunk");
    let st = s.stats();
    assert_eq!(st.a.srtp_auth_failures, 4);
    assert_eq!(st.a.srtp_replays, 3);
    assert_eq!((st.a.received.packets, st.a.refused, st.b.sent_packets), (2, 0, 2));
}

#[test]
fn rollover_across_sequence_65535_both_ways() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AeadAes128Gcm);
    s.bridge();
    // phone → trunk across its wrap, one late packet from before it
    let seqs: Vec<u16> = (65530..=65535).chain(0..3).chain([65529]).chain(3..6).collect();
    let packets: Vec<(u16, Vec<u8>)> = seqs.iter().map(|&q| (q, phone.rtp(q, u32::from(q) * 160, 0xaaaa, &[q as u8; 160]))).collect();
    for (i, (q, p)) in packets.into_iter().enumerate() {
        let (_, out) = sent(&mut s, LegId::A, A_SDP, p, t0 + ms(20 * i as u64)).unwrap_or_else(|| panic!("seq {q} dropped"));
        assert_eq!(RtpPacket::parse(&out).unwrap().payload, &[q as u8; 160][..]);
    }
    // trunk → phone until FlowPBX's own numbering toward the phone has wrapped
    let mut wrapped_after = None;
    let mut last = None;
    for i in 0..70_000u32 {
        let (_, out) = sent(&mut s, LegId::B, B_SDP, pkt(0, i as u16, i * 160, 0xbbbb, &[i as u8; 160]), t0 + ms(20 * u64::from(i))).unwrap();
        let plain = phone.open(&out, false).unwrap_or_else(|e| panic!("packet {i}: {e}"));
        let p = RtpPacket::parse(&plain).unwrap();
        assert_eq!(p.payload[0], i as u8);
        if last == Some(65535) {
            wrapped_after = Some(i);
        }
        last = Some(p.header.sequence);
        if wrapped_after.is_some_and(|w| i >= w + 5) {
            break;
        }
    }
    assert!(wrapped_after.is_some());
    assert_eq!(phone.rx.roc(s.output_ssrc(LegId::A)), Some(1));
}

/// Builds an RTCP receiver report of `ssrc` about `about`.
fn rr(ssrc: u32, about: u32) -> Vec<u8> {
    let mut b = Vec::new();
    rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc, reports: vec![ReportBlock { ssrc: about, fraction_lost: 64, ..Default::default() }] }], &mut b);
    b
}

#[test]
fn srtcp_both_ways_and_tampered_srtcp_is_counted() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_32);
    s.bridge();
    sent(&mut s, LegId::A, A_SDP, phone.rtp(1, 0, 0xaaaa, &[0; 160]), t0).unwrap();
    sent(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).unwrap();
    let a_rtcp = "192.0.2.10:4001";
    // the phone's SRTCP reaches the trunk as plain RTCP, SSRCs rewritten
    let mut srtcp = phone.protect(rr(0xaaaa, s.output_ssrc(LegId::A)), true);
    let f = feed(&mut s, LegId::A, StreamKind::Rtcp, addr(a_rtcp), &mut srtcp, t0 + ms(10)).unwrap();
    assert_eq!((f.leg, f.stream, f.to), (LegId::B, StreamKind::Rtcp, addr("198.51.100.20:5001")));
    match &rtcp::parse_compound(&srtcp[..f.len]).unwrap()[0] {
        RtcpPacket::ReceiverReport { ssrc, reports } => {
            assert_eq!(*ssrc, s.output_ssrc(LegId::B));
            assert_eq!(reports[0].ssrc, 0xbbbb);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.stats().a.remote.fraction_lost, 0.25, "the phone's report was read");
    // the trunk's RTCP reaches the phone as SRTCP (with the 80-bit tag even on the _32 suite)
    let mut plain = rr(0xbbbb, s.output_ssrc(LegId::B));
    let plain_len = plain.len();
    let f = feed(&mut s, LegId::B, StreamKind::Rtcp, addr("198.51.100.20:5001"), &mut plain, t0 + ms(20)).unwrap();
    assert_eq!((f.leg, f.stream, f.to), (LegId::A, StreamKind::Rtcp, addr(a_rtcp)));
    assert_eq!(f.len, plain_len + 14);
    let opened = phone.open(&plain, true).unwrap();
    assert!(
        matches!(&rtcp::parse_compound(&opened).unwrap()[0], RtcpPacket::ReceiverReport { ssrc, reports } if *ssrc == s.output_ssrc(LegId::A) && reports[0].ssrc == 0xaaaa)
    );
    // tampered, replayed and plain RTCP from the phone's address are dropped and counted
    let good = phone.protect(rr(0xaaaa, s.output_ssrc(LegId::A)), true);
    let mut tampered = good.clone();
    tampered[12] ^= 1;
    assert!(feed(&mut s, LegId::A, StreamKind::Rtcp, addr(a_rtcp), &mut tampered, t0 + ms(30)).is_none());
    assert!(feed(&mut s, LegId::A, StreamKind::Rtcp, addr(a_rtcp), &mut good.clone(), t0 + ms(31)).is_some());
    assert!(feed(&mut s, LegId::A, StreamKind::Rtcp, addr(a_rtcp), &mut good.clone(), t0 + ms(32)).is_none());
    assert!(feed(&mut s, LegId::A, StreamKind::Rtcp, addr(a_rtcp), &mut rr(0xaaaa, 1), t0 + ms(33)).is_none());
    let st = s.stats();
    assert_eq!((st.a.srtp_auth_failures, st.a.srtp_replays), (2, 1));
    assert_eq!(st.a.remote.rtcp_packets, 2);
}

#[test]
fn srtcp_on_an_rtcp_mux_srtp_leg() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, RemoteMedia { rtcp_mux: true, ..remote(A_SDP, &[CodecSpec::pcmu()]) }, t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AeadAes128Gcm);
    s.bridge();
    sent(&mut s, LegId::A, A_SDP, phone.rtp(1, 0, 0xaaaa, &[0; 160]), t0).unwrap();
    sent(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).unwrap();
    // muxed SRTCP on the RTP port: told apart by its clear header, then unprotected as SRTCP
    let mut srtcp = phone.protect(rr(0xaaaa, s.output_ssrc(LegId::A)), true);
    let f = feed(&mut s, LegId::A, StreamKind::Rtp, addr(A_SDP), &mut srtcp, t0).unwrap();
    assert_eq!((f.leg, f.stream), (LegId::B, StreamKind::Rtcp));
    let mut plain = rr(0xbbbb, s.output_ssrc(LegId::B));
    let f = feed(&mut s, LegId::B, StreamKind::Rtcp, addr("198.51.100.20:5001"), &mut plain, t0).unwrap();
    assert_eq!((f.leg, f.stream, f.to), (LegId::A, StreamKind::Rtp, addr(A_SDP)));
    assert!(phone.open(&plain, true).is_ok());
}

#[test]
fn what_flowpbx_makes_for_an_srtp_leg_is_encrypted() {
    let t0 = Instant::now();
    let te = CodecSpec::telephone_event(101, 8000);
    let mut s = session(&[CodecSpec::pcmu(), te.clone()], &[CodecSpec::pcmu()], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_80);
    // a prompt, then a digit, then FlowPBX's own RTCP reports
    s.play(LegId::A, PlayRequest::once(Prompt::from_samples("p", vec![1000; 1600])), t0);
    let out = run(&mut s, t0, t0 + ms(300));
    s.send_dtmf(LegId::A, '5', ms(100), t0 + ms(300)).unwrap();
    let mut out2 = run(&mut s, t0 + ms(300), t0 + ms(6000));
    let mut all = out;
    all.append(&mut out2);
    let rtp_out: Vec<&Transmit> = all.iter().map(|(_, t)| t).filter(|t| t.leg == LegId::A && t.stream == StreamKind::Rtp).collect();
    let rtcp_out: Vec<&Transmit> = all.iter().map(|(_, t)| t).filter(|t| t.leg == LegId::A && t.stream == StreamKind::Rtcp).collect();
    assert!(rtp_out.len() >= 10 && !rtcp_out.is_empty());
    let mut audio = 0;
    let mut digits = 0;
    for t in rtp_out {
        assert!(RtpPacket::parse(&t.data).is_ok(), "the header stays clear");
        let plain = phone.open(&t.data, false).expect("an SRTP packet the phone opens");
        match RtpPacket::parse(&plain).unwrap().header.payload_type {
            0 => audio += 1,
            101 => digits += 1,
            other => panic!("payload type {other}"),
        }
    }
    assert!(audio >= 10 && digits >= 3, "{audio} audio, {digits} DTMF packets");
    for t in rtcp_out {
        let plain = phone.open(&t.data, true).expect("SRTCP the phone opens");
        assert!(matches!(&rtcp::parse_compound(&plain).unwrap()[0], RtcpPacket::SenderReport { ssrc, .. } if *ssrc == s.output_ssrc(LegId::A)));
    }
}

#[test]
fn digits_recording_and_transcoding_see_the_decrypted_audio() {
    let t0 = Instant::now();
    let te = CodecSpec::telephone_event(101, 8000);
    // the trunk speaks Opus only: audio from the phone is decoded, so it must be plain
    let mut s = session(&[CodecSpec::pcmu(), te.clone()], &[CodecSpec::opus(111)], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AeadAes128Gcm);
    s.bridge();
    s.start_recording(RecordMode::Both, t0);
    // one constant tone: an encrypted payload would decode to noise
    let tone = crate::g711::linear_to_ulaw(4000);
    let mut opus_out = 0;
    for i in 0..25u16 {
        let p = phone.rtp(i, u32::from(i) * 160, 0xaaaa, &[tone; 160]);
        let _ = sent(&mut s, LegId::A, A_SDP, p, t0 + ms(20 * u64::from(i)));
        opus_out += drain(&mut s).iter().filter(|t| t.leg == LegId::B).count();
    }
    assert!(opus_out >= 20, "transcoded toward the trunk: {opus_out}");
    // an RFC 4733 digit inside SRTP
    for (k, d) in dtmf_packets(101, 4000, 9, 0xaaaa, 25).into_iter().enumerate() {
        let p = phone.protect(d, false);
        let _ = sent(&mut s, LegId::A, A_SDP, p, t0 + ms(500 + 20 * k as u64));
    }
    s.handle_timeout(t0 + ms(900));
    let digits: Vec<char> = events(&mut s).into_iter().filter_map(|e| if let MediaEvent::Dtmf(d) = e { Some(d.digit) } else { None }).collect();
    assert_eq!(digits, vec!['9']);
    s.stop_recording();
    let samples: Vec<i16> = std::iter::from_fn(|| s.poll_recording()).flatten().collect();
    let left: Vec<i16> = samples.chunks(2).map(|c| c[0]).filter(|&v| v != 0).collect();
    assert!(left.len() > 1000, "the phone's side is in the recording");
    let expected = crate::g711::ulaw_to_linear(tone);
    assert!(left.iter().all(|&v| v == expected), "the recorder got the plain audio");
}

#[test]
fn srtp_to_srtp_with_different_suites_keys_never_cross() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let mut a = srtp_leg(&mut s, LegId::A, SrtpSuite::AeadAes128Gcm);
    let mut b = srtp_leg(&mut s, LegId::B, SrtpSuite::AesCm128HmacSha1_32);
    s.bridge();
    let (f, out) = sent(&mut s, LegId::A, A_SDP, a.rtp(10, 0, 0xaaaa, &[7; 160]), t0).unwrap();
    assert_eq!(f.len, 172 + 4);
    assert!(a.open(&out, false).is_err(), "A's keys do not open what goes to B");
    assert_eq!(RtpPacket::parse(&b.open(&out, false).unwrap()).unwrap().payload, &[7; 160][..]);
    let (f, out) = sent(&mut s, LegId::B, B_SDP, b.rtp(20, 0, 0xbbbb, &[8; 160]), t0).unwrap();
    assert_eq!(f.len, 172 + 16);
    assert_eq!(RtpPacket::parse(&a.open(&out, false).unwrap()).unwrap().payload, &[8; 160][..]);
}

#[test]
fn the_same_keys_again_keep_the_state_new_keys_start_afresh() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let keys =
        SrtpKeys { inbound: SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap(), outbound: SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap() };
    s.set_srtp(LegId::A, Some(keys.clone()));
    s.bridge();
    let mut tx = SrtpContext::new(&keys.inbound);
    let mut p = pkt(0, 1, 0, 0xaaaa, &[0; 160]);
    p.resize(172 + MAX_OVERHEAD, 0);
    let n = tx.protect_rtp(&mut p, 172).unwrap();
    p.truncate(n);
    assert!(sent(&mut s, LegId::A, A_SDP, p.clone(), t0).is_some());
    // a re-INVITE repeating the a=crypto: the replay list carries on
    s.set_srtp(LegId::A, Some(keys.clone()));
    assert!(sent(&mut s, LegId::A, A_SDP, p.clone(), t0).is_none());
    assert_eq!(s.stats().a.srtp_replays, 1);
    // a re-INVITE where only FlowPBX's key changes: the phone's context carries on (its
    // replay list, its rollover counter), what FlowPBX sends uses the new key
    let mut rekeyed = keys.clone();
    rekeyed.outbound = SrtpKey::generate(SrtpSuite::AeadAes128Gcm).unwrap();
    s.set_srtp(LegId::A, Some(rekeyed.clone()));
    assert!(sent(&mut s, LegId::A, A_SDP, p.clone(), t0).is_none());
    assert_eq!(s.stats().a.srtp_replays, 2);
    let (_, out) = sent(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[9; 160]), t0).unwrap();
    assert_eq!(out.len(), 172 + 16, "GCM's tag toward the phone now");
    assert!(SrtpContext::new(&rekeyed.outbound).unprotect_rtp(&mut out.clone()).is_ok());
    assert_eq!(s.stats().a.srtp, Some(SrtpSuite::AeadAes128Gcm));
    // new keys both ways: the old key's packets no longer authenticate
    let fresh = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_80);
    assert!(sent(&mut s, LegId::A, A_SDP, p.clone(), t0).is_none());
    assert_eq!(s.stats().a.srtp_auth_failures, 1);
    drop(fresh);
    // back to plain RTP
    s.set_srtp(LegId::A, None);
    assert!(sent(&mut s, LegId::A, A_SDP, pkt(0, 2, 160, 0xaaaa, &[0; 160]), t0 + ms(20)).is_some());
    assert_eq!(s.stats().a.srtp, None);
}

#[test]
fn no_room_for_the_tag_drops_and_counts() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let _phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_80);
    s.bridge();
    let mut exact = pkt(0, 1, 0, 0xbbbb, &[0; 160]);
    let n = exact.len();
    assert!(s.handle_datagram(LegId::B, StreamKind::Rtp, addr(B_SDP), &mut exact, n, t0).is_none());
    assert_eq!(s.stats().b.dropped, 1);
}

#[test]
fn a_conference_gets_the_decrypted_payload() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    let mut phone = srtp_leg(&mut s, LegId::A, SrtpSuite::AesCm128HmacSha1_80);
    s.join_conference(LegId::A, 3);
    let mut p = phone.rtp(5, 800, 0xaaaa, &[0x33; 160]);
    assert!(feed(&mut s, LegId::A, StreamKind::Rtp, addr(A_SDP), &mut p, t0).is_none());
    let c = s.take_conference_packet().unwrap();
    assert_eq!((c.tag, c.sequence, c.timestamp), (3, 5, 800));
    assert_eq!(&p[c.payload], &[0x33; 160][..]);
    // the room's frames to the phone are encrypted
    assert!(s.send_conference_frame(LegId::A, CodecKind::Pcmu, &[0x44; 160], 160, t0));
    let t = drain(&mut s).pop().unwrap();
    assert_eq!(t.data.len(), 172 + 10);
    assert_eq!(RtpPacket::parse(&phone.open(&t.data, false).unwrap()).unwrap().payload, &[0x44; 160][..]);
}
