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
        let spec = if opus_share > 0 && m % opus_share == 0 { CodecSpec::opus(111) } else if m % 2 == 0 { CodecSpec::pcmu() } else { CodecSpec::pcma() };
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
}
