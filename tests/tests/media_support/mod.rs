//! Helpers for the media end-to-end tests: an RTP endpoint of the test's own (a UDP socket
//! pair on 127.0.0.1 that records every datagram it receives and can send a paced stream
//! from the same socket, as a symmetric-RTP phone does), audio sources (tones in G.711 or
//! Opus), reference G.711 (the ITU-T G.191 / Sun algorithm, independent of the media
//! crate's), what the PBX wrote into the SDP it sent a peer (from its full SIP log), and the
//! measures the tests compare audio with (tone purity, normalised cross-correlation).
#![allow(dead_code)] // each test file uses its own part

use std::f64::consts::PI;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One datagram an endpoint received.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub at: Instant,
    pub from: SocketAddr,
    /// Received on the RTCP (odd) socket.
    pub rtcp: bool,
    pub data: Vec<u8>,
}

/// An RTP packet's header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtp {
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

impl Rtp {
    /// Parses an RTP packet (version 2, CSRCs, extension and padding honoured).
    pub fn parse(b: &[u8]) -> Option<Rtp> {
        if b.len() < 12 || b[0] >> 6 != 2 {
            return None;
        }
        let pt = b[1] & 0x7f;
        // RTCP shares the first byte's layout: 200..=204 as a whole second byte
        if (200..=204).contains(&b[1]) {
            return None;
        }
        let cc = usize::from(b[0] & 0x0f);
        let mut off = 12 + 4 * cc;
        if b[0] & 0x10 != 0 {
            let ext = b.get(off + 2..off + 4)?;
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = b.len();
        if b[0] & 0x20 != 0 {
            end = end.checked_sub(usize::from(*b.last()?))?;
        }
        Some(Rtp {
            marker: b[1] & 0x80 != 0,
            pt,
            seq: u16::from_be_bytes([b[2], b[3]]),
            ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: b.get(off..end)?.to_vec(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + self.payload.len());
        v.push(0x80);
        v.push(self.pt | if self.marker { 0x80 } else { 0 });
        v.extend_from_slice(&self.seq.to_be_bytes());
        v.extend_from_slice(&self.ts.to_be_bytes());
        v.extend_from_slice(&self.ssrc.to_be_bytes());
        v.extend_from_slice(&self.payload);
        v
    }
}

/// What a source gives for each 20 ms packet: payload type, payload, timestamp units.
pub type Frame = (u8, Vec<u8>, u32);

/// A media endpoint of the test's own: RTP on an even port, RTCP on the next.
pub struct RtpEndpoint {
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    pub port: u16,
    received: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
    sending: Arc<AtomicBool>,
    sent: Arc<Mutex<u32>>,
    threads: Vec<JoinHandle<()>>,
}

impl RtpEndpoint {
    /// Binds an even port and its odd successor on 127.0.0.1.
    pub fn bind() -> anyhow::Result<RtpEndpoint> {
        for _ in 0..500 {
            let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            let p = probe.local_addr()?.port();
            drop(probe);
            let p = p & !1;
            if p < 1024 {
                continue;
            }
            let (Ok(rtp), Ok(rtcp)) = (UdpSocket::bind((Ipv4Addr::LOCALHOST, p)), UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1))) else { continue };
            return Self::with(rtp, rtcp, p);
        }
        bail!("no free RTP port pair")
    }

    fn with(rtp: UdpSocket, rtcp: UdpSocket, port: u16) -> anyhow::Result<RtpEndpoint> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rtp, rtcp) = (Arc::new(rtp), Arc::new(rtcp));
        let mut threads = Vec::new();
        for (sock, is_rtcp) in [(rtp.clone(), false), (rtcp.clone(), true)] {
            sock.set_read_timeout(Some(Duration::from_millis(20)))?;
            let (received, stop) = (received.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let d = Datagram { at: Instant::now(), from, rtcp: is_rtcp, data: buf[..n].to_vec() };
                        received.lock().unwrap_or_else(|e| e.into_inner()).push(d);
                    }
                }
            }));
        }
        Ok(RtpEndpoint { rtp, rtcp, port, received, stop, sending: Arc::new(AtomicBool::new(false)), sent: Arc::new(Mutex::new(0)), threads })
    }

    /// Everything received so far.
    pub fn datagrams(&self) -> Vec<Datagram> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The RTP packets received on the RTP port, with their source.
    pub fn rtp(&self) -> Vec<(SocketAddr, Rtp)> {
        self.datagrams().into_iter().filter(|d| !d.rtcp).filter_map(|d| Some((d.from, Rtp::parse(&d.data)?))).collect()
    }

    /// The datagrams received on the RTCP port.
    pub fn rtcp(&self) -> Vec<Datagram> {
        self.datagrams().into_iter().filter(|d| d.rtcp).collect()
    }

    /// Waits until `n` RTP packets arrived (or `timeout`).
    pub fn wait_rtp(&self, n: usize, timeout: Duration) -> usize {
        let t0 = Instant::now();
        loop {
            let have = self.rtp().len();
            if have >= n || t0.elapsed() > timeout {
                return have;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `source`'s frames to `to` from the RTP socket, one every 20 ms, until
    /// [`stop_sending`](Self::stop_sending) or the source ends. Sequence numbers and
    /// timestamps start at random-looking values, the first packet has the marker bit.
    pub fn send(&self, to: SocketAddr, ssrc: u32, mut source: impl FnMut() -> Option<Frame> + Send + 'static) {
        let (sock, sending, stop, sent) = (self.rtp.clone(), self.sending.clone(), self.stop.clone(), self.sent.clone());
        sending.store(true, Ordering::Relaxed);
        self.thread(move || {
            let t0 = Instant::now();
            let (mut seq, mut ts) = ((ssrc >> 3) as u16, ssrc.rotate_left(7));
            let mut i = 0u32;
            while sending.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                let Some((pt, payload, units)) = source() else { break };
                let p = Rtp { marker: i == 0, pt, seq, ts, ssrc, payload };
                let _ = sock.send_to(&p.to_bytes(), to);
                *sent.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(units);
                i += 1;
                let due = t0 + Duration::from_millis(20) * i;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
    }

    fn thread(&self, f: impl FnOnce() + Send + 'static) {
        // the sender's handle is not kept: it stops on its own (flag or end of source)
        std::thread::spawn(f);
    }

    /// Sends one datagram from the RTCP socket.
    pub fn send_rtcp(&self, to: SocketAddr, data: &[u8]) -> std::io::Result<usize> {
        self.rtcp.send_to(data, to)
    }

    /// Stops the stream [`send`](Self::send) started.
    pub fn stop_sending(&self) {
        self.sending.store(false, Ordering::Relaxed);
    }

    /// How many packets [`send`](Self::send) sent.
    pub fn sent(&self) -> u32 {
        *self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RtpEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---- RTCP ----

/// A compound RTCP packet: a receiver report from `ssrc` with one block about `about`, and
/// an SDES with its CNAME.
pub fn rtcp_receiver_report(ssrc: u32, about: u32, highest_seq: u32, cname: &str) -> Vec<u8> {
    let mut v = vec![0x81, 201, 0, 7];
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&about.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]); // fraction lost 0, cumulative 0
    v.extend_from_slice(&highest_seq.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 20]); // jitter
    v.extend_from_slice(&[0; 8]); // LSR, DLSR
    let mut chunk = ssrc.to_be_bytes().to_vec();
    chunk.push(1);
    chunk.push(cname.len() as u8);
    chunk.extend_from_slice(cname.as_bytes());
    chunk.push(0);
    while !chunk.len().is_multiple_of(4) {
        chunk.push(0);
    }
    v.extend_from_slice(&[0x81, 202]);
    v.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
    v.extend_from_slice(&chunk);
    v
}

/// The packets of a compound RTCP datagram: (packet type, the words after the header's).
pub fn rtcp_packets(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= data.len() {
        let len = (usize::from(u16::from_be_bytes([data[off + 2], data[off + 3]])) + 1) * 4;
        let Some(p) = data.get(off..off + len) else { break };
        out.push((p[1], p[4..].to_vec()));
        off += len;
    }
    out
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A receiver report's sender SSRC and its first block's subject.
pub fn rr_ssrcs(body: &[u8]) -> Option<(u32, u32)> {
    Some((be32(body, 0)?, be32(body, 4)?))
}

// ---- audio ----

/// `n` samples of a sine at `freq` Hz sampled at `rate`, starting at sample `start`.
pub fn sine(freq: f64, rate: u32, amplitude: f64, start: u64, n: usize) -> Vec<i16> {
    (0..n).map(|i| (amplitude * (2.0 * PI * freq * (start + i as u64) as f64 / f64::from(rate)).sin()).round() as i16).collect()
}

/// A G.711 μ-law tone source: 20 ms (160 samples) per packet on payload type `pt`.
pub fn pcmu_tone(pt: u8, freq: f64) -> impl FnMut() -> Option<Frame> + Send + 'static {
    let mut at = 0u64;
    move || {
        let pcm = sine(freq, 8000, 8000.0, at, 160);
        at += 160;
        Some((pt, pcm.iter().map(|&s| ulaw_encode(s)).collect(), 160))
    }
}

/// An Opus tone source (48 kHz mono, 20 ms frames) on payload type `pt`, libopus encoding.
pub fn opus_tone(pt: u8, freq: f64) -> anyhow::Result<impl FnMut() -> Option<Frame> + Send + 'static> {
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Audio).context("opus encoder")?;
    let mut at = 0u64;
    Ok(move || {
        let pcm = sine(freq, 48000, 8000.0, at, 960);
        at += 960;
        let mut out = vec![0u8; 1500];
        let n = enc.encode(&pcm, &mut out).ok()?;
        out.truncate(n);
        Some((pt, out, 960))
    })
}

/// Decodes Opus packets (in order) to 48 kHz mono.
pub fn opus_decode(payloads: &[Vec<u8>]) -> anyhow::Result<Vec<i16>> {
    let mut dec = opus::Decoder::new(48000, opus::Channels::Mono)?;
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; 5760];
    for p in payloads {
        let n = dec.decode(p, &mut buf, false)?;
        pcm.extend_from_slice(&buf[..n]);
    }
    Ok(pcm)
}

