//! How the pages write values: times, durations, ages, status classes, and the
//! filters read from a page's query string.

use crate::pages::PageError;
use axum::http::StatusCode;

/// A UTC time as `2026-12-07 09:30:05` (seconds are enough on a page).
pub fn when(micros: i64) -> String {
    let text = common::time::format_micros(micros);
    text.get(..19)
        .map(|t| t.replacen('T', " ", 1))
        .unwrap_or(text)
}

/// An optional time; empty when there is none.
pub fn when_opt(micros: Option<i64>) -> String {
    micros.map(when).unwrap_or_default()
}

/// A duration in microseconds as people read it: `850 ms`, `12 s`, `3 min 05 s`,
/// `2 h 01 min`, `3 d 04 h`.
pub fn duration(micros: i64) -> String {
    let micros = micros.max(0);
    if micros < 1_000_000 {
        return format!("{} ms", micros / 1000);
    }
    let secs = micros / 1_000_000;
    let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 60 {
        format!("{secs} s")
    } else if mins < 60 {
        format!("{mins} min {:02} s", secs % 60)
    } else if hours < 24 {
        format!("{hours} h {:02} min", mins % 60)
    } else {
        format!("{days} d {:02} h", hours % 24)
    }
}

/// How long from `start` to `end` (or to now while it runs); empty without a start.
pub fn span(start: Option<i64>, end: Option<i64>) -> String {
    match start {
        Some(start) => duration(end.unwrap_or_else(common::time::now_micros) - start),
        None => String::new(),
    }
}

/// How long ago `micros` was, e.g. `3 s ago`; `never` for none.
pub fn age(micros: Option<i64>, now: i64) -> String {
    match micros {
        Some(at) => format!("{} ago", duration(now - at)),
        None => "never".to_string(),
    }
}

/// The CSS class of a status: `status-` and the status in lower case, spaces as `-`
/// (`Repair Failed` is `status-repair-failed`).
pub fn status_class(status: &str) -> String {
    let slug: String = status
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("status-{slug}")
}

/// A free space in bytes, in the largest binary unit that keeps a whole number
/// before the point (`512 MiB`, `3.2 GiB`); `unknown` when not known.
pub fn free_space(bytes: Option<u64>) -> String {
    let Some(bytes) = bytes else {
        return "unknown".to_string();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A query string value: None when absent or blank; trimmed; refused (400) when
/// longer than 1024 bytes or holding a control character.
pub fn field(name: &str, value: &Option<String>) -> Result<Option<String>, PageError> {
    let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            format!("{name}: expected at most 1024 bytes of text"),
        ));
    }
    Ok(Some(value.to_string()))
}

/// A name filter as a LIKE pattern: a glob (`*`, `?`) as given, other text anywhere
/// in the name.
pub fn name_pattern(text: &str) -> String {
    crate::db::job_scan::name_pattern(text)
}

/// A number from the query string (a cursor, an id), or 400 naming the field.
pub fn number(name: &str, value: &Option<String>) -> Result<Option<i64>, PageError> {
    match field(name, value)? {
        None => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                format!("{name}: expected a number, got {text:?}"),
            )
        }),
    }
}

/// A date or time from the query string (`2026-12-07` or RFC 3339), or 400.
pub fn date(name: &str, value: &Option<String>) -> Result<Option<i64>, PageError> {
    match field(name, value)? {
        None => Ok(None),
        Some(text) => common::time::parse_since(&text).map(Some).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                format!("{name}: expected a date (2026-12-07) or an RFC 3339 time, got {text:?}"),
            )
        }),
    }
}

/// Percent-encodes a query string value.
pub fn query_value(value: &str) -> String {
    common::percent_encode(value.as_bytes())
}

/// The `/results/...` link of a path under the results directory, each part encoded.
pub fn results_link(path: &str) -> String {
    let encoded: Vec<String> = path
        .split('/')
        .map(|part| common::percent_encode(part.as_bytes()))
        .collect();
    format!("/results/{}", encoded.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_sensible_unit() {
        assert_eq!(duration(850_000), "850 ms");
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(duration(12_000_000), "12 s");
        assert_eq!(duration(185_000_000), "3 min 05 s");
        assert_eq!(duration(7_260_000_000), "2 h 01 min");
        assert_eq!(duration(273_600_000_000), "3 d 04 h");
        assert_eq!(span(None, Some(5)), "");
        assert_eq!(span(Some(1_000_000), Some(3_000_000)), "2 s");
        assert_eq!(age(None, 0), "never");
        assert_eq!(age(Some(0), 4_000_000), "4 s ago");
    }

    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(when(1_765_000_000_123_456), "2025-12-06 05:46:40");
        assert_eq!(when_opt(None), "");
    }

    #[test]
    fn free_space_reads_in_binary_units() {
        assert_eq!(free_space(None), "unknown");
        assert_eq!(free_space(Some(0)), "0 B");
        assert_eq!(free_space(Some(512 * 1024 * 1024)), "512 MiB");
        assert_eq!(
            free_space(Some(3 * 1024 * 1024 * 1024 + 200 * 1024 * 1024)),
            "3.2 GiB"
        );
    }

    #[test]
    fn status_classes_are_plain_words() {
        assert_eq!(status_class("Running"), "status-running");
        assert_eq!(status_class("Repair Failed"), "status-repair-failed");
        assert_eq!(status_class("TEST_NA"), "status-test-na");
        assert_eq!(status_class("\"><script>"), "status----script-");
    }

    #[test]
    fn filters_are_read_from_the_query_string() {
        assert_eq!(field("owner", &None).unwrap(), None);
        assert_eq!(field("owner", &Some("  ".into())).unwrap(), None);
        assert_eq!(
            field("owner", &Some(" al ".into())).unwrap(),
            Some("al".into())
        );
        let refused = field("name", &Some("a\u{7}b".into())).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(number("before", &Some("42".into())).unwrap(), Some(42));
        assert_eq!(
            number("before", &Some("4x".into())).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            date("since", &Some("2026-12-07".into())).unwrap(),
            common::time::parse_since("2026-12-07")
        );
        assert!(date("since", &Some("yesterday".into())).is_err());
        assert_eq!(name_pattern("nightly"), "%nightly%");
        assert_eq!(name_pattern("night*"), "night%");
        assert_eq!(name_pattern("50%"), "%50\\%%");
    }

    #[test]
    fn results_links_encode_each_part() {
        assert_eq!(results_link("3-alice/host1/"), "/results/3-alice/host1/");
        assert_eq!(
            results_link("3-alice/a b/x#y"),
            "/results/3-alice/a%20b/x%23y"
        );
    }
}
