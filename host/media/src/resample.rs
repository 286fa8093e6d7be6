//! Rational polyphase resampler with a Kaiser-windowed sinc low-pass.
//!
//! Converting `from` → `to` Hz upsamples by L = to/g, filters at the lower of the two Nyquist
//! rates, and decimates by M = from/g (g = gcd), computing only the outputs that are kept: each
//! output is one dot product of `taps` input samples with one of L filter phases. The filter is
//! ~80 dB (Kaiser β = 8) with the pass band to about 0.9 of the lower Nyquist frequency.
//! Streaming: state carries across calls, so 20 ms frames resample exactly like one long signal.

use crate::error::{MediaError, Result};

/// Taps per phase when not decimating; decimation by M/L widens the filter by that factor.
const BASE_TAPS: usize = 48;
/// Cut-off (−6 dB) as a fraction of the lower Nyquist frequency.
const CUTOFF: f64 = 0.92;
const KAISER_BETA: f64 = 8.0;
/// Refuse ratios whose filter bank would exceed this many coefficients (odd rates like 7999 Hz).
const MAX_COEFFS: usize = 1 << 22;

/// A streaming sample-rate converter for one mono channel.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    taps: usize,
    /// Invariant: `coeffs.len() == up * taps`; phase `p`'s taps are `coeffs[p*taps..][..taps]`,
    /// stored oldest-sample-first so a phase is a plain dot product with the history window.
    coeffs: Vec<f32>,
    /// Invariant: `hist[pos - (taps-1) ..= pos]` is the window of the next output.
    hist: Vec<f32>,
    pos: usize,
    phase: usize,
    scratch: Vec<f32>,
    scratch_out: Vec<f32>,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz (both 1 000–384 000).
    pub fn new(from: u32, to: u32) -> Result<Self> {
        if !(1000..=384_000).contains(&from) || !(1000..=384_000).contains(&to) {
            return Err(MediaError::UnreadableAudio(format!("unsupported sample rate conversion {from} Hz -> {to} Hz")));
        }
        let g = gcd(from as usize, to as usize);
        let up = to as usize / g;
        let down = from as usize / g;
        let taps = if down > up { (BASE_TAPS * down).div_ceil(up) } else { BASE_TAPS };
        let n = up * taps;
        if n > MAX_COEFFS {
            return Err(MediaError::UnreadableAudio(format!("sample rate {from} Hz cannot be converted to {to} Hz")));
        }
        // prototype low-pass at the upsampled rate
        let fs_up = f64::from(to) * down as f64; // = from * up
        let cutoff_hz = 0.5 * f64::from(from.min(to)) * CUTOFF;
        let fc = cutoff_hz / fs_up;
        let center = (n as f64 - 1.0) / 2.0;
        let i0b = bessel_i0(KAISER_BETA);
        let proto: Vec<f64> = (0..n)
            .map(|j| {
                let x = j as f64 - center;
                let sinc = if x.abs() < 1e-12 { 1.0 } else { (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x) / (2.0 * fc) };
                let r = 2.0 * x / (n as f64 - 1.0).max(1.0);
                let w = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0b;
                2.0 * fc * sinc * w * up as f64
            })
            .collect();
        // polyphase split: output at input index i, phase p uses proto[p + k*up] * x[i - k]
        let mut coeffs = vec![0f32; n];
        for p in 0..up {
            for k in 0..taps {
                coeffs[p * taps + (taps - 1 - k)] = proto[p + k * up] as f32;
            }
        }
        Ok(Resampler { up, down, taps, coeffs, hist: vec![0.0; taps - 1], pos: taps - 1, phase: 0, scratch: Vec::new(), scratch_out: Vec::new() })
    }

    /// Output samples per input sample.
    pub fn ratio(&self) -> f64 {
        self.up as f64 / self.down as f64
    }

    /// Resamples `input`, appending to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.hist.extend_from_slice(input);
        let taps = self.taps;
        while self.pos < self.hist.len() {
            let window = &self.hist[self.pos + 1 - taps..=self.pos];
            let phase = &self.coeffs[self.phase * taps..(self.phase + 1) * taps];
            out.push(dot(phase, window));
            self.phase += self.down;
            self.pos += self.phase / self.up;
            self.phase %= self.up;
        }
        // keep the last taps-1 samples before pos
        let keep_from = self.pos + 1 - taps;
        if keep_from > 0 {
            let keep_from = keep_from.min(self.hist.len());
            self.hist.drain(..keep_from);
            self.pos -= keep_from;
        }
    }

    /// Resamples 16-bit samples, appending to `out` (saturating).
    pub fn process_i16(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut scratch_out = std::mem::take(&mut self.scratch_out);
        scratch.clear();
        scratch.extend(input.iter().map(|&s| f32::from(s)));
        scratch_out.clear();
        self.process(&scratch, &mut scratch_out);
        out.extend(scratch_out.iter().map(|&v| v.round().clamp(-32768.0, 32767.0) as i16));
        self.scratch = scratch;
        self.scratch_out = scratch_out;
    }

    /// The filter's group delay in input samples (a file converter trims it).
    pub fn delay_input_samples(&self) -> f64 {
        ((self.up * self.taps) as f64 - 1.0) / 2.0 / self.up as f64
    }

    /// Feeds enough silence to push the last real samples through the filter.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let zeros = vec![0f32; self.taps];
        self.process(&zeros, out);
    }
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Converts a whole signal (not streaming), compensating the filter delay so output sample 0
/// lines up with input sample 0.
pub fn resample_all(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to {
        return Ok(input.to_vec());
    }
    let mut r = Resampler::new(from, to)?;
    let mut out = Vec::with_capacity((input.len() as f64 * r.ratio()) as usize + 16);
    r.process(input, &mut out);
    r.flush(&mut out);
    let skip = (r.delay_input_samples() * r.ratio()).round() as usize;
    let want = (input.len() as f64 * r.ratio()).round() as usize;
    Ok(out.into_iter().skip(skip).take(want).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, secs: f64, amp: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n).map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as f32).collect()
    }

    /// Amplitude of `freq` in `x` (Goertzel / single-bin DFT).
    fn tone_amplitude(x: &[f32], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            re += f64::from(v) * (w * i as f64).cos();
            im += f64::from(v) * (w * i as f64).sin();
        }
        2.0 * (re * re + im * im).sqrt() / x.len() as f64
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn zero_crossings(x: &[f32]) -> usize {
        x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count()
    }

    #[test]
    fn upsampling_preserves_frequency_and_level() {
        let x = sine(1000.0, 8000, 1.0, 10000.0);
        let mut r = Resampler::new(8000, 48000).unwrap();
        let mut y = Vec::new();
        for chunk in x.chunks(160) {
            r.process(chunk, &mut y);
        }
        assert_eq!(y.len(), 48000);
        let steady = &y[4800..];
        let a = tone_amplitude(steady, 1000.0, 48000);
        assert!((a - 10000.0).abs() < 150.0, "amplitude {a}");
        // ~2 zero crossings per cycle: 1 kHz over 0.9 s
        let zc = zero_crossings(steady);
        assert!((1795..=1805).contains(&zc), "{zc}");
        // images above 4 kHz are suppressed: the only energy is the tone
        let residual = rms(steady) - a / 2f64.sqrt();
        assert!(residual.abs() < 100.0, "residual {residual}");
    }

    #[test]
    fn downsampling_preserves_in_band_and_attenuates_aliases() {
        let mut r = Resampler::new(48000, 8000).unwrap();
        let mut y = Vec::new();
        for chunk in sine(1000.0, 48000, 1.0, 10000.0).chunks(960) {
            r.process(chunk, &mut y);
        }
        assert_eq!(y.len(), 8000);
        let a = tone_amplitude(&y[800..], 1000.0, 8000);
        assert!((a - 10000.0).abs() < 150.0, "{a}");

        // a 6 kHz tone cannot exist at 8 kHz: it would alias to 2 kHz; it must be filtered out
        let mut r = Resampler::new(48000, 8000).unwrap();
        let mut y = Vec::new();
        r.process(&sine(6000.0, 48000, 1.0, 10000.0), &mut y);
        let leak = rms(&y[800..]);
        assert!(leak < 10000.0 * 1e-3, "alias leak {leak} (should be < -60 dB)");
        assert!(tone_amplitude(&y[800..], 2000.0, 8000) < 10.0);
    }

    #[test]
    fn odd_ratio_44100_to_8000() {
        let y = resample_all(&sine(440.0, 44100, 0.5, 8000.0), 44100, 8000).unwrap();
        assert_eq!(y.len(), 4000);
        let a = tone_amplitude(&y[400..3600], 440.0, 8000);
        assert!((a - 8000.0).abs() < 150.0, "{a}");
        // delay compensated: the output starts in phase with the input
        let reference = sine(440.0, 8000, 0.5, 8000.0);
        let err = y[400..3600].iter().zip(&reference[400..3600]).map(|(a, b)| f64::from(a - b).abs()).fold(0.0, f64::max);
        assert!(err < 400.0, "max error {err}");
    }

    #[test]
    fn rejects_absurd_rates() {
        assert!(Resampler::new(0, 8000).is_err());
        assert!(Resampler::new(8000, 1_000_000).is_err());
    }

    #[test]
    fn i16_path_saturates() {
        let mut r = Resampler::new(8000, 16000).unwrap();
        let mut out = Vec::new();
        r.process_i16(&[32767; 400], &mut out);
        assert_eq!(out.len(), 800);
        assert!(out.iter().all(|&s| s >= -32768));
    }
}
