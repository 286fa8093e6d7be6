//! Where SDP crosses between legs, and what the media engine is told when it does.
//!
//! Every call has a media session with FlowPBX's RTP ports toward leg A (the caller) and leg
//! B (the callee). An offer from one side is read (address, codecs FlowPBX handles,
//! direction), handed to the session for that leg, and re-offered to the other side from
//! FlowPBX's own address and port with `offer_to_callee` (the offerer's codecs first, so the
//! common case passes through; then every codec FlowPBX can transcode to). The answer is
//! read for its leg and answered back to the offerer with `answer_to_caller`; once both legs
//! are known the session bridges them. A hold is just a direction: relayed as the other
//! side's direction, and given to the session (which then stops counting silence).
//!
//! FlowPBX answers the caller itself when a flow answers (`answer_locally`), and offers the
//! callee itself when a flow rings after that (`PendingOffer::Local`).
//!
//! SRTP (SDES, `crate::srtp`): each side has the policy of its extension or trunk. An offer's
//! `a=crypto` is answered with a fresh key of FlowPBX's own (decided when the offer arrives,
//! so a side that requires SRTP and offers none is refused with 488 before anything rings);
//! what FlowPBX offers the other side carries keys of its own, made once per offer (forks
//! share them, only one answers). A side's keys go to the media session (`set_srtp`) before
//! its `set_remote`; keys never cross from one side to the other.

use std::net::IpAddr;

use bytes::Bytes;
use media::sdes::{CryptoAttribute, SdesAnswer};
use media::{answer_offer, answer_to_caller, offer_to_callee, CodecKind, CodecSpec, LegId, SrtpKeys, SrtpSuite};
use sip::sdp::Direction;
use sip::transaction::Peer;
use store::SrtpPolicy;

use super::{B2bua, Ctx, Side};
use crate::anchor::MediaPort;
use crate::events::CallKey;
use crate::sdp_media::{self, is_sdp, LegSdp, LocalSession, Outgoing, SdpFault, APPLICATION_SDP};
use crate::srtp;

/// What an SDP body is in the offer/answer exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdpKind {
    /// A new offer.
    Offer,
    /// The answer to the pending offer.
    Answer,
    /// The answer in a provisional response: the final answer may still come.
    EarlyAnswer,
}

/// An offer waiting for its answer.
#[derive(Debug, Clone)]
pub(crate) enum PendingOffer {
    /// A side offered; FlowPBX offered the other side `relayed`. `answer`: FlowPBX's SDES
    /// answer to the offerer (None: plain); `crypto`: the keys FlowPBX offered the other side.
    Relayed { from: Side, offer: Box<LegSdp>, relayed: Vec<CodecSpec>, answer: Option<Box<SdesAnswer>>, crypto: Option<Vec<CryptoAttribute>> },
    /// FlowPBX offered `to` these codecs itself (a flow answered or rings), with these keys.
    Local { to: Side, codecs: Vec<CodecSpec>, crypto: Option<Vec<CryptoAttribute>> },
}

/// A call's offer/answer state, as the core keeps it (what `sdp_across` rewrites with).
#[derive(Debug, Clone)]
pub(crate) struct SdpState {
    /// FlowPBX's RTP port toward each side.
    ports: [u16; 2],
    /// FlowPBX's `o=` line toward each side.
    sessions: [LocalSession; 2],
    pub(crate) offer: Option<PendingOffer>,
    /// The codecs each side negotiated last.
    negotiated: [Option<Vec<CodecSpec>>; 2],
    /// Each side's SRTP policy (its extension's or trunk's).
    policy: [SrtpPolicy; 2],
    /// Each side's SRTP keys in the media session now (None: plain RTP).
    keys: [Option<SrtpKeys>; 2],
    /// Each side's media is WebRTC (DTLS-SRTP, keys in the media engine).
    webrtc: [bool; 2],
}

