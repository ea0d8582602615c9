//! Faults injected on purpose, to test that the worker survives them: a panic in one
//! attempt at a chosen stage, or in one of the worker's essential tasks. Only in
//! debug builds (what the tests run); a release build has no hook, and
//! [`Fault::from_env`] finds nothing there.
//!
//! Chosen by `AUTOTEST_WORKER_FAULT`, read when the worker is made:
//! - `panic-in:<stage>:<entry id>`: the first attempt of that entry to reach the stage
//!   (`prepare`, `start`, `wait`, `gather`, `push` or `settle`) panics there;
//! - `panic-task:<task>`: that essential task (`consumer`, `heartbeat`, `lease keeper`,
//!   `pusher`, `spares refill`, `results server`, `remover`; see `Worker::run`) panics
//!   as it starts;
//! - `exit-at:<point>`: the whole process exits at once (as if killed) the first time
//!   it reaches that point (`removing`: a removal of pushed results, after the
//!   directory was renamed away and before it is deleted).

use crate::attempts::AttemptId;
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that chooses a fault.
pub const VARIABLE: &str = "AUTOTEST_WORKER_FAULT";

/// A fault to inject, if any.
#[derive(Debug, Default)]
pub struct Fault {
    #[cfg(debug_assertions)]
    chosen: Option<Chosen>,
    /// An attempt fault fires once.
    #[cfg(debug_assertions)]
    fired: AtomicBool,
}

#[cfg(debug_assertions)]
#[derive(Debug, PartialEq, Eq)]
enum Chosen {
    Attempt { stage: String, entry: i64 },
    Task(String),
    Exit(String),
}

impl Fault {
    /// The fault `AUTOTEST_WORKER_FAULT` chooses (none in a release build).
    pub fn from_env() -> Self {
        match std::env::var(VARIABLE) {
            Ok(text) => Self::parse(&text),
            Err(_) => Self::default(),
        }
    }

    /// The fault `text` chooses; an unreadable choice is logged and ignored.
    pub fn parse(text: &str) -> Self {
        #[cfg(debug_assertions)]
        {
            let chosen = match text.split(':').collect::<Vec<_>>()[..] {
                ["panic-in", stage, entry] => entry.parse().ok().map(|entry| Chosen::Attempt {
                    stage: stage.to_string(),
                    entry,
                }),
                ["panic-task", task] => Some(Chosen::Task(task.to_string())),
                ["exit-at", point] => Some(Chosen::Exit(point.to_string())),
                _ => None,
            };
            if chosen.is_none() {
                tracing::warn!(fault = text, "unreadable {VARIABLE}; no fault injected");
            }
            Self {
                chosen,
                fired: AtomicBool::new(false),
            }
        }
        #[cfg(not(debug_assertions))]
        {
            let _ = text;
            Self::default()
        }
    }

    /// Panics if the fault chosen is this attempt at this stage (once).
    pub fn at_stage(&self, stage: &str, id: AttemptId) {
        #[cfg(debug_assertions)]
        if let Some(Chosen::Attempt { stage: at, entry }) = &self.chosen {
            if at == stage && *entry == id.entry && !self.fired.swap(true, Ordering::SeqCst) {
                panic!("fault injected by {VARIABLE}: attempt {id} panics in {stage}");
            }
        }
        let _ = (stage, id);
    }

    /// Ends the process at once (exit status 86, nothing flushed or dropped) if the
    /// fault chosen is this point.
    pub fn exit_at(&self, point: &str) {
        #[cfg(debug_assertions)]
        if self.chosen == Some(Chosen::Exit(point.to_string())) {
            eprintln!("fault injected by {VARIABLE}: the worker exits at {point}");
            std::process::exit(86);
        }
        let _ = point;
    }

    /// Panics if the fault chosen is this essential task.
    pub fn at_task(&self, task: &str) {
        #[cfg(debug_assertions)]
        if self.chosen == Some(Chosen::Task(task.to_string())) {
            panic!("fault injected by {VARIABLE}: the {task} task panics");
        }
        let _ = task;
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    const A: AttemptId = AttemptId {
        entry: 12,
        attempt: 1,
    };

    #[test]
    fn a_stage_fault_fires_once_for_its_entry_and_stage() {
        let fault = Fault::parse("panic-in:gather:12");
        fault.at_stage("push", A);
        fault.at_stage(
            "gather",
            AttemptId {
                entry: 13,
                attempt: 1,
            },
        );
        let fired = std::panic::catch_unwind(|| fault.at_stage("gather", A));
        assert!(fired.is_err());
        fault.at_stage("gather", A);
    }

    #[test]
    fn an_unreadable_fault_injects_nothing() {
        let fault = Fault::parse("panic-in:gather");
        fault.at_stage("gather", A);
        fault.at_task("heartbeat");
    }

    #[test]
    fn a_task_fault_fires_in_its_task_only() {
        let fault = Fault::parse("panic-task:heartbeat");
        fault.at_task("lease");
        assert!(std::panic::catch_unwind(|| fault.at_task("heartbeat")).is_err());
    }
}
