//! Session tests: two fake endpoints, bytes in, bytes out, a made-up clock.

use super::*;
use crate::codec::CodecKind;
use crate::dtmf::TelephoneEvent;
use crate::latch::{Learning, CONTINUITY_WINDOW};
use crate::player::Prompt;

#[path = "session_srtp_tests.rs"]
mod srtp;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const A_SDP: &str = "192.0.2.10:4000";
const B_SDP: &str = "198.51.100.20:5000";

fn legs(a: &[CodecSpec], b: &[CodecSpec]) -> (RemoteMedia, RemoteMedia) {
    (RemoteMedia::new(Some(addr(A_SDP)), LegCodecs::new(a, None).unwrap()), RemoteMedia::new(Some(addr(B_SDP)), LegCodecs::new(b, None).unwrap()))
}

fn remote(at: &str, codecs: &[CodecSpec]) -> RemoteMedia {
    RemoteMedia::new(Some(addr(at)), LegCodecs::new(codecs, None).unwrap())
}

fn session(a: &[CodecSpec], b: &[CodecSpec], t0: Instant) -> Session {
    let mut s = Session::new(SessionConfig::default(), t0, Duration::from_secs(1_700_000_000), 0xfeed_beef_1234);
    let (ra, rb) = legs(a, b);
    s.set_remote(LegId::A, ra, t0);
    s.set_remote(LegId::B, rb, t0);
    s
}

fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    rtp::build(&RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc }, payload, &mut b).unwrap();
    b
}

/// Hands `p` to the session as a datagram with room for an SRTP trailer; afterwards `p` is
/// what the session made of it: the forwarded packet (`p.len() == forward.len`), or the
/// datagram as it was left.
fn feed(s: &mut Session, leg: LegId, stream: StreamKind, from: SocketAddr, p: &mut Vec<u8>, now: Instant) -> Option<Forward> {
    let n = p.len();
    p.resize(n + crate::srtp::MAX_OVERHEAD, 0);
    let f = s.handle_datagram(leg, stream, from, p, n, now);
    p.truncate(f.map_or(n, |f| f.len));
    f
}

fn send(s: &mut Session, leg: LegId, from: &str, mut p: Vec<u8>, now: Instant) -> Option<(Forward, RtpHeader, Vec<u8>)> {
    let f = feed(s, leg, StreamKind::Rtp, addr(from), &mut p, now)?;
    let h = RtpPacket::parse(&p[..f.len]).unwrap().header;
    Some((f, h, p))
}

fn drain(s: &mut Session) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn events(s: &mut Session) -> Vec<MediaEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Runs the session's timers from `from` to `to` in 5 ms steps, collecting transmits.
fn run(s: &mut Session, from: Instant, to: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    let mut now = from;
    while now <= to {
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
        out.extend(drain(s).into_iter().map(|t| (now, t)));
        now += ms(5);
    }
    out
}

/// A caller behind NAT: its SDP names a private address, its packets come from elsewhere.
const A_PRIVATE: &str = "192.168.1.10:4000";
const A_NAT: &str = "203.0.113.5:31000";
const INJECTOR: &str = "198.18.0.66:7078";

/// Sends `n` consecutive packets (sequence from `seq`, 20 ms apart from `at`) from `from`;
/// returns which were forwarded.
fn burst(s: &mut Session, leg: LegId, from: &str, ssrc: u32, seq: u16, n: u16, at: Instant) -> Vec<bool> {
    (0..n)
        .map(|i| {
            let q = seq.wrapping_add(i);
            send(s, leg, from, pkt(0, q, u32::from(q) * 160, ssrc, &[0x11; 160]), at + ms(20 * u64::from(i))).is_some()
        })
        .collect()
}

fn latched_events(s: &mut Session) -> Vec<(LegId, StreamKind, SocketAddr)> {
    events(s).into_iter().filter_map(|e| if let MediaEvent::Latched { leg, stream, addr } = e { Some((leg, stream, addr)) } else { None }).collect()
}

#[test]
fn passthrough_rewrites_header_and_latches() {
    let t0 = Instant::now();
    let te_a = CodecSpec::telephone_event(101, 8000);
    let mut s = session(&[CodecSpec::pcmu(), te_a.clone()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu(), te_a]), t0);
    s.bridge();
    // the caller is behind NAT: its first three packets serve the probation
    assert_eq!(burst(&mut s, LegId::A, A_NAT, 0xaaaa, 497, 3, t0), [false; 3]);
    let (f, h, p) = send(&mut s, LegId::A, A_NAT, pkt(0, 500, 8000, 0xaaaa, &[0x55; 160]), t0 + ms(60)).unwrap();
    assert_eq!(f.leg, LegId::B);
    assert_eq!(f.stream, StreamKind::Rtp);
    assert_eq!(f.to, addr(B_SDP), "B not latched yet: its SDP address");
    assert_eq!(f.len, 172);
    assert_eq!(h.ssrc, s.output_ssrc(LegId::B));
    assert_ne!(h.ssrc, 0xaaaa);
    assert!(h.marker);
    assert_eq!(&p[12..172], &[0x55; 160][..]);
    assert!(latched_events(&mut s).contains(&(LegId::A, StreamKind::Rtp, addr(A_NAT))));
    // the callee answers from its SDP address; its audio goes to where the caller really is
    let (f, _, _) = send(&mut s, LegId::B, B_SDP, pkt(0, 9, 100, 0xbbbb, &[1; 160]), t0 + ms(65)).unwrap();
    assert_eq!(f.to, addr(A_NAT));
    let (_, h2, _) = send(&mut s, LegId::A, A_NAT, pkt(0, 501, 8160, 0xaaaa, &[0x55; 160]), t0 + ms(80)).unwrap();
    assert_eq!((h2.sequence, h2.timestamp, h2.marker), (h.sequence.wrapping_add(1), h.timestamp.wrapping_add(160), false));
    // a stranger is refused while the caller's address is live
    assert!(send(&mut s, LegId::A, "192.0.2.99:666", pkt(0, 502, 8320, 0xcccc, &[0; 160]), t0 + ms(100)).is_none());
    let st = s.stats();
    assert_eq!(st.a.received.packets, 2);
    assert_eq!((st.a.refused, st.a.dropped), (4, 0));
    assert_eq!(st.b.sent_packets, 2);
}

