//! Offer/answer helpers for a B2BUA: which codecs to offer the second leg, what to answer
//! the first, and whether audio between the legs passes through or is transcoded.
//!
//! The B2BUA parses SDP (the `sip` crate) into [`CodecSpec`] lists with
//! [`CodecSpec::from_sdp`], calls these, and writes SDP back from the lists. The session needs
//! only each leg's [`LegCodecs`]; it decides passthrough per packet by comparing codecs, so a
//! mid-call codec change needs nothing but a new `set_remote`.

use crate::codec::{CodecKind, CodecSpec};
use crate::error::{MediaError, Result};

/// Default packetisation time.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// The payload type FlowPBX offers Opus on when it is free in the other leg's offer.
pub const PREFERRED_OPUS_PT: u8 = 111;
/// The payload type FlowPBX offers telephone-event on when it is free.
pub const PREFERRED_DTMF_PT: u8 = 101;

/// The codecs negotiated on one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCodecs {
    /// Audio codecs this leg may send and receive, in preference order.
    /// Invariant: non-empty; `audio[0]` is what FlowPBX sends this leg when it must encode.
    pub audio: Vec<CodecSpec>,
    /// telephone-event, when negotiated, with this leg's payload type.
    pub telephone_event: Option<CodecSpec>,
    /// Packetisation time FlowPBX uses when it generates audio toward this leg (a=ptime).
    pub ptime_ms: u32,
}

impl LegCodecs {
    /// Builds a leg's codecs from a negotiated list (an answer, or the offer FlowPBX answered
    /// with [`answer_offer`]), keeping the codecs this crate handles. `ptime` is the leg's
    /// `a=ptime` if any; it is clamped to 10–60 ms in steps of 10 (Opus and G.711 both allow it).
    pub fn new(codecs: &[CodecSpec], ptime: Option<u32>) -> Result<Self> {
        let audio: Vec<CodecSpec> = codecs.iter().filter(|c| c.is_audio()).cloned().collect();
        if audio.is_empty() {
            return Err(MediaError::NoCommonCodec);
        }
        let telephone_event = pick_telephone_event(codecs, &audio[0]);
        let ptime_ms = ptime.map(|p| (p.clamp(10, 60) / 10) * 10).unwrap_or(DEFAULT_PTIME_MS);
        Ok(LegCodecs { audio, telephone_event, ptime_ms })
    }

    /// The frame length FlowPBX encodes toward this leg: the ptime, except that Opus only
    /// has 10, 20, 40 and 60 ms frames (30 ms becomes 20, 50 becomes 40).
    pub fn frame_ms(&self) -> u32 {
        match self.send_codec().kind {
            CodecKind::Opus => match self.ptime_ms {
                0..=19 => 10,
                20..=39 => 20,
                40..=59 => 40,
                _ => 60,
            },
            _ => self.ptime_ms,
        }
    }

    /// The codec FlowPBX sends when it encodes toward this leg.
    pub fn send_codec(&self) -> &CodecSpec {
        &self.audio[0]
    }

    /// The audio codec this leg numbers `pt`, if any.
    pub fn audio_by_pt(&self, pt: u8) -> Option<&CodecSpec> {
        self.audio.iter().find(|c| c.pt == pt)
    }

    /// This leg's payload type for `codec`, if it negotiated that codec.
    pub fn pt_for(&self, codec: &CodecSpec) -> Option<u8> {
        self.audio.iter().find(|c| c.same_codec(codec)).map(|c| c.pt)
    }
}

/// telephone-event at the audio codec's clock rate if present, else at 8000.
fn pick_telephone_event(codecs: &[CodecSpec], audio: &CodecSpec) -> Option<CodecSpec> {
    let te = || codecs.iter().filter(|c| c.kind == CodecKind::TelephoneEvent);
    te().find(|c| c.clock_rate == audio.clock_rate).or_else(|| te().find(|c| c.clock_rate == 8000)).cloned()
}

fn free_pt(used: &[CodecSpec], preferred: u8) -> u8 {
    if !used.iter().any(|c| c.pt == preferred) {
        return preferred;
    }
    (96..=127).find(|pt| !used.iter().any(|c| c.pt == *pt)).unwrap_or(preferred)
}

