//! One attempt on this drone, as stages, each advancing the journal so an attempt
//! picked up after a restart resumes at the stage it reached:
//! - prepare: a slot, then the special tasks before the job;
//! - start: Autoserv under its supervisor (journal: Running, or Refused);
//! - wait: Autoserv's exit, then the cleanup after the job;
//! - gather: the exit journaled (Exited) and reported, the results manifest written;
//! - push: the results to the results host (journal: Pushed);
//! - settle: Finished reported (journal: Done) and the attempt released.

use crate::attempts::AttemptId;
use crate::journal::Stage;
use crate::lease::{set_aside, set_aside_subdir};
use crate::manifest::Manifest;
use crate::pusher::Pusher;
use crate::tasks::BeforeJob;
use crate::{cap, runner, space, supervise, Inner};
use common::names::HostName;
use common::protocol::{RunJob, StatusEvent};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// Why an attempt could not go on: it ends as an infra failure (see the `launch` module).
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("no slot to run in: {0}")]
    Slots(#[from] tokio::sync::AcquireError),
    #[error("writing the results manifest failed: {0}")]
    Manifest(tokio::task::JoinError),
}

/// One attempt being taken to its end.
pub(crate) struct Attempt {
    inner: Arc<Inner>,
    job: RunJob,
    id: AttemptId,
    /// The entry's results directory on this drone.
    dir: PathBuf,
    /// Its supervisor's files (see [`supervise::prefix`]).
    prefix: PathBuf,
    pusher: Pusher,
    gate: Gate,
}

/// What prepare leaves for start.
struct Prepared {
    /// Held until Autoserv has exited.
    slot: OwnedSemaphorePermit,
    /// Why Autoserv must not start, if it must not.
    blocked: Option<String>,
}

/// What gather leaves for push.
struct Gathered {
    infra_failure: Option<String>,
    /// The results' directory, relative to the drone's results directory.
    subdir: String,
    /// It has a manifest to check the copy against.
    verify: bool,
}

impl Attempt {
    /// The attempt of `job`. `gate` is told once Autoserv is spawned, or when the
    /// start has to wait (for a slot, a special task) or will not happen.
    pub(crate) fn new(
        inner: Arc<Inner>,
        job: RunJob,
        pusher: Pusher,
        gate: Option<oneshot::Sender<()>>,
    ) -> Self {
        let dir = runner::entry_dir(&inner.config.drone.results_dir, &job);
        let prefix = supervise::prefix(&dir, job.attempt);
        Self {
            id: AttemptId::of(&job),
            inner,
            job,
            dir,
            prefix,
            pusher,
            gate: Gate(gate),
        }
    }

    /// Takes the attempt from `stage` (journaled) to its end.
    pub(crate) async fn drive(mut self, stage: Stage) -> Result<(), AttemptError> {
        // Started before a crash, but the journal did not say so yet.
        let stage = match (stage, supervise::recorded_pid(&self.prefix)) {
            (Stage::Accepted, Some(pid)) => Stage::Running { pid },
            (stage, _) => stage,
        };
        let (exit_code, infra_failure) = match stage {
            Stage::Accepted => {
                let Some(prepared) = self.prepare().await? else {
                    return Ok(());
                };
                let Some(started) = self.start(prepared.blocked).await else {
                    return Ok(());
                };
                let exit_code = self.wait(started).await;
                drop(prepared.slot);
                (exit_code, self.exit_verdict(exit_code))
            }
            Stage::Running { pid } => {
                let exit_code = self.reattach(pid).await;
                (exit_code, self.exit_verdict(exit_code))
            }
            Stage::Exited {
                exit_code,
                infra_failure,
            } => (exit_code, infra_failure),
            Stage::Pushed {
                exit_code,
                infra_failure,
                verified,
            } => {
                self.settle(exit_code, infra_failure, verified).await;
                return Ok(());
            }
            Stage::Done { .. } | Stage::Refused { .. } => {
                self.inner.attempts.release(self.id);
                return Ok(());
            }
        };
        let gathered = self.gather(exit_code, infra_failure).await?;
        let (infra_failure, verified) = self.push(exit_code, gathered).await;
        self.settle(exit_code, infra_failure, verified).await;
        Ok(())
    }

