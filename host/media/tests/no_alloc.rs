//! The passthrough relay path, and refusing packets from strangers, allocate nothing:
//! counted with a global allocator.
//! (One test in this binary, so no other thread allocates while it counts.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use media::rtp::{self, RtpHeader};
use media::session::{RemoteMedia, Session, SessionConfig, StreamKind};
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
    for (a_codec, b_codec, payload) in [
        (CodecSpec::pcmu(), CodecSpec::pcmu(), vec![0x55u8; 160]),
        (CodecSpec::opus(96), CodecSpec::opus(111), vec![0xfc, 0xff, 0xfe]),
    ] {
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
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 7 }, &payload, &mut pkt).unwrap();
            let _ = s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut pkt, t0);
            let _ = s.handle_datagram(LegId::B, StreamKind::Rtp, b, &mut pkt.clone(), t0);
            while s.poll_event().is_some() {}
        }
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let mut forwarded = 0;
        for i in 10..10_000u16 {
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 7 }, &payload, &mut pkt).unwrap();
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            if s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut pkt, now).is_some() {
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
            rtp::build(&RtpHeader { marker: false, payload_type: a_codec.pt, sequence: i, timestamp: u32::from(i) * 160, ssrc: 0x1bad }, &payload, &mut pkt).unwrap();
            let now = t0 + Duration::from_secs(300) + Duration::from_millis(u64::from(i));
            for leg in [LegId::A, LegId::B] {
                if s.handle_datagram(leg, StreamKind::Rtp, injector, &mut pkt, now).is_none() {
                    refused += 1;
                }
            }
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(refused, 20_000);
        assert_eq!(allocations, 0, "{a_codec:?}: {allocations} allocations refusing injected packets");
    }
}
