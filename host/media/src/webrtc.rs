//! WebRTC legs: ICE-lite, DTLS-SRTP (RFC 5763/5764) and rtcp-mux on one of a session's RTP
//! sockets, through str0m (sans-IO: datagrams and instants in, datagrams, RTP packets and
//! deadlines out). FlowPBX answers a browser's offer as an ICE-lite endpoint with host
//! candidates on the leg's RTP port (the advertised address, and every local address when
//! the socket listens on all of them) and the engine's DTLS certificate; str0m answers the
//! browser's connectivity checks, runs the DTLS handshake, derives the SRTP keys and
//! protects and unprotects the media. What comes out of it is plain RTP, which the
//! [`crate::session::Session`] takes like any other leg's (as if from [`VIRTUAL_PEER`]);
//! what the session sends to the leg is plain RTP that str0m encrypts. Keys stay in str0m:
//! they never reach the other leg, a log or the SDP.
//!
//! Only the codecs the B2BUA chose for the leg are enabled in str0m, so its answer names
//! exactly those (their payload types are the offer's).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::codec::{CodecKind, CodecSpec};
use crate::error::{MediaError, Result};
use crate::rtp::{RtpHeader, RtpPacket};

/// The address a WebRTC leg's plain RTP appears to come from, and is sent to, inside the
/// session (in RFC 6666's discard-only prefix, never a real peer: the real addresses are
/// str0m's business, and nothing is ever sent to it).
pub const VIRTUAL_PEER: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1)), 9);

/// The engine's DTLS identity: one self-signed certificate per process, its fingerprint
/// answered in every WebRTC SDP.
#[derive(Clone)]
pub struct DtlsIdentity {
    cert: DtlsCert,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DtlsIdentity")
    }
}

impl DtlsIdentity {
    /// A fresh certificate from str0m's crypto provider (OpenSSL).
    pub fn generate() -> Result<DtlsIdentity> {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate().ok_or_else(|| MediaError::Config("no DTLS certificate could be made".into()))?;
        Ok(DtlsIdentity { cert })
    }
}

/// This host's interface addresses a browser could reach (IPv4 and IPv6, not loopback,
/// link-local or unspecified), for host candidates of a socket bound to every address.
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    let mut out = Vec::new();
    for a in addrs {
        let Some(sa) = a.address else { continue };
        let ip = if let Some(v4) = sa.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = sa.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let unusable = ip.is_loopback()
            || ip.is_unspecified()
            || match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            };
        if !unusable && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// Whether an SDP offer is a WebRTC one (DTLS-SRTP: `UDP/TLS/RTP/SAVPF` with a fingerprint).
pub fn is_webrtc_offer(sdp: &str) -> bool {
    sdp.lines().any(|l| l.starts_with("m=audio ") && l.contains("UDP/TLS/RTP/SAVP")) && sdp.lines().any(|l| l.starts_with("a=fingerprint:"))
}

/// FlowPBX's WebRTC offer waiting for the browser's answer.
pub struct PendingWebRtc {
    rtc: Rtc,
    pending: SdpPendingOffer,
    locals: Vec<SocketAddr>,
    mid: Mid,
}

impl std::fmt::Debug for PendingWebRtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWebRtc").field("locals", &self.locals).finish()
    }
}

impl PendingWebRtc {
    /// Completes the offer with the browser's answer: the leg, ready for its socket.
    pub fn accept_answer(self, answer: &str, now: Instant) -> Result<WebRtcLeg> {
        let PendingWebRtc { mut rtc, pending, locals, mid } = self;
        let answer = SdpAnswer::from_sdp_string(answer).map_err(|e| MediaError::Config(format!("WebRTC answer: {e}")))?;
        rtc.sdp_api().accept_answer(pending, answer).map_err(|e| MediaError::Config(format!("WebRTC answer not accepted: {e}")))?;
        Ok(WebRtcLeg::new(rtc, locals, Some(mid), now))
    }
}

