//! Conference benchmark: CPU per participant for rooms of 3, 10 and 50. Drives the sans-IO
//! mixer (`media::mixer::Room`, what a relay worker runs every 20 ms) as fast as it goes on
//! one thread: every participant pushes one 20 ms packet per tick (real speech from the
//! embedded prompts for the talkers, low background noise for everyone else), the room mixes
//! and encodes each participant's frame. Prints µs per tick and the share of one core each
//! participant costs, for all-G.711 rooms and rooms where a third of the phones use Opus, at
//! the 8 kHz and 16 kHz (default) mixing rates. The socket side (one `recvmmsg`/`sendto` per
//! packet) is measured by `media_relay`. Figures are the bench thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), so other load on the machine does not inflate them.
//!
//! Then the whole engine on loopback: one relay worker, N sessions joined to one room, real
//! UDP phones sending paced 20 ms packets; prints the worker thread's CPU (schedstat) as a
//! share of one core, in all and per participant (sockets, sessions and mixer together).
//!
//! Run on its own (never in CI):
//! `cargo bench -p media --bench media_conference -- [--secs 5] [--talkers 3]`

use std::time::{Duration, Instant};

use media::codec::{AudioEncoder, CodecSpec, OpusSettings};
use media::mixer::{ParticipantId, Room, RoomConfig, TICK};

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

/// Pre-encodes `secs` of 20 ms packets of `pcm8k` (8 kHz) starting at `offset` in `spec`.
fn packets(spec: &CodecSpec, pcm8k: &[i16], offset: usize, ticks: usize) -> Vec<Vec<u8>> {
    let mut enc = AudioEncoder::new(spec, &OpusSettings::default()).expect("encoder");
    let mut out = Vec::with_capacity(ticks);
    let mut buf = [0u8; 1500];
    for t in 0..ticks {
        let frame: Vec<i16> = (0..160).map(|i| pcm8k[(offset + t * 160 + i) % pcm8k.len()]).collect();
        let n = enc.encode(&frame, &mut buf).expect("encode");
        out.push(buf[..n].to_vec());
    }
    out
}

/// CPU time this thread has used (the machine may be busy with other work: wall time lies).
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

struct Run {
    us_per_tick: f64,
    core_pct_per_participant: f64,
}

fn run(members: usize, talkers: usize, opus_share: usize, mix_rate: u32, secs: u64, speech: &[i16]) -> Run {
    let ticks = (secs * 50) as usize;
    let noise: Vec<i16> = (0..8000).map(|i| (i * 7919 % 61) as i16 - 30).collect();
    let mut room = Room::new(RoomConfig { mix_rate, ..RoomConfig::default() }).expect("room");
    let start = Instant::now();
    let mut feeds = Vec::new();
    for m in 0..members {
        let spec = if opus_share > 0 && m % opus_share == 0 {
            CodecSpec::opus(111)
        } else if m % 2 == 0 {
            CodecSpec::pcmu()
        } else {
            CodecSpec::pcma()
        };
        room.join(ParticipantId(m as u64), &spec, 20, false, start).expect("join");
        let src = if m < talkers { speech } else { &noise[..] };
        feeds.push((spec.kind, packets(&spec, src, m * 48000, ticks.min(500))));
    }
    let mut now = start;
    let mut frames = 0usize;
    let t0 = thread_cpu();
    for t in 0..ticks {
        for (m, (kind, pk)) in feeds.iter().enumerate() {
            let p = &pk[t % pk.len()];
            room.push(ParticipantId(m as u64), *kind, t as u16, p);
        }
        while room.handle_timeout(now) {
            frames += room.outputs().count();
            while room.poll_event().is_some() {}
        }
        now += TICK;
    }
    let elapsed = thread_cpu() - t0;
    assert!(frames >= (ticks - 5) * members, "every participant gets a frame per tick: {frames}");
    let us_per_tick = elapsed.as_secs_f64() * 1e6 / ticks as f64;
    let core = elapsed.as_secs_f64() / (ticks as f64 * TICK.as_secs_f64());
    Run { us_per_tick, core_pct_per_participant: core * 100.0 / members as f64 }
}