impl SdpState {
    /// Whether a side negotiated telephone-event (None: nothing negotiated yet).
    pub(crate) fn telephone_event(&self, side: Side) -> Option<bool> {
        self.negotiated[idx(side)].as_ref().map(|c| c.iter().any(|c| c.kind == CodecKind::TelephoneEvent))
    }

    /// The SRTP suite of each side's media now (None: plain RTP).
    pub(crate) fn srtp(&self) -> [Option<SrtpSuite>; 2] {
        [self.keys[0].as_ref().map(|k| k.outbound.suite()), self.keys[1].as_ref().map(|k| k.outbound.suite())]
    }

    /// How each side's media is encrypted now: the SDES suite, `DTLS-SRTP` for WebRTC, None
    /// for plain RTP.
    pub(crate) fn encryption(&self) -> [Option<&'static str>; 2] {
        let srtp = self.srtp();
        [0, 1].map(|i| srtp[i].map(|s| s.name()).or(self.webrtc[i].then_some("DTLS-SRTP")))
    }

    /// Sets a side's SRTP policy (the leg that answers for side B, a transfer target).
    pub(crate) fn set_policy(&mut self, side: Side, policy: SrtpPolicy) {
        self.policy[idx(side)] = policy;
    }

    /// FlowPBX's current outbound key toward a side (kept on re-offers).
    fn our_key(&self, side: Side) -> Option<&media::SrtpKey> {
        self.keys[idx(side)].as_ref().map(|k| &k.outbound)
    }

    /// The SDP of an offer FlowPBX makes toward `side` from its port there: `codecs`, and
    /// the crypto lines (RTP/SAVP or RTP/AVP) the side's policy calls for.
    fn write_offer(
        &mut self,
        side: Side,
        ip: IpAddr,
        codecs: &[CodecSpec],
        ptime: Option<u32>,
        direction: Direction,
        crypto: Option<&[CryptoAttribute]>,
    ) -> Bytes {
        let (secure, lines) = srtp::offer_lines(self.policy[idx(side)], crypto);
        sdp_media::write(
            &mut self.sessions[idx(side)],
            &Outgoing { ip, port: self.ports[idx(side)], codecs, ptime, direction, rtcp_mux: false, mirror: None, secure, crypto: &lines },
        )
    }

    /// Gives a side's keys to the media session (before its `set_remote`); nothing is sent
    /// for a side that stays plain.
    fn set_keys(&mut self, port: &mut dyn MediaPort, key: CallKey, side: Side, keys: Option<SrtpKeys>) {
        if keys.is_none() && self.keys[idx(side)].is_none() {
            return;
        }
        port.set_srtp(key, leg(side), keys.clone());
        self.keys[idx(side)] = keys;
    }

