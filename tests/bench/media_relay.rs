//! Relay benchmark: N concurrent G.711 calls (50 packets/s each way) from a load generator on
//! loopback through FlowPBX's media engine (in a child process), plain RTP on both legs and
//! then an SRTP leg A (keys by SDES: the generator offers, the relay answers) bridged to a
//! plain leg B, then through rtpengine (Debian `rtpengine`, userspace forwarding, driven over
//! its ng control protocol), printing for each the relay's CPU per forwarded packet (from
//! /proc utime+stime), loss, added latency, and RSS per relayed call. In the SRTP run the
//! generator encrypts what it sends leg A and authenticates and decrypts what leg A sends it
//! (a packet that fails counts as lost); half the relayed packets are decrypted by FlowPBX,
//! half encrypted, so the difference of the two FlowPBX rows is SRTP's cost per packet.
//!
//! Run: `cargo bench -p media --bench media_relay -- [--calls 1000] [--secs 20]
//! [--only flowpbx,srtp,rtpengine] [--suite AES_CM_128_HMAC_SHA1_80] [--repeat 1] [--workers N]`
//! (the relay runs the engine's default worker count, min(2, CPUs), as rtpengine runs 2 threads;
//! `--repeat N` runs the FlowPBX rows N times, alternating, and prints their medians)
//! (tests/bench/media_relay.sh wraps it). Not part of the test suite.

#[path = "media_common.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{recvmmsg, sendmmsg, setsockopt, sockopt, MsgFlags, MultiHeaders, SockaddrStorage};

use media::sdes;
use media::srtp::{SrtpContext, SrtpSuite, MAX_OVERHEAD};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve();
        return;
    }
    let calls: usize = arg("--calls", "1000").parse().expect("--calls N");
    let secs: u64 = arg("--secs", "20").parse().expect("--secs S");
    let only = arg("--only", "flowpbx,srtp,rtpengine");
    let only: Vec<&str> = only.split(',').map(str::trim).collect();
    let repeat: usize = arg("--repeat", "1").parse().expect("--repeat N");
    let suite = SrtpSuite::from_name(&arg("--suite", "AES_CM_128_HMAC_SHA1_80"))
        .expect("--suite: AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32 or AEAD_AES_128_GCM");
    println!("media relay benchmark: {calls} calls, G.711 20 ms (50 pps each way = {} pps offered), {secs} s measured", calls * 100);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for round in 0..repeat.max(1) {
        if repeat > 1 {
            println!("-- round {} of {repeat}", round + 1);
        }
        let mut rows = Vec::new();
        if only.contains(&"flowpbx") {
            rows.push(run_flowpbx(calls, secs, None));
        }
        if only.contains(&"srtp") {
            rows.push(run_flowpbx(calls, secs, Some(suite)));
        }
        runs.push(rows);
    }
    // medians of each FlowPBX row over the rounds
    let mut rows: Vec<Row> = (0..runs[0].len()).map(|i| Row::median(runs.iter().map(|r| &r[i]).collect())).collect();
    if only.contains(&"rtpengine") {
        match run_rtpengine(calls, secs) {
            Ok(r) => rows.push(r),
            Err(e) => println!("rtpengine: not run: {e}"),
        }
    }
    println!();
    if repeat > 1 {
        println!("FlowPBX rows: medians of {repeat} runs");
    }
    println!(
        "{:<42} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "relay", "CPU/packet", "user/packet", "CPU %", "loss %", "lat mean", "lat p99", "lat max", "RSS/call"
    );
    for r in &rows {
        println!(
            "{:<42} {:>9.2} µs {:>9.2} µs {:>9.1}% {:>9.4}% {:>7.0} µs {:>7.0} µs {:>7.0} µs {:>8.1} KiB",
            r.name, r.cpu_per_packet_us, r.user_per_packet_us, r.cpu_percent, r.loss_percent, r.lat_mean_us, r.lat_p99_us, r.lat_max_us, r.rss_per_call_kib
        );
    }
    let plain = rows.iter().find(|r| r.name == "FlowPBX media RTP<->RTP");
    let srtp = rows.iter().find(|r| r.name.starts_with("FlowPBX media SRTP"));
    if let (Some(p), Some(s)) = (plain, srtp) {
        println!();
        println!(
            "SRTP ({suite}) adds {:.2} µs of relay CPU per packet ({:.2} µs SRTP<->RTP vs {:.2} µs RTP<->RTP; user space alone {:.2} µs; goal: at most 2 µs)",
            s.cpu_per_packet_us - p.cpu_per_packet_us,
            s.cpu_per_packet_us,
            p.cpu_per_packet_us,
            s.user_per_packet_us - p.user_per_packet_us
        );
    }
    if only.contains(&"srtp") {
        crypto_per_packet();
    }
}

