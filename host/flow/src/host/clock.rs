//! `flowpbx:node/clock`: the call's time in an IANA zone (the host's tz database).

use super::HostState;
use crate::bindings::clock::{Host, LocalTime, Weekday};

/// A zone the host's tz database does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {zone:?}: {source}")]
pub(crate) struct UnknownZone {
    zone: String,
    #[source]
    source: jiff::Error,
}

/// The local time in `zone` at `at`.
pub(crate) fn local_time(at: jiff::Timestamp, zone: &str) -> Result<LocalTime, UnknownZone> {
    let tz = jiff::tz::TimeZone::get(zone).map_err(|source| UnknownZone { zone: zone.to_string(), source })?;
    let z = at.to_zoned(tz);
    Ok(LocalTime {
        year: i32::from(z.year()),
        month: z.month() as u8,
        day: z.day() as u8,
        hour: z.hour() as u8,
        minute: z.minute() as u8,
        second: z.second() as u8,
        weekday: match z.weekday() {
            jiff::civil::Weekday::Monday => Weekday::Monday,
            jiff::civil::Weekday::Tuesday => Weekday::Tuesday,
            jiff::civil::Weekday::Wednesday => Weekday::Wednesday,
            jiff::civil::Weekday::Thursday => Weekday::Thursday,
            jiff::civil::Weekday::Friday => Weekday::Friday,
            jiff::civil::Weekday::Saturday => Weekday::Saturday,
            jiff::civil::Weekday::Sunday => Weekday::Sunday,
        },
        utc_offset_s: z.offset().seconds(),
        unix_ms: at.as_millisecond(),
    })
}

impl Host for HostState {
    async fn now(&mut self, zone: String) -> Result<LocalTime, String> {
        // the WIT's `result<local-time, string>`: the guest gets the text
        local_time(self.call_now(), &zone).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn christmas_morning_in_sydney_is_a_friday_in_summer_time() {
        let at: jiff::Timestamp = "2026-12-24T22:00:00Z".parse().unwrap();
        let t = local_time(at, "Australia/Sydney").unwrap();
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute), (2026, 12, 25, 9, 0));
        assert_eq!(t.weekday, Weekday::Friday);
        assert_eq!(t.utc_offset_s, 11 * 3600);
        assert!(local_time(at, "Mars/Olympus_Mons").is_err());
        assert_eq!(local_time(at, "UTC").unwrap().hour, 22);
    }
}
