//! Strict RTP: from which source a leg's RTP and RTCP are accepted, and where FlowPBX sends.
//!
//! An anchored relay must learn where an endpoint really is (behind NAT its packets do not
//! come from the address its SDP names) without letting a third party that sprays packets at
//! the relay's ports take the stream over (RTP bleed / injection). The rules, in the spirit of
//! Asterisk's `strictrtp`/`probation` and rtpengine's heuristic learning and `strict-source`:
//!
//! **Learning** (from `set_remote` until a source is latched; FlowPBX sends to the SDP's
//! address meanwhile):
//! 1. a packet from exactly the SDP's address and port latches at once, even while another
//!    source is on probation;
//! 2. another source is *eligible* only where a NAT explains it ([`Learning::Nat`], the
//!    default): the SDP's IP on another port, or any address when the SDP's IP is one a NAT
//!    hides (RFC 1918, CGNAT 100.64/10, link-local, IPv6 ULA and link-local). A public or
//!    loopback SDP address means the endpoint is not behind NAT, so a packet from another IP is
//!    an injector's. With no usable SDP address (none yet, `0.0.0.0`, port 0) nothing is
//!    eligible. [`Learning::Any`] makes every source eligible (peers that send from an
//!    address their SDP does not name);
//! 3. an eligible source latches after `probation` consecutive packets of one SSRC, each
//!    sequence number one more than the last (a gap, a repeat, an SSRC change or a packet from
//!    another source restarts the count). The packet that completes probation is accepted,
//!    the ones before are refused. `probation` 0 or 1: the first packet latches.
//!
//! **Latched** (until an SDP names another address, which starts learning again):
//! 4. packets from the latched source are accepted, whatever their SSRC (the same 5-tuple:
//!    a phone that restarts its stream after hold keeps its address);
//! 5. another source takes the stream over at once only with SSRC and sequence continuity:
//!    the latched SSRC and a sequence number 1..=[`CONTINUITY_WINDOW`] ahead of the latched
//!    source's highest (a NAT rebinding to a new port or IP mid-stream);
//! 6. without continuity, only a source on the latched IP may take over, only when the
//!    latched address was itself a NAT's (not the SDP's), only after the latched source has
//!    been silent for `relatch_after`, and only after probation (a NAT that gave the
//!    endpoint a new port after a long hold, the phone having restarted its stream). A new
//!    IP with a new SSRC is always refused, however long the silence (hold, DTX).
//!
//! **RTCP** is bound to its RTP stream: accepted only from the latched RTP source's IP, on
//! the SDP's RTCP port or the latched RTP port + 1 (before the RTP stream latches: from
//! exactly the SDP's RTCP address), or with rtcp-mux from exactly the RTP source; and when
//! the compound names its sender (SR/RR) that SSRC must be the latched RTP SSRC.
//!
//! Refused packets are dropped and counted ([`crate::LegStats::refused`]); nothing is ever
//! sent toward a source that was not accepted: destinations are only the SDP's addresses
//! and latched sources.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How far ahead of the latched source's highest sequence number a packet of the same SSRC
/// from a new address may be and still continue the stream (rule 5).
pub const CONTINUITY_WINDOW: u16 = 100;

/// Which sources a leg may learn while it has not latched (`--rtp-strict-learning`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Learning {
    /// The SDP's exact address at once; the SDP's IP on another port, or any address when
    /// the SDP's IP is one a NAT hides, after probation. Nothing without an SDP address.
    #[default]
    Nat,
    /// Any source after probation, even with a public SDP address or none.
    Any,
}

impl std::str::FromStr for Learning {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nat" => Ok(Learning::Nat),
            "any" => Ok(Learning::Any),
            other => Err(format!("{other:?} is not a learning mode (nat, any)")),
        }
    }
}

/// The strict-RTP tunables of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrictRtp {
    /// Which sources may be learned.
    pub learning: Learning,
    /// Consecutive in-sequence packets of one SSRC a source other than the SDP's exact
    /// address must send before it is latched (`--rtp-strict-probation`; 0 and 1: none).
    pub probation: u32,
}

impl Default for StrictRtp {
    fn default() -> Self {
        StrictRtp { learning: Learning::Nat, probation: 4 }
    }
}

/// Whether `ip` is an address a NAT hides: the endpoint's public address is another one.
pub fn behind_nat(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || v4.is_link_local() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return behind_nat(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            // fc00::/7 unique local, fe80::/10 link-local
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// From the latched source (or an accepted RTCP source already known).
    Accept,
    /// Accepted, and the stream (re)latched to its source: report it.
    Latched,
    /// Dropped and counted; nothing is sent toward its source.
    Refuse,
}

/// A source serving its probation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    from: SocketAddr,
    ssrc: u32,
    seq: u16,
    count: u32,
}

/// The RTP side of a leg.
#[derive(Debug, Clone, Default)]
pub(crate) struct RtpLatch {
    /// The usable address the SDP named: the preferred source.
    sdp: Option<SocketAddr>,
    /// Where FlowPBX sends: the SDP's address until a source latches, then that source.
    pub(crate) addr: Option<SocketAddr>,
    /// Whether `addr` is a source that was accepted.
    pub(crate) latched: bool,
    /// The latched source's SSRC and highest sequence number.
    ssrc: u32,
    seq: u16,
    last_rx: Option<Instant>,
    probe: Option<Probe>,
}

