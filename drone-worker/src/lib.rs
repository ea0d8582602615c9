//! The drone worker: consumes its drone's job queue, runs Autoserv for each attempt,
//! pushes the results directory to the results host, and reports each step.
//!
//! Ownership (see ARCHITECTURE.md): a delivery is acked as soon as the attempt is in
//! the local journal, never held while the job runs; from then on the journal and the
//! status reports carry the job. A duplicate delivery of an attempt already journaled is
//! acked and ignored, so Autoserv never starts twice for one attempt.
#![forbid(unsafe_code)]

mod attempt;
pub mod attempts;
pub mod cap;
mod consume;
pub mod contain;
mod contained;
mod control;
mod essential;
pub mod fault;
pub mod journal;
mod keepers;
mod launch;
mod lease;
pub mod manifest;
pub mod metrics;
mod parse;
pub mod pusher;
mod recovered;
pub mod reporter;
pub mod retention;
pub mod runner;
pub mod space;
pub mod spare;
pub mod supervise;
mod tasks;

use attempts::Attempts;
use common::broker;
use common::config::Config;
use common::names::DroneName;
use common::protocol::RunJob;
use common::shutdown::Shutdown;
use essential::Essential;
use journal::{Journal, Stage};
use pusher::{PushTarget, Pusher};
use reporter::Reporter;
use std::sync::Arc;
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
    #[error("{file}: [DRONE] containment = cgroup, but {reason}")]
    Containment { file: String, reason: String },
    #[error("cannot open the spare entry directories in {path}: {source}")]
    Spares {
        path: String,
        source: std::io::Error,
    },
    /// `[DRONE] tls_cert` or `tls_key` cannot be used.
    #[error("{0}")]
    Tls(#[from] common::config::ConfigError),
}

/// One drone's worker.
pub struct Worker {
    inner: Arc<Inner>,
}

/// What the worker's tasks share.
pub(crate) struct Inner {
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
    slots: Arc<Semaphore>,
    /// `autoserv-supervisor`, run in front of Autoserv (by default the one installed
    /// beside this binary), long-lived.
    supervisor: runner::Supervisor,
    /// The attempts held by this process.
    attempts: Attempts,
    lease_file: std::path::PathBuf,
    /// Where this worker serves its results directory (sent in heartbeats).
    results_url: std::sync::OnceLock<String>,
    /// The results server's certificate (`[DRONE] tls_cert`); None: plain HTTP.
    results_tls: Option<Arc<rustls::ServerConfig>>,
    /// Draining before it exits (sent in heartbeats).
    stopping: std::sync::atomic::AtomicBool,
    /// Wakes the heartbeat loop at once.
    beat_now: Notify,
    /// A fault injected on purpose (tests; nothing in a release build).
    fault: fault::Fault,
    /// What `/metrics` on the results server answers.
    metrics: metrics::Metrics,
    /// Verified pushes and the removal of the drone's copy (`keep_pushed_hours`).
    retention: retention::Retention,
}

impl Worker {
    /// Checks that `name` is a configured drone and opens the journal.
    pub fn new(config: Config, name: DroneName) -> Result<Self, StartError> {
        // The results server's certificate files, read before anything is opened.
        let results_tls = config.drone.load_tls()?;
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
        let retention = retention::Retention::open(
            &journal_dir,
            &config.drone.results_dir,
            config.retention.keep_pushed,
        )
        .map_err(|source| StartError::Journal {
            path: journal_dir.join(retention::LOG).display().to_string(),
            source,
        })?;
        let spares_dir = config.drone.results_dir.join(".spare").join(name.as_str());
        let entry_spares =
            spare::Spares::open(&spares_dir, spare::Kind::EntryDir, capacity.clamp(1, 32))
                .map_err(|source| StartError::Spares {
                    path: spares_dir.display().to_string(),
                    source,
                })?;
        let containment =
            contain::Mode::detect(config.drone.containment, name.as_str()).map_err(|reason| {
                StartError::Containment {
                    file: config.path.display().to_string(),
                    reason,
                }
            })?;
        let lease_file = journal_dir.join("lease");
        let metrics = metrics::Metrics::new(name.as_str(), config.scheduler.drone_timeout_sec);
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
                slots: Arc::new(Semaphore::new(capacity)),
                supervisor: runner::Supervisor::new(
                    std::env::current_exe()
                        .ok()
                        .and_then(|exe| Some(exe.parent()?.join("autoserv-supervisor")))
                        .unwrap_or_else(|| "autoserv-supervisor".into()),
                    containment,
                ),
                attempts: Attempts::default(),
                lease_file,
                results_url: std::sync::OnceLock::new(),
                results_tls,
                stopping: Default::default(),
                beat_now: Notify::new(),
                fault: fault::Fault::from_env(),
                metrics,
                retention,
                config,
            }),
        })
    }

    /// Uses `path` (an `autoserv-supervisor` binary) in front of Autoserv;
    /// for embedding the worker in another program, such as the tests.
    pub fn with_supervisor(mut self, path: std::path::PathBuf) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let containment = inner.supervisor.containment.clone();
            inner.supervisor = runner::Supervisor::new(path, containment);
        }
        self
    }

    /// Injects `fault` (see [`fault`]) instead of the one the environment chooses.
    #[cfg(any(test, debug_assertions))]
    pub fn with_fault(mut self, fault: fault::Fault) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.fault = fault;
        }
        self
    }

    /// Runs until `shutdown`, then stops consuming and waits for the attempts it holds
    /// (the drain), heartbeating, keeping its lease and serving results meanwhile.
    ///
    /// Returns an error naming the task if one of its essential tasks (see
    /// [`essential`]) ends or panics before the drain is over: the process exits and
    /// the service manager starts it again.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let inner = self.inner;
        let span = tracing::info_span!("worker", drone.name = %inner.name);
        inner.serve(shutdown).instrument(span).await
    }
}

