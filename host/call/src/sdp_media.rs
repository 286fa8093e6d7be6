//! SDP ↔ the media engine: what a leg's SDP says (its RTP/RTCP addresses, the codecs FlowPBX
//! handles, ptime, direction, rtcp-mux) in the media crate's terms, and the SDP FlowPBX
//! writes toward a leg (its own address and ports, the negotiated codecs, the direction).
//!
//! Pure functions: the core calls them where SDP crosses from one leg to the other.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use media::{CodecSpec, LegCodecs, RemoteMedia};
use sip::sdp::{Attribute, Connection, Direction, Media, Origin, SessionDescription};

/// The SDP content type.
pub(crate) const APPLICATION_SDP: &str = "application/sdp";

/// Whether a body is SDP (by its content type).
pub(crate) fn is_sdp(content_type: Option<&str>, body: &[u8]) -> bool {
    !body.is_empty() && content_type.is_some_and(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(APPLICATION_SDP))
}

/// Why a leg's SDP cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SdpFault {
    /// Not SDP we can read.
    Unreadable,
    /// No active RTP/AVP(F) audio stream.
    NoAudio,
    /// No audio codec FlowPBX handles (PCMU, PCMA, Opus).
    NoCodec,
    /// The leg's SRTP policy and the SDP's crypto do not agree: an RTP/SAVP offer without
    /// usable `a=crypto`, no crypto where the leg requires it, crypto where it is off, or an
    /// answer whose `a=crypto` does not match what FlowPBX offered.
    Crypto,
}

/// A leg's audio stream, as its SDP describes it.
#[derive(Debug, Clone)]
pub(crate) struct LegSdp {
    /// The whole description: an answer mirrors its media lines.
    pub sdp: SessionDescription,
    /// Which media line is the audio stream used.
    pub index: usize,
    /// RTP address (`c=` and the `m=` port).
    pub rtp: Option<SocketAddr>,
    /// RTCP address (`a=rtcp`, else the RTP port + 1).
    pub rtcp: Option<SocketAddr>,
    /// `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// The codecs FlowPBX handles, in the leg's order and with its payload types
    /// (telephone-event included).
    pub codecs: Vec<CodecSpec>,
    /// `a=ptime`.
    pub ptime: Option<u32>,
    /// The stream's direction as the leg wrote it.
    pub direction: Direction,
    /// The profile is RTP/SAVP or RTP/SAVPF (SRTP is mandatory for the stream).
    pub secure: bool,
    /// The stream's `a=crypto` values (SDES keys: never logged).
    pub crypto: Vec<String>,
    /// A WebRTC offer (`UDP/TLS/RTP/SAVPF` with a DTLS fingerprint): its whole text, which
    /// the media engine's WebRTC transport answers (ICE-lite, DTLS-SRTP).
    pub webrtc: Option<String>,
}

impl LegSdp {
    /// The leg as the media engine takes it, with `codecs` as negotiated.
    pub fn remote(&self, codecs: &[CodecSpec]) -> Result<RemoteMedia, media::MediaError> {
        Ok(RemoteMedia {
            rtp: self.rtp,
            rtcp: self.rtcp,
            rtcp_mux: self.rtcp_mux,
            codecs: LegCodecs::new(codecs, self.ptime)?,
            direction: media_direction(self.direction),
        })
    }
}

/// The media crate's name for an SDP direction.
pub(crate) fn media_direction(d: Direction) -> media::MediaDirection {
    match d {
        Direction::SendRecv => media::MediaDirection::SendRecv,
        Direction::SendOnly => media::MediaDirection::SendOnly,
        Direction::RecvOnly => media::MediaDirection::RecvOnly,
        Direction::Inactive => media::MediaDirection::Inactive,
    }
}

/// The most `a=crypto` lines of one stream that are read (more are ignored: an offer names
/// one per suite, and FlowPBX knows three).
pub(crate) const MAX_CRYPTO_LINES: usize = 16;

/// The longest `a=crypto` value read (longer ones are not kept, so they count as unusable).
pub(crate) const MAX_CRYPTO_LEN: usize = 256;

