//! JUnit XML (`testsuites` / `testsuite` / `testcase`, with `failure`, `error`,
//! `skipped`): the format pytest, Maven and most harnesses write. A test's
//! `system-out` stays in the file: the test records where it is, not what it says.

use crate::model::{Status, TestResult};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Longest reason kept from a failure's message or text.
const MAX_REASON: usize = 4096;
/// Deepest nesting of elements read.
const MAX_DEPTH: usize = 64;

/// The testcase being read.
struct Case {
    test: TestResult,
    /// Inside `failure` / `error` / `skipped`: its text becomes the reason when the
    /// element had no `message`.
    collecting: bool,
    text: String,
}

fn attribute(element: &BytesStart, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| AsRef::<str>::as_ref(&a.key) == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("… [cut]");
    }
    text
}

/// Seconds since the epoch of an ISO 8601 `timestamp` attribute (`2024-01-02T03:04:05`,
/// optionally with a fraction and a `Z` or offset, taken as UTC when absent).
fn epoch(timestamp: &str) -> Option<i64> {
    let t = timestamp.trim();
    let (date, time) = t.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let (time, offset) = match time.rfind(['+', '-']) {
        Some(i) if i >= 8 => {
            let (hm, sign) = (&time[i + 1..], if &time[i..=i] == "-" { -1 } else { 1 });
            let mut parts = hm.split(':').map(|p| p.parse::<i64>().ok());
            let (oh, om) = (parts.next()??, parts.next().flatten().unwrap_or(0));
            (&time[..i], sign * (oh * 3600 + om * 60))
        }
        _ => (time, 0),
    };
    let mut parts = time.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let min: i64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + s as i64 - offset)
}

/// What reading one file has gathered so far.
struct Gathered<'a> {
    file: &'a str,
    tests: Vec<TestResult>,
    suite_started: Vec<Option<i64>>,
    case: Option<Case>,
    seen_suite: bool,
    max_tests: usize,
    dropped: u64,
}

impl Gathered<'_> {
    /// An element opens (`empty`: and closes at once).
    fn open(&mut self, element: &BytesStart, empty: bool) {
        match AsRef::<str>::as_ref(&element.name()) {
            "testsuites" => self.seen_suite = true,
            "testsuite" => {
                self.seen_suite = true;
                if !empty {
                    let started = attribute(element, "timestamp").as_deref().and_then(epoch);
                    self.suite_started.push(started);
                }
            }
            "testcase" => {
                let case = self.test_case(element);
                if empty {
                    self.keep(case.test);
                } else {
                    self.case = Some(case);
                }
            }
            outcome @ ("failure" | "error" | "skipped") => {
                let Some(case) = self.case.as_mut() else {
                    return;
                };
                let status = match outcome {
                    "failure" => Status::Fail,
                    "error" => Status::Error,
                    _ => Status::TestNa,
                };
                if status < case.test.status {
                    case.test.status = status;
                }
                let message = attribute(element, "message").filter(|m| !m.is_empty());
                if case.test.reason.is_none() {
                    case.test.reason = message.clone().map(cut);
                }
                case.collecting = !empty && message.is_none();
            }
            stream @ ("system-out" | "system-err") => {
                if let Some(case) = self.case.as_mut() {
                    let key = if stream == "system-out" {
                        "system_out"
                    } else {
                        "system_err"
                    };
                    case.test
                        .attributes
                        .insert(key.into(), self.file.to_string());
                }
            }
            _ => {}
        }
    }

    fn test_case(&self, element: &BytesStart) -> Case {
        let name = attribute(element, "name").unwrap_or_default();
        let name = match attribute(element, "classname").filter(|c| !c.is_empty()) {
            Some(class) => format!("{class}.{name}"),
            None => name,
        };
        let mut test = TestResult::new(name, Status::Good);
        test.started = self.suite_started.last().copied().flatten();
        let time = attribute(element, "time").and_then(|t| t.trim().parse::<f64>().ok());
        if let Some(time) = time.filter(|t| t.is_finite() && *t >= 0.0) {
            test.attributes
                .insert("duration_seconds".into(), format!("{time:.3}"));
            test.finished = test.started.map(|s| s + time as i64);
        }
        Case {
            test,
            collecting: false,
            text: String::new(),
        }
    }

    /// Text inside a failure, error or skipped element without a message.
    fn text(&mut self, text: &str) {
        if let Some(case) = self
            .case
            .as_mut()
            .filter(|c| c.collecting && c.text.len() < MAX_REASON)
        {
            case.text.push_str(text);
        }
    }

    fn close(&mut self, name: &str) {
        match name {
            "testsuite" => {
                self.suite_started.pop();
            }
            "testcase" => {
                if let Some(case) = self.case.take() {
                    self.keep(case.test);
                }
            }
            "failure" | "error" | "skipped" => {
                let Some(case) = self.case.as_mut().filter(|c| c.collecting) else {
                    return;
                };
                let text = std::mem::take(&mut case.text);
                let text = text.trim();
                if case.test.reason.is_none() && !text.is_empty() {
                    let first = text.lines().next().unwrap_or(text);
                    case.test.reason = Some(cut(first.to_string()));
                }
                case.collecting = false;
            }
            _ => {}
        }
    }

    fn keep(&mut self, test: TestResult) {
        if self.tests.len() < self.max_tests {
            self.tests.push(test);
        } else {
            self.dropped += 1;
        }
    }
}