impl Inner {
    /// [`Worker::run`], in the worker's span.
    async fn serve(self: Arc<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        // What must go on during the drain stops only after it.
        let (drained, until_drained) = Shutdown::new();
        let mut essential = Essential::new(self.clone());
        let (pusher, push_loop) = Pusher::new(
            PushTarget {
                drone_results: self.config.drone.results_dir.clone(),
                results_host: self.config.scheduler.results_host.clone(),
                results_dir: self.config.scheduler.results_dir.clone(),
                ssh_options: self.config.drone.ssh_options.clone(),
                retry_max: Duration::from_secs(self.config.drone.push_retry_max_sec),
            },
            self.metrics.push.clone(),
        );
        essential.spawn("pusher", push_loop);
        if let Some(server) = self.serve_results(&until_drained).await? {
            essential.spawn("results server", async move {
                let _ = server.await;
            });
        }
        essential.spawn("spares refill", self.clone().refill_loop());
        self.recover(&pusher).await;
        // After the recovery, so the attempts it resumed are held.
        essential.spawn("remover", self.clone().removal_loop(until_drained.clone()));
        essential.spawn(
            "heartbeat",
            self.clone().heartbeat_loop(until_drained.clone()),
        );
        let stopping = tokio::spawn(self.clone().announce_stopping(shutdown.clone()));
        essential.spawn(
            "lease keeper",
            self.clone().lease_loop(until_drained.clone()),
        );
        tracing::info!(
            capacity = self.capacity,
            queue = %self.queue,
            containment = %self.supervisor.containment.describe(),
            "drone worker started"
        );
        // The pusher's own handle is kept until the end, so it does not end with the
        // last attempt.
        essential.spawn_consumer(self.clone().consume_until_drained(pusher.clone(), shutdown));
        let ended = essential.until_one_ends().await;
        stopping.abort();
        drop(pusher);
        match ended {
            Ok(()) => {
                // Drained: what served the drain stops now.
                drained.trigger();
                essential.stop().await;
                self.reporter.close().await;
                tracing::info!("drone worker stopped");
                Ok(())
            }
            Err(error) => {
                // What it holds stays in the journal for the next start; the tasks
                // still running stop as the set of essential tasks is dropped.
                Err(error)
            }
        }
    }

    /// Serves the results directory over HTTP if `[DRONE] http_listen` says so; the
    /// server's task.
    async fn serve_results(
        self: &Arc<Self>,
        until_drained: &Shutdown,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(address) = self.config.drone.http_listen else {
            return Ok(None);
        };
        let root = self.config.drone.results_dir.clone();
        let tls = self.results_tls.clone();
        let https = tls.is_some();
        let metrics = metrics::router(self.clone());
        let (bound, server) =
            common::results_http::listen(root, address, tls, metrics, until_drained.clone())
                .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot serve results on [DRONE] http_listen {address}: {e} (set another address, or off)"
                )
            })?;
        let url = self
            .config
            .drone
            .results_url
            .clone()
            .unwrap_or_else(|| default_results_url(bound, https));
        tracing::info!(%url, "serving results");
        let _ = self.results_url.set(url);
        Ok(Some(server))
    }

    /// Once `shutdown` comes, tells the scheduler (which then sends nothing new).
    async fn announce_stopping(self: Arc<Self>, mut shutdown: Shutdown) {
        shutdown.wait().await;
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.beat_now.notify_one();
        let holding = self.attempts.count();
        if holding > 0 {
            tracing::info!(
                entries = holding,
                "stopped consuming; waiting for running entries to finish"
            );
        }
    }

    async fn put(&self, job: &RunJob, stage: Stage) -> std::io::Result<()> {
        let journal = self.journal.clone();
        let job = job.clone();
        tokio::task::spawn_blocking(move || journal.put(&job, stage))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Advances the journal of `job` to `stage`; a failure is logged (the attempt
    /// goes on: the journal matters only after a restart).
    async fn record(&self, job: &RunJob, stage: Stage) {
        if let Err(error) = self.put(job, stage).await {
            tracing::error!(%error, "cannot update the journal");
        }
    }
}

/// `http://<address>:<port>` (`https://` when the server answers HTTPS), with this
/// machine's name for an address that listens on all interfaces.
fn default_results_url(bound: std::net::SocketAddr, https: bool) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() => common::hostname().unwrap_or_else(|_| "localhost".into()),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{host}:{}", bound.port())
}
