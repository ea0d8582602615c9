//! The dispatcher: woken by events (a new job, a finished entry, a freed slot), never
//! by a timer. One cycle records a batch of assignments in one transaction, then
//! publishes their job messages with confirms; a dispatch whose publish is not
//! confirmed stays Starting with its attempt and is published again (the worker's
//! journal ignores a second delivery of the same attempt).

mod creator;
mod plan;

pub use creator::Creator;
pub use plan::{Decision, Plan};

use crate::db::assign::{self, Assignment, Run};
use crate::db::dispatch_view::{self, Candidate, DispatchView};
use crate::db::{Db, DbError};
use common::backoff::Backoff;
use common::broker::{self, BrokerError, Publisher};
use common::config::Config;
use common::names::{DroneName, HostName};
use common::protocol::{self, RunJob, SCHEMA_VERSION};
use common::shutdown::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// What a cycle found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing more can start now: wait for the next event.
    Idle,
    /// More may start at once: run another cycle.
    More,
}

/// Why a cycle failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{failed} of {total} dispatches could not be published: {first}")]
    Publish {
        failed: usize,
        total: usize,
        first: BrokerError,
    },
}

/// Dispatches queued entries to drones.
pub struct Dispatcher {
    db: Db,
    shared: Arc<Shared>,
}

/// What the dispatcher shares with job creation, which dispatches the jobs it stores in
/// their own transaction when it can (see [`Creator`]): one commit on the path of
/// a job in an idle lab instead of two, and no wake-up in between.
pub struct Shared {
    config: Arc<Config>,
    publisher: Publisher,
    /// Wakes the dispatcher.
    pub wake: Arc<Notify>,
    /// Held from reading the dispatch view to recording its assignments: two dispatches
    /// at once would both count the same free slots.
    pub lock: tokio::sync::Mutex<()>,
    /// A publish by job creation was not confirmed: the dispatcher publishes the entries
    /// left in Starting again.
    republish: AtomicBool,
    drone_names: Vec<String>,
    max_start: i64,
}

impl Shared {
    pub fn new(config: Arc<Config>, wake: Arc<Notify>, connection_name: &str) -> Self {
        let publisher = Publisher::new(&config.broker, connection_name);
        let drone_names = config
            .scheduler
            .drones
            .iter()
            .map(|d| d.to_string())
            .collect();
        let max_start = i64::from(config.scheduler.max_jobs_started_per_cycle);
        Self {
            config,
            publisher,
            wake,
            lock: tokio::sync::Mutex::new(()),
            republish: AtomicBool::new(false),
            drone_names,
            max_start,
        }
    }

    /// The configured drones, by name.
    pub fn drone_names(&self) -> &[String] {
        &self.drone_names
    }

    /// Drones heard from since then (UTC microseconds) count as alive.
    pub fn alive_since(&self) -> i64 {
        let timeout =
            i64::try_from(self.config.scheduler.drone_timeout_sec).unwrap_or(i64::MAX / 2);
        common::time::now_micros() - timeout * 1_000_000
    }

    /// Queued entries of each kind to read with `free` slots free.
    pub fn fetch(&self, free: i64) -> i64 {
        plan::fetch_size(free, self.max_start)
    }

    /// Decides what to start from `view`: None when no slot is free.
    pub fn decide(&self, view: &mut DispatchView) -> Option<Decision> {
        plan::decide(view, self.max_start)
    }

    /// Publishes the job messages of runs recorded by job creation. One not confirmed
    /// stays Starting: the dispatcher is told to publish it again.
    pub async fn publish_recorded(&self, runs: Vec<Assignment>) {
        for Assignment { candidate, drone } in runs {
            let hosts = vec![candidate.hostname.clone()];
            if let Err(error) = self.publish(&candidate, &hosts, &drone).await {
                tracing::warn!(%error, entry.id = candidate.entry_id, "publish not confirmed; the entry stays Starting and is published again");
                self.republish.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
        }
    }
}

impl Dispatcher {
    pub fn new(db: Db, shared: Arc<Shared>) -> Self {
        Self { db, shared }
    }