#[test]
fn learning_prefers_the_sdp_address() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    // a NAT-looking source is part-way through its probation ...
    assert_eq!(burst(&mut s, LegId::A, A_NAT, 0xaaaa, 1, 3, t0), [false; 3]);
    // ... when the SDP's own address sends: it latches at once, its first packet relayed
    assert!(send(&mut s, LegId::A, A_PRIVATE, pkt(0, 70, 0, 0x5d9, &[0; 160]), t0 + ms(61)).is_some());
    assert_eq!(latched_events(&mut s), vec![(LegId::A, StreamKind::Rtp, addr(A_PRIVATE))]);
    // the other source finishing its four packets changes nothing now
    assert!(send(&mut s, LegId::A, A_NAT, pkt(0, 4, 640, 0xaaaa, &[0; 160]), t0 + ms(80)).is_none());
    assert_eq!(burst(&mut s, LegId::A, A_NAT, 0xaaaa, 5, 10, t0 + ms(100)), [false; 10]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_PRIVATE)));
    // the callee, public and exact, latches on its first packet without probation
    assert!(send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).is_some());
    assert_eq!(s.stats().b.refused, 0);
}

#[test]
fn a_third_address_during_ringing_is_ignored() {
    let t0 = Instant::now();
    // ringing: the caller's offer is known (a public address that has not sent yet), the
    // callee has answered nothing
    let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 11);
    s.set_remote(LegId::A, remote(A_SDP, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    // an injector sprays both legs with well-formed, in-sequence RTP of one SSRC
    assert_eq!(burst(&mut s, LegId::A, INJECTOR, 0x1bad, 1, 200, t0), [false; 200]);
    assert_eq!(burst(&mut s, LegId::B, INJECTOR, 0x1bad, 1, 200, t0), [false; 200]);
    // nothing latched, nothing sent anywhere
    assert!(drain(&mut s).is_empty());
    assert!(latched_events(&mut s).is_empty());
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_SDP)));
    assert_eq!(s.destination(LegId::B, StreamKind::Rtp), None);
    // the callee answers; the real parties' media flows and the injector stays out
    s.set_remote(LegId::B, remote(B_SDP, &[CodecSpec::pcmu()]), t0 + ms(4000));
    let (f, _, _) = send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0x22; 160]), t0 + ms(4001)).unwrap();
    assert_eq!(f.to, addr(A_SDP));
    let (f, _, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 0xaaaa, &[0x33; 160]), t0 + ms(4002)).unwrap();
    assert_eq!(f.to, addr(B_SDP));
    assert_eq!(burst(&mut s, LegId::A, INJECTOR, 0x1bad, 201, 50, t0 + ms(4003)), [false; 50]);
    assert_eq!(burst(&mut s, LegId::B, INJECTOR, 0x1bad, 201, 50, t0 + ms(4003)), [false; 50]);
    let st = s.stats();
    assert_eq!((st.a.refused, st.b.refused), (250, 250));
    assert_eq!((st.a.received.packets, st.b.received.packets), (1, 1));
    assert_eq!((st.a.sent_packets, st.b.sent_packets), (1, 1));
}

#[test]
fn probation_of_n_in_sequence_packets_latches_a_nat_source() {
    for probation in [0u32, 1, 2, 4, 7] {
        let t0 = Instant::now();
        let cfg = SessionConfig { strict: StrictRtp { probation, ..StrictRtp::default() }, ..SessionConfig::default() };
        let mut s = Session::new(cfg, t0, Duration::ZERO, 5);
        s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
        s.set_remote(LegId::B, remote(B_SDP, &[CodecSpec::pcmu()]), t0);
        s.bridge();
        let n = probation.max(1) as usize;
        let got = burst(&mut s, LegId::A, A_NAT, 0xaaaa, 65534, 10, t0);
        let mut want = vec![false; n - 1];
        want.resize(10, true);
        assert_eq!(got, want, "probation {probation} (across the sequence wrap)");
        assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_NAT)));
        assert_eq!(s.stats().a.refused, n as u64 - 1);
    }
    // the SDP's IP on another port is a NAT that kept the address: the same probation
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    assert_eq!(burst(&mut s, LegId::A, "192.0.2.10:4444", 9, 1, 5, t0), [false, false, false, true, true]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("192.0.2.10:4444")));
}

#[test]
fn a_gap_or_an_ssrc_change_restarts_probation() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    let mut at = t0;
    let mut one = |s: &mut Session, from: &str, seq: u16, ssrc: u32| {
        at += ms(20);
        send(s, LegId::A, from, pkt(0, seq, u32::from(seq) * 160, ssrc, &[0; 160]), at).is_some()
    };
    // 1, 2, 3, then a gap (5): counting starts again at 5
    assert!(!one(&mut s, A_NAT, 1, 0xa) && !one(&mut s, A_NAT, 2, 0xa) && !one(&mut s, A_NAT, 3, 0xa));
    assert!(!one(&mut s, A_NAT, 5, 0xa) && !one(&mut s, A_NAT, 6, 0xa) && !one(&mut s, A_NAT, 7, 0xa));
    // a new SSRC: again
    assert!(!one(&mut s, A_NAT, 8, 0xb) && !one(&mut s, A_NAT, 9, 0xb) && !one(&mut s, A_NAT, 10, 0xb));
    // a repeated sequence number: again
    assert!(!one(&mut s, A_NAT, 10, 0xb) && !one(&mut s, A_NAT, 11, 0xb) && !one(&mut s, A_NAT, 12, 0xb));
    // another source in between: both restart
    assert!(!one(&mut s, "203.0.113.9:5000", 13, 0xb) && !one(&mut s, A_NAT, 13, 0xb));
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_PRIVATE)), "nothing latched yet");
    assert!(!one(&mut s, A_NAT, 14, 0xb) && !one(&mut s, A_NAT, 15, 0xb));
    assert!(one(&mut s, A_NAT, 16, 0xb), "four in a row");
    assert_eq!(s.stats().a.refused, 16);
}