/// Reads a leg's SDP: the first active RTP/AVP(F) or RTP/SAVP(F) audio stream, or a WebRTC
/// one (`UDP/TLS/RTP/SAVPF` with a DTLS fingerprint).
pub(crate) fn read(body: &[u8]) -> Result<LegSdp, SdpFault> {
    let sdp = SessionDescription::parse(body).map_err(|_| SdpFault::Unreadable)?;
    let webrtc = std::str::from_utf8(body).ok().filter(|t| media::webrtc::is_webrtc_offer(t));
    let (index, m) = sdp
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| {
            m.kind == "audio"
                && m.port != 0
                && (matches!(m.proto.as_str(), "RTP/AVP" | "RTP/AVPF" | "RTP/SAVP" | "RTP/SAVPF")
                    || (webrtc.is_some() && matches!(m.proto.as_str(), "UDP/TLS/RTP/SAVPF" | "UDP/TLS/RTP/SAVP")))
        })
        .ok_or(SdpFault::NoAudio)?;
    let webrtc = webrtc.filter(|_| m.proto.starts_with("UDP/TLS/")).map(str::to_owned);
    let codecs: Vec<CodecSpec> = m
        .formats
        .iter()
        .filter_map(|f| {
            let pt: u8 = f.parse().ok()?;
            let map = m.rtpmap(pt).map(|r| match r.channels {
                Some(c) => format!("{}/{}/{c}", r.encoding, r.clock_rate),
                None => format!("{}/{}", r.encoding, r.clock_rate),
            });
            CodecSpec::from_sdp(pt, map.as_deref(), m.fmtp(pt))
        })
        .collect();
    if !codecs.iter().any(CodecSpec::is_audio) {
        return Err(SdpFault::NoCodec);
    }
    let ip = sdp.connection_of(m).map(|c| c.address);
    let rtp = ip.map(|ip| SocketAddr::new(ip, m.port));
    let rtcp = match m.rtcp() {
        Some((port, addr)) => addr.or(ip).map(|ip| SocketAddr::new(ip, port)),
        None => ip.map(|ip| SocketAddr::new(ip, m.port.wrapping_add(1))),
    };
    let rtcp_mux = m.attributes.iter().any(|a| a.name == "rtcp-mux");
    let ptime = m.ptime();
    let direction = sdp.direction(m);
    let secure = m.proto.starts_with("RTP/SAVP");
    let crypto = m
        .attributes
        .iter()
        .filter(|a| a.name == "crypto")
        .filter_map(|a| a.value.as_deref())
        .map(|v| if v.len() > MAX_CRYPTO_LEN { String::new() } else { v.to_owned() })
        .take(MAX_CRYPTO_LINES)
        .collect();
    Ok(LegSdp { index, rtp, rtcp, rtcp_mux, codecs, ptime, direction, secure, crypto, sdp, webrtc })
}

/// FlowPBX's side of the session toward one leg: the `o=` line it keeps for that leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalSession {
    /// `o=` session id (fixed for the call).
    pub id: u64,
    /// `o=` version, bumped for every description sent.
    pub version: u64,
}

/// What FlowPBX writes toward a leg.
pub(crate) struct Outgoing<'a> {
    /// The address the leg reaches FlowPBX's media at.
    pub ip: IpAddr,
    /// FlowPBX's RTP port for the leg.
    pub port: u16,
    /// Codecs (telephone-event included), in preference order, with this leg's payload types.
    pub codecs: &'a [CodecSpec],
    /// `a=ptime` to write.
    pub ptime: Option<u32>,
    /// The direction FlowPBX states.
    pub direction: Direction,
    /// Whether to write `a=rtcp-mux` (accepting the leg's offer of it).
    pub rtcp_mux: bool,
    /// For an answer: the offer, whose media lines are mirrored (others rejected with port 0).
    pub mirror: Option<&'a LegSdp>,
    /// For an offer: RTP/SAVP rather than RTP/AVP (an answer mirrors the offer's profile).
    pub secure: bool,
    /// `a=crypto` values to write (SDES: FlowPBX's keys toward this leg).
    pub crypto: &'a [String],
}