impl RtpLatch {
    /// Learning, toward `sdp` (a usable address or none).
    pub(crate) fn new(sdp: Option<SocketAddr>) -> Self {
        RtpLatch { sdp, addr: sdp, ..RtpLatch::default() }
    }

    /// The latched source's SSRC, once latched.
    pub(crate) fn ssrc(&self) -> Option<u32> {
        self.latched.then_some(self.ssrc)
    }

    /// Judges an RTP packet from `from`. The first test is the relay's common case (the
    /// latched source) and touches nothing else.
    #[inline]
    pub(crate) fn accept(&mut self, from: SocketAddr, ssrc: u32, seq: u16, now: Instant, strict: StrictRtp, relatch_after: Duration) -> Verdict {
        if self.latched && self.addr == Some(from) {
            self.last_rx = Some(now);
            if ssrc != self.ssrc {
                self.ssrc = ssrc;
                self.seq = seq;
            } else if (seq.wrapping_sub(self.seq) as i16) > 0 {
                self.seq = seq;
            }
            return Verdict::Accept;
        }
        self.accept_other(from, ssrc, seq, now, strict, relatch_after)
    }

    fn accept_other(&mut self, from: SocketAddr, ssrc: u32, seq: u16, now: Instant, strict: StrictRtp, relatch_after: Duration) -> Verdict {
        let Some(current) = self.addr.filter(|_| self.latched) else {
            // learning
            if self.sdp == Some(from) {
                return self.latch(from, ssrc, seq, now);
            }
            let eligible = match (strict.learning, self.sdp) {
                (Learning::Any, _) => true,
                (Learning::Nat, None) => false,
                (Learning::Nat, Some(sdp)) => sdp.ip() == from.ip() || behind_nat(sdp.ip()),
            };
            if eligible && self.probation(from, ssrc, seq, strict.probation) {
                return self.latch(from, ssrc, seq, now);
            }
            return Verdict::Refuse;
        };
        // latched elsewhere: a NAT rebinding continues the stream
        let ahead = seq.wrapping_sub(self.seq);
        if ssrc == self.ssrc && (1..=CONTINUITY_WINDOW).contains(&ahead) {
            return self.latch(from, ssrc, seq, now);
        }
        // a NAT's new port for an endpoint that restarted its stream after a long silence
        let silent = self.last_rx.is_none_or(|t| now.saturating_duration_since(t) >= relatch_after);
        if from.ip() == current.ip() && self.sdp != Some(current) && silent && self.probation(from, ssrc, seq, strict.probation) {
            return self.latch(from, ssrc, seq, now);
        }
        Verdict::Refuse
    }

    /// Counts a packet toward `from`'s probation; true once it is complete.
    fn probation(&mut self, from: SocketAddr, ssrc: u32, seq: u16, needed: u32) -> bool {
        let count = match self.probe.as_mut() {
            Some(p) if p.from == from && p.ssrc == ssrc && seq == p.seq.wrapping_add(1) => {
                p.seq = seq;
                p.count += 1;
                p.count
            }
            _ => {
                self.probe = Some(Probe { from, ssrc, seq, count: 1 });
                1
            }
        };
        count >= needed.max(1)
    }

    fn latch(&mut self, from: SocketAddr, ssrc: u32, seq: u16, now: Instant) -> Verdict {
        self.addr = Some(from);
        self.latched = true;
        self.ssrc = ssrc;
        self.seq = seq;
        self.last_rx = Some(now);
        self.probe = None;
        Verdict::Latched
    }
}

/// The RTCP side of a leg (unused for sending with rtcp-mux, which goes to the RTP address).
#[derive(Debug, Clone, Default)]
pub(crate) struct RtcpLatch {
    /// The RTCP address the SDP named (a=rtcp, or its RTP port + 1).
    sdp: Option<SocketAddr>,
    /// Where FlowPBX sends RTCP: the SDP's address until RTCP was accepted from a source.
    pub(crate) addr: Option<SocketAddr>,
}

impl RtcpLatch {
    /// Toward `sdp` until the endpoint's own RTCP is accepted.
    pub(crate) fn new(sdp: Option<SocketAddr>) -> Self {
        RtcpLatch { sdp, addr: sdp }
    }

    /// Judges an RTCP compound from `from` whose sender SSRC (SR/RR) is `sender`, arrived on
    /// the RTCP socket, or on the RTP socket (`muxed`), given the leg's RTP latch.
    pub(crate) fn accept(&mut self, rtp: &RtpLatch, from: SocketAddr, sender: Option<u32>, muxed: bool) -> Verdict {
        if let (Some(s), Some(latched)) = (sender, rtp.ssrc())
            && s != latched
        {
            return Verdict::Refuse;
        }
        let source = match (rtp.latched, rtp.addr) {
            (true, Some(src)) if muxed => from == src,
            (true, Some(src)) => from.ip() == src.ip() && (from.port() == src.port().wrapping_add(1) || self.sdp.is_some_and(|s| s.port() == from.port())),
            // before the RTP stream latched: only the addresses the SDP named
            _ if muxed => rtp.sdp == Some(from),
            _ => self.sdp == Some(from),
        };
        if !source {
            return Verdict::Refuse;
        }
        if muxed || self.addr == Some(from) {
            return Verdict::Accept;
        }
        self.addr = Some(from);
        Verdict::Latched
    }
}
