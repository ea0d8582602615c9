//! The one model every parser produces: tests with a status, a reason, times,
//! attributes and iterations of perf values, as Autotest's TKO keeps them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Autotest's statuses, worst first: a status earlier in the list overrides a later
/// one when both are reported for the same test (an ERROR during a test overrides
/// earlier GOOD lines; a WARN does not override a FAIL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "TEST_NA")]
    TestNa,
    #[serde(rename = "ABORT")]
    Abort,
    #[serde(rename = "ERROR")]
    Error,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "GOOD")]
    Good,
    #[serde(rename = "BUG")]
    Bug,
    #[serde(rename = "ALERT")]
    Alert,
    #[serde(rename = "RUNNING")]
    Running,
    #[serde(rename = "NOSTATUS")]
    NoStatus,
}

impl Status {
    /// Every status, worst first.
    pub const ALL: [Status; 10] = [
        Status::TestNa,
        Status::Abort,
        Status::Error,
        Status::Fail,
        Status::Warn,
        Status::Good,
        Status::Bug,
        Status::Alert,
        Status::Running,
        Status::NoStatus,
    ];

    /// The name Autotest writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::TestNa => "TEST_NA",
            Status::Abort => "ABORT",
            Status::Error => "ERROR",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::Good => "GOOD",
            Status::Bug => "BUG",
            Status::Alert => "ALERT",
            Status::Running => "RUNNING",
            Status::NoStatus => "NOSTATUS",
        }
    }

    /// The status Autotest writes as `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether `self` is worse than or as bad as `other`.
    pub fn at_least_as_bad_as(self, other: Status) -> bool {
        self <= other
    }

    /// A test's final status: a test never stays RUNNING or NOSTATUS once its log
    /// has been read to the end (it ends as ABORT).
    pub fn finished(self) -> Status {
        match self {
            Status::Running | Status::NoStatus => Status::Abort,
            other => other,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One iteration of a test: its attributes and its perf values (`results/keyval`,
/// iterations separated by blank lines).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// 1 for the first.
    pub index: u32,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub perf: BTreeMap<String, f64>,
}

/// One test as a parser found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// The test's name (Autotest's testname; avocado's test id; JUnit's
    /// `classname.name`).
    pub name: String,
    /// Its directory under the entry's results directory, when it has one.
    #[serde(default)]
    pub subdir: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub reason: Option<String>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub started: Option<i64>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub finished: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub iterations: Vec<Iteration>,
}

impl TestResult {
    /// A test with only a name and a status.
    pub fn new(name: impl Into<String>, status: Status) -> Self {
        Self {
            name: name.into(),
            subdir: None,
            status,
            reason: None,
            started: None,
            finished: None,
            attributes: BTreeMap::new(),
            iterations: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_worst_first_as_autotest_does() {
        assert!(Status::Error.at_least_as_bad_as(Status::Good));
        assert!(!Status::Warn.at_least_as_bad_as(Status::Fail));
        assert!(Status::TestNa.at_least_as_bad_as(Status::Abort));
        assert!(Status::Fail.at_least_as_bad_as(Status::Fail));
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("BAD"), None);
    }

    #[test]
    fn a_status_serializes_as_autotests_name() {
        assert_eq!(
            serde_json::to_string(&Status::TestNa).unwrap(),
            "\"TEST_NA\""
        );
        assert_eq!(Status::Running.finished(), Status::Abort);
        assert_eq!(Status::Warn.finished(), Status::Warn);
    }
}
