//! WAV reading and writing.
//!
//! Written here rather than with `hound` because uploads must also accept G.711 WAVs
//! (format tags 6 and 7), which hound does not read, and because the recorder needs a
//! streaming writer whose header is patched when the file is closed.
//!
//! [`convert_to_internal`] turns any readable WAV into FlowPBX's internal prompt format:
//! 8 kHz, mono, 16-bit PCM.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{MediaError, Result};
use crate::g711;
use crate::resample;

/// Sample rate of prompts and recordings.
pub const INTERNAL_RATE: u32 = 8000;
/// Longest audio [`convert_to_internal`] accepts.
pub const MAX_SECONDS: u32 = 3600;

const TAG_PCM: u16 = 1;
const TAG_FLOAT: u16 = 3;
const TAG_ALAW: u16 = 6;
const TAG_MULAW: u16 = 7;
const TAG_EXTENSIBLE: u16 = 0xfffe;

fn bad(msg: impl Into<String>) -> MediaError {
    MediaError::UnreadableAudio(msg.into())
}

/// What a WAV's `fmt ` chunk says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Format tag (1 PCM, 3 float, 6 A-law, 7 µ-law), extensible resolved to its sub-format.
    pub tag: u16,
    /// Channel count.
    pub channels: u16,
    /// Sample rate.
    pub rate: u32,
    /// Bits per sample.
    pub bits: u16,
}

/// A decoded WAV, mixed down to mono, samples in the 16-bit range as `f32`.
#[derive(Debug, Clone)]
pub struct DecodedAudio {
    /// The source format.
    pub format: WavFormat,
    /// Mono samples at `format.rate`.
    pub samples: Vec<f32>,
}

fn le16(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| bad("truncated header"))
}

fn le32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| bad("truncated header"))
}

/// Parses a RIFF/WAVE file and decodes its samples to mono.
pub fn decode(bytes: &[u8]) -> Result<DecodedAudio> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a WAV file (no RIFF/WAVE header)"));
    }
    let mut fmt: Option<WavFormat> = None;
    let mut data: Option<&[u8]> = None;
    let mut off = 12usize;
    while off + 8 <= bytes.len() {
        let id = &bytes[off..off + 4];
        let size = le32(bytes, off + 4)? as usize;
        let body_start = off + 8;
        // a streaming writer may leave the data size at 0 or 0xffffffff: take the rest
        let body_end = if id == b"data" && (size == 0 || size == u32::MAX as usize || body_start + size > bytes.len()) {
            bytes.len()
        } else {
            body_start.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("chunk runs past the end of the file"))?
        };
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                let mut tag = le16(body, 0)?;
                let channels = le16(body, 2)?;
                let rate = le32(body, 4)?;
                let bits = le16(body, 14)?;
                if tag == TAG_EXTENSIBLE {
                    tag = le16(body, 24).map_err(|_| bad("extensible format without sub-format"))?;
                }
                fmt = Some(WavFormat { tag, channels, rate, bits });
            }
            b"data" => {
                data = Some(body);
                if fmt.is_some() {
                    break;
                }
            }
            _ => {}
        }
        off = body_end + (body_end - body_start) % 2; // chunks are word-aligned
    }
    let format = fmt.ok_or_else(|| bad("no fmt chunk"))?;
    let data = data.ok_or_else(|| bad("no data chunk"))?;
    if format.channels == 0 || format.channels > 16 {
        return Err(bad(format!("unsupported channel count {}", format.channels)));
    }
    if !(1000..=384_000).contains(&format.rate) {
        return Err(bad(format!("unsupported sample rate {} Hz", format.rate)));
    }
    let bytes_per_sample = match (format.tag, format.bits) {
        (TAG_PCM, 8) | (TAG_ALAW, 8) | (TAG_MULAW, 8) => 1,
        (TAG_PCM, 16) => 2,
        (TAG_PCM, 24) => 3,
        (TAG_PCM, 32) | (TAG_FLOAT, 32) => 4,
        (TAG_FLOAT, 64) => 8,
        (TAG_PCM | TAG_FLOAT | TAG_ALAW | TAG_MULAW, b) => return Err(bad(format!("unsupported bit depth {b} for format {}", format.tag))),
        (t, _) => return Err(bad(format!("unsupported WAV encoding (format tag {t}); use PCM, float, A-law or µ-law"))),
    };
    let frame = bytes_per_sample * usize::from(format.channels);
    let frames = data.len() / frame;
    if frames as u64 > u64::from(format.rate) * u64::from(MAX_SECONDS) {
        return Err(bad(format!("longer than {} minutes", MAX_SECONDS / 60)));
    }
    if frames == 0 {
        return Err(bad("no audio samples"));
    }
    let sample = |s: &[u8]| -> f32 {
        match (format.tag, bytes_per_sample) {
            (TAG_PCM, 1) => (f32::from(s[0]) - 128.0) * 256.0,
            (TAG_ALAW, _) => f32::from(g711::alaw_to_linear(s[0])),
            (TAG_MULAW, _) => f32::from(g711::ulaw_to_linear(s[0])),
            (TAG_PCM, 2) => f32::from(i16::from_le_bytes([s[0], s[1]])),
            (TAG_PCM, 3) => (i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8) as f32 / 256.0,
            (TAG_PCM, _) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as f32 / 65536.0,
            (_, 4) => {
                let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                if v.is_finite() {
                    v.clamp(-1.0, 1.0) * 32767.0
                } else {
                    0.0
                }
            }
            _ => {
                let v = f64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
                if v.is_finite() {
                    (v.clamp(-1.0, 1.0) * 32767.0) as f32
                } else {
                    0.0
                }
            }
        }
    };
    let ch = f32::from(format.channels);
    let samples = data.chunks_exact(frame).map(|f| f.chunks_exact(bytes_per_sample).map(sample).sum::<f32>() / ch).collect();
    Ok(DecodedAudio { format, samples })
}

