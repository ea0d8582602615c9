//! The Autotest scheduler: stores jobs in SQL, dispatches their entries to drones over
//! RabbitMQ, records what the drones report, and serves the HTTP API `atest` uses.
#![forbid(unsafe_code)]

pub mod api;
pub mod api_map;
pub mod auth;
pub mod client;
pub mod db;
pub mod dispatch;
pub mod health;
pub mod http;
pub mod http_acl;
pub mod http_error;
pub mod http_lists;
pub mod http_results;
pub mod http_tests;
pub mod intake;
pub mod job_limits;
pub mod lost;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod own_disk;
pub mod pages;
pub mod results;
pub mod retention;
pub mod sender;
pub mod status;
pub mod tasks;
pub mod timeouts;

use anyhow::Context;
use common::config::Config;
use common::shutdown::Shutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Notify;

/// A scheduler whose database is migrated and whose HTTP port is bound.
pub struct Scheduler {
    config: Arc<Config>,
    db: db::Db,
    listener: tokio::net::TcpListener,
    /// The API's certificate and key (`[SCHEDULER] tls_cert`, `tls_key`); None: plain
    /// HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// A fault to inject into one task (debug builds only).
    #[cfg(debug_assertions)]
    fault: Option<(tasks::Task, tasks::Fault)>,
}

