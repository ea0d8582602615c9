//! Version 1 of the status log (`status.log`): nested groups, the tests being the
//! groups one level inside the job's own, and a log cut short closed as ABORT.

use super::line::{Kind, Line};
use super::{Found, Limit};
use crate::model::Status;
use std::collections::{BTreeSet, VecDeque};

/// A test whose START has been read and whose END has not.
struct Running {
    reasons: BTreeSet<String>,
}

/// The parser's state while reading one log.
struct State {
    /// One status per open group, plus the base: what each group has seen so far.
    stack: Vec<Status>,
    /// Groups at or below this depth are the job's; tests start one level inside.
    min_depth: usize,
    started: Vec<Option<i64>>,
    subdirs: Vec<Option<String>>,
    running: Option<Running>,
    status: Status,
    reason: Option<String>,
    kernel: Option<String>,
    boots: u32,
    client_jobs: u32,
}

impl State {
    fn new() -> Self {
        Self {
            stack: vec![Status::NoStatus],
            min_depth: 0,
            started: vec![None],
            subdirs: vec![None],
            running: None,
            status: Status::NoStatus,
            reason: None,
            kernel: None,
            boots: 0,
            client_jobs: 0,
        }
    }

    fn depth(&self) -> usize {
        self.stack.len() - 1
    }

    /// Makes the innermost group's status `status` if that is worse.
    fn update(&mut self, status: Status) {
        let top = self.stack.last_mut().expect("base status");
        if status < *top {
            *top = status;
        }
    }

    /// Closes the innermost group; its status.
    fn end(&mut self) -> Status {
        let status = self.stack.pop().expect("base status");
        if self.stack.is_empty() {
            self.stack.push(Status::NoStatus);
        }
        status
    }

    fn current(&self) -> Status {
        *self.stack.last().expect("base status")
    }

    /// A group begins: a client job (no names, outside any test), or a test when it
    /// is one level inside the job.
    fn start(&mut self, line: &Line) {
        self.stack.push(Status::NoStatus);
        let unnamed = line.testname.is_none() && line.subdir.is_none();
        if unnamed && self.running.is_none() {
            self.min_depth = self.depth();
        } else if self.depth() == self.min_depth + 1 && self.running.is_none() {
            let mut reasons = BTreeSet::new();
            if !line.reason.is_empty() {
                reasons.insert(line.reason.clone());
            }
            self.running = Some(Running { reasons });
        }
        self.started.push(line.timestamp());
        self.subdirs.push(line.subdir.clone());
    }

    /// A status inside the current group: it may make the group's status worse, and
    /// then its reason joins the test's reasons.
    fn status_line(&mut self, line: &Line, status: Status) {
        if line.subdir.is_some() && self.depth() > self.min_depth {
            *self.subdirs.last_mut().expect("base subdir") = line.subdir.clone();
        }
        self.update(status);
        if !status.at_least_as_bad_as(self.status) {
            return;
        }
        if !line.reason.is_empty() {
            match &mut self.running {
                Some(running) => {
                    running.reasons.insert(line.reason.clone());
                    let joined: Vec<&str> = running.reasons.iter().map(String::as_str).collect();
                    self.reason = Some(joined.join(", "));
                }
                None => self.reason = Some(line.reason.clone()),
            }
        }
        self.status = self.current();
    }

    /// The innermost group ends; when it was a test, `line` gets the test's subdir
    /// (and a reboot its `boot.N` name). The group's start time.
    fn end_line(&mut self, line: &mut Line, status: Status) -> Option<i64> {
        if line.testname.is_none() && line.subdir.is_none() && self.running.is_none() {
            self.min_depth = self.depth().saturating_sub(1);
            self.subdirs.pop();
        } else {
            line.subdir = self.subdirs.pop().flatten();
        }
        self.update(status);
        self.status = self.end();
        if self.depth() > self.min_depth {
            let status = self.status;
            self.update(status);
            self.status = self.current();
        }
        let started = self.started.pop().flatten();
        let reboot = line.testname.as_deref() == Some("reboot");
        if reboot && !self.status.at_least_as_bad_as(Status::Fail) {
            self.kernel = line.kernel();
        }
        if reboot && line.subdir.is_none() {
            line.testname = Some(format!("boot.{}", self.boots));
        }
        started
    }

