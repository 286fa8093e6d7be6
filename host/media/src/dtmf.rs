//! DTMF: RFC 4733 telephone-event receive (duplicates and redundant end packets collapsed
//! into one digit with a duration), RFC 4733 generation, and SIP INFO bodies
//! (`application/dtmf-relay`, `application/dtmf`) read into the same digit.

use std::time::{Duration, Instant};

use crate::error::{MediaError, Result};

/// The digits of RFC 4733 §3.2 events 0–15, indexed by event code.
const DIGITS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// The digit of a DTMF event code (0–15), if it is one.
pub fn digit_for_event(code: u8) -> Option<char> {
    DIGITS.get(usize::from(code)).copied()
}

/// The event code of a digit (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
pub fn event_for_digit(digit: char) -> Option<u8> {
    let d = digit.to_ascii_uppercase();
    DIGITS.iter().position(|&c| c == d).map(|p| p as u8)
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 are DTMF digits).
    pub event: u8,
    /// E bit: this is (a retransmission of) the end of the event.
    pub end: bool,
    /// Volume in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let b = payload.get(..4).ok_or_else(|| MediaError::InvalidDtmf("telephone-event payload shorter than 4 bytes".into()))?;
        Ok(TelephoneEvent { event: b[0], end: b[1] & 0x80 != 0, volume: b[1] & 0x3f, duration: u16::from_be_bytes([b[2], b[3]]) })
    }

    /// The 4-byte payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3f), d[0], d[1]]
    }
}

/// What the receiver saw happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfUpdate {
    /// A key went down (first packet of a new event).
    Started(char),
    /// The key came up: one digit, with its duration.
    Ended {
        /// The digit.
        digit: char,
        /// How long it was held.
        duration: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Current {
    ts: u32,
    code: u8,
    duration: u16,
    last_seen: Instant,
}

/// How long an event may go without packets before its end is taken as lost.
const LOST_END_AFTER: Duration = Duration::from_millis(800);

/// Collapses one stream's RFC 4733 packets into digit starts and ends.
///
/// An event is identified by its RTP timestamp (all packets of one event share it): packets
/// with the timestamp of the current event extend it; the first end packet ends it; the
/// redundant end packets, and any late packet of an ended event, are ignored. A new timestamp
/// while an event is open ends the open one (its end packets were lost), as does
/// [`DtmfReceiver::handle_timeout`] when packets stop.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    current: Option<Current>,
    /// (timestamp, code) of the last ended event, to drop its retransmitted end packets.
    finished: Option<(u32, u8)>,
    clock_rate: u32,
}

impl DtmfReceiver {
    /// A receiver with nothing seen yet.
    pub fn new() -> Self {
        DtmfReceiver { current: None, finished: None, clock_rate: 8000 }
    }

    fn to_duration(&self, units: u16) -> Duration {
        Duration::from_micros(u64::from(units) * 1_000_000 / u64::from(self.clock_rate.max(1)))
    }

    fn end_current(&mut self, out: &mut Vec<DtmfUpdate>) {
        if let Some(c) = self.current.take() {
            self.finished = Some((c.ts, c.code));
            if let Some(digit) = digit_for_event(c.code) {
                out.push(DtmfUpdate::Ended { digit, duration: self.to_duration(c.duration) });
            }
        }
    }

    /// Accounts one telephone-event packet (its RTP timestamp and payload, at `clock_rate`).
    /// Updates are appended to `out`. Events other than DTMF digits (flash, tones) are ignored.
    pub fn on_packet(&mut self, ts: u32, payload: &[u8], clock_rate: u32, now: Instant, out: &mut Vec<DtmfUpdate>) -> Result<()> {
        let ev = TelephoneEvent::parse(payload)?;
        self.clock_rate = clock_rate;
        let Some(digit) = digit_for_event(ev.event) else {
            return Ok(());
        };
        if self.finished == Some((ts, ev.event)) {
            return Ok(()); // redundant end packet or a late packet of an ended event
        }
        match &mut self.current {
            Some(c) if c.ts == ts && c.code == ev.event => {
                c.duration = c.duration.max(ev.duration);
                c.last_seen = now;
            }
            _ => {
                self.end_current(out);
                self.current = Some(Current { ts, code: ev.event, duration: ev.duration, last_seen: now });
                out.push(DtmfUpdate::Started(digit));
            }
        }
        if ev.end {
            self.end_current(out);
        }
        Ok(())
    }

