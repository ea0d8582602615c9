//! Tests parsed from what jobs left behind: the bodies of `GET /api/tests`,
//! `GET /api/tests/{id}` and the tests of each entry in `GET /api/jobs/{id}`.

use crate::client::{Client, ClientError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One test of an entry, as `job show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryTest {
    pub id: i64,
    pub name: String,
    pub subdir: Option<String>,
    /// GOOD, WARN, FAIL, ERROR, ABORT, TEST_NA (ALERT from old logs).
    pub status: String,
    pub reason: Option<String>,
    /// RFC 3339, UTC.
    pub started: Option<String>,
    pub finished: Option<String>,
}

/// One test as `GET /api/tests` and `atest test list --json` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestView {
    pub id: i64,
    pub job_id: i64,
    pub entry_id: i64,
    /// The attempt of the entry that ran it.
    pub attempt: i32,
    pub host: Option<String>,
    pub name: String,
    pub subdir: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One iteration of a test: attributes and perf values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationView {
    pub index: i32,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub perf: BTreeMap<String, f64>,
}

/// `GET /api/tests/{id}`: the test, its iterations, and where its results are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestDetail {
    #[serde(flatten)]
    pub test: TestView,
    #[serde(default)]
    pub iterations: Vec<IterationView>,
    /// `/results/<job>-<owner>/<host>/<subdir>/` on the scheduler (it redirects to
    /// wherever the results are); null when the test has no subdir.
    pub results: Option<String>,
}

/// The filters of `GET /api/tests`; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestQuery {
    pub job: Option<i64>,
    pub host: Option<String>,
    pub status: Option<String>,
    /// A glob on the test's name (`*` any text, `?` one character).
    pub name: Option<String>,
    /// Tests started at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    pub since: Option<String>,
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Tests older than this test id (the cursor of earlier versions; `cursor` wins).
    pub before: Option<i64>,
    /// Also the tests of earlier attempts of an entry (retried after an infra failure).
    #[serde(default)]
    pub all_attempts: bool,
}

impl TestQuery {
    /// The query string, percent-encoded.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                pairs.push((key.into(), value));
            }
        };
        add("job", self.job.map(|j| j.to_string()));
        add("host", self.host.clone());
        add("status", self.status.clone());
        add("name", self.name.clone());
        add("since", self.since.clone());
        add("limit", self.limit.map(|l| l.to_string()));
        add("cursor", self.cursor.clone());
        add("before", self.before.map(|b| b.to_string()));
        add(
            "all_attempts",
            self.all_attempts.then(|| "true".to_string()),
        );
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes everything but unreserved characters.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Client {
    /// `GET /api/tests/{id}`.
    pub fn test(&self, id: i64) -> Result<TestDetail, ClientError> {
        self.get(&format!("/api/tests/{id}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_encodes_every_filter_given_and_nothing_else() {
        assert_eq!(TestQuery::default().to_query(), "");
        let query = TestQuery {
            job: Some(3),
            name: Some("net*/a b".into()),
            all_attempts: true,
            ..TestQuery::default()
        };
        assert_eq!(
            query.to_query(),
            "job=3&name=net%2A%2Fa%20b&all_attempts=true"
        );
    }
}
