//! An attempt's parsed tests on the wire: each test cut to bounded sizes, and the
//! tests split into `tests` events that each stay far below the message limit. The
//! drone bounds what it sends; the scheduler bounds again what it stores, since a
//! drone's word is checked, not trusted.

use crate::protocol::StatusEvent;
use tko::TestResult;

/// The largest part, encoded (several parts may share one report).
pub const MAX_PART_BYTES: usize = 256 * 1024;
/// Longest test name and subdir.
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest reason or attribute value.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Longest attribute or perf key.
pub const MAX_KEY_BYTES: usize = 255;
/// Most attributes of a test, and most keys of one iteration.
pub const MAX_KEYS: usize = 200;
/// Most iterations of a test.
pub const MAX_ITERATIONS: usize = 100;
/// Most parts of one attempt (with `MAX_PART_BYTES`, 250 MiB: far past any sane run;
/// what would follow is dropped and counted).
pub const MAX_PARTS: u32 = 1000;

/// `text` cut to at most `max` bytes at a character boundary, marked when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    const MARK: &str = "… [cut]";
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

/// Cuts every field of `test` to its bound; keys past the bounds are dropped.
pub fn bound(test: &mut TestResult) {
    test.name = cut(&test.name, MAX_NAME_BYTES);
    if let Some(subdir) = &mut test.subdir {
        *subdir = cut(subdir, MAX_NAME_BYTES);
    }
    if let Some(reason) = &mut test.reason {
        *reason = cut(reason, MAX_TEXT_BYTES);
    }
    test.attributes = std::mem::take(&mut test.attributes)
        .into_iter()
        .filter(|(key, _)| key.len() <= MAX_KEY_BYTES)
        .take(MAX_KEYS)
        .map(|(key, value)| (key, cut(&value, MAX_TEXT_BYTES)))
        .collect();
    test.iterations.truncate(MAX_ITERATIONS);
    for iteration in &mut test.iterations {
        iteration.attributes = std::mem::take(&mut iteration.attributes)
            .into_iter()
            .filter(|(key, _)| key.len() <= MAX_KEY_BYTES)
            .take(MAX_KEYS)
            .map(|(key, value)| (key, cut(&value, MAX_TEXT_BYTES)))
            .collect();
        iteration.perf = std::mem::take(&mut iteration.perf)
            .into_iter()
            .filter(|(key, value)| key.len() <= MAX_KEY_BYTES && value.is_finite())
            .take(MAX_KEYS)
            .collect();
    }
}

/// The `tests` events for an attempt's parsed results, in order; at least one, so
/// that a parse error or a run with no tests is told too. `dropped` and
/// `parse_error` ride on the last part.
pub fn parts(
    entry_id: i64,
    attempt: i32,
    tests: Vec<TestResult>,
    mut dropped: u64,
    parse_error: Option<String>,
) -> Vec<StatusEvent> {
    let mut chunks: Vec<Vec<TestResult>> = vec![Vec::new()];
    let mut size = 0usize;
    for mut test in tests {
        bound(&mut test);
        let len = serde_json::to_vec(&test)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        let last = chunks.last_mut().expect("one chunk");
        if !last.is_empty() && size + len > MAX_PART_BYTES {
            if chunks.len() as u32 >= MAX_PARTS {
                dropped += 1;
                continue;
            }
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        chunks.last_mut().expect("one chunk").push(test);
    }
    let parts = chunks.len() as u32;
    let last = parts - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, tests)| {
            let part = i as u32;
            StatusEvent::Tests {
                entry_id,
                attempt,
                part,
                parts,
                tests,
                dropped: if part == last { dropped } else { 0 },
                parse_error: if part == last {
                    parse_error.clone()
                } else {
                    None
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tko::{Iteration, Status};

    #[test]
    fn long_fields_are_cut_and_marked_at_a_character_boundary() {
        let mut test = TestResult::new("é".repeat(1000), Status::Fail);
        test.reason = Some("x".repeat(10_000));
        test.attributes.insert("k".repeat(300), "dropped".into());
        test.attributes.insert("kept".into(), "v".into());
        test.iterations = (0..150)
            .map(|i| Iteration {
                index: i,
                perf: [("nan".to_string(), f64::NAN), ("ok".to_string(), 1.0)].into(),
                ..Iteration::default()
            })
            .collect();
        bound(&mut test);
        assert!(test.name.len() <= MAX_NAME_BYTES && test.name.ends_with("[cut]"));
        assert!(test.reason.as_ref().unwrap().len() <= MAX_TEXT_BYTES);
        assert_eq!(test.attributes.len(), 1);
        assert_eq!(test.iterations.len(), MAX_ITERATIONS);
        assert_eq!(test.iterations[0].perf.len(), 1);
    }

    #[test]
    fn many_tests_split_into_parts_each_below_the_limit() {
        let tests: Vec<TestResult> = (0..20_000)
            .map(|i| {
                let mut t = TestResult::new(format!("test-{i}"), Status::Good);
                t.reason = Some("r".repeat(100));
                t
            })
            .collect();
        let parts = parts(7, 2, tests, 5, Some("cut".into()));
        assert!(parts.len() > 1);
        let mut total = 0;
        for (i, event) in parts.iter().enumerate() {
            let StatusEvent::Tests {
                part,
                parts: n,
                tests,
                dropped,
                parse_error,
                ..
            } = event
            else {
                panic!("not a tests event");
            };
            assert_eq!(*part as usize, i);
            assert_eq!(*n as usize, parts.len());
            assert!(serde_json::to_vec(event).unwrap().len() <= MAX_PART_BYTES + 4096);
            let last = i + 1 == parts.len();
            assert_eq!(
                (*dropped, parse_error.is_some()),
                if last { (5, true) } else { (0, false) }
            );
            total += tests.len();
        }
        assert_eq!(total, 20_000);
    }

    #[test]
    fn no_tests_is_still_one_part() {
        let parts = parts(
            1,
            1,
            Vec::new(),
            0,
            Some("status.log: not a regular file".into()),
        );
        assert_eq!(parts.len(), 1);
    }
}
