//! The system under test: the scheduler, the workers, the results host's sshd and the
//! run's vhost and directory, started together and torn down together.

use super::api::Api;
use super::jobs::host_name;
use super::options::Rng;
use super::process::{kill_processes_under, pause, Daemon};
use super::rabbitmq::{management_up, port_open, rabbitmqctl, ConsumerTimeout};
use super::{DRONES, DRONE_CAPACITY, HOSTS, LABEL};
use autotest_tests::broker as mq;
use autotest_tests::sshd::Sshd;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Everything the run started; dropping it stops and removes it all.
pub struct Cluster {
    /// The run's directory: logs, database, results, locks.
    pub dir: PathBuf,
    /// Removes `dir` when dropped, unless the run keeps it.
    temp: Option<TempDir>,
    pub vhost: String,
    pub api: Api,
    pub scheduler: Daemon,
    pub workers: Vec<Daemon>,
    pub sshd: Option<Sshd>,
    pub events: std::fs::File,
    pub started: Instant,
    pub keep: bool,
    /// Declared last: restored after everything else is gone.
    pub consumer_timeout: Option<ConsumerTimeout>,
    /// The broker is ours to restart and reconfigure while this is held.
    pub _broker: std::fs::File,
}

impl Cluster {
    /// Prints a line of the run's story and appends it to `events.log`.
    pub fn event(&mut self, text: &str) {
        use std::io::Write;
        let line = format!(
            "chaos: {:7.1}s {text}",
            self.started.elapsed().as_secs_f64()
        );
        println!("{line}");
        let _ = writeln!(self.events, "{line}");
    }

    /// The logs worth reading after a failed run, one per line.
    pub fn logs(&self) -> String {
        let mut paths = vec![
            self.scheduler.log.display().to_string(),
            self.dir.join("events.log").display().to_string(),
            self.dir.join("concurrent.log").display().to_string(),
        ];
        paths.extend(self.workers.iter().map(|w| w.log.display().to_string()));
        if let Some(sshd) = &self.sshd {
            paths.push(sshd.log_path().display().to_string());
        }
        paths.join("\n  ")
    }

    /// Waits (up to a minute) until the scheduler answers its health check.
    pub fn wait_for_scheduler(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.api.healthy() {
            assert!(
                Instant::now() < deadline,
                "the scheduler did not answer within 60 s; see {}",
                self.scheduler.log.display()
            );
            pause(Duration::from_millis(50));
        }
    }

    /// Restarts whatever ended by itself; returns how many did.
    pub fn check_processes(&mut self) -> usize {
        let mut ended = Vec::new();
        if let Some(status) = self.scheduler.exited() {
            ended.push(format!(
                "scheduler exited by itself ({status}); restarting it"
            ));
            self.scheduler.start();
        }
        for w in &mut self.workers {
            if let Some(status) = w.exited() {
                ended.push(format!(
                    "{} exited by itself ({status}); restarting it",
                    w.name
                ));
                w.start();
            }
        }
        for text in &ended {
            self.event(text);
        }
        ended.len()
    }

    /// Stops RabbitMQ's app, waits a random moment, starts it again and waits until
    /// it listens; the lowered consumer_timeout is set again.
    pub fn restart_broker(&mut self, rng: &mut Rng) {
        self.event("RabbitMQ: rabbitmqctl stop_app");
        if let Err(e) = rabbitmqctl(&["stop_app"]) {
            self.event(&format!("stop_app failed: {e}"));
        }
        pause(Duration::from_secs_f64(rng.between(0.0, 3.0)));
        self.event("RabbitMQ: rabbitmqctl start_app");
        rabbitmqctl(&["start_app"]).expect("rabbitmqctl start_app");
        let _ = rabbitmqctl(&["await_startup"]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !port_open(5672) {
            assert!(
                Instant::now() < deadline,
                "RabbitMQ did not come back within 120 s"
            );
            pause(Duration::from_millis(200));
        }
        if let Some(guard) = &self.consumer_timeout {
            guard.apply();
        }
        self.event("RabbitMQ back");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.kill();
        }
        self.scheduler.kill();
        kill_processes_under(&self.dir);
        self.sshd = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !management_up() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
        }
        let vhost = self.vhost.clone();
        if std::panic::catch_unwind(|| mq::delete_vhost(&vhost)).is_err() {
            eprintln!("chaos: could not delete vhost {vhost}");
        }
        self.consumer_timeout = None;
        let keep = self.keep
            || std::thread::panicking()
            || std::env::var_os("AUTOTEST_CHAOS_KEEP").is_some_and(|v| v != "0");
        if keep {
            if let Some(temp) = self.temp.take() {
                let _ = temp.keep();
            }
            println!(
                "chaos: logs kept in {}:\n  {}",
                self.dir.display(),
                self.logs()
            );
        } else if let Some(temp) = self.temp.take() {
            let _ = temp.close();
        }
    }
}

