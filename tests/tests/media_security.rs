//! Strict RTP through the real binary: a third party on another loopback address (127.0.0.3)
//! sprays well-formed RTP (one SSRC, in sequence, a marked payload) at every even port
//! FlowPBX holds in its RTP range and RTCP (a receiver report with a marked CNAME) at every
//! odd one, during ringing and during a hold, as an RTP-bleed / injection attacker that
//! scanned the range does (the test finds the ports in /proc rather than by scanning, so
//! it never sprays a socket of another test). Neither
//! party ever receives a byte of it, the injector receives nothing at all (not one packet of
//! the call, not one answer), each party hears exactly the other's audio, and the CDR counts
//! the refused packets on both legs.
//!
//! SIPp does the signalling (101 calls 102 through the PBX); the media is the test's own RTP
//! endpoints (`media_support::RtpEndpoint`), one G.711 tone each way.

mod media_support;
mod sip_support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use media_support::{pcmu_tone, rtcp_receiver_report, wait_sdp_sent_to, Rtp, RtpEndpoint};
use serde_json::Value;
use sip_support::{free_port, register, sipp, Pbx, Sipp};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const PW_101: &str = "Secret-101-pw";
const PW_102: &str = "Secret-102-pw";
const WAIT: Duration = Duration::from_secs(30);
/// What the injector's datagrams carry, so that any of it reaching a party is found.
const MARK: &[u8] = b"INJECTED";
const INJECTOR_SSRC: u32 = 0x1bad_1bad;
/// The caller's tone and the callee's.
const CALLER_HZ: f64 = 440.0;
const CALLEE_HZ: f64 = 1000.0;

/// A PBX (full SIP log: the tests read the SDP it sent) with extensions 101 and 102.
async fn pbx() -> anyhow::Result<Pbx> {
    let cache = flowpbx_tests::flowpbx_bin()?.with_file_name("flowpbx-test-component-cache");
    let cache = cache.to_string_lossy().into_owned();
    let pbx = Pbx::start(&["--sip-log", "full", "--cache-dir", &cache]).await?;
    pbx.extension("101", PW_101).await?;
    pbx.extension("102", PW_102).await?;
    pbx.wait_directory(2, 0, 0).await?;
    Ok(pbx)
}

/// The SDP keys of the `media_*.xml` scenarios: PCMU and telephone-event 101 on `rtp_port`.
fn sdp_keys(rtp_port: u16) -> Vec<String> {
    ["-key", "rtp_port", &rtp_port.to_string(), "-key", "pt", "0", "-key", "codec", "PCMU/8000", "-key", "te_pt", "101"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// 102 as a SIPp UAS running `scenario`; returns it and its SIP port.
fn callee(pbx: &Pbx, scenario: &str, rtp_port: u16) -> anyhow::Result<(Sipp, u16)> {
    let port = free_port(LO);
    let keys = sdp_keys(rtp_port);
    let mut args: Vec<&str> = vec!["-m", "1"];
    args.extend(keys.iter().map(String::as_str));
    let run = sipp(scenario, (LO, port), None, &args)?;
    register(pbx, "102", PW_102, port, 300)?.assert_ok();
    Ok((run, port))
}

/// 101 calling 102 with `scenario`; returns it and its SIP port.
fn caller(pbx: &Pbx, scenario: &str, rtp_port: u16, extra: &[&str]) -> anyhow::Result<(Sipp, u16)> {
    let port = free_port(LO);
    let keys = sdp_keys(rtp_port);
    let mut args: Vec<&str> = vec!["-s", "102", "-au", "101", "-ap", PW_101, "-key", "caller", "101", "-m", "1"];
    args.extend(keys.iter().map(String::as_str));
    args.extend_from_slice(extra);
    Ok((sipp(scenario, (LO, port), Some(&pbx.sip()), &args)?, port))
}

/// The UDP ports process `pid` has bound within `range` (its sockets in /proc/<pid>/fd,
/// looked up in /proc/net/udp).
fn udp_ports_of(pid: u32, range: &RangeInclusive<u16>) -> anyhow::Result<Vec<u16>> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let link = std::fs::read_link(fd?.path()).unwrap_or_default();
        if let Some(inode) = link.to_string_lossy().strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
            inodes.insert(inode.to_owned());
        }
    }
    let table = std::fs::read_to_string("/proc/net/udp")?;
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
            (inodes.contains(*cols.get(9)?) && range.contains(&port)).then_some(port)
        })
        .collect();
    ports.sort_unstable();
    Ok(ports)
}