/// The SRTP transform alone, in this process on one core, per 172-byte G.711 packet: what
/// a relayed packet costs on top of plain relay (half the packets of an SRTP<->RTP call are
/// decrypted, half encrypted), without the sockets' noise.
fn crypto_per_packet() {
    println!();
    println!("SRTP transform alone, per 172-byte RTP packet (median of 5 runs of 200000):");
    for suite in SrtpSuite::ALL {
        let key = media::srtp::SrtpKey::generate(suite).expect("key");
        let (mut tx, mut rx) = (SrtpContext::new(&key), SrtpContext::new(&key));
        let n = 200_000u32;
        let mut protect_ns = Vec::new();
        let mut unprotect_ns = Vec::new();
        let mut packets: Vec<PktBuf> = vec![[0u8; PKT + MAX_OVERHEAD]; n as usize];
        let mut seq = 0u16;
        for _ in 0..5 {
            for p in packets.iter_mut() {
                let h = media::rtp::RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc: 1 };
                seq = seq.wrapping_add(1);
                h.write(p);
                p[12..PKT].fill(0x55);
            }
            let t = Instant::now();
            let mut len = 0;
            for p in packets.iter_mut() {
                len = tx.protect_rtp(p, PKT).expect("protect");
            }
            protect_ns.push(t.elapsed().as_nanos() as f64 / f64::from(n));
            let t = Instant::now();
            for p in packets.iter_mut() {
                std::hint::black_box(rx.unprotect_rtp(&mut p[..len]).expect("unprotect"));
            }
            unprotect_ns.push(t.elapsed().as_nanos() as f64 / f64::from(n));
        }
        protect_ns.sort_by(f64::total_cmp);
        unprotect_ns.sort_by(f64::total_cmp);
        let (p, u) = (protect_ns[2], unprotect_ns[2]);
        println!("  {:<26} protect {p:>6.0} ns, unprotect {u:>6.0} ns, mean per relayed packet {:>6.0} ns", suite.name(), (p + u) / 2.0);
    }
}

#[derive(Clone)]
struct Row {
    name: String,
    cpu_per_packet_us: f64,
    /// The user-space part (SRTP's work is there; the kernel part is the sockets).
    user_per_packet_us: f64,
    cpu_percent: f64,
    loss_percent: f64,
    lat_mean_us: f64,
    lat_p99_us: f64,
    lat_max_us: f64,
    rss_per_call_kib: f64,
}

impl Row {
    /// Each figure's median over runs of the same configuration.
    fn median(rows: Vec<&Row>) -> Row {
        let m = |f: fn(&Row) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        Row {
            name: rows[0].name.clone(),
            cpu_per_packet_us: m(|r| r.cpu_per_packet_us),
            user_per_packet_us: m(|r| r.user_per_packet_us),
            cpu_percent: m(|r| r.cpu_percent),
            loss_percent: m(|r| r.loss_percent),
            lat_mean_us: m(|r| r.lat_mean_us),
            lat_p99_us: m(|r| r.lat_p99_us),
            lat_max_us: m(|r| r.lat_max_us),
            rss_per_call_kib: m(|r| r.rss_per_call_kib),
        }
    }
}