/// A str0m configuration for a FlowPBX leg: ICE-lite, RTP mode, the identity, `codecs` only.
fn config(codecs: &[CodecSpec], identity: &DtlsIdentity) -> Result<RtcConfig> {
    let mut cfg = RtcConfig::new().set_ice_lite(true).set_rtp_mode(true).set_dtls_cert(identity.cert.clone()).clear_codecs();
    let mut any = false;
    for c in codecs {
        match c.kind {
            CodecKind::Pcmu => cfg = cfg.enable_pcmu(true, false),
            CodecKind::Pcma => cfg = cfg.enable_pcma(true, false),
            CodecKind::Opus => cfg = cfg.enable_opus(true, false),
            CodecKind::TelephoneEvent => continue,
        }
        any = true;
    }
    if !any {
        return Err(MediaError::NoCommonCodec);
    }
    Ok(cfg)
}

/// Adds the host candidates; the ones str0m took.
fn add_candidates(rtc: &mut Rtc, locals: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
    let mut added = Vec::new();
    for &local in locals {
        match Candidate::host(local, "udp") {
            Ok(c) if !added.contains(&local) => {
                rtc.add_local_candidate(c);
                added.push(local);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%local, error = %e, "not a WebRTC candidate"),
        }
    }
    if added.is_empty() {
        return Err(MediaError::Config("no usable WebRTC candidate address".into()));
    }
    Ok(added)
}

/// One WebRTC leg of a session.
pub struct WebRtcLeg {
    rtc: Rtc,
    /// FlowPBX's host candidates (the leg's RTP socket as peers reach it); the first is the
    /// advertised one.
    locals: Vec<SocketAddr>,
    mid: Option<Mid>,
    /// Plain RTP received, waiting for the session.
    received: VecDeque<Vec<u8>>,
    /// Datagrams to send from the leg's socket.
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    timeout: Option<Instant>,
    /// The extended sequence number of the last packet sent.
    last_seq: Option<u64>,
    connected: bool,
    failed: bool,
}

impl std::fmt::Debug for WebRtcLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLeg").field("locals", &self.locals).field("connected", &self.connected).finish()
    }
}