/// The tests of one JUnit file; `file` is its path under the results directory,
/// recorded on each test that has `system-out` or `system-err`. Tests past
/// `max_tests` are counted in `dropped`.
pub fn parse(
    text: &str,
    file: &str,
    max_tests: usize,
    dropped: &mut u64,
) -> Result<Vec<TestResult>, String> {
    let mut reader = Reader::from_str(text);
    let mut gathered = Gathered {
        file,
        tests: Vec::new(),
        suite_started: Vec::new(),
        case: None,
        seen_suite: false,
        max_tests,
        dropped: 0,
    };
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "{file}: not well-formed XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Start(_) if depth >= MAX_DEPTH => {
                return Err(format!("{file}: elements nested deeper than {MAX_DEPTH}"));
            }
            Event::Start(element) => {
                depth += 1;
                gathered.open(&element, false);
            }
            Event::Empty(element) => gathered.open(&element, true),
            Event::Text(text) => gathered.text(&text.xml10_content()),
            Event::CData(data) => gathered.text(data.as_ref()),
            Event::GeneralRef(reference) => {
                if let Some(c) = entity(reference.as_ref()) {
                    gathered.text(c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                gathered.close(element.name().as_ref());
            }
            Event::Eof if depth > 0 => {
                return Err(format!("{file}: ends inside an element: cut short"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !gathered.seen_suite {
        return Err(format!("{file}: no testsuite element: not JUnit XML"));
    }
    *dropped += gathered.dropped;
    Ok(gathered.tests)
}

/// The character of a predefined entity or a character reference.
fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let code = name.strip_prefix('#')?;
            let code = match code.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => code.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="0.050" timestamp="2026-12-07T09:00:00.123456+00:00" hostname="h">
<testcase classname="test_demo" name="test_pass" time="0.001" />
<testcase classname="test_demo" name="test_fail" time="2.500"><failure message="assert 1 == 2">def test_fail():
&gt;       assert 1 == 2
E       assert 1 == 2</failure><system-out>printed</system-out></testcase>
<testcase classname="test_demo" name="test_skip" time="0.000"><skipped type="pytest.skip" message="not on this host">test_demo.py:9: not on this host</skipped></testcase>
<testcase classname="test_demo" name="test_error" time="0.000"><error>fixture &lt;db&gt; broke
second line</error></testcase>
</testsuite></testsuites>"#;

    #[test]
    fn pytest_results_map_to_autotest_statuses_with_reasons() {
        let mut dropped = 0;
        let tests = parse(PYTEST, "junit.xml", 100, &mut dropped).expect("parses");
        let summary: Vec<(&str, Status, Option<&str>)> = tests
            .iter()
            .map(|t| (t.name.as_str(), t.status, t.reason.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("test_demo.test_pass", Status::Good, None),
                ("test_demo.test_fail", Status::Fail, Some("assert 1 == 2")),
                (
                    "test_demo.test_skip",
                    Status::TestNa,
                    Some("not on this host")
                ),
                (
                    "test_demo.test_error",
                    Status::Error,
                    Some("fixture <db> broke")
                ),
            ]
        );
        assert_eq!(tests[1].attributes["system_out"], "junit.xml");
        assert!(!tests[1].attributes.values().any(|v| v.contains("printed")));
        assert_eq!(tests[1].started, Some(1_796_634_000));
        assert_eq!(tests[1].finished, Some(1_796_634_002));
        assert_eq!(tests[1].attributes["duration_seconds"], "2.500");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn tests_past_the_budget_are_counted() {
        let mut xml = String::from("<testsuite>");
        for i in 0..30 {
            xml.push_str(&format!("<testcase name=\"t{i}\"/>"));
        }
        xml.push_str("</testsuite>");
        let mut dropped = 0;
        let tests = parse(&xml, "TEST-x.xml", 10, &mut dropped).unwrap();
        assert_eq!((tests.len(), dropped), (10, 20));
    }

    #[test]
    fn broken_or_foreign_xml_is_an_error() {
        let mut dropped = 0;
        assert!(parse(
            "<testsuite><testcase name='a'></testsuite>",
            "a.xml",
            10,
            &mut dropped
        )
        .is_err());
        assert!(parse("<html><body/></html>", "b.xml", 10, &mut dropped)
            .unwrap_err()
            .contains("not JUnit"));
        let deep = "<a>".repeat(100);
        assert!(parse(&deep, "c.xml", 10, &mut dropped)
            .unwrap_err()
            .contains("deeper"));
        let entity_bomb = r#"<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><testsuite><testcase name="x"><failure>&b;</failure></testcase></testsuite>"#;
        let tests = parse(entity_bomb, "d.xml", 10, &mut dropped)
            .expect("custom entities are not expanded");
        assert_eq!(tests[0].status, Status::Fail);
        assert_eq!(tests[0].reason, None);
    }

    #[test]
    fn iso_timestamps_with_and_without_offsets() {
        assert_eq!(epoch("1970-01-01T00:00:00"), Some(0));
        assert_eq!(epoch("2026-12-07T09:00:00.5Z"), Some(1_796_634_000));
        assert_eq!(epoch("2026-12-07T10:00:00+01:00"), Some(1_796_634_000));
        assert_eq!(epoch("2026-12-07 09:00:00"), Some(1_796_634_000));
        assert_eq!(epoch("yesterday"), None);
        assert_eq!(epoch("2026-13-07T09:00:00"), None);
    }
}
