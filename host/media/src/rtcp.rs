//! RTCP (RFC 3550 §6): sender and receiver reports, SDES, BYE, compound packets.
//!
//! Parsing allocates (RTCP arrives every few seconds per stream); [`rewrite_ssrcs`] edits a
//! compound in place for the relay without allocating.

use crate::error::{MediaError, Result};

/// RTCP packet types.
pub mod pt {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender-info part of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit fixed point).
    pub ntp: u64,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// One SDES chunk: a source and its items (type, text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The described source.
    pub ssrc: u32,
    /// (item type, value); 1 = CNAME.
    pub items: Vec<(u8, String)>,
}

/// One RTCP packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR: sender SSRC, sender info, report blocks.
    SenderReport {
        /// The sender.
        ssrc: u32,
        /// What it sent.
        info: SenderInfo,
        /// What it received.
        reports: Vec<ReportBlock>,
    },
    /// RR: reporter SSRC and report blocks.
    ReceiverReport {
        /// The reporter.
        ssrc: u32,
        /// What it received.
        reports: Vec<ReportBlock>,
    },
    /// SDES chunks.
    SourceDescription(Vec<SdesChunk>),
    /// BYE with the leaving sources and an optional reason.
    Goodbye {
        /// Sources leaving.
        ssrcs: Vec<u32>,
        /// Reason text.
        reason: Option<String>,
    },
    /// Any other packet type (APP, RTPFB, …), kept raw.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The whole packet, header included.
        raw: Vec<u8>,
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]])).ok_or(MediaError::MalformedRtcp("truncated field"))
}

fn parse_block(b: &[u8], at: usize) -> Result<ReportBlock> {
    let lost_word = be32(b, at + 4)?;
    let raw = lost_word & 0x00ff_ffff;
    // sign-extend the 24-bit cumulative loss
    let cumulative_lost = ((raw << 8) as i32) >> 8;
    Ok(ReportBlock {
        ssrc: be32(b, at)?,
        fraction_lost: (lost_word >> 24) as u8,
        cumulative_lost,
        highest_seq: be32(b, at + 8)?,
        jitter: be32(b, at + 12)?,
        last_sr: be32(b, at + 16)?,
        delay_since_last_sr: be32(b, at + 20)?,
    })
}

/// Walks a compound and yields each packet's (type, count field, whole packet bytes).
fn packets(buf: &[u8]) -> impl Iterator<Item = Result<(u8, u8, std::ops::Range<usize>)>> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off >= buf.len() {
            return None;
        }
        let Some(h) = buf.get(off..off + 4) else {
            off = buf.len();
            return Some(Err(MediaError::MalformedRtcp("truncated header")));
        };
        if h[0] >> 6 != 2 {
            off = buf.len();
            return Some(Err(MediaError::MalformedRtcp("version is not 2")));
        }
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        if off + len > buf.len() {
            off = buf.len();
            return Some(Err(MediaError::MalformedRtcp("length beyond datagram")));
        }
        let range = off..off + len;
        off += len;
        Some(Ok((h[1], h[0] & 0x1f, range)))
    })
}

/// Parses an RTCP compound packet.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>> {
    let mut out = Vec::new();
    for item in packets(buf) {
        let (ptype, count, range) = item?;
        let p = &buf[range];
        let count = usize::from(count);
        out.push(match ptype {
            pt::SR => {
                let ssrc = be32(p, 4)?;
                let info = SenderInfo {
                    ntp: (u64::from(be32(p, 8)?) << 32) | u64::from(be32(p, 12)?),
                    rtp_ts: be32(p, 16)?,
                    packets: be32(p, 20)?,
                    octets: be32(p, 24)?,
                };
                let reports = (0..count).map(|i| parse_block(p, 28 + 24 * i)).collect::<Result<_>>()?;
                RtcpPacket::SenderReport { ssrc, info, reports }
            }
            pt::RR => {
                let ssrc = be32(p, 4)?;
                let reports = (0..count).map(|i| parse_block(p, 8 + 24 * i)).collect::<Result<_>>()?;
                RtcpPacket::ReceiverReport { ssrc, reports }
            }
            pt::SDES => {
                let mut chunks = Vec::with_capacity(count);
                let mut at = 4;
                for _ in 0..count {
                    let ssrc = be32(p, at)?;
                    at += 4;
                    let mut items = Vec::new();
                    loop {
                        let t = *p.get(at).ok_or(MediaError::MalformedRtcp("SDES truncated"))?;
                        if t == 0 {
                            // end of list, then pad to the next 32-bit boundary
                            at = (at + 4) & !3;
                            break;
                        }
                        let l = usize::from(*p.get(at + 1).ok_or(MediaError::MalformedRtcp("SDES truncated"))?);
                        let v = p.get(at + 2..at + 2 + l).ok_or(MediaError::MalformedRtcp("SDES item truncated"))?;
                        items.push((t, String::from_utf8_lossy(v).into_owned()));
                        at += 2 + l;
                    }
                    chunks.push(SdesChunk { ssrc, items });
                }
                RtcpPacket::SourceDescription(chunks)
            }
            pt::BYE => {
                let ssrcs = (0..count).map(|i| be32(p, 4 + 4 * i)).collect::<Result<Vec<_>>>()?;
                let at = 4 + 4 * count;
                let reason = match p.get(at) {
                    Some(&l) if l > 0 => {
                        let v = p.get(at + 1..at + 1 + usize::from(l)).ok_or(MediaError::MalformedRtcp("BYE reason truncated"))?;
                        Some(String::from_utf8_lossy(v).into_owned())
                    }
                    _ => None,
                };
                RtcpPacket::Goodbye { ssrcs, reason }
            }
            other => RtcpPacket::Other { packet_type: other, raw: p.to_vec() },
        });
    }
    if out.is_empty() {
        return Err(MediaError::MalformedRtcp("empty compound"));
    }
    Ok(out)
}

