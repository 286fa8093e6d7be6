//! The relay session of one call, sans-IO: two legs, latching, passthrough and transcoding,
//! DTMF, prompts, recording feed, statistics and timeouts. No sockets, no clock.
//!
//! Driving it (the socket layer does this; tests do it with bytes and made-up instants):
//! - inputs: [`Session::handle_datagram`] for every datagram a leg's socket receives,
//!   [`Session::handle_timeout`] when [`Session::poll_timeout`] is reached, and the commands
//!   (`set_remote`, `bridge`, `play`, `send_dtmf`, `sip_info_dtmf`, `start_recording`, …);
//! - outputs: the [`Forward`] `handle_datagram` returns (send the rewritten buffer on), then
//!   [`Session::poll_transmit`] until `None` (packets the session made), [`Session::poll_event`]
//!   for [`MediaEvent`]s, [`Session::poll_recording`] for recorder blocks; then ask
//!   [`Session::poll_timeout`] again.
//!
//! The passthrough path (same codec both sides) rewrites the RTP header in place and returns
//! it: no allocation, no copy.
//!
//! SRTP ([`Session::set_srtp`]): a leg's datagrams are authenticated and decrypted in place
//! before anything else looks at them (latching, relay, recording, DTMF, conference); what
//! goes to a leg is encrypted last, after rewriting, in the room the caller leaves after the
//! datagram ([`crate::srtp::MAX_OVERHEAD`]). Each leg has its own keys: they never cross.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::codec::{AudioDecoder, AudioEncoder, CodecKind, CodecSpec, OpusSettings};
use crate::dtmf::{DtmfGenerator, DtmfReceiver, DtmfUpdate};
use crate::latch::{RtcpLatch, RtpLatch, StrictRtp, Verdict};
use crate::negotiate::{dtmf_path, DtmfPath, LegCodecs};
use crate::player::{PlayRequest, Player};
use crate::record::{Aligner, MediaTime, RecordMode};
use crate::resample::Resampler;
use crate::rewriter::OutputStream;
use crate::rtcp::{self, ReportBlock, RtcpPacket, SdesChunk, SenderInfo, SsrcField};
use crate::rtp::{self, RtpHeader, RtpPacket, RTP_HEADER_LEN};
use crate::srtp::{SrtpContext, SrtpError, SrtpKeys};
use crate::stats::{LegStats, RecvStats, RemoteReport, SessionStats};
use crate::{LegId, MediaError, Result};

/// RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// The media stream (even port).
    Rtp,
    /// The control stream (odd port).
    Rtcp,
}

/// A leg's SDP direction, as its endpoint wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaDirection {
    /// Both ways.
    #[default]
    SendRecv,
    /// The endpoint sends but does not want media (it put the call on hold).
    SendOnly,
    /// The endpoint receives but does not send (it was put on hold).
    RecvOnly,
    /// Neither.
    Inactive,
}

impl MediaDirection {
    /// Whether the endpoint sends media.
    pub fn remote_sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }
    /// Whether the endpoint wants media.
    pub fn remote_receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }
}

/// What a leg's SDP says about its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// c= address and m= port: where FlowPBX sends, and the source strict RTP prefers.
    /// `None` (or port 0, or `0.0.0.0`) when the SDP has none: nothing is sent, and no
    /// source is learned unless [`crate::Learning::Any`] is configured ([`crate::latch`]).
    pub rtp: Option<SocketAddr>,
    /// a=rtcp, or the RTP port + 1.
    pub rtcp: Option<SocketAddr>,
    /// The endpoint multiplexes RTCP on its RTP port (a=rtcp-mux offered and accepted): RTCP
    /// to it goes from FlowPBX's RTP port to its RTP address.
    pub rtcp_mux: bool,
    /// The negotiated codecs.
    pub codecs: LegCodecs,
    /// a=sendrecv / sendonly / recvonly / inactive.
    pub direction: MediaDirection,
}

impl RemoteMedia {
    /// A send-recv endpoint at `rtp` with RTCP on the next port.
    pub fn new(rtp: Option<SocketAddr>, codecs: LegCodecs) -> Self {
        let rtcp = rtp.map(|a| SocketAddr::new(a.ip(), a.port().wrapping_add(1)));
        RemoteMedia { rtp, rtcp, rtcp_mux: false, codecs, direction: MediaDirection::SendRecv }
    }
}

/// Tunables of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// A leg silent this long (while it should be sending) raises [`MediaEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// Which sources a leg's RTP and RTCP are accepted from ([`crate::latch`]).
    pub strict: StrictRtp,
    /// A latched NAT address silent this long may be replaced by another port of its IP
    /// that serves probation (a NAT's new mapping after a long hold; rule 6 of
    /// [`crate::latch`]). Never by another IP without SSRC and sequence continuity.
    pub relatch_after: Duration,
    /// Interval of the RTCP reports FlowPBX sends itself (when it is the media source).
    pub rtcp_interval: Duration,
    /// Opus encoder/decoder settings.
    pub opus: OpusSettings,
    /// RTCP CNAME.
    pub cname: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            media_timeout: Duration::from_secs(60),
            strict: StrictRtp::default(),
            relatch_after: Duration::from_secs(2),
            rtcp_interval: Duration::from_secs(5),
            opus: OpusSettings::default(),
            cname: "flowpbx".into(),
        }
    }
}

/// Where a DTMF digit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// A SIP INFO the B2BUA handed in.
    SipInfo,
}

/// One digit pressed on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    /// The leg it was pressed on.
    pub leg: LegId,
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// How long the key was held.
    pub duration: Duration,
    /// How it arrived.
    pub source: DtmfSource,
}

/// Something the B2BUA (or the flow engine through it) should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A digit was pressed (after its end, with its duration). When the other leg has no
    /// telephone-event and the call is bridged, the B2BUA forwards it as SIP INFO.
    Dtmf(DigitEvent),
    /// A playback ended: played out, stopped, replaced, or interrupted by a digit.
    PlaybackFinished {
        /// The leg it played to.
        leg: LegId,
        /// The id `play` returned.
        id: u64,
        /// The digit that interrupted it.
        interrupted_by: Option<char>,
        /// Whether it played to the end.
        completed: bool,
    },
    /// A leg sent nothing for the configured time although it should be sending: end the
    /// call (BYE both legs, CDR cause `media_timeout`).
    MediaTimeout {
        /// The silent leg.
        leg: LegId,
        /// How long it has been silent.
        silent_for: Duration,
    },
    /// A stream learned (or re-learned) its peer address from a packet.
    Latched {
        /// The leg.
        leg: LegId,
        /// RTP or RTCP.
        stream: StreamKind,
        /// The source address now used as destination.
        addr: SocketAddr,
    },
}

/// "Send the buffer you passed to `handle_datagram`, now `len` bytes long, out of `leg`'s
/// `stream` socket to `to`." (`len` differs from the datagram's when SRTP removed or added
/// a trailer.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The leg whose socket sends it.
    pub leg: LegId,
    /// Which of its sockets.
    pub stream: StreamKind,
    /// Destination.
    pub to: SocketAddr,
    /// Bytes of the buffer to send.
    pub len: usize,
}