/// Starts the system in `temp` (which the cluster removes when dropped, unless the run
/// keeps it): the results host's sshd, a vhost, the scheduler, the workers and the
/// hosts; returns once every drone is heard from.
pub fn start(temp: TempDir, started: Instant) -> Cluster {
    let dir = temp.path().to_path_buf();
    let port = free_port();
    let config = dir.join("global_config.ini");
    let mut cluster = Cluster {
        vhost: dir.file_name().unwrap().to_string_lossy().replace('_', "-"),
        api: Api::new(&format!("http://127.0.0.1:{port}")),
        scheduler: scheduler_daemon(&dir, &config),
        workers: DRONES
            .iter()
            .map(|name| worker_daemon(&dir, &config, name))
            .collect(),
        sshd: None,
        events: std::fs::File::create(dir.join("events.log")).expect("events log"),
        started,
        keep: false,
        consumer_timeout: None,
        _broker: autotest_tests::broker::exclusive(),
        dir,
        temp: Some(temp),
    };
    let sshd = Sshd::start(&cluster.dir.join("sshd"));
    let amqp = mq::create_vhost(&cluster.vhost);
    write_config(&cluster.dir, &config, &sshd, &amqp, port);
    cluster.api.token = Some(crate::benchkit::admin_token(&config, "chaos"));
    cluster.sshd = Some(sshd);
    std::fs::write(cluster.dir.join("concurrent.log"), "").expect("concurrent.log");
    std::fs::create_dir_all(cluster.dir.join("locks")).expect("locks directory");
    cluster.consumer_timeout = Some(ConsumerTimeout::lower());
    cluster.scheduler.start();
    cluster.wait_for_scheduler();
    for w in &mut cluster.workers {
        w.start();
    }
    create_hosts(&cluster.api);
    wait_for_drones(&cluster.api);
    cluster
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The run's `global_config.ini`: short timeouts, results pushed over the run's sshd.
fn write_config(dir: &Path, config: &Path, sshd: &Sshd, amqp: &str, port: u16) {
    let autoserv = autotest_tests::repo_root().join("deploy/demo-autoserv.sh");
    let ssh_options: Vec<String> = sshd
        .ssh_options()
        .iter()
        .map(|o| {
            shlex::try_quote(o)
                .expect("an ssh option without NUL")
                .into_owned()
        })
        .collect();
    let text = format!(
        "[AUTOTEST_WEB]\ndatabase: {db}\n\
         [SCHEDULER]\ndrones: {drones}\nmax_processes_per_drone: {DRONE_CAPACITY}\n\
         results_host: {results_host}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n\
         drone_timeout_sec: 15\nabort_grace_sec: 5\n\
         [DRONE]\nheartbeat_sec: 2\npush_retry_max_sec: 2\nssh_options: {ssh}\n\
         [AUTOSERV]\ncommand: {autoserv} -p -r {{results_dir}} -m {{hosts}} -u {{owner}} -l {{job_name}} {{control_file}}\n\
         [BROKER]\nurl: {amqp}\n",
        db = dir.join("autotest.db").display(),
        drones = DRONES.join(", "),
        results_host = sshd.results_host(),
        results = dir.join("results").display(),
        ssh = ssh_options.join(" "),
        autoserv = autoserv.display(),
    );
    std::fs::write(config, text).expect("write the config");
}

fn scheduler_daemon(dir: &Path, config: &Path) -> Daemon {
    Daemon {
        name: "scheduler".into(),
        program: autotest_tests::binary("autotest-scheduler"),
        args: vec!["--config".into(), config.display().to_string()],
        env: vec![],
        log: dir.join("scheduler.log"),
        child: None,
    }
}

fn worker_daemon(dir: &Path, config: &Path, name: &str) -> Daemon {
    Daemon {
        name: name.to_string(),
        program: autotest_tests::binary("drone-worker"),
        args: vec![
            "--config".into(),
            config.display().to_string(),
            "--name".into(),
            name.to_string(),
        ],
        env: vec![(
            "AUTOTEST_DRONE_RESULTS_DIR".into(),
            dir.join(format!("drone-{name}")).display().to_string(),
        )],
        log: dir.join(format!("{name}.log")),
        child: None,
    }
}

fn create_hosts(api: &Api) {
    for i in 0..HOSTS {
        api.post(
            "/api/hosts",
            json!({"name": host_name(i), "labels": [LABEL]}),
        )
        .expect("create a host");
    }
}

/// Waits (up to a minute) until every drone's status is `ok`.
fn wait_for_drones(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let drones = api.get("/api/drones").expect("drone list");
        let ok = drones
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["status"] == "ok"));
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "drones never heard from: {drones}"
        );
        pause(Duration::from_millis(100));
    }
}
