//! Codec descriptions (what SDP names) and the audio encoders/decoders behind them:
//! PCMU and PCMA (our G.711), Opus (libopus through the `opus` crate, RFC 7587) and
//! telephone-event (RFC 4733, handled by [`crate::dtmf`]).

use crate::error::{MediaError, Result};
use crate::g711;

/// The codecs FlowPBX speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus, dynamic payload type (FlowPBX offers 111), RTP clock 48 000, "opus/48000/2".
    Opus,
    /// RFC 4733 DTMF events, dynamic payload type.
    TelephoneEvent,
}

/// One codec as negotiated in SDP: payload type, kind, clock rate, channels and fmtp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecSpec {
    /// Payload type on this leg (legs may number the same codec differently).
    pub pt: u8,
    /// Which codec.
    pub kind: CodecKind,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels as written in the rtpmap (Opus always says 2).
    pub channels: u8,
    /// The a=fmtp parameters, verbatim.
    pub fmtp: Option<String>,
}

impl CodecSpec {
    /// PCMU/8000 on payload type 0.
    pub fn pcmu() -> Self {
        CodecSpec { pt: 0, kind: CodecKind::Pcmu, clock_rate: 8000, channels: 1, fmtp: None }
    }
    /// PCMA/8000 on payload type 8.
    pub fn pcma() -> Self {
        CodecSpec { pt: 8, kind: CodecKind::Pcma, clock_rate: 8000, channels: 1, fmtp: None }
    }
    /// opus/48000/2 on the given dynamic payload type.
    pub fn opus(pt: u8) -> Self {
        CodecSpec { pt, kind: CodecKind::Opus, clock_rate: 48000, channels: 2, fmtp: Some("minptime=10;useinbandfec=1".into()) }
    }
    /// telephone-event at the given clock rate on the given payload type, events 0–16.
    pub fn telephone_event(pt: u8, clock_rate: u32) -> Self {
        CodecSpec { pt, kind: CodecKind::TelephoneEvent, clock_rate, channels: 1, fmtp: Some("0-16".into()) }
    }

    /// Reads a codec from SDP: its payload type, the `a=rtpmap` value after the payload type
    /// (`"opus/48000/2"`), and the `a=fmtp` value. Static types 0 and 8 need no rtpmap. Returns
    /// `None` for codecs this crate does not handle (the caller leaves them out of its answer).
    pub fn from_sdp(pt: u8, rtpmap: Option<&str>, fmtp: Option<&str>) -> Option<Self> {
        if pt > 127 {
            return None;
        }
        let fmtp = fmtp.map(|f| f.trim().to_string()).filter(|f| !f.is_empty());
        let Some(map) = rtpmap else {
            return match pt {
                0 => Some(Self::pcmu()),
                8 => Some(Self::pcma()),
                _ => None,
            };
        };
        let mut parts = map.trim().split('/');
        let name = parts.next()?.trim();
        let rate: u32 = parts.next()?.trim().parse().ok()?;
        let channels: u8 = match parts.next() {
            Some(c) => c.trim().parse().ok()?,
            None => 1,
        };
        let kind = if name.eq_ignore_ascii_case("PCMU") && rate == 8000 {
            CodecKind::Pcmu
        } else if name.eq_ignore_ascii_case("PCMA") && rate == 8000 {
            CodecKind::Pcma
        } else if name.eq_ignore_ascii_case("opus") && rate == 48000 {
            CodecKind::Opus
        } else if name.eq_ignore_ascii_case("telephone-event") && rate >= 8000 {
            CodecKind::TelephoneEvent
        } else {
            return None;
        };
        Some(CodecSpec { pt, kind, clock_rate: rate, channels: channels.max(1), fmtp })
    }

    /// The SDP encoding name.
    pub fn encoding_name(&self) -> &'static str {
        match self.kind {
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
            CodecKind::Opus => "opus",
            CodecKind::TelephoneEvent => "telephone-event",
        }
    }

    /// The `a=rtpmap` value after the payload type, e.g. `opus/48000/2`.
    pub fn rtpmap(&self) -> String {
        if self.kind == CodecKind::Opus || self.channels > 1 {
            format!("{}/{}/{}", self.encoding_name(), self.clock_rate, self.channels)
        } else {
            format!("{}/{}", self.encoding_name(), self.clock_rate)
        }
    }

    /// Same codec (kind and clock rate), whatever the payload type.
    pub fn same_codec(&self, other: &CodecSpec) -> bool {
        self.kind == other.kind && self.clock_rate == other.clock_rate
    }

    /// An audio codec (not telephone-event).
    pub fn is_audio(&self) -> bool {
        self.kind != CodecKind::TelephoneEvent
    }

    /// RTP timestamp units in `ms` milliseconds.
    pub fn units_per_ms(&self, ms: u32) -> u32 {
        self.clock_rate / 1000 * ms
    }
}

