//! The passthrough relay path, and refusing packets from strangers, allocate nothing:
//! counted with a global allocator. With an SRTP leg too: decrypting, encrypting, and
//! refusing forged or replayed packets.
//! (One test in this binary, so no other thread allocates while it counts.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use media::rtp::{self, RtpHeader};
use media::session::{RemoteMedia, Session, SessionConfig, StreamKind};
use media::srtp::{SrtpContext, SrtpKey, SrtpKeys, SrtpSuite, MAX_OVERHEAD};
use media::{CodecSpec, LegCodecs, LegId};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn passthrough_packets_allocate_nothing() {
    for (a_codec, b_codec, payload) in
        [(CodecSpec::pcmu(), CodecSpec::pcmu(), vec![0x55u8; 160]), (CodecSpec::opus(96), CodecSpec::opus(111), vec![0xfc, 0xff, 0xfe])]
    {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:4000".parse().unwrap();
        let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 1);
        let te = CodecSpec::telephone_event(101, 8000);
        s.set_remote(LegId::A, RemoteMedia::new(Some(a), LegCodecs::new(&[a_codec.clone(), te.clone()], None).unwrap()), t0);
        s.set_remote(LegId::B, RemoteMedia::new(Some(b), LegCodecs::new(&[b_codec, te], None).unwrap()), t0);
        s.bridge();
        let mut pkt = vec![0u8; 12 + payload.len()];
        // warm up: latching and the first packet's events may allocate
        for i in 0..10u16 {
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 7 }, &payload, &mut pkt)
                .unwrap();
            let pkt_len = pkt.len();
            let _ = s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut pkt, pkt_len, t0);
            let _ = s.handle_datagram(LegId::B, StreamKind::Rtp, b, &mut pkt.clone(), pkt_len, t0);
            while s.poll_event().is_some() {}
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut forwarded = 0;
        for i in 10..10_000u16 {
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 7 }, &payload, &mut pkt)
                .unwrap();
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            let pkt_len = pkt.len();
            if s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut pkt, pkt_len, now).is_some() {
                forwarded += 1;
            }
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(forwarded, 9_990);
        assert_eq!(allocations, 0, "{a_codec:?}: {allocations} allocations on the passthrough path");
        // a flood from an injector (refused by strict RTP) costs no allocation either
        let injector: SocketAddr = "198.18.0.66:7078".parse().unwrap();
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut refused = 0;
        for i in 0..10_000u16 {
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 0x1bad }, &payload, &mut pkt)
                .unwrap();
            let now = t0 + Duration::from_secs(300) + Duration::from_millis(u64::from(i));
            let pkt_len = pkt.len();
            for leg in [LegId::A, LegId::B] {
                if s.handle_datagram(leg, StreamKind::Rtp, injector, &mut pkt, pkt_len, now).is_none() {
                    refused += 1;
                }
            }
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(refused, 20_000);
        assert_eq!(allocations, 0, "{a_codec:?}: {allocations} allocations refusing injected packets");
    }
    srtp_legs_allocate_nothing();
}

/// Leg A SRTP (a phone, its contexts here), leg B plain (a trunk).
fn srtp_legs_allocate_nothing() {
    for suite in SrtpSuite::ALL {
        let t0 = Instant::now();
        let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:4000".parse().unwrap();
        let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 1);
        let codecs = LegCodecs::new(&[CodecSpec::pcmu()], None).unwrap();
        let keys = SrtpKeys { inbound: SrtpKey::generate(suite).unwrap(), outbound: SrtpKey::generate(suite).unwrap() };
        let (mut phone_tx, mut phone_rx) = (SrtpContext::new(&keys.inbound), SrtpContext::new(&keys.outbound));
        s.set_srtp(LegId::A, Some(keys));
        s.set_remote(LegId::A, RemoteMedia::new(Some(a), codecs.clone()), t0);
        s.set_remote(LegId::B, RemoteMedia::new(Some(b), codecs), t0);
        s.bridge();
        let mut buf = [0u8; 172 + MAX_OVERHEAD];
        let mut round = |s: &mut Session, i: u16, now: Instant| -> (bool, bool) {
            // the phone's packet, decrypted toward the trunk
            let h = RtpHeader { marker: false, payload_type: 0, sequence: i, timestamp: u32::from(i) * 160, ssrc: 7 };
            rtp::build(&h, &[0x55; 160], &mut buf).unwrap();
            let n = phone_tx.protect_rtp(&mut buf, 172).unwrap();
            let to_b = s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut buf, n, now).is_some_and(|f| f.len == 172 && buf[12..172] == [0x55; 160]);
            // the trunk's packet, encrypted toward the phone
            rtp::build(&RtpHeader { ssrc: 9, payload_type: 0, ..h }, &[0x66; 160], &mut buf).unwrap();
            let to_a = match s.handle_datagram(LegId::B, StreamKind::Rtp, b, &mut buf, 172, now) {
                Some(f) => phone_rx.unprotect_rtp(&mut buf[..f.len]).is_ok_and(|n| n == 172 && buf[12..172] == [0x66; 160]),
                None => false,
            };
            (to_b, to_a)
        };
        for i in 0..10u16 {
            round(&mut s, i, t0);
            while s.poll_event().is_some() {}
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut both = 0;
        for i in 10..5_000u16 {
            if round(&mut s, i, t0 + Duration::from_millis(u64::from(i) * 20)) == (true, true) {
                both += 1;
            }
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(both, 4_990, "{suite}");
        assert_eq!(allocations, 0, "{suite}: {allocations} allocations relaying SRTP <-> RTP");
        // forged packets (new sequence numbers, a wrong tag) and replays (an index seen
        // already) are refused without allocating
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut refused = 0;
        for i in 0..10_000u16 {
            let sequence = if i % 2 == 0 { 5_000 + i } else { 4_999 };
            rtp::build(&RtpHeader { marker: false, payload_type: 0, sequence, timestamp: 0, ssrc: 7 }, &[0x55; 160], &mut buf).unwrap();
            let n = 172 + suite.rtp_tag_len();
            buf[20] = i as u8;
            if s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut buf, n, t0 + Duration::from_secs(200)).is_none() {
                refused += 1;
            }
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(refused, 10_000);
        assert_eq!(allocations, 0, "{suite}: {allocations} allocations refusing forged and replayed SRTP");
        let st = s.stats();
        assert_eq!((st.a.srtp_auth_failures, st.a.srtp_replays), (5_000, 5_000));
    }
}