/// The attacker: one UDP socket on 127.0.0.3 spraying `ports` every 20 ms (RTP at the even
/// ones, RTCP at the odd ones), and recording everything that comes back to it.
/// What came back to the attacker: (from, datagram).
type Caught = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

struct Injector {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Caught,
    threads: Vec<JoinHandle<()>>,
}

impl Injector {
    fn start(target: Ipv4Addr, ports: Vec<u16>) -> anyhow::Result<Injector> {
        let sock = Arc::new(UdpSocket::bind((ATTACKER, 0))?);
        sock.set_read_timeout(Some(Duration::from_millis(20)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        {
            let (sock, stop, received) = (sock.clone(), stop.clone(), received.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        received.lock().unwrap_or_else(|e| e.into_inner()).push((from, buf[..n].to_vec()));
                    }
                }
            }));
        }
        {
            let (stop, sent) = (stop.clone(), sent.clone());
            let payload: Vec<u8> = MARK.iter().copied().cycle().take(160).collect();
            let rtcp = rtcp_receiver_report(INJECTOR_SSRC, 0x0bad_0bad, 7, "INJECTED@127.0.0.3");
            threads.push(std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut round = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // every port sees one stream: one SSRC, consecutive sequence numbers and
                    // timestamps, the easiest thing for a relay to mistake for a phone
                    let rtp = Rtp {
                        marker: round == 0,
                        pt: 0,
                        seq: 1000u16.wrapping_add(round as u16),
                        ts: 160 * round,
                        ssrc: INJECTOR_SSRC,
                        payload: payload.clone(),
                    }
                    .to_bytes();
                    for &port in &ports {
                        let data = if port % 2 == 0 { &rtp } else { &rtcp };
                        if sock.send_to(data, (target, port)).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    round += 1;
                    std::thread::sleep((t0 + Duration::from_millis(20) * round).saturating_duration_since(Instant::now()));
                }
            }));
        }
        Ok(Injector { stop, sent, received, threads })
    }

    /// Stops spraying; returns how many datagrams were sent and what came back.
    fn finish(mut self) -> (u64, Vec<(SocketAddr, Vec<u8>)>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // anything in flight back toward it has arrived by now or never will
        let got = self.received.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (self.sent.load(Ordering::Relaxed), got)
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The payloads a G.711 tone source produces (a tone repeats after a few frames).
fn tone_frames(hz: f64) -> HashSet<Vec<u8>> {
    let mut src = pcmu_tone(0, hz);
    (0..2000).filter_map(|_| src().map(|(_, p, _)| p)).collect()
}

/// What `ep` received: nothing of the injector's (RTP or RTCP), RTP only from FlowPBX's
/// `relay` port, and only the other party's audio. Returns the RTP arrival times.
fn only_the_other_party(name: &str, ep: &RtpEndpoint, relay: SocketAddr, other_hz: f64) -> Vec<Instant> {
    let frames = tone_frames(other_hz);
    let mut arrivals = Vec::new();
    for d in ep.datagrams() {
        assert!(!contains(&d.data, MARK), "{name} received the injector's {} from {}", if d.rtcp { "RTCP" } else { "RTP" }, d.from);
        assert_eq!(d.from.ip(), relay.ip(), "{name}: a datagram from {}", d.from);
        if d.rtcp {
            continue;
        }
        let Some(p) = Rtp::parse(&d.data) else { continue };
        assert_eq!(d.from, relay, "{name}: RTP from FlowPBX's port for it");
        if p.pt == 0 {
            assert!(frames.contains(&p.payload), "{name} heard something that is not the other party's {other_hz} Hz tone");
            arrivals.push(d.at);
        }
    }
    arrivals
}

/// The CDR's `media_stats.{leg}.packets_refused`.
fn refused(cdr: &Value, leg: &str) -> u64 {
    cdr["media_stats"][leg]["packets_refused"].as_u64().unwrap_or_else(|| panic!("media_stats.{leg}.packets_refused: {cdr}"))
}

/// Fails the test with `r`'s error while the caller still holds the PBX (its log is shown
/// when it is dropped during the panic).
fn checked(r: anyhow::Result<()>) {
    if let Err(e) = r {
        panic!("{e:#}");
    }
}

#[tokio::test]
async fn rtp_sprayed_while_the_callee_rings_reaches_no_one() {
    let pbx = pbx().await.expect("PBX started");
    checked(rtp_sprayed_while_the_callee_rings_reaches_no_one_on(&pbx).await);
}

async fn rtp_sprayed_while_the_callee_rings_reaches_no_one_on(pbx: &Pbx) -> anyhow::Result<()> {
    let range = pbx.server.ports().rtp_min..=pbx.server.ports().rtp_max;
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let (uas, uas_port) = callee(pbx, "media_uas_ringing.xml", eb.port)?;
    let (uac, uac_port) = caller(pbx, "media_uac.xml", ea.port, &["-d", "3000"])?;
    // the callee is offered the call: it rings for 3 s; both legs' ports are open now
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let targets = udp_ports_of(pbx.server.pid().context("PBX pid")?, &range)?;
    anyhow::ensure!(
        targets.len() == 4 && targets.contains(&to_b.port) && targets.contains(&(to_b.port + 1)),
        "two legs' RTP and RTCP ports, the callee's {} among them: {targets:?}",
        to_b.port
    );
    let injector = Injector::start(LO, targets.clone())?;
    let spraying = Instant::now();
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    anyhow::ensure!(targets.contains(&to_a.port), "the caller's port {} was sprayed too: {targets:?}", to_a.port);
    let answered = Instant::now();
    // answered: the real phones talk while the injector keeps spraying
    ea.send(to_a.addr()?, 0x3333_0003, pcmu_tone(0, CALLER_HZ));
    eb.send(to_b.addr()?, 0x4444_0004, pcmu_tone(0, CALLEE_HZ));
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    ea.stop_sending();
    eb.stop_sending();
    let (sprayed, back) = injector.finish();
    eprintln!(
        "injector sprayed {sprayed} datagrams at {targets:?}: {:?} of ringing, {:?} of call; caller got {}, callee got {}",
        answered - spraying,
        answered.elapsed(),
        ea.rtp().len(),
        eb.rtp().len()
    );

    assert!(back.is_empty(), "the injector received {} datagrams, the first from {}", back.len(), back[0].0);
    let heard_a = only_the_other_party("the caller", &ea, to_a.addr()?, CALLEE_HZ);
    let heard_b = only_the_other_party("the callee", &eb, to_b.addr()?, CALLER_HZ);
    assert!(heard_a.len() >= 100 && heard_b.len() >= 100, "the parties hear each other: {} and {} packets", heard_a.len(), heard_b.len());

    let c = &pbx.wait_cdrs_with(1, |c| c["media_stats"].is_object()).await?[0];
    let (ra, rb) = (refused(c, "a"), refused(c, "b"));
    eprintln!("refused: caller's leg {ra}, callee's leg {rb}");
    // 3 s of ringing at 50 packets a second on each leg's RTP and RTCP port, then the call
    assert!(ra >= 150 && rb >= 150, "the spray reached both legs and was refused: {ra} {rb}");
    Ok(())
}

#[tokio::test]
async fn rtp_sprayed_during_a_hold_reaches_no_one_and_the_phones_resume() {
    let pbx = pbx().await.expect("PBX started");
    checked(rtp_sprayed_during_a_hold_reaches_no_one_and_the_phones_resume_on(&pbx).await);
}

async fn rtp_sprayed_during_a_hold_reaches_no_one_and_the_phones_resume_on(pbx: &Pbx) -> anyhow::Result<()> {
    let range = pbx.server.ports().rtp_min..=pbx.server.ports().rtp_max;
    let (ea, eb) = (RtpEndpoint::bind()?, RtpEndpoint::bind()?);
    let (uas, uas_port) = callee(pbx, "media_uas_hold.xml", eb.port)?;
    let (uac, uac_port) = caller(pbx, "media_uac_hold.xml", ea.port, &[])?;
    let to_b = wait_sdp_sent_to(&pbx.server, uas_port, Duration::from_secs(10)).await?;
    let to_a = wait_sdp_sent_to(&pbx.server, uac_port, Duration::from_secs(10)).await?;
    // talk for 1 s; the caller then holds for 3 s: both phones silent (the relay used to
    // re-latch a leg to any address after 2 s of silence)
    ea.send(to_a.addr()?, 0x7777_0007, pcmu_tone(0, CALLER_HZ));
    eb.send(to_b.addr()?, 0x8888_0008, pcmu_tone(0, CALLEE_HZ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ea.stop_sending();
    eb.stop_sending();
    let targets = udp_ports_of(pbx.server.pid().context("PBX pid")?, &range)?;
    anyhow::ensure!(
        [to_a.port, to_a.port + 1, to_b.port, to_b.port + 1].iter().all(|p| targets.contains(p)),
        "both legs' ports {} and {}: {targets:?}",
        to_a.port,
        to_b.port
    );
    let injector = Injector::start(LO, targets.clone())?;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // resumed: phones restarting their streams (new SSRCs, their own numbering) from the
    // addresses they latched with; the injector is still spraying
    let resumed = Instant::now();
    ea.send(to_a.addr()?, 0x7777_0017, pcmu_tone(0, CALLER_HZ));
    eb.send(to_b.addr()?, 0x8888_0018, pcmu_tone(0, CALLEE_HZ));
    uac.wait(WAIT).assert_ok();
    uas.wait(WAIT).assert_ok();
    ea.stop_sending();
    eb.stop_sending();
    let (sprayed, back) = injector.finish();
    eprintln!("injector sprayed {sprayed} datagrams at {targets:?}; caller got {}, callee got {}", ea.rtp().len(), eb.rtp().len());

    assert!(back.is_empty(), "the injector received {} datagrams, the first from {}", back.len(), back[0].0);
    let heard_a = only_the_other_party("the caller", &ea, to_a.addr()?, CALLEE_HZ);
    let heard_b = only_the_other_party("the callee", &eb, to_b.addr()?, CALLER_HZ);
    let after = |v: &[Instant]| v.iter().filter(|t| **t > resumed).count();
    let (before_a, before_b) = (heard_a.len() - after(&heard_a), heard_b.len() - after(&heard_b));
    eprintln!("caller heard {before_a} packets before the hold, {} after; callee {before_b} and {}", after(&heard_a), after(&heard_b));
    assert!(before_a >= 30 && before_b >= 30, "audio before the hold: {before_a} {before_b}");
    assert!(after(&heard_a) >= 40 && after(&heard_b) >= 40, "the resumed phones hear each other again");

    let c = &pbx.wait_cdrs_with(1, |c| c["media_stats"].is_object()).await?[0];
    assert_eq!(c["hangup_cause"].as_str(), Some("normal_clearing"), "{c}");
    let (ra, rb) = (refused(c, "a"), refused(c, "b"));
    eprintln!("refused: caller's leg {ra}, callee's leg {rb}");
    assert!(ra >= 150 && rb >= 150, "the spray reached both legs and was refused: {ra} {rb}");
    Ok(())
}

#[test]
fn the_injector_can_be_told_apart() {
    // the marker is in what the injector sends and in neither tone
    let payload: Vec<u8> = MARK.iter().copied().cycle().take(160).collect();
    assert!(contains(&payload, MARK));
    assert!(contains(&rtcp_receiver_report(INJECTOR_SSRC, 1, 7, "INJECTED@127.0.0.3"), MARK));
    for hz in [CALLER_HZ, CALLEE_HZ] {
        assert!(tone_frames(hz).iter().all(|f| !contains(f, MARK) && *f != payload));
    }
}