impl Scheduler {
    /// Applies migrations, records the configured drones, binds `[SCHEDULER] http_listen`.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        // Its own certificate files, read before anything is opened or bound.
        let tls = config.scheduler.load_tls()?;
        if config.scheduler.drones.is_empty() {
            tracing::warn!(
                config = %config.path.display(),
                "[SCHEDULER] drones is empty: no drone will be given work; jobs will wait in the queue until drones are listed"
            );
        }
        let db = db::Db::open(&config.database)
            .await
            .context("opening the database")?;
        db::drones::sync_from_config(&db, &config.scheduler)
            .await
            .context("recording the configured drones")?;
        let listener = tokio::net::TcpListener::bind(config.scheduler.http_listen)
            .await
            .with_context(|| format!("binding {}", config.scheduler.http_listen))?;
        Ok(Self {
            config: Arc::new(config),
            db,
            listener,
            tls,
            #[cfg(debug_assertions)]
            fault: None,
        })
    }

    /// Where the HTTP API listens (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The database pool (for tests and tools).
    pub fn db(&self) -> &db::Db {
        &self.db
    }

    /// Makes `task` suffer `fault` once it is started by [`Scheduler::run`] (debug
    /// builds only: for tests of the supervision).
    #[cfg(debug_assertions)]
    pub fn inject_fault(&mut self, task: tasks::Task, fault: tasks::Fault) {
        self.fault = Some((task, fault));
    }

    /// Serves, dispatches and consumes status until `shutdown`. If an essential task
    /// ends before (returns, fails or panics), the others are stopped and the error
    /// names it.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let host = hostname();
        // Declare the topology before dispatching, so the first publish is routable. A
        // broker that is down is not fatal: the API serves, jobs queue in the database,
        // and the status consumer declares everything once it connects.
        if let Err(error) = declare_once(&self.config, &host).await {
            let fatal = error.chain().any(|e| {
                e.downcast_ref::<common::broker::BrokerError>()
                    .is_some_and(common::broker::BrokerError::is_fatal)
            });
            if fatal {
                return Err(error);
            }
            tracing::warn!(error = %format!("{error:#}"), "the broker is unreachable; serving the API and retrying in the background");
        }
        let tasks = tasks::Tasks::new();
        #[cfg(debug_assertions)]
        let tasks = tasks.with_fault(self.fault);
        let local_addr = self.local_addr();
        self.spawn_tasks(tasks, &host, shutdown.clone())
            .supervise(|| shutdown.is_triggered())
            .await?;
        tracing::info!(http = %local_addr, "scheduler stopped");
        Ok(())
    }

    /// Starts the essential tasks.
    fn spawn_tasks(self, mut tasks: tasks::Tasks, host: &str, shutdown: Shutdown) -> tasks::Tasks {
        use tasks::Task;
        let metrics = Arc::new(metrics::Metrics::new());
        let wake = Arc::new(Notify::new());
        let dispatching = Arc::new(dispatch::Shared::new(
            self.config.clone(),
            wake.clone(),
            &format!("autotest-scheduler@{host} (dispatch)"),
        ));
        let dispatcher = dispatch::Dispatcher::new(self.db.clone(), dispatching.clone());
        tasks.spawn(Task::Dispatcher, ended(dispatcher.run(shutdown.clone())));
        let broker = Arc::new(common::broker::Publisher::new(
            &self.config.broker,
            &format!("autotest-scheduler@{host} (control)"),
        ));
        let timers = Arc::new(Notify::new());
        let timeout_keeper = timeouts::run(
            self.db.clone(),
            self.config.clone(),
            broker.clone(),
            timers.clone(),
            shutdown.clone(),
        );
        tasks.spawn(Task::TimeoutKeeper, ended(timeout_keeper));
        let listening = Arc::new(status::Listening::default());
        let gate = Arc::new(sender::Gate::new(&self.config));
        gate.warn_if_shared();
        let status_consumer = status::run(
            status::StatusConsumer {
                db: self.db.clone(),
                config: self.config.clone(),
                wake: wake.clone(),
                timers: timers.clone(),
                publisher: broker.clone(),
                listening: listening.clone(),
                connection_name: format!("autotest-scheduler@{host}"),
                gate,
                metrics: metrics.clone(),
            },
            shutdown.clone(),
        );
        tasks.spawn(Task::StatusConsumer, ended(status_consumer));
        let lost_drone_keeper = lost::run(
            self.db.clone(),
            self.config.clone(),
            listening.clone(),
            broker.clone(),
            wake.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        tasks.spawn(Task::LostDroneKeeper, ended(lost_drone_keeper));
        let mailer = notify::run(self.db.clone(), self.config.clone(), shutdown.clone());
        tasks.spawn(Task::Mailer, ended(mailer));
        let keeper = retention::Keeper::new(self.db.clone(), self.config.clone(), metrics.clone());
        tasks.spawn(
            Task::ResultsKeeper,
            ended(keeper.clone().run(shutdown.clone())),
        );
        let state = http::AppState {
            keeper,
            db: self.db.clone(),
            config: self.config.clone(),
            wake,
            broker,
            timers,
            jobs: dispatch::Creator::start(
                self.db.clone(),
                Some(dispatching),
                metrics.jobs_created(),
            ),
        };
        let router = http::router(state.clone())
            .merge(pages::router(state.clone()))
            .merge(health::router(health::Health {
                db: self.db.clone(),
                listening,
            }))
            .merge(metrics::scrape::router(metrics::scrape::MetricsState {
                db: self.db.clone(),
                config: self.config.clone(),
                metrics,
            }))
            .layer(axum::middleware::from_fn_with_state(
                state,
                auth::caller::guard,
            ));
        tracing::info!(http = %self.local_addr(), https = self.tls.is_some(), drones = self.config.scheduler.drones.len(), "scheduler started");
        let mut http_shutdown = shutdown;
        let server = common::tls::serve(self.listener, self.tls, router, async move {
            http_shutdown.wait().await
        });
        tasks.spawn(
            Task::Http,
            async move { server.await.context("serving HTTP") },
        );
        tasks
    }
}

/// A task that returns nothing, as a supervised task's body.
async fn ended(task: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    task.await;
    Ok(())
}

async fn declare_once(config: &Config, host: &str) -> anyhow::Result<()> {
    let name = format!("autotest-scheduler@{host} (setup)");
    let connection = common::broker::connect(&config.broker, &name)
        .await
        .context("connecting to the broker")?;
    common::broker::within("declaring the broker topology", async {
        let channel = connection.create_channel().await?;
        status::declare_topology(&channel, config)
            .await
            .context("declaring the broker topology")
    })
    .await?;
    common::broker::close(&connection, "topology declared").await;
    Ok(())
}

/// This machine's name, for connection names in the management UI.
pub fn hostname() -> String {
    common::hostname().unwrap_or_else(|_| "localhost".into())
}