    /// Records the test that `line` ended.
    fn test_ended(
        &mut self,
        line: &Line,
        started: Option<i64>,
        limit: &mut Limit,
        found: &mut Found,
    ) {
        let name = match line.testname.clone().or_else(|| line.subdir.clone()) {
            Some(name) => name,
            None => {
                let name = format!("CLIENT_JOB.{}", self.client_jobs);
                self.client_jobs += 1;
                // A job has not failed just because some of its tests did.
                if !self.status.at_least_as_bad_as(Status::Abort) {
                    self.status = Status::Good;
                }
                name
            }
        };
        let reason = self
            .reason
            .take()
            .or_else(|| (!line.reason.is_empty()).then(|| line.reason.clone()));
        if name == format!("boot.{}", self.boots) {
            self.boots += 1;
        }
        found.push(
            limit,
            name,
            line.subdir.clone(),
            self.status,
            reason,
            started,
            line.timestamp(),
            self.kernel.clone(),
        );
        self.running = None;
        self.status = Status::NoStatus;
    }
}

/// The line Autotest's parser behaves as if it had read when a group is left open:
/// `END ABORT` at `indent` for `name`.
fn dummy_abort(indent: usize, name: Option<&str>, timestamp: Option<i64>, reason: &str) -> String {
    let name = name.unwrap_or("----");
    let timestamp = timestamp
        .map(|t| format!("\ttimestamp={t}"))
        .unwrap_or_default();
    format!(
        "{}END ABORT\t{name}\t{name}{timestamp}\t{reason}",
        "\t".repeat(indent)
    )
}

/// Reads a version 1 log. `abort_reason` is what a group left open ends with ("Job
/// aborted unexpectedly", or who aborted the job).
pub fn parse(lines: Vec<String>, abort_reason: &str, limit: &mut Limit) -> Found {
    let mut found = Found::default();
    let mut pending: VecDeque<String> = lines.into();
    let mut state = State::new();
    let mut last_timestamp = None;
    let mut closed_at_end = false;
    loop {
        let Some(raw) = pending.pop_front() else {
            if state.depth() == 0 || closed_at_end {
                break;
            }
            // The log stops inside groups: end each one as ABORT, innermost first.
            closed_at_end = true;
            let mut subdirs = state.subdirs.clone();
            for indent in (0..state.depth()).rev() {
                let subdir = subdirs.pop().flatten();
                pending.push_back(dummy_abort(
                    indent,
                    subdir.as_deref(),
                    last_timestamp,
                    abort_reason,
                ));
            }
            continue;
        };
        if !limit.line() {
            found.truncated = true;
            break;
        }
        let Some(mut line) = Line::parse(&raw, true) else {
            continue;
        };
        if line.timestamp().is_some() {
            last_timestamp = line.timestamp();
        }
        let expected = state.depth() as isize - isize::from(matches!(line.kind, Kind::End(_)));
        let indent = line.indent as isize;
        if indent < expected {
            // Fewer tabs than the open groups need: the innermost group ended
            // without its END line. Abort it, then read this line again.
            pending.push_front(raw);
            let subdir = state.subdirs.last().cloned().flatten();
            pending.push_front(dummy_abort(
                state.depth() - 1,
                subdir.as_deref(),
                line.timestamp(),
                &line.reason,
            ));
            continue;
        }
        if indent > expected {
            continue;
        }
        let started = match line.kind {
            Kind::Start => {
                state.start(&line);
                continue;
            }
            Kind::Info => {
                if let Some(kernel) = line.kernel() {
                    state.kernel = Some(kernel);
                }
                continue;
            }
            Kind::Status(status) => {
                state.status_line(&line, status);
                if line.testname.is_none() && line.subdir.is_none() {
                    continue;
                }
                None
            }
            Kind::End(status) => state.end_line(&mut line, status),
        };
        if state.depth() <= state.min_depth {
            state.test_ended(&line, started, limit, &mut found);
        }
    }
    found
}