/// Writes the description.
pub(crate) fn write(session: &mut LocalSession, out: &Outgoing<'_>) -> Bytes {
    session.version += 1;
    let mut audio = Media {
        kind: "audio".into(),
        port: out.port,
        proto: out.mirror.map_or_else(|| if out.secure { "RTP/SAVP" } else { "RTP/AVP" }.to_owned(), |m| m.sdp.media[m.index].proto.clone()),
        formats: Vec::with_capacity(out.codecs.len()),
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    };
    for c in out.codecs {
        audio.formats.push(c.pt.to_string());
        audio.attributes.push(Attribute { name: "rtpmap".into(), value: Some(format!("{} {}", c.pt, c.rtpmap())) });
        if let Some(f) = &c.fmtp {
            audio.attributes.push(Attribute { name: "fmtp".into(), value: Some(format!("{} {f}", c.pt)) });
        }
    }
    if let Some(p) = out.ptime {
        audio.attributes.push(Attribute { name: "ptime".into(), value: Some(p.to_string()) });
    }
    if out.rtcp_mux {
        audio.attributes.push(Attribute { name: "rtcp-mux".into(), value: None });
    }
    for c in out.crypto {
        audio.attributes.push(Attribute { name: "crypto".into(), value: Some(c.clone()) });
    }
    audio.set_direction(out.direction);
    let media = match out.mirror {
        None => vec![audio],
        Some(offer) => {
            let mut lines = Vec::with_capacity(offer.sdp.media.len());
            let mut audio = Some(audio);
            for (i, m) in offer.sdp.media.iter().enumerate() {
                if i == offer.index {
                    if let Some(a) = audio.take() {
                        lines.push(a);
                    }
                } else {
                    lines.push(Media {
                        kind: m.kind.clone(),
                        port: 0,
                        proto: m.proto.clone(),
                        formats: m.formats.clone(),
                        connection: None,
                        attributes: Vec::new(),
                        other: Vec::new(),
                    });
                }
            }
            lines
        }
    };
    SessionDescription {
        origin: Origin { username: "FlowPBX".into(), session_id: session.id, session_version: session.version, address: out.ip },
        session_name: "FlowPBX".into(),
        connection: Some(Connection { address: out.ip }),
        timing: (0, 0),
        attributes: Vec::new(),
        other: Vec::new(),
        media,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::CodecKind;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 96 0 18 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:30\r\na=rtcp-mux\r\na=sendonly\r\n\
        m=video 5000 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";

    #[test]
    fn reads_the_audio_stream() {
        let l = read(OFFER.as_bytes()).unwrap();
        assert_eq!(l.index, 0);
        assert_eq!(l.rtp, Some("10.0.0.1:4000".parse().unwrap()));
        assert_eq!(l.rtcp, Some("10.0.0.1:4001".parse().unwrap()));
        assert!(l.rtcp_mux);
        assert_eq!(l.ptime, Some(30));
        assert_eq!(l.direction, Direction::SendOnly);
        let kinds: Vec<(u8, CodecKind)> = l.codecs.iter().map(|c| (c.pt, c.kind)).collect();
        // G.729 is not ours: left out
        assert_eq!(kinds, vec![(96, CodecKind::Opus), (0, CodecKind::Pcmu), (101, CodecKind::TelephoneEvent)]);
        let r = l.remote(&l.codecs).unwrap();
        assert_eq!(r.direction, media::MediaDirection::SendOnly);
        assert_eq!(r.codecs.telephone_event.as_ref().map(|t| t.pt), Some(101));
        assert!(l.sdp.is_hold());
    }

    #[test]
    fn refuses_what_cannot_be_anchored() {
        assert_eq!(read(b"garbage").unwrap_err(), SdpFault::Unreadable);
        let video = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 97\r\n";
        assert_eq!(read(video.as_bytes()).unwrap_err(), SdpFault::NoAudio);
        let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\n";
        assert_eq!(read(g729.as_bytes()).unwrap_err(), SdpFault::NoCodec);
    }

    #[test]
    fn answer_mirrors_the_offers_media_lines() {
        let offer = read(OFFER.as_bytes()).unwrap();
        let mut s = LocalSession { id: 7, version: 0 };
        let codecs = [CodecSpec::opus(96), CodecSpec::telephone_event(101, 8000)];
        let body = write(
            &mut s,
            &Outgoing {
                ip: "192.0.2.9".parse().unwrap(),
                port: 12000,
                codecs: &codecs,
                ptime: None,
                direction: Direction::RecvOnly,
                rtcp_mux: true,
                mirror: Some(&offer),
                secure: false,
                crypto: &[],
            },
        );
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("o=FlowPBX 7 1 IN IP4 192.0.2.9\r\n"), "{text}");
        assert!(text.contains("c=IN IP4 192.0.2.9\r\n"), "{text}");
        assert!(text.contains("m=audio 12000 RTP/AVP 96 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"), "{text}");
        assert!(text.contains("a=recvonly\r\n") && text.contains("a=rtcp-mux\r\n"), "{text}");
        assert!(text.contains("m=video 0 RTP/AVP 97\r\n"), "{text}");
        let again = read(&body).unwrap();
        assert_eq!(again.rtp, Some("192.0.2.9:12000".parse().unwrap()));
        write(
            &mut s,
            &Outgoing {
                ip: "192.0.2.9".parse().unwrap(),
                port: 12000,
                codecs: &codecs,
                ptime: None,
                direction: Direction::SendRecv,
                rtcp_mux: false,
                mirror: None,
                secure: false,
                crypto: &[],
            },
        );
        assert_eq!(s.version, 2);
    }
}
