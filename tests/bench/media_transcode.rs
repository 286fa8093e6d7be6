//! Transcoding benchmark: how many PCMU ↔ Opus calls one core sustains. Drives the sans-IO
//! session core (decode → resample where needed → encode, both directions, 20 ms frames) as
//! fast as it goes on one thread over real speech (the embedded prompts), and prints the CPU
//! per call-second and the calls per core; also the core's own cost per passthrough packet.
//!
//! Run: `cargo bench -p media --bench media_transcode -- [--calls 100] [--secs 10] [--complexity 3]`

#[path = "media_common.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::codec::{AudioEncoder, CodecSpec, OpusSettings};
use media::rtp::{self, RtpHeader};
use media::session::{RemoteMedia, Session, SessionConfig, StreamKind};
use media::{LegCodecs, LegId};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn speech() -> Vec<i16> {
    let mut all = Vec::new();
    for (name, bytes) in media::prompts::embedded() {
        if *name != "music-on-hold" && *name != "beep" {
            all.extend(media::wav::decode_internal(bytes).expect("prompt"));
        }
    }
    all
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    rtp::build(&RtpHeader { marker: false, payload_type: pt, sequence: seq, timestamp: ts, ssrc }, payload, &mut b).expect("fits");
    b
}

fn main() {
    let calls: usize = arg("--calls", "100").parse().expect("--calls");
    let secs: usize = arg("--secs", "10").parse().expect("--secs");
    let pcm = speech();
    let frames = secs * 50;
    let complexity: i32 = arg("--complexity", &OpusSettings::default().complexity.to_string()).parse().expect("--complexity 0-10");
    println!("transcoding benchmark: {calls} PCMU <-> Opus calls x {secs} s of speech, one thread, Opus complexity {complexity}");
    for (label, opus) in [
        ("Opus at 8 kHz PCM (the default)", OpusSettings { complexity, ..Default::default() }),
        ("Opus at 48 kHz PCM + resampler", OpusSettings { pcm_rate: 48000, complexity, ..Default::default() }),
    ] {
        // pre-encoded inputs: the caller's PCMU and the callee's Opus, 20 ms each
        let mut ulaw = Vec::with_capacity(frames);
        let mut opus_in = Vec::with_capacity(frames);
        let mut enc = AudioEncoder::new(&CodecSpec::opus(111), &OpusSettings::default()).expect("opus");
        let mut buf = [0u8; 1500];
        for f in 0..frames {
            let start = (f * 160) % (pcm.len() - 160);
            let frame = &pcm[start..start + 160];
            let mut u = [0u8; 160];
            media::g711::encode_ulaw(frame, &mut u);
            ulaw.push(u.to_vec());
            let n = enc.encode(frame, &mut buf).expect("encode");
            opus_in.push(buf[..n].to_vec());
        }
        let a: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
        let b: SocketAddr = "192.0.2.2:4000".parse().expect("addr");
        let t0 = Instant::now();
        let mut sessions: Vec<Session> = (0..calls)
            .map(|i| {
                let cfg = SessionConfig { opus, media_timeout: Duration::from_secs(3600), ..Default::default() };
                let mut s = Session::new(cfg, t0, Duration::ZERO, i as u64 + 1);
                s.set_remote(LegId::A, RemoteMedia::new(Some(a), LegCodecs::new(&[CodecSpec::pcmu()], None).expect("codecs")), t0);
                s.set_remote(LegId::B, RemoteMedia::new(Some(b), LegCodecs::new(&[CodecSpec::opus(111)], None).expect("codecs")), t0);
                s.bridge();
                s
            })
            .collect();
        let cpu0 = common::cpu_seconds(std::process::id());
        let wall0 = Instant::now();
        let mut out = 0u64;
        for f in 0..frames {
            let now = t0 + Duration::from_millis(20 * f as u64);
            for s in sessions.iter_mut() {
                let mut pa = packet(0, f as u16, (f * 160) as u32, 1, &ulaw[f]);
                let pa_len = pa.len();
                let _ = s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut pa, pa_len, now);
                let mut pb = packet(111, f as u16, (f * 960) as u32, 2, &opus_in[f]);
                let pb_len = pb.len();
                let _ = s.handle_datagram(LegId::B, StreamKind::Rtp, b, &mut pb, pb_len, now);
                while let Some(t) = s.poll_transmit() {
                    out += 1;
                    s.recycle(t.data);
                }
            }
        }
        let cpu = common::cpu_seconds(std::process::id()) - cpu0;
        let wall = wall0.elapsed().as_secs_f64();
        let call_seconds = (calls * secs) as f64;
        // CPU time (not wall time: the machine may be shared) per second of call
        let per_call_second = cpu / call_seconds;
        println!(
            "{label:<34} {out} frames out, CPU {cpu:.2} s (wall {wall:.2} s) for {call_seconds:.0} call-seconds: {:.0} µs CPU per call-second => {:.0} calls per core",
            per_call_second * 1e6,
            1.0 / per_call_second
        );
    }

    // the core's own share of a passthrough packet (no sockets)
    let a: SocketAddr = "192.0.2.1:4000".parse().expect("addr");
    let t0 = Instant::now();
    let mut s = Session::new(SessionConfig::default(), t0, Duration::ZERO, 7);
    let codecs = LegCodecs::new(&[CodecSpec::pcmu()], None).expect("codecs");
    s.set_remote(LegId::A, RemoteMedia::new(Some(a), codecs.clone()), t0);
    s.set_remote(LegId::B, RemoteMedia::new(Some("192.0.2.2:4000".parse().expect("addr")), codecs), t0);
    s.bridge();
    let n = 5_000_000u32;
    let mut p = packet(0, 0, 0, 9, &[0x55; 160]);
    let start = Instant::now();
    for i in 0..n {
        p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
        p[4..8].copy_from_slice(&(i * 160).to_be_bytes());
        p[8..12].copy_from_slice(&9u32.to_be_bytes());
        let p_len = p.len();
        std::hint::black_box(s.handle_datagram(LegId::A, StreamKind::Rtp, a, &mut p, p_len, t0 + Duration::from_micros(u64::from(i) * 20)));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("sans-IO passthrough: {ns:.0} ns per packet (parse, latch, stats, rewrite), sockets excluded");
}
