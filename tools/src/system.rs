//! The system as the benchmarks run it: the scheduler and two drone workers (the built
//! binaries, separate processes) on a vhost and SQLite database of their own, in the
//! run's directory.

use crate::benchkit::{admin_token, free_port, terminate, wait_blocking};
use api::Client;
use autotest_tests::broker as mq;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The drones the benchmarks run.
pub const DRONES: [&str; 2] = ["drone1", "drone2"];

/// The processes of a benchmark run and what they share.
pub struct System {
    /// The run's directory: config, database, logs, results.
    pub dir: PathBuf,
    /// The run's vhost, removed by [`System::finish`].
    pub vhost: String,
    /// The vhost's AMQP URL.
    pub amqp: String,
    /// The scheduler's process.
    pub scheduler: Child,
    /// The workers' processes, once started.
    pub workers: Vec<Child>,
    /// The scheduler's HTTP API, as `http://127.0.0.1:PORT`.
    pub server: String,
    /// A client of the scheduler's HTTP API.
    pub client: Arc<Client>,
    /// The token of the admin `bench`, which `client` sends.
    pub token: String,
    config: PathBuf,
}

impl System {
    /// Creates the vhost `id` (underscores made dashes), writes the config `config`
    /// gives for the AMQP URL and an HTTP port into `dir`, starts the scheduler and
    /// waits until it answers.
    pub async fn start_scheduler(
        id: &str,
        dir: &Path,
        config: impl FnOnce(&str, u16) -> String,
    ) -> Self {
        let vhost = id.replace('_', "-");
        let amqp = mq::create_vhost(&vhost);
        let port = free_port();
        let config_path = dir.join("global_config.ini");
        std::fs::write(&config_path, config(&amqp, port)).unwrap();
        let token = admin_token(&config_path, "bench");
        let scheduler = Command::new(autotest_tests::binary("autotest-scheduler"))
            .arg("--config")
            .arg(&config_path)
            .stderr(log(dir, "scheduler"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start the scheduler");
        let server = format!("http://127.0.0.1:{port}");
        let client = Arc::new(Client::new(&server).with_token(Some(token.clone())));
        let c = client.clone();
        wait_blocking(move || c.drones().is_ok(), Duration::from_secs(30)).await;
        Self {
            dir: dir.to_path_buf(),
            vhost,
            amqp,
            scheduler,
            workers: vec![],
            server,
            client,
            token,
            config: config_path,
        }
    }

    /// Starts a worker for each of [`DRONES`].
    pub fn start_workers(&mut self) {
        let names: Vec<String> = DRONES.iter().map(|d| d.to_string()).collect();
        self.start_workers_named(&names);
    }

    /// Starts a worker for each drone of `names`, each with its results in
    /// `drone-<name>` of the run's directory.
    pub fn start_workers_named(&mut self, names: &[String]) {
        self.workers = names
            .iter()
            .map(|name| {
                Command::new(autotest_tests::binary("drone-worker"))
                    .arg("--config")
                    .arg(&self.config)
                    .args(["--name", name])
                    .env(
                        "AUTOTEST_DRONE_RESULTS_DIR",
                        self.dir.join(format!("drone-{name}")),
                    )
                    .stderr(log(&self.dir, name))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start a worker")
            })
            .collect();
    }

    /// Waits until the scheduler has heard from every drone.
    pub async fn wait_for_heartbeats(&self) {
        let c = self.client.clone();
        wait_blocking(
            move || {
                c.drones()
                    .map(|d| d.iter().all(|d| d.last_heartbeat.is_some()))
                    .unwrap_or(false)
            },
            Duration::from_secs(120),
        )
        .await;
    }

    /// The workers' process ids.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(Child::id).collect()
    }

    /// Stops the workers, then the scheduler (SIGTERM, and reaped).
    pub fn stop(&mut self) {
        for worker in &mut self.workers {
            terminate(worker);
        }
        terminate(&mut self.scheduler);
    }

    /// Removes the vhost, and the run's directory unless `AUTOTEST_BENCH_KEEP` is set.
    pub fn finish(self) {
        mq::delete_vhost(&self.vhost);
        if std::env::var_os("AUTOTEST_BENCH_KEEP").is_some() {
            println!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn log(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}