impl WebRtcLeg {
    /// Answers a browser's offer: ICE-lite with host candidates `locals` (at least one: the
    /// advertised address first), the identity's certificate, `codecs` only (the B2BUA's
    /// choice for this leg). Returns the leg and the SDP answer.
    pub fn accept_offer(offer: &str, codecs: &[CodecSpec], locals: &[SocketAddr], identity: &DtlsIdentity, now: Instant) -> Result<(WebRtcLeg, String)> {
        let mut rtc = config(codecs, identity)?.build(now);
        let added = add_candidates(&mut rtc, locals)?;
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| MediaError::Config(format!("WebRTC offer: {e}")))?;
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| MediaError::Config(format!("WebRTC offer not accepted: {e}")))?;
        Ok((WebRtcLeg::new(rtc, added, None, now), answer.to_sdp_string()))
    }

    /// FlowPBX's offer to a browser (a call to a phone registered over WebSocket): ICE-lite,
    /// `codecs` in that order, the host candidates `locals`. The browser's answer completes it
    /// ([`PendingWebRtc::accept_answer`]).
    pub fn offer(codecs: &[CodecSpec], locals: &[SocketAddr], identity: &DtlsIdentity, now: Instant) -> Result<(PendingWebRtc, String)> {
        let mut rtc = config(codecs, identity)?.build(now);
        let added = add_candidates(&mut rtc, locals)?;
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().ok_or_else(|| MediaError::Config("WebRTC offer: nothing to offer".into()))?;
        let sdp = offer.to_sdp_string();
        Ok((PendingWebRtc { rtc, pending, locals: added, mid }, sdp))
    }

    fn new(rtc: Rtc, locals: Vec<SocketAddr>, mid: Option<Mid>, now: Instant) -> WebRtcLeg {
        let mut leg = WebRtcLeg {
            rtc,
            locals,
            mid,
            received: VecDeque::new(),
            transmits: VecDeque::new(),
            timeout: None,
            last_seq: None,
            connected: false,
            failed: false,
        };
        leg.drain(now);
        leg
    }

    /// Whether ICE and DTLS are up (media flows).
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the leg is over (ICE failed or DTLS closed).
    pub fn is_failed(&self) -> bool {
        self.failed || !self.rtc.is_alive()
    }

    /// A datagram from the network on the leg's socket (STUN, DTLS or SRTP; str0m demuxes).
    /// Anything it does not accept (no credentials, a bad tag, garbage) is dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        // the candidate the datagram most likely came to (the socket does not say): the
        // loopback one from loopback, else the first of the source's family
        let to = self
            .locals
            .iter()
            .find(|l| l.ip().is_loopback() == from.ip().is_loopback() && l.is_ipv4() == from.is_ipv4())
            .or_else(|| self.locals.iter().find(|l| l.is_ipv4() == from.is_ipv4()))
            .copied()
            .unwrap_or(self.locals[0]);
        let Ok(receive) = Receive::new(Protocol::Udp, from, to, data) else { return };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            return;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, %from, "WebRTC datagram refused");
        }
        self.drain(now);
    }

    /// Sends a plain RTP datagram the session made for this leg (encrypted by str0m). Before
    /// DTLS is up there is nowhere to send it: dropped.
    pub fn send_rtp(&mut self, datagram: &[u8], now: Instant) {
        if !self.connected {
            return;
        }
        let Ok(p) = RtpPacket::parse(datagram) else { return };
        let Some(mid) = self.mid else { return };
        let seq = self.extend_seq(p.header.sequence);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else { return };
        let w = RtpWrite::new(p.header.payload_type.into(), SeqNo::from(seq), p.header.timestamp, now, p.payload.to_vec()).marker(p.header.marker);
        tx.write_rtp(w);
        self.drain(now);
    }

    fn extend_seq(&mut self, seq: u16) -> u64 {
        let ext = match self.last_seq {
            None => u64::from(seq),
            Some(last) => {
                let base = last & !0xffff;
                let cands = [base.wrapping_sub(0x1_0000), base, base + 0x1_0000];
                cands.into_iter().map(|b| b.wrapping_add(u64::from(seq))).filter(|c| *c < (1 << 48)).min_by_key(|c| c.abs_diff(last)).unwrap_or(u64::from(seq))
            }
        };
        if self.last_seq.is_none_or(|l| ext > l) {
            self.last_seq = Some(ext);
        }
        ext
    }

    /// Time passed (retransmissions, RTCP, ICE consent, DTLS timers).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.failed = true;
        }
        self.drain(now);
    }

    /// When [`WebRtcLeg::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    /// The next datagram to send from the leg's socket, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next plain RTP datagram received (for the session, as from [`VIRTUAL_PEER`]).
    pub fn poll_rtp(&mut self) -> Option<Vec<u8>> {
        self.received.pop_front()
    }

    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // str0m asks again for "now" when it has more to do
                    self.timeout = Some(t.max(now));
                    return;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back((t.destination, t.contents.into())),
                Ok(Output::Event(ev)) => self.event(ev),
                Err(e) => {
                    tracing::debug!(error = %e, "WebRTC leg failed");
                    self.failed = true;
                    self.timeout = None;
                    return;
                }
            }
        }
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Connected => {
                tracing::debug!(locals = ?self.locals, "WebRTC leg connected (ICE and DTLS up)");
                self.connected = true;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::debug!(locals = ?self.locals, "WebRTC leg: ICE disconnected");
            }
            Event::MediaAdded(m)
                if m.kind == MediaKind::Audio
                    && self.mid.is_none()
                    && matches!(m.direction, Direction::SendRecv | Direction::SendOnly | Direction::RecvOnly) =>
            {
                self.mid = Some(m.mid);
            }
            Event::RtpPacket(p) => {
                let h = RtpHeader {
                    marker: p.header.marker,
                    payload_type: *p.header.payload_type,
                    sequence: p.header.sequence_number,
                    timestamp: p.header.timestamp,
                    ssrc: *p.header.ssrc,
                };
                let mut d = vec![0u8; crate::rtp::RTP_HEADER_LEN + p.payload.len()];
                if h.write(&mut d).is_some() {
                    d[crate::rtp::RTP_HEADER_LEN..].copy_from_slice(&p.payload);
                    if self.received.len() < 256 {
                        self.received.push_back(d);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;
    use str0m::change::SdpAnswer;
    use str0m::media::{Frequency, MediaTime};

    /// A browser of str0m's own (full ICE, controlling, DTLS client) against a leg, on a
    /// made-up clock: ICE-lite answers, DTLS completes, RTP crosses both ways decrypted.
    #[test]
    fn a_browser_connects_and_media_crosses_both_ways() {
        let mut now = Instant::now();
        let browser_addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let leg_addr: SocketAddr = "10.0.0.2:6000".parse().unwrap();
        let mut browser = RtcConfig::new().clear_codecs().enable_opus(true, false).enable_pcmu(true, false).build(now);
        browser.add_local_candidate(Candidate::host(browser_addr, "udp").unwrap());
        let mut api = browser.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let offer = offer.to_sdp_string();
        assert!(is_webrtc_offer(&offer), "{offer}");

        let identity = DtlsIdentity::generate().unwrap();
        let (mut leg, answer) = WebRtcLeg::accept_offer(&offer, &[CodecSpec::pcmu()], &[leg_addr], &identity, now).unwrap();
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
        assert!(answer.contains("PCMU/8000") && !answer.contains("opus"), "only the chosen codec: {answer}");
        assert!(answer.contains(&format!("{} {} typ host", leg_addr.ip(), leg_addr.port())), "{answer}");
        browser.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).unwrap();

        let (mut heard_by_browser, mut heard_by_leg) = (0, 0);
        let mut seq = 1000u16;
        for step in 0..400 {
            // the browser's output
            loop {
                match browser.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        assert_eq!(t.destination, leg_addr);
                        leg.handle_datagram(browser_addr, &Vec::from(t.contents), now);
                    }
                    Output::Event(Event::MediaData(d)) => {
                        assert_eq!(&d.data[..], &[0x55u8; 160][..]);
                        heard_by_browser += 1;
                    }
                    Output::Event(_) => {}
                }
            }
            while let Some((to, d)) = leg.poll_transmit() {
                assert_eq!(to, browser_addr);
                let r = Receive::new(Protocol::Udp, leg_addr, browser_addr, &d).unwrap();
                browser.handle_input(Input::Receive(now, r)).unwrap();
            }
            while let Some(p) = leg.poll_rtp() {
                let p = RtpPacket::parse(&p).unwrap();
                assert_eq!(p.header.payload_type, 0);
                assert_eq!(p.payload, &[0x11u8; 160][..]);
                heard_by_leg += 1;
            }
            if leg.is_connected() && step % 2 == 0 {
                // 20 ms of PCMU each way
                let pt = browser.media(mid).unwrap().remote_pts().iter().copied().find(|p| **p == 0).unwrap();
                browser.writer(mid).unwrap().write(pt, now, MediaTime::new(u64::from(seq) * 160, Frequency::EIGHT_KHZ), vec![0x11u8; 160]).unwrap();
                let mut plain = vec![0u8; 12 + 160];
                RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc: 0x1234 }.write(&mut plain).unwrap();
                plain[12..].fill(0x55);
                leg.send_rtp(&plain, now);
                seq = seq.wrapping_add(1);
            }
            now += Duration::from_millis(10);
            browser.handle_input(Input::Timeout(now)).unwrap();
            leg.handle_timeout(now);
        }
        assert!(leg.is_connected());
        assert!(heard_by_leg > 100, "the leg heard {heard_by_leg} packets");
        assert!(heard_by_browser > 100, "the browser heard {heard_by_browser} packets");
    }

    /// FlowPBX offers (a call to a browser), the browser answers; media crosses.
    #[test]
    fn flowpbx_offers_and_a_browser_answers() {
        let mut now = Instant::now();
        let browser_addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let leg_addr: SocketAddr = "10.0.0.2:6000".parse().unwrap();
        let identity = DtlsIdentity::generate().unwrap();
        let (pending, offer) = WebRtcLeg::offer(&[CodecSpec::pcmu(), CodecSpec::opus(111)], &[leg_addr], &identity, now).unwrap();
        assert!(is_webrtc_offer(&offer), "{offer}");
        assert!(offer.contains("a=ice-lite") && offer.contains("PCMU/8000") && offer.contains("opus/48000/2"), "{offer}");
        let mut browser = RtcConfig::new().clear_codecs().enable_pcmu(true, false).build(now);
        browser.add_local_candidate(Candidate::host(browser_addr, "udp").unwrap());
        let answer = browser.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offer).unwrap()).unwrap().to_sdp_string();
        let mut leg = pending.accept_answer(&answer, now).unwrap();
        let mut heard = 0;
        let mut seq = 7u16;
        for _ in 0..300 {
            loop {
                match browser.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => leg.handle_datagram(browser_addr, &Vec::from(t.contents), now),
                    Output::Event(Event::MediaData(_)) => heard += 1,
                    Output::Event(_) => {}
                }
            }
            while let Some((_, d)) = leg.poll_transmit() {
                browser.handle_input(Input::Receive(now, Receive::new(Protocol::Udp, leg_addr, browser_addr, &d).unwrap())).unwrap();
            }
            if leg.is_connected() {
                let mut plain = vec![0u8; 12 + 160];
                RtpHeader { marker: false, payload_type: 0, sequence: seq, timestamp: u32::from(seq) * 160, ssrc: 9 }.write(&mut plain).unwrap();
                leg.send_rtp(&plain, now);
                seq += 1;
            }
            now += Duration::from_millis(10);
            browser.handle_input(Input::Timeout(now)).unwrap();
            leg.handle_timeout(now);
        }
        assert!(leg.is_connected());
        assert!(heard > 100, "the browser heard {heard}");
        // an answer that is not SDP is refused
        let (pending, _) = WebRtcLeg::offer(&[CodecSpec::pcmu()], &[leg_addr], &identity, now).unwrap();
        assert!(pending.accept_answer("garbage", now).is_err());
    }

    #[test]
    fn garbage_and_foreign_datagrams_are_dropped() {
        let now = Instant::now();
        let mut browser = RtcConfig::new().build(now);
        browser.add_local_candidate(Candidate::host("10.0.0.1:5000".parse().unwrap(), "udp").unwrap());
        let mut api = browser.sdp_api();
        api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _) = api.apply().unwrap();
        let identity = DtlsIdentity::generate().unwrap();
        let (mut leg, _) = WebRtcLeg::accept_offer(&offer.to_sdp_string(), &[CodecSpec::pcmu()], &["10.0.0.2:6000".parse().unwrap()], &identity, now).unwrap();
        let from: SocketAddr = "203.0.113.9:1234".parse().unwrap();
        for d in [&b""[..], b"\x00\x01garbage", &[0x80, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9][..], &[0x16, 0xfe, 0xfd, 0, 0][..], &[0u8; 1500][..]] {
            leg.handle_datagram(from, d, now);
        }
        assert!(leg.poll_rtp().is_none());
        assert!(!leg.is_connected());
        // an offer that is not SDP, and one without a codec we chose
        let at = ["10.0.0.2:6000".parse().unwrap()];
        assert!(WebRtcLeg::accept_offer("not sdp", &[CodecSpec::pcmu()], &at, &identity, now).is_err());
        assert!(WebRtcLeg::accept_offer(&offer.to_sdp_string(), &[], &at, &identity, now).is_err());
        // no usable candidate address
        assert!(WebRtcLeg::accept_offer(&offer.to_sdp_string(), &[CodecSpec::pcmu()], &["0.0.0.0:6000".parse().unwrap()], &identity, now).is_err());
    }

    #[test]
    fn recognises_webrtc_offers() {
        let webrtc = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=fingerprint:sha-256 AB:CD\r\n";
        assert!(is_webrtc_offer(webrtc));
        assert!(!is_webrtc_offer("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"));
        assert!(!is_webrtc_offer("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"));
    }
}
