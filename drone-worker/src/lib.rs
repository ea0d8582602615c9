//! The drone worker: consumes its drone's job queue, runs Autoserv for each attempt,
//! pushes the results directory to the results host, and reports each step.
//!
//! Ownership (see ARCHITECTURE.md): a delivery is acked as soon as the attempt is in
//! the local journal, never held while the job runs; from then on the journal and the
//! status reports carry the job. A duplicate delivery of an attempt already journaled is
//! acked and ignored, so Autoserv never starts twice for one attempt.
#![forbid(unsafe_code)]

pub mod journal;
pub mod manifest;
pub mod pusher;
pub mod reporter;
pub mod runner;
pub mod spare;
pub mod supervise;

use common::broker;
use common::config::Config;
use common::names::DroneName;
use common::names::HostName;
use common::protocol::{self, RunJob, StatusEvent, TaskKind, TaskOutcome};
use common::shutdown::Shutdown;
use futures_util::StreamExt;
use journal::{Journal, Stage};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{message::Delivery, Channel};
use manifest::Manifest;
use pusher::{PushTarget, Pusher};
use reporter::Reporter;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("drone {name:?} is not in [SCHEDULER] drones of {file} (known drones: {known}); add it there or pass --name")]
    UnknownDrone {
        name: String,
        file: String,
        known: String,
    },
    #[error("cannot open the journal in {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the spare entry directories in {path}: {source}")]
    Spares {
        path: String,
        source: std::io::Error,
    },
}

/// One drone's worker.
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    name: DroneName,
    config: Config,
    queue: String,
    capacity: usize,
    journal: Journal,
    /// Entry directories made ahead (see [`spare`]).
    entry_spares: spare::Spares,
    /// Wakes the refill of spares (one was taken).
    refill: Notify,
    reporter: Reporter,
    slots: Semaphore,
    /// `autoserv-supervisor`, run in front of Autoserv (by default the one installed
    /// beside this binary), long-lived.
    supervisor: runner::Supervisor,
    /// The supervisor files (see [`supervise::prefix`]) of the attempts running now.
    running: Mutex<std::collections::HashMap<(i64, i32), std::path::PathBuf>>,
    /// Attempts the scheduler asked to abort.
    aborted: Mutex<std::collections::HashSet<(i64, i32)>>,
    /// Attempts held by this process: (entry id, attempt).
    held: Mutex<BTreeSet<(i64, i32)>>,
    /// The lease (see [`supervise`]): which held attempts were settled (their exit
    /// reported and confirmed) and which were not when it expired.
    lease: Mutex<LeaseState>,
    lease_file: std::path::PathBuf,
    idle: Notify,
    /// Where this worker serves its results directory (sent in heartbeats).
    results_url: std::sync::OnceLock<String>,
    /// Draining before it exits (sent in heartbeats).
    stopping: std::sync::atomic::AtomicBool,
    /// Wakes the heartbeat loop at once.
    beat_now: Notify,
}

impl Worker {
    /// Checks that `name` is a configured drone and opens the journal.
    pub fn new(config: Config, name: DroneName) -> Result<Self, StartError> {
        if !config.scheduler.drones.contains(&name) {
            return Err(StartError::UnknownDrone {
                name: name.to_string(),
                file: config.path.display().to_string(),
                known: config
                    .scheduler
                    .drones
                    .iter()
                    .map(|d| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let journal_dir = config
            .drone
            .results_dir
            .join(".journal")
            .join(name.as_str());
        let capacity = config
            .drone
            .max_processes
            .unwrap_or_else(|| config.scheduler.capacity_of(&name)) as usize;
        // Deliveries are prefetched up to twice the capacity and each is journaled at
        // once; entries start up to the capacity at once.
        let journal =
            Journal::open(&journal_dir, (2 * capacity).clamp(1, 64)).map_err(|source| {
                StartError::Journal {
                    path: journal_dir.display().to_string(),
                    source,
                }
            })?;
        let spares_dir = config.drone.results_dir.join(".spare").join(name.as_str());
        let entry_spares =
            spare::Spares::open(&spares_dir, spare::Kind::EntryDir, capacity.clamp(1, 32))
                .map_err(|source| StartError::Spares {
                    path: spares_dir.display().to_string(),
                    source,
                })?;
        let lease_file = journal_dir.join("lease");
        let reporter = Reporter::new(&config.broker, name.clone(), lease_file.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                queue: broker::drone_queue(&name),
                name,
                capacity,
                journal,
                entry_spares,
                refill: Notify::new(),
                reporter,
                slots: Semaphore::new(capacity),
                supervisor: runner::Supervisor::new(
                    std::env::current_exe()
                        .ok()
                        .and_then(|exe| Some(exe.parent()?.join("autoserv-supervisor")))
                        .unwrap_or_else(|| "autoserv-supervisor".into()),
                ),
                held: Mutex::new(BTreeSet::new()),
                lease: Mutex::new(LeaseState::default()),
                lease_file,
                running: Mutex::new(Default::default()),
                aborted: Mutex::new(Default::default()),
                idle: Notify::new(),
                results_url: std::sync::OnceLock::new(),
                stopping: Default::default(),
                beat_now: Notify::new(),
                config,
            }),
        })
    }

    /// Uses `path` (an `autoserv-supervisor` binary) in front of Autoserv;
    /// for embedding the worker in another program, such as the tests.
    pub fn with_supervisor(mut self, path: std::path::PathBuf) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("not shared before run")
            .supervisor = runner::Supervisor::new(path);
        self
    }