#[test]
fn after_a_hold_an_injector_is_refused_and_the_endpoint_resuming_is_accepted() {
    for caller in [A_SDP, A_NAT] {
        let t0 = Instant::now();
        let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
        if caller == A_NAT {
            s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
        }
        s.bridge();
        burst(&mut s, LegId::A, caller, 0xaaaa, 100, 10, t0);
        burst(&mut s, LegId::B, B_SDP, 0xbbbb, 300, 10, t0);
        assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(caller)));
        // hold: both silent for 10 s (the old rule re-latched after 2 s of silence)
        let after = t0 + Duration::from_secs(10);
        // an injector with its own SSRC, in sequence, on both legs, for a long while
        assert_eq!(burst(&mut s, LegId::A, INJECTOR, 0x1bad, 1, 100, after), [false; 100], "{caller}");
        assert_eq!(burst(&mut s, LegId::B, INJECTOR, 0x1bad, 1, 100, after), [false; 100]);
        assert!(drain(&mut s).is_empty(), "nothing sent toward the injector");
        assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(caller)));
        assert_eq!(s.destination(LegId::B, StreamKind::Rtp), Some(addr(B_SDP)));
        // the caller resumes from its address, with a new SSRC and numbering: accepted at once
        let resume = after + Duration::from_secs(3);
        let (f, _, _) = send(&mut s, LegId::A, caller, pkt(0, 9000, 1, 0xa2a2, &[0; 160]), resume).unwrap();
        assert_eq!(f.to, addr(B_SDP));
        let (f, _, _) = send(&mut s, LegId::B, B_SDP, pkt(0, 50, 1, 0xb2b2, &[0; 160]), resume).unwrap();
        assert_eq!(f.to, addr(caller));
        let st = s.stats();
        let probation = if caller == A_NAT { 3 } else { 0 };
        assert_eq!((st.a.refused, st.b.refused), (100 + probation, 100));
    }
}

#[test]
fn a_nat_rebinding_with_continuity_is_followed() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    burst(&mut s, LegId::A, A_NAT, 0xaaaa, 1, 10, t0);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_NAT)));
    let _ = events(&mut s);
    // the NAT gives the stream a new port: same SSRC, the next sequence number: at once
    assert!(send(&mut s, LegId::A, "203.0.113.5:31002", pkt(0, 11, 1760, 0xaaaa, &[0; 160]), t0 + ms(200)).is_some());
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("203.0.113.5:31002")));
    // then a new public IP (a mobile handover), a few packets lost on the way: at once
    assert!(send(&mut s, LegId::A, "198.51.100.77:40000", pkt(0, 15, 2400, 0xaaaa, &[0; 160]), t0 + ms(300)).is_some());
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("198.51.100.77:40000")));
    assert_eq!(latched_events(&mut s), vec![(LegId::A, StreamKind::Rtp, addr("203.0.113.5:31002")), (LegId::A, StreamKind::Rtp, addr("198.51.100.77:40000"))]);
    // the latched SSRC from elsewhere without continuity: behind, equal, or too far ahead
    for seq in [14u16, 15, 15 + CONTINUITY_WINDOW + 1, 30_000] {
        assert!(send(&mut s, LegId::A, INJECTOR, pkt(0, seq, 0, 0xaaaa, &[0; 160]), t0 + ms(400)).is_none(), "{seq}");
    }
    // and a new SSRC from the old address after a pause: refused (the stream moved on)
    assert!(send(&mut s, LegId::A, A_NAT, pkt(0, 1, 0, 0x77, &[0; 160]), t0 + ms(500)).is_none());
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("198.51.100.77:40000")));
    // a re-INVITE with a new address starts learning again, preferring it
    s.set_remote(LegId::A, remote("192.0.2.77:7000", &[CodecSpec::pcmu()]), t0 + ms(3000));
    assert!(send(&mut s, LegId::A, "192.0.2.77:7000", pkt(0, 9, 320, 0xeeee, &[0; 160]), t0 + ms(3001)).is_some());
}

#[test]
fn a_nat_port_after_a_long_silence_serves_probation_on_the_same_ip_only() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    burst(&mut s, LegId::A, A_NAT, 0xaaaa, 1, 10, t0);
    // while the latched source talks, another port of its IP with a new SSRC gets nowhere
    assert_eq!(burst(&mut s, LegId::A, "203.0.113.5:32000", 0xcc, 1, 6, t0 + ms(200)), [false; 6]);
    // after 2 s of silence (an inactive hold outliving the NAT mapping) it may, after probation
    let later = t0 + Duration::from_secs(40);
    assert_eq!(burst(&mut s, LegId::A, "203.0.113.5:32000", 0xcc, 100, 5, later), [false, false, false, true, true]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("203.0.113.5:32000")));
    // a leg latched to its exact SDP address never moves that way: it is not behind NAT
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    burst(&mut s, LegId::A, A_SDP, 0xaaaa, 1, 10, t0);
    assert_eq!(burst(&mut s, LegId::A, "192.0.2.10:4010", 0xcc, 100, 20, later), [false; 20]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr(A_SDP)));
}