fn main() {
    let secs: u64 = arg("--secs", "5").parse().expect("--secs N");
    let talkers: usize = arg("--talkers", "3").parse().expect("--talkers N");
    let speech = speech();
    println!("conference mixer, one thread's CPU time, {secs} s of audio per room, {talkers} talkers (the rest send background noise)");
    println!("{:>5} {:>9} {:>8} {:>12} {:>22}", "size", "codecs", "mix Hz", "µs/tick", "% of a core/participant");
    for (label, opus_share) in [("G.711", 0usize), ("1/3 Opus", 3)] {
        for mix_rate in [8000u32, 16000] {
            for n in [3usize, 10, 50] {
                let r = run(n, talkers.min(n), opus_share, mix_rate, secs, &speech);
                println!("{n:>5} {label:>9} {mix_rate:>8} {:>12.1} {:>22.3}", r.us_per_tick, r.core_pct_per_participant);
            }
        }
    }
    // all talking at once: the worst case (every participant gets an encode of its own)
    for n in [10usize, 50] {
        let r = run(n, n, 3, 16000, secs.min(3), &speech);
        println!("{n:>5} {:>9} {:>8} {:>12.1} {:>22.3}  (everyone talking)", "1/3 Opus", 16000, r.us_per_tick, r.core_pct_per_participant);
    }
    println!();
    println!("whole engine on loopback: one relay worker, real UDP phones paced at 20 ms, the worker thread's CPU (sockets + sessions + mixer), {secs} s per room, 1/3 Opus, 16 kHz");
    println!("{:>5} {:>14} {:>22}", "size", "worker CPU %", "% of a core/participant");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for n in [3usize, 10, 50] {
        let pct = rt.block_on(engine_run(n, talkers.min(n), secs, &speech));
        println!("{n:>5} {pct:>14.2} {:>22.3}", pct / n as f64);
    }
}

/// CPU time of the engine's relay worker threads: the first field of
/// `/proc/self/task/<tid>/schedstat` (nanoseconds on a CPU, from the scheduler: precise even
/// for a thread that runs a few µs every 20 ms, unlike tick-sampled utime/stime).
fn worker_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.starts_with("media-relay") {
                let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
                total += stat.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

async fn engine_run(n: usize, talkers: usize, secs: u64, speech: &[i16]) -> f64 {
    use media::rtp::{self, RtpHeader};
    use media::{ConferenceSettings, EngineConfig, JoinOptions, LegCodecs, LegId, MediaEngine, RemoteMedia};
    use std::net::UdpSocket;
    let base = 40000 + (n as u16 % 7) * 400;
    let e = MediaEngine::new(EngineConfig {
        bind_ip: "127.0.0.1".parse().expect("ip"),
        port_min: base,
        port_max: base + 399,
        workers: 1,
        data_dir: std::env::temp_dir().join("flowpbx-conference-bench"),
        ..Default::default()
    })
    .expect("engine");
    let room = e.conference(&format!("bench-{n}"), ConferenceSettings::default());
    let ticks = (secs * 50) as usize;
    let noise: Vec<i16> = (0..8000).map(|i| (i * 7919 % 61) as i16 - 30).collect();
    let mut phones = Vec::new();
    let mut keep = Vec::new();
    for m in 0..n {
        let spec = if m % 3 == 0 {
            CodecSpec::opus(111)
        } else if m % 2 == 0 {
            CodecSpec::pcmu()
        } else {
            CodecSpec::pcma()
        };
        let sock = UdpSocket::bind("127.0.0.1:0").expect("phone");
        sock.set_nonblocking(true).expect("nonblocking");
        let call = e.create_session(&format!("bench-{m}")).expect("session");
        call.set_remote(LegId::A, RemoteMedia::new(Some(sock.local_addr().expect("addr")), LegCodecs::new(std::slice::from_ref(&spec), None).expect("codecs")));
        let part = room.join(&call, LegId::A, JoinOptions::default()).await.expect("join");
        let src = if m < talkers { speech } else { &noise[..] };
        let pk = packets(&spec, src, m * 48000, ticks.min(500));
        phones.push((sock, call.local_rtp(LegId::A), spec, pk));
        keep.push((call, part));
    }
    let c0 = worker_cpu();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut wire = vec![0u8; 1600];
    for t in 0..ticks {
        for (m, (sock, to, spec, pk)) in phones.iter().enumerate() {
            let p = &pk[t % pk.len()];
            let units = if spec.clock_rate == 48000 { 960 } else { 160 };
            let len = 12 + p.len();
            rtp::build(
                &RtpHeader { marker: false, payload_type: spec.pt, sequence: t as u16, timestamp: t as u32 * units, ssrc: m as u32 + 1 },
                p,
                &mut wire[..len],
            )
            .expect("fits");
            let _ = sock.send_to(&wire[..len], *to);
            while sock.recv_from(&mut buf).is_ok() {}
        }
        let due = start + TICK * (t as u32 + 1);
        tokio::time::sleep_until(due.into()).await;
    }
    let cpu = worker_cpu() - c0;
    let wall = start.elapsed();
    drop(keep);
    cpu.as_secs_f64() * 100.0 / wall.as_secs_f64()
}