/// The offer to send the second leg (the callee) given the first leg's offer: the first leg's
/// codecs that FlowPBX handles, in its order and with its payload types (so the callee can pick
/// one and the audio passes through), then every other codec FlowPBX can transcode to, then
/// telephone-event. Unknown codecs are left out: FlowPBX anchors media and cannot relay a codec
/// it does not know when the other side does not share it.
pub fn offer_to_callee(caller_offer: &[CodecSpec]) -> Vec<CodecSpec> {
    let mut out: Vec<CodecSpec> = caller_offer.iter().filter(|c| c.is_audio()).cloned().collect();
    for candidate in [CodecSpec::pcmu(), CodecSpec::pcma(), CodecSpec::opus(PREFERRED_OPUS_PT)] {
        if !out.iter().any(|c| c.same_codec(&candidate)) {
            let pt = if candidate.pt >= 96 { free_pt(&out, candidate.pt) } else { candidate.pt };
            out.push(CodecSpec { pt, ..candidate });
        }
    }
    let te = caller_offer
        .iter()
        .find(|c| c.kind == CodecKind::TelephoneEvent && c.clock_rate == 8000)
        .cloned()
        .unwrap_or_else(|| CodecSpec::telephone_event(free_pt(&out, PREFERRED_DTMF_PT), 8000));
    out.push(te);
    out
}

/// FlowPBX answering an offer itself (an IVR leg, or the answer side of a B2BUA): the first
/// audio codec of the offer that FlowPBX handles, plus the offer's telephone-event. The answer
/// keeps the offerer's payload types, as RFC 3264 §6.1 asks.
pub fn answer_offer(offer: &[CodecSpec]) -> Result<Vec<CodecSpec>> {
    let audio = offer.iter().find(|c| c.is_audio()).ok_or(MediaError::NoCommonCodec)?;
    let mut out = vec![audio.clone()];
    if let Some(te) = pick_telephone_event(offer, audio) {
        out.push(te);
    }
    Ok(out)
}

/// The answer for the caller once the callee answered: the callee's chosen codec when the caller
/// offered it too (passthrough, with the caller's payload type), else the caller's first codec
/// FlowPBX handles (FlowPBX transcodes); plus the caller's telephone-event.
pub fn answer_to_caller(caller_offer: &[CodecSpec], callee_answer: &[CodecSpec]) -> Result<Vec<CodecSpec>> {
    let chosen = callee_answer.iter().find(|c| c.is_audio()).ok_or(MediaError::NoCommonCodec)?;
    let audio = caller_offer.iter().find(|c| c.same_codec(chosen)).or_else(|| caller_offer.iter().find(|c| c.is_audio())).ok_or(MediaError::NoCommonCodec)?;
    let mut out = vec![audio.clone()];
    if let Some(te) = pick_telephone_event(caller_offer, audio) {
        out.push(te);
    }
    Ok(out)
}

/// How audio travels in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPath {
    /// Same codec on both legs: packets are forwarded, only the header is rewritten.
    Passthrough,
    /// Different codecs: decode → PCM → resample → encode.
    Transcode {
        /// Codec arriving.
        from: CodecKind,
        /// Codec leaving.
        to: CodecKind,
    },
}

/// How DTMF travels in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfPath {
    /// Both legs negotiated telephone-event at the same clock: events are forwarded with the
    /// payload type remapped.
    Passthrough,
    /// Only the receiving leg has telephone-event (or clocks differ): FlowPBX generates
    /// RFC 4733 toward it from the digits it detects.
    Generate,
    /// The receiving leg has no telephone-event: the B2BUA must send SIP INFO for each
    /// [`crate::MediaEvent::Dtmf`] it sees from the other leg.
    SipInfo,
}

/// The media plan for a bridged pair, as the session will carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// A → B audio.
    pub a_to_b: AudioPath,
    /// B → A audio.
    pub b_to_a: AudioPath,
    /// A → B DTMF.
    pub dtmf_a_to_b: DtmfPath,
    /// B → A DTMF.
    pub dtmf_b_to_a: DtmfPath,
}

fn audio_path(from: &LegCodecs, to: &LegCodecs) -> AudioPath {
    let incoming = from.send_codec();
    let outgoing = to.send_codec();
    if incoming.same_codec(outgoing) {
        AudioPath::Passthrough
    } else {
        AudioPath::Transcode { from: incoming.kind, to: outgoing.kind }
    }
}

/// The DTMF path from `from` to `to`.
pub fn dtmf_path(from: &LegCodecs, to: &LegCodecs) -> DtmfPath {
    match (&from.telephone_event, &to.telephone_event) {
        (_, None) => DtmfPath::SipInfo,
        (Some(f), Some(t)) if f.clock_rate == t.clock_rate && audio_path(from, to) == AudioPath::Passthrough => DtmfPath::Passthrough,
        (_, Some(_)) => DtmfPath::Generate,
    }
}