#[test]
fn learning_any_takes_another_ip_after_probation_but_never_after_latching() {
    let t0 = Instant::now();
    let cfg = SessionConfig { strict: StrictRtp { learning: Learning::Any, probation: 4 }, ..SessionConfig::default() };
    let mut s = Session::new(cfg, t0, Duration::ZERO, 9);
    s.set_remote(LegId::A, remote(A_SDP, &[CodecSpec::pcmu()]), t0);
    s.set_remote(LegId::B, remote(B_SDP, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    // a gateway that sends from another address than its (public) SDP: learned after probation
    assert_eq!(burst(&mut s, LegId::A, "192.0.2.200:9000", 0xa, 1, 5, t0), [false, false, false, true, true]);
    // once latched, the lock is the same as in the default mode
    assert_eq!(burst(&mut s, LegId::A, INJECTOR, 0x1bad, 1, 20, t0 + Duration::from_secs(30)), [false; 20]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtp), Some(addr("192.0.2.200:9000")));
}

#[test]
fn rtcp_is_bound_to_its_rtp_stream() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::A, remote(A_PRIVATE, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).unwrap();
    let rr = |ssrc: u32| {
        let mut b = Vec::new();
        rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc, reports: vec![] }], &mut b);
        b
    };
    let rtcp_in = |s: &mut Session, from: &str, ssrc: u32| feed(s, LegId::A, StreamKind::Rtcp, addr(from), &mut rr(ssrc), t0 + ms(500)).is_some();
    // before A's RTP latched: only the SDP's RTCP address (its RTP port + 1)
    assert!(!rtcp_in(&mut s, "203.0.113.5:31001", 0xaaaa));
    assert!(rtcp_in(&mut s, "192.168.1.10:4001", 0xaaaa));
    // RTP latches to the NAT address
    burst(&mut s, LegId::A, A_NAT, 0xaaaa, 1, 5, t0 + ms(100));
    let _ = events(&mut s);
    // another IP, even with the right SSRC and the right port: refused
    assert!(!rtcp_in(&mut s, "198.18.0.66:31001", 0xaaaa));
    // the latched IP on a port that is neither the SDP's RTCP port nor RTP + 1: refused
    assert!(!rtcp_in(&mut s, "203.0.113.5:40001", 0xaaaa));
    // the right place with another sender SSRC: refused
    assert!(!rtcp_in(&mut s, "203.0.113.5:31001", 0x1bad));
    // the right place and SSRC (RTP + 1): accepted, and RTCP to A now goes there
    assert!(rtcp_in(&mut s, "203.0.113.5:31001", 0xaaaa));
    assert_eq!(latched_events(&mut s), vec![(LegId::A, StreamKind::Rtcp, addr("203.0.113.5:31001"))]);
    assert_eq!(s.destination(LegId::A, StreamKind::Rtcp), Some(addr("203.0.113.5:31001")));
    // the SDP's RTCP port on the latched IP (a NAT keeping ports): accepted too
    assert!(rtcp_in(&mut s, "203.0.113.5:4001", 0xaaaa));
    // with rtcp-mux only the RTP source itself
    let mut m = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    m.set_remote(LegId::A, RemoteMedia { rtcp_mux: true, ..remote(A_SDP, &[CodecSpec::pcmu()]) }, t0);
    m.bridge();
    send(&mut m, LegId::A, A_SDP, pkt(0, 1, 0, 0xaaaa, &[0; 160]), t0).unwrap();
    assert!(feed(&mut m, LegId::A, StreamKind::Rtp, addr("192.0.2.10:4001"), &mut rr(0xaaaa), t0).is_none());
    assert!(feed(&mut m, LegId::A, StreamKind::Rtp, addr(INJECTOR), &mut rr(0xaaaa), t0).is_none());
    assert!(feed(&mut m, LegId::A, StreamKind::Rtp, addr(A_SDP), &mut rr(0x1bad), t0).is_none());
    assert_eq!(m.stats().a.refused, 3);
    assert_eq!(s.stats().a.refused, 4 + 3, "RTCP refusals and the probation");
}

#[test]
fn addresses_a_nat_hides() {
    use crate::latch::behind_nat;
    for ip in
        ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.0.1", "100.64.0.1", "100.127.255.254", "169.254.1.1", "fd00::1", "fe80::1", "::ffff:192.168.1.1"]
    {
        assert!(behind_nat(ip.parse().unwrap()), "{ip}");
    }
    for ip in ["8.8.8.8", "127.0.0.1", "127.0.0.3", "172.32.0.1", "100.128.0.1", "192.0.2.10", "203.0.113.5", "2001:db8::1", "::1", "::ffff:8.8.8.8"] {
        assert!(!behind_nat(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn payload_types_are_remapped_between_legs() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::opus(96)], &[CodecSpec::opus(111)], t0);
    s.bridge();
    let (_, h, _) = send(&mut s, LegId::A, A_SDP, pkt(96, 1, 0, 1, &[0xfc, 0xff, 0xfe]), t0).unwrap();
    assert_eq!(h.payload_type, 111);
    let (_, h, _) = send(&mut s, LegId::B, B_SDP, pkt(111, 1, 0, 2, &[0xfc, 0xff, 0xfe]), t0).unwrap();
    assert_eq!(h.payload_type, 96);
}

#[test]
fn not_bridged_or_held_legs_get_nothing() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 1, &[0; 160]), t0).is_none());
    s.bridge();
    s.set_remote(LegId::B, RemoteMedia { direction: MediaDirection::SendOnly, ..remote(B_SDP, &[CodecSpec::pcmu()]) }, t0);
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 2, 160, 1, &[0; 160]), t0 + ms(20)).is_none());
}

#[test]
fn a_prompt_splices_into_a_bridged_stream_without_breaking_numbering() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcma()], &[CodecSpec::pcmu()], t0);
    // both PCMU to keep it passthrough
    s.set_remote(LegId::A, remote(A_SDP, &[CodecSpec::pcmu()]), t0);
    s.bridge();
    let mut last = None;
    for i in 0..5u16 {
        let (_, h, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 100 + i, 1000 + 160 * u32::from(i), 7, &[0; 160]), t0 + ms(20 * u64::from(i))).unwrap();
        last = Some(h);
    }
    let last = last.unwrap();
    // a 100 ms prompt to B, starting 20 ms after the last relayed packet
    let start = t0 + ms(100);
    let id = s.play(LegId::B, PlayRequest::once(Prompt::from_samples("p", vec![1000; 800])), start);
    // relayed audio is held back while the prompt plays
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 105, 1800, 7, &[0; 160]), start).is_none());
    let sent = run(&mut s, start, start + ms(200));
    let rtp_pkts: Vec<RtpHeader> = sent.iter().filter(|(_, t)| t.stream == StreamKind::Rtp).map(|(_, t)| RtpPacket::parse(&t.data).unwrap().header).collect();
    assert_eq!(rtp_pkts.len(), 5);
    assert_eq!(rtp_pkts[0].sequence, last.sequence.wrapping_add(1));
    assert_eq!(rtp_pkts[0].timestamp, last.timestamp.wrapping_add(160));
    assert!(rtp_pkts[0].marker);
    for w in rtp_pkts.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        assert_eq!(w[1].ssrc, w[0].ssrc);
    }
    // paced at 20 ms
    let times: Vec<Instant> = sent.iter().filter(|(_, t)| t.stream == StreamKind::Rtp).map(|(t, _)| *t).collect();
    assert_eq!(times[1] - times[0], ms(20));
    assert!(events(&mut s).contains(&MediaEvent::PlaybackFinished { leg: LegId::B, id, interrupted_by: None, completed: true }));
    // the relay resumes on the same SSRC, next sequence, timestamp advanced by the elapsed time
    let resume = start + ms(300);
    let (_, h, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 120, 4000, 7, &[0; 160]), resume).unwrap();
    let lastp = rtp_pkts[4];
    assert_eq!(h.ssrc, lastp.ssrc);
    assert_eq!(h.sequence, lastp.sequence.wrapping_add(1));
    assert!(h.marker);
    let gap = h.timestamp.wrapping_sub(lastp.timestamp);
    // the last prompt frame went out at start + 80 ms: 220 ms later = 1760 units
    assert_eq!(gap, 1760);
}