/// How Opus is run when FlowPBX encodes or decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusSettings {
    /// Rate of the linear PCM exchanged with libopus: 8000 (the default, narrowband: what a
    /// G.711 leg carries, and no resampling needed), 16000, 24000 or 48000. The RTP clock is
    /// 48 000 whatever this is (RFC 7587).
    pub pcm_rate: u32,
    /// Encoder bit rate in bit/s.
    pub bitrate: i32,
    /// Encoder complexity 0–10. The default, 3, is chosen for transcoding density: with
    /// narrowband input (all a G.711 leg carries) it costs about 2/3 of complexity 5 for no
    /// audible loss (see tests/bench/media_transcode.rs for the figures).
    pub complexity: i32,
}

impl Default for OpusSettings {
    fn default() -> Self {
        OpusSettings { pcm_rate: 8000, bitrate: 24000, complexity: 3 }
    }
}

fn opus_err(e: opus::Error) -> MediaError {
    MediaError::Codec(e.to_string())
}

enum EncInner {
    Ulaw,
    Alaw,
    Opus(Box<opus::Encoder>),
}

/// Encodes linear PCM (mono, at [`AudioEncoder::pcm_rate`]) to one codec's payloads.
pub struct AudioEncoder {
    inner: EncInner,
    pcm_rate: u32,
    clock_rate: u32,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder").field("pcm_rate", &self.pcm_rate).field("clock_rate", &self.clock_rate).finish()
    }
}

impl AudioEncoder {
    /// An encoder for `spec` (an audio codec).
    pub fn new(spec: &CodecSpec, opus_settings: &OpusSettings) -> Result<Self> {
        let (inner, pcm_rate) = match spec.kind {
            CodecKind::Pcmu => (EncInner::Ulaw, 8000),
            CodecKind::Pcma => (EncInner::Alaw, 8000),
            CodecKind::Opus => {
                let rate = opus_settings.pcm_rate;
                let mut e = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip).map_err(opus_err)?;
                e.set_bitrate(opus::Bitrate::Bits(opus_settings.bitrate)).map_err(opus_err)?;
                e.set_complexity(opus_settings.complexity).map_err(opus_err)?;
                (EncInner::Opus(Box::new(e)), rate)
            }
            CodecKind::TelephoneEvent => return Err(MediaError::UnsupportedCodec("telephone-event is not audio".into())),
        };
        Ok(AudioEncoder { inner, pcm_rate, clock_rate: spec.clock_rate })
    }

    /// Sample rate of the PCM this encoder takes.
    pub fn pcm_rate(&self) -> u32 {
        self.pcm_rate
    }

    /// RTP timestamp units covered by `samples` PCM samples.
    pub fn rtp_units(&self, samples: usize) -> u32 {
        (samples as u64 * u64::from(self.clock_rate) / u64::from(self.pcm_rate)) as u32
    }

    /// Encodes one frame (10, 20, 40 or 60 ms for Opus) into `out`; returns the payload length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize> {
        match &mut self.inner {
            EncInner::Ulaw => {
                let n = pcm.len().min(out.len());
                g711::encode_ulaw(&pcm[..n], &mut out[..n]);
                Ok(n)
            }
            EncInner::Alaw => {
                let n = pcm.len().min(out.len());
                g711::encode_alaw(&pcm[..n], &mut out[..n]);
                Ok(n)
            }
            EncInner::Opus(e) => e.encode(pcm, out).map_err(opus_err),
        }
    }
}

enum DecInner {
    Ulaw,
    Alaw,
    Opus(Box<opus::Decoder>),
}

/// Decodes one codec's payloads to linear PCM (mono, at [`AudioDecoder::pcm_rate`]).
pub struct AudioDecoder {
    inner: DecInner,
    pcm_rate: u32,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioDecoder").field("pcm_rate", &self.pcm_rate).finish()
    }
}

impl AudioDecoder {
    /// A decoder for `spec` (an audio codec).
    pub fn new(spec: &CodecSpec, opus_settings: &OpusSettings) -> Result<Self> {
        let (inner, pcm_rate) = match spec.kind {
            CodecKind::Pcmu => (DecInner::Ulaw, 8000),
            CodecKind::Pcma => (DecInner::Alaw, 8000),
            CodecKind::Opus => {
                let rate = opus_settings.pcm_rate;
                (DecInner::Opus(Box::new(opus::Decoder::new(rate, opus::Channels::Mono).map_err(opus_err)?)), rate)
            }
            CodecKind::TelephoneEvent => return Err(MediaError::UnsupportedCodec("telephone-event is not audio".into())),
        };
        Ok(AudioDecoder { inner, pcm_rate, scratch: Vec::new() })
    }

    /// Sample rate of the PCM this decoder produces.
    pub fn pcm_rate(&self) -> u32 {
        self.pcm_rate
    }

