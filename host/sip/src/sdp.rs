//! SDP (RFC 4566) parsing and building, and offer/answer (RFC 3264) for what the media
//! layer needs: connection, media lines, rtpmap/fmtp, telephone-event, ptime, rtcp and
//! direction attributes.

use std::fmt::{self, Write};
use std::net::IpAddr;

/// Why an SDP body could not be read or answered.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line is malformed (1-based line number and what is wrong).
    #[error("bad SDP line {0}: {1}")]
    Malformed(usize, &'static str),
    /// No offered stream has a codec we support: answer 488 Not Acceptable Here.
    #[error("no common codec")]
    NoCommonCodec,
}

/// A media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Direction> {
        [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive].into_iter().find(|d| d.as_str() == s)
    }

    fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction to answer an offered one with, given what we want (RFC 3264 §6.1): we
    /// send only if the offerer receives, and receive only if it sends.
    pub fn answer(offered: Direction, local: Direction) -> Direction {
        Direction::from_flags(offered.receives() && local.sends(), offered.sends() && local.receives())
    }
}

/// `c=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address (`IP4`/`IP6` follows from it).
    pub address: IpAddr,
}

/// `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version: incremented on every new offer in the session (RFC 3264 §8).
    pub session_version: u64,
    /// The address.
    pub address: IpAddr,
}

/// An `a=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name.
    pub name: String,
    /// The value after `:`, if any.
    pub value: Option<String>,
}