#[test]
fn hold_and_unhold_keep_continuity_and_suppress_timeouts() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    let (_, h1, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 1, &[0; 160]), t0).unwrap();
    send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 2, &[0; 160]), t0).unwrap();
    // A puts B on hold: A sendonly, B recvonly
    let (ra, rb) = legs(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()]);
    s.set_remote(LegId::A, RemoteMedia { direction: MediaDirection::SendOnly, ..ra.clone() }, t0 + ms(10));
    s.set_remote(LegId::B, RemoteMedia { direction: MediaDirection::RecvOnly, ..rb.clone() }, t0 + ms(10));
    let moh = s.play(LegId::B, PlayRequest::music_on_hold(Prompt::from_samples("moh", vec![5; 8000])), t0 + ms(10));
    // two minutes of silence from both while held: no timeout, MOH keeps flowing to B
    let sent = run(&mut s, t0 + ms(10), t0 + Duration::from_secs(120));
    assert!(events(&mut s).iter().all(|e| !matches!(e, MediaEvent::MediaTimeout { .. })));
    assert!(sent.len() > 5000);
    // unhold: A resumes with a new SSRC (a re-INVITE); B sees continuous numbering
    s.set_remote(LegId::A, ra, t0 + Duration::from_secs(120));
    s.set_remote(LegId::B, rb, t0 + Duration::from_secs(120));
    s.stop_playback(LegId::B);
    assert!(events(&mut s).contains(&MediaEvent::PlaybackFinished { leg: LegId::B, id: moh, interrupted_by: None, completed: false }));
    let last_moh = RtpPacket::parse(&sent.last().unwrap().1.data).unwrap().header;
    let (_, h, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 9000, 555, 0x1234, &[0; 160]), t0 + Duration::from_secs(120)).unwrap();
    assert_eq!(h.ssrc, h1.ssrc);
    assert_eq!(h.sequence, last_moh.sequence.wrapping_add(1));
    assert!(h.marker);
    assert!(h.timestamp.wrapping_sub(last_moh.timestamp) >= 160);
}

#[test]
fn a_silent_leg_times_out_once() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    for i in 0..100u32 {
        send(&mut s, LegId::B, B_SDP, pkt(0, i as u16, i * 160, 2, &[0; 160]), t0 + ms(20 * u64::from(i)));
    }
    // A never sends; B stops after 2 s
    let _ = run(&mut s, t0, t0 + ms(59_000));
    assert!(events(&mut s).iter().all(|e| !matches!(e, MediaEvent::MediaTimeout { .. })));
    let _ = run(&mut s, t0 + ms(59_000), t0 + ms(63_000));
    let ev = events(&mut s);
    let timeouts: Vec<_> =
        ev.iter().filter_map(|e| if let MediaEvent::MediaTimeout { leg, silent_for } = e { Some((*leg, *silent_for)) } else { None }).collect();
    assert_eq!(timeouts.len(), 2, "{ev:?}");
    assert_eq!(timeouts[0].0, LegId::A);
    assert!(timeouts[0].1 >= Duration::from_secs(60));
    assert!(timeouts[1].1 >= Duration::from_secs(60));
    let _ = run(&mut s, t0 + ms(63_000), t0 + ms(70_000));
    assert!(events(&mut s).is_empty(), "reported once");
}

fn dtmf_packets(pt: u8, ts: u32, digit: u8, ssrc: u32, first_seq: u16) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let durs = [(false, 160), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)];
    for (i, (end, d)) in durs.iter().enumerate() {
        let mut p = pkt(pt, first_seq + i as u16, ts, ssrc, &TelephoneEvent { event: digit, end: *end, volume: 10, duration: *d }.to_bytes());
        if i == 0 {
            p[1] |= 0x80;
        }
        v.push(p);
    }
    v
}

#[test]
fn rfc4733_passthrough_with_pt_mapping_and_one_event() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu(), CodecSpec::telephone_event(100, 8000)], &[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], t0);
    s.bridge();
    let mut forwarded = Vec::new();
    for (i, p) in dtmf_packets(100, 4000, 5, 9, 10).into_iter().enumerate() {
        if let Some((_, h, bytes)) = send(&mut s, LegId::A, A_SDP, p, t0 + ms(20 * i as u64)) {
            assert_eq!(h.payload_type, 101);
            forwarded.push((h, TelephoneEvent::parse(&bytes[12..16]).unwrap()));
        }
    }
    assert_eq!(forwarded.len(), 6, "every packet relayed, redundancy included");
    assert!(forwarded.iter().all(|(h, _)| h.timestamp == forwarded[0].0.timestamp));
    let ev = events(&mut s);
    let digits: Vec<_> = ev.iter().filter_map(|e| if let MediaEvent::Dtmf(d) = e { Some(*d) } else { None }).collect();
    assert_eq!(digits, vec![DigitEvent { leg: LegId::A, digit: '5', duration: ms(80), source: DtmfSource::Rfc4733 }]);
}

#[test]
fn dtmf_is_generated_when_the_other_leg_cannot_take_passthrough() {
    let t0 = Instant::now();
    // A: PCMU + te/8000, B: Opus + te/48000 -> clocks differ: generate toward B
    let mut s = session(&[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], &[CodecSpec::opus(111), CodecSpec::telephone_event(110, 48000)], t0);
    s.bridge();
    for (i, p) in dtmf_packets(101, 4000, 11, 9, 10).into_iter().enumerate() {
        assert!(send(&mut s, LegId::A, A_SDP, p, t0 + ms(20 * i as u64)).is_none());
        s.handle_timeout(t0 + ms(20 * i as u64));
    }
    let sent = run(&mut s, t0 + ms(120), t0 + ms(300));
    let mut all: Vec<Transmit> = drain(&mut s);
    all.extend(sent.into_iter().map(|(_, t)| t));
    let evs: Vec<(RtpHeader, TelephoneEvent)> = all
        .iter()
        .filter(|t| t.stream == StreamKind::Rtp)
        .map(|t| (RtpPacket::parse(&t.data).unwrap().header, TelephoneEvent::parse(&t.data[12..]).unwrap()))
        .filter(|(h, _)| h.payload_type == 110)
        .collect();
    assert!(evs.len() >= 4, "{}", evs.len());
    assert!(evs[0].0.marker);
    assert!(evs.iter().all(|(h, e)| h.timestamp == evs[0].0.timestamp && e.event == 11));
    let ends: Vec<_> = evs.iter().filter(|(_, e)| e.end).collect();
    assert_eq!(ends.len(), 3);
    // 80 ms at 48 kHz
    assert!(ends.iter().all(|(_, e)| e.duration == 3840), "{:?}", ends);
    for w in evs.windows(2) {
        assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
    }
}