    /// Decodes one payload, appending the samples to `out`; returns how many were appended.
    /// An empty payload asks for packet-loss concealment of `conceal` samples.
    pub fn decode(&mut self, payload: &[u8], conceal: usize, out: &mut Vec<i16>) -> Result<usize> {
        match &mut self.inner {
            DecInner::Ulaw | DecInner::Alaw if payload.is_empty() => {
                out.extend(std::iter::repeat_n(0, conceal));
                Ok(conceal)
            }
            DecInner::Ulaw => {
                out.extend(payload.iter().map(|&c| g711::ulaw_to_linear(c)));
                Ok(payload.len())
            }
            DecInner::Alaw => {
                out.extend(payload.iter().map(|&c| g711::alaw_to_linear(c)));
                Ok(payload.len())
            }
            DecInner::Opus(d) => {
                // 120 ms is the longest Opus packet
                let max = self.pcm_rate as usize * 120 / 1000;
                self.scratch.resize(max, 0);
                let want = if payload.is_empty() { conceal.min(max) } else { max };
                let n = d.decode(payload, &mut self.scratch[..want], false).map_err(opus_err)?;
                out.extend_from_slice(&self.scratch[..n.min(want)]);
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_parsing() {
        assert_eq!(CodecSpec::from_sdp(0, None, None), Some(CodecSpec::pcmu()));
        assert_eq!(CodecSpec::from_sdp(8, Some("PCMA/8000"), None), Some(CodecSpec::pcma()));
        let o = CodecSpec::from_sdp(96, Some("OPUS/48000/2"), Some("useinbandfec=1")).unwrap();
        assert_eq!((o.pt, o.kind, o.clock_rate, o.channels), (96, CodecKind::Opus, 48000, 2));
        assert_eq!(o.rtpmap(), "opus/48000/2");
        let te = CodecSpec::from_sdp(100, Some("telephone-event/8000"), Some("0-15")).unwrap();
        assert_eq!(te.kind, CodecKind::TelephoneEvent);
        assert_eq!(te.rtpmap(), "telephone-event/8000");
        assert_eq!(CodecSpec::from_sdp(18, Some("G729/8000"), None), None);
        assert_eq!(CodecSpec::from_sdp(9, None, None), None);
        assert_eq!(CodecSpec::from_sdp(97, Some("opus"), None), None);
        assert_eq!(CodecSpec::from_sdp(97, Some("opus/x"), None), None);
        assert!(CodecSpec::opus(111).same_codec(&CodecSpec::opus(96)));
        assert!(!CodecSpec::pcmu().same_codec(&CodecSpec::pcma()));
    }

    fn sine(rate: u32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin()) as i16).collect()
    }

    fn correlation(a: &[i16], b: &[i16]) -> f64 {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        ab / (aa.sqrt() * bb.sqrt()).max(1e-9)
    }

    #[test]
    fn g711_codec_objects() {
        let pcm = sine(8000, 160);
        for spec in [CodecSpec::pcmu(), CodecSpec::pcma()] {
            let mut e = AudioEncoder::new(&spec, &OpusSettings::default()).unwrap();
            let mut d = AudioDecoder::new(&spec, &OpusSettings::default()).unwrap();
            let mut buf = [0u8; 200];
            let n = e.encode(&pcm, &mut buf).unwrap();
            assert_eq!(n, 160);
            assert_eq!(e.rtp_units(160), 160);
            let mut out = Vec::new();
            d.decode(&buf[..n], 0, &mut out).unwrap();
            assert!(correlation(&pcm, &out) > 0.999);
            out.clear();
            assert_eq!(d.decode(&[], 160, &mut out).unwrap(), 160);
        }
    }

    #[test]
    fn opus_round_trip_at_8k_and_48k() {
        for rate in [8000u32, 48000] {
            let settings = OpusSettings { pcm_rate: rate, ..Default::default() };
            let mut e = AudioEncoder::new(&CodecSpec::opus(111), &settings).unwrap();
            let mut d = AudioDecoder::new(&CodecSpec::opus(111), &settings).unwrap();
            let frame = rate as usize / 50;
            assert_eq!(e.rtp_units(frame), 960);
            let input = sine(rate, frame * 50);
            let mut output = Vec::new();
            let mut buf = [0u8; 1500];
            for f in input.chunks(frame) {
                let n = e.encode(f, &mut buf).unwrap();
                assert!(n > 0 && n < 200, "{n}");
                d.decode(&buf[..n], 0, &mut output).unwrap();
            }
            assert_eq!(output.len(), input.len());
            // Opus delays the signal a few ms: find the best lag
            let best =
                (0..rate as usize / 100).map(|lag| correlation(&input[..input.len() - lag - frame], &output[lag..input.len() - frame])).fold(0.0, f64::max);
            assert!(best > 0.9, "rate {rate}: correlation {best}");
            // loss concealment produces a frame
            let mut plc = Vec::new();
            assert_eq!(d.decode(&[], frame, &mut plc).unwrap(), frame);
        }
    }

    #[test]
    fn garbage_opus_is_an_error_not_a_panic() {
        let mut d = AudioDecoder::new(&CodecSpec::opus(111), &OpusSettings::default()).unwrap();
        let mut out = Vec::new();
        let _ = d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff], 0, &mut out);
        assert!(AudioEncoder::new(&CodecSpec::telephone_event(101, 8000), &OpusSettings::default()).is_err());
    }
}
