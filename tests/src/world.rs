//! A test world: its own vhost, database and directories, the real scheduler and real
//! drone workers running against them, and a teardown that checks the broker was left
//! clean.

pub mod users;

use crate::broker as mq;
use common::config::Config;
use common::names::DroneName;
use common::shutdown::{Shutdown, ShutdownTrigger};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use scheduler::api::{CreateHost, CreateJob, JobView};
use scheduler::client::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Which database the suite runs against.
#[derive(Clone, Debug)]
enum TestDb {
    Sqlite,
    Mysql { server_url: String, name: String },
}

/// The MySQL/MariaDB server the tests and benchmarks use (`AUTOTEST_TEST_MYSQL_URL`).
pub fn mysql_server_url() -> String {
    std::env::var("AUTOTEST_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://autotest_test:autotest_test@127.0.0.1:3306".into())
}

/// user, password, host, port from `mysql://user:password@host:port`.
pub fn mysql_parts(url: &str) -> (String, String, String, String) {
    let rest = url.trim_start_matches("mysql://");
    let (creds, addr) = rest.split_once('@').expect("user:password@host:port");
    let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
    let addr = addr.trim_end_matches('/');
    let (host, port) = addr.split_once(':').unwrap_or((addr, "3306"));
    (user.into(), password.into(), host.into(), port.into())
}

