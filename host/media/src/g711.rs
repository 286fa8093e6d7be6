//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA), written from the recommendation's segment
//! tables. Decoding goes through 256-entry tables computed at compile time; encoding is the
//! segment search of G.711 §2/§3 (the same result as the recommendation's tables 1a/2a).

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

const fn ulaw_decode_calc(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0f) as i32) << 3) + BIAS;
    let t = t << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { BIAS - t } else { t - BIAS }) as i16
}

const fn alaw_decode_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw { alaw_decode_calc(i as u8) } else { ulaw_decode_calc(i as u8) };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = table(false);
static ALAW_DECODE: [i16; 256] = table(true);

/// Decodes one µ-law byte.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Encodes one 16-bit linear sample to µ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (mag, mask) = if s < 0 { ((-s).min(CLIP), 0x7f) } else { (s.min(CLIP), 0xff) };
    let v = mag + BIAS;
    // segment: position of the highest set bit above bit 7
    let seg = (31 - (v as u32 >> 7 | 1).leading_zeros()) as i32;
    let uval = ((seg << 4) | ((v >> (seg + 3)) & 0x0f)) as u8;
    uval ^ mask
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = i32::from(sample) >> 3; // A-law works on 13 bits
    let (mag, mask) = if s >= 0 { (s, 0xd5u8) } else { (-s - 1, 0x55u8) };
    let mag = mag.min(0x0fff);
    let aval = if mag < 32 {
        (mag >> 1) as u8
    } else {
        let seg = (31 - (mag as u32 >> 5).leading_zeros()) as i32 + 1; // 1..=7
        ((seg << 4) | ((mag >> seg) & 0x0f)) as u8
    };
    aval ^ mask
}

/// Encodes a block to µ-law; `out` must be at least as long as `pcm`.
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_ulaw(s);
    }
}

/// Encodes a block to A-law; `out` must be at least as long as `pcm`.
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(pcm) {
        *o = linear_to_alaw(s);
    }
}

/// Decodes a µ-law block; `out` must be at least as long as `codes`.
pub fn decode_ulaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = ulaw_to_linear(c);
    }
}

/// Decodes an A-law block; `out` must be at least as long as `codes`.
pub fn decode_alaw(codes: &[u8], out: &mut [i16]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = alaw_to_linear(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values() {
        // G.711 table 2a end points and well-known pairs (as in the reference g711.c).
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(-1), 0x7f);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xce);
        assert_eq!(ulaw_to_linear(0xce), 988);
        assert_eq!(linear_to_ulaw(-1000), 0x4e);
        assert_eq!(ulaw_to_linear(0xef), 132);
        assert_eq!(ulaw_to_linear(0xfe), 8);
        // segment boundaries: 0xf0 tops segment 0, 0xe0 tops segment 1
        assert_eq!(ulaw_to_linear(0xf0), 120);
        assert_eq!(ulaw_to_linear(0xe0), 372);
    }

    #[test]
    fn alaw_reference_values() {
        // G.711 table 1a: the smallest positive/negative codes and the extremes.
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(linear_to_alaw(32767), 0xaa);
        assert_eq!(linear_to_alaw(-32768), 0x2a);
        assert_eq!(linear_to_alaw(1000), 0xfa);
        assert_eq!(alaw_to_linear(0xfa), 1008);
        assert_eq!(alaw_to_linear(0xd4), 24);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            if c != 0x7f {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "ulaw {c:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let err_u = (u - i32::from(s)).abs();
            let err_a = (a - i32::from(s)).abs();
            // the step grows with magnitude: at most 1/32 of it plus the clip region
            let bound = (i32::from(s).abs() / 16).max(16) + if i32::from(s).abs() > 32000 { 700 } else { 0 };
            assert!(err_u <= bound, "ulaw {s} -> {u}");
            assert!(err_a <= bound, "alaw {s} -> {a}");
        }
    }

    #[test]
    fn decode_is_monotonic() {
        let mut prev = i16::MIN;
        // µ-law: codes 0x00..0x7f are negative decreasing magnitude; 0x80..0xff positive decreasing
        let mut ordered: Vec<i16> = (0..=255u8).map(ulaw_to_linear).collect();
        ordered.sort_unstable();
        ordered.dedup();
        assert_eq!(ordered.len(), 255);
        for &v in &ordered {
            assert!(v >= prev);
            prev = v;
        }
        let mut a: Vec<i16> = (0..=255u8).map(alaw_to_linear).collect();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 256);
    }
}
