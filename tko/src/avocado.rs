//! Avocado's `results.json`: the job's tests with their statuses, reasons and times.

use crate::model::{Status, TestResult};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Job {
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct Test {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    status: String,
    #[serde(default)]
    fail_reason: Option<serde_json::Value>,
    #[serde(default)]
    actual_time_start: Option<f64>,
    #[serde(default)]
    actual_time_end: Option<f64>,
    #[serde(default)]
    time_elapsed: Option<f64>,
    #[serde(default)]
    logdir: Option<String>,
    #[serde(default)]
    whiteboard: Option<String>,
    #[serde(default)]
    tags: Option<serde_json::Value>,
}

/// Avocado's status in Autotest's words: PASS is GOOD, SKIP and CANCEL are TEST_NA
/// (the test did not apply), INTERRUPTED is ABORT.
pub fn status(avocado: &str) -> Option<Status> {
    Some(match avocado {
        "PASS" => Status::Good,
        "FAIL" => Status::Fail,
        "ERROR" => Status::Error,
        "WARN" => Status::Warn,
        "SKIP" | "CANCEL" => Status::TestNa,
        "INTERRUPTED" => Status::Abort,
        _ => return None,
    })
}

/// The tests of a `results.json`. `subdir_of` turns a test's `logdir` (an absolute
/// path on the machine that ran it) into a path under the entry's results directory,
/// when it is under it.
pub fn parse(
    text: &str,
    subdir_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<TestResult>, String> {
    let job: Job =
        serde_json::from_str(text).map_err(|e| format!("not avocado's results.json: {e}"))?;
    let mut tests = Vec::with_capacity(job.tests.len());
    for test in job.tests {
        let name = test
            .name
            .or(test.id.clone())
            .ok_or("a test with neither name nor id")?;
        let status = status(&test.status)
            .ok_or_else(|| format!("test {name}: unknown avocado status {:?}", test.status))?;
        let mut result = TestResult::new(name, status);
        result.reason = match test.fail_reason {
            Some(serde_json::Value::String(reason))
                if reason != "<unknown>" && status != Status::Good =>
            {
                Some(reason)
            }
            Some(serde_json::Value::Null) | None | Some(serde_json::Value::String(_)) => None,
            Some(other) => Some(other.to_string()),
        };
        result.started = test.actual_time_start.and_then(seconds);
        result.finished = test.actual_time_end.and_then(seconds);
        result.subdir = test.logdir.as_deref().and_then(&subdir_of);
        let mut attributes = BTreeMap::new();
        if let Some(id) = test.id {
            attributes.insert("avocado_id".to_string(), id);
        }
        if let Some(elapsed) = test.time_elapsed {
            attributes.insert("time_elapsed".to_string(), format!("{elapsed:.6}"));
        }
        if let Some(whiteboard) = test.whiteboard.filter(|w| !w.is_empty()) {
            attributes.insert("whiteboard".to_string(), whiteboard);
        }
        if let Some(tags) = test
            .tags
            .filter(|t| t.as_object().is_some_and(|o| !o.is_empty()))
        {
            attributes.insert("tags".to_string(), tags.to_string());
        }
        result.attributes = attributes;
        tests.push(result);
    }
    Ok(tests)
}

/// Whole seconds of an epoch time, when it is one.
fn seconds(time: f64) -> Option<i64> {
    (0.0..1e12).contains(&time).then_some(time as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: &str = r#"{
        "cancel": 1, "errors": 0, "failures": 1, "pass": 1, "skip": 0, "total": 3,
        "tests": [
            {"actual_time_end": 1796635141.37, "actual_time_start": 1796635141.06,
             "fail_reason": "<unknown>", "id": "1-t.py:Demo.test_pass",
             "logdir": "/r/job-1/test-results/1-t.py_Demo.test_pass",
             "name": "t.py:Demo.test_pass", "status": "PASS", "tags": {},
             "time_elapsed": 0.0835, "whiteboard": "w"},
            {"fail_reason": "expected failure\nsecond line", "id": "2-t.py:Demo.test_fail",
             "logdir": "/elsewhere/2", "name": "t.py:Demo.test_fail", "status": "FAIL"},
            {"fail_reason": "not here", "id": "3-t.py:Demo.test_skip",
             "name": "t.py:Demo.test_skip", "status": "CANCEL", "tags": {"fast": null}}
        ]
    }"#;

    fn under_r(logdir: &str) -> Option<String> {
        logdir.strip_prefix("/r/").map(str::to_string)
    }

    #[test]
    fn each_test_keeps_its_status_reason_times_and_subdir() {
        let tests = parse(RESULTS, under_r).expect("parses");
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[0].name, "t.py:Demo.test_pass");
        assert_eq!(tests[0].status, Status::Good);
        assert_eq!(tests[0].reason, None);
        assert_eq!(
            (tests[0].started, tests[0].finished),
            (Some(1796635141), Some(1796635141))
        );
        assert_eq!(
            tests[0].subdir.as_deref(),
            Some("job-1/test-results/1-t.py_Demo.test_pass")
        );
        assert_eq!(tests[0].attributes["whiteboard"], "w");
        assert_eq!(tests[1].status, Status::Fail);
        assert_eq!(
            tests[1].reason.as_deref(),
            Some("expected failure\nsecond line")
        );
        assert_eq!(tests[1].subdir, None);
        assert_eq!(tests[2].status, Status::TestNa);
        assert_eq!(tests[2].attributes["tags"], r#"{"fast":null}"#);
    }

    #[test]
    fn what_is_not_avocados_results_is_an_error() {
        assert!(parse("{}", under_r).is_err());
        assert!(parse("[1,2", under_r).is_err());
        let unknown = r#"{"tests":[{"name":"x","status":"MAYBE"}]}"#;
        assert!(parse(unknown, under_r).unwrap_err().contains("MAYBE"));
    }

    #[test]
    fn every_avocado_status_has_an_autotest_name() {
        for (avocado, autotest) in [
            ("PASS", "GOOD"),
            ("FAIL", "FAIL"),
            ("ERROR", "ERROR"),
            ("WARN", "WARN"),
            ("SKIP", "TEST_NA"),
            ("CANCEL", "TEST_NA"),
            ("INTERRUPTED", "ABORT"),
        ] {
            assert_eq!(status(avocado).map(Status::as_str), Some(autotest));
        }
    }
}