    /// When [`DtmfReceiver::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + LOST_END_AFTER)
    }

    /// Ends an event whose packets stopped without an end packet.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<DtmfUpdate>) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.end_current(out);
        }
    }

    /// Whether an event is in progress (the key is down).
    pub fn in_event(&self) -> bool {
        self.current.is_some()
    }
}

/// One packet the generator wants sent; the caller puts it in an RTP packet with the
/// generator's payload type, the event's timestamp and the next sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// Set on the first packet of the event.
    pub marker: bool,
    /// The 4-byte telephone-event payload.
    pub payload: [u8; 4],
    /// True for the first packet: the caller assigns the event's RTP timestamp then and
    /// reuses it for every later packet of the event (RFC 4733 §2.5.1).
    pub first: bool,
}

/// Generates RFC 4733 packets for one digit: a start packet (marker set), continuation
/// packets every `interval` with the growing duration, then three end packets carrying the
/// final duration. The duration is either known up front or given later with
/// [`DtmfGenerator::end`] (when mirroring a digit that is still being pressed on the other leg).
#[derive(Debug, Clone)]
pub struct DtmfGenerator {
    code: u8,
    units_per_sec: u32,
    interval: Duration,
    start: Instant,
    next_due: Instant,
    packets: u32,
    total: Option<Duration>,
    /// Set by [`DtmfGenerator::end`]: the key is already up, send the end packets next.
    released: bool,
    ends_sent: u8,
    last_duration: u16,
}

/// How many times the end packet is sent (RFC 4733 §2.5.1.4).
pub const END_PACKETS: u8 = 3;
/// Longest event one packet's 16-bit duration can carry at 8 kHz; longer digits are clamped.
const MAX_UNITS: u64 = 0xffff;

impl DtmfGenerator {
    /// Starts generating `digit` at `now`, for `duration` if known, at the leg's
    /// telephone-event clock rate, one packet per `interval` (the leg's ptime).
    pub fn new(digit: char, duration: Option<Duration>, clock_rate: u32, interval: Duration, now: Instant) -> Result<Self> {
        let code = event_for_digit(digit).ok_or_else(|| MediaError::InvalidDtmf(format!("not a DTMF digit: {digit:?}")))?;
        Ok(DtmfGenerator {
            code,
            units_per_sec: clock_rate,
            interval: interval.max(Duration::from_millis(10)),
            start: now,
            next_due: now,
            packets: 0,
            total: duration,
            released: false,
            ends_sent: 0,
            last_duration: 0,
        })
    }

    /// The digit being generated.
    pub fn digit(&self) -> char {
        DIGITS[usize::from(self.code & 0x0f)]
    }

    /// Sets the final duration of a digit started without one.
    pub fn end(&mut self, duration: Duration) {
        if self.total.is_none() {
            // never shorter than what the packets already sent claimed
            self.total = Some(duration.max(self.interval * self.packets));
            self.released = true;
        }
    }

    /// When the next packet is due, or `None` once the three end packets went out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.ends_sent < END_PACKETS).then_some(self.next_due)
    }

    /// Whether every packet went out.
    pub fn is_finished(&self) -> bool {
        self.ends_sent >= END_PACKETS
    }

    fn units(&self, d: Duration) -> u16 {
        (d.as_micros() as u64 * u64::from(self.units_per_sec) / 1_000_000).min(MAX_UNITS) as u16
    }

    /// The packet due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<GeneratedEvent> {
        if self.is_finished() || now < self.next_due {
            return None;
        }
        let first = self.packets == 0;
        self.packets += 1;
        // the duration covered once this packet's interval has played out
        let covered = self.interval * self.packets;
        let (end, duration) = match self.total {
            Some(total) if covered >= total || self.released || self.ends_sent > 0 => {
                self.ends_sent += 1;
                (true, self.units(total.max(self.interval)))
            }
            _ => (false, self.units(covered)),
        };
        self.next_due += self.interval;
        self.last_duration = duration;
        let payload = TelephoneEvent { event: self.code, end, volume: 10, duration }.to_bytes();
        Some(GeneratedEvent { marker: first, payload, first })
    }

    /// The duration (timestamp units) carried by the latest packet.
    pub fn last_duration(&self) -> u16 {
        self.last_duration
    }

    /// When the event started.
    pub fn started(&self) -> Instant {
        self.start
    }
}