#[test]
fn sip_info_digits_are_reported_relayed_and_interrupt_prompts() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], t0);
    let id = s.play(LegId::A, PlayRequest::once(Prompt::from_samples("menu", vec![1; 80000])).interruptible(true), t0);
    let _ = run(&mut s, t0, t0 + ms(100));
    s.sip_info_dtmf(LegId::A, '3', Some(ms(160)), t0 + ms(100)).unwrap();
    let ev = events(&mut s);
    assert!(ev.contains(&MediaEvent::PlaybackFinished { leg: LegId::A, id, interrupted_by: Some('3'), completed: false }));
    assert!(ev.contains(&MediaEvent::Dtmf(DigitEvent { leg: LegId::A, digit: '3', duration: ms(160), source: DtmfSource::SipInfo })));
    // bridged now: an INFO digit from A becomes RFC 4733 toward B
    s.bridge();
    s.sip_info_dtmf(LegId::A, '#', Some(ms(100)), t0 + ms(200)).unwrap();
    let sent = run(&mut s, t0 + ms(200), t0 + ms(400));
    let te: Vec<TelephoneEvent> = sent
        .iter()
        .filter(|(_, t)| t.leg == LegId::B && RtpPacket::parse(&t.data).unwrap().header.payload_type == 101)
        .map(|(_, t)| TelephoneEvent::parse(&t.data[12..]).unwrap())
        .collect();
    assert_eq!(te.iter().filter(|e| e.end).count(), 3);
    assert!(te.iter().all(|e| e.event == 11));
    // a leg without telephone-event cannot be sent RFC 4733
    assert!(s.send_dtmf(LegId::A, '1', ms(100), t0).is_err());
    assert!(s.sip_info_dtmf(LegId::A, 'x', None, t0).is_err());
}

#[test]
fn rfc4733_digit_interrupts_an_interruptible_prompt_on_that_leg() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], &[CodecSpec::pcmu()], t0);
    let id = s.play(LegId::A, PlayRequest::once(Prompt::from_samples("menu", vec![1; 80000])).interruptible(true), t0);
    let _ = run(&mut s, t0, t0 + ms(100));
    let first = dtmf_packets(101, 4000, 2, 9, 1).remove(0);
    send(&mut s, LegId::A, A_SDP, first, t0 + ms(100));
    assert!(!s.is_playing(LegId::A));
    assert!(events(&mut s).contains(&MediaEvent::PlaybackFinished { leg: LegId::A, id, interrupted_by: Some('2'), completed: false }));
}

#[test]
fn pcmu_to_opus_transcoding() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::opus(111)], t0);
    s.bridge();
    let tone: Vec<u8> = (0..160).map(|i| crate::g711::linear_to_ulaw((8000.0 * (i as f64 * 0.3).sin()) as i16)).collect();
    let mut out = Vec::new();
    for i in 0..10u32 {
        assert!(send(&mut s, LegId::A, A_SDP, pkt(0, i as u16, 1000 + i * 160, 5, &tone), t0 + ms(20 * u64::from(i))).is_none());
        out.extend(drain(&mut s));
    }
    assert_eq!(out.len(), 10);
    let hs: Vec<RtpHeader> = out.iter().map(|t| RtpPacket::parse(&t.data).unwrap().header).collect();
    assert!(out.iter().all(|t| t.leg == LegId::B && t.to == addr(B_SDP)));
    assert!(hs.iter().all(|h| h.payload_type == 111 && h.ssrc == s.output_ssrc(LegId::B)));
    for w in hs.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960);
    }
    // and back: Opus from B to PCMU for A
    let mut enc = crate::codec::AudioEncoder::new(&CodecSpec::opus(111), &OpusSettings::default()).unwrap();
    let mut payload = [0u8; 400];
    let n = enc.encode(&[0i16; 160], &mut payload).unwrap();
    send(&mut s, LegId::B, B_SDP, pkt(111, 1, 0, 6, &payload[..n]), t0 + ms(200));
    let back = drain(&mut s);
    assert_eq!(back.len(), 1);
    let p = RtpPacket::parse(&back[0].data).unwrap();
    assert_eq!((p.header.payload_type, p.payload.len()), (0, 160));
    assert_eq!(
        crate::negotiate::plan(s.codecs(LegId::A).unwrap(), s.codecs(LegId::B).unwrap()).a_to_b,
        crate::negotiate::AudioPath::Transcode { from: CodecKind::Pcmu, to: CodecKind::Opus }
    );
}

#[test]
fn ptime_mismatch_reframes() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 1);
    s.set_remote(LegId::A, RemoteMedia::new(Some(addr(A_SDP)), LegCodecs::new(&[CodecSpec::pcma()], Some(20)).unwrap()), t0);
    s.set_remote(LegId::B, RemoteMedia::new(Some(addr(B_SDP)), LegCodecs::new(&[CodecSpec::pcmu()], Some(30)).unwrap()), t0);
    s.bridge();
    let mut out = Vec::new();
    for i in 0..6u32 {
        send(&mut s, LegId::A, A_SDP, pkt(8, i as u16, i * 160, 5, &[0xd5; 160]), t0 + ms(20 * u64::from(i)));
        out.extend(drain(&mut s));
    }
    // 120 ms in 20 ms packets = 4 packets of 30 ms
    assert_eq!(out.len(), 4);
    let hs: Vec<RtpPacket> = out.iter().map(|t| RtpPacket::parse(&t.data).unwrap()).collect();
    assert!(hs.iter().all(|p| p.payload.len() == 240));
    assert_eq!(hs[1].header.timestamp.wrapping_sub(hs[0].header.timestamp), 240);
}