    /// Runs cycles whenever woken, until shutdown.
    pub async fn run(self, mut shutdown: Shutdown) {
        // Entries left in Starting by a previous run, and dispatches whose publish was
        // not confirmed, are published again with the same attempt.
        let mut republish = true;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            let woken = self.shared.wake.notified();
            republish |= self.shared.republish.swap(false, Ordering::Relaxed);
            if republish {
                republish = !self.republish_starting().await;
            }
            let cycle = self.cycle().await;
            if matches!(cycle, Err(DispatchError::Publish { .. })) {
                republish = true;
            }
            match cycle {
                Ok(Progress::More) => continue,
                Ok(Progress::Idle) => backoff.reset(),
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::error!(%error, retry_in = ?delay, "dispatch cycle failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait() => return,
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Entries in Starting may never have been published (a previous run stopped, or a
    /// publish was not confirmed): publish them again with the same attempt; a worker
    /// that has it already ignores the copy. An unconfirmed publish may still have
    /// reached the queue, so the entry is never given a new attempt for it: that could
    /// run two attempts at once. Returns whether all went out.
    async fn republish_starting(&self) -> bool {
        match assign::starting(&self.db).await {
            Ok(list) if !list.is_empty() => {
                tracing::info!(
                    entries = list.len(),
                    "republishing entries left in Starting"
                );
                for Run { lead, hosts, drone } in list {
                    // A fresh message, a fresh clock for reconciling with heartbeats.
                    let touched = assign::redispatched(&self.db, lead.attempt_id()).await;
                    if let Err(error) = touched {
                        tracing::error!(%error, "cannot record the republish");
                        continue;
                    }
                    if let Err(error) = self.shared.publish(&lead, &hosts, &drone).await {
                        tracing::warn!(%error, entry.id = lead.entry_id, "republish failed; will try again");
                        return false;
                    }
                }
                true
            }
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, "cannot read entries left in Starting");
                false
            }
        }
    }

    /// One dispatch cycle.
    pub async fn cycle(&self) -> Result<Progress, DispatchError> {
        let began = std::time::Instant::now();
        let shared = &self.shared;
        // Released once the assignments are recorded, before publishing.
        let dispatching = shared.lock.lock().await;
        let mut view = dispatch_view::dispatch_view(
            &self.db,
            shared.drone_names(),
            shared.alive_since(),
            |free| shared.fetch(free),
        )
        .await?;
        let Some(mut decision) = shared.decide(&mut view) else {
            return Ok(Progress::Idle);
        };
        let Plan {
            picks,
            groups,
            reservations,
        } = std::mem::take(&mut decision.plan);
        let reserved = if reservations.is_empty() {
            0
        } else {
            assign::reserve(&self.db, reservations).await?
        };
        if picks.is_empty() && groups.is_empty() {
            // Entries that went Pending may complete a group: look again.
            return Ok(if reserved > 0 {
                Progress::More
            } else {
                Progress::Idle
            });
        }
        let picked = (picks.len() + groups.len()) as i64;
        let planned = began.elapsed();
        let mut runs: Vec<Run> = Vec::new();
        if !picks.is_empty() {
            for Assignment { candidate, drone } in assign::assign(&self.db, picks).await? {
                let hosts = vec![candidate.hostname.clone()];
                runs.push(Run {
                    lead: candidate,
                    hosts,
                    drone,
                });
            }
        }
        for plan::GroupStart { members, drone } in groups {
            if let Some(members) = assign::assign_group(&self.db, members, &drone).await? {
                let hosts = members.iter().map(|m| m.hostname.clone()).collect();
                runs.push(Run {
                    lead: members[0].clone(),
                    hosts,
                    drone,
                });
            }
        }
        drop(dispatching);
        let recorded = began.elapsed();
        let results = futures_util::future::join_all(
            runs.iter()
                .map(|run| shared.publish(&run.lead, &run.hosts, &run.drone)),
        )
        .await;
        let total = runs.len();
        let mut failures = Vec::new();
        for (run, result) in runs.iter().zip(results) {
            if let Err(error) = result {
                tracing::warn!(%error, entry.id = run.lead.entry_id, "publish not confirmed; the entry stays Starting and is published again");
                failures.push(error);
            }
        }
        let failed = failures.len();
        if let Some(first) = failures.into_iter().next() {
            return Err(DispatchError::Publish {
                failed,
                total,
                first,
            });
        }
        tracing::debug!(
            dispatched = total,
            planned_us = planned.as_micros() as u64,
            recorded_us = recorded.as_micros() as u64,
            published_us = began.elapsed().as_micros() as u64,
            "dispatch cycle"
        );
        Ok(if decision.more(picked) {
            Progress::More
        } else {
            Progress::Idle
        })
    }
}

impl Shared {
    async fn publish(
        &self,
        candidate: &Candidate,
        hosts: &[HostName],
        drone: &DroneName,
    ) -> Result<(), BrokerError> {
        let message = build_message(candidate, hosts, drone);
        // A job message not taken within drone_timeout_sec expires: by then the entry
        // may have been given to another drone (see `lost`), and a drone coming back
        // must not find the old attempt waiting.
        let ttl_ms = self.config.scheduler.drone_timeout_sec.saturating_mul(1000);
        let properties =
            broker::json_properties(&message.delivery_id(), "autotest.run", "autotest-scheduler")
                .with_expiration(ttl_ms.to_string().into());
        self.publisher
            .publish(
                broker::JOBS_EXCHANGE,
                drone.as_str(),
                &protocol::encode(&message),
                properties,
            )
            .await?;
        tracing::info!(entry.id = candidate.entry_id, job.id = candidate.job_id, attempt = candidate.attempt, drone.name = %drone, hosts = %hosts.iter().map(HostName::as_str).collect::<Vec<_>>().join(","), "dispatched");
        Ok(())
    }
}

/// The job message of `candidate`'s current attempt on `hosts`, sent to `drone`: its
/// names were validated where they entered the system and as they were read back.
fn build_message(candidate: &Candidate, hosts: &[HostName], drone: &DroneName) -> RunJob {
    RunJob {
        schema: SCHEMA_VERSION,
        entry_id: candidate.entry_id,
        job_id: candidate.job_id,
        attempt: candidate.attempt,
        drone: drone.clone(),
        hosts: hosts.to_vec(),
        owner: candidate.owner.clone(),
        job_name: candidate.job_name.clone(),
        execution_subdir: candidate.execution_subdir.clone(),
        control_file: candidate.control_file.clone(),
        tasks: candidate.job_tasks.tasks(candidate.host_dirty),
        sender_version: common::VERSION.to_string(),
    }
}