/// ITU-T G.711 μ-law, the reference (Sun) algorithm: bias 0x84, clip 32635.
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(32635) + BIAS;
    let (mut exponent, mut mask) = (7, 0x4000);
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

pub fn ulaw_decode(code: u8) -> i16 {
    let c = !code;
    let exponent = i32::from((c >> 4) & 0x07);
    let mantissa = i32::from(c & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if c & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

pub fn alaw_decode(code: u8) -> i16 {
    let c = code ^ 0x55;
    let exponent = i32::from((c >> 4) & 0x07);
    let mantissa = i32::from(c & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if c & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// How much of the signal's power is at `freq` (1.0 for a pure tone there, about 0 for a
/// tone elsewhere or for silence).
pub fn tone_purity(samples: &[i16], rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut re, mut im, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for (n, &s) in samples.iter().enumerate() {
        let x = f64::from(s);
        re += x * (w * n as f64).cos();
        im -= x * (w * n as f64).sin();
        energy += x * x;
    }
    if energy == 0.0 {
        return 0.0;
    }
    2.0 * (re * re + im * im) / (samples.len() as f64 * energy)
}

/// Where a channel holds sound: the first and last sample above `level`.
pub fn active_span(samples: &[i16], level: i16) -> Option<(usize, usize)> {
    let first = samples.iter().position(|s| s.unsigned_abs() > level.unsigned_abs())?;
    let last = samples.iter().rposition(|s| s.unsigned_abs() > level.unsigned_abs())?;
    Some((first, last))
}

/// Silences of at least `min_len` samples (all under `level`) inside `samples`: dropouts in
/// what should be a continuous tone. Returns their (start, length).
pub fn dropouts(samples: &[i16], level: i16, min_len: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut run = 0;
    for (i, s) in samples.iter().enumerate() {
        if s.unsigned_abs() < level.unsigned_abs() {
            run += 1;
        } else {
            if run >= min_len {
                out.push((i - run, run));
            }
            run = 0;
        }
    }
    out
}

/// The median over `block`-sample blocks of [`tone_purity`]: insensitive to the phase jumps
/// between blocks that a single transform over a long signal would count against it.
pub fn median_purity(samples: &[i16], rate: u32, freq: f64, block: usize) -> f64 {
    let mut p: Vec<f64> = samples.chunks_exact(block).map(|b| tone_purity(b, rate, freq)).collect();
    if p.is_empty() {
        return 0.0;
    }
    p.sort_by(f64::total_cmp);
    p[p.len() / 2]
}

/// Root mean square level.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The best normalised cross-correlation of `window` against `signal` for the lags (where
/// `window` would start in `signal`) in `lags`, and that lag.
pub fn best_correlation(signal: &[i16], window: &[i16], lags: std::ops::Range<usize>) -> (f64, usize) {
    let wn = window.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if wn == 0.0 || signal.len() < window.len() {
        return (0.0, 0);
    }
    let last = (signal.len() - window.len()).min(lags.end.saturating_sub(1));
    let mut best = (f64::MIN, 0);
    for lag in lags.start.min(last)..=last {
        let s = &signal[lag..lag + window.len()];
        let (mut dot, mut energy) = (0i64, 0i64);
        for (&a, &b) in s.iter().zip(window) {
            dot += i64::from(a) * i64::from(b);
            energy += i64::from(a) * i64::from(a);
        }
        let c = if energy > 0 { dot as f64 / ((energy as f64).sqrt() * wn) } else { 0.0 };
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

// ---- SDP and pcap ----

/// The audio stream of an SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub ip: String,
    pub port: u16,
    pub formats: Vec<u8>,
    /// `a=rtpmap` lines: payload type and encoding (`PCMU/8000`).
    pub rtpmaps: Vec<(u8, String)>,
    pub text: String,
}

impl Sdp {
    /// Reads the body (lines split on CRLF or LF).
    pub fn parse(text: &str) -> Option<Sdp> {
        let mut ip = None;
        let (mut port, mut formats, mut rtpmaps) = (None, Vec::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if let Some(c) = line.strip_prefix("c=IN IP4 ") {
                ip.get_or_insert_with(|| c.trim().to_owned());
            } else if let Some(m) = line.strip_prefix("m=audio ") {
                let mut it = m.split_whitespace();
                port = it.next().and_then(|p| p.parse().ok());
                formats = it.skip(1).filter_map(|f| f.parse().ok()).collect();
            } else if let Some((pt, enc)) = line.strip_prefix("a=rtpmap:").and_then(|r| r.split_once(' '))
                && let Ok(pt) = pt.parse()
            {
                rtpmaps.push((pt, enc.trim().to_owned()));
            }
        }
        Some(Sdp { ip: ip?, port: port?, formats, rtpmaps, text: text.to_owned() })
    }

    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(format!("{}:{}", self.ip, self.port).parse()?)
    }

    /// The encoding a payload type maps to.
    pub fn encoding(&self, pt: u8) -> Option<&str> {
        self.rtpmaps.iter().find(|(p, _)| *p == pt).map(|(_, e)| e.as_str())
    }
}

/// The SDP bodies of the messages a SIPp run received (its `-trace_msg` file), in order.
pub fn sipp_received_sdps(messages: &str) -> Vec<Sdp> {
    messages
        .split("message received")
        .skip(1)
        .filter_map(|block| {
            // the received message ends where the trace's next entry begins
            let block = &block[..block.find("\n-----").unwrap_or(block.len())];
            Sdp::parse(&block[block.find("v=0")?..])
        })
        .collect()
}

/// The SDP of the last message the PBX sent to `peer_port` on 127.0.0.1 that had one, from
/// its full SIP log (`--sip-log full`: one line per message, the text Debug-escaped).
pub fn sdp_sent_to(log: &str, peer_port: u16) -> Option<Sdp> {
    let peer = format!("peer=127.0.0.1:{peer_port} ");
    let log = strip_ansi(log);
    log.lines()
        .filter(|l| l.contains("sip send") && l.contains(&peer) && l.contains("m=audio"))
        .filter_map(|l| {
            let body = &l[l.find("v=0")?..];
            Sdp::parse(&body.replace("\\r\\n", "\n"))
        })
        .next_back()
}

/// The text without terminal colour sequences (`ESC [ … m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls the PBX's log until it sent `peer_port` an SDP.
pub async fn wait_sdp_sent_to(server: &flowpbx_tests::Server, peer_port: u16, timeout: Duration) -> anyhow::Result<Sdp> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = sdp_sent_to(&server.logs(), peer_port) {
            return Ok(s);
        }
        if t0.elapsed() > timeout {
            let log = server.logs();
            let tail = &log[log.len().saturating_sub(6000)..];
            bail!("the PBX sent no SDP to port {peer_port} within {timeout:?}; its log ends:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The UDP payloads of a classic pcap file (Ethernet, IPv4, UDP), in order.
pub fn pcap_udp_payloads(path: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let d = std::fs::read(path).with_context(|| format!("reading {path} (Debian package sip-tester)"))?;
    anyhow::ensure!(d.len() >= 24 && d[..4] == [0xd4, 0xc3, 0xb2, 0xa1], "{path} is not a little-endian pcap");
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes([d[off + 8], d[off + 9], d[off + 10], d[off + 11]]) as usize;
        off += 16;
        let Some(frame) = d.get(off..off + incl) else { break };
        off += incl;
        // Ethernet (14) + IPv4 (IHL) + UDP (8)
        let Some(ihl) = frame.get(14).map(|b| usize::from(b & 0x0f) * 4) else { continue };
        if let Some(p) = frame.get(14 + ihl + 8..) {
            out.push(p.to_vec());
        }
    }
    Ok(out)
}

/// An even port on 127.0.0.1 free now with its successor (SIPp's `-mp`).
pub fn free_media_port() -> u16 {
    loop {
        let Ok(probe) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)) else { continue };
        let Ok(a) = probe.local_addr() else { continue };
        drop(probe);
        let p = a.port() & !1;
        if p >= 1024 && (p..p + 4).all(|q| UdpSocket::bind((Ipv4Addr::LOCALHOST, q)).is_ok()) {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_g711_round_trips() {
        // values from the G.711 tables
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(-1), 0x7f);
        assert_eq!(ulaw_encode(32767), 0x80);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0xaa), 32256);
        for s in [-30000i16, -1000, -5, 0, 7, 1234, 20000] {
            let back = ulaw_decode(ulaw_encode(s));
            assert!((i32::from(back) - i32::from(s)).abs() <= (i32::from(s).abs() / 16).max(8), "{s} -> {back}");
        }
    }

    #[test]
    fn measures() {
        let t = sine(440.0, 8000, 8000.0, 0, 8000);
        assert!(tone_purity(&t, 8000, 440.0) > 0.99);
        assert!(tone_purity(&t, 8000, 1000.0) < 0.01);
        let (c, lag) = best_correlation(&t, &t[1234..1234 + 800], 0..8000);
        assert!(c > 0.999 && lag % 200 == 1234 % 200, "{c} {lag}");
    }
}