/// Runs `sql` on the server at `server_url`; panics, saying so, when it cannot.
pub async fn mysql_exec(server_url: &str, sql: &str) {
    let mut conn = AsyncMysqlConnection::establish(server_url)
        .await
        .unwrap_or_else(|e| {
            panic!("MySQL at {server_url} unreachable ({e}); deploy/test.sh sets it up")
        });
    conn.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Builds a world.
pub struct WorldBuilder {
    drones: Vec<(String, u32)>,
    worker_max_processes: Option<u32>,
    extra: Vec<(String, String, String)>,
    start_workers: bool,
    least_privilege: bool,
    tls: Option<(u16, PathBuf)>,
    /// The CA the world's clients trust (the servers answer HTTPS).
    ca_file: Option<PathBuf>,
}

impl Default for WorldBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WorldBuilder {
    pub fn new() -> Self {
        Self {
            drones: Vec::new(),
            worker_max_processes: None,
            extra: Vec::new(),
            start_workers: true,
            least_privilege: false,
            tls: None,
            ca_file: None,
        }
    }

    /// A drone with its capacity in `[SCHEDULER]`.
    pub fn drone(mut self, name: &str, capacity: u32) -> Self {
        self.drones.push((name.into(), capacity));
        self
    }

    /// `[DRONE] max_processes`: the workers' own limit.
    pub fn worker_max_processes(mut self, n: u32) -> Self {
        self.worker_max_processes = Some(n);
        self
    }

    /// Any other config line.
    pub fn config(mut self, section: &str, key: &str, value: &str) -> Self {
        self.extra.push((section.into(), key.into(), value.into()));
        self
    }

    /// Broker users made by `deploy/rabbitmq-setup.sh`: the scheduler and each drone
    /// connect with their own least-privilege user instead of guest.
    pub fn least_privilege(mut self) -> Self {
        self.least_privilege = true;
        self
    }

    /// Everything reaches the broker over TLS (`amqps://`) on `port`, trusting the CA
    /// certificates in `ca_file`.
    pub fn tls(mut self, port: u16, ca_file: &Path) -> Self {
        self.tls = Some((port, ca_file.to_path_buf()));
        self
    }

    /// The scheduler's API and the drones' results servers answer HTTPS with the
    /// server certificate of `certs`; the scheduler, `world.api` and `world.atest`
    /// trust its CA.
    pub fn https(mut self, certs: &crate::certs::TestCa) -> Self {
        let (cert, key) = (certs.server_cert(), certs.server_key());
        for section in ["SCHEDULER", "DRONE"] {
            self = self
                .config(section, "tls_cert", &cert.display().to_string())
                .config(section, "tls_key", &key.display().to_string());
        }
        self.ca_file = Some(certs.ca());
        self.config(
            "SCHEDULER",
            "drone_ca_file",
            &certs.ca().display().to_string(),
        )
    }

    /// Do not start the workers (the test starts them itself).
    pub fn without_workers(mut self) -> Self {
        self.start_workers = false;
        self
    }

    /// Creates the vhost, database and directories; starts the scheduler and workers.
    pub async fn start(self) -> World {
        common::telemetry::init_for_test();
        let id = crate::unique("autotest_test");
        let temp = tempfile::Builder::new()
            .prefix(&format!("{id}_"))
            .tempdir()
            .expect("temp dir");
        let dir = temp.path().to_path_buf();
        let vhost = id.replace('_', "-");
        let amqp_url = mq::create_vhost(&vhost);
        let db = match std::env::var("AUTOTEST_TEST_DB").as_deref() {
            Ok("mysql") => {
                let server_url = mysql_server_url();
                mysql_exec(&server_url, &format!("CREATE DATABASE {id}")).await;
                TestDb::Mysql {
                    server_url,
                    name: id.clone(),
                }
            }
            _ => TestDb::Sqlite,
        };
        let mut sections: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
        let mut put = |s: &'static str, k: &str, v: String| {
            sections.entry(s).or_default().push((k.into(), v))
        };
        match &db {
            TestDb::Sqlite => put(
                "AUTOTEST_WEB",
                "database",
                dir.join("autotest.db").display().to_string(),
            ),
            TestDb::Mysql { server_url, name } => {
                let (user, password, host, port) = mysql_parts(server_url);
                put("AUTOTEST_WEB", "db_type", "mysql".into());
                put("AUTOTEST_WEB", "database", name.clone());
                put("AUTOTEST_WEB", "host", host);
                put("AUTOTEST_WEB", "port", port);
                put("AUTOTEST_WEB", "user", user);
                put("AUTOTEST_WEB", "password", password);
            }
        }
        let names: Vec<&str> = self.drones.iter().map(|(n, _)| n.as_str()).collect();
        put("SCHEDULER", "drones", names.join(", "));
        for (name, capacity) in &self.drones {
            put(
                "SCHEDULER",
                &format!("{name}_max_processes"),
                capacity.to_string(),
            );
        }
        put("SCHEDULER", "results_host", "localhost".into());
        put(
            "SCHEDULER",
            "results_dir",
            dir.join("results").display().to_string(),
        );
        put("SCHEDULER", "http_listen", "127.0.0.1:0".into());
        put(
            "DRONE",
            "results_dir",
            dir.join("drone-results").display().to_string(),
        );
        put("DRONE", "heartbeat_sec", "1".into());
        // Kept live, but low enough that a test machine's own disk never makes a
        // drone low-disk (tests of that use a small filesystem of their own).
        put("DRONE", "min_free_mb", "1".into());
        put("DRONE", "http_listen", "127.0.0.1:0".into());
        if let Some(n) = self.worker_max_processes {
            put("DRONE", "max_processes", n.to_string());
        }
        let autoserv = crate::repo_root().join("deploy/demo-autoserv.sh");
        put(
            "AUTOSERV",
            "command",
            format!("{} -p -r {{results_dir}} -m {{hosts}} -u {{owner}} -l {{job_name}} {{control_file}}", autoserv.display()),
        );
        // Special tasks by the same stand-in, acting on files in <world>/hoststate.
        let state = dir.join("hoststate");
        std::fs::create_dir_all(&state).expect("host state dir");
        for (key, flag) in [
            ("verify_command", "-v"),
            ("repair_command", "-R"),
            ("cleanup_command", "-C"),
        ] {
            put(
                "AUTOSERV",
                key,
                format!(
                    "{} --state-dir {} {flag} -m {{hosts}} -r {{results_dir}}",
                    autoserv.display(),
                    state.display()
                ),
            );
        }
        // With least privilege, the users and their URLs come from the setup script.
        let mut drone_urls = BTreeMap::new();
        let mut broker_users = Vec::new();
        let scheduler_url = if self.least_privilege {
            let out = dir.join("rabbitmq");
            let names: Vec<&str> = self.drones.iter().map(|(n, _)| n.as_str()).collect();
            let status =
                std::process::Command::new(crate::repo_root().join("deploy/rabbitmq-setup.sh"))
                    .args(["--vhost", &vhost, "--drones", &names.join(",")])
                    .args(["--prefix", &format!("{vhost}-")])
                    .arg("--out")
                    .arg(&out)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run deploy/rabbitmq-setup.sh");
            assert!(status.success(), "deploy/rabbitmq-setup.sh failed");
            let mut scheduler_url = String::new();
            for line in std::fs::read_to_string(out.join("credentials"))
                .expect("credentials")
                .lines()
            {
                let (user, url) = line.split_once(' ').expect("USER URL");
                broker_users.push(user.to_string());
                match user.strip_prefix(&format!("{vhost}-drone-")) {
                    Some(drone) => {
                        drone_urls.insert(drone.to_string(), url.to_string());
                    }
                    None => scheduler_url = url.to_string(),
                }
            }
            scheduler_url
        } else {
            amqp_url.clone()
        };
        let scheduler_url = match &self.tls {
            Some((port, ca_file)) => {
                put("BROKER", "ca_file", ca_file.display().to_string());
                scheduler_url.replacen("amqp://", "amqps://", 1).replacen(
                    ":5672/",
                    &format!(":{port}/"),
                    1,
                )
            }
            None => scheduler_url,
        };
        put("BROKER", "url", scheduler_url);
        let mut text = String::new();
        for (section, pairs) in &sections {
            text.push_str(&format!("[{section}]\n"));
            for (k, v) in pairs {
                text.push_str(&format!("{k}: {v}\n"));
            }
            for (s, k, v) in &self.extra {
                if s == section {
                    text.push_str(&format!("{k}: {v}\n"));
                }
            }
        }
        for (s, k, v) in &self.extra {
            if !sections.contains_key(s.as_str()) {
                text.push_str(&format!("[{s}]\n{k}: {v}\n"));
            }
        }
        let config_path = dir.join("global_config.ini");
        std::fs::write(&config_path, &text).expect("write config");
        let config = Config::from_parts(&config_path, &text, std::iter::empty())
            .expect("test config is valid");

        let mut world = World {
            dir,
            _temp: temp,
            vhost,
            amqp_url,
            config_path,
            config: config.clone(),
            db,
            server: String::new(),
            scheduler: None,
            workers: BTreeMap::new(),
            torn_down: false,
            drone_urls,
            broker_users,
            ca_file: self.ca_file,
            token: None,
        };
        world.start_scheduler().await;
        if self.start_workers {
            for (name, _) in &self.drones {
                world.start_worker(name).await;
            }
            // Ready once the scheduler has heard from every drone: until then it sends
            // a drone nothing, which would skew tests about how work is spread.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let drones = world.api(|c| c.drones()).await.expect("drone list");
                if drones.iter().all(|d| d.status == "ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "drones never heard from: {drones:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        world
    }
}

struct Running {
    trigger: ShutdownTrigger,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A running test world.
pub struct World {
    /// This world's directory (removed with the world).
    pub dir: PathBuf,
    _temp: tempfile::TempDir,
    pub vhost: String,
    pub amqp_url: String,
    pub config_path: PathBuf,
    pub config: Config,
    db: TestDb,
    server: String,
    scheduler: Option<Running>,
    workers: BTreeMap<String, Running>,
    torn_down: bool,
    /// Each drone's own broker URL (least privilege), else the config's.
    drone_urls: BTreeMap<String, String>,
    /// Broker users made for this world, removed at teardown.
    broker_users: Vec<String>,
    /// The CA `api` and `atest` trust, when the scheduler answers HTTPS.
    ca_file: Option<PathBuf>,
    /// The token of the admin `tester`, made when the scheduler first starts; sent by
    /// [`World::api`] and [`World::atest`].
    token: Option<String>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder::new()
    }

    /// The scheduler's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Where results land on the (local) results host.
    pub fn results_dir(&self) -> PathBuf {
        self.config.scheduler.results_dir.clone()
    }

    /// The config a worker named `name` runs with: its own results directory.
    pub fn worker_config(&self, name: &str) -> Config {
        let mut config = self.config.clone();
        config.drone.results_dir = self.dir.join(format!("drone-{name}"));
        if let Some(url) = self.drone_urls.get(name) {
            config.broker.url = common::config::Secret::new(url.clone());
        }
        config
    }

    pub async fn start_scheduler(&mut self) {
        let scheduler = scheduler::Scheduler::start(self.config.clone())
            .await
            .expect("scheduler starts");
        let scheme = match self.config.scheduler.tls {
            Some(_) => "https",
            None => "http",
        };
        self.server = format!("{scheme}://{}", scheduler.local_addr());
        if self.token.is_none() {
            let added = scheduler::auth::add_user(scheduler.db(), users::ADMIN, true)
                .await
                .expect("admin user created");
            self.token = Some(added.token);
        }
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(scheduler.run(shutdown));
        self.scheduler = Some(Running { trigger, task });
    }

    /// Stops the scheduler gracefully and waits for it (it must stop cleanly).
    pub async fn stop_scheduler(&mut self) {
        if let Some(running) = self.scheduler.take() {
            running.trigger.trigger();
            running
                .task
                .await
                .expect("scheduler task")
                .expect("scheduler stops cleanly");
        }
    }

    /// Kills the scheduler the hard way: its task is dropped mid-flight, with no
    /// graceful shutdown (the nearest in-process stand-in for SIGKILL).
    pub async fn kill_scheduler(&mut self) {
        if let Some(running) = self.scheduler.take() {
            running.task.abort();
            let _ = running.task.await;
        }
    }

    pub async fn start_worker(&mut self, name: &str) {
        let worker = drone_worker::Worker::new(
            self.worker_config(name),
            DroneName::new(name).expect("valid drone name"),
        )
        .expect("worker starts")
        .with_supervisor(crate::binary("autoserv-supervisor"));
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(worker.run(shutdown));
        self.workers.insert(name.into(), Running { trigger, task });
    }

    /// Starts an in-process worker whose config is changed by `adjust`, running
    /// Autoserv through `supervisor` (for drones that are broken or cut off on purpose).
    pub async fn start_worker_with(
        &mut self,
        name: &str,
        adjust: impl FnOnce(&mut Config),
        supervisor: PathBuf,
    ) {
        let mut config = self.worker_config(name);
        adjust(&mut config);
        let worker = drone_worker::Worker::new(config, DroneName::new(name).expect("drone name"))
            .expect("worker starts")
            .with_supervisor(supervisor);
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(worker.run(shutdown));
        self.workers.insert(name.into(), Running { trigger, task });
    }

    /// Starts an in-process worker that pushes its results over SSH to `sshd` (the
    /// results host), retrying a failed push every second at most, and waits until
    /// the scheduler hears from it.
    pub async fn start_worker_pushing_to(&mut self, name: &str, sshd: &crate::sshd::Sshd) {
        let (host, options) = (sshd.results_host(), sshd.ssh_options());
        self.start_worker_with(
            name,
            |c| {
                c.scheduler.results_host = common::config::ResultsHost::Remote(host);
                c.drone.ssh_options = options;
                c.drone.push_retry_max_sec = 1;
            },
            crate::binary("autoserv-supervisor"),
        )
        .await;
        self.wait_for_drone(name, "ok").await;
    }

    /// Polls `check` until it holds (one minute at most).
    pub async fn wait_for(&self, mut check: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where `drone` serves its results (and its `/metrics`), as the scheduler
    /// recorded it from its heartbeats for job `job_id`'s entry on `host`.
    pub async fn drone_results_url(&self, job_id: i64, host: &str, drone: &str) -> String {
        let db = scheduler::db::Db::open(&self.config.database)
            .await
            .expect("database");
        let urls = scheduler::db::drones::results_urls_of(&db, job_id, host)
            .await
            .expect("results URLs");
        urls.into_iter()
            .find(|(name, _)| name == drone)
            .map(|(_, url)| url)
            .unwrap_or_else(|| panic!("no results URL of {drone}"))
    }

    /// Waits until the scheduler shows `drone` with `status` (ok, lost, ...).
    pub async fn wait_for_drone(&self, drone: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let drones = self.api(|c| c.drones()).await.expect("drone list");
            if drones.iter().any(|d| d.name == drone && d.status == status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "drone {drone} never {status}: {drones:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the real `drone-worker` binary for `name` as a child process (killed when
    /// the handle is dropped), with the same config as the in-process workers.
    pub fn spawn_worker_process(&self, name: &str) -> tokio::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("worker-{name}.log")))
            .expect("worker log");
        tokio::process::Command::new(crate::binary("drone-worker"))
            .arg("--config")
            .arg(&self.config_path)
            .args(["--name", name])
            .env(
                "AUTOTEST_DRONE_RESULTS_DIR",
                self.dir.join(format!("drone-{name}")),
            )
            .env(
                "AUTOTEST_BROKER_URL",
                self.worker_config(name).broker.url.expose(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start drone-worker")
    }

    /// Stops a worker cleanly (it finishes what it holds).
    pub async fn stop_worker(&mut self, name: &str) {
        if let Some(running) = self.workers.remove(name) {
            running.trigger.trigger();
            running
                .task
                .await
                .expect("worker task")
                .expect("worker stops cleanly");
        }
    }

    /// Calls the API from a blocking thread, as the admin `tester`.
    pub async fn api<T: Send + 'static>(&self, f: impl FnOnce(&Client) -> T + Send + 'static) -> T {
        self.api_with(self.token.clone(), f).await
    }

    /// Runs the real `atest` binary against this world's scheduler, as the admin
    /// `tester` (`$ATEST_TOKEN`).
    pub async fn atest(&self, args: &[&str]) -> std::process::Output {
        self.atest_with(self.token.as_deref(), args).await
    }

    pub async fn create_hosts(&self, names: &[&str]) {
        for name in names {
            let body = CreateHost {
                name: name.to_string(),
                labels: vec![],
            };
            self.api(move |c| c.create_host(&body))
                .await
                .expect("host created");
        }
    }

    /// Submits a job whose control file is a shell script (run by deploy/demo-autoserv.sh).
    pub async fn submit(&self, name: &str, control: &str, hosts: &[&str]) -> i64 {
        self.submit_with_priority(name, control, hosts, 0).await
    }

    pub async fn submit_with_priority(
        &self,
        name: &str,
        control: &str,
        hosts: &[&str],
        priority: i32,
    ) -> i64 {
        let body = CreateJob {
            priority,
            ..CreateJob::new(
                name,
                control,
                hosts.iter().map(|h| h.to_string()).collect(),
                "tester",
            )
        };
        self.api(move |c| c.create_job(&body))
            .await
            .expect("job created")
    }

    /// Submits a job described by a full API body (owner forced to `tester`).
    pub async fn submit_body(&self, mut body: CreateJob) -> i64 {
        body.owner = "tester".into();
        self.api(move |c| c.create_job(&body))
            .await
            .expect("job created")
    }

    pub async fn job(&self, id: i64) -> JobView {
        self.api(move |c| c.job(id)).await.expect("job shown")
    }

    /// Waits until every job is Completed, Failed or Aborted; panics after `timeout`
    /// with the jobs' states.
    pub async fn wait_for_jobs(&self, ids: &[i64], timeout: Duration) -> Vec<JobView> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = ids.to_vec();
            let jobs: Vec<JobView> = self
                .api(move |c| {
                    ids.iter()
                        .map(|id| c.job(*id).expect("job shown"))
                        .collect()
                })
                .await;
            if jobs.iter().all(|j| api::is_final(&j.status)) {
                return jobs;
            }
            if Instant::now() > deadline {
                let states: Vec<_> = jobs.iter().map(|j| (j.id, j.status.clone())).collect();
                panic!("jobs did not finish within {timeout:?}: {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `check` holds for the jobs' current views; panics after `timeout`.
    pub async fn wait_until(
        &self,
        ids: &[i64],
        timeout: Duration,
        what: &str,
        check: impl Fn(&[JobView]) -> bool,
    ) -> Vec<JobView> {
        let deadline = Instant::now() + timeout;
        loop {
            let ids = ids.to_vec();
            let jobs: Vec<JobView> = self
                .api(move |c| {
                    ids.iter()
                        .map(|id| c.job(*id).expect("job shown"))
                        .collect()
                })
                .await;
            if check(&jobs) {
                return jobs;
            }
            if Instant::now() > deadline {
                panic!("not true within {timeout:?}: {what}; jobs: {jobs:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A control file that runs until `release()` is called for this world, after
    /// leaving `started-<host>` in the world's directory. It also ends when that
    /// directory is gone (a failed test's world removed it), so nothing is left running.
    pub fn blocking_control(&self) -> String {
        let dir = self.dir.display();
        format!(
            "touch \"{dir}/started-$AUTOSERV_HOSTS\"\nwhile [ -d \"{dir}\" ] && [ ! -e \"{dir}/release\" ]; do sleep 0.02; done\n"
        )
    }

    /// Submits a job running `blocking_control()` on `host` and waits until its entry
    /// is Running; its view then.
    pub async fn start_blocking(&self, name: &str, host: &str) -> JobView {
        let id = self.submit(name, &self.blocking_control(), &[host]).await;
        let what = format!("job {id} Running");
        self.wait_until(&[id], Duration::from_secs(60), &what, |j| {
            j[0].entries[0].status == "Running"
        })
        .await
        .remove(0)
    }

    /// Lets every job running `blocking_control()` finish.
    pub fn release(&self) {
        std::fs::write(self.dir.join("release"), b"").expect("release file");
    }

    /// Publishes raw bytes to an exchange of this world's vhost (for poison messages).
    pub async fn publish_raw(&self, exchange: &str, routing_key: &str, payload: &[u8]) {
        let connection = common::broker::connect(&self.amqp_url, "test")
            .await
            .expect("connect");
        let channel = common::broker::confirm_channel(&connection)
            .await
            .expect("channel");
        common::broker::publish_confirmed(
            &channel,
            exchange,
            routing_key,
            payload,
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("published");
        let _ = connection.close(200, "done".into()).await;
    }

    /// Puts a status report on the scheduler's status queue, as a drone would.
    pub async fn publish_status(&self, report: &common::protocol::StatusReport) {
        self.publish_raw(
            common::broker::STATUS_EXCHANGE,
            common::broker::STATUS_ROUTING_KEY,
            &common::protocol::encode(report),
        )
        .await;
    }

    /// Takes every message off a queue: (payload, headers as strings).
    pub async fn drain_queue(&self, queue: &str) -> Vec<(Vec<u8>, BTreeMap<String, String>)> {
        use lapin::options::{BasicAckOptions, BasicGetOptions};
        let connection = common::broker::connect(&self.amqp_url, "test")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Some(message) = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .expect("basic_get")
        {
            let mut headers = BTreeMap::new();
            if let Some(table) = message.delivery.properties.headers() {
                for (k, v) in table.inner() {
                    let text = match v {
                        lapin::types::AMQPValue::LongString(s) => s.to_string(),
                        other => format!("{other:?}"),
                    };
                    headers.insert(k.to_string(), text);
                }
            }
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
            out.push((message.delivery.data.clone(), headers));
        }
        let _ = connection.close(200, "done".into()).await;
        out
    }

    /// Messages waiting in a queue (ready ones; unacked ones return when their consumer
    /// goes away).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        use lapin::options::QueueDeclareOptions;
        let connection = common::broker::connect(&self.amqp_url, "test")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("queue exists");
        let _ = connection.close(200, "done".into()).await;
        declared.message_count()
    }

    /// Stops everything, checks that no job or status message was left on the broker,
    /// and removes the vhost, database and directories.
    pub async fn stop(mut self) {
        let names: Vec<String> = self.workers.keys().cloned().collect();
        for name in names {
            self.stop_worker(&name).await;
        }
        self.stop_scheduler().await;
        for queue in self
            .config
            .scheduler
            .drones
            .iter()
            .map(common::broker::drone_queue)
        {
            assert_eq!(
                self.queue_depth(&queue).await,
                0,
                "job messages left on {queue} at teardown"
            );
        }
        // A heartbeat may arrive as the scheduler stops; any other report left is a bug.
        for (body, _) in self.drain_queue(common::broker::STATUS_QUEUE).await {
            let report: common::protocol::StatusReport =
                common::protocol::decode(&body).expect("status reports are readable");
            assert!(
                report
                    .events
                    .iter()
                    .all(|e| matches!(e, common::protocol::StatusEvent::Heartbeat { .. })),
                "status report left unprocessed at teardown: {report:?}"
            );
        }
        self.teardown().await;
    }

    async fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        mq::delete_vhost(&self.vhost);
        for user in &self.broker_users {
            mq::delete_user(user);
        }
        if let TestDb::Mysql { server_url, name } = &self.db {
            mysql_exec(server_url, &format!("DROP DATABASE IF EXISTS {name}")).await;
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // A failed test: stop what runs and remove what was made, without an executor.
        if let Some(running) = self.scheduler.take() {
            running.trigger.trigger();
            running.task.abort();
        }
        for (_, running) in std::mem::take(&mut self.workers) {
            running.trigger.trigger();
            running.task.abort();
        }
        mq::delete_vhost(&self.vhost);
        for user in &self.broker_users {
            mq::delete_user(user);
        }
        if let TestDb::Mysql { server_url, name } = self.db.clone() {
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(mysql_exec(
                    &server_url,
                    &format!("DROP DATABASE IF EXISTS {name}"),
                ));
            })
            .join();
        }
    }
}

/// Reads a file the test expects to exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
