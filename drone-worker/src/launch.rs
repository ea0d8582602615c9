//! Starting attempts as tasks whose end is watched: an attempt that fails (an error
//! on its path, or a panic) is reported to the scheduler as an infra failure (which
//! retries it under the usual rules), its process is stopped and it is released, so
//! it never stays Running. Also picks up, at start, the attempts a previous run left
//! in the journal.

use crate::attempt::Attempt;
use crate::attempts::AttemptId;
use crate::essential::panic_message;
use crate::journal::Stage;
use crate::pusher::Pusher;
use crate::{supervise, Inner};
use common::protocol::{RunJob, StatusEvent};
use nix::sys::signal::Signal;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;

impl Inner {
    /// Runs the attempt of `job` (held already) from `stage`, watching how it ends.
    /// `gate` is told once Autoserv is spawned or will not be soon.
    pub(crate) fn launch(
        self: &Arc<Self>,
        job: RunJob,
        stage: Stage,
        pusher: &Pusher,
        gate: Option<oneshot::Sender<()>>,
    ) {
        let span = tracing::info_span!(
            "entry",
            entry.id = job.entry_id,
            job.id = job.job_id,
            attempt = job.attempt
        );
        let attempt = Attempt::new(self.clone(), job.clone(), pusher.clone(), gate);
        let task = tokio::spawn(attempt.drive(stage).instrument(span.clone()));
        let inner = self.clone();
        tokio::spawn(
            async move {
                let reason = match task.await {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => {
                        format!("the attempt failed on drone {}: {error}", inner.name)
                    }
                    Err(error) if error.is_panic() => format!(
                        "the attempt's task on drone {} panicked: {}",
                        inner.name,
                        panic_message(error.into_panic())
                    ),
                    Err(error) => format!(
                        "the attempt's task on drone {} was cancelled: {error}",
                        inner.name
                    ),
                };
                inner.end_as_infra_failure(&job, reason).await;
            }
            .instrument(span),
        );
    }

    /// Ends an attempt that failed on this drone: its process (if one still runs) is
    /// killed, the scheduler hears an infra failure, the journal closes it, and it is
    /// released.
    async fn end_as_infra_failure(&self, job: &RunJob, reason: String) {
        let id = AttemptId::of(job);
        tracing::error!(%reason, "the attempt failed on this drone; reporting an infra failure");
        // Its retry must not run beside what is left of it.
        if let Some(pgid) = self
            .attempts
            .running(id)
            .and_then(|prefix| supervise::recorded_pid(&prefix))
        {
            supervise::signal_group(pgid, Signal::SIGKILL);
        }
        self.attempts.clear_running(id);
        self.reporter
            .send(StatusEvent::Finished {
                entry_id: id.entry,
                attempt: id.attempt,
                exit_code: -1,
                infra_failure: Some(reason),
                test_failure: None,
                manifest: None,
                test_parts: 0,
            })
            .await;
        self.record(job, Stage::Done { exit_code: -1 }).await;
        self.refill.notify_one();
        self.attempts.release(id);
    }

    /// Picks up the attempts a previous run of this worker left unfinished.
    pub(crate) async fn recover(self: &Arc<Self>, pusher: &Pusher) {
        let records = match self.journal.unfinished() {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "cannot read the journal");
                return;
            }
        };
        // Down longer than the lease: the scheduler has (or will have) given these
        // attempts to another drone. They are lost to this one before anything runs.
        let timeout = self.config.scheduler.drone_timeout_sec;
        let expired = supervise::lease_age(&self.lease_file).is_some_and(|age| age > timeout);
        if expired && !records.is_empty() {
            tracing::warn!(
                attempts = records.len(),
                "this drone was away longer than drone_timeout_sec: the attempts it held are reported as infra failures and not run"
            );
            for record in &records {
                self.attempts.lose_early(AttemptId::of(&record.job));
            }
        }
        for record in records {
            let job = record.job;
            tracing::info!(entry.id = job.entry_id, attempt = job.attempt, stage = ?record.stage, "resuming an attempt from the journal");
            self.attempts.hold(AttemptId::of(&job));
            self.launch(job, record.stage, pusher, None);
        }
    }
}