    /// Whether the caller's INVITE carried an offer still waiting for its answer.
    pub(crate) fn caller_offer_pending(&self) -> bool {
        matches!(self.offer, Some(PendingOffer::Relayed { from: Side::A, .. }))
    }
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

pub(crate) fn leg(side: Side) -> LegId {
    match side {
        Side::A => LegId::A,
        Side::B => LegId::B,
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

/// What FlowPBX offers when it makes the offer itself and has nothing to start from.
fn default_offer() -> Vec<CodecSpec> {
    vec![
        CodecSpec::pcmu(),
        CodecSpec::pcma(),
        CodecSpec::opus(media::negotiate::PREFERRED_OPUS_PT),
        CodecSpec::telephone_event(media::negotiate::PREFERRED_DTMF_PT, 8000),
    ]
}

/// The status a caller gets for SDP FlowPBX cannot anchor.
pub(crate) fn fault_status(f: SdpFault) -> (u16, &'static str) {
    match f {
        SdpFault::Unreadable => (400, "Bad SDP"),
        SdpFault::NoAudio | SdpFault::NoCodec | SdpFault::Crypto => (488, "Not Acceptable Here"),
    }
}

type Body = (Option<String>, Bytes);

fn passthrough(content_type: Option<&str>, body: &Bytes) -> Body {
    (content_type.map(str::to_owned), body.clone())
}

impl B2bua {
    /// Opens the media of a new call and reads the caller's offer, if its INVITE has one.
    /// `Err` is the status to refuse the call with.
    pub(crate) fn open_media(
        &mut self,
        cx: &mut Ctx<'_>,
        key: CallKey,
        call_id: &str,
        content_type: Option<&str>,
        body: &Bytes,
        policy: SrtpPolicy,
    ) -> Result<Option<SdpState>, (u16, &'static str)> {
        if self.media.is_none() {
            return Ok(None);
        }
        let offer = if is_sdp(content_type, body) { Some(sdp_media::read(body).map_err(fault_status)?) } else { None };
        let sessions = [self.local_session(cx), self.local_session(cx)];
        let Some(port) = self.media.as_mut() else { return Ok(None) };
        let ports = port.open(key, call_id).map_err(|e| {
            tracing::warn!(error = %e, "no media for a new call");
            (503, "Service Unavailable")
        })?;
        let mut m =
            SdpState { ports, sessions, offer: None, negotiated: [None, None], policy: [policy, SrtpPolicy::Off], keys: [None, None], webrtc: [false, false] };
        if let Some(offer) = offer {
            let remote = offer.remote(&offer.codecs).map_err(|_| SdpFault::NoCodec);
            // WebRTC media is DTLS-SRTP, whatever the SDES policy says
            let sdes = if offer.webrtc.is_some() { Ok(None) } else { srtp::answer(policy, &offer, None) };
            let (remote, sdes) = match (remote, sdes) {
                (Ok(r), Ok(s)) => (r, s),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::info!(key = %key, ?e, ?policy, "the caller's offer cannot be anchored: refused");
                    port.close(key);
                    return Err(fault_status(e));
                }
            };
            m.set_keys(port.as_mut(), key, Side::A, sdes.as_ref().map(|a| a.keys.clone()));
            port.set_remote(key, LegId::A, remote);
            let relayed = offer_to_callee(&offer.codecs);
            let crypto = srtp::offer(SrtpPolicy::Optional, None);
            m.offer = Some(PendingOffer::Relayed { from: Side::A, offer: Box::new(offer), relayed, answer: sdes.map(Box::new), crypto });
        }
        Ok(Some(m))
    }

    fn local_session(&mut self, cx: &mut Ctx<'_>) -> LocalSession {
        let id = cx.sig.ids.tag().bytes().fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b))) % 1_000_000_000_000;
        LocalSession { id, version: 0 }
    }

    fn media_ip(&mut self, cx: &mut Ctx<'_>, toward: Peer) -> IpAddr {
        cx.sig.local_addr(toward).ip()
    }

    /// The body of the INVITE to a callee leg at `dest`: the caller's offer re-offered from
    /// FlowPBX, or FlowPBX's own offer once a flow answered the caller; none for a delayed
    /// offer (or a PBX without media, where the caller's body passes).
    pub(crate) fn offer_for_callee(
        &mut self,
        cx: &mut Ctx<'_>,
        key: CallKey,
        dest: Peer,
        content_type: Option<&str>,
        body: &Bytes,
        policy: SrtpPolicy,
    ) -> Body {
        let ip = self.media_ip(cx, dest);
        let Some(call) = self.table.get_mut(key) else { return passthrough(content_type, body) };
        let local_answer = call.answered_locally();
        let Some(m) = call.media.as_mut() else { return passthrough(content_type, body) };
        m.set_policy(Side::B, policy);
        let (codecs, ptime, direction, crypto) = match &m.offer {
            Some(PendingOffer::Relayed { from: Side::A, offer, relayed, crypto, .. }) => (relayed.clone(), offer.ptime, offer.direction, crypto.clone()),
            _ if local_answer => {
                let base = m.negotiated[0].clone().unwrap_or_else(default_offer);
                let codecs = offer_to_callee(&base);
                let crypto = srtp::offer(SrtpPolicy::Optional, m.our_key(Side::B));
                m.offer = Some(PendingOffer::Local { to: Side::B, codecs: codecs.clone(), crypto: crypto.clone() });
                (codecs, None, Direction::SendRecv, crypto)
            }
            _ => return (None, Bytes::new()),
        };
        if matches!(dest.transport, sip::transaction::Transport::Ws | sip::transaction::Transport::Wss)
            && let Some(port) = self.media.as_mut()
        {
            // a phone registered over WebSocket is a browser: it gets a WebRTC offer
            match port.webrtc_offer(key, LegId::B, &codecs) {
                Ok(sdp) => return (Some(APPLICATION_SDP.into()), Bytes::from(sdp)),
                Err(e) => tracing::warn!(key = %key, error = %e, "no WebRTC offer for a WebSocket phone: offered plain RTP"),
            }
        }
        let out = m.write_offer(Side::B, ip, &codecs, ptime, direction, crypto.as_deref());
        (Some(APPLICATION_SDP.into()), out)
    }

    /// The one place an offer or answer crosses from one side to the other: read for its leg,
    /// given to the media session, and rewritten toward `toward` (the other side) from
    /// FlowPBX's address. Bodies that are not SDP, and every body on a PBX without media,
    /// pass unchanged. An empty result means nothing crosses (an answer to FlowPBX's own
    /// offer).
    pub(crate) fn sdp_across(
        &mut self,
        cx: &mut Ctx<'_>,
        key: CallKey,
        from: Side,
        kind: SdpKind,
        content_type: Option<&str>,
        body: &Bytes,
        toward: Peer,
    ) -> Result<Body, SdpFault> {
        if !is_sdp(content_type, body) {
            return Ok(passthrough(content_type, body));
        }
        let ip = self.media_ip(cx, toward);
        let Some(call) = self.table.get_mut(key) else { return Ok(passthrough(content_type, body)) };
        let Some(m) = call.media.as_mut() else { return Ok(passthrough(content_type, body)) };
        let Some(port) = self.media.as_mut() else { return Ok(passthrough(content_type, body)) };
        let sdp = sdp_media::read(body)?;
        let to = other(from);
        match kind {
            SdpKind::Offer => {
                if sdp.webrtc.is_some() {
                    // a new WebRTC offer mid-call (a browser's hold or ICE restart) would need a
                    // new DTLS/ICE answer from the media engine: refused with 488, which leaves
                    // the call as it is (RFC 3261 §14.1)
                    tracing::info!(key = %key, ?from, "a WebRTC re-offer is not supported: refused");
                    return Err(SdpFault::NoCodec);
                }
                if m.webrtc[idx(to)] {
                    // relaying it would send a plain RTP offer to a browser, whose transport is
                    // DTLS/ICE from the media engine: refused the same way (the call stays)
                    tracing::info!(key = %key, ?from, "a re-offer toward a WebRTC leg is not supported: refused");
                    return Err(SdpFault::NoCodec);
                }
                let remote = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec)?;
                let sdes = srtp::answer(m.policy[idx(from)], &sdp, m.our_key(from))?;
                m.set_keys(port.as_mut(), key, from, sdes.as_ref().map(|a| a.keys.clone()));
                port.set_remote(key, leg(from), remote);
                let relayed = offer_to_callee(&sdp.codecs);
                let crypto = srtp::offer(m.policy[idx(to)], m.our_key(to));
                let out = m.write_offer(to, ip, &relayed, sdp.ptime, sdp.direction, crypto.as_deref());
                m.offer = Some(PendingOffer::Relayed { from, offer: Box::new(sdp), relayed, answer: sdes.map(Box::new), crypto });
                Ok((Some(APPLICATION_SDP.into()), out))
            }
            SdpKind::Answer | SdpKind::EarlyAnswer => match m.offer.take() {
                Some(PendingOffer::Relayed { from: offerer, offer, relayed, answer: sdes, crypto }) if offerer == to => {
                    let answer = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec);
                    let back = answer_to_caller(&offer.codecs, &sdp.codecs).map_err(|_| SdpFault::NoCodec);
                    // a browser's answer to FlowPBX's WebRTC offer completes its transport
                    let keys = match sdp.webrtc.as_deref() {
                        Some(text) => port.webrtc_accept(key, leg(from), text).map(|()| None).map_err(|e| {
                            tracing::warn!(key = %key, error = %e, "the WebRTC answer could not be taken");
                            SdpFault::NoCodec
                        }),
                        None => srtp::accept(m.policy[idx(from)], crypto.as_deref(), &sdp),
                    };
                    let back_remote = back.as_ref().map_err(|e| *e).and_then(|b| offer.remote(b).map_err(|_| SdpFault::NoCodec));
                    let (answer, back, keys, back_remote) = match (answer, back, keys, back_remote) {
                        (Ok(a), Ok(b), Ok(k), Ok(r)) => (a, b, k, r),
                        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
                            m.offer = Some(PendingOffer::Relayed { from: offerer, offer, relayed, answer: sdes, crypto });
                            return Err(e);
                        }
                    };
                    // a WebRTC offerer is answered by the media engine's WebRTC transport
                    let webrtc = match offer.webrtc.as_deref() {
                        Some(text) => match port.webrtc_answer(key, leg(to), text, &back) {
                            Ok(a) => Some(Bytes::from(a)),
                            Err(e) => {
                                tracing::warn!(key = %key, error = %e, "the WebRTC offer could not be answered");
                                m.offer = Some(PendingOffer::Relayed { from: offerer, offer, relayed, answer: sdes, crypto });
                                return Err(SdpFault::NoCodec);
                            }
                        },
                        None => None,
                    };
                    if webrtc.is_some() {
                        m.webrtc[idx(to)] = true;
                    }
                    if sdp.webrtc.is_some() {
                        m.webrtc[idx(from)] = true;
                    }
                    m.set_keys(port.as_mut(), key, from, keys);
                    port.set_remote(key, leg(from), answer);
                    port.set_remote(key, leg(to), back_remote);
                    port.bridge(key);
                    let lines: Vec<String> = sdes.iter().map(|a| a.attribute.to_string()).collect();
                    let out = webrtc.unwrap_or_else(|| {
                        sdp_media::write(
                            &mut m.sessions[idx(to)],
                            &Outgoing {
                                ip,
                                port: m.ports[idx(to)],
                                codecs: &back,
                                ptime: None,
                                direction: sdp.direction,
                                rtcp_mux: offer.rtcp_mux,
                                mirror: Some(&offer),
                                secure: false,
                                crypto: &lines,
                            },
                        )
                    });
                    m.negotiated[idx(from)] = Some(sdp.codecs.clone());
                    m.negotiated[idx(to)] = Some(back);
                    if kind == SdpKind::EarlyAnswer {
                        m.offer = Some(PendingOffer::Relayed { from: offerer, offer, relayed, answer: sdes, crypto });
                    }
                    Ok((Some(APPLICATION_SDP.into()), out))
                }
                Some(PendingOffer::Local { to: offered, codecs, crypto }) if offered == from => {
                    let remote = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec);
                    let keys = match sdp.webrtc.as_deref() {
                        Some(text) => port.webrtc_accept(key, leg(from), text).map(|()| None).map_err(|e| {
                            tracing::warn!(key = %key, error = %e, "the WebRTC answer could not be taken");
                            SdpFault::NoCodec
                        }),
                        None => srtp::accept(m.policy[idx(from)], crypto.as_deref(), &sdp),
                    };
                    let (remote, keys) = match (remote, keys) {
                        (Ok(r), Ok(k)) => (r, k),
                        (Err(e), _) | (_, Err(e)) => {
                            m.offer = Some(PendingOffer::Local { to: offered, codecs, crypto });
                            return Err(e);
                        }
                    };
                    if sdp.webrtc.is_some() {
                        m.webrtc[idx(from)] = true;
                    }
                    m.set_keys(port.as_mut(), key, from, keys);
                    port.set_remote(key, leg(from), remote);
                    if m.negotiated[idx(to)].is_some() {
                        port.bridge(key);
                    }
                    m.negotiated[idx(from)] = Some(sdp.codecs.clone());
                    if kind == SdpKind::EarlyAnswer {
                        m.offer = Some(PendingOffer::Local { to: offered, codecs, crypto });
                    }
                    Ok((None, Bytes::new()))
                }
                pending => {
                    tracing::debug!(key = %key, ?from, "an SDP answer with no offer of ours pending: ignored");
                    m.offer = pending;
                    Ok((None, Bytes::new()))
                }
            },
        }
    }

    /// A leg's answer heard without crossing: the leg (a follow-me number confirming) is
    /// given to the media session as `side` so it can hear a prompt and press a digit, the
    /// legs are not connected, and the offer stays pending so the answer that wins crosses
    /// later ([`B2bua::sdp_across`] with the same body, or another leg's).
    pub(crate) fn sdp_listen(&mut self, key: CallKey, side: Side, content_type: Option<&str>, body: &Bytes) -> Result<(), SdpFault> {
        let Some(call) = self.table.get_mut(key) else { return Ok(()) };
        let Some(m) = call.media.as_mut() else { return Ok(()) };
        let Some(port) = self.media.as_mut() else { return Ok(()) };
        if !is_sdp(content_type, body) {
            return Err(SdpFault::Unreadable);
        }
        let crypto = match &m.offer {
            Some(PendingOffer::Relayed { from, crypto, .. }) if *from == other(side) => crypto.clone(),
            Some(PendingOffer::Local { to, crypto, .. }) if *to == side => crypto.clone(),
            _ => return Err(SdpFault::NoAudio),
        };
        let sdp = sdp_media::read(body)?;
        let remote = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec)?;
        let keys = srtp::accept(m.policy[idx(side)], crypto.as_deref(), &sdp)?;
        port.unbridge(key);
        m.set_keys(port.as_mut(), key, side, keys);
        port.set_remote(key, leg(side), remote);
        Ok(())
    }

    /// FlowPBX answers the caller's offer itself (a flow answers): the first codec it handles,
    /// plus telephone-event. With no offer (a delayed-offer INVITE or re-INVITE), FlowPBX
    /// offers and the caller's ACK answers. Returns the body for the 2xx.
    pub(crate) fn answer_locally(
        &mut self,
        cx: &mut Ctx<'_>,
        key: CallKey,
        side: Side,
        offer: Option<&Bytes>,
        content_type: Option<&str>,
        toward: Peer,
    ) -> Result<Body, SdpFault> {
        let ip = self.media_ip(cx, toward);
        let Some(call) = self.table.get_mut(key) else { return Ok((None, Bytes::new())) };
        let Some(m) = call.media.as_mut() else { return Ok((None, Bytes::new())) };
        let Some(port) = self.media.as_mut() else { return Ok((None, Bytes::new())) };
        // the offer: given, else the caller's INVITE's that is still pending
        let offer = match offer.filter(|b| is_sdp(content_type, b)) {
            Some(b) => {
                let offer = sdp_media::read(b)?;
                let sdes = if offer.webrtc.is_some() { None } else { srtp::answer(m.policy[idx(side)], &offer, m.our_key(side))? };
                m.set_keys(port.as_mut(), key, side, sdes.as_ref().map(|a| a.keys.clone()));
                Some((offer, sdes))
            }
            // its keys went to the session when the offer arrived
            None => match m.offer.take() {
                Some(PendingOffer::Relayed { from, offer, answer, .. }) if from == side => Some((*offer, answer.map(|a| *a))),
                other => {
                    m.offer = other;
                    None
                }
            },
        };
        match offer {
            Some((offer, sdes)) => {
                let codecs = answer_offer(&offer.codecs).map_err(|_| SdpFault::NoCodec)?;
                let remote = offer.remote(&codecs).map_err(|_| SdpFault::NoCodec)?;
                if let Some(text) = offer.webrtc.as_deref() {
                    let answer = port.webrtc_answer(key, leg(side), text, &codecs).map_err(|e| {
                        tracing::warn!(key = %key, error = %e, "the WebRTC offer could not be answered");
                        SdpFault::NoCodec
                    })?;
                    port.set_remote(key, leg(side), remote);
                    m.negotiated[idx(side)] = Some(codecs);
                    m.webrtc[idx(side)] = true;
                    return Ok((Some(APPLICATION_SDP.into()), Bytes::from(answer)));
                }
                port.set_remote(key, leg(side), remote);
                let direction = Direction::answer(offer.direction, Direction::SendRecv);
                let lines: Vec<String> = sdes.iter().map(|a| a.attribute.to_string()).collect();
                let out = sdp_media::write(
                    &mut m.sessions[idx(side)],
                    &Outgoing {
                        ip,
                        port: m.ports[idx(side)],
                        codecs: &codecs,
                        ptime: None,
                        direction,
                        rtcp_mux: offer.rtcp_mux,
                        mirror: Some(&offer),
                        secure: false,
                        crypto: &lines,
                    },
                );
                m.negotiated[idx(side)] = Some(codecs);
                Ok((Some(APPLICATION_SDP.into()), out))
            }
            None => {
                let codecs = m.negotiated[idx(side)].as_deref().map(offer_to_callee).unwrap_or_else(default_offer);
                let crypto = srtp::offer(m.policy[idx(side)], m.our_key(side));
                let out = m.write_offer(side, ip, &codecs, None, Direction::SendRecv, crypto.as_deref());
                m.offer = Some(PendingOffer::Local { to: side, codecs, crypto });
                Ok((Some(APPLICATION_SDP.into()), out))
            }
        }
    }

    /// FlowPBX's offer to a transfer target that takes `side`'s place: from `side`'s media
    /// port, the codecs the party that stays negotiated first (so no transcoding is needed
    /// when the target has them), then every codec FlowPBX handles. Pending as a local offer
    /// to `side`, which the target's answer completes.
    pub(crate) fn transfer_offer(&mut self, cx: &mut Ctx<'_>, key: CallKey, side: Side, dest: Peer, policy: SrtpPolicy) -> Body {
        let ip = self.media_ip(cx, dest);
        let Some(call) = self.table.get_mut(key) else { return (None, Bytes::new()) };
        let Some(m) = call.media.as_mut() else { return (None, Bytes::new()) };
        let base = m.negotiated[idx(other(side))].clone().unwrap_or_else(default_offer);
        let codecs = offer_to_callee(&base);
        // a new party: fresh keys, whatever the one it replaces had
        m.set_policy(side, policy);
        let crypto = srtp::offer(policy, None);
        let out = m.write_offer(side, ip, &codecs, None, Direction::SendRecv, crypto.as_deref());
        m.offer = Some(PendingOffer::Local { to: side, codecs, crypto });
        (Some(APPLICATION_SDP.into()), out)
    }

    /// Whether an ACK or answer from `side` answers an offer FlowPBX made itself.
    /// Whether an offer for `side` would be answered by [`B2bua::answer_locally`], checked
    /// without touching the media session (a replacing dialog's offer is checked before the
    /// dialog it replaces loses its keys). An offer-less body is fine: FlowPBX offers.
    pub(crate) fn check_offer(&self, key: CallKey, side: Side, content_type: Option<&str>, body: &Bytes) -> Result<(), SdpFault> {
        if !is_sdp(content_type, body) {
            return Ok(());
        }
        let Some(m) = self.table.get(key).and_then(|c| c.media.as_ref()) else { return Ok(()) };
        let offer = sdp_media::read(body)?;
        srtp::answer(m.policy[idx(side)], &offer, m.our_key(side))?;
        let codecs = answer_offer(&offer.codecs).map_err(|_| SdpFault::NoCodec)?;
        offer.remote(&codecs).map_err(|_| SdpFault::NoCodec)?;
        Ok(())
    }

    pub(crate) fn local_offer_to(&self, key: CallKey, side: Side) -> bool {
        self.table.get(key).and_then(|c| c.media.as_ref()).is_some_and(|m| matches!(m.offer, Some(PendingOffer::Local { to, .. }) if to == side))
    }
}