/// What the session does between two legs with these codecs (for logs, the CDR and tests).
pub fn plan(a: &LegCodecs, b: &LegCodecs) -> MediaPlan {
    MediaPlan { a_to_b: audio_path(a, b), b_to_a: audio_path(b, a), dtmf_a_to_b: dtmf_path(a, b), dtmf_b_to_a: dtmf_path(b, a) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(pt: u8) -> CodecSpec {
        CodecSpec::telephone_event(pt, 8000)
    }

    #[test]
    fn common_codec_passes_through_with_pt_mapping() {
        let caller = vec![CodecSpec::opus(96), CodecSpec::pcmu(), te(100)];
        let offer = offer_to_callee(&caller);
        assert_eq!(offer[0], CodecSpec::opus(96));
        assert_eq!(offer[1], CodecSpec::pcmu());
        assert_eq!(offer[2], CodecSpec::pcma());
        assert_eq!(offer.last().unwrap(), &te(100));
        // the callee picks PCMU
        let callee_answer = vec![CodecSpec::pcmu(), te(100)];
        let to_caller = answer_to_caller(&caller, &callee_answer).unwrap();
        assert_eq!(to_caller, vec![CodecSpec::pcmu(), te(100)]);
        let a = LegCodecs::new(&to_caller, None).unwrap();
        let b = LegCodecs::new(&callee_answer, Some(30)).unwrap();
        assert_eq!(b.ptime_ms, 30);
        let p = plan(&a, &b);
        assert_eq!(p.a_to_b, AudioPath::Passthrough);
        assert_eq!(p.dtmf_a_to_b, DtmfPath::Passthrough);
    }

    #[test]
    fn no_common_codec_transcodes() {
        // the caller offers only Opus on 111, the callee only speaks PCMA
        let caller = vec![CodecSpec::opus(111), te(101)];
        let offer = offer_to_callee(&caller);
        assert!(offer.iter().any(|c| c.kind == CodecKind::Pcma));
        let callee_answer = vec![CodecSpec::pcma()];
        let to_caller = answer_to_caller(&caller, &callee_answer).unwrap();
        assert_eq!(to_caller[0], CodecSpec::opus(111));
        let a = LegCodecs::new(&to_caller, None).unwrap();
        let b = LegCodecs::new(&callee_answer, None).unwrap();
        let p = plan(&a, &b);
        assert_eq!(p.a_to_b, AudioPath::Transcode { from: CodecKind::Opus, to: CodecKind::Pcma });
        assert_eq!(p.b_to_a, AudioPath::Transcode { from: CodecKind::Pcma, to: CodecKind::Opus });
        assert_eq!(p.dtmf_a_to_b, DtmfPath::SipInfo);
        assert_eq!(p.dtmf_b_to_a, DtmfPath::Generate);
    }

    #[test]
    fn offer_avoids_payload_type_clashes() {
        // the caller uses 111 and 101 for something FlowPBX does not know about
        let caller = vec![CodecSpec::pcmu(), CodecSpec { pt: 101, ..CodecSpec::opus(101) }];
        let offer = offer_to_callee(&caller);
        let pts: Vec<u8> = offer.iter().map(|c| c.pt).collect();
        let mut dedup = pts.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(pts.len(), dedup.len(), "{pts:?}");
        assert!(offer.iter().any(|c| c.kind == CodecKind::TelephoneEvent && c.pt != 101));
    }

    #[test]
    fn answering_an_offer_and_errors() {
        let offer = vec![CodecSpec::pcma(), CodecSpec::pcmu(), te(97)];
        assert_eq!(answer_offer(&offer).unwrap(), vec![CodecSpec::pcma(), te(97)]);
        assert!(answer_offer(&[te(101)]).is_err());
        assert!(LegCodecs::new(&[te(101)], None).is_err());
        assert!(answer_to_caller(&[CodecSpec::pcmu()], &[]).is_err());
        assert_eq!(LegCodecs::new(&[CodecSpec::pcmu()], Some(25)).unwrap().ptime_ms, 20);
        assert_eq!(LegCodecs::new(&[CodecSpec::pcmu()], Some(500)).unwrap().ptime_ms, 60);
        assert_eq!(LegCodecs::new(&[CodecSpec::pcmu()], Some(30)).unwrap().frame_ms(), 30);
        assert_eq!(LegCodecs::new(&[CodecSpec::opus(111)], Some(30)).unwrap().frame_ms(), 20);
        assert_eq!(LegCodecs::new(&[CodecSpec::opus(111)], Some(50)).unwrap().frame_ms(), 40);
        assert_eq!(LegCodecs::new(&[CodecSpec::opus(111)], None).unwrap().frame_ms(), 20);
    }
}
