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

use std::net::IpAddr;

use bytes::Bytes;
use media::{answer_offer, answer_to_caller, offer_to_callee, CodecKind, CodecSpec, LegId};
use sip::sdp::Direction;
use sip::transaction::Peer;

use super::{B2bua, Ctx, Side};
use crate::events::CallKey;
use crate::sdp_media::{self, is_sdp, LegSdp, LocalSession, Outgoing, SdpFault, APPLICATION_SDP};

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
    /// A side offered; FlowPBX offered the other side `relayed`.
    Relayed { from: Side, offer: LegSdp, relayed: Vec<CodecSpec> },
    /// FlowPBX offered `to` these codecs itself (a flow answered or rings).
    Local { to: Side, codecs: Vec<CodecSpec> },
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
}

impl SdpState {
    /// Whether a side negotiated telephone-event (None: nothing negotiated yet).
    pub(crate) fn telephone_event(&self, side: Side) -> Option<bool> {
        self.negotiated[idx(side)].as_ref().map(|c| c.iter().any(|c| c.kind == CodecKind::TelephoneEvent))
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
    vec![CodecSpec::pcmu(), CodecSpec::pcma(), CodecSpec::opus(media::negotiate::PREFERRED_OPUS_PT), CodecSpec::telephone_event(media::negotiate::PREFERRED_DTMF_PT, 8000)]
}

/// The status a caller gets for SDP FlowPBX cannot anchor.
pub(crate) fn fault_status(f: SdpFault) -> (u16, &'static str) {
    match f {
        SdpFault::Unreadable => (400, "Bad SDP"),
        SdpFault::NoAudio | SdpFault::NoCodec => (488, "Not Acceptable Here"),
    }
}

type Body = (Option<String>, Bytes);

fn passthrough(content_type: Option<&str>, body: &Bytes) -> Body {
    (content_type.map(str::to_owned), body.clone())
}

impl B2bua {
    /// Opens the media of a new call and reads the caller's offer, if its INVITE has one.
    /// `Err` is the status to refuse the call with.
    pub(crate) fn open_media(&mut self, cx: &mut Ctx<'_>, key: CallKey, call_id: &str, content_type: Option<&str>, body: &Bytes) -> Result<Option<SdpState>, (u16, &'static str)> {
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
        let mut m = SdpState { ports, sessions, offer: None, negotiated: [None, None] };
        if let Some(offer) = offer {
            match offer.remote(&offer.codecs) {
                Ok(remote) => port.set_remote(key, LegId::A, remote),
                Err(_) => {
                    port.close(key);
                    return Err((488, "Not Acceptable Here"));
                }
            }
            let relayed = offer_to_callee(&offer.codecs);
            m.offer = Some(PendingOffer::Relayed { from: Side::A, offer, relayed });
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
    pub(crate) fn offer_for_callee(&mut self, cx: &mut Ctx<'_>, key: CallKey, dest: Peer, content_type: Option<&str>, body: &Bytes) -> Body {
        let ip = self.media_ip(cx, dest);
        let Some(call) = self.table.get_mut(key) else { return passthrough(content_type, body) };
        let local_answer = call.answered_locally();
        let Some(m) = call.media.as_mut() else { return passthrough(content_type, body) };
        let (codecs, ptime, direction) = match &m.offer {
            Some(PendingOffer::Relayed { from: Side::A, offer, relayed }) => (relayed.clone(), offer.ptime, offer.direction),
            _ if local_answer => {
                let base = m.negotiated[0].clone().unwrap_or_else(default_offer);
                let codecs = offer_to_callee(&base);
                m.offer = Some(PendingOffer::Local { to: Side::B, codecs: codecs.clone() });
                (codecs, None, Direction::SendRecv)
            }
            _ => return (None, Bytes::new()),
        };
        let out = sdp_media::write(&mut m.sessions[1], &Outgoing { ip, port: m.ports[1], codecs: &codecs, ptime, direction, rtcp_mux: false, mirror: None });
        (Some(APPLICATION_SDP.into()), out)
    }

    /// The one place an offer or answer crosses from one side to the other: read for its leg,
    /// given to the media session, and rewritten toward `toward` (the other side) from
    /// FlowPBX's address. Bodies that are not SDP, and every body on a PBX without media,
    /// pass unchanged. An empty result means nothing crosses (an answer to FlowPBX's own
    /// offer).
    pub(crate) fn sdp_across(&mut self, cx: &mut Ctx<'_>, key: CallKey, from: Side, kind: SdpKind, content_type: Option<&str>, body: &Bytes, toward: Peer) -> Result<Body, SdpFault> {
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
                let remote = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec)?;
                port.set_remote(key, leg(from), remote);
                let relayed = offer_to_callee(&sdp.codecs);
                let out = sdp_media::write(
                    &mut m.sessions[idx(to)],
                    &Outgoing { ip, port: m.ports[idx(to)], codecs: &relayed, ptime: sdp.ptime, direction: sdp.direction, rtcp_mux: false, mirror: None },
                );
                m.offer = Some(PendingOffer::Relayed { from, offer: sdp, relayed });
                Ok((Some(APPLICATION_SDP.into()), out))
            }
            SdpKind::Answer | SdpKind::EarlyAnswer => match m.offer.take() {
                Some(PendingOffer::Relayed { from: offerer, offer, relayed }) if offerer == to => {
                    let answer = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec);
                    let back = answer_to_caller(&offer.codecs, &sdp.codecs).map_err(|_| SdpFault::NoCodec);
                    let (answer, back) = match (answer, back) {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(e), _) | (_, Err(e)) => {
                            m.offer = Some(PendingOffer::Relayed { from: offerer, offer, relayed });
                            return Err(e);
                        }
                    };
                    let back_remote = offer.remote(&back).map_err(|_| SdpFault::NoCodec)?;
                    port.set_remote(key, leg(from), answer);
                    port.set_remote(key, leg(to), back_remote);
                    port.bridge(key);
                    let out = sdp_media::write(
                        &mut m.sessions[idx(to)],
                        &Outgoing { ip, port: m.ports[idx(to)], codecs: &back, ptime: None, direction: sdp.direction, rtcp_mux: offer.rtcp_mux, mirror: Some(&offer) },
                    );
                    m.negotiated[idx(from)] = Some(sdp.codecs.clone());
                    m.negotiated[idx(to)] = Some(back);
                    if kind == SdpKind::EarlyAnswer {
                        m.offer = Some(PendingOffer::Relayed { from: offerer, offer, relayed });
                    }
                    Ok((Some(APPLICATION_SDP.into()), out))
                }
                Some(PendingOffer::Local { to: offered, codecs }) if offered == from => {
                    let remote = match sdp.remote(&sdp.codecs) {
                        Ok(r) => r,
                        Err(_) => {
                            m.offer = Some(PendingOffer::Local { to: offered, codecs });
                            return Err(SdpFault::NoCodec);
                        }
                    };
                    port.set_remote(key, leg(from), remote);
                    if m.negotiated[idx(to)].is_some() {
                        port.bridge(key);
                    }
                    m.negotiated[idx(from)] = Some(sdp.codecs.clone());
                    if kind == SdpKind::EarlyAnswer {
                        m.offer = Some(PendingOffer::Local { to: offered, codecs });
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
        let pending = match &m.offer {
            Some(PendingOffer::Relayed { from, .. }) => *from == other(side),
            Some(PendingOffer::Local { to, .. }) => *to == side,
            None => false,
        };
        if !pending {
            return Err(SdpFault::NoAudio);
        }
        let sdp = sdp_media::read(body)?;
        let remote = sdp.remote(&sdp.codecs).map_err(|_| SdpFault::NoCodec)?;
        port.unbridge(key);
        port.set_remote(key, leg(side), remote);
        Ok(())
    }

    /// FlowPBX answers the caller's offer itself (a flow answers): the first codec it handles,
    /// plus telephone-event. With no offer (a delayed-offer INVITE or re-INVITE), FlowPBX
    /// offers and the caller's ACK answers. Returns the body for the 2xx.
    pub(crate) fn answer_locally(&mut self, cx: &mut Ctx<'_>, key: CallKey, side: Side, offer: Option<&Bytes>, content_type: Option<&str>, toward: Peer) -> Result<Body, SdpFault> {
        let ip = self.media_ip(cx, toward);
        let Some(call) = self.table.get_mut(key) else { return Ok((None, Bytes::new())) };
        let Some(m) = call.media.as_mut() else { return Ok((None, Bytes::new())) };
        let Some(port) = self.media.as_mut() else { return Ok((None, Bytes::new())) };
        // the offer: given, else the caller's INVITE's that is still pending
        let offer = match offer.filter(|b| is_sdp(content_type, b)) {
            Some(b) => Some(sdp_media::read(b)?),
            None => match m.offer.take() {
                Some(PendingOffer::Relayed { from, offer, .. }) if from == side => Some(offer),
                other => {
                    m.offer = other;
                    None
                }
            },
        };
        match offer {
            Some(offer) => {
                let codecs = answer_offer(&offer.codecs).map_err(|_| SdpFault::NoCodec)?;
                let remote = offer.remote(&codecs).map_err(|_| SdpFault::NoCodec)?;
                port.set_remote(key, leg(side), remote);
                let direction = Direction::answer(offer.direction, Direction::SendRecv);
                let out = sdp_media::write(
                    &mut m.sessions[idx(side)],
                    &Outgoing { ip, port: m.ports[idx(side)], codecs: &codecs, ptime: None, direction, rtcp_mux: offer.rtcp_mux, mirror: Some(&offer) },
                );
                m.negotiated[idx(side)] = Some(codecs);
                Ok((Some(APPLICATION_SDP.into()), out))
            }
            None => {
                let codecs = m.negotiated[idx(side)].as_deref().map(offer_to_callee).unwrap_or_else(default_offer);
                let out = sdp_media::write(
                    &mut m.sessions[idx(side)],
                    &Outgoing { ip, port: m.ports[idx(side)], codecs: &codecs, ptime: None, direction: Direction::SendRecv, rtcp_mux: false, mirror: None },
                );
                m.offer = Some(PendingOffer::Local { to: side, codecs });
                Ok((Some(APPLICATION_SDP.into()), out))
            }
        }
    }

    /// FlowPBX's offer to a transfer target that takes `side`'s place: from `side`'s media
    /// port, the codecs the party that stays negotiated first (so no transcoding is needed
    /// when the target has them), then every codec FlowPBX handles. Pending as a local offer
    /// to `side`, which the target's answer completes.
    pub(crate) fn transfer_offer(&mut self, cx: &mut Ctx<'_>, key: CallKey, side: Side, dest: Peer) -> Body {
        let ip = self.media_ip(cx, dest);
        let Some(call) = self.table.get_mut(key) else { return (None, Bytes::new()) };
        let Some(m) = call.media.as_mut() else { return (None, Bytes::new()) };
        let base = m.negotiated[idx(other(side))].clone().unwrap_or_else(default_offer);
        let codecs = offer_to_callee(&base);
        let out = sdp_media::write(
            &mut m.sessions[idx(side)],
            &Outgoing { ip, port: m.ports[idx(side)], codecs: &codecs, ptime: None, direction: Direction::SendRecv, rtcp_mux: false, mirror: None },
        );
        m.offer = Some(PendingOffer::Local { to: side, codecs });
        (Some(APPLICATION_SDP.into()), out)
    }

    /// Whether an ACK or answer from `side` answers an offer FlowPBX made itself.
    pub(crate) fn local_offer_to(&self, key: CallKey, side: Side) -> bool {
        self.table.get(key).and_then(|c| c.media.as_ref()).is_some_and(|m| matches!(m.offer, Some(PendingOffer::Local { to, .. }) if to == side))
    }
}