/// Reads a SIP INFO body into a digit and its duration, if the body gives one.
///
/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`, duration in ms) and
/// `application/dtmf` (`5`) are understood; the signal may be a digit, `*`, `#`, `A`–`D`, or the
/// event code (`10` for `*`, `11` for `#`). Other content types are an error.
pub fn parse_sip_info(content_type: &str, body: &[u8]) -> Result<(char, Option<Duration>)> {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|_| MediaError::InvalidDtmf("INFO body is not UTF-8".into()))?;
    let signal_of = |s: &str| -> Result<char> {
        let s = s.trim();
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if event_for_digit(c).is_some() => Ok(c.to_ascii_uppercase()),
            _ => s.parse::<u8>().ok().and_then(digit_for_event).ok_or_else(|| MediaError::InvalidDtmf(format!("not a DTMF signal: {s:?}"))),
        }
    };
    match mime.as_str() {
        "application/dtmf-relay" => {
            let mut signal = None;
            let mut duration = None;
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else { continue };
                match k.trim().to_ascii_lowercase().as_str() {
                    "signal" => signal = Some(signal_of(v)?),
                    "duration" => {
                        let ms: u64 = v.trim().parse().map_err(|_| MediaError::InvalidDtmf(format!("bad Duration: {:?}", v.trim())))?;
                        duration = Some(Duration::from_millis(ms.min(60_000)));
                    }
                    _ => {}
                }
            }
            let signal = signal.ok_or_else(|| MediaError::InvalidDtmf("dtmf-relay body without Signal".into()))?;
            Ok((signal, duration))
        }
        "application/dtmf" => Ok((signal_of(text)?, None)),
        other => Err(MediaError::InvalidDtmf(format!("unsupported INFO content type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(code: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent { event: code, end, volume: 10, duration }.to_bytes()
    }

    #[test]
    fn digit_mapping() {
        assert_eq!(digit_for_event(10), Some('*'));
        assert_eq!(digit_for_event(11), Some('#'));
        assert_eq!(digit_for_event(16), None);
        assert_eq!(event_for_digit('d'), Some(15));
        assert_eq!(event_for_digit('x'), None);
    }

    #[test]
    fn a_typical_event_collapses_to_one_digit() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        // start, continuations (with a duplicate), three end packets, then a late duplicate
        let seq = [(false, 160), (false, 320), (false, 320), (false, 480), (false, 640), (true, 800), (true, 800), (true, 800), (false, 640)];
        for (i, (end, dur)) in seq.iter().enumerate() {
            rx.on_packet(16000, &pkt(5, *end, *dur), 8000, t0 + Duration::from_millis(20 * i as u64), &mut out).unwrap();
        }
        assert_eq!(out, vec![DtmfUpdate::Started('5'), DtmfUpdate::Ended { digit: '5', duration: Duration::from_millis(100) }]);
        assert!(!rx.in_event());
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        for ts in [1000u32, 3000] {
            for (end, d) in [(false, 160), (true, 400), (true, 400), (true, 400)] {
                rx.on_packet(ts, &pkt(1, end, d), 8000, t0, &mut out).unwrap();
            }
        }
        let ends = out.iter().filter(|u| matches!(u, DtmfUpdate::Ended { digit: '1', .. })).count();
        assert_eq!(ends, 2);
    }

    #[test]
    fn lost_end_packets_end_the_event_on_the_next_one_or_on_timeout() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        rx.on_packet(100, &pkt(2, false, 160), 8000, t0, &mut out).unwrap();
        rx.on_packet(100, &pkt(2, false, 480), 8000, t0, &mut out).unwrap();
        rx.on_packet(900, &pkt(3, false, 160), 8000, t0, &mut out).unwrap();
        assert_eq!(out[1], DtmfUpdate::Ended { digit: '2', duration: Duration::from_millis(60) });
        assert_eq!(out[2], DtmfUpdate::Started('3'));
        out.clear();
        rx.handle_timeout(t0 + Duration::from_millis(100), &mut out);
        assert!(out.is_empty());
        let due = rx.poll_timeout().unwrap();
        rx.handle_timeout(due, &mut out);
        assert_eq!(out, vec![DtmfUpdate::Ended { digit: '3', duration: Duration::from_millis(20) }]);
    }

    #[test]
    fn only_end_packets_seen_still_give_a_digit() {
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            rx.on_packet(7, &pkt(11, true, 1600), 8000, t0, &mut out).unwrap();
        }
        assert_eq!(out, vec![DtmfUpdate::Started('#'), DtmfUpdate::Ended { digit: '#', duration: Duration::from_millis(200) }]);
        assert!(rx.on_packet(7, &[1, 2], 8000, t0, &mut out).is_err());
        // event 16 (flash) is ignored, not an error
        out.clear();
        rx.on_packet(9, &pkt(16, true, 100), 8000, t0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn wideband_clock_durations() {
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        rx.on_packet(7, &pkt(4, true, 4800), 48000, Instant::now(), &mut out).unwrap();
        assert_eq!(out[1], DtmfUpdate::Ended { digit: '4', duration: Duration::from_millis(100) });
    }

    #[test]
    fn generator_known_duration() {
        let t0 = Instant::now();
        let mut g = DtmfGenerator::new('7', Some(Duration::from_millis(100)), 8000, Duration::from_millis(20), t0).unwrap();
        let mut pkts = Vec::new();
        let mut now = t0;
        while let Some(due) = g.poll_timeout() {
            now = now.max(due);
            if let Some(p) = g.poll(now) {
                pkts.push((now - t0, p));
            }
        }
        assert!(g.is_finished());
        assert_eq!(pkts.len(), 5 + 2, "4 continuation + first end at 100 ms + 2 more ends");
        assert!(pkts[0].1.marker && pkts[0].1.first);
        assert!(pkts[1..].iter().all(|(_, p)| !p.marker && !p.first));
        let evs: Vec<TelephoneEvent> = pkts.iter().map(|(_, p)| TelephoneEvent::parse(&p.payload).unwrap()).collect();
        assert_eq!(evs.iter().map(|e| e.duration).collect::<Vec<_>>(), vec![160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(evs.iter().all(|e| e.event == 7));
        assert_eq!(pkts[1].0, Duration::from_millis(20));
        // the receiver reads the generated stream back as one digit of 100 ms
        let mut rx = DtmfReceiver::new();
        let mut out = Vec::new();
        for (_, p) in &pkts {
            rx.on_packet(4242, &p.payload, 8000, t0, &mut out).unwrap();
        }
        assert_eq!(out, vec![DtmfUpdate::Started('7'), DtmfUpdate::Ended { digit: '7', duration: Duration::from_millis(100) }]);
    }

    #[test]
    fn generator_live_end() {
        let t0 = Instant::now();
        let mut g = DtmfGenerator::new('*', None, 8000, Duration::from_millis(20), t0).unwrap();
        for i in 0..10u32 {
            let p = g.poll(t0 + Duration::from_millis(20) * i).unwrap();
            assert!(!TelephoneEvent::parse(&p.payload).unwrap().end);
        }
        g.end(Duration::from_millis(230));
        let mut ends = 0;
        for i in 10..20u32 {
            if let Some(p) = g.poll(t0 + Duration::from_millis(20) * i) {
                let e = TelephoneEvent::parse(&p.payload).unwrap();
                assert!(e.end);
                assert_eq!(e.duration, 1840);
                ends += 1;
            }
        }
        assert_eq!(ends, 3);
        assert!(DtmfGenerator::new('x', None, 8000, Duration::from_millis(20), t0).is_err());
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(parse_sip_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap(), ('5', Some(Duration::from_millis(160))));
        assert_eq!(parse_sip_info("Application/DTMF-Relay; charset=x", b"signal= #\nduration = 250").unwrap(), ('#', Some(Duration::from_millis(250))));
        assert_eq!(parse_sip_info("application/dtmf-relay", b"Signal=10\r\n").unwrap(), ('*', None));
        assert_eq!(parse_sip_info("application/dtmf", b"5").unwrap(), ('5', None));
        assert_eq!(parse_sip_info("application/dtmf", b" 11\r\n").unwrap(), ('#', None));
        assert_eq!(parse_sip_info("application/dtmf", b"a").unwrap(), ('A', None));
        assert!(parse_sip_info("application/dtmf-relay", b"Duration=160").is_err());
        assert!(parse_sip_info("application/dtmf-relay", b"Signal=X").is_err());
        assert!(parse_sip_info("application/dtmf-relay", b"Signal=1\nDuration=abc").is_err());
        assert!(parse_sip_info("text/plain", b"5").is_err());
        assert!(parse_sip_info("application/dtmf", &[0xff, 0xfe]).is_err());
        assert!(parse_sip_info("application/dtmf", b"99").is_err());
    }
}
