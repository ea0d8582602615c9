//! The special tasks of an attempt (verify, cleanup, repair), each run by Autoserv
//! with its own command under the supervisor, host by host: before the job (a failed
//! one is followed by a repair) and the cleanup after it.

use crate::attempts::AttemptId;
use crate::lease::LEASE_LOST;
use crate::pusher::Pusher;
use crate::{runner, supervise, Inner};
use common::names::HostName;
use common::protocol::{RunJob, StatusEvent, TaskKind, TaskOutcome};

impl Inner {
    /// Runs one special task on `host` (or finds how it ended before a restart);
    /// whether it passed, or None when the drone's lease stopped it (not the host's
    /// fault). Results in `hosts/<host>/<entry>.<attempt>.<seq>-<task>/`.
    async fn run_task(
        &self,
        job: &RunJob,
        host: &HostName,
        seq: usize,
        task: TaskKind,
    ) -> Option<bool> {
        let id = AttemptId::of(job);
        if self.lease_lost(id).is_some() {
            return None;
        }
        let (entry_id, attempt) = (job.entry_id, job.attempt);
        let dir = self.config.drone.results_dir.join(format!(
            "hosts/{host}/{entry_id}.{attempt}.{seq}-{}",
            task.as_str()
        ));
        let prefix = supervise::prefix(&dir, attempt);
        let report = |outcome| StatusEvent::Task {
            entry_id,
            attempt,
            host: host.clone(),
            task,
            outcome,
        };
        self.reporter.send(report(TaskOutcome::Started)).await;
        self.attempts.set_running(id, prefix.clone());
        let template = match task {
            TaskKind::Verify => &self.config.autoserv.verify_command,
            TaskKind::Repair => &self.config.autoserv.repair_command,
            TaskKind::Cleanup => &self.config.autoserv.cleanup_command,
        };
        let exit_code = if let Some(code) = supervise::recorded_exit(&prefix) {
            code
        } else if supervise::recorded_pid(&prefix).is_some() {
            // Started before a restart: running, or ended and being recorded. Starting
            // it again would run the task twice.
            runner::wait_recovered(&prefix).await
        } else {
            match runner::start_task(
                &dir,
                host.as_str(),
                attempt,
                template,
                &self.supervisor,
                &self.lease(),
            )
            .await
            {
                Ok(started) => runner::wait(started).await,
                Err(error) => {
                    tracing::error!(%error, task = task.as_str(), "cannot start the task");
                    -1
                }
            }
        };
        self.attempts.clear_running(id);
        // Stopped by the lease or by an abort: says nothing about the host.
        if supervise::lease_expired(&prefix).is_some() || self.is_aborted(job) {
            return None;
        }
        let passed = exit_code == 0;
        tracing::info!(task = task.as_str(), %host, exit_code, "special task ended");
        self.reporter
            .send(report(if passed {
                TaskOutcome::Passed
            } else {
                TaskOutcome::Failed
            }))
            .await;
        Some(passed)
    }

    /// The special tasks before the job, host by host: cleanup, verify (each followed
    /// by a repair when it fails), or only a repair.
    pub(crate) async fn before_job(&self, job: &RunJob) -> BeforeJob {
        let tasks = &job.tasks;
        for host in &job.hosts {
            let mut seq = 0;
            let mut step = |task| {
                seq += 1;
                (seq, task)
            };
            let mut wanted = Vec::new();
            if tasks.repair_only {
                wanted.push(TaskKind::Repair);
            } else {
                if tasks.cleanup_before {
                    wanted.push(TaskKind::Cleanup);
                }
                if tasks.verify {
                    wanted.push(TaskKind::Verify);
                }
            }
            for task in wanted {
                let (n, task) = step(task);
                let Some(passed) = self.run_task(job, host, n, task).await else {
                    return BeforeJob::Stopped(self.stop_reason(job));
                };
                if self.is_aborted(job) {
                    return BeforeJob::Stopped("aborted during its special tasks".into());
                }
                if passed {
                    continue;
                }
                if task == TaskKind::Repair {
                    return BeforeJob::RepairFailed {
                        host: host.clone(),
                        reason: format!("repair of {host} failed"),
                    };
                }
                let (n, repair) = step(TaskKind::Repair);
                let Some(repaired) = self.run_task(job, host, n, repair).await else {
                    return BeforeJob::Stopped(self.stop_reason(job));
                };
                if !repaired {
                    return BeforeJob::RepairFailed {
                        host: host.clone(),
                        reason: format!(
                            "{} of {host} failed, and so did its repair",
                            task.as_str()
                        ),
                    };
                }
            }
        }
        if tasks.repair_only {
            BeforeJob::Repaired
        } else {
            BeforeJob::Go
        }
    }

    /// The cleanup after the job, host by host (a failed cleanup is followed by a
    /// repair; the scheduler takes a host whose repair failed out of service).
    pub(crate) async fn after_job(&self, job: &RunJob) {
        for host in &job.hosts {
            // Numbered after any tasks before the job (at most 4 per host).
            if self.run_task(job, host, 10, TaskKind::Cleanup).await == Some(false) {
                self.run_task(job, host, 11, TaskKind::Repair).await;
            }
        }
    }

    /// Why a special task was stopped without failing: an abort, or the lease.
    fn stop_reason(&self, job: &RunJob) -> String {
        if self.is_aborted(job) {
            "aborted during its special tasks".into()
        } else {
            LEASE_LOST.into()
        }
    }

    /// Whether the scheduler asked to abort the attempt of `job`.
    pub(crate) fn is_aborted(&self, job: &RunJob) -> bool {
        self.attempts.is_aborted(AttemptId::of(job))
    }

    /// Pushes the special tasks' results of the job's hosts, if it had any.
    pub(crate) async fn push_tasks(&self, job: &RunJob, pusher: &Pusher) {
        if job.tasks.is_empty() {
            return;
        }
        let pushes = job
            .hosts
            .iter()
            .filter(|host| {
                self.config
                    .drone
                    .results_dir
                    .join(format!("hosts/{host}"))
                    .exists()
            })
            .map(|host| pusher.push(format!("hosts/{host}")));
        futures_util::future::join_all(pushes).await;
    }

    /// Pushes what an attempt that ran no job left: its special tasks' results.
    pub(crate) async fn push_all(&self, job: &RunJob, pusher: &Pusher) {
        self.push_tasks(job, pusher).await;
    }
}

/// How the special tasks before a job went.
pub(crate) enum BeforeJob {
    /// Run the job.
    Go,
    /// Aborted meanwhile: do not run the job.
    Stopped(String),
    /// A repair-only attempt whose repairs passed: nothing more to run.
    Repaired,
    /// A host could not be brought back: the job does not run.
    RepairFailed { host: HostName, reason: String },
}
