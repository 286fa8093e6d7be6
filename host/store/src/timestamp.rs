//! `Timestamp`: a UTC instant stored as fixed-width text so it sorts and compares as a string.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

const DB_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A UTC instant with millisecond precision.
///
/// Stored as `YYYY-MM-DDTHH:MM:SS.mmmZ` (fixed width, so string order is time order);
/// serialised as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = DateTime))]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time (the store reads the clock; callers with their own clock use `from`).
    pub fn now() -> Self {
        Self::from(OffsetDateTime::now_utc())
    }

    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok().map(Self)
    }

    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// Parses RFC 3339 (`2026-01-01T10:00:00Z`, offsets allowed) or a plain date
    /// (`2026-01-01`, taken as midnight UTC).
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Some(Self::from(t));
        }
        let date = time::Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
        Some(Self::from(date.midnight().assume_utc()))
    }

    /// Whole seconds from `earlier` to `self` (0 when `earlier` is later).
    pub fn seconds_since(&self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0).whole_seconds().max(0)
    }

    pub fn db_string(&self) -> String {
        // Formatting a UTC OffsetDateTime with this description cannot fail for years 0..=9999;
        // outside that range fall back to RFC 3339.
        self.0.format(DB_FORMAT).unwrap_or_else(|_| self.0.to_string())
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        let t = t.to_offset(UtcOffset::UTC);
        // truncate to milliseconds so a stored value reads back equal
        let nanos = t.nanosecond();
        Self(t - Duration::nanoseconds(i64::from(nanos % 1_000_000)))
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp::from(self.0 + d)
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp::from(self.0 - d)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 date-time"))
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.db_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(value)?;
        if let Ok(t) = time::PrimitiveDateTime::parse(s, DB_FORMAT) {
            return Ok(Self(t.assume_utc()));
        }
        Timestamp::parse(s).ok_or_else(|| format!("not a timestamp: {s:?}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_form_is_fixed_width_and_sorts() {
        let a = Timestamp::parse("2026-01-01T09:00:00Z").unwrap();
        let b = Timestamp::parse("2026-01-01T10:00:00.5+01:00").unwrap();
        assert_eq!(a.db_string(), "2026-01-01T09:00:00.000Z");
        assert_eq!(b.db_string(), "2026-01-01T09:00:00.500Z");
        assert!(a.db_string() < b.db_string());
        assert_eq!(Timestamp::parse("2026-03-04").unwrap().db_string(), "2026-03-04T00:00:00.000Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