#[test]
fn stereo_recording_holds_both_sides() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcma()], t0);
    s.bridge();
    s.start_recording(RecordMode::Both, t0);
    let a_tone = crate::g711::linear_to_ulaw(4000);
    let b_tone = crate::g711::linear_to_alaw(-3000);
    let mut blocks = Vec::new();
    for i in 0..50u32 {
        let now = t0 + ms(20 * u64::from(i + 1));
        send(&mut s, LegId::A, A_SDP, pkt(0, i as u16, i * 160, 1, &[a_tone; 160]), now);
        if i >= 25 {
            send(&mut s, LegId::B, B_SDP, pkt(8, i as u16, i * 160, 2, &[b_tone; 160]), now);
        }
        s.handle_timeout(now);
        drain(&mut s);
        blocks.extend(std::iter::from_fn(|| s.poll_recording()));
    }
    s.stop_recording();
    blocks.extend(std::iter::from_fn(|| s.poll_recording()));
    let all: Vec<i16> = blocks.concat();
    assert_eq!(all.len(), 2 * 8000);
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    let a_val = crate::g711::ulaw_to_linear(a_tone);
    let b_val = crate::g711::alaw_to_linear(b_tone);
    assert!(left.iter().all(|&v| v == a_val));
    assert!(right[..4000].iter().all(|&v| v == 0), "the callee was silent for the first half second");
    assert!(right[4000..].iter().all(|&v| v == b_val));
}

#[test]
fn rtcp_is_relayed_with_ssrcs_rewritten_and_reports_kept() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 0xaaaa, &[0; 160]), t0).unwrap();
    send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).unwrap();
    // B reports on the stream it receives from FlowPBX: 25% lost
    let rr = vec![RtcpPacket::ReceiverReport {
        ssrc: 0xbbbb,
        reports: vec![ReportBlock { ssrc: s.output_ssrc(LegId::B), fraction_lost: 64, cumulative_lost: 3, highest_seq: 5, jitter: 80, ..Default::default() }],
    }];
    let mut buf = Vec::new();
    rtcp::build_compound(&rr, &mut buf);
    let f = feed(&mut s, LegId::B, StreamKind::Rtcp, addr("198.51.100.20:5001"), &mut buf, t0 + ms(10)).unwrap();
    assert_eq!((f.leg, f.stream, f.to), (LegId::A, StreamKind::Rtcp, addr("192.0.2.10:4001")));
    match &rtcp::parse_compound(&buf[..f.len]).unwrap()[0] {
        RtcpPacket::ReceiverReport { ssrc, reports } => {
            assert_eq!(*ssrc, s.output_ssrc(LegId::A), "A knows B by FlowPBX's SSRC toward A");
            assert_eq!(reports[0].ssrc, 0xaaaa, "the report is about A's own stream");
        }
        other => panic!("{other:?}"),
    }
    let st = s.stats();
    assert_eq!(st.b.remote.fraction_lost, 0.25);
    assert_eq!(st.b.remote.cumulative_lost, 3);
    assert_eq!(st.b.remote.jitter, ms(10));
    assert_eq!(st.b.remote.rtcp_packets, 1);
    let mut junk = vec![0x80, 201, 0, 40];
    assert!(feed(&mut s, LegId::B, StreamKind::Rtcp, addr("198.51.100.20:5001"), &mut junk, t0).is_none());
}

#[test]
fn flowpbx_reports_itself_when_it_is_the_source() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.play(LegId::A, PlayRequest::once(Prompt::from_samples("p", vec![0; 8000])), t0);
    let sent = run(&mut s, t0, t0 + ms(1200));
    let rtcp_to_a: Vec<_> = sent.iter().filter(|(_, t)| t.stream == StreamKind::Rtcp && t.leg == LegId::A).collect();
    assert!(!rtcp_to_a.is_empty());
    let parsed = rtcp::parse_compound(&rtcp_to_a.last().unwrap().1.data).unwrap();
    assert!(matches!(&parsed[0], RtcpPacket::SenderReport { ssrc, info, .. } if *ssrc == s.output_ssrc(LegId::A) && info.packets > 0));
    assert!(matches!(&parsed[1], RtcpPacket::SourceDescription(c) if c[0].items[0].1 == "flowpbx"));
}

#[test]
fn garbage_never_panics() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu(), CodecSpec::telephone_event(101, 8000)], &[CodecSpec::opus(111)], t0);
    s.bridge();
    let mut seed = 0x1234_5678u32;
    for i in 0..5000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let len = (seed % 200) as usize;
        let mut b: Vec<u8> = (0..len).map(|k| (seed.rotate_left(k as u32) & 0xff) as u8).collect();
        if i % 2 == 0 && len > 2 {
            b[0] = 0x80;
            b[1] = [0u8, 101, 111, 200, 201][(seed % 5) as usize];
        }
        let stream = if i % 3 == 0 { StreamKind::Rtcp } else { StreamKind::Rtp };
        let _ = feed(&mut s, LegId::A, stream, addr(A_SDP), &mut b, t0 + ms(u64::from(i)));
        let _ = feed(&mut s, LegId::B, stream, addr(B_SDP), &mut b, t0 + ms(u64::from(i)));
        drain(&mut s);
    }
    s.handle_timeout(t0 + ms(6000));
}

#[test]
fn rtcp_mux_legs_get_rtcp_on_the_rtp_port() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::B, RemoteMedia { rtcp_mux: true, ..remote(B_SDP, &[CodecSpec::pcmu()]) }, t0);
    s.bridge();
    send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 0xaaaa, &[0; 160]), t0).unwrap();
    send(&mut s, LegId::B, B_SDP, pkt(0, 1, 0, 0xbbbb, &[0; 160]), t0).unwrap();
    // A's RTCP (on its RTCP port) reaches B on B's RTP port; B's muxed RTCP reaches A's RTCP port
    let mut sr = Vec::new();
    rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc: 0xaaaa, reports: vec![] }], &mut sr);
    let f = feed(&mut s, LegId::A, StreamKind::Rtcp, addr("192.0.2.10:4001"), &mut sr.clone(), t0).unwrap();
    assert_eq!((f.stream, f.to), (StreamKind::Rtp, addr(B_SDP)));
    let mut rr = Vec::new();
    rtcp::build_compound(&[RtcpPacket::ReceiverReport { ssrc: 0xbbbb, reports: vec![] }], &mut rr);
    let f = feed(&mut s, LegId::B, StreamKind::Rtp, addr(B_SDP), &mut rr, t0).unwrap();
    assert_eq!((f.stream, f.to), (StreamKind::Rtcp, addr("192.0.2.10:4001")));
    assert_eq!(s.destination(LegId::B, StreamKind::Rtcp), Some(addr(B_SDP)));
}