/// An `a=rtpmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `opus`, `telephone-event`).
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// The port (0: rejected or disabled).
    pub port: u16,
    /// The transport protocol (`RTP/AVP`).
    pub proto: String,
    /// The formats (payload types for RTP), in preference order.
    pub formats: Vec<String>,
    /// The section's `c=`, if any.
    pub connection: Option<Connection>,
    /// The section's attributes, in order.
    pub attributes: Vec<Attribute>,
    /// Other lines (`b=`, `i=`, `k=`), kept to be written back.
    pub other: Vec<(char, String)>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`.
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// `t=` start and stop.
    pub timing: (u64, u64),
    /// Session-level attributes.
    pub attributes: Vec<Attribute>,
    /// Other session-level lines, kept.
    pub other: Vec<(char, String)>,
    /// The media sections.
    pub media: Vec<Media>,
}

fn attr_value<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.name == name).and_then(|a| a.value.as_deref())
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| Direction::parse(&a.name))
}

fn parse_addr(nettype: &str, addrtype: &str, addr: &str) -> Option<IpAddr> {
    if nettype != "IN" {
        return None;
    }
    let ip: IpAddr = addr.split('/').next()?.parse().ok()?;
    match (addrtype, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

fn addr_type(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

impl Media {
    /// The rtpmaps, plus the static payload types used without one (0 PCMU, 3 GSM, 8 PCMA,
    /// 9 G722, 18 G729), in format order.
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.formats
            .iter()
            .filter_map(|f| {
                let pt: u8 = f.parse().ok()?;
                self.rtpmap(pt)
            })
            .collect()
    }

    /// The rtpmap of one payload type (static ones are known without a line).
    pub fn rtpmap(&self, pt: u8) -> Option<RtpMap> {
        for a in self.attributes.iter().filter(|a| a.name == "rtpmap") {
            let v = a.value.as_deref()?;
            let (p, rest) = v.split_once(' ')?;
            if p.trim().parse::<u8>().ok() != Some(pt) {
                continue;
            }
            let mut parts = rest.trim().split('/');
            let encoding = parts.next()?.to_owned();
            let clock_rate = parts.next()?.parse().ok()?;
            let channels = parts.next().and_then(|c| c.parse().ok());
            return Some(RtpMap { payload_type: pt, encoding, clock_rate, channels });
        }
        let (name, rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            18 => ("G729", 8000),
            _ => return None,
        };
        Some(RtpMap { payload_type: pt, encoding: name.into(), clock_rate: rate, channels: None })
    }

    /// The fmtp of a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().filter(|a| a.name == "fmtp").find_map(|a| {
            let (p, rest) = a.value.as_deref()?.split_once(' ')?;
            (p.parse::<u8>().ok()? == pt).then_some(rest.trim())
        })
    }

    /// `a=ptime`, milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        attr_value(&self.attributes, "ptime")?.trim().parse().ok()
    }

    /// `a=rtcp` port (and address), RFC 3605.
    pub fn rtcp(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = attr_value(&self.attributes, "rtcp")?;
        let mut it = v.split_ascii_whitespace();
        let port = it.next()?.parse().ok()?;
        let addr = match (it.next(), it.next(), it.next()) {
            (Some(n), Some(t), Some(a)) => parse_addr(n, t, a),
            _ => None,
        };
        Some((port, addr))
    }

    /// The payload type of telephone-event (RFC 4733), if offered.
    pub fn telephone_event(&self) -> Option<u8> {
        self.rtpmaps().into_iter().find(|m| m.encoding.eq_ignore_ascii_case("telephone-event")).map(|m| m.payload_type)
    }

    /// Sets the direction attribute, replacing any.
    pub fn set_direction(&mut self, d: Direction) {
        self.attributes.retain(|a| Direction::parse(&a.name).is_none());
        self.attributes.push(Attribute { name: d.as_str().into(), value: None });
    }
}

impl SessionDescription {
    /// Parses an SDP body (CRLF or LF line ends).
    pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed(0, "not UTF-8"))?;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut timing = (0, 0);
        let mut attributes = Vec::new();
        let mut other = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut seen_v = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                continue;
            }
            let (t, v) = line.split_once('=').ok_or(SdpError::Malformed(n, "no '='"))?;
            let mut tc = t.chars();
            let (Some(t), None) = (tc.next(), tc.next()) else { return Err(SdpError::Malformed(n, "bad type")) };
            match t {
                'v' => {
                    if v != "0" {
                        return Err(SdpError::Malformed(n, "version"));
                    }
                    seen_v = true;
                }
                'o' => {
                    let f: Vec<&str> = v.split_ascii_whitespace().collect();
                    let [user, id, ver, nt, at, addr] = f[..] else { return Err(SdpError::Malformed(n, "o= fields")) };
                    origin = Some(Origin {
                        username: user.into(),
                        session_id: id.parse().map_err(|_| SdpError::Malformed(n, "o= session id"))?,
                        session_version: ver.parse().map_err(|_| SdpError::Malformed(n, "o= version"))?,
                        address: parse_addr(nt, at, addr).unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    });
                }
                's' => session_name = Some(v.to_owned()),
                'c' => {
                    let f: Vec<&str> = v.split_ascii_whitespace().collect();
                    let [nt, at, addr] = f[..] else { return Err(SdpError::Malformed(n, "c= fields")) };
                    let c = Connection { address: parse_addr(nt, at, addr).ok_or(SdpError::Malformed(n, "c= address"))? };
                    match media.last_mut() {
                        Some(m) => m.connection = Some(c),
                        None => connection = Some(c),
                    }
                }
                't' => {
                    let mut f = v.split_ascii_whitespace().map(str::parse::<u64>);
                    match (f.next(), f.next()) {
                        (Some(Ok(a)), Some(Ok(b))) => timing = (a, b),
                        _ => return Err(SdpError::Malformed(n, "t= fields")),
                    }
                }
                'm' => {
                    let mut f = v.split_ascii_whitespace();
                    let (Some(kind), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
                        return Err(SdpError::Malformed(n, "m= fields"));
                    };
                    let port = port.split('/').next().and_then(|p| p.parse().ok()).ok_or(SdpError::Malformed(n, "m= port"))?;
                    media.push(Media {
                        kind: kind.into(),
                        port,
                        proto: proto.into(),
                        formats: f.map(str::to_owned).collect(),
                        connection: None,
                        attributes: Vec::new(),
                        other: Vec::new(),
                    });
                }
                'a' => {
                    let a = match v.split_once(':') {
                        Some((name, value)) => Attribute { name: name.into(), value: Some(value.into()) },
                        None => Attribute { name: v.into(), value: None },
                    };
                    match media.last_mut() {
                        Some(m) => m.attributes.push(a),
                        None => attributes.push(a),
                    }
                }
                _ => match media.last_mut() {
                    Some(m) => m.other.push((t, v.to_owned())),
                    None => other.push((t, v.to_owned())),
                },
            }
        }
        if !seen_v {
            return Err(SdpError::Malformed(1, "missing v="));
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::Malformed(0, "missing o="))?,
            session_name: session_name.unwrap_or_else(|| "-".into()),
            connection,
            timing,
            attributes,
            other,
            media,
        })
    }

    /// The effective direction of a media section (its own attribute, else the session's,
    /// else sendrecv).
    pub fn direction(&self, m: &Media) -> Direction {
        direction_of(&m.attributes).or(direction_of(&self.attributes)).unwrap_or(Direction::SendRecv)
    }

    /// The connection address of a media section (its own, else the session's).
    pub fn connection_of<'a>(&'a self, m: &'a Media) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }

    /// Whether this description puts the call on hold: every active audio stream is
    /// sendonly/inactive or has the RFC 2543 address 0.0.0.0.
    pub fn is_hold(&self) -> bool {
        let mut audio = self.media.iter().filter(|m| m.kind == "audio" && m.port != 0).peekable();
        audio.peek().is_some()
            && audio.all(|m| {
                let d = self.direction(m);
                let zero = self.connection_of(m).is_some_and(|c| c.address.is_unspecified());
                zero || matches!(d, Direction::SendOnly | Direction::Inactive)
            })
    }

    /// Increments the session version: do it for every new offer in a session (re-INVITE,
    /// UPDATE) that changes anything (RFC 3264 §8).
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }

    /// The body text (CRLF line ends).
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.to_string())
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(512);
        let o = &self.origin;
        let _ = write!(
            s,
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            addr_type(&o.address),
            o.address,
            self.session_name
        );
        let conn = |s: &mut String, c: &Connection| {
            let _ = write!(s, "c=IN {} {}\r\n", addr_type(&c.address), c.address);
        };
        let attrs = |s: &mut String, list: &[Attribute]| {
            for a in list {
                match &a.value {
                    Some(v) => {
                        let _ = write!(s, "a={}:{}\r\n", a.name, v);
                    }
                    None => {
                        let _ = write!(s, "a={}\r\n", a.name);
                    }
                }
            }
        };
        for (t, v) in self.other.iter().filter(|(t, _)| matches!(t, 'i' | 'u' | 'e' | 'p')) {
            let _ = write!(s, "{t}={v}\r\n");
        }
        if let Some(c) = &self.connection {
            conn(&mut s, c);
        }
        for (t, v) in self.other.iter().filter(|(t, _)| *t == 'b') {
            let _ = write!(s, "{t}={v}\r\n");
        }
        let _ = write!(s, "t={} {}\r\n", self.timing.0, self.timing.1);
        for (t, v) in self.other.iter().filter(|(t, _)| !matches!(t, 'i' | 'u' | 'e' | 'p' | 'b')) {
            let _ = write!(s, "{t}={v}\r\n");
        }
        attrs(&mut s, &self.attributes);
        for m in &self.media {
            let _ = write!(s, "m={} {} {}", m.kind, m.port, m.proto);
            for fmt in &m.formats {
                s.push(' ');
                s.push_str(fmt);
            }
            s.push_str("\r\n");
            for (t, v) in m.other.iter().filter(|(t, _)| *t == 'i') {
                let _ = write!(s, "{t}={v}\r\n");
            }
            if let Some(c) = &m.connection {
                conn(&mut s, c);
            }
            for (t, v) in m.other.iter().filter(|(t, _)| *t != 'i') {
                let _ = write!(s, "{t}={v}\r\n");
            }
            attrs(&mut s, &m.attributes);
        }
        f.write_str(&s)
    }
}

/// A codec we can handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name, compared case-insensitively (`PCMU`, `PCMA`, `opus`).
    pub name: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels (opus: 2).
    pub channels: Option<u8>,
    /// The payload type we use when we make the offer (static ones are fixed).
    pub payload_type: u8,
    /// fmtp we offer, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    /// G.711 µ-law, PT 0.
    pub fn pcmu() -> Codec {
        Codec { name: "PCMU".into(), clock_rate: 8000, channels: None, payload_type: 0, fmtp: None }
    }

    /// G.711 A-law, PT 8.
    pub fn pcma() -> Codec {
        Codec { name: "PCMA".into(), clock_rate: 8000, channels: None, payload_type: 8, fmtp: None }
    }

    /// Opus, dynamic PT 111.
    pub fn opus() -> Codec {
        Codec { name: "opus".into(), clock_rate: 48000, channels: Some(2), payload_type: 111, fmtp: Some("useinbandfec=1".into()) }
    }

    fn matches(&self, m: &RtpMap) -> bool {
        self.name.eq_ignore_ascii_case(&m.encoding) && self.clock_rate == m.clock_rate
    }
}

/// What we put in our offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The o= username, session id and version of our side of the session.
    pub origin: Origin,
    /// Our RTP address.
    pub address: IpAddr,
    /// Our RTP port for audio.
    pub port: u16,
    /// Codecs in our preference order.
    pub codecs: Vec<Codec>,
    /// Offer/accept RFC 4733 telephone-event (at 8000 Hz, PT 101 in our offers).
    pub telephone_event: bool,
    /// a=ptime, when we want one.
    pub ptime: Option<u32>,
    /// What we want to do (sendrecv; sendonly to put the peer on hold).
    pub direction: Direction,
}

fn rtpmap_attr(pt: u8, name: &str, rate: u32, ch: Option<u8>) -> Attribute {
    let value = match ch {
        Some(c) => format!("{pt} {name}/{rate}/{c}"),
        None => format!("{pt} {name}/{rate}"),
    };
    Attribute { name: "rtpmap".into(), value: Some(value) }
}

/// Our offer: one audio stream with our codecs.
pub fn offer(local: &LocalMedia) -> SessionDescription {
    let mut m = Media {
        kind: "audio".into(),
        port: local.port,
        proto: "RTP/AVP".into(),
        formats: Vec::new(),
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    };
    for c in &local.codecs {
        m.formats.push(c.payload_type.to_string());
        m.attributes.push(rtpmap_attr(c.payload_type, &c.name, c.clock_rate, c.channels));
        if let Some(f) = &c.fmtp {
            m.attributes.push(Attribute { name: "fmtp".into(), value: Some(format!("{} {f}", c.payload_type)) });
        }
    }
    if local.telephone_event {
        m.formats.push("101".into());
        m.attributes.push(rtpmap_attr(101, "telephone-event", 8000, None));
        m.attributes.push(Attribute { name: "fmtp".into(), value: Some("101 0-16".into()) });
    }
    if let Some(p) = local.ptime {
        m.attributes.push(Attribute { name: "ptime".into(), value: Some(p.to_string()) });
    }
    m.set_direction(local.direction);
    SessionDescription {
        origin: local.origin.clone(),
        session_name: "FlowPBX".into(),
        connection: Some(Connection { address: local.address }),
        timing: (0, 0),
        attributes: Vec::new(),
        other: Vec::new(),
        media: vec![m],
    }
}

/// Our answer to `offer` (RFC 3264 §6): the first RTP/AVP(F) audio stream with a common
/// codec is accepted with the common codecs in the offerer's order and payload numbers
/// (telephone-event kept when we want it); every other stream is rejected with port 0.
/// Fails with [`SdpError::NoCommonCodec`] (answer 488) when no audio stream can be accepted.
pub fn answer(offer: &SessionDescription, local: &LocalMedia) -> Result<SessionDescription, SdpError> {
    let mut accepted = false;
    let mut media = Vec::with_capacity(offer.media.len());
    for om in &offer.media {
        let mut m = Media {
            kind: om.kind.clone(),
            port: 0,
            proto: om.proto.clone(),
            formats: om.formats.clone(),
            connection: None,
            attributes: Vec::new(),
            other: Vec::new(),
        };
        let usable = !accepted && om.kind == "audio" && om.port != 0 && matches!(om.proto.as_str(), "RTP/AVP" | "RTP/AVPF");
        if usable {
            let mut formats = Vec::new();
            let mut attrs = Vec::new();
            let mut te = None;
            for map in om.rtpmaps() {
                if map.encoding.eq_ignore_ascii_case("telephone-event") {
                    if local.telephone_event && map.clock_rate == 8000 && te.is_none() {
                        te = Some(map);
                    }
                    continue;
                }
                if local.codecs.iter().any(|c| c.matches(&map)) {
                    formats.push(map.payload_type.to_string());
                    attrs.push(rtpmap_attr(map.payload_type, &map.encoding, map.clock_rate, map.channels));
                    if let Some(f) = om.fmtp(map.payload_type) {
                        attrs.push(Attribute { name: "fmtp".into(), value: Some(format!("{} {f}", map.payload_type)) });
                    }
                }
            }
            if !formats.is_empty() {
                if let Some(map) = te {
                    formats.push(map.payload_type.to_string());
                    attrs.push(rtpmap_attr(map.payload_type, &map.encoding, map.clock_rate, None));
                    let events = om.fmtp(map.payload_type).unwrap_or("0-16");
                    attrs.push(Attribute { name: "fmtp".into(), value: Some(format!("{} {events}", map.payload_type)) });
                }
                if let Some(p) = local.ptime.or(om.ptime()) {
                    attrs.push(Attribute { name: "ptime".into(), value: Some(p.to_string()) });
                }
                m.port = local.port;
                m.formats = formats;
                m.attributes = attrs;
                m.set_direction(Direction::answer(offer.direction(om), local.direction));
                accepted = true;
            }
        }
        media.push(m);
    }
    if !accepted {
        return Err(SdpError::NoCommonCodec);
    }
    Ok(SessionDescription {
        origin: local.origin.clone(),
        session_name: "FlowPBX".into(),
        connection: Some(Connection { address: local.address }),
        timing: offer.timing,
        attributes: Vec::new(),
        other: Vec::new(),
        media,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 96 0 8 97 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\na=rtpmap:97 iLBC/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=rtcp:49171 IN IP4 192.0.2.1\r\na=sendrecv\r\n\
m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";

    fn local() -> LocalMedia {
        LocalMedia {
            origin: Origin { username: "flowpbx".into(), session_id: 7, session_version: 1, address: "198.51.100.1".parse().unwrap() },
            address: "198.51.100.1".parse().unwrap(),
            port: 30000,
            codecs: vec![Codec::pcma(), Codec::pcmu(), Codec { payload_type: 111, ..Codec::opus() }],
            telephone_event: true,
            ptime: None,
            direction: Direction::SendRecv,
        }
    }

    #[test]
    fn parse_reads_what_media_needs_and_round_trips() {
        let sd = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sd.origin.session_version, 2890844526);
        assert_eq!(sd.media.len(), 2);
        let a = &sd.media[0];
        assert_eq!(a.port, 49170);
        assert_eq!(a.rtpmaps().len(), 5);
        assert_eq!(a.rtpmap(0).unwrap().encoding, "PCMU");
        assert_eq!(a.rtpmap(96).unwrap().channels, Some(2));
        assert_eq!(a.fmtp(96), Some("useinbandfec=1"));
        assert_eq!(a.telephone_event(), Some(101));
        assert_eq!(a.ptime(), Some(20));
        assert_eq!(a.rtcp(), Some((49171, Some("192.0.2.1".parse().unwrap()))));
        assert_eq!(sd.direction(a), Direction::SendRecv);
        assert_eq!(sd.connection_of(a).unwrap().address, "192.0.2.1".parse::<IpAddr>().unwrap());
        let again = SessionDescription::parse(sd.to_string().as_bytes()).unwrap();
        assert_eq!(again, sd);
        assert!(sd.to_string().contains("b=AS:64\r\nt=0 0"));
        // LF-only input parses too.
        assert_eq!(SessionDescription::parse(OFFER.replace("\r\n", "\n").as_bytes()).unwrap(), sd);
    }

    #[test]
    fn malformed_sdp_is_an_error() {
        assert!(SessionDescription::parse(b"v=1\r\n").is_err());
        assert!(SessionDescription::parse(b"o=a 1 1 IN IP4 1.2.3.4\r\n").is_err());
        assert_eq!(SessionDescription::parse(b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 nope\r\n"), Err(SdpError::Malformed(4, "c= address")));
        assert!(SessionDescription::parse(b"v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n").is_err());
        assert!(SessionDescription::parse(b"v=0\r\nbogus\r\n").is_err());
    }

    #[test]
    fn answer_intersects_keeping_offerer_payload_numbers_and_rejects_video() {
        let sd = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let ans = answer(&sd, &local()).unwrap();
        let a = &ans.media[0];
        assert_eq!(a.port, 30000);
        assert_eq!(a.formats, vec!["96", "0", "8", "101"], "offerer's order and numbers, iLBC dropped");
        assert_eq!(a.rtpmap(96).unwrap().encoding, "opus");
        assert_eq!(a.fmtp(96), Some("useinbandfec=1"));
        assert_eq!(a.fmtp(101), Some("0-15"));
        assert_eq!(a.ptime(), Some(20));
        assert_eq!(ans.direction(a), Direction::SendRecv);
        let v = &ans.media[1];
        assert_eq!((v.port, v.formats.clone()), (0, vec!["31".to_string()]));
        let parsed = SessionDescription::parse(ans.to_string().as_bytes()).unwrap();
        assert_eq!(parsed, ans);
    }

    #[test]
    fn no_common_codec_is_488() {
        let sd = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let mut l = local();
        l.codecs = vec![Codec { name: "G729".into(), clock_rate: 8000, channels: None, payload_type: 18, fmtp: None }];
        assert_eq!(answer(&sd, &l), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn hold_detection_and_direction_answers() {
        let hold = OFFER.replace("a=sendrecv", "a=sendonly");
        let sd = SessionDescription::parse(hold.as_bytes()).unwrap();
        assert!(sd.is_hold());
        let ans = answer(&sd, &local()).unwrap();
        assert_eq!(ans.direction(&ans.media[0]), Direction::RecvOnly);
        let old_style = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0");
        assert!(SessionDescription::parse(old_style.as_bytes()).unwrap().is_hold());
        assert!(!SessionDescription::parse(OFFER.as_bytes()).unwrap().is_hold());
        assert_eq!(Direction::answer(Direction::Inactive, Direction::SendRecv), Direction::Inactive);
        assert_eq!(Direction::answer(Direction::RecvOnly, Direction::SendRecv), Direction::SendOnly);
        assert_eq!(Direction::answer(Direction::SendRecv, Direction::SendOnly), Direction::SendOnly);
    }

    #[test]
    fn offers_and_version_increments() {
        let mut o = offer(&local());
        let text = o.to_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 8 0 111 101\r\n"));
        assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
        assert!(text.contains("a=fmtp:101 0-16\r\n"));
        let v = o.origin.session_version;
        o.bump_version();
        o.media[0].set_direction(Direction::SendOnly);
        let re = SessionDescription::parse(o.to_string().as_bytes()).unwrap();
        assert_eq!(re.origin.session_version, v + 1);
        assert!(re.is_hold());
    }
}
