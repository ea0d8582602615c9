//! The scheduler's essential tasks, run supervised: each one runs until shutdown, and
//! one that ends before (returns, fails or panics) stops the scheduler with an error
//! naming it, so the service manager starts it again instead of leaving an HTTP API
//! that answers while nothing dispatches or reads status.

use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use tokio::task::JoinSet;

/// An essential task of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Serves the HTTP API.
    Http,
    /// Sends entries to drones.
    Dispatcher,
    /// Reads the drones' status reports.
    StatusConsumer,
    /// Aborts what runs or waits past its deadline.
    TimeoutKeeper,
    /// Takes work back from drones no longer heard from.
    LostDroneKeeper,
    /// Mails about ended jobs.
    Mailer,
    /// Archives and removes finished jobs' results by age.
    ResultsKeeper,
}

impl Task {
    /// Every essential task.
    pub const ALL: [Task; 7] = [
        Task::Http,
        Task::Dispatcher,
        Task::StatusConsumer,
        Task::TimeoutKeeper,
        Task::LostDroneKeeper,
        Task::Mailer,
        Task::ResultsKeeper,
    ];
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Http => "HTTP server",
            Task::Dispatcher => "dispatcher",
            Task::StatusConsumer => "status consumer",
            Task::TimeoutKeeper => "timeout keeper",
            Task::LostDroneKeeper => "lost-drone keeper",
            Task::Mailer => "job-end mailer",
            Task::ResultsKeeper => "results keeper",
        })
    }
}

/// A fault a test makes a task suffer (debug builds only).
#[cfg(debug_assertions)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The task panics as soon as it starts.
    Panics,
    /// The task returns as soon as it starts, as if it had been told to stop.
    Returns,
}

/// How a task ended.
enum Ending {
    Returned(anyhow::Result<()>),
    Panicked(String),
}

/// The running essential tasks.
#[derive(Default)]
pub struct Tasks {
    running: JoinSet<(Task, Ending)>,
    #[cfg(debug_assertions)]
    fault: Option<(Task, Fault)>,
}

impl Tasks {
    /// No task yet.
    pub fn new() -> Self {
        Self {
            running: JoinSet::new(),
            #[cfg(debug_assertions)]
            fault: None,
        }
    }

    /// Injects `fault` into `task` when it is spawned (debug builds only).
    #[cfg(debug_assertions)]
    pub fn with_fault(mut self, fault: Option<(Task, Fault)>) -> Self {
        self.fault = fault;
        self
    }

    /// Starts `task`: `body` runs until shutdown.
    pub fn spawn(
        &mut self,
        task: Task,
        body: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        #[cfg(debug_assertions)]
        let body = {
            let fault = self.fault.filter(|(faulty, _)| *faulty == task);
            async move {
                match fault {
                    Some((_, Fault::Panics)) => panic!("fault injected into the {task}"),
                    Some((_, Fault::Returns)) => Ok(()),
                    None => body.await,
                }
            }
        };
        self.running.spawn(async move {
            let ending = match AssertUnwindSafe(body).catch_unwind().await {
                Ok(result) => Ending::Returned(result),
                Err(panic) => Ending::Panicked(panic_message(panic.as_ref())),
            };
            (task, ending)
        });
    }

    /// Waits for every task. Once shutdown is triggered (`stopping` says whether it
    /// is) the tasks end on their own; one that ends before, or fails, is logged, the
    /// others are stopped, and the error names it.
    pub async fn supervise(mut self, stopping: impl Fn() -> bool) -> anyhow::Result<()> {
        while let Some(joined) = self.running.join_next().await {
            let (task, ending) = match joined {
                Ok(ended) => ended,
                // Nothing aborts a task while it is supervised.
                Err(error) => return Err(anyhow::anyhow!("a scheduler task was lost: {error}")),
            };
            let failure = match ending {
                Ending::Returned(Ok(())) if stopping() => continue,
                Ending::Returned(Ok(())) => format!("the {task} ended unexpectedly"),
                Ending::Returned(Err(error)) => format!("the {task} failed: {error:#}"),
                Ending::Panicked(message) => format!("the {task} panicked: {message}"),
            };
            tracing::error!(task = %task, "{failure}; stopping the scheduler");
            self.running.shutdown().await;
            return Err(anyhow::anyhow!(failure));
        }
        Ok(())
    }
}

/// The message of a panic (`panic!` with a string or a format).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks() -> Tasks {
        Tasks::new()
    }

    #[tokio::test]
    async fn a_task_that_panics_is_named_in_the_error() {
        let mut tasks = tasks();
        tasks.spawn(Task::Dispatcher, std::future::pending());
        tasks.spawn(Task::StatusConsumer, async { panic!("lost the plot") });
        let error = tasks.supervise(|| false).await.unwrap_err().to_string();
        assert_eq!(error, "the status consumer panicked: lost the plot");
    }

    #[tokio::test]
    async fn a_task_that_returns_before_shutdown_is_an_error() {
        let mut tasks = tasks();
        tasks.spawn(Task::Http, std::future::pending());
        tasks.spawn(Task::TimeoutKeeper, async { Ok(()) });
        let error = tasks.supervise(|| false).await.unwrap_err().to_string();
        assert_eq!(error, "the timeout keeper ended unexpectedly");
    }

    #[tokio::test]
    async fn a_task_that_fails_says_why() {
        let mut tasks = tasks();
        tasks.spawn(Task::Http, async { Err(anyhow::anyhow!("address in use")) });
        let error = tasks.supervise(|| false).await.unwrap_err().to_string();
        assert_eq!(error, "the HTTP server failed: address in use");
    }

    #[tokio::test]
    async fn tasks_that_end_on_shutdown_end_the_supervision_cleanly() {
        let mut tasks = tasks();
        for task in Task::ALL {
            tasks.spawn(task, async { Ok(()) });
        }
        tasks.supervise(|| true).await.unwrap();
    }
}