    /// A slot, and the special tasks before the job; None when the attempt ended
    /// there (a repair-only attempt, or a repair that failed).
    async fn prepare(&mut self) -> Result<Option<Prepared>, AttemptError> {
        self.inner.fault.at_stage("prepare", self.id);
        let slots = &self.inner.slots;
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.gate.open();
                slots.clone().acquire_owned().await?
            }
        };
        let mut blocked = if self.inner.attempts.is_lost(self.id) {
            Some("the drone lost the broker before the attempt started".to_string())
        } else if self.inner.attempts.is_aborted(self.id) {
            Some("aborted before it started".to_string())
        } else {
            None
        };
        if blocked.is_none() && !self.job.tasks.is_empty() {
            self.gate.open();
            match self.inner.before_job(&self.job).await {
                BeforeJob::Go => {}
                BeforeJob::Stopped(reason) => blocked = Some(reason),
                BeforeJob::Repaired => {
                    self.end_repaired().await;
                    return Ok(None);
                }
                BeforeJob::RepairFailed { host, reason } => {
                    self.end_repair_failed(host, reason).await;
                    return Ok(None);
                }
            }
        }
        Ok(Some(Prepared { slot, blocked }))
    }

    /// `atest host repair`: the repairs passed, no job to run.
    async fn end_repaired(&self) {
        let inner = &self.inner;
        inner.push_all(&self.job, &self.pusher).await;
        inner
            .reporter
            .send(StatusEvent::Finished {
                entry_id: self.id.entry,
                attempt: self.id.attempt,
                exit_code: 0,
                infra_failure: None,
                test_failure: None,
                manifest: None,
                test_parts: 0,
            })
            .await;
        inner.record(&self.job, Stage::Done { exit_code: 0 }).await;
        inner.attempts.release(self.id);
    }

    /// A host could not be brought back: the job does not run.
    async fn end_repair_failed(&self, host: HostName, reason: String) {
        let inner = &self.inner;
        tracing::warn!(%host, %reason, "repair failed: the job does not run");
        inner.push_all(&self.job, &self.pusher).await;
        inner
            .reporter
            .send(StatusEvent::RepairFailed {
                entry_id: self.id.entry,
                attempt: self.id.attempt,
                host,
                reason: reason.clone(),
            })
            .await;
        inner.record(&self.job, Stage::Refused { reason }).await;
        inner.attempts.release(self.id);
    }

    /// Starts Autoserv (unless `blocked`); None when it did not start and the attempt
    /// ended refused.
    async fn start(&mut self, blocked: Option<String>) -> Option<runner::Started> {
        self.inner.fault.at_stage("start", self.id);
        let inner = self.inner.clone();
        let started = if let Some(reason) = blocked {
            Err(reason)
        } else {
            runner::start(
                &self.dir,
                &self.job,
                &inner.config.autoserv.command,
                &inner.supervisor,
                &inner.lease(),
                &inner.entry_spares,
            )
            .await
            .map_err(|error| error.to_string())
        };
        self.gate.open();
        // Handed to the long-lived supervisor, which starts Autoserv at once: Running
        // goes out meanwhile, as it did once a supervisor of the attempt's own was
        // spawned. Its pid is in the journal, not the report.
        let reported = matches!(&started, Ok(start) if start.is_handed());
        let started = match started {
            Ok(start) => {
                inner.attempts.set_running(self.id, self.prefix.clone());
                let (started, ()) = tokio::join!(start.started(), async {
                    if reported {
                        inner.reporter.send(self.running(0)).await
                    }
                });
                started.map_err(|error| error.to_string())
            }
            Err(reason) => Err(reason),
        };
        let started = match started {
            Ok(started) => started,
            Err(reason) => {
                self.refuse(reason).await;
                return None;
            }
        };
        let pid = started.pid;
        tracing::info!(pid, "Autoserv started");
        // The journal and the report are independent: do both at once. New spares
        // wait until the report is out (on a small machine, making them meanwhile
        // slowed it down).
        tokio::join!(inner.record(&self.job, Stage::Running { pid }), async {
            if !reported {
                inner.reporter.send(self.running(pid)).await
            }
        });
        inner.refill.notify_one();
        Some(started)
    }

    fn running(&self, pid: u32) -> StatusEvent {
        StatusEvent::Running {
            entry_id: self.id.entry,
            attempt: self.id.attempt,
            pid,
        }
    }

    /// Autoserv did not start: the attempt ends refused.
    async fn refuse(&self, reason: String) {
        let inner = &self.inner;
        inner.attempts.clear_running(self.id);
        inner.refill.notify_one();
        tracing::warn!(%reason, "Autoserv not started");
        inner
            .record(
                &self.job,
                Stage::Refused {
                    reason: reason.clone(),
                },
            )
            .await;
        inner
            .reporter
            .send(StatusEvent::Refused {
                entry_id: self.id.entry,
                attempt: self.id.attempt,
                reason,
            })
            .await;
        inner.attempts.release(self.id);
    }

    /// Waits for Autoserv's exit, then runs the cleanup after the job; its exit code.
    async fn wait(&self, started: runner::Started) -> i32 {
        self.inner.fault.at_stage("wait", self.id);
        let exit_code = self.within_cap(runner::wait(started)).await;
        // The supervisor has ended what Autoserv left; unless it went away first.
        self.inner
            .supervisor
            .containment
            .end_attempt(&self.prefix)
            .await;
        self.clean_up_after().await;
        self.inner.attempts.clear_running(self.id);
        exit_code
    }

    /// As [`Attempt::wait`], for an Autoserv started before the worker restarted.
    async fn reattach(&mut self, pid: u32) -> i32 {
        self.gate.open();
        self.inner.fault.at_stage("wait", self.id);
        tracing::info!(
            pid,
            "re-attaching to an Autoserv started before the worker restarted"
        );
        self.inner
            .attempts
            .set_running(self.id, self.prefix.clone());
        let exit_code = self.within_cap(runner::wait_recovered(&self.prefix)).await;
        self.inner
            .supervisor
            .containment
            .end_attempt(&self.prefix)
            .await;
        // The cleanup after the job is part of the attempt: one started before the
        // restart is re-attached to (or its recorded end taken), one not started yet
        // runs now.
        self.clean_up_after().await;
        self.inner.attempts.clear_running(self.id);
        exit_code
    }

    /// Waits for `waiting` (Autoserv's exit code) while keeping its results within
    /// `[DRONE] max_results_mb`: past it, the attempt is killed (see [`cap`]).
    async fn within_cap(&self, waiting: impl std::future::Future<Output = i32>) -> i32 {
        let (inner, prefix) = (self.inner.clone(), self.prefix.clone());
        let stop = move || {
            let pgid = supervise::recorded_pid(&prefix);
            inner.supervisor.containment.kill_attempt(&prefix, pgid);
        };
        let watch = cap::watch(
            self.dir.clone(),
            self.prefix.clone(),
            self.inner.config.drone.max_results_mb,
            stop,
        );
        tokio::pin!(waiting);
        tokio::select! {
            code = &mut waiting => code,
            () = watch => waiting.await,
        }
    }

    async fn clean_up_after(&self) {
        if self.job.tasks.cleanup_after
            && supervise::lease_expired(&self.prefix).is_none()
            && !self.inner.is_aborted(&self.job)
        {
            self.inner.after_job(&self.job).await;
        }
    }

    /// The infra failure the lease makes of an attempt whose Autoserv has exited.
    fn lease_verdict(&self) -> Option<String> {
        supervise::lease_expired(&self.prefix).or_else(|| self.inner.lease_lost(self.id))
    }

    /// The infra failure an exit makes of the attempt: the lease's, else a full
    /// disk's (see [`space`]).
    fn exit_verdict(&self, exit_code: i32) -> Option<String> {
        self.lease_verdict().or_else(|| {
            let capped = cap::exceeded(&self.prefix).is_some();
            space::after_exit(exit_code, &self.inner.config.drone.results_dir, capped)
        })
    }

    /// Journals and reports the exit (settling the attempt with the lease), sets the
    /// results of an attempt lost to the lease aside, writes the results manifest.
    async fn gather(
        &self,
        exit_code: i32,
        infra_failure: Option<String>,
    ) -> Result<Gathered, AttemptError> {
        self.inner.fault.at_stage("gather", self.id);
        let inner = &self.inner;
        tracing::info!(
            exit_code,
            ?infra_failure,
            "Autoserv exited; pushing results"
        );
        // The worker's own writes from here on: one that fails for want of space makes
        // an infra failure (see [`space`]).
        let no_space = space::NoSpace::default();
        let exited = Stage::Exited {
            exit_code,
            infra_failure: infra_failure.clone(),
        };
        no_space.note("the journal", &inner.put(&self.job, exited).await);
        let infra_failure = match infra_failure.or_else(|| no_space.verdict()) {
            None => {
                inner
                    .reporter
                    .send(StatusEvent::Gathering {
                        entry_id: self.id.entry,
                        attempt: self.id.attempt,
                        exit_code,
                    })
                    .await;
                // Settled only if the lease did not run out before the broker had it.
                inner.settle(self.id)
            }
            some => some,
        };
        let subdir = match &infra_failure {
            None => self.job.results_subdir(),
            Some(_) => set_aside(&inner.config.drone.results_dir, &self.job),
        };
        let dir = inner.config.drone.results_dir.join(&subdir);
        // Results set aside keep their supervisor files: the cap is recorded there.
        let prefix = dir.join(self.prefix.file_name().unwrap_or_default());
        let cap_mb = inner.config.drone.max_results_mb;
        let capped = dir.clone();
        tokio::task::spawn_blocking(move || cap::enforce(&capped, &prefix, cap_mb))
            .await
            .map_err(AttemptError::Manifest)?;
        if infra_failure.is_none() {
            // Parsed before the manifest (and after the cap): the parse reads the
            // results, never writes them.
            let out = inner.journal.parsed_path(self.id);
            let errors = &inner.metrics.parse_errors;
            let kept = crate::parse::parse(&inner.config.drone, dir.clone(), out, errors).await;
            no_space.note("the parsed tests", &kept);
        }
        let written = tokio::task::spawn_blocking(move || Manifest::write(&dir))
            .await
            .map_err(AttemptError::Manifest)?;
        // Without a manifest the results still go; only the check of their copy is lost.
        let verify = no_space.note("the results manifest", &written);
        if let (None, Some(reason)) = (&infra_failure, no_space.verdict()) {
            // Reported Gathering already: the results are set aside now.
            let subdir = set_aside(&inner.config.drone.results_dir, &self.job);
            return Ok(Gathered {
                infra_failure: Some(reason),
                subdir,
                verify: false,
            });
        }
        Ok(Gathered {
            infra_failure,
            subdir,
            verify,
        })
    }

    /// Pushes the results (and those of the special tasks), reporting the first
    /// failed try; returns the infra failure, if any, and whether the copy was
    /// verified against the manifest.
    async fn push(&self, exit_code: i32, gathered: Gathered) -> (Option<String>, bool) {
        self.inner.fault.at_stage("push", self.id);
        let inner = &self.inner;
        let Gathered {
            infra_failure,
            subdir,
            verify,
        } = gathered;
        // The first failed try is reported, so `job show` says why the entry waits.
        let (failures, mut failed) = tokio::sync::mpsc::unbounded_channel();
        let push = self.pusher.push_watched(subdir, verify, Some(failures));
        let watch = async {
            if let Some(reason) = failed.recv().await {
                inner
                    .reporter
                    .send(StatusEvent::PushFailing {
                        entry_id: self.id.entry,
                        attempt: self.id.attempt,
                        reason,
                    })
                    .await;
            }
        };
        let verified = tokio::select! {
            (verified, ()) = async { tokio::join!(push, inner.push_tasks(&self.job, &self.pusher)) } => verified,
            _ = async { watch.await; std::future::pending::<()>().await } => false,
        };
        inner
            .record(
                &self.job,
                Stage::Pushed {
                    exit_code,
                    infra_failure: infra_failure.clone(),
                    verified,
                },
            )
            .await;
        (infra_failure, verified)
    }

    /// Reports Finished and closes the attempt here; results whose copy was verified
    /// are recorded for removal from the drone later (see [`crate::retention`]).
    async fn settle(&self, exit_code: i32, infra_failure: Option<String>, verified: bool) {
        self.inner.fault.at_stage("settle", self.id);
        let inner = &self.inner;
        let subdir = match &infra_failure {
            None => self.job.results_subdir(),
            Some(_) => set_aside_subdir(&self.job),
        };
        let manifest = Manifest::read(&inner.config.drone.results_dir.join(&subdir))
            .ok()
            .map(|m| m.summary());
        let test_failure = match &infra_failure {
            None => cap::exceeded(&self.prefix),
            Some(_) => None,
        };
        // The parsed tests go first, each part confirmed, then the report that ends the
        // attempt and says how many parts there were.
        let parsed = inner.journal.parsed_path(self.id);
        let parts = match &infra_failure {
            None => crate::parse::events(&parsed, self.id.entry, self.id.attempt),
            Some(_) => Vec::new(),
        };
        let test_parts = parts.len() as u32;
        for part in parts {
            inner.reporter.send(part).await;
        }
        inner
            .reporter
            .send(StatusEvent::Finished {
                entry_id: self.id.entry,
                attempt: self.id.attempt,
                exit_code,
                infra_failure,
                test_failure,
                manifest,
                test_parts,
            })
            .await;
        if verified {
            // Before Done: a worker stopped in between settles again and records again.
            self.record_pushed(subdir).await;
        }
        inner.record(&self.job, Stage::Done { exit_code }).await;
        crate::parse::forget(&parsed);
        tracing::info!(exit_code, "entry finished");
        inner.attempts.release(self.id);
        inner.retention.wake();
    }

    /// Records the verified push of `subdir` in `pushed.log`.
    async fn record_pushed(&self, subdir: String) {
        let (inner, entry) = (self.inner.clone(), self.id.entry);
        let recorded =
            tokio::task::spawn_blocking(move || inner.retention.record(entry, &subdir)).await;
        if let Ok(Err(error)) | Err(error) = recorded.map_err(std::io::Error::other) {
            // Only the removal is lost: the results stay on the drone.
            tracing::error!(%error, "cannot record the verified push");
        }
    }
}

/// Opens once: told when the attempt has spawned Autoserv or will not soon.
struct Gate(Option<oneshot::Sender<()>>);

impl Gate {
    fn open(&mut self) {
        if let Some(gate) = self.0.take() {
            let _ = gate.send(());
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}