#[test]
fn reframing_restarts_at_the_input_timestamp_after_a_loss() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 3);
    s.set_remote(LegId::A, RemoteMedia::new(Some(addr(A_SDP)), LegCodecs::new(&[CodecSpec::pcma()], Some(20)).unwrap()), t0);
    s.set_remote(LegId::B, RemoteMedia::new(Some(addr(B_SDP)), LegCodecs::new(&[CodecSpec::pcmu()], Some(30)).unwrap()), t0);
    s.bridge();
    let mut out = Vec::new();
    for i in [0u32, 1, 3, 4, 5, 6] {
        send(&mut s, LegId::A, A_SDP, pkt(8, i as u16, 1000 + i * 160, 5, &[0xd5; 160]), t0 + ms(20 * u64::from(i)));
        out.extend(drain(&mut s));
    }
    let ts: Vec<u32> = out.iter().map(|t| RtpPacket::parse(&t.data).unwrap().header.timestamp).collect();
    let rel: Vec<u32> = ts.iter().map(|t| t.wrapping_sub(ts[0])).collect();
    // 0..320 gives one 30 ms frame; after the loss audio restarts at 480: frames at 480 and 720
    assert_eq!(rel, vec![0, 480, 720]);
}

#[test]
fn opus_legs_with_a_30ms_ptime_get_20ms_frames() {
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 4);
    s.set_remote(LegId::A, RemoteMedia::new(Some(addr(A_SDP)), LegCodecs::new(&[CodecSpec::opus(111)], Some(30)).unwrap()), t0);
    s.play(LegId::A, PlayRequest::once(Prompt::from_samples("p", vec![100; 1600])), t0);
    let sent = run(&mut s, t0, t0 + ms(300));
    let rtp_out: Vec<_> = sent.iter().filter(|(_, t)| t.stream == StreamKind::Rtp).collect();
    assert_eq!(rtp_out.len(), 10, "200 ms of prompt in 20 ms Opus frames");
    let h: Vec<RtpHeader> = rtp_out.iter().map(|(_, t)| RtpPacket::parse(&t.data).unwrap().header).collect();
    assert_eq!(h[1].timestamp.wrapping_sub(h[0].timestamp), 960);
}

#[test]
fn a_reinvite_that_changes_codec_keeps_the_stream_continuous() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.bridge();
    let mut last = None;
    for i in 0..3u16 {
        last = send(&mut s, LegId::A, A_SDP, pkt(0, i, u32::from(i) * 160, 1, &[0; 160]), t0 + ms(20 * u64::from(i))).map(|x| x.1);
    }
    let last = last.unwrap();
    // re-INVITE: both legs move to Opus (passthrough again), the caller restarts its numbering
    s.set_remote(LegId::A, remote(A_SDP, &[CodecSpec::opus(96)]), t0 + ms(60));
    s.set_remote(LegId::B, remote(B_SDP, &[CodecSpec::opus(111)]), t0 + ms(60));
    let (_, h, _) = send(&mut s, LegId::A, A_SDP, pkt(96, 7000, 123_456, 1, &[0xfc, 0xff, 0xfe]), t0 + ms(100)).unwrap();
    assert_eq!(h.ssrc, last.ssrc);
    assert_eq!(h.sequence, last.sequence.wrapping_add(1));
    assert_eq!(h.payload_type, 111);
    assert!(h.marker);
    assert!(h.timestamp.wrapping_sub(last.timestamp) < 0x8000_0000, "timestamp moves forward");
    let (_, h2, _) = send(&mut s, LegId::A, A_SDP, pkt(96, 7001, 123_456 + 960, 1, &[0xfc, 0xff, 0xfe]), t0 + ms(120)).unwrap();
    assert_eq!((h2.sequence, h2.timestamp.wrapping_sub(h.timestamp), h2.marker), (h.sequence.wrapping_add(1), 960, false));
}

#[test]
fn an_unspecified_sdp_address_sends_nothing_and_learns_nothing() {
    let t0 = Instant::now();
    let mut s = session(&[CodecSpec::pcmu()], &[CodecSpec::pcmu()], t0);
    s.set_remote(LegId::B, remote("0.0.0.0:5000", &[CodecSpec::pcmu()]), t0);
    s.bridge();
    assert_eq!(s.destination(LegId::B, StreamKind::Rtp), None);
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 1, &[0; 160]), t0).is_none());
    // no address to prefer and no NAT to explain a source: nothing is learned
    assert_eq!(burst(&mut s, LegId::B, "198.51.100.7:6000", 2, 1, 10, t0), [false; 10]);
    assert_eq!(s.destination(LegId::B, StreamKind::Rtp), None);
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 2, 160, 1, &[0; 160]), t0 + ms(20)).is_none());
    // the next SDP names the address: learning starts there
    s.set_remote(LegId::B, remote("198.51.100.7:6000", &[CodecSpec::pcmu()]), t0 + ms(300));
    send(&mut s, LegId::B, "198.51.100.7:6000", pkt(0, 11, 0, 2, &[0; 160]), t0 + ms(301));
    assert!(send(&mut s, LegId::A, A_SDP, pkt(0, 3, 320, 1, &[0; 160]), t0 + ms(320)).is_some());
    // in the permissive learning mode the packets themselves teach it, after probation
    let cfg = SessionConfig { strict: StrictRtp { learning: Learning::Any, probation: 4 }, ..SessionConfig::default() };
    let mut s = Session::new(cfg, t0, Duration::ZERO, 2);
    s.set_remote(LegId::A, remote(A_SDP, &[CodecSpec::pcmu()]), t0);
    s.set_remote(LegId::B, remote("0.0.0.0:5000", &[CodecSpec::pcmu()]), t0);
    s.bridge();
    assert_eq!(burst(&mut s, LegId::B, "198.51.100.7:6000", 2, 1, 5, t0), [false, false, false, true, true]);
    let (f, _, _) = send(&mut s, LegId::A, A_SDP, pkt(0, 1, 0, 1, &[0; 160]), t0 + ms(100)).unwrap();
    assert_eq!(f.to, addr("198.51.100.7:6000"));
}
