//! Autotest's status log, versions 1 (`status.log`) and 0 (`status`), read as tests
//! the way Autotest's TKO parser reads them. Which cases of Autotest's own parser
//! tests are covered is listed in docs/results.md.

mod line;
mod v0;
mod v1;

pub use line::{logical_lines, Kind, Line};

use crate::model::{Status, TestResult};
use std::time::Instant;

/// The log's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The older `status` file.
    V0,
    /// `status.log`.
    V1,
}

/// How much one parse may read and produce.
#[derive(Debug, Clone)]
pub struct Limit {
    /// Lines left to read.
    lines_left: u64,
    /// Tests kept; past it they are counted, not kept.
    max_tests: usize,
    /// Read nothing more after this.
    deadline: Option<Instant>,
    /// Tests found past `max_tests`.
    pub dropped: u64,
}

impl Limit {
    /// A budget of `max_lines` lines and `max_tests` kept tests, until `deadline`.
    pub fn new(max_lines: u64, max_tests: usize, deadline: Option<Instant>) -> Self {
        Self {
            lines_left: max_lines,
            max_tests,
            deadline,
            dropped: 0,
        }
    }

    /// Takes one line from the budget; false once it is spent or the time is up.
    pub(crate) fn line(&mut self) -> bool {
        if self.lines_left == 0 {
            return false;
        }
        self.lines_left -= 1;
        // Checking the clock every line would cost more than the line.
        if self.lines_left.is_multiple_of(4096) {
            if let Some(deadline) = self.deadline {
                if Instant::now() >= deadline {
                    self.lines_left = 0;
                    return false;
                }
            }
        }
        true
    }
}

/// What a parse found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Found {
    pub tests: Vec<TestResult>,
    /// The log was longer than the budget allowed (or took too long): what followed
    /// was not read.
    pub truncated: bool,
}

impl Found {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        limit: &mut Limit,
        name: String,
        subdir: Option<String>,
        status: Status,
        reason: Option<String>,
        started: Option<i64>,
        finished: Option<i64>,
        kernel: Option<String>,
    ) {
        if self.tests.len() >= limit.max_tests {
            limit.dropped += 1;
            return;
        }
        let mut test = TestResult::new(name, status.finished());
        test.subdir = subdir;
        test.reason = reason;
        test.started = started;
        test.finished = finished;
        if let Some(kernel) = kernel {
            test.attributes.insert("kernel".into(), kernel);
        }
        self.tests.push(test);
    }
}

/// Reads the text of a status log. A group the log leaves open ends as ABORT with
/// `abort_reason`.
pub fn parse(text: &str, version: Version, abort_reason: &str, limit: &mut Limit) -> Found {
    let lines = logical_lines(text);
    match version {
        Version::V1 => v1::parse(lines, abort_reason, limit),
        Version::V0 => v0::parse(lines, limit),
    }
}

#[cfg(test)]
mod tests;