/// The 44-byte header of a PCM WAV.
pub fn header(channels: u16, rate: u32, bits: u16, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let block_align = channels * (bits / 8);
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&TAG_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&bits.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A complete 16-bit PCM WAV of interleaved `samples`.
pub fn encode(samples: &[i16], channels: u16, rate: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&header(channels, rate, 16, (samples.len() * 2) as u32));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Decodes any readable WAV to 8 kHz mono 16-bit samples.
pub fn decode_internal(bytes: &[u8]) -> Result<Vec<i16>> {
    let audio = decode(bytes)?;
    let f = audio.format;
    if f.rate == INTERNAL_RATE && f.channels == 1 && f.tag == TAG_PCM && f.bits == 16 {
        return Ok(audio.samples.iter().map(|&v| v as i16).collect());
    }
    let resampled = resample::resample_all(&audio.samples, f.rate, INTERNAL_RATE)?;
    Ok(resampled.iter().map(|&v| v.round().clamp(-32768.0, 32767.0) as i16).collect())
}

/// Converts an uploaded WAV (any rate, channel count, 8/16/24/32-bit integer, 32/64-bit
/// float, A-law or µ-law) to the internal format: an 8 kHz mono 16-bit PCM WAV.
/// What cannot be read is [`MediaError::UnreadableAudio`] with a reason fit for the user.
pub fn convert_to_internal(bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(encode(&decode_internal(bytes)?, 1, INTERNAL_RATE))
}

/// A WAV file written incrementally: 16-bit PCM, the header's sizes patched on
/// [`WavWriter::finish`].
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    rate: u32,
    data_len: u64,
    scratch: Vec<u8>,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes a provisional header.
    pub fn new(mut out: W, channels: u16, rate: u32) -> Result<Self> {
        out.write_all(&header(channels, rate, 16, 0))?;
        Ok(WavWriter { out, channels, rate, data_len: 0, scratch: Vec::new() })
    }

    /// Appends interleaved samples.
    pub fn write_samples(&mut self, samples: &[i16]) -> Result<()> {
        self.scratch.clear();
        for s in samples {
            self.scratch.extend_from_slice(&s.to_le_bytes());
        }
        self.out.write_all(&self.scratch)?;
        self.data_len += self.scratch.len() as u64;
        Ok(())
    }

    /// Bytes of audio written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Patches the header and flushes; returns the writer.
    pub fn finish(mut self) -> Result<W> {
        let len = u32::try_from(self.data_len).unwrap_or(u32::MAX - 36);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.channels, self.rate, 16, len))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAV with an arbitrary fmt chunk (for formats this crate never writes).
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8], extensible: bool) -> Vec<u8> {
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&(if extensible { TAG_EXTENSIBLE } else { tag }).to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        let align = channels * bits.div_ceil(8);
        fmt.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        fmt.extend_from_slice(&align.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        if extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&bits.to_le_bytes());
            fmt.extend_from_slice(&3u32.to_le_bytes());
            fmt.extend_from_slice(&tag.to_le_bytes());
            fmt.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]);
        }
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(b"WAVE");
        // an unrelated chunk of odd size first, to exercise padding
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&[1, 2, 3, 0]);
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        out.extend_from_slice(&fmt);
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        out
    }

    fn tone(rate: u32, secs: f64) -> Vec<f64> {
        (0..(f64::from(rate) * secs) as usize).map(|i| 0.5 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / f64::from(rate)).sin()).collect()
    }

    /// The converted file is 8 kHz mono 16-bit, as long as the input, and carries the 500 Hz tone.
    fn check_internal(out: &[u8], secs: f64) {
        let d = decode(out).unwrap();
        assert_eq!(d.format, WavFormat { tag: 1, channels: 1, rate: 8000, bits: 16 });
        assert_eq!(d.samples.len(), (8000.0 * secs) as usize);
        let reference = tone(8000, secs);
        let s = &d.samples[400..d.samples.len() - 400];
        let r = &reference[400..reference.len() - 400];
        let corr: f64 = s.iter().zip(r).map(|(a, b)| f64::from(*a) * b).sum::<f64>()
            / (s.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt() * r.iter().map(|b| b * b).sum::<f64>().sqrt());
        assert!(corr > 0.99, "correlation {corr}");
    }

    #[test]
    fn converts_pcm16_stereo_44k() {
        let t = tone(44100, 0.5);
        let mut data = Vec::new();
        for v in &t {
            let s = (v * 32767.0) as i16;
            data.extend_from_slice(&s.to_le_bytes());
            data.extend_from_slice(&s.to_le_bytes());
        }
        check_internal(&convert_to_internal(&wav(1, 2, 44100, 16, &data, false)).unwrap(), 0.5);
    }

    #[test]
    fn converts_8bit_24bit_32bit_and_float() {
        let t = tone(16000, 0.25);
        let u8data: Vec<u8> = t.iter().map(|v| (v * 127.0 + 128.0) as u8).collect();
        check_internal(&convert_to_internal(&wav(1, 1, 16000, 8, &u8data, false)).unwrap(), 0.25);
        let d24: Vec<u8> = t
            .iter()
            .flat_map(|v| {
                let s = (v * 8_388_607.0) as i32;
                let b = s.to_le_bytes();
                [b[0], b[1], b[2]]
            })
            .collect();
        check_internal(&convert_to_internal(&wav(1, 1, 16000, 24, &d24, true)).unwrap(), 0.25);
        let d32: Vec<u8> = t.iter().flat_map(|v| ((v * 2_147_483_647.0) as i32).to_le_bytes()).collect();
        check_internal(&convert_to_internal(&wav(1, 1, 16000, 32, &d32, false)).unwrap(), 0.25);
        let f32d: Vec<u8> = tone(48000, 0.25).iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
        check_internal(&convert_to_internal(&wav(3, 1, 48000, 32, &f32d, false)).unwrap(), 0.25);
        let f64d: Vec<u8> = tone(22050, 0.25).iter().flat_map(|v| v.to_le_bytes()).collect();
        check_internal(&convert_to_internal(&wav(3, 1, 22050, 64, &f64d, true)).unwrap(), 0.25);
    }

    #[test]
    fn converts_g711_wavs() {
        let t = tone(8000, 0.5);
        let a: Vec<u8> = t.iter().map(|v| g711::linear_to_alaw((v * 32767.0) as i16)).collect();
        check_internal(&convert_to_internal(&wav(6, 1, 8000, 8, &a, false)).unwrap(), 0.5);
        let u: Vec<u8> = t.iter().map(|v| g711::linear_to_ulaw((v * 32767.0) as i16)).collect();
        check_internal(&convert_to_internal(&wav(7, 1, 8000, 8, &u, false)).unwrap(), 0.5);
    }

    #[test]
    fn internal_format_passes_unchanged() {
        let samples: Vec<i16> = (0..800).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        let w = encode(&samples, 1, 8000);
        assert_eq!(decode_internal(&w).unwrap(), samples);
        assert_eq!(convert_to_internal(&w).unwrap(), w);
    }

    #[test]
    fn unreadable_files_are_clear_errors() {
        let msg = |b: &[u8]| match convert_to_internal(b) {
            Err(MediaError::UnreadableAudio(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(msg(b"ID3\x03 this is an mp3").contains("not a WAV"));
        assert!(msg(&wav(2, 1, 8000, 4, &[0; 100], false)).contains("format tag 2"));
        assert!(msg(&wav(1, 1, 8000, 12, &[0; 100], false)).contains("bit depth"));
        assert!(msg(&wav(1, 0, 8000, 16, &[0; 100], false)).contains("channel"));
        assert!(msg(&wav(1, 1, 100, 16, &[0; 100], false)).contains("sample rate"));
        assert!(msg(&wav(1, 1, 8000, 16, &[], false)).contains("no audio"));
        let mut no_data = wav(1, 1, 8000, 16, &[0; 4], false);
        no_data.truncate(no_data.len() - 12);
        assert!(convert_to_internal(&no_data).is_err());
        // every truncation of a valid file fails cleanly or decodes
        let w = wav(1, 2, 44100, 16, &[1; 400], false);
        for n in 0..w.len() {
            let _ = convert_to_internal(&w[..n]);
        }
    }

    #[test]
    fn streaming_writer_patches_header() {
        let mut w = WavWriter::new(std::io::Cursor::new(Vec::new()), 2, 8000).unwrap();
        w.write_samples(&[1, -1, 2, -2]).unwrap();
        w.write_samples(&[3, -3]).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let d = decode(&bytes).unwrap();
        assert_eq!(d.format.channels, 2);
        assert_eq!(d.samples, vec![0.0, 0.0, 0.0]);
        assert_eq!(u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]), 12);
    }
}
