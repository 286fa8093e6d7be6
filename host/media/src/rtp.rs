//! RTP (RFC 3550 §5) parsing and building, without allocation.
//!
//! [`RtpPacket::parse`] borrows the datagram; [`rewrite_header`] edits the fixed header of a
//! datagram in place, which is all the passthrough relay needs.

use crate::error::{MediaError, Result};

/// Size of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;

/// The fixed-header fields a relay reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (start of a talkspurt, or of a DTMF event).
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp in the payload's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes this header (version 2, no padding, no extension, no CSRC) into `out[..12]`.
    /// Returns the number of bytes written, or `None` when `out` is shorter than 12 bytes.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let h = out.get_mut(..RTP_HEADER_LEN)?;
        h[0] = 0x80;
        h[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        h[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Some(RTP_HEADER_LEN)
    }
}

/// A parsed RTP packet borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The fixed header.
    pub header: RtpHeader,
    /// Contributing sources (raw, 4 bytes each).
    pub csrc: &'a [u8],
    /// Header extension profile and data, when the X bit is set.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
    /// Offset of the payload in the datagram.
    pub payload_offset: usize,
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP datagram. Never panics; malformed input is an error.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(MediaError::MalformedRtp("shorter than the fixed header"));
        }
        if buf[0] >> 6 != 2 {
            return Err(MediaError::MalformedRtp("version is not 2"));
        }
        let padding = buf[0] & 0x20 != 0;
        let has_ext = buf[0] & 0x10 != 0;
        let cc = usize::from(buf[0] & 0x0f);
        let header = RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        };
        let mut off = RTP_HEADER_LEN + 4 * cc;
        let csrc = buf.get(RTP_HEADER_LEN..off).ok_or(MediaError::MalformedRtp("CSRC list truncated"))?;
        let extension = if has_ext {
            let e = buf.get(off..off + 4).ok_or(MediaError::MalformedRtp("extension header truncated"))?;
            let profile = u16::from_be_bytes([e[0], e[1]]);
            let words = usize::from(u16::from_be_bytes([e[2], e[3]]));
            let data = buf.get(off + 4..off + 4 + 4 * words).ok_or(MediaError::MalformedRtp("extension truncated"))?;
            off += 4 + 4 * words;
            Some((profile, data))
        } else {
            None
        };
        let mut end = buf.len();
        if padding {
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || off + pad > end {
                return Err(MediaError::MalformedRtp("bad padding length"));
            }
            end -= pad;
        }
        let payload = buf.get(off..end).ok_or(MediaError::MalformedRtp("header longer than packet"))?;
        Ok(RtpPacket { header, csrc, extension, payload, payload_offset: off })
    }
}

/// Builds a complete packet (fixed header + payload) into `out`; returns its length, or `None`
/// when `out` is too small.
pub fn build(header: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let total = RTP_HEADER_LEN + payload.len();
    header.write(out)?;
    out.get_mut(RTP_HEADER_LEN..total)?.copy_from_slice(payload);
    Some(total)
}

/// Rewrites marker, payload type, sequence, timestamp and SSRC of an RTP datagram in place,
/// leaving version, padding, extension, CSRCs and payload untouched. The caller has parsed the
/// datagram already, so `buf` holds at least the fixed header; shorter input is left alone.
pub fn rewrite_header(buf: &mut [u8], h: &RtpHeader) {
    if let Some(b) = buf.get_mut(..RTP_HEADER_LEN) {
        b[1] = (u8::from(h.marker) << 7) | (h.payload_type & 0x7f);
        b[2..4].copy_from_slice(&h.sequence.to_be_bytes());
        b[4..8].copy_from_slice(&h.timestamp.to_be_bytes());
        b[8..12].copy_from_slice(&h.ssrc.to_be_bytes());
    }
}

/// Whether a datagram arriving on an RTP port is RTCP multiplexed onto it (RFC 5761 §4:
/// second byte 192–223, i.e. RTCP packet types 200–204 and friends).
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

/// `a` is newer than `b` in 16-bit sequence space (RFC 1982 serial arithmetic).
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let h = RtpHeader { marker: true, payload_type: 8, sequence: 0xfffe, timestamp: 0xdead_beef, ssrc: 0x1234_5678 };
        let mut out = vec![0u8; 200];
        let n = build(&h, &[1, 2, 3, 4], &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn build_then_parse_round_trips() {
        let b = sample();
        assert_eq!(b.len(), 16);
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.header, RtpHeader { marker: true, payload_type: 8, sequence: 0xfffe, timestamp: 0xdead_beef, ssrc: 0x1234_5678 });
        assert_eq!(p.payload, &[1, 2, 3, 4]);
        assert_eq!(p.payload_offset, 12);
    }

    #[test]
    fn parses_csrc_extension_and_padding() {
        // V=2 P=1 X=1 CC=1, PT 0
        let mut b = vec![0xb1, 0x00, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9];
        b.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]); // CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, one word
        b.extend_from_slice(&[9, 9, 9]); // payload
        b.extend_from_slice(&[0, 0, 3]); // padding of 3
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.csrc, &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(p.extension, Some((0xbede, &[1u8, 2, 3, 4][..])));
        assert_eq!(p.payload, &[9, 9, 9]);
        assert_eq!(p.header.sequence, 7);
        assert_eq!(p.header.timestamp, 160);
    }

    #[test]
    fn rejects_malformed_without_panicking() {
        assert!(RtpPacket::parse(&[]).is_err());
        assert!(RtpPacket::parse(&[0x80; 11]).is_err());
        let mut v1 = sample();
        v1[0] = 0x40;
        assert!(RtpPacket::parse(&v1).is_err());
        // CC=15 but no CSRCs
        let mut cc = sample();
        cc[0] = 0x8f;
        assert!(RtpPacket::parse(&cc).is_err());
        // padding bigger than the packet
        let mut pad = sample();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 200;
        assert!(RtpPacket::parse(&pad).is_err());
        // extension length beyond the end
        let mut ext = sample();
        ext[0] |= 0x10;
        ext.truncate(14);
        assert!(RtpPacket::parse(&ext).is_err());
        // every prefix of a valid packet is handled
        let b = sample();
        for n in 0..b.len() {
            let _ = RtpPacket::parse(&b[..n]);
        }
    }

    #[test]
    fn rewrite_in_place_keeps_payload() {
        let mut b = sample();
        let h = RtpHeader { marker: false, payload_type: 0, sequence: 3, timestamp: 480, ssrc: 77 };
        rewrite_header(&mut b, &h);
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn rtcp_mux_detection_and_serial_numbers() {
        assert!(looks_like_rtcp(&[0x81, 200, 0, 6, 0, 0, 0, 1]));
        assert!(!looks_like_rtcp(&sample()));
        assert!(seq_newer(1, 0xffff));
        assert!(!seq_newer(0xffff, 1));
        assert!(!seq_newer(5, 5));
    }
}