fn put_block(out: &mut Vec<u8>, r: &ReportBlock) {
    out.extend_from_slice(&r.ssrc.to_be_bytes());
    let lost = (u32::from(r.fraction_lost) << 24) | ((r.cumulative_lost as u32) & 0x00ff_ffff);
    out.extend_from_slice(&lost.to_be_bytes());
    for v in [r.highest_seq, r.jitter, r.last_sr, r.delay_since_last_sr] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn finish(out: &mut Vec<u8>, start: usize, count: u8, ptype: u8) {
    while !(out.len() - start).is_multiple_of(4) {
        out.push(0);
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start] = 0x80 | (count & 0x1f);
    out[start + 1] = ptype;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// Appends the packets as one compound to `out`. At most 31 report blocks, chunks or sources
/// per packet are written (the count field's limit); the rest are dropped.
pub fn build_compound(packets: &[RtcpPacket], out: &mut Vec<u8>) {
    for p in packets {
        let start = out.len();
        out.extend_from_slice(&[0, 0, 0, 0]);
        match p {
            RtcpPacket::SenderReport { ssrc, info, reports } => {
                out.extend_from_slice(&ssrc.to_be_bytes());
                out.extend_from_slice(&info.ntp.to_be_bytes());
                for v in [info.rtp_ts, info.packets, info.octets] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                let n = reports.len().min(31);
                reports[..n].iter().for_each(|r| put_block(out, r));
                finish(out, start, n as u8, pt::SR);
            }
            RtcpPacket::ReceiverReport { ssrc, reports } => {
                out.extend_from_slice(&ssrc.to_be_bytes());
                let n = reports.len().min(31);
                reports[..n].iter().for_each(|r| put_block(out, r));
                finish(out, start, n as u8, pt::RR);
            }
            RtcpPacket::SourceDescription(chunks) => {
                let n = chunks.len().min(31);
                for c in &chunks[..n] {
                    out.extend_from_slice(&c.ssrc.to_be_bytes());
                    for (t, v) in &c.items {
                        let v = &v.as_bytes()[..v.len().min(255)];
                        out.push(*t);
                        out.push(v.len() as u8);
                        out.extend_from_slice(v);
                    }
                    // null terminator(s) up to the next 32-bit boundary
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
                finish(out, start, n as u8, pt::SDES);
            }
            RtcpPacket::Goodbye { ssrcs, reason } => {
                let n = ssrcs.len().min(31);
                ssrcs[..n].iter().for_each(|s| out.extend_from_slice(&s.to_be_bytes()));
                if let Some(r) = reason {
                    let r = &r.as_bytes()[..r.len().min(255)];
                    out.push(r.len() as u8);
                    out.extend_from_slice(r);
                }
                finish(out, start, n as u8, pt::BYE);
            }
            RtcpPacket::Other { raw, .. } => {
                out.truncate(start);
                out.extend_from_slice(raw);
            }
        }
    }
}

/// Which SSRC field of a compound [`rewrite_ssrcs`] is asking about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsrcField {
    /// The packet's own source: SR/RR sender, SDES chunk, BYE source.
    Sender,
    /// A report block's subject (a source the sender receives).
    ReportSubject,
}

/// Rewrites the SSRCs of a compound in place (`map(field, old) -> new`), for the relay: the
/// sender's SSRC becomes the one the receiving leg knows the relay by, and report-block
/// subjects become the sources the other leg really sent. Returns an error, leaving the
/// buffer partly rewritten, when the compound is malformed.
pub fn rewrite_ssrcs(buf: &mut [u8], mut map: impl FnMut(SsrcField, u32) -> u32) -> Result<()> {
    let ranges: [Option<(u8, u8, std::ops::Range<usize>)>; 8] = {
        let mut a: [Option<_>; 8] = Default::default();
        for (i, item) in packets(buf).take(8).enumerate() {
            a[i] = Some(item?);
        }
        a
    };
    let mut put = |buf: &mut [u8], at: usize, field: SsrcField| -> Result<()> {
        let s = buf.get_mut(at..at + 4).ok_or(MediaError::MalformedRtcp("truncated field"))?;
        let v = map(field, u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        s.copy_from_slice(&v.to_be_bytes());
        Ok(())
    };
    for (ptype, count, range) in ranges.into_iter().flatten() {
        let base = range.start;
        let count = usize::from(count);
        match ptype {
            pt::SR | pt::RR => {
                put(buf, base + 4, SsrcField::Sender)?;
                let first = if ptype == pt::SR { 28 } else { 8 };
                for i in 0..count {
                    let at = base + first + 24 * i;
                    if at + 24 > range.end {
                        return Err(MediaError::MalformedRtcp("report block truncated"));
                    }
                    put(buf, at, SsrcField::ReportSubject)?;
                }
            }
            pt::BYE => {
                for i in 0..count {
                    let at = base + 4 + 4 * i;
                    if at + 4 > range.end {
                        return Err(MediaError::MalformedRtcp("BYE truncated"));
                    }
                    put(buf, at, SsrcField::Sender)?;
                }
            }
            pt::SDES => {
                let mut at = base + 4;
                for _ in 0..count {
                    if at + 4 > range.end {
                        return Err(MediaError::MalformedRtcp("SDES truncated"));
                    }
                    put(buf, at, SsrcField::Sender)?;
                    at += 4;
                    loop {
                        let t = *buf.get(at).ok_or(MediaError::MalformedRtcp("SDES truncated"))?;
                        if t == 0 {
                            at = base + ((at - base + 4) & !3);
                            break;
                        }
                        let l = usize::from(*buf.get(at + 1).ok_or(MediaError::MalformedRtcp("SDES truncated"))?);
                        at += 2 + l;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Converts a duration since the Unix epoch into a 64-bit NTP timestamp.
pub fn ntp_timestamp(since_unix: std::time::Duration) -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compound() -> Vec<RtcpPacket> {
        vec![
            RtcpPacket::SenderReport {
                ssrc: 0x1111,
                info: SenderInfo { ntp: 0x0102_0304_0506_0708, rtp_ts: 16000, packets: 100, octets: 16000 },
                reports: vec![ReportBlock {
                    ssrc: 0x2222,
                    fraction_lost: 25,
                    cumulative_lost: -3,
                    highest_seq: 70000,
                    jitter: 12,
                    last_sr: 0xabcd,
                    delay_since_last_sr: 655,
                }],
            },
            RtcpPacket::SourceDescription(vec![SdesChunk { ssrc: 0x1111, items: vec![(1, "alice@example".into()), (6, "tool".into())] }]),
            RtcpPacket::Goodbye { ssrcs: vec![0x1111], reason: Some("done".into()) },
        ]
    }

    #[test]
    fn compound_round_trip() {
        let mut b = Vec::new();
        build_compound(&compound(), &mut b);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(parse_compound(&b).unwrap(), compound());
    }

    #[test]
    fn receiver_report_round_trip_and_header_fields() {
        let rr = vec![RtcpPacket::ReceiverReport { ssrc: 9, reports: vec![ReportBlock { ssrc: 10, cumulative_lost: 8_388_607, ..Default::default() }] }];
        let mut b = Vec::new();
        build_compound(&rr, &mut b);
        assert_eq!(b.len(), 32);
        assert_eq!(b[0], 0x81);
        assert_eq!(b[1], 201);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 7);
        assert_eq!(parse_compound(&b).unwrap(), rr);
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(parse_compound(&[]).is_err());
        assert!(parse_compound(&[0x80, 200, 0, 20]).is_err());
        let mut b = Vec::new();
        build_compound(&compound(), &mut b);
        for n in 0..b.len() {
            let _ = parse_compound(&b[..n]);
            let mut c = b[..n].to_vec();
            let _ = rewrite_ssrcs(&mut c, |_, s| s);
        }
        b[0] = 0x40;
        assert!(parse_compound(&b).is_err());
    }

    #[test]
    fn rewrites_sender_and_report_ssrcs_in_place() {
        let mut b = Vec::new();
        build_compound(&compound(), &mut b);
        rewrite_ssrcs(&mut b, |f, s| match (f, s) {
            (SsrcField::Sender, 0x1111) => 0xaaaa,
            (SsrcField::ReportSubject, 0x2222) => 0xbbbb,
            (_, other) => other,
        })
        .unwrap();
        let p = parse_compound(&b).unwrap();
        match &p[0] {
            RtcpPacket::SenderReport { ssrc, reports, .. } => {
                assert_eq!(*ssrc, 0xaaaa);
                assert_eq!(reports[0].ssrc, 0xbbbb);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&p[1], RtcpPacket::SourceDescription(c) if c[0].ssrc == 0xaaaa && c[0].items[0].1 == "alice@example"));
        assert!(matches!(&p[2], RtcpPacket::Goodbye { ssrcs, .. } if ssrcs == &[0xaaaa]));
    }

    #[test]
    fn ntp_conversion() {
        let t = ntp_timestamp(std::time::Duration::from_millis(1500));
        assert_eq!(t >> 32, 2_208_988_801);
        assert_eq!(t & 0xffff_ffff, 0x8000_0000);
    }
}
