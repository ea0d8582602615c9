//! Wall-clock timestamps as UTC microseconds since the Unix epoch, the one time format
//! stored in the database and sent on the wire.

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// RFC 3339 in UTC with microseconds: `2026-11-29T03:21:40.123456Z`.
const FORMAT: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Now, in UTC microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Formats UTC microseconds as RFC 3339 (`2026-11-29T03:21:40.123456Z`). Instants
/// outside the years 0000 to 9999 are written as the nearest one inside.
pub fn format_micros(micros: i64) -> String {
    let instant = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or_else(|_| {
            let edge = if micros < 0 {
                PrimitiveDateTime::MIN
            } else {
                PrimitiveDateTime::MAX
            };
            edge.assume_utc()
        });
    instant
        .format(FORMAT)
        .expect("every instant in range has the format's fields")
}

/// Parses what [`format_micros`] writes back into microseconds.
pub fn parse_micros(text: &str) -> Option<i64> {
    let instant = PrimitiveDateTime::parse(text, FORMAT).ok()?.assume_utc();
    i64::try_from(instant.unix_timestamp_nanos() / 1000).ok()
}

/// A time a user gives as a lower bound: RFC 3339 (`2026-12-07T09:00:00Z`, any
/// offset) or a date (`2026-12-07`, its midnight UTC); UTC microseconds.
pub fn parse_since(text: &str) -> Option<i64> {
    let text = text.trim();
    let instant = match OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        Ok(instant) => instant,
        Err(_) => {
            let date = time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()?;
            date.midnight().assume_utc()
        }
    };
    i64::try_from(instant.unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_date() {
        assert_eq!(parse_since("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_since("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_since("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_since("last week"), None);
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_micros(1_795_922_500_123_456),
            "2026-11-29T03:21:40.123456Z"
        );
        assert_eq!(format_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for micros in [0, 1_795_922_500_123_456, 951_782_400_000_001, -1] {
            assert_eq!(parse_micros(&format_micros(micros)), Some(micros));
        }
        assert_eq!(parse_micros("yesterday"), None);
        assert_eq!(parse_micros("2026-11-29T03:21:40.123Z"), None);
        assert_eq!(parse_micros("2026-11-29T03:21:40.123456+01:00"), None);
    }
}