/// A packet the session made (transcoded, generated, RTCP); return `data` with
/// [`Session::recycle`] after sending to reuse the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The leg whose socket sends it.
    pub leg: LegId,
    /// Which of its sockets.
    pub stream: StreamKind,
    /// Destination.
    pub to: SocketAddr,
    /// The datagram.
    pub data: Vec<u8>,
}

/// An audio packet of a leg that is in a conference, for the room's mixer (see
/// [`Session::take_conference_packet`]): the payload is `buf[payload]` of the datagram just
/// handed to [`Session::handle_datagram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferencePacket {
    /// The leg it came from.
    pub leg: LegId,
    /// The tag the leg joined with ([`Session::join_conference`]).
    pub tag: u64,
    /// The codec its payload type names.
    pub codec: CodecKind,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Where the payload lies in the datagram.
    pub payload: std::ops::Range<usize>,
}

/// The local source id under which a leg's conference frames are numbered (apart from the
/// ids of prompts and DTMF, which count up from 1).
const CONFERENCE_SOURCE: u64 = 1 << 63;

struct DtmfOut {
    generator: DtmfGenerator,
    ts: Option<u32>,
    id: u64,
    pt: u8,
    clock: u32,
}

/// A leg's SRTP: its keys and the two contexts made from them.
struct LegSrtp {
    keys: SrtpKeys,
    /// Unprotects what the endpoint sends.
    inbound: SrtpContext,
    /// Protects what FlowPBX sends it.
    outbound: SrtpContext,
}

struct Leg {
    id: LegId,
    /// Set when the leg's media is SRTP.
    srtp: Option<Box<LegSrtp>>,
    /// Datagrams whose SRTP/SRTCP authentication failed.
    srtp_auth_failures: u64,
    /// SRTP/SRTCP datagrams refused as replays (checked before the tag).
    srtp_replays: u64,
    remote: Option<RemoteMedia>,
    remote_since: Option<Instant>,
    rtp: RtpLatch,
    rtcp: RtcpLatch,
    recv: RecvStats,
    out: OutputStream,
    dropped: u64,
    /// Datagrams refused for their source (strict RTP).
    refused: u64,
    remote_report: RemoteReport,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfOut>,
    player: Option<Player>,
    /// Set while the leg is in a conference (the tag it joined with): its audio goes to the
    /// room instead of the other leg, and it hears what the room sends.
    conference: Option<u64>,
    /// Encoder toward this leg, for its send codec.
    encoder: Option<(CodecSpec, AudioEncoder)>,
    /// Decoders of what this leg sends, by payload type.
    decoders: Vec<(u8, AudioDecoder)>,
    /// Resampler from this leg's decoded audio to the other leg's encoder rate.
    resample_out: Option<(u32, u32, Resampler)>,
    /// Resampler from this leg's decoded audio to 8 kHz for the recorder.
    resample_rec: Option<(u32, Resampler)>,
    /// Resampler from 8 kHz prompts to this leg's encoder rate.
    resample_play: Option<(u32, Resampler)>,
    /// PCM waiting to be encoded toward this leg, and the timestamp of its first sample.
    pending: Vec<i16>,
    pending_ts: u32,
    pending_marker: bool,
    /// Whether the last audio this leg sent was forwarded without transcoding.
    passthrough: bool,
    last_rx: Option<Instant>,
    timeout_reported: bool,
    next_rtcp: Instant,
}

impl Leg {
    fn new(id: LegId, now: Instant, seed: u64) -> Self {
        let ssrc = (seed ^ (seed >> 29)) as u32 | 1;
        Leg {
            id,
            srtp: None,
            srtp_auth_failures: 0,
            srtp_replays: 0,
            remote: None,
            remote_since: None,
            rtp: RtpLatch::default(),
            rtcp: RtcpLatch::default(),
            recv: RecvStats::new(now),
            out: OutputStream::new(ssrc, seed.rotate_left(17)),
            dropped: 0,
            refused: 0,
            remote_report: RemoteReport::default(),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            player: None,
            conference: None,
            encoder: None,
            decoders: Vec::new(),
            resample_out: None,
            resample_rec: None,
            resample_play: None,
            pending: Vec::new(),
            pending_ts: 0,
            pending_marker: false,
            passthrough: true,
            last_rx: None,
            timeout_reported: false,
            next_rtcp: now,
        }
    }

    fn codecs(&self) -> Option<&LegCodecs> {
        self.remote.as_ref().map(|r| &r.codecs)
    }

    /// Where RTCP to this leg goes: its RTCP address from FlowPBX's RTCP port, or with
    /// rtcp-mux its RTP address from the RTP port.
    fn rtcp_dest(&self) -> Option<(StreamKind, SocketAddr)> {
        if self.remote.as_ref().is_some_and(|r| r.rtcp_mux) {
            self.rtp.addr.map(|a| (StreamKind::Rtp, a))
        } else {
            self.rtcp.addr.map(|a| (StreamKind::Rtcp, a))
        }
    }

    /// Whether relayed audio may be sent to this leg now.
    fn accepts_relay(&self) -> bool {
        self.player.is_none() && self.dtmf_tx.is_none() && self.remote.as_ref().is_some_and(|r| r.direction.remote_receives())
    }

    fn frame(&self) -> Duration {
        Duration::from_millis(u64::from(self.codecs().map_or(20, |c| c.frame_ms())))
    }

    fn stats(&self) -> LegStats {
        LegStats {
            received: self.recv.snapshot(),
            sent_packets: self.out.packets,
            sent_bytes: self.out.octets,
            dropped: self.dropped,
            refused: self.refused,
            srtp: self.srtp.as_ref().map(|s| s.keys.outbound.suite()),
            srtp_auth_failures: self.srtp_auth_failures,
            srtp_replays: self.srtp_replays,
            remote: self.remote_report,
            webrtc: false,
        }
    }
}

struct Recording {
    mode: RecordMode,
    aligner: Aligner,
    next_flush: Instant,
}

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(500);
const MTU: usize = 1500;

/// One call's media relay state. See the module documentation for how to drive it.
pub struct Session {
    cfg: SessionConfig,
    legs: [Leg; 2],
    bridged: bool,
    wall_at_start: Duration,
    started: Instant,
    events: VecDeque<MediaEvent>,
    transmits: VecDeque<Transmit>,
    pool: Vec<Vec<u8>>,
    recording: Option<Recording>,
    rec_blocks: VecDeque<Vec<i16>>,
    next_tick: Instant,
    next_local_id: u64,
    pcm: Vec<i16>,
    pcm2: Vec<i16>,
    updates: Vec<DtmfUpdate>,
    payload: Vec<u8>,
    conference_in: Option<ConferencePacket>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("bridged", &self.bridged).finish_non_exhaustive()
    }
}