    /// Runs until `shutdown`, then stops consuming and waits for the attempts it holds
    /// (the drain), heartbeating, keeping its lease and serving results meanwhile.
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let inner = self.inner;
        let span = tracing::info_span!("worker", drone.name = %inner.name);
        // What must go on during the drain stops only after it.
        let (drained, until_drained) = Shutdown::new();
        async move {
            let pusher = Pusher::start(PushTarget {
                drone_results: inner.config.drone.results_dir.clone(),
                results_host: inner.config.scheduler.results_host.clone(),
                results_dir: inner.config.scheduler.results_dir.clone(),
                ssh_options: inner.config.drone.ssh_options.clone(),
                retry_max: Duration::from_secs(inner.config.drone.push_retry_max_sec),
            });
            if let Some(address) = inner.config.drone.http_listen {
                let root = inner.config.drone.results_dir.clone();
                let (bound, _) =
                    common::results_http::listen(root, address, until_drained.clone())
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot serve results on [DRONE] http_listen {address}: {e} (set another address, or off)"
                        )
                    })?;
                let url = inner
                    .config
                    .drone
                    .results_url
                    .clone()
                    .unwrap_or_else(|| default_results_url(bound));
                tracing::info!(%url, "serving results");
                let _ = inner.results_url.set(url);
            }
            let refill = tokio::spawn(inner.clone().refill_loop());
            inner.recover(&pusher).await;
            let heartbeat = tokio::spawn(inner.clone().heartbeat_loop(until_drained.clone()));
            let stopping = {
                let (inner, mut shutdown) = (inner.clone(), shutdown.clone());
                tokio::spawn(async move {
                    shutdown.wait().await;
                    // The scheduler sends nothing new once it hears this.
                    inner
                        .stopping
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    inner.beat_now.notify_one();
                    let holding = inner.held.lock().expect("held lock").len();
                    if holding > 0 {
                        tracing::info!(entries = holding, "stopped consuming; waiting for running entries to finish");
                    }
                })
            };
            let lease = tokio::spawn(inner.clone().lease_loop(until_drained.clone()));
            tracing::info!(capacity = inner.capacity, queue = %inner.queue, "drone worker started");
            let mut backoff = Duration::from_millis(200);
            loop {
                let was_stopping = shutdown.is_triggered();
                if was_stopping && inner.held.lock().expect("held lock").is_empty() {
                    break;
                }
                match inner.consume(&pusher, &mut shutdown).await {
                    Ok(()) => break,
                    Err(error) if is_fatal(&error) => {
                        // What it holds stays in the journal for a compatible release.
                        stopping.abort();
                        heartbeat.abort();
                        lease.abort();
                        refill.abort();
                        tracing::error!(error = %format!("{error:#}"), "cannot work with this vhost");
                        return Err(error);
                    }
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "lost the broker, reconnecting");
                        // Draining, it reconnects to hear aborts, until it holds nothing.
                        let mut signal = shutdown.clone();
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = signal.wait(), if !was_stopping => {}
                            _ = inner.drained(), if was_stopping => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            inner.drained().await;
            drained.trigger();
            stopping.abort();
            heartbeat.abort();
            lease.abort();
            refill.abort();
            inner.reporter.close().await;
            tracing::info!("drone worker stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl Inner {
    /// Connects, declares, consumes until shutdown (Ok) or a broker failure (Err).
    async fn consume(
        self: &Arc<Self>,
        pusher: &Pusher,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<()> {
        // Reconnected while draining: aborts only, no jobs.
        let mut draining = shutdown.is_triggered();
        let control_queue = broker::control_queue(&self.name);
        let (connection, channel, mut consumer, mut control) =
            broker::within("setting up the drone's consumers", async {
                let url = &self.config.broker;
                let connection =
                    broker::connect(url, &format!("drone-worker@{}", self.name)).await?;
                broker::declare_common_if_allowed(&connection).await?;
                let channel = broker::confirm_channel(&connection).await?;
                broker::declare_drone_queue(&channel, &self.name).await?;
                let prefetch = (self.capacity * 2).clamp(1, 1000) as u16;
                channel
                    .basic_qos(prefetch, BasicQosOptions::default())
                    .await?;
                let consumer = if draining {
                    None
                } else {
                    Some(
                        channel
                            .basic_consume(
                                self.queue.as_str().into(),
                                format!("drone-worker@{}", self.name).into(),
                                BasicConsumeOptions::default(),
                                FieldTable::default(),
                            )
                            .await?,
                    )
                };
                let control = channel
                    .basic_consume(
                        control_queue.as_str().into(),
                        format!("drone-worker@{} (control)", self.name).into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                Ok::<_, anyhow::Error>((connection, channel, consumer, control))
            })
            .await?;
        tracing::info!(queue = %self.queue, control = %control_queue, "consuming");
        self.reporter.contact();
        loop {
            tokio::select! {
                _ = shutdown.wait(), if !draining => {
                    // No new jobs (what was delivered and not taken goes back to the
                    // queue with the connection); aborts are still heard until the
                    // entries held are done.
                    if let Some(consumer) = &consumer {
                        let _ = channel
                            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                            .await;
                    }
                    draining = true;
                }
                _ = self.drained(), if draining => {
                    broker::close(&connection, "drone worker shutting down").await;
                    return Ok(());
                }
                next = async { consumer.as_mut()?.next().await }, if !draining => match next {
                    Some(Ok(delivery)) => self.on_delivery(&channel, delivery, pusher).await,
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the broker cancelled the consumer"),
                },
                next = control.next() => match next {
                    Some(Ok(delivery)) => self.on_control(&channel, delivery, &control_queue).await,
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the broker cancelled the control consumer"),
                },
            }
        }
    }

    /// Completes once no attempt is held.
    async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.held.lock().expect("held lock").is_empty() {
                return;
            }
            idle.await;
        }
    }

    async fn on_control(self: &Arc<Self>, channel: &Channel, delivery: Delivery, queue: &str) {
        let control = match protocol::decode::<protocol::Control>(&delivery.data) {
            Ok(control) if control.drone == self.name => control,
            Ok(control) => {
                let reason = format!("addressed to drone {}, not {}", control.drone, self.name);
                return reject(channel, &delivery, queue, &reason).await;
            }
            Err(error) => return reject(channel, &delivery, queue, &error.to_string()).await,
        };
        match control.command {
            protocol::ControlCommand::Abort {
                entry_id,
                attempt,
                grace_sec,
            } => {
                self.abort(entry_id, attempt, Duration::from_secs(grace_sec))
                    .await;
            }
        }
        ack(&delivery).await;
    }

    /// Stops an attempt: SIGTERM to its process group, SIGKILL after `grace` if it is
    /// still there; an attempt not started yet will not start.
    async fn abort(self: &Arc<Self>, entry_id: i64, attempt: i32, grace: Duration) {
        let key = (entry_id, attempt);
        self.aborted.lock().expect("aborted lock").insert(key);
        let prefix = self
            .running
            .lock()
            .expect("running lock")
            .get(&key)
            .cloned();
        let Some(prefix) = prefix else {
            tracing::info!(
                entry.id = entry_id,
                attempt,
                "abort noted; the attempt is not running here"
            );
            return;
        };
        // Autoserv's pid (its process group), written by the supervisor as it starts.
        let mut pgid = supervise::recorded_pid(&prefix);
        for _ in 0..50 {
            if pgid.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            pgid = supervise::recorded_pid(&prefix);
        }
        let Some(pgid) = pgid else {
            tracing::error!(
                entry.id = entry_id,
                attempt,
                "cannot abort: Autoserv's process group is unknown"
            );
            return;
        };
        tracing::info!(
            entry.id = entry_id,
            attempt,
            pgid,
            ?grace,
            "aborting: SIGTERM to the process group"
        );
        signal_group(pgid, "TERM").await;
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let still = inner
                .running
                .lock()
                .expect("running lock")
                .contains_key(&key);
            if still {
                tracing::warn!(
                    entry.id = entry_id,
                    attempt,
                    pgid,
                    "still running after the grace period: SIGKILL"
                );
                signal_group(pgid, "KILL").await;
            }
        });
    }

    async fn on_delivery(self: &Arc<Self>, channel: &Channel, delivery: Delivery, pusher: &Pusher) {
        tracing::debug!(delivery_tag = delivery.delivery_tag, "delivery received");
        let job = match protocol::decode::<RunJob>(&delivery.data) {
            Ok(job) if job.drone == self.name => job,
            Ok(job) => {
                let reason = format!("addressed to drone {}, not {}", job.drone, self.name);
                return reject(channel, &delivery, &self.queue, &reason).await;
            }
            Err(error) => return reject(channel, &delivery, &self.queue, &error.to_string()).await,
        };
        let key = (job.entry_id, job.attempt);
        let duplicate = self.held.lock().expect("held lock").contains(&key)
            || self.journal.knows(job.entry_id, job.attempt);
        if duplicate {
            tracing::info!(
                entry.id = job.entry_id,
                attempt = job.attempt,
                "duplicate delivery ignored"
            );
            ack(&delivery).await;
            return;
        }
        // Journal first (no fsync yet), start at once, and ack only once the journal
        // is on disk: a crash before the ack means a redelivery, which the journal
        // recognises; a power cut before it also took Autoserv down with it.
        // In place: a small write, and waiting for a blocking-pool thread and then
        // for this task to be woken again cost more than it does.
        let journaled = tokio::task::block_in_place(|| self.journal.put(&job, Stage::Accepted));
        if let Err(error) = journaled {
            tracing::error!(%error, entry.id = job.entry_id, "cannot journal the job; handing it back");
            let _ = broker::requeue(&delivery).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        self.held.lock().expect("held lock").insert(key);
        tracing::debug!(entry.id = job.entry_id, "journaled");
        let span = tracing::info_span!(
            "entry",
            entry.id = job.entry_id,
            job.id = job.job_id,
            attempt = job.attempt
        );
        let (entry_id, attempt) = key;
        let (gate, opened) = tokio::sync::oneshot::channel();
        tokio::spawn(
            self.clone()
                .drive(job, Stage::Accepted, pusher.clone(), Some(gate))
                .instrument(span),
        );
        let journal = self.journal.clone();
        tokio::spawn(async move {
            // The fsync waits until Autoserv is spawned (or has to wait): creating the
            // entry's files during a journal commit of the filesystem would stall.
            let _ = opened.await;
            let synced = tokio::task::spawn_blocking(move || journal.sync(entry_id, attempt)).await;
            // NotFound: the attempt ended at once (refused) and its record moved to
            // the done log already.
            if let Ok(Err(error)) = synced.as_ref().map(|r| r.as_ref().map_err(|e| e.kind())) {
                if error == std::io::ErrorKind::NotFound {
                    tracing::debug!(entry.id = entry_id, "journal record already closed");
                    return ack(&delivery).await;
                }
            }
            if let Ok(Err(error)) = synced {
                tracing::error!(%error, entry.id = entry_id, "cannot fsync the journal; acking anyway (the job is running)");
            }
            ack(&delivery).await;
        });
    }

    async fn put(&self, job: &RunJob, stage: Stage) -> std::io::Result<()> {
        let journal = self.journal.clone();
        let job = job.clone();
        tokio::task::spawn_blocking(move || journal.put(&job, stage))
            .await
            .map_err(std::io::Error::other)?
    }

    async fn record(&self, job: &RunJob, stage: Stage) {
        if let Err(error) = self.put(job, stage).await {
            tracing::error!(%error, "cannot update the journal");
        }
    }

    /// Keeps the spare journal records and entry directories (see [`spare`]) filled:
    /// at start, and each time a start took one.
    async fn refill_loop(self: Arc<Self>) {
        loop {
            let inner = self.clone();
            let made = tokio::task::spawn_blocking(move || {
                (inner.journal.refill(), inner.entry_spares.refill())
            })
            .await;
            let failed = match made {
                Ok((records, entries)) => {
                    if let Err(error) = &records {
                        tracing::warn!(%error, "cannot make spare journal records; retrying in 10 s");
                    }
                    if let Err(error) = &entries {
                        tracing::warn!(%error, "cannot make spare entry directories; retrying in 10 s");
                    }
                    records.is_err() || entries.is_err()
                }
                Err(error) => {
                    tracing::error!(%error, "making spares failed; retrying in 10 s");
                    true
                }
            };
            // Starts make their files themselves meanwhile.
            if failed {
                tokio::time::sleep(Duration::from_secs(10)).await;
            } else {
                self.refill.notified().await;
            }
        }
    }

    /// Takes an attempt from `stage` to Finished.
    /// `gate` is told once Autoserv is spawned, or when the start has to wait (for a
    /// slot, a special task) or will not happen.
    async fn drive(
        self: Arc<Self>,
        job: RunJob,
        stage: Stage,
        pusher: Pusher,
        gate: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let mut gate = Gate(gate);
        let (entry_id, attempt) = (job.entry_id, job.attempt);
        let dir = runner::entry_dir(&self.config.drone.results_dir, &job);
        let prefix = supervise::prefix(&dir, attempt);
        // Started before a crash, but the journal did not say so yet.
        let stage = match (stage, supervise::recorded_pid(&prefix)) {
            (Stage::Accepted, Some(pid)) => Stage::Running { pid },
            (stage, _) => stage,
        };
        let exit_code = match stage {
            Stage::Accepted => {
                let _slot = match self.slots.try_acquire() {
                    Ok(slot) => slot,
                    Err(_) => {
                        gate.open();
                        self.slots
                            .acquire()
                            .await
                            .expect("semaphore is never closed")
                    }
                };
                let aborted = self
                    .aborted
                    .lock()
                    .expect("aborted lock")
                    .contains(&(entry_id, attempt));
                let lease_lost = self
                    .lease
                    .lock()
                    .expect("lease lock")
                    .lost
                    .contains(&(entry_id, attempt));
                let mut blocked = if lease_lost {
                    Some("the drone lost the broker before the attempt started".to_string())
                } else if aborted {
                    Some("aborted before it started".to_string())
                } else {
                    None
                };
                if blocked.is_none() && !job.tasks.is_empty() {
                    gate.open();
                    match self.before_job(&job).await {
                        BeforeJob::Go => {}
                        BeforeJob::Stopped(reason) => blocked = Some(reason),
                        BeforeJob::Repaired => {
                            // `atest host repair`: no job to run.
                            self.push_all(&job, &pusher).await;
                            self.reporter
                                .send(StatusEvent::Finished {
                                    entry_id,
                                    attempt,
                                    exit_code: 0,
                                    infra_failure: None,
                                    manifest: None,
                                })
                                .await;
                            self.record(&job, Stage::Done { exit_code: 0 }).await;
                            return self.release(entry_id, attempt);
                        }
                        BeforeJob::RepairFailed { host, reason } => {
                            tracing::warn!(%host, %reason, "repair failed: the job does not run");
                            self.push_all(&job, &pusher).await;
                            self.reporter
                                .send(StatusEvent::RepairFailed {
                                    entry_id,
                                    attempt,
                                    host,
                                    reason: reason.clone(),
                                })
                                .await;
                            self.record(&job, Stage::Refused { reason }).await;
                            return self.release(entry_id, attempt);
                        }
                    }
                }
                let started = if let Some(reason) = blocked {
                    Err(reason)
                } else {
                    runner::start(
                        &dir,
                        &job,
                        &self.config.autoserv.command,
                        &self.supervisor,
                        &self.lease(),
                        &self.entry_spares,
                    )
                    .await
                    .map_err(|error| error.to_string())
                };
                gate.open();
                // Handed to the long-lived supervisor, which starts Autoserv at once:
                // Running goes out meanwhile, as it did once a supervisor of the
                // attempt's own was spawned. Its pid is in the journal, not the report.
                let reported = matches!(&started, Ok(start) if start.is_handed());
                let started = match started {
                    Ok(start) => {
                        self.running
                            .lock()
                            .expect("running lock")
                            .insert((entry_id, attempt), prefix.clone());
                        let (started, ()) = tokio::join!(start.started(), async {
                            if reported {
                                self.reporter
                                    .send(StatusEvent::Running {
                                        entry_id,
                                        attempt,
                                        pid: 0,
                                    })
                                    .await
                            }
                        });
                        started.map_err(|error| error.to_string())
                    }
                    Err(reason) => Err(reason),
                };
                let started = match started {
                    Ok(started) => started,
                    Err(reason) => {
                        self.running
                            .lock()
                            .expect("running lock")
                            .remove(&(entry_id, attempt));
                        self.refill.notify_one();
                        tracing::warn!(%reason, "Autoserv not started");
                        self.record(
                            &job,
                            Stage::Refused {
                                reason: reason.clone(),
                            },
                        )
                        .await;
                        self.reporter
                            .send(StatusEvent::Refused {
                                entry_id,
                                attempt,
                                reason,
                            })
                            .await;
                        return self.release(entry_id, attempt);
                    }
                };
                let pid = started.pid;
                tracing::info!(pid, "Autoserv started");
                // The journal and the report are independent: do both at once. New
                // spares wait until the report is out (on a small machine, making
                // them meanwhile slowed it down).
                tokio::join!(self.record(&job, Stage::Running { pid }), async {
                    if !reported {
                        self.reporter
                            .send(StatusEvent::Running {
                                entry_id,
                                attempt,
                                pid,
                            })
                            .await
                    }
                });
                self.refill.notify_one();
                let exit_code = runner::wait(started).await;
                if job.tasks.cleanup_after
                    && supervise::lease_expired(&prefix).is_none()
                    && !self.is_aborted(&job)
                {
                    self.after_job(&job).await;
                }
                exit_code
            }
            Stage::Running { pid } => {
                gate.open();
                tracing::info!(
                    pid,
                    "re-attaching to an Autoserv started before the worker restarted"
                );
                self.running
                    .lock()
                    .expect("running lock")
                    .insert((entry_id, attempt), prefix.clone());
                let exit_code = runner::wait_recovered(&prefix).await;
                // The cleanup after the job is part of the attempt: one started before
                // the restart is re-attached to (or its recorded end taken), one not
                // started yet runs now.
                if job.tasks.cleanup_after
                    && supervise::lease_expired(&prefix).is_none()
                    && !self.is_aborted(&job)
                {
                    self.after_job(&job).await;
                }
                exit_code
            }
            Stage::Exited { exit_code, .. } | Stage::Pushed { exit_code, .. } => exit_code,
            Stage::Done { .. } | Stage::Refused { .. } => return self.release(entry_id, attempt),
        };
        self.running
            .lock()
            .expect("running lock")
            .remove(&(entry_id, attempt));
        let mut infra_failure = match &stage {
            Stage::Exited { infra_failure, .. } | Stage::Pushed { infra_failure, .. } => {
                infra_failure.clone()
            }
            _ => supervise::lease_expired(&prefix).or_else(|| self.lease_lost(entry_id, attempt)),
        };
        if !matches!(stage, Stage::Pushed { .. }) {
            tracing::info!(
                exit_code,
                ?infra_failure,
                "Autoserv exited; pushing results"
            );
            self.record(
                &job,
                Stage::Exited {
                    exit_code,
                    infra_failure: infra_failure.clone(),
                },
            )
            .await;
            infra_failure = match infra_failure {
                None => {
                    self.reporter
                        .send(StatusEvent::Gathering {
                            entry_id,
                            attempt,
                            exit_code,
                        })
                        .await;
                    // Settled only if the lease did not run out before the broker had it.
                    self.settle(entry_id, attempt)
                }
                some => some,
            };
            let subdir = match &infra_failure {
                None => job.results_subdir(),
                Some(_) => set_aside(&self.config.drone.results_dir, &job),
            };
            let dir = self.config.drone.results_dir.join(&subdir);
            let written = tokio::task::spawn_blocking(move || Manifest::write(&dir))
                .await
                .expect("writing the manifest does not panic");
            if let Err(error) = &written {
                // The results still go; only the check of their copy is lost.
                tracing::error!(%error, results = %subdir, "cannot write the results manifest");
            }
            // The first failed try is reported, so `job show` says why the entry waits.
            let (failures, mut failed) = tokio::sync::mpsc::unbounded_channel();
            let push = pusher.push_watched(subdir, written.is_ok(), Some(failures));
            let watch = async {
                if let Some(reason) = failed.recv().await {
                    self.reporter
                        .send(StatusEvent::PushFailing {
                            entry_id,
                            attempt,
                            reason,
                        })
                        .await;
                }
            };
            tokio::select! {
                _ = async { tokio::join!(push, self.push_tasks(&job, &pusher)) } => {}
                _ = async { watch.await; std::future::pending::<()>().await } => {}
            }
            self.record(
                &job,
                Stage::Pushed {
                    exit_code,
                    infra_failure: infra_failure.clone(),
                },
            )
            .await;
        }
        let subdir = match &infra_failure {
            None => job.results_subdir(),
            Some(_) => set_aside_subdir(&job),
        };
        let manifest = Manifest::read(&self.config.drone.results_dir.join(subdir))
            .ok()
            .map(|m| m.summary());
        self.reporter
            .send(StatusEvent::Finished {
                entry_id,
                attempt,
                exit_code,
                infra_failure,
                manifest,
            })
            .await;
        self.record(&job, Stage::Done { exit_code }).await;
        tracing::info!(exit_code, "entry finished");
        self.release(entry_id, attempt);
    }

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
        if self.lease_lost(job.entry_id, job.attempt).is_some() {
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
        self.running
            .lock()
            .expect("running lock")
            .insert((entry_id, attempt), prefix.clone());
        let template = match task {
            TaskKind::Verify => &self.config.autoserv.verify_command,
            TaskKind::Repair => &self.config.autoserv.repair_command,
            TaskKind::Cleanup => &self.config.autoserv.cleanup_command,
        };
        let exit_code = if let Some(code) = supervise::recorded_exit(&prefix) {
            code
        } else if supervise::recorded_pid(&prefix).is_some_and(supervise::is_alive) {
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
        self.running
            .lock()
            .expect("running lock")
            .remove(&(entry_id, attempt));
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
    async fn before_job(&self, job: &RunJob) -> BeforeJob {
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
    async fn after_job(&self, job: &RunJob) {
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

    fn is_aborted(&self, job: &RunJob) -> bool {
        self.aborted
            .lock()
            .expect("aborted lock")
            .contains(&(job.entry_id, job.attempt))
    }

    /// Pushes the special tasks' results of the job's hosts, if it had any.
    async fn push_tasks(&self, job: &RunJob, pusher: &Pusher) {
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
    async fn push_all(&self, job: &RunJob, pusher: &Pusher) {
        self.push_tasks(job, pusher).await;
    }

    fn lease(&self) -> runner::Lease {
        runner::Lease {
            file: self.lease_file.clone(),
            secs: self.config.scheduler.drone_timeout_sec,
        }
    }

    /// Why the lease makes this attempt an infra failure, if it does.
    fn lease_lost(&self, entry_id: i64, attempt: i32) -> Option<String> {
        let lease = self.lease.lock().expect("lease lock");
        lease
            .lost
            .contains(&(entry_id, attempt))
            .then(|| LEASE_LOST.to_string())
    }

    /// The exit of an attempt is with the broker: from now on the attempt is the
    /// scheduler's to judge, whatever the lease does. Returns the infra failure if the
    /// lease ran out first.
    fn settle(&self, entry_id: i64, attempt: i32) -> Option<String> {
        let mut lease = self.lease.lock().expect("lease lock");
        if lease.lost.contains(&(entry_id, attempt)) {
            return Some(LEASE_LOST.to_string());
        }
        lease.settled.insert((entry_id, attempt));
        None
    }

    /// Watches the lease: once the broker has confirmed nothing from this drone for
    /// `drone_timeout_sec`, every held attempt not settled yet is lost to this drone
    /// (the scheduler will retry it elsewhere): one not started will not start, one
    /// running is stopped by its supervisor, and their results are set aside.
    async fn lease_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let timeout = Duration::from_secs(self.config.scheduler.drone_timeout_sec);
        let mut expired = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait() => return,
            }
            let silent = self.reporter.since_contact();
            if silent <= timeout {
                if expired {
                    tracing::info!("the broker is back: the lease is renewed");
                }
                expired = false;
                continue;
            }
            let held: Vec<(i64, i32)> = self
                .held
                .lock()
                .expect("held lock")
                .iter()
                .copied()
                .collect();
            let mut lease = self.lease.lock().expect("lease lock");
            let newly: Vec<(i64, i32)> = held
                .into_iter()
                .filter(|key| !lease.settled.contains(key) && !lease.lost.contains(key))
                .collect();
            lease.lost.extend(newly.iter().copied());
            drop(lease);
            if !expired || !newly.is_empty() {
                tracing::error!(
                    silent_sec = silent.as_secs(),
                    attempts = ?newly,
                    "the broker has confirmed nothing from this drone for longer than drone_timeout_sec: the lease expired; unsettled attempts are stopped and will be reported as infra failures"
                );
            }
            expired = true;
        }
    }

    fn release(&self, entry_id: i64, attempt: i32) {
        {
            let mut lease = self.lease.lock().expect("lease lock");
            lease.settled.remove(&(entry_id, attempt));
            lease.lost.remove(&(entry_id, attempt));
        }
        let mut held = self.held.lock().expect("held lock");
        held.remove(&(entry_id, attempt));
        if held.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Picks up the attempts a previous run of this worker left unfinished.
    async fn recover(self: &Arc<Self>, pusher: &Pusher) {
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
            let mut lease = self.lease.lock().expect("lease lock");
            for record in &records {
                lease.lost.insert((record.job.entry_id, record.job.attempt));
            }
        }
        for record in records {
            let job = record.job;
            tracing::info!(entry.id = job.entry_id, attempt = job.attempt, stage = ?record.stage, "resuming an attempt from the journal");
            self.held
                .lock()
                .expect("held lock")
                .insert((job.entry_id, job.attempt));
            let span = tracing::info_span!(
                "entry",
                entry.id = job.entry_id,
                job.id = job.job_id,
                attempt = job.attempt
            );
            tokio::spawn(
                self.clone()
                    .drive(job, record.stage, pusher.clone(), None)
                    .instrument(span),
            );
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let every = Duration::from_secs(self.config.drone.heartbeat_sec);
        loop {
            let running: Vec<(i64, i32)> = self
                .held
                .lock()
                .expect("held lock")
                .iter()
                .copied()
                .collect();
            // A heartbeat that did not go out is tried again soon: until one does, the
            // scheduler counts this drone as lost and sends it nothing.
            let next = match self
                .reporter
                .try_send(&StatusEvent::Heartbeat {
                    running,
                    results_url: self.results_url.get().cloned(),
                    stopping: self.stopping.load(std::sync::atomic::Ordering::Relaxed),
                })
                .await
            {
                Ok(()) => every,
                Err(error) => {
                    tracing::debug!(%error, "heartbeat not sent");
                    every.min(Duration::from_millis(500))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = shutdown.wait() => return,
                _ = self.beat_now.notified() => {}
            }
        }
    }
}

/// How the special tasks before a job went.
enum BeforeJob {
    /// Run the job.
    Go,
    /// Aborted meanwhile: do not run the job.
    Stopped(String),
    /// A repair-only attempt whose repairs passed: nothing more to run.
    Repaired,
    /// A host could not be brought back: the job does not run.
    RepairFailed { host: HostName, reason: String },
}

/// The lease's view of the held attempts.
#[derive(Debug, Default)]
struct LeaseState {
    settled: BTreeSet<(i64, i32)>,
    lost: BTreeSet<(i64, i32)>,
}

const LEASE_LOST: &str =
    "the drone lost the broker for longer than drone_timeout_sec before the attempt was settled (its lease expired)";

/// Moves the results of an attempt lost to the lease beside the entry's directory, to
/// `<subdir>.attempt-<N>`, so the retry on another drone owns the entry's directory on
/// the results host; returns the new subdir to push.
fn set_aside(drone_results: &std::path::Path, job: &RunJob) -> String {
    let subdir = set_aside_subdir(job);
    let from = drone_results.join(job.results_subdir());
    let to = drone_results.join(&subdir);
    if from.exists() && !to.exists() {
        if let Err(error) = std::fs::rename(&from, &to) {
            tracing::error!(%error, from = %from.display(), to = %to.display(), "cannot set the results aside");
        }
    }
    subdir
}

/// Opens once: told when [`Inner::drive`] has spawned Autoserv or will not soon.
struct Gate(Option<tokio::sync::oneshot::Sender<()>>);

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

/// `http://<address>:<port>`, with this machine's name for an address that listens on
/// all interfaces.
fn default_results_url(bound: std::net::SocketAddr) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() => common::hostname().unwrap_or_else(|_| "localhost".into()),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", bound.port())
}

/// Where [`set_aside`] puts an attempt's results.
fn set_aside_subdir(job: &RunJob) -> String {
    format!("{}.attempt-{}", job.results_subdir(), job.attempt)
}

/// Sends a signal to a process group (by `kill`, so no unsafe code is needed).
async fn signal_group(pgid: u32, signal: &str) {
    let result = tokio::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::error!(%error, pgid, signal, "cannot run kill");
    }
}

/// Whether a broker failure is one retrying cannot fix.
fn is_fatal(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<broker::BrokerError>()
            .is_some_and(broker::BrokerError::is_fatal)
    })
}

/// Moves an unreadable message from `queue` to the dead-letter queue, with the reason.
async fn reject(channel: &Channel, delivery: &Delivery, queue: &str, reason: &str) {
    tracing::warn!(
        queue,
        reason,
        "unreadable message moved to the dead-letter queue"
    );
    if let Err(error) = broker::dead_letter(channel, delivery, queue, reason).await {
        tracing::error!(%error, "could not dead-letter the message; it stays on the queue");
    }
}

async fn ack(delivery: &Delivery) {
    match broker::ack(delivery, false).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("ack not sent (channel gone); the broker will redeliver and the duplicate will be ignored"),
        Err(error) => tracing::warn!(%error, "ack failed; the broker will redeliver and the duplicate will be ignored"),
    }
}