/// The child process: a media engine; calls are set up from stdin. With `--srtp SUITE`
/// each line carries the generator's SDES offer for leg A after the two addresses, and the
/// answer goes back after the relay's two addresses.
fn serve() {
    let calls: usize = arg("--calls", "1000").parse().expect("--calls");
    let srtp = SrtpSuite::from_name(&arg("--srtp", ""));
    let default_workers = media::EngineConfig::default().workers.to_string();
    let workers: usize = arg("--workers", &default_workers).parse().expect("--workers");
    let cfg = media::EngineConfig { bind_ip: "127.0.0.1".parse().expect("ip"), port_min: 20000, port_max: 29999, workers, ..Default::default() };
    let engine = media::MediaEngine::new(cfg).expect("engine");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let me = std::process::id();
    let rss_before = common::rss_kib(me);
    let mut sessions = Vec::with_capacity(calls);
    let codecs = media::LegCodecs::new(&[media::CodecSpec::pcmu(), media::CodecSpec::telephone_event(101, 8000)], None).expect("codecs");
    let mut out = std::io::stdout().lock();
    for _ in 0..calls {
        let line = lines.next().expect("peer line").expect("stdin");
        let mut it = line.split_whitespace();
        let a: SocketAddr = it.next().expect("a").parse().expect("addr");
        let b: SocketAddr = it.next().expect("b").parse().expect("addr");
        let s = engine.create_session("bench").expect("session");
        let mut answer = String::new();
        if let Some(suite) = srtp {
            let offer = it.collect::<Vec<_>>().join(" ");
            let a = sdes::answer([offer.as_str()], &[suite]).expect("SDES answer");
            answer = format!(" {}", a.attribute);
            s.set_srtp(media::LegId::A, Some(a.keys));
        }
        s.set_remote(media::LegId::A, media::RemoteMedia::new(Some(a), codecs.clone()));
        s.set_remote(media::LegId::B, media::RemoteMedia::new(Some(b), codecs.clone()));
        s.bridge();
        writeln!(out, "{} {}{answer}", s.local_rtp(media::LegId::A), s.local_rtp(media::LegId::B)).expect("stdout");
        sessions.push(s);
    }
    writeln!(out, "rss_before {rss_before}").expect("stdout");
    out.flush().expect("flush");
    drop(out);
    // wait for "quit"
    for line in lines {
        if line.map(|l| l.trim() == "quit").unwrap_or(true) {
            break;
        }
    }
}

struct Setup {
    name: String,
    pid: u32,
    /// Per call: where the caller sends, where the callee sends.
    targets: Vec<(SocketAddr, SocketAddr)>,
    rss_before_kib: u64,
    /// The callers' SRTP contexts when leg A is SRTP.
    srtp: Option<SrtpPeers>,
}

/// The generator's side of SRTP leg A of every call: what it encrypts with, what it
/// decrypts with, and which call a relay port belongs to.
struct SrtpPeers {
    tx: Vec<SrtpContext>,
    rx: Vec<SrtpContext>,
    by_port: HashMap<u16, usize>,
}

/// The generator's two sockets: every caller leg talks from the first, every callee leg from
/// the second. The relay still handles each call on its own ports; sharing the peer side lets
/// the generator batch its system calls (sendmmsg/recvmmsg), so on a 2-core machine it stays
/// cheaper than the relay it measures.
struct Peers {
    caller: UdpSocket,
    callee: UdpSocket,
}

fn peers() -> Peers {
    let make = || {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_nonblocking(true).expect("nb");
        let size = 64usize << 20;
        if setsockopt(&s, sockopt::RcvBufForce, &size).is_err() {
            let _ = setsockopt(&s, sockopt::RcvBuf, &size);
        }
        if setsockopt(&s, sockopt::SndBufForce, &size).is_err() {
            let _ = setsockopt(&s, sockopt::SndBuf, &size);
        }
        s
    };
    Peers { caller: make(), callee: make() }
}