impl Session {
    /// A session created at `now`. `wall_clock` is the time since the Unix epoch at `now`
    /// (for RTCP NTP timestamps); `seed` is randomness for SSRCs and initial numbers.
    pub fn new(cfg: SessionConfig, now: Instant, wall_clock: Duration, seed: u64) -> Self {
        let seed_b = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31) ^ 0x5555_aaaa_1234_5678;
        Session {
            cfg,
            legs: [Leg::new(LegId::A, now, seed), Leg::new(LegId::B, now, seed_b)],
            bridged: false,
            wall_at_start: wall_clock,
            started: now,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            pool: Vec::new(),
            recording: None,
            rec_blocks: VecDeque::new(),
            next_tick: now + TICK,
            next_local_id: 1,
            pcm: Vec::new(),
            pcm2: Vec::new(),
            updates: Vec::new(),
            payload: Vec::new(),
            conference_in: None,
        }
    }

    /// Sets (or, on a re-INVITE, replaces) what a leg's SDP says. A changed address drops
    /// the latch and starts learning again, preferring the new address ([`crate::latch`]);
    /// the same address keeps a latched source. The output numbering is untouched, so the
    /// leg sees one continuous stream. Codec changes take effect with the next packet.
    pub fn set_remote(&mut self, leg: LegId, mut remote: RemoteMedia, now: Instant) {
        // 0.0.0.0 (RFC 2543 hold) or port 0 is no address: nothing is sent, and strict RTP
        // learns no source (unless learning is `any`), until an SDP names one
        let usable = |a: &SocketAddr| !a.ip().is_unspecified() && a.port() != 0;
        remote.rtp = remote.rtp.filter(usable);
        remote.rtcp = remote.rtcp.filter(usable);
        let l = &mut self.legs[leg.index()];
        let old = l.remote.take();
        if old.as_ref().map(|o| o.rtp) != Some(remote.rtp) || !l.rtp.latched {
            l.rtp = RtpLatch::new(remote.rtp);
        }
        if old.as_ref().map(|o| o.rtcp) != Some(remote.rtcp) {
            l.rtcp = RtcpLatch::new(remote.rtcp);
        }
        let codec_changed = old.as_ref().map(|o| o.codecs.send_codec()) != Some(remote.codecs.send_codec());
        if codec_changed {
            l.encoder = None;
            l.resample_play = None;
            l.pending.clear();
            l.out.interrupt();
        }
        l.decoders.retain(|(pt, _)| remote.codecs.audio_by_pt(*pt).is_some());
        if old.as_ref().map(|o| o.direction) != Some(remote.direction) {
            l.out.interrupt();
        }
        l.remote = Some(remote);
        l.remote_since = Some(now);
        l.timeout_reported = false;
    }

    /// Makes a leg's media SRTP with `keys` (from SDES: the endpoint's `a=crypto` key is
    /// `inbound`, FlowPBX's own `outbound`), or plain RTP again with `None`. Each direction
    /// whose key is the same as before (a re-INVITE repeating its `a=crypto`) keeps its
    /// context, so its rollover counters and replay lists carry on (an endpoint keeping its
    /// key keeps its ROC); a direction with a new key starts a fresh one.
    ///
    /// From then on every datagram of the leg is authenticated and decrypted before it is
    /// latched, relayed, recorded, mixed or read for DTMF; one with a bad tag is dropped and
    /// counted in `srtp_auth_failures` (a plain RTP packet too), one whose index was seen
    /// already or is older than the replay window in `srtp_replays`. Everything FlowPBX sends the leg is encrypted after rewriting. Call it
    /// before the `set_remote` of the same offer/answer, so no packet of the new media is
    /// taken for plain RTP.
    pub fn set_srtp(&mut self, leg: LegId, keys: Option<SrtpKeys>) {
        let l = &mut self.legs[leg.index()];
        let Some(keys) = keys else {
            l.srtp = None;
            return;
        };
        match l.srtp.as_mut() {
            Some(s) => {
                if s.keys.inbound != keys.inbound {
                    s.inbound = SrtpContext::new(&keys.inbound);
                }
                if s.keys.outbound != keys.outbound {
                    s.outbound = SrtpContext::new(&keys.outbound);
                }
                s.keys = keys;
            }
            None => {
                let (inbound, outbound) = (SrtpContext::new(&keys.inbound), SrtpContext::new(&keys.outbound));
                l.srtp = Some(Box::new(LegSrtp { keys, inbound, outbound }));
            }
        }
    }

    /// Whether a leg's media is SRTP.
    pub fn is_srtp(&self, leg: LegId) -> bool {
        self.legs[leg.index()].srtp.is_some()
    }

    /// The codecs a leg negotiated, if known.
    pub fn codecs(&self, leg: LegId) -> Option<&LegCodecs> {
        self.legs[leg.index()].codecs()
    }

    /// Connects the legs: each one's audio and DTMF go to the other.
    pub fn bridge(&mut self) {
        self.bridged = true;
    }

    /// Disconnects the legs (each can still be played to and listened to).
    pub fn unbridge(&mut self) {
        self.bridged = false;
        for l in &mut self.legs {
            l.out.interrupt();
            l.pending.clear();
        }
    }

    /// Whether the legs are bridged.
    pub fn is_bridged(&self) -> bool {
        self.bridged
    }

    /// Whether audio and DTMF flow between the legs: bridged, and neither is in a conference.
    fn linked(&self) -> bool {
        self.bridged && self.legs[0].conference.is_none() && self.legs[1].conference.is_none()
    }

    /// Puts a leg into a conference under `tag`: from now on its audio packets are handed
    /// out by [`Session::take_conference_packet`] (not relayed to the other leg, not while
    /// the leg is on hold), and it hears the frames given to
    /// [`Session::send_conference_frame`], on its usual SSRC and numbering. Digits are still
    /// reported as [`MediaEvent::Dtmf`]; prompts played to the leg replace the room's audio
    /// while they play.
    pub fn join_conference(&mut self, leg: LegId, tag: u64) {
        let l = &mut self.legs[leg.index()];
        l.conference = Some(tag);
        l.pending.clear();
        l.out.interrupt();
    }

    /// Takes a leg out of its conference; it is then as before it joined (bridged to the
    /// other leg again if the session is bridged).
    pub fn leave_conference(&mut self, leg: LegId) {
        let l = &mut self.legs[leg.index()];
        if l.conference.take().is_some() {
            l.out.interrupt();
        }
        if self.conference_in.as_ref().is_some_and(|p| p.leg == leg) {
            self.conference_in = None;
        }
    }

    /// The tag a leg joined its conference with, if it is in one.
    pub fn conference_tag(&self, leg: LegId) -> Option<u64> {
        self.legs[leg.index()].conference
    }

    /// The audio packet of a conference leg that the last [`Session::handle_datagram`] took
    /// in, if any: pass `buf[packet.payload]` to the room.
    pub fn take_conference_packet(&mut self) -> Option<ConferencePacket> {
        self.conference_in.take()
    }

    /// Sends a leg the frame its conference mixed for it (`payload` encoded in `codec`,
    /// covering `units` of the codec's RTP clock), numbered on the leg's output stream so
    /// joins, leaves and prompts never break its sequence. Returns `false` when the frame is
    /// not sent: the leg is not in a conference, plays a prompt or DTMF, is on hold, has no
    /// address yet, or no longer sends `codec`.
    pub fn send_conference_frame(&mut self, leg: LegId, codec: CodecKind, payload: &[u8], units: u32, now: Instant) -> bool {
        let l = &mut self.legs[leg.index()];
        let Some(tag) = l.conference else { return false };
        let Some(remote) = l.remote.as_ref() else { return false };
        let send = remote.codecs.send_codec();
        if l.player.is_some() || l.dtmf_tx.is_some() || !remote.direction.remote_receives() || send.kind != codec {
            return false;
        }
        let (pt, clock) = (send.pt, send.clock_rate);
        let Some(dest) = l.rtp.addr else { return false };
        let num = l.out.local(CONFERENCE_SOURCE | tag, units, clock, now, payload.len());
        let hdr = RtpHeader { marker: num.marker, payload_type: pt, sequence: num.seq, timestamp: num.ts, ssrc: l.out.ssrc() };
        let mut data = self.buffer();
        data.resize(RTP_HEADER_LEN + payload.len(), 0);
        let _ = rtp::build(&hdr, payload, &mut data);
        self.queue(Transmit { leg, stream: StreamKind::Rtp, to: dest, data }, false);
        true
    }

    /// The SSRC a leg receives from FlowPBX.
    pub fn output_ssrc(&self, leg: LegId) -> u32 {
        self.legs[leg.index()].out.ssrc()
    }

    /// The address a stream of a leg currently sends to (latched or from SDP).
    pub fn destination(&self, leg: LegId, stream: StreamKind) -> Option<SocketAddr> {
        let l = &self.legs[leg.index()];
        match stream {
            StreamKind::Rtp => l.rtp.addr,
            StreamKind::Rtcp => l.rtcp_dest().map(|(_, a)| a),
        }
    }

    /// Starts playing to a leg, replacing what played before (which finishes with
    /// `completed: false`). Returns the playback id reported in
    /// [`MediaEvent::PlaybackFinished`]. While it plays, the other leg's audio is not sent
    /// to this leg; afterwards the relay resumes on the same SSRC and sequence.
    pub fn play(&mut self, leg: LegId, req: PlayRequest, now: Instant) -> u64 {
        self.stop_playback(leg);
        let id = self.next_local_id;
        self.next_local_id += 1;
        self.legs[leg.index()].player = Some(Player::new(id, req, now));
        id
    }

    /// Stops what plays to a leg, if anything.
    pub fn stop_playback(&mut self, leg: LegId) {
        self.finish_player(leg, None, false);
    }

    fn finish_player(&mut self, leg: LegId, digit: Option<char>, completed: bool) {
        let l = &mut self.legs[leg.index()];
        if let Some(p) = l.player.take() {
            l.out.interrupt();
            self.events.push_back(MediaEvent::PlaybackFinished { leg, id: p.id(), interrupted_by: digit, completed });
        }
    }

    /// Whether something plays to a leg.
    pub fn is_playing(&self, leg: LegId) -> bool {
        self.legs[leg.index()].player.is_some()
    }

    /// Sends a digit to a leg as RFC 4733 events (the leg must have negotiated telephone-event).
    pub fn send_dtmf(&mut self, leg: LegId, digit: char, duration: Duration, now: Instant) -> Result<()> {
        let l = &mut self.legs[leg.index()];
        let te = l
            .codecs()
            .and_then(|c| c.telephone_event.clone())
            .ok_or_else(|| MediaError::UnsupportedCodec("the leg did not negotiate telephone-event; send SIP INFO".into()))?;
        let generator = DtmfGenerator::new(digit, Some(duration.max(Duration::from_millis(40))), te.clock_rate, l.frame(), now)?;
        let id = self.next_local_id;
        self.next_local_id += 1;
        l.dtmf_tx = Some(DtmfOut { generator, ts: None, id, pt: te.pt, clock: te.clock_rate });
        Ok(())
    }

    /// A digit the B2BUA received from a leg as SIP INFO: reported like an RFC 4733 digit,
    /// interrupts an interruptible prompt, and is sent on to the other leg as RFC 4733 when
    /// bridged and that leg has telephone-event.
    pub fn sip_info_dtmf(&mut self, leg: LegId, digit: char, duration: Option<Duration>, now: Instant) -> Result<()> {
        let duration = duration.unwrap_or(Duration::from_millis(250));
        crate::dtmf::event_for_digit(digit).ok_or_else(|| MediaError::InvalidDtmf(format!("not a DTMF digit: {digit:?}")))?;
        self.digit_started(leg, digit.to_ascii_uppercase(), now, false);
        self.events.push_back(MediaEvent::Dtmf(DigitEvent { leg, digit: digit.to_ascii_uppercase(), duration, source: DtmfSource::SipInfo }));
        let other = leg.other();
        if self.linked() && self.legs[other.index()].codecs().is_some_and(|c| c.telephone_event.is_some()) {
            self.send_dtmf(other, digit, duration, now)?;
        }
        Ok(())
    }

    /// Starts recording (finishing one already running). Blocks of interleaved 8 kHz
    /// samples then come out of [`Session::poll_recording`].
    pub fn start_recording(&mut self, mode: RecordMode, now: Instant) {
        self.stop_recording();
        self.recording = Some(Recording { mode, aligner: Aligner::new(mode.channels(), now), next_flush: now + FLUSH_EVERY });
    }

    /// Stops recording; the remaining audio is queued for [`Session::poll_recording`].
    pub fn stop_recording(&mut self) {
        if let Some(mut r) = self.recording.take() {
            let mut last = Vec::new();
            r.aligner.finish(&mut last);
            if !last.is_empty() {
                self.rec_blocks.push_back(last);
            }
        }
    }

    /// Whether a recording runs.
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Both legs' statistics.
    pub fn stats(&self) -> SessionStats {
        SessionStats { a: self.legs[0].stats(), b: self.legs[1].stats() }
    }

    /// The last time any leg sent a packet (or the session start).
    pub fn last_activity(&self) -> Instant {
        self.legs.iter().filter_map(|l| l.last_rx).max().unwrap_or(self.started)
    }

    fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
        b.clear();
        b
    }

    /// Queues a packet the session made, encrypted first when its leg is SRTP (in the
    /// buffer's spare capacity: no allocation while the packet fits [`MTU`]).
    fn queue(&mut self, mut t: Transmit, is_rtcp: bool) {
        if let Some(s) = self.legs[t.leg.index()].srtp.as_mut() {
            let len = t.data.len();
            t.data.resize(len + crate::srtp::MAX_OVERHEAD, 0);
            let protected = if is_rtcp { s.outbound.protect_rtcp(&mut t.data, len) } else { s.outbound.protect_rtp(&mut t.data, len) };
            match protected {
                Ok(n) => t.data.truncate(n),
                Err(e) => {
                    tracing::debug!(leg = ?t.leg, error = %e, "packet not sent: SRTP protect failed");
                    self.recycle(t.data);
                    return;
                }
            }
        }
        self.transmits.push_back(t);
    }

    /// Gives a sent [`Transmit`]'s buffer back for reuse.
    pub fn recycle(&mut self, mut data: Vec<u8>) {
        if self.pool.len() < 16 {
            data.clear();
            self.pool.push(data);
        }
    }

    /// The next packet the session made, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next block of recorded audio (interleaved when stereo), if any.
    pub fn poll_recording(&mut self) -> Option<Vec<i16>> {
        self.rec_blocks.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_tick;
        for l in &self.legs {
            if let Some(p) = l.player.as_ref().and_then(|p| p.poll_timeout()) {
                t = t.min(p);
            }
            if let Some(d) = l.dtmf_tx.as_ref().and_then(|d| d.generator.poll_timeout()) {
                t = t.min(d);
            }
            if let Some(d) = l.dtmf_rx.poll_timeout() {
                t = t.min(d);
            }
        }
        if let Some(r) = &self.recording {
            t = t.min(r.next_flush);
        }
        Some(t)
    }

    /// Handles one datagram received on `leg`'s `stream` socket from `from`: `buf[..len]` is
    /// the datagram, and the rest of `buf` room it may grow into (SRTP toward the other leg
    /// adds a trailer: leave [`crate::srtp::MAX_OVERHEAD`] bytes, or such packets are dropped).
    /// It may be rewritten in place, and when the result is `Some(Forward)` the caller sends
    /// `buf[..forward.len]` as told. Malformed or unexpected datagrams are dropped (and
    /// counted), never an error.
    pub fn handle_datagram(&mut self, leg: LegId, stream: StreamKind, from: SocketAddr, buf: &mut [u8], len: usize, now: Instant) -> Option<Forward> {
        self.conference_in = None;
        let len = len.min(buf.len());
        let is_rtcp = stream == StreamKind::Rtcp || rtp::looks_like_rtcp(&buf[..len]);
        // SRTP: authenticated and decrypted before anything reads it
        let len = self.unprotect(leg, is_rtcp, &mut buf[..len])?;
        if is_rtcp {
            return self.handle_rtcp(leg, stream, from, buf, len);
        }
        let li = leg.index();
        let oi = leg.other().index();
        let (hdr, payload_offset, payload_len) = match RtpPacket::parse(&buf[..len]) {
            Ok(p) => (p.header, p.payload_offset, p.payload.len()),
            Err(_) => {
                self.legs[li].dropped += 1;
                return None;
            }
        };
        let (strict, relatch_after) = (self.cfg.strict, self.cfg.relatch_after);
        let l = &mut self.legs[li];
        match l.rtp.accept(from, hdr.ssrc, hdr.sequence, now, strict, relatch_after) {
            Verdict::Accept => {}
            Verdict::Latched => self.events.push_back(MediaEvent::Latched { leg, stream: StreamKind::Rtp, addr: from }),
            Verdict::Refuse => {
                l.refused += 1;
                return None;
            }
        }
        let l = &mut self.legs[li];
        l.last_rx = Some(now);
        l.timeout_reported = false;
        let Some(codecs) = l.remote.as_ref().map(|r| &r.codecs) else {
            // no SDP yet: count it, nothing to do with it
            l.recv.on_packet(hdr.ssrc, hdr.sequence, hdr.timestamp, len, 8000, now);
            return None;
        };

        // DTMF
        if let Some(te) = codecs.telephone_event.as_ref().filter(|te| te.pt == hdr.payload_type) {
            let clock = te.clock_rate;
            l.recv.on_untimed_packet(hdr.ssrc, hdr.sequence, len);
            let mut updates = std::mem::take(&mut self.updates);
            updates.clear();
            let payload = &buf[payload_offset..payload_offset + payload_len];
            if self.legs[li].dtmf_rx.on_packet(hdr.timestamp, payload, clock, now, &mut updates).is_err() {
                self.legs[li].dropped += 1;
            }
            for u in updates.drain(..) {
                self.dtmf_update(leg, u, now);
            }
            self.updates = updates;
            return self.forward_dtmf(leg, hdr, buf, len, now);
        }

        // copies of the few fields needed: the fast path must not clone a CodecSpec (its fmtp
        // is a String)
        let Some((in_kind, in_clock)) = codecs.audio_by_pt(hdr.payload_type).map(|c| (c.kind, c.clock_rate)) else {
            // comfort noise or an unnegotiated payload type: not relayed
            l.recv.on_packet(hdr.ssrc, hdr.sequence, hdr.timestamp, len, 8000, now);
            l.dropped += 1;
            return None;
        };
        l.recv.on_packet(hdr.ssrc, hdr.sequence, hdr.timestamp, len, in_clock, now);

        // a conference leg's audio goes to its room (unless the leg is on hold: its phone may
        // be playing music into the call)
        if let Some(tag) = self.legs[li].conference
            && self.legs[li].remote.as_ref().is_some_and(|r| r.direction.remote_receives())
        {
            let codec = self.legs[li].codecs().and_then(|c| c.audio_by_pt(hdr.payload_type)).map(|c| c.kind);
            if let Some(codec) = codec {
                self.conference_in = Some(ConferencePacket {
                    leg,
                    tag,
                    codec,
                    sequence: hdr.sequence,
                    timestamp: hdr.timestamp,
                    payload: payload_offset..payload_offset + payload_len,
                });
            }
        }
        let other = &self.legs[oi];
        let relay = self.linked() && other.accepts_relay();
        let out_clock = other.codecs().map(|c| c.send_codec().clock_rate);
        let same = other.codecs().is_some_and(|c| c.send_codec().kind == in_kind && c.send_codec().clock_rate == in_clock);
        let passthrough_pt = other.codecs().and_then(|c| c.audio.iter().find(|x| x.kind == in_kind && x.clock_rate == in_clock)).map(|x| x.pt);
        let record_channel = self.recording.as_ref().and_then(|r| r.mode.channel_of(leg));

        // Fast path: forward with the header rewritten.
        if relay && same && record_channel.is_none() {
            self.legs[li].passthrough = true;
            return self.forward_rtp(leg, hdr, passthrough_pt.unwrap_or(hdr.payload_type), in_clock, payload_len, buf, len, now);
        }

        // Decode (for the recorder and/or for transcoding).
        let need_transcode = relay && !same && out_clock.is_some();
        if !need_transcode && record_channel.is_none() {
            return None;
        }
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let decoded = self.decode(leg, hdr.payload_type, &buf[payload_offset..payload_offset + payload_len], &mut pcm);
        let mut result = None;
        if let Ok(rate) = decoded {
            if let Some(ch) = record_channel {
                let timing = MediaTime { ssrc: hdr.ssrc, timestamp: hdr.timestamp, clock_rate: in_clock };
                self.record_pcm(leg, ch, rate, &pcm, timing, now);
            }
            if need_transcode {
                self.legs[li].passthrough = false;
                if let Some(out_clock) = out_clock {
                    self.transcode_into(leg.other(), hdr, in_clock, out_clock, rate, &pcm, now);
                }
            }
        } else {
            self.legs[li].dropped += 1;
        }
        self.pcm = pcm;
        if relay && same {
            self.legs[li].passthrough = true;
            result = self.forward_rtp(leg, hdr, passthrough_pt.unwrap_or(hdr.payload_type), in_clock, payload_len, buf, len, now);
        }
        result
    }

    /// Authenticates and decrypts a datagram of an SRTP leg in place: the plain packet's
    /// length, or `None` when it is refused (counted: a bad tag, a replay, or malformed).
    /// A plain leg's datagram passes as it is.
    fn unprotect(&mut self, leg: LegId, is_rtcp: bool, datagram: &mut [u8]) -> Option<usize> {
        let l = &mut self.legs[leg.index()];
        let Some(s) = l.srtp.as_mut() else { return Some(datagram.len()) };
        let result = if is_rtcp { s.inbound.unprotect_rtcp(datagram) } else { s.inbound.unprotect_rtp(datagram) };
        match result {
            Ok(n) => Some(n),
            Err(SrtpError::AuthenticationFailed) => {
                l.srtp_auth_failures += 1;
                None
            }
            Err(SrtpError::Replay) => {
                l.srtp_replays += 1;
                None
            }
            Err(_) => {
                l.dropped += 1;
                None
            }
        }
    }

    /// Encrypts `buf[..len]`, a packet for `to`, in place when that leg is SRTP: the length
    /// to send, or `None` when it cannot be (no room, an index used already, an expired key;
    /// counted as dropped on the leg it came from).
    fn protect_out(&mut self, to: LegId, is_rtcp: bool, buf: &mut [u8], len: usize) -> Option<usize> {
        let Some(s) = self.legs[to.index()].srtp.as_mut() else { return Some(len) };
        let result = if is_rtcp { s.outbound.protect_rtcp(buf, len) } else { s.outbound.protect_rtp(buf, len) };
        match result {
            Ok(n) => Some(n),
            Err(_) => {
                self.legs[to.other().index()].dropped += 1;
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_rtp(
        &mut self,
        leg: LegId,
        hdr: RtpHeader,
        out_pt: u8,
        clock: u32,
        payload_len: usize,
        buf: &mut [u8],
        len: usize,
        now: Instant,
    ) -> Option<Forward> {
        let o = &mut self.legs[leg.other().index()];
        let to = o.rtp.addr?;
        let n = o.out.relay(hdr.ssrc, hdr.sequence, hdr.timestamp, clock, now, payload_len);
        rtp::rewrite_header(
            &mut buf[..len],
            &RtpHeader { marker: hdr.marker || n.marker, payload_type: out_pt, sequence: n.seq, timestamp: n.ts, ssrc: o.out.ssrc() },
        );
        let len = self.protect_out(leg.other(), false, buf, len)?;
        Some(Forward { leg: leg.other(), stream: StreamKind::Rtp, to, len })
    }

    fn forward_dtmf(&mut self, leg: LegId, hdr: RtpHeader, buf: &mut [u8], len: usize, now: Instant) -> Option<Forward> {
        if !self.linked() {
            return None;
        }
        let (from_codecs, to_codecs) = (self.legs[leg.index()].codecs()?, self.legs[leg.other().index()].codecs()?);
        if dtmf_path(from_codecs, to_codecs) != DtmfPath::Passthrough {
            return None;
        }
        let te = to_codecs.telephone_event.as_ref()?;
        let (pt, clock) = (te.pt, te.clock_rate);
        let o = &self.legs[leg.other().index()];
        if o.player.is_some() || o.dtmf_tx.is_some() || !o.remote.as_ref().is_some_and(|r| r.direction.remote_receives()) {
            return None;
        }
        let payload_len = len.saturating_sub(RTP_HEADER_LEN);
        self.forward_rtp(leg, hdr, pt, clock, payload_len, buf, len, now)
    }

    fn dtmf_update(&mut self, leg: LegId, u: DtmfUpdate, now: Instant) {
        match u {
            DtmfUpdate::Started(digit) => self.digit_started(leg, digit, now, true),
            DtmfUpdate::Ended { digit, duration } => {
                self.events.push_back(MediaEvent::Dtmf(DigitEvent { leg, digit, duration, source: DtmfSource::Rfc4733 }));
                if let Some(d) = self.legs[leg.other().index()].dtmf_tx.as_mut()
                    && d.generator.digit() == digit
                {
                    d.generator.end(duration);
                }
            }
        }
    }

    /// A key went down on `leg`: interrupt its prompt, and mirror it to the other leg when
    /// that leg needs RFC 4733 generated (live, `live` = the duration comes later).
    fn digit_started(&mut self, leg: LegId, digit: char, now: Instant, live: bool) {
        if self.legs[leg.index()].player.as_ref().is_some_and(|p| p.is_interruptible()) {
            self.finish_player(leg, Some(digit), false);
        }
        if !live || !self.linked() {
            return;
        }
        let (Some(from), Some(to)) = (self.legs[leg.index()].codecs(), self.legs[leg.other().index()].codecs()) else { return };
        if dtmf_path(from, to) != DtmfPath::Generate {
            return;
        }
        let Some(te) = to.telephone_event.clone() else { return };
        let o = &mut self.legs[leg.other().index()];
        if let Ok(generator) = DtmfGenerator::new(digit, None, te.clock_rate, o.frame(), now) {
            let id = self.next_local_id;
            self.next_local_id += 1;
            o.dtmf_tx = Some(DtmfOut { generator, ts: None, id, pt: te.pt, clock: te.clock_rate });
        }
    }

    /// Decodes a payload of `leg` (payload type `pt`, an audio codec of the leg) into `pcm`;
    /// returns the PCM rate. The decoder is made on the first packet of that payload type.
    fn decode(&mut self, leg: LegId, pt: u8, payload: &[u8], pcm: &mut Vec<i16>) -> Result<u32> {
        let opus = self.cfg.opus;
        let l = &mut self.legs[leg.index()];
        let pos = match l.decoders.iter().position(|(p, _)| *p == pt) {
            Some(p) => p,
            None => {
                let codec = l.codecs().and_then(|c| c.audio_by_pt(pt)).ok_or_else(|| MediaError::UnsupportedCodec(format!("payload type {pt}")))?;
                let dec = AudioDecoder::new(codec, &opus)?;
                l.decoders.push((pt, dec));
                l.decoders.len() - 1
            }
        };
        let dec = &mut l.decoders[pos].1;
        dec.decode(payload, 0, pcm)?;
        Ok(dec.pcm_rate())
    }

    #[allow(clippy::too_many_arguments)]
    fn record_pcm(&mut self, leg: LegId, channel: usize, rate: u32, pcm: &[i16], timing: MediaTime, now: Instant) {
        let Some(rec) = self.recording.as_mut() else { return };
        if rate == crate::record::RATE {
            rec.aligner.push_timed(channel, pcm, Some(timing), now);
            return;
        }
        let l = &mut self.legs[leg.index()];
        if l.resample_rec.as_ref().is_none_or(|(r, _)| *r != rate) {
            match Resampler::new(rate, crate::record::RATE) {
                Ok(r) => l.resample_rec = Some((rate, r)),
                Err(_) => return,
            }
        }
        if let Some((_, r)) = l.resample_rec.as_mut() {
            self.pcm2.clear();
            r.process_i16(pcm, &mut self.pcm2);
            rec.aligner.push_timed(channel, &self.pcm2, Some(timing), now);
        }
    }

    fn ensure_encoder(&mut self, to: LegId) -> Option<u32> {
        let opus = self.cfg.opus;
        let l = &mut self.legs[to.index()];
        let want = l.remote.as_ref()?.codecs.send_codec();
        // compared in place: cloning the spec per packet would allocate
        if l.encoder.as_ref().is_none_or(|(c, _)| c != want) {
            let codec = want.clone();
            let enc = AudioEncoder::new(&codec, &opus).ok()?;
            l.encoder = Some((codec, enc));
        }
        l.encoder.as_ref().map(|(_, e)| e.pcm_rate())
    }

    /// Transcodes `pcm` (decoded from the other leg's packet `hdr` at `rate`) toward `to`.
    #[allow(clippy::too_many_arguments)]
    fn transcode_into(&mut self, to: LegId, hdr: RtpHeader, in_clock: u32, out_clock: u32, rate: u32, pcm: &[i16], now: Instant) {
        let Some(enc_rate) = self.ensure_encoder(to) else { return };
        let from = to.other();
        // resample on the input leg's resampler
        let mut resampled = std::mem::take(&mut self.pcm2);
        resampled.clear();
        let samples: &[i16] = if rate == enc_rate {
            pcm
        } else {
            let fl = &mut self.legs[from.index()];
            if fl.resample_out.as_ref().is_none_or(|(a, b, _)| (*a, *b) != (rate, enc_rate)) {
                match Resampler::new(rate, enc_rate) {
                    Ok(r) => fl.resample_out = Some((rate, enc_rate, r)),
                    Err(_) => return,
                }
            }
            if let Some((_, _, r)) = fl.resample_out.as_mut() {
                r.process_i16(pcm, &mut resampled);
            }
            &resampled
        };
        let o = &mut self.legs[to.index()];
        let (ts, new_source) = o.out.map_ts(hdr.ssrc, hdr.timestamp, in_clock, out_clock, now);
        // a partial frame left over from before a gap (loss, silence suppression) is dropped:
        // the new audio starts at its own timestamp
        let pending_end = o.pending_ts.wrapping_add(o.encoder.as_ref().map_or(0, |(_, e)| e.rtp_units(o.pending.len())));
        let discontinuous = (ts.wrapping_sub(pending_end) as i32).unsigned_abs() > out_clock / 100;
        if o.pending.is_empty() || new_source || discontinuous {
            o.pending.clear();
            o.pending_ts = ts;
            o.pending_marker = new_source || hdr.marker;
        }
        o.pending.extend_from_slice(samples);
        self.pcm2 = resampled;
        self.drain_pending(to, now);
    }

    /// Encodes whole frames of `to`'s pending PCM into packets.
    fn drain_pending(&mut self, to: LegId, now: Instant) {
        let Some(dest) = self.legs[to.index()].rtp.addr else {
            self.legs[to.index()].pending.clear();
            return;
        };
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(MTU - RTP_HEADER_LEN, 0);
        loop {
            let l = &mut self.legs[to.index()];
            let ptime = l.remote.as_ref().map_or(20, |r| r.codecs.frame_ms()) as usize;
            let Some((codec, enc)) = l.encoder.as_mut() else { break };
            let frame = enc.pcm_rate() as usize * ptime / 1000;
            if frame == 0 || l.pending.len() < frame {
                break;
            }
            let (pt, clock) = (codec.pt, codec.clock_rate);
            let encoded = enc.encode(&l.pending[..frame], &mut payload);
            let units = enc.rtp_units(frame);
            l.pending.drain(..frame);
            let ts = l.pending_ts;
            l.pending_ts = ts.wrapping_add(units);
            let Ok(n) = encoded else { continue };
            let marker = std::mem::take(&mut l.pending_marker);
            let seq = l.out.numbered(ts, clock, now, n);
            let ssrc = l.out.ssrc();
            let mut data = self.buffer();
            data.resize(RTP_HEADER_LEN + n, 0);
            let _ = rtp::build(&RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc }, &payload[..n], &mut data);
            self.queue(Transmit { leg: to, stream: StreamKind::Rtp, to: dest, data }, false);
        }
        self.payload = payload;
    }

    fn handle_rtcp(&mut self, leg: LegId, stream: StreamKind, from: SocketAddr, buf: &mut [u8], len: usize) -> Option<Forward> {
        let li = leg.index();
        let parsed = match rtcp::parse_compound(&buf[..len]) {
            Ok(p) => p,
            Err(_) => {
                self.legs[li].dropped += 1;
                return None;
            }
        };
        let sender = parsed.iter().find_map(|p| match p {
            RtcpPacket::SenderReport { ssrc, .. } | RtcpPacket::ReceiverReport { ssrc, .. } => Some(*ssrc),
            _ => None,
        });
        let l = &mut self.legs[li];
        // bound to the RTP stream: its source's IP (with rtcp-mux, its address) and SSRC
        match l.rtcp.accept(&l.rtp, from, sender, stream == StreamKind::Rtp) {
            Verdict::Accept => {}
            Verdict::Latched => self.events.push_back(MediaEvent::Latched { leg, stream, addr: from }),
            Verdict::Refuse => {
                l.refused += 1;
                return None;
            }
        }
        let l = &mut self.legs[li];
        l.remote_report.rtcp_packets += 1;
        let ours = l.out.ssrc();
        for p in &parsed {
            if let RtcpPacket::SenderReport { reports, .. } | RtcpPacket::ReceiverReport { reports, .. } = p
                && let Some(r) = reports.iter().find(|r| r.ssrc == ours)
            {
                let clock = l.encoder.as_ref().map_or(8000, |(c, _)| c.clock_rate).max(1);
                l.remote_report.fraction_lost = f32::from(r.fraction_lost) / 256.0;
                l.remote_report.cumulative_lost = r.cumulative_lost;
                l.remote_report.jitter = Duration::from_micros(u64::from(r.jitter) * 1_000_000 / u64::from(clock));
            }
        }
        // relay when both directions pass through (the reports then describe the far
        // endpoint's stream); when FlowPBX transcodes or plays, it reports itself instead
        let oi = leg.other().index();
        if !self.linked() || !self.legs[li].passthrough || !self.legs[oi].passthrough {
            return None;
        }
        let o = &self.legs[oi];
        let (out_stream, to) = o.rtcp_dest()?;
        let (their_view, other_source) = (o.out.ssrc(), o.recv.ssrc());
        rtcp::rewrite_ssrcs(&mut buf[..len], |field, ssrc| match field {
            SsrcField::Sender => their_view,
            SsrcField::ReportSubject if ssrc == ours => other_source.unwrap_or(ssrc),
            SsrcField::ReportSubject => ssrc,
        })
        .ok()?;
        let len = self.protect_out(leg.other(), true, buf, len)?;
        Some(Forward { leg: leg.other(), stream: out_stream, to, len })
    }

    /// Runs what is due at `now`: prompt frames, DTMF packets, lost DTMF ends, recorder
    /// flushes, RTCP reports and media timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        for leg in [LegId::A, LegId::B] {
            self.play_due(leg, now);
            self.dtmf_due(leg, now);
            let mut updates = std::mem::take(&mut self.updates);
            updates.clear();
            self.legs[leg.index()].dtmf_rx.handle_timeout(now, &mut updates);
            for u in updates.drain(..) {
                self.dtmf_update(leg, u, now);
            }
            self.updates = updates;
        }
        if let Some(r) = self.recording.as_mut()
            && now >= r.next_flush
        {
            let mut block = Vec::new();
            if r.aligner.flush(now, &mut block) > 0 {
                self.rec_blocks.push_back(block);
            }
            r.next_flush = now + FLUSH_EVERY;
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.check_timeouts(now);
            self.send_reports(now);
        }
    }

    fn play_due(&mut self, leg: LegId, now: Instant) {
        loop {
            let l = &mut self.legs[leg.index()];
            let frame = l.frame();
            let Some(player) = l.player.as_mut() else { return };
            if player.poll_timeout().is_none_or(|t| t > now) {
                if player.is_finished() {
                    self.finish_player(leg, None, true);
                }
                return;
            }
            let samples8k = (8 * frame.as_millis()) as usize;
            let mut pcm = std::mem::take(&mut self.pcm);
            pcm.clear();
            player.poll_frame(now, samples8k, frame, &mut pcm);
            let id = player.id();
            let receives = l.remote.as_ref().is_some_and(|r| r.direction.remote_receives());
            if receives && l.dtmf_tx.is_none() {
                self.send_local_audio(leg, id, &pcm, now);
            }
            self.pcm = pcm;
        }
    }

    /// Encodes 8 kHz PCM from a local source toward a leg and queues the packet.
    fn send_local_audio(&mut self, leg: LegId, source: u64, pcm8k: &[i16], now: Instant) {
        let Some(enc_rate) = self.ensure_encoder(leg) else { return };
        let l = &mut self.legs[leg.index()];
        let Some(dest) = l.rtp.addr else { return };
        let mut resampled = std::mem::take(&mut self.pcm2);
        resampled.clear();
        let samples: &[i16] = if enc_rate == 8000 {
            pcm8k
        } else {
            if l.resample_play.as_ref().is_none_or(|(r, _)| *r != enc_rate) {
                match Resampler::new(8000, enc_rate) {
                    Ok(r) => l.resample_play = Some((enc_rate, r)),
                    Err(_) => return,
                }
            }
            if let Some((_, r)) = l.resample_play.as_mut() {
                r.process_i16(pcm8k, &mut resampled);
            }
            &resampled
        };
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(MTU - RTP_HEADER_LEN, 0);
        let l = &mut self.legs[leg.index()];
        if let Some((codec, enc)) = l.encoder.as_mut()
            && let Ok(n) = enc.encode(samples, &mut payload)
        {
            let units = enc.rtp_units(samples.len());
            let num = l.out.local(source, units, codec.clock_rate, now, n);
            let hdr = RtpHeader { marker: num.marker, payload_type: codec.pt, sequence: num.seq, timestamp: num.ts, ssrc: l.out.ssrc() };
            let mut data = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
            data.clear();
            data.resize(RTP_HEADER_LEN + n, 0);
            let _ = rtp::build(&hdr, &payload[..n], &mut data);
            self.queue(Transmit { leg, stream: StreamKind::Rtp, to: dest, data }, false);
        }
        self.payload = payload;
        self.pcm2 = resampled;
    }

    fn dtmf_due(&mut self, leg: LegId, now: Instant) {
        loop {
            let l = &mut self.legs[leg.index()];
            let Some(d) = l.dtmf_tx.as_mut() else { return };
            let Some(ev) = d.generator.poll(now) else {
                if d.generator.is_finished() {
                    // audio resumes after the event's full duration, as a new talkspurt
                    if let Some(ts) = d.ts {
                        l.out.mark(ts.wrapping_add(u32::from(d.generator.last_duration())), now);
                    }
                    l.dtmf_tx = None;
                    l.out.interrupt();
                }
                return;
            };
            let Some(dest) = l.rtp.addr else {
                continue;
            };
            let (ts, seq) = match d.ts {
                Some(ts) => (ts, l.out.numbered(ts, d.clock, now, 4)),
                None => {
                    let n = l.out.local(d.id, 0, d.clock, now, 4);
                    d.ts = Some(n.ts);
                    (n.ts, n.seq)
                }
            };
            let hdr = RtpHeader { marker: ev.marker, payload_type: d.pt, sequence: seq, timestamp: ts, ssrc: l.out.ssrc() };
            let mut data = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
            data.clear();
            data.resize(RTP_HEADER_LEN + 4, 0);
            let _ = rtp::build(&hdr, &ev.payload, &mut data);
            self.queue(Transmit { leg, stream: StreamKind::Rtp, to: dest, data }, false);
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        let holding = self.legs.iter().any(|l| l.remote.as_ref().is_some_and(|r| r.direction != MediaDirection::SendRecv));
        for l in &mut self.legs {
            let Some(remote) = &l.remote else { continue };
            if holding || !remote.direction.remote_sends() || l.timeout_reported {
                continue;
            }
            let since = match (l.last_rx, l.remote_since) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b).unwrap_or(now),
            };
            let silent_for = now.saturating_duration_since(since);
            if silent_for >= self.cfg.media_timeout {
                l.timeout_reported = true;
                self.events.push_back(MediaEvent::MediaTimeout { leg: l.id, silent_for });
            }
        }
    }

    fn send_reports(&mut self, now: Instant) {
        for i in 0..2 {
            let passthrough_pair = self.linked() && self.legs[0].passthrough && self.legs[1].passthrough && self.legs.iter().all(|l| l.player.is_none());
            let l = &mut self.legs[i];
            if now < l.next_rtcp || l.remote.is_none() {
                continue;
            }
            l.next_rtcp = now + self.cfg.rtcp_interval;
            // the endpoints' own reports are relayed when both directions pass through
            if passthrough_pair {
                continue;
            }
            let Some((stream, dest)) = l.rtcp_dest() else { continue };
            let reports: Vec<ReportBlock> = l.recv.report_block().into_iter().collect();
            let ssrc = l.out.ssrc();
            let mut packets = Vec::with_capacity(2);
            match l.out.last_sent() {
                Some((ts, clock, at)) if l.out.packets > 0 => {
                    let since = now.saturating_duration_since(at);
                    let rtp_ts = ts.wrapping_add((since.as_micros() as u64 * u64::from(clock) / 1_000_000) as u32);
                    let wall = self.wall_at_start + now.saturating_duration_since(self.started);
                    let info = SenderInfo { ntp: rtcp::ntp_timestamp(wall), rtp_ts, packets: l.out.packets as u32, octets: l.out.octets as u32 };
                    packets.push(RtcpPacket::SenderReport { ssrc, info, reports });
                }
                _ => packets.push(RtcpPacket::ReceiverReport { ssrc, reports }),
            }
            packets.push(RtcpPacket::SourceDescription(vec![SdesChunk { ssrc, items: vec![(1, self.cfg.cname.clone())] }]));
            let leg = l.id;
            let mut data = self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MTU));
            data.clear();
            rtcp::build_compound(&packets, &mut data);
            self.queue(Transmit { leg, stream, to: dest, data }, true);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
