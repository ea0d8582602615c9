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
        let started;
        match line.kind {
            Kind::Start => {
                state.stack.push(Status::NoStatus);
                let at = line.timestamp();
                let unnamed = line.testname.is_none() && line.subdir.is_none();
                if unnamed && state.running.is_none() {
                    // A client job begins; its tests are one level inside it.
                    state.min_depth = state.depth();
                } else if state.depth() == state.min_depth + 1 && state.running.is_none() {
                    let mut reasons = BTreeSet::new();
                    if !line.reason.is_empty() {
                        reasons.insert(line.reason.clone());
                    }
                    state.running = Some(Running { reasons });
                }
                state.started.push(at);
                state.subdirs.push(line.subdir.clone());
                continue;
            }
            Kind::Info => {
                if let Some(kernel) = line.kernel() {
                    state.kernel = Some(kernel);
                }
                continue;
            }
            Kind::Status(status) => {
                if line.subdir.is_some() && state.depth() > state.min_depth {
                    *state.subdirs.last_mut().expect("base subdir") = line.subdir.clone();
                }
                state.update(status);
                if status.at_least_as_bad_as(state.status) {
                    if !line.reason.is_empty() {
                        match &mut state.running {
                            Some(running) => {
                                running.reasons.insert(line.reason.clone());
                                let joined: Vec<&str> =
                                    running.reasons.iter().map(String::as_str).collect();
                                state.reason = Some(joined.join(", "));
                            }
                            None => state.reason = Some(line.reason.clone()),
                        }
                    }
                    state.status = state.current();
                }
                started = None;
                if line.testname.is_none() && line.subdir.is_none() {
                    continue;
                }
            }
            Kind::End(status) => {
                if line.testname.is_none() && line.subdir.is_none() && state.running.is_none() {
                    state.min_depth = state.depth().saturating_sub(1);
                    state.subdirs.pop();
                } else {
                    line.subdir = state.subdirs.pop().flatten();
                }
                state.update(status);
                state.status = state.end();
                if state.depth() > state.min_depth {
                    let status = state.status;
                    state.update(status);
                    state.status = state.current();
                }
                started = state.started.pop().flatten();
                let good_reboot = line.testname.as_deref() == Some("reboot")
                    && !state.status.at_least_as_bad_as(Status::Fail);
                if good_reboot {
                    state.kernel = line.kernel();
                }
                if line.testname.as_deref() == Some("reboot") && line.subdir.is_none() {
                    line.testname = Some(format!("boot.{}", state.boots));
                }
            }
        }
        if state.depth() > state.min_depth {
            continue;
        }
        // A test has ended.
        let name = match line.testname.clone().or_else(|| line.subdir.clone()) {
            Some(name) => name,
            None => {
                let name = format!("CLIENT_JOB.{}", state.client_jobs);
                state.client_jobs += 1;
                // A job has not failed just because some of its tests did.
                if !state.status.at_least_as_bad_as(Status::Abort) {
                    state.status = Status::Good;
                }
                name
            }
        };
        let reason = state
            .reason
            .take()
            .or_else(|| (!line.reason.is_empty()).then(|| line.reason.clone()));
        if name == format!("boot.{}", state.boots) {
            state.boots += 1;
        }
        found.push(
            limit,
            name,
            line.subdir.clone(),
            state.status,
            reason,
            started,
            line.timestamp(),
            state.kernel.clone(),
        );
        state.running = None;
        state.status = Status::NoStatus;
    }
    found
}