fn run_flowpbx(calls: usize, secs: u64, srtp: Option<SrtpSuite>) -> Row {
    let peers = peers();
    let exe = std::env::current_exe().expect("exe");
    let suite_arg = srtp.map_or(String::new(), |s| s.name().to_string());
    let mut child = Command::new(exe)
        .args([
            "--serve",
            "--calls",
            &calls.to_string(),
            "--workers",
            &arg("--workers", &media::EngineConfig::default().workers.to_string()),
            "--srtp",
            &suite_arg,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let mut offers = Vec::with_capacity(calls);
    for _ in 0..calls {
        let offer = match srtp {
            Some(suite) => {
                let o = sdes::offer(&[suite]).expect("SDES offer");
                let text = format!(" {}", o[0]);
                offers.push(o);
                text
            }
            None => String::new(),
        };
        writeln!(stdin, "{} {}{offer}", peers.caller.local_addr().expect("addr"), peers.callee.local_addr().expect("addr")).expect("write");
    }
    stdin.flush().expect("flush");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut targets = Vec::with_capacity(calls);
    let mut contexts = SrtpPeers { tx: Vec::new(), rx: Vec::new(), by_port: HashMap::new() };
    let mut line = String::new();
    for i in 0..calls {
        line.clear();
        reader.read_line(&mut line).expect("read");
        let mut it = line.split_whitespace();
        let (a, b): (SocketAddr, SocketAddr) = (it.next().expect("a").parse().expect("addr"), it.next().expect("b").parse().expect("addr"));
        if srtp.is_some() {
            let answer = it.collect::<Vec<_>>().join(" ");
            let keys = sdes::accept_answer(offers.get(i).expect("offered"), &answer).expect("SDES answer");
            contexts.tx.push(SrtpContext::new(&keys.outbound));
            contexts.rx.push(SrtpContext::new(&keys.inbound));
            contexts.by_port.insert(a.port(), i);
        }
        targets.push((a, b));
    }
    line.clear();
    reader.read_line(&mut line).expect("read");
    let rss_before_kib = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let name = match srtp {
        Some(suite) => format!("FlowPBX media SRTP<->RTP ({})", short_suite(suite)),
        None => "FlowPBX media RTP<->RTP".to_string(),
    };
    let row = load(Setup { name, pid, targets, rss_before_kib, srtp: srtp.map(|_| contexts) }, &peers, secs);
    let _ = writeln!(stdin, "quit");
    let _ = child.wait();
    row
}

// ---- rtpengine over the ng protocol (bencode over UDP) ----

enum B {
    Str(Vec<u8>),
    Int(i64),
    List(Vec<B>),
    Dict(Vec<(Vec<u8>, B)>),
}

fn benc(v: &B, out: &mut Vec<u8>) {
    match v {
        B::Str(s) => {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s);
        }
        B::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        B::List(l) => {
            out.push(b'l');
            l.iter().for_each(|x| benc(x, out));
            out.push(b'e');
        }
        B::Dict(d) => {
            out.push(b'd');
            for (k, x) in d {
                benc(&B::Str(k.clone()), out);
                benc(x, out);
            }
            out.push(b'e');
        }
    }
}

fn bdec(b: &[u8], pos: &mut usize) -> Option<B> {
    match *b.get(*pos)? {
        b'i' => {
            let end = *pos + b[*pos..].iter().position(|&c| c == b'e')?;
            let v = std::str::from_utf8(&b[*pos + 1..end]).ok()?.parse().ok()?;
            *pos = end + 1;
            Some(B::Int(v))
        }
        b'l' => {
            *pos += 1;
            let mut l = Vec::new();
            while *b.get(*pos)? != b'e' {
                l.push(bdec(b, pos)?);
            }
            *pos += 1;
            Some(B::List(l))
        }
        b'd' => {
            *pos += 1;
            let mut d = Vec::new();
            while *b.get(*pos)? != b'e' {
                let B::Str(k) = bdec(b, pos)? else { return None };
                d.push((k, bdec(b, pos)?));
            }
            *pos += 1;
            Some(B::Dict(d))
        }
        _ => {
            let colon = *pos + b[*pos..].iter().position(|&c| c == b':')?;
            let n: usize = std::str::from_utf8(&b[*pos..colon]).ok()?.parse().ok()?;
            let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
            *pos = colon + 1 + n;
            Some(B::Str(s))
        }
    }
}

fn s(v: &str) -> B {
    B::Str(v.as_bytes().to_vec())
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn ng(sock: &UdpSocket, cookie: usize, dict: Vec<(&str, B)>) -> Result<Vec<(Vec<u8>, B)>, String> {
    let mut msg = format!("{cookie} ").into_bytes();
    benc(&B::Dict(dict.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect()), &mut msg);
    sock.send(&msg).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).map_err(|e| format!("ng reply: {e}"))?;
    let body = buf[..n].splitn(2, |&c| c == b' ').nth(1).ok_or("ng reply without cookie")?;
    match bdec(body, &mut 0) {
        Some(B::Dict(d)) => Ok(d),
        _ => Err("ng reply not a dictionary".into()),
    }
}

fn sdp_port(d: &[(Vec<u8>, B)]) -> Result<u16, String> {
    let sdp = d.iter().find_map(|(k, v)| match v {
        B::Str(s) if k == b"sdp" => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    });
    let result = d.iter().find_map(|(k, v)| match v {
        B::Str(s) if k == b"result" || k == b"error-reason" => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    });
    let sdp = sdp.ok_or_else(|| format!("no SDP in reply ({result:?})"))?;
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio ").and_then(|r| r.split_whitespace().next()).and_then(|p| p.parse().ok()))
        .ok_or_else(|| "no m=audio port".into())
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_rtpengine(calls: usize, secs: u64) -> Result<Row, String> {
    let ng_port = 22222;
    let child = Command::new("rtpengine")
        .args([
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng_port}"),
            "--table=-1",
            "--foreground",
            "--log-stderr",
            "-L",
            "3",
            "--port-min=40000",
            "--port-max=59999",
            "--num-threads=2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start rtpengine ({e}); apt-get install rtpengine"))?;
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let ctl = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    ctl.connect(("127.0.0.1", ng_port)).map_err(|e| e.to_string())?;
    ctl.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut up = false;
    for i in 0..50 {
        if ng(&ctl, i, vec![("command", s("ping"))]).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !up {
        return Err("rtpengine did not answer ping".into());
    }
    let rss_before_kib = common::rss_kib(pid);
    let peers = peers();
    let mut targets = Vec::with_capacity(calls);
    let a_port = peers.caller.local_addr().map_err(|e| e.to_string())?.port();
    let b_port = peers.callee.local_addr().map_err(|e| e.to_string())?.port();
    for i in 0..calls {
        let call_id = format!("bench-{i}");
        let offer = ng(&ctl, 1000 + 2 * i, vec![("command", s("offer")), ("call-id", s(&call_id)), ("from-tag", s("ft")), ("sdp", s(&sdp(a_port)))])?;
        let to_callee = sdp_port(&offer)?;
        let answer = ng(
            &ctl,
            1001 + 2 * i,
            vec![("command", s("answer")), ("call-id", s(&call_id)), ("from-tag", s("ft")), ("to-tag", s("tt")), ("sdp", s(&sdp(b_port)))],
        )?;
        let to_caller = sdp_port(&answer)?;
        targets.push((SocketAddr::from(([127, 0, 0, 1], to_caller)), SocketAddr::from(([127, 0, 0, 1], to_callee))));
    }
    let _ = B::Int(0);
    let _ = B::List(Vec::new());
    Ok(load(Setup { name: "rtpengine (userspace) RTP<->RTP".into(), pid, targets, rss_before_kib, srtp: None }, &peers, secs))
}

fn short_suite(s: SrtpSuite) -> &'static str {
    match s {
        SrtpSuite::AesCm128HmacSha1_80 => "AES-CM/SHA1-80",
        SrtpSuite::AesCm128HmacSha1_32 => "AES-CM/SHA1-32",
        SrtpSuite::AeadAes128Gcm => "AES-GCM",
    }
}

// ---- the load generator ----

const PAYLOAD: usize = 160;
const PKT: usize = 12 + PAYLOAD;
/// A generator packet's buffer: the plain packet and room for SRTP's tag.
type PktBuf = [u8; PKT + MAX_OVERHEAD];
const RX_BATCH: usize = 64;

/// Sends `pkts` (datagram, destination) from `sock` with as few sendmmsg calls as possible;
/// returns how many went out.
fn send_batch(sock: &UdpSocket, headers: &mut MultiHeaders<SockaddrStorage>, pkts: &[(PktBuf, usize, SocketAddr)]) -> u64 {
    let mut sent = 0u64;
    for chunk in pkts.chunks(RX_BATCH) {
        let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(b, n, _)| [IoSlice::new(&b[..*n])]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk.iter().map(|(_, _, a)| Some(SockaddrStorage::from(*a))).collect();
        if let Ok(r) = sendmmsg(sock.as_raw_fd(), headers, slices.iter(), &addrs, [], MsgFlags::empty()) {
            sent += r.count() as u64;
        }
    }
    sent
}

/// Receives everything queued on `sock`, calling `each(datagram, source port)`.
fn recv_all(sock: &UdpSocket, headers: &mut MultiHeaders<SockaddrStorage>, bufs: &mut [[u8; 256]], mut each: impl FnMut(&mut [u8], u16)) {
    loop {
        let mut lens = [(0usize, 0u16); RX_BATCH];
        let n = {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
            match recvmmsg(sock.as_raw_fd(), headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
                Ok(r) => {
                    let mut n = 0;
                    for (i, m) in r.enumerate() {
                        let port = m.address.and_then(|a: SockaddrStorage| a.as_sockaddr_in().map(|v4| v4.port())).unwrap_or(0);
                        lens[i] = (m.bytes, port);
                        n = i + 1;
                    }
                    n
                }
                Err(_) => 0,
            }
        };
        for i in 0..n {
            let (len, port) = lens[i];
            each(&mut bufs[i][..len.min(256)], port);
        }
        if n < RX_BATCH {
            return;
        }
    }
}

fn load(mut setup: Setup, peers: &Peers, secs: u64) -> Row {
    let calls = setup.targets.len();
    let mut srtp_failures = 0u64;
    let mut poll = Poll::new().expect("poll");
    let caller_fd = peers.caller.as_raw_fd();
    let callee_fd = peers.callee.as_raw_fd();
    poll.registry().register(&mut mio::unix::SourceFd(&caller_fd), Token(0), Interest::READABLE).expect("register");
    poll.registry().register(&mut mio::unix::SourceFd(&callee_fd), Token(1), Interest::READABLE).expect("register");
    let mut tx_headers = MultiHeaders::<SockaddrStorage>::preallocate(RX_BATCH, None);
    let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(RX_BATCH, None);
    let mut rx_bufs = vec![[0u8; 256]; RX_BATCH];
    let base = Instant::now();
    let warmup = Duration::from_secs(2);
    let total = warmup + Duration::from_secs(secs);
    let mut events = Events::with_capacity(16);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut hist = vec![0u64; 100_001]; // µs buckets up to 100 ms
    let mut lat_sum = 0f64;
    let mut lat_max = 0u64;
    let mut measuring = false;
    let mut cpu0 = 0.0;
    let mut split0 = (0.0, 0.0);
    let mut t_measure = base;
    let mut seq = 0u16;
    let mut next_ms = 0u64;
    let mut to_relay_a: Vec<(PktBuf, usize, SocketAddr)> = Vec::with_capacity(calls / 20 + 1);
    let mut to_relay_b: Vec<(PktBuf, usize, SocketAddr)> = Vec::with_capacity(calls / 20 + 1);
    // calls are spread over the 20 ms period: each millisecond sends for calls i ≡ ms (mod 20)
    loop {
        let now = Instant::now();
        let elapsed = now - base;
        if !measuring && elapsed >= warmup {
            measuring = true;
            cpu0 = common::cpu_seconds(setup.pid);
            split0 = common::cpu_split(setup.pid);
            t_measure = now;
            sent = 0;
            received = 0;
            hist.iter_mut().for_each(|h| *h = 0);
            lat_sum = 0.0;
            lat_max = 0;
        }
        if elapsed >= total {
            break;
        }
        while next_ms <= elapsed.as_millis() as u64 {
            let slot = (next_ms % 20) as usize;
            if slot == 0 {
                seq = seq.wrapping_add(1);
            }
            let ts = u32::from(seq) * 160;
            let stamp = (Instant::now() - base).as_nanos() as u64;
            to_relay_a.clear();
            to_relay_b.clear();
            for i in (slot..calls).step_by(20) {
                for dir in 0..2 {
                    let mut pkt: PktBuf = [0u8; PKT + MAX_OVERHEAD];
                    let h = media::rtp::RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: ts, ssrc: (i * 2 + dir) as u32 };
                    h.write(&mut pkt);
                    pkt[12..20].copy_from_slice(&stamp.to_le_bytes());
                    if dir == 0 {
                        let len = match setup.srtp.as_mut() {
                            Some(c) => c.tx[i].protect_rtp(&mut pkt, PKT).expect("protect"),
                            None => PKT,
                        };
                        to_relay_a.push((pkt, len, setup.targets[i].0));
                    } else {
                        to_relay_b.push((pkt, PKT, setup.targets[i].1));
                    }
                }
            }
            sent += send_batch(&peers.caller, &mut tx_headers, &to_relay_a);
            sent += send_batch(&peers.callee, &mut tx_headers, &to_relay_b);
            next_ms += 1;
        }
        let until_next = Duration::from_millis(next_ms).saturating_sub(Instant::now() - base);
        let _ = poll.poll(&mut events, Some(until_next));
        let now_ns = (Instant::now() - base).as_nanos() as u64;
        for (k, sock) in [&peers.caller, &peers.callee].into_iter().enumerate() {
            recv_all(sock, &mut rx_headers, &mut rx_bufs, |d, port| {
                // the caller's side of an SRTP call: authenticate and decrypt
                let d: &[u8] = match setup.srtp.as_mut().filter(|_| k == 0) {
                    Some(c) => match c.by_port.get(&port).map(|&i| c.rx[i].unprotect_rtp(d)) {
                        Some(Ok(n)) => &d[..n],
                        _ => {
                            srtp_failures += 1;
                            return;
                        }
                    },
                    None => d,
                };
                if d.len() >= 20 {
                    let stamp = u64::from_le_bytes(d[12..20].try_into().unwrap_or([0; 8]));
                    let lat = now_ns.saturating_sub(stamp) / 1000;
                    received += 1;
                    hist[(lat as usize).min(100_000)] += 1;
                    lat_sum += lat as f64;
                    lat_max = lat_max.max(lat);
                }
            });
        }
    }
    let window = (Instant::now() - t_measure).as_secs_f64();
    // let in-flight packets arrive
    let drain_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < drain_until {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(20)));
        for (k, sock) in [&peers.caller, &peers.callee].into_iter().enumerate() {
            recv_all(sock, &mut rx_headers, &mut rx_bufs, |d, port| {
                let ok = match setup.srtp.as_mut().filter(|_| k == 0) {
                    Some(c) => c.by_port.get(&port).is_some_and(|&i| c.rx[i].unprotect_rtp(d).is_ok()),
                    None => true,
                };
                if ok && d.len() >= 20 {
                    received += 1;
                }
            });
        }
    }
    let cpu = common::cpu_seconds(setup.pid) - cpu0;
    let split1 = common::cpu_split(setup.pid);
    let (user, sys) = (split1.0 - split0.0, split1.1 - split0.1);
    let wall = (Instant::now() - t_measure).as_secs_f64();
    let gen_cpu = common::cpu_seconds(std::process::id());
    let rss_after = common::rss_kib(setup.pid);
    let measured: u64 = hist.iter().sum();
    let p99_target = (measured as f64 * 0.99) as u64;
    let mut acc = 0;
    let mut p99 = 0;
    for (us, n) in hist.iter().enumerate() {
        acc += n;
        if acc >= p99_target {
            p99 = us;
            break;
        }
    }
    let row = Row {
        name: setup.name,
        cpu_per_packet_us: cpu * 1e6 / received.max(1) as f64,
        user_per_packet_us: user * 1e6 / received.max(1) as f64,
        cpu_percent: cpu * 100.0 / wall,
        loss_percent: 100.0 * (sent.saturating_sub(received)) as f64 / sent.max(1) as f64,
        lat_mean_us: lat_sum / measured.max(1) as f64,
        lat_p99_us: p99 as f64,
        lat_max_us: lat_max as f64,
        rss_per_call_kib: rss_after.saturating_sub(setup.rss_before_kib) as f64 / calls as f64,
    };
    if setup.srtp.is_some() {
        println!("{}: {srtp_failures} SRTP packets from the relay failed to authenticate", row.name);
    }
    println!(
        "{}: sent {sent}, forwarded {received}, relay CPU {cpu:.2} s (user {user:.2}, kernel {sys:.2}) over {wall:.1} s, RSS {} -> {rss_after} KiB (generator CPU so far {gen_cpu:.1} s){}",
        row.name,
        setup.rss_before_kib,
        if (sent as f64) < 0.98 * (calls as f64 * 100.0 * window) { " (the generator fell behind: the machine is overloaded, latency figures are not meaningful)" } else { "" }
    );
    row
}
