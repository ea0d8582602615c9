//! The Autotest scheduler: stores jobs in SQL, dispatches their entries to drones over
//! RabbitMQ, records what the drones report, and serves the HTTP API `atest` uses.
#![forbid(unsafe_code)]

pub mod api;
pub mod api_map;
pub mod client;
pub mod db;
pub mod dispatch;
pub mod http;
pub mod http_error;
pub mod lost;
pub mod model;
pub mod results;
pub mod status;
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
}

impl Scheduler {
    /// Applies migrations, records the configured drones, binds `[SCHEDULER] http_listen`.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        common::broker::configure_tls(&config.broker);
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

    /// Serves, dispatches and consumes status until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let host = hostname();
        let wake = Arc::new(Notify::new());
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

        let dispatching = Arc::new(dispatch::Shared::new(
            self.config.clone(),
            wake.clone(),
            &format!("autotest-scheduler@{host} (dispatch)"),
        ));
        let dispatcher = dispatch::Dispatcher::new(self.db.clone(), dispatching.clone());
        let dispatch_task = tokio::spawn(dispatcher.run(shutdown.clone()));
        let broker = Arc::new(common::broker::Publisher::new(
            self.config.broker.url.expose(),
            &format!("autotest-scheduler@{host} (control)"),
        ));
        let timers = Arc::new(Notify::new());
        let timeout_task = tokio::spawn(timeouts::run(
            self.db.clone(),
            self.config.clone(),
            broker.clone(),
            timers.clone(),
            shutdown.clone(),
        ));
        let listening = Arc::new(status::Listening::default());
        let status_task = tokio::spawn(status::run(
            status::StatusConsumer {
                db: self.db.clone(),
                config: self.config.clone(),
                wake: wake.clone(),
                timers: timers.clone(),
                publisher: broker.clone(),
                listening: listening.clone(),
                connection_name: format!("autotest-scheduler@{host}"),
            },
            shutdown.clone(),
        ));
        let lost_task = tokio::spawn(lost::run(
            self.db.clone(),
            self.config.clone(),
            listening,
            wake.clone(),
            shutdown.clone(),
        ));
        let state = http::AppState {
            db: self.db.clone(),
            config: self.config.clone(),
            wake,
            broker,
            timers,
            jobs: dispatch::Creator::start(self.db.clone(), Some(dispatching)),
        };
        tracing::info!(http = %self.local_addr(), drones = self.config.scheduler.drones.len(), "scheduler started");
        let mut http_shutdown = shutdown.clone();
        axum::serve(self.listener, http::router(state))
            .with_graceful_shutdown(async move { http_shutdown.wait().await })
            .await
            .context("serving HTTP")?;
        let _ = dispatch_task.await;
        let _ = status_task.await;
        let _ = timeout_task.await;
        let _ = lost_task.await;
        tracing::info!("scheduler stopped");
        Ok(())
    }
}

async fn declare_once(config: &Config, host: &str) -> anyhow::Result<()> {
    let name = format!("autotest-scheduler@{host} (setup)");
    let connection = common::broker::connect(config.broker.url.expose(), &name)
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
