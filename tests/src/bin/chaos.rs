//! The fault test behind `deploy/chaos.sh`: runs the real scheduler and three real drone
//! workers (release binaries, separate processes) on a vhost, SQLite database and temp
//! directory of their own, pushing results over real SSH to an sshd of its own
//! (`autotest_tests::sshd`), submits jobs of varying length and, at random moments
//! (seeded), kills a worker with SIGKILL and restarts it, kills the scheduler with
//! SIGKILL and restarts it, restarts RabbitMQ, makes the results host unreachable for
//! 20 s and aborts jobs. RabbitMQ's `consumer_timeout` is lowered to 5 s meanwhile.
//!
//! Each job's control file takes two `flock -n` locks, one per host and one per entry,
//! in a shared directory; a lock it cannot take means two runs at once and is written
//! to `concurrent.log`. Its last step writes `chaos-result`, checked on the results
//! host for every Completed entry.
//!
//! At the end it prints one line of figures and exits non-zero when an entry was lost,
//! ran twice at once, completed without its results, or ended with an outcome the run
//! did not ask for (a fault taken for a test failure).
//!
//! Usage: chaos [--short] [--jobs N] [--seed S]. `AUTOTEST_CHAOS_KEEP=1` keeps the temp
//! directory (it is kept anyway when the run fails).

use autotest_tests::broker as mq;
use autotest_tests::sshd::Sshd;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DRONES: [&str; 3] = ["drone1", "drone2", "drone3"];
const DRONE_CAPACITY: u32 = 5;
const HOSTS: usize = 30;
const OWNER: &str = "chaos";
const LABEL: &str = "chaos";
/// RabbitMQ's consumer_timeout during the run, in ms.
const CONSUMER_TIMEOUT_MS: u64 = 5000;
const OUTAGE: Duration = Duration::from_secs(20);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

// ------------------------------------------------------------------ options ----

struct Options {
    short: bool,
    jobs: usize,
    seed: u64,
}

fn options() -> Options {
    let mut short = false;
    let mut jobs = None;
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--short" => short = true,
            "--jobs" => jobs = Some(value("--jobs") as usize),
            "--seed" => seed = Some(value("--seed")),
            other => panic!("unknown option {other}; usage: chaos [--short] [--jobs N] [--seed S]"),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
            .unwrap_or(1)
            % 1_000_000_007
    });
    Options {
        short,
        jobs: jobs.unwrap_or(if short { 60 } else { 500 }),
        seed,
    }
}

/// How many faults of each kind, over how long.
struct Plan {
    window: Duration,
    wait_limit: Duration,
    faults: Vec<(Fault, usize)>,
}

fn plan(o: &Options) -> Plan {
    let window = Duration::from_secs_f64((o.jobs as f64 * 0.6).max(50.0));
    if o.short {
        Plan {
            window,
            wait_limit: Duration::from_secs(240),
            faults: vec![
                (Fault::WorkerKill, 4),
                (Fault::SchedulerKill, 2),
                (Fault::BrokerRestart, 1),
                (Fault::ResultsOutage, 1),
                (Fault::Abort, 3),
            ],
        }
    } else {
        Plan {
            window,
            wait_limit: Duration::from_secs(600),
            faults: vec![
                (Fault::WorkerKill, 12),
                (Fault::SchedulerKill, 5),
                (Fault::BrokerRestart, 3),
                (Fault::ResultsOutage, 3),
                (Fault::Abort, 10),
            ],
        }
    }
}

// ---------------------------------------------------------------------- rng ----

/// splitmix64: small, seedable, good enough to pick moments and lengths.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }
}

// --------------------------------------------------------------------- jobs ----

/// What one job does.
#[derive(Clone, Debug)]
struct JobSpec {
    index: usize,
    sleep_secs: f64,
    exit_code: i32,
    /// A named host; `None` for a metahost entry on the label.
    host: Option<String>,
    /// Lines of data.txt, so results differ in size.
    lines: u32,
}

fn host_name(i: usize) -> String {
    format!("host{:02}", i + 1)
}

fn job_specs(jobs: usize, rng: &mut Rng) -> Vec<JobSpec> {
    (0..jobs)
        .map(|index| {
            let roll = rng.unit();
            let (sleep_secs, exit_code) = if roll < 0.08 {
                // Longer than the lowered consumer_timeout.
                (rng.between(8.0, 12.0), 0)
            } else if roll < 0.13 {
                (rng.between(0.0, 1.0), 3)
            } else {
                (rng.between(0.0, 2.0), 0)
            };
            let host = (rng.unit() < 0.3).then(|| host_name(rng.below(HOSTS)));
            JobSpec {
                index,
                sleep_secs,
                exit_code,
                host,
                lines: 1 + rng.below(20_000) as u32,
            }
        })
        .collect()
}

/// The control file: run by /bin/sh in the entry's results directory
/// (`.../<job_id>-<owner>/<host>`) with AUTOSERV_HOSTS set.
fn control_file(spec: &JobSpec, locks: &Path, concurrent: &Path) -> String {
    format!(
        r#"# chaos job {index}: sleep {sleep:.2} s, exit {code}
set -u
tag="$(basename "$(dirname "$PWD")") $AUTOSERV_HOSTS"
exec 8>>"{locks}/host-$AUTOSERV_HOSTS"
flock -n 8 || echo "host $AUTOSERV_HOSTS busy: $tag started while another run held the host ($(date +%T.%N))" >> "{concurrent}"
exec 9>>"{locks}/entry-$(basename "$(dirname "$PWD")")-$AUTOSERV_HOSTS"
flock -n 9 || echo "entry $tag started while another run of it was alive ($(date +%T.%N))" >> "{concurrent}"
echo "start $(date +%T.%N) pid $$" >> chaos.log
seq 1 {lines} > data.txt
sleep {sleep:.2}
echo "end $(date +%T.%N)" >> chaos.log
printf '%s\n' "$tag" > chaos-result.tmp && mv chaos-result.tmp chaos-result
exit {code}
"#,
        index = spec.index,
        sleep = spec.sleep_secs,
        code = spec.exit_code,
        lines = spec.lines,
        locks = locks.display(),
        concurrent = concurrent.display(),
    )
}

// ---------------------------------------------------------------------- api ----

/// A small client of the scheduler's HTTP API on raw JSON, so the tally reads fields
/// (`failure_kind`) whether or not the scheduler's own view types have them.
#[derive(Clone)]
struct Api {
    server: String,
    agent: ureq::Agent,
}

#[derive(Debug)]
enum ApiError {
    Unreachable(String),
    Status(u16, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "scheduler unreachable: {e}"),
            ApiError::Status(status, body) => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl Api {
    fn new(server: &str) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Self {
            server: server.to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.server);
        let result = match body {
            Some(body) if method == "POST" => self.agent.post(&url).send_json(body),
            _ => self.agent.get(&url).call(),
        };
        let mut response = result.map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        if (200..300).contains(&status) {
            serde_json::from_str(&text)
                .map_err(|e| ApiError::Status(status, format!("{e}: {text}")))
        } else {
            Err(ApiError::Status(status, text))
        }
    }

    fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, ApiError> {
        self.call("POST", path, Some(body))
    }

    fn healthy(&self) -> bool {
        self.get("/api/health").is_ok()
    }

    /// Retries a call while the scheduler is unreachable (killed and restarting).
    fn patiently<T>(&self, what: &str, mut f: impl FnMut(&Api) -> Result<T, ApiError>) -> T {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match f(self) {
                Ok(v) => return v,
                Err(ApiError::Unreachable(_)) if Instant::now() < deadline => {
                    pause(Duration::from_millis(300));
                }
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct JobDoc {
    id: i64,
    name: String,
    status: String,
    entries: Vec<EntryDoc>,
}

#[derive(Debug, Deserialize)]
struct EntryDoc {
    id: i64,
    host: Option<String>,
    status: String,
    drone: Option<String>,
    #[serde(default)]
    attempt: Option<i64>,
    exit_code: Option<i64>,
    failure_reason: Option<String>,
    /// `test` or `infra` for a Failed entry; absent from schedulers that predate it.
    #[serde(default)]
    failure_kind: Option<String>,
    /// Infra failures retried so far.
    #[serde(default)]
    infra_retries: i64,
    /// Infra failures and stale reports, oldest first.
    #[serde(default)]
    history: Vec<Value>,
    aborted_by: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JobSummaryDoc {
    id: i64,
    name: String,
    status: String,
}

fn is_final(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Aborted")
}

// ---------------------------------------------------------------- processes ----

/// One of the system's processes, started again after each kill with its log appended.
struct Daemon {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // A Ctrl-C at the terminal reaches chaos alone, which cleans up.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if it ended by itself.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }
}

/// Sleeps, but gives up (panics, which cleans up) on Ctrl-C or SIGTERM.
fn pause(d: Duration) {
    let end = Instant::now() + d;
    loop {
        assert!(!INTERRUPTED.load(Ordering::Relaxed), "interrupted");
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

fn watch_signals() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("chaos: interrupted; cleaning up");
            INTERRUPTED.store(true, Ordering::Relaxed);
        });
    });
}

// ----------------------------------------------------------------- rabbitmq ----

fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("timeout")
        .arg("120")
        .arg("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "rabbitmqctl {} exited with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn management_up() -> bool {
    port_open(15672)
}

/// Lowers RabbitMQ's consumer_timeout for the run and puts the old value back when
/// dropped, also on a panic.
struct ConsumerTimeout {
    /// The Erlang term of the previous value; `None` if it was not set.
    previous: Option<String>,
}

impl ConsumerTimeout {
    fn lower() -> Self {
        let current = rabbitmqctl(&["eval", "application:get_env(rabbit, consumer_timeout)."])
            .expect("read RabbitMQ's consumer_timeout");
        let previous = current
            .strip_prefix("{ok,")
            .and_then(|v| v.strip_suffix('}'))
            .map(str::to_string);
        assert!(
            previous.is_some() || current == "undefined",
            "unexpected consumer_timeout answer: {current}"
        );
        let guard = Self { previous };
        guard.apply();
        guard
    }

    fn apply(&self) {
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, consumer_timeout, {CONSUMER_TIMEOUT_MS})."),
        ])
        .expect("lower RabbitMQ's consumer_timeout");
    }
}

impl Drop for ConsumerTimeout {
    fn drop(&mut self) {
        let expression = match &self.previous {
            Some(v) => format!("application:set_env(rabbit, consumer_timeout, {v})."),
            None => "application:unset_env(rabbit, consumer_timeout).".to_string(),
        };
        // The broker may be on its way back from a restart.
        for _ in 0..60 {
            if rabbitmqctl(&["eval", &expression]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!(
            "chaos: could not restore consumer_timeout; run: rabbitmqctl eval '{expression}'"
        );
    }
}

// ------------------------------------------------------------------ cluster ----

/// Everything the run started; dropping it stops and removes it all.
struct Cluster {
    dir: PathBuf,
    vhost: String,
    api: Api,
    scheduler: Daemon,
    workers: Vec<Daemon>,
    sshd: Option<Sshd>,
    events: std::fs::File,
    started: Instant,
    keep: bool,
    /// Declared last: restored after everything else is gone.
    consumer_timeout: Option<ConsumerTimeout>,
    /// The broker is ours to restart and reconfigure while this is held.
    _broker: std::fs::File,
}

impl Cluster {
    fn event(&mut self, text: &str) {
        use std::io::Write;
        let line = format!(
            "chaos: {:7.1}s {text}",
            self.started.elapsed().as_secs_f64()
        );
        println!("{line}");
        let _ = writeln!(self.events, "{line}");
    }

    fn logs(&self) -> String {
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

    fn wait_for_scheduler(&self) {
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
    fn check_processes(&mut self) -> usize {
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

    fn restart_broker(&mut self, rng: &mut Rng) {
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
            println!(
                "chaos: logs kept in {}:\n  {}",
                self.dir.display(),
                self.logs()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Kills what the jobs left running: any process whose working directory is under
/// `dir` (Autoserv stand-ins outlive a killed worker on purpose).
fn kill_processes_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_str()?.to_string();
            name.parse::<u32>().ok()?;
            let cwd = std::fs::read_link(format!("/proc/{name}/cwd")).ok()?;
            cwd.starts_with(dir).then_some(name)
        })
        .collect();
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn shell_word(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./:@,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn start_cluster(dir: &Path, started: Instant) -> Cluster {
    let vhost = dir.file_name().unwrap().to_string_lossy().replace('_', "-");
    let sshd = Sshd::start(&dir.join("sshd"));
    let amqp = mq::create_vhost(&vhost);
    let port = free_port();
    let config = dir.join("global_config.ini");
    let autoserv = autotest_tests::repo_root().join("deploy/demo-autoserv.sh");
    let ssh_options: Vec<String> = sshd.ssh_options().iter().map(|o| shell_word(o)).collect();
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
    std::fs::write(&config, text).expect("write the config");
    let config = config.display().to_string();
    let scheduler = Daemon {
        name: "scheduler".into(),
        program: autotest_tests::binary("autotest-scheduler"),
        args: vec!["--config".into(), config.clone()],
        env: vec![],
        log: dir.join("scheduler.log"),
        child: None,
    };
    let workers = DRONES
        .iter()
        .map(|name| Daemon {
            name: name.to_string(),
            program: autotest_tests::binary("drone-worker"),
            args: vec![
                "--config".into(),
                config.clone(),
                "--name".into(),
                name.to_string(),
            ],
            env: vec![(
                "AUTOTEST_DRONE_RESULTS_DIR".into(),
                dir.join(format!("drone-{name}")).display().to_string(),
            )],
            log: dir.join(format!("{name}.log")),
            child: None,
        })
        .collect();
    let events = std::fs::File::create(dir.join("events.log")).expect("events log");
    std::fs::write(dir.join("concurrent.log"), "").expect("concurrent.log");
    std::fs::create_dir_all(dir.join("locks")).expect("locks directory");
    let mut cluster = Cluster {
        dir: dir.to_path_buf(),
        vhost,
        api: Api::new(&format!("http://127.0.0.1:{port}")),
        scheduler,
        workers,
        sshd: Some(sshd),
        events,
        started,
        keep: false,
        consumer_timeout: None,
        _broker: autotest_tests::broker::exclusive(),
    };
    cluster.consumer_timeout = Some(ConsumerTimeout::lower());
    cluster.scheduler.start();
    cluster.wait_for_scheduler();
    for w in &mut cluster.workers {
        w.start();
    }
    for i in 0..HOSTS {
        cluster
            .api
            .post(
                "/api/hosts",
                json!({"name": host_name(i), "labels": [LABEL]}),
            )
            .expect("create a host");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let drones = cluster.api.get("/api/drones").expect("drone list");
        let ok = drones
            .as_array()
            .is_some_and(|d| d.iter().all(|d| d["status"] == "ok"));
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drones never heard from: {drones}"
        );
        pause(Duration::from_millis(100));
    }
    cluster
}

// ------------------------------------------------------------------- faults ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    WorkerKill,
    SchedulerKill,
    BrokerRestart,
    ResultsOutage,
    Abort,
}

#[derive(Default)]
struct FaultCounts {
    worker_kill: usize,
    scheduler_kill: usize,
    broker_restart: usize,
    results_outage: usize,
    aborts: usize,
    crashes: usize,
}

/// Jobs submitted so far, shared with the submitting thread.
#[derive(Default)]
struct Submitted {
    ids: Vec<(i64, usize)>,
    done: bool,
}

fn submit_all(
    api: Api,
    specs: Vec<JobSpec>,
    controls: Vec<String>,
    times: Vec<Duration>,
    started: Instant,
    submitted: Arc<Mutex<Submitted>>,
) {
    for ((spec, control), at) in specs.iter().zip(controls).zip(times) {
        let now = started.elapsed();
        if at > now {
            pause(at - now);
        }
        let name = format!("chaos {}", spec.index);
        let mut body = json!({
            "name": name,
            "control_file": control,
            "owner": OWNER,
        });
        match &spec.host {
            Some(host) => body["hosts"] = json!([host]),
            None => {
                body["label"] = json!(LABEL);
                body["count"] = json!(1);
            }
        }
        let id = api.patiently("submit a job", |api| {
            match api.post("/api/jobs", body.clone()) {
                Ok(created) => Ok(created["id"].as_i64().expect("job id")),
                Err(ApiError::Unreachable(e)) => {
                    // The scheduler may have stored it before it was killed: never
                    // submit a job twice.
                    match existing_job(api, &name) {
                        Ok(Some(id)) => Ok(id),
                        Ok(None) => Err(ApiError::Unreachable(e)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        });
        submitted.lock().unwrap().ids.push((id, spec.index));
    }
    submitted.lock().unwrap().done = true;
}

fn existing_job(api: &Api, name: &str) -> Result<Option<i64>, ApiError> {
    let list: Vec<JobSummaryDoc> = serde_json::from_value(api.get("/api/jobs")?).expect("job list");
    Ok(list.iter().find(|j| j.name == name).map(|j| j.id))
}

/// Injects the faults at their moments; returns the ids aborted on purpose.
fn inject_faults(
    cluster: &mut Cluster,
    mut schedule: Vec<(Duration, Fault)>,
    rng: &mut Rng,
    submitted: &Mutex<Submitted>,
    counts: &mut FaultCounts,
) -> BTreeSet<i64> {
    let mut aborted = BTreeSet::new();
    let mut results_back_at: Option<Instant> = None;
    schedule.sort();
    schedule.reverse();
    loop {
        counts.crashes += cluster.check_processes();
        if results_back_at.is_some_and(|t| Instant::now() >= t) {
            results_back_at = None;
            if let Some(sshd) = &mut cluster.sshd {
                sshd.start_again();
            }
            cluster.event("results host reachable again");
        }
        let Some(&(at, fault)) = schedule.last() else {
            if results_back_at.is_none() {
                return aborted;
            }
            pause(Duration::from_millis(100));
            continue;
        };
        if cluster.started.elapsed() < at {
            pause(Duration::from_millis(100));
            continue;
        }
        schedule.pop();
        match fault {
            Fault::WorkerKill => {
                let w = rng.below(cluster.workers.len());
                let delay = rng.between(0.0, 3.0);
                let pid = cluster.workers[w].pid().unwrap_or(0);
                cluster.workers[w].kill();
                let name = cluster.workers[w].name.clone();
                cluster.event(&format!(
                    "kill -9 {name} (pid {pid}); restart in {delay:.1} s"
                ));
                pause(Duration::from_secs_f64(delay));
                cluster.workers[w].start();
                counts.worker_kill += 1;
            }
            Fault::SchedulerKill => {
                let delay = rng.between(0.0, 2.0);
                let pid = cluster.scheduler.pid().unwrap_or(0);
                cluster.scheduler.kill();
                cluster.event(&format!(
                    "kill -9 scheduler (pid {pid}); restart in {delay:.1} s"
                ));
                pause(Duration::from_secs_f64(delay));
                cluster.scheduler.start();
                cluster.wait_for_scheduler();
                cluster.event("scheduler answering again");
                counts.scheduler_kill += 1;
            }
            Fault::BrokerRestart => {
                cluster.restart_broker(rng);
                counts.broker_restart += 1;
            }
            Fault::ResultsOutage => {
                if results_back_at.is_some() {
                    // One outage at a time: try again after this one.
                    schedule.push((at + OUTAGE, fault));
                    schedule.sort();
                    schedule.reverse();
                    continue;
                }
                if let Some(sshd) = &mut cluster.sshd {
                    sshd.stop();
                }
                results_back_at = Some(Instant::now() + OUTAGE);
                cluster.event("results host unreachable (sshd stopped) for 20 s");
                counts.results_outage += 1;
            }
            Fault::Abort => {
                let candidates = abort_candidates(&cluster.api, submitted, &aborted);
                if candidates.is_empty() {
                    if submitted.lock().unwrap().done {
                        cluster.event("no job left to abort");
                        continue;
                    }
                    schedule.push((at + Duration::from_secs(2), fault));
                    schedule.sort();
                    schedule.reverse();
                    continue;
                }
                let id = candidates[rng.below(candidates.len())];
                aborted.insert(id);
                let answer = cluster.api.patiently("abort a job", |api| {
                    api.post(
                        &format!("/api/jobs/{id}/abort"),
                        json!({"by": OWNER, "reason": "chaos"}),
                    )
                });
                cluster.event(&format!("abort job {id}: {answer}"));
                counts.aborts += 1;
            }
        }
    }
}

/// Jobs worth aborting: submitted, not aborted yet, and not finished (running ones
/// first); the last few submitted if the scheduler cannot say.
fn abort_candidates(api: &Api, submitted: &Mutex<Submitted>, aborted: &BTreeSet<i64>) -> Vec<i64> {
    let ids: Vec<i64> = submitted
        .lock()
        .unwrap()
        .ids
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !aborted.contains(id))
        .collect();
    let list: Option<Vec<JobSummaryDoc>> = api
        .get("/api/jobs")
        .ok()
        .and_then(|v| serde_json::from_value(v).ok());
    let Some(list) = list else {
        return ids.into_iter().rev().take(10).collect();
    };
    let open = |wanted: &dyn Fn(&str) -> bool| -> Vec<i64> {
        list.iter()
            .filter(|j| ids.contains(&j.id) && wanted(&j.status))
            .map(|j| j.id)
            .collect()
    };
    let running = open(&|status| status == "Running");
    if running.is_empty() {
        open(&|status| !is_final(status))
    } else {
        running
    }
}

fn fault_schedule(plan: &Plan, rng: &mut Rng) -> Vec<(Duration, Fault)> {
    let window = plan.window.as_secs_f64();
    plan.faults
        .iter()
        .flat_map(|&(fault, n)| std::iter::repeat_n(fault, n))
        .map(|fault| {
            (
                Duration::from_secs_f64(rng.between(0.05, 0.95) * window),
                fault,
            )
        })
        .collect()
}

// -------------------------------------------------------------------- tally ----

#[derive(Default)]
struct Tally {
    submitted: usize,
    completed: usize,
    failed_test: usize,
    failed_infra: usize,
    aborted: usize,
    lost: usize,
    concurrent: usize,
    incomplete_results: usize,
    /// Outcomes the run did not ask for (a fault taken for a test failure, ...).
    unexpected: usize,
    /// Infra failures retried, over all entries.
    infra_retries: i64,
}

/// Waits until every job is final or the limit passes.
fn wait_for_all(cluster: &mut Cluster, ids: &[i64], limit: Duration, counts: &mut FaultCounts) {
    let deadline = Instant::now() + limit;
    let mut last_report = Instant::now();
    loop {
        counts.crashes += cluster.check_processes();
        let list: Option<Vec<JobSummaryDoc>> = cluster
            .api
            .get("/api/jobs")
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
        if let Some(list) = list {
            let open: Vec<&JobSummaryDoc> = list
                .iter()
                .filter(|j| ids.contains(&j.id) && !is_final(&j.status))
                .collect();
            if open.is_empty() {
                return;
            }
            if last_report.elapsed() >= Duration::from_secs(15) {
                last_report = Instant::now();
                cluster.event(&format!("waiting for {} jobs to finish", open.len()));
            }
        }
        if Instant::now() >= deadline {
            cluster.event(&format!("gave up waiting after {limit:?}"));
            return;
        }
        pause(Duration::from_millis(500));
    }
}

fn tally(
    cluster: &Cluster,
    submitted: &[(i64, usize)],
    specs: &[JobSpec],
    aborted_on_purpose: &BTreeSet<i64>,
) -> Tally {
    let mut t = Tally {
        submitted: submitted.len(),
        ..Tally::default()
    };
    let mut problems = Vec::new();
    let results = cluster.dir.join("results");
    for &(id, index) in submitted {
        let job: JobDoc = match cluster.api.patiently("read a job", |api| {
            match api.get(&format!("/api/jobs/{id}")) {
                Err(ApiError::Status(404, _)) => Ok(None),
                other => other.map(Some),
            }
        }) {
            Some(v) => serde_json::from_value(v).expect("job document"),
            None => {
                t.lost += 1;
                problems.push(format!(
                    "job {id} (chaos {index}): unknown to the scheduler"
                ));
                continue;
            }
        };
        let spec = &specs[index];
        let on_purpose = aborted_on_purpose.contains(&id);
        assert_eq!(job.name, format!("chaos {index}"), "job {id}");
        for e in &job.entries {
            t.infra_retries += e.infra_retries;
            let describe = || {
                format!(
                    "job {} entry {} ({}, host {}, drone {}, attempt {}, exit {:?}, kind {:?}, reason {:?}, aborted_by {:?}, job status {}, history {})",
                    job.id,
                    e.id,
                    e.status,
                    e.host.as_deref().unwrap_or("-"),
                    e.drone.as_deref().unwrap_or("-"),
                    e.attempt.map_or("?".to_string(), |a| a.to_string()),
                    e.exit_code,
                    e.failure_kind,
                    e.failure_reason,
                    e.aborted_by,
                    job.status,
                    Value::from(e.history.clone()),
                )
            };
            match e.status.as_str() {
                "Completed" => {
                    t.completed += 1;
                    let expected =
                        format!("{}-{OWNER} {}\n", job.id, e.host.as_deref().unwrap_or("?"));
                    let marker = results
                        .join(format!("{}-{OWNER}", job.id))
                        .join(e.host.as_deref().unwrap_or("?"))
                        .join("chaos-result");
                    match std::fs::read_to_string(&marker) {
                        Ok(text) if text == expected => {}
                        found => {
                            t.incomplete_results += 1;
                            problems.push(format!(
                                "completed without full results: {}: {} is {:?}",
                                describe(),
                                marker.display(),
                                found.map_err(|e| e.to_string())
                            ));
                        }
                    }
                    if spec.exit_code != 0 && !on_purpose {
                        t.unexpected += 1;
                        problems.push(format!(
                            "completed, but its control file exits {}: {}",
                            spec.exit_code,
                            describe()
                        ));
                    }
                }
                "Failed" => {
                    if e.failure_kind.as_deref() == Some("infra") {
                        t.failed_infra += 1;
                    } else {
                        t.failed_test += 1;
                        if spec.exit_code == 0 && !on_purpose {
                            t.unexpected += 1;
                            problems.push(format!(
                                "failed (test), but its control file exits 0: {}",
                                describe()
                            ));
                        }
                    }
                }
                "Aborted" => {
                    t.aborted += 1;
                    if !on_purpose {
                        t.unexpected += 1;
                        problems.push(format!("aborted, but nobody aborted it: {}", describe()));
                    }
                }
                _ => {
                    t.lost += 1;
                    problems.push(format!("not finished: {}", describe()));
                }
            }
        }
        if job.entries.is_empty() {
            t.lost += 1;
            problems.push(format!("job {id} has no entries"));
        }
    }
    let concurrent =
        std::fs::read_to_string(cluster.dir.join("concurrent.log")).unwrap_or_default();
    t.concurrent = concurrent.lines().count();
    for line in concurrent.lines() {
        problems.push(format!("ran twice at once: {line}"));
    }
    for p in &problems {
        println!("chaos: PROBLEM {p}");
    }
    t
}

// --------------------------------------------------------------------- main ----

fn main() {
    let o = options();
    let code = run(o);
    std::process::exit(code);
}

fn run(o: Options) -> i32 {
    let started = Instant::now();
    watch_signals();
    for tool in ["flock", "rsync", "ssh", "rabbitmqctl", "timeout", "seq"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).exists()));
        assert!(
            found,
            "{tool} not found on PATH (deploy/chaos.sh installs what is missing)"
        );
    }
    let plan = plan(&o);
    let mut rng = Rng(o.seed);
    let specs = job_specs(o.jobs, &mut rng);
    let window = plan.window.as_secs_f64();
    let mut times: Vec<Duration> = (0..o.jobs)
        .map(|_| Duration::from_secs_f64(rng.unit() * window))
        .collect();
    times.sort();
    let schedule = fault_schedule(&plan, &mut rng);

    let id = autotest_tests::unique("autotest_chaos");
    let dir = std::env::temp_dir().join(&id);
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!(
        "chaos: seed={} jobs={} drones={} hosts={HOSTS} window={:.0}s consumer_timeout={CONSUMER_TIMEOUT_MS}ms dir={}",
        o.seed,
        o.jobs,
        DRONES.len(),
        window,
        dir.display()
    );
    let mut cluster = start_cluster(&dir, Instant::now());
    cluster.started = Instant::now();
    let setup = started.elapsed();
    cluster.event(&format!(
        "system up after {:.1} s; submitting",
        setup.as_secs_f64()
    ));

    let controls: Vec<String> = specs
        .iter()
        .map(|s| control_file(s, &dir.join("locks"), &dir.join("concurrent.log")))
        .collect();
    let submitted = Arc::new(Mutex::new(Submitted::default()));
    let submitter = {
        let api = cluster.api.clone();
        let specs = specs.clone();
        let submitted = submitted.clone();
        let start = cluster.started;
        std::thread::spawn(move || submit_all(api, specs, controls, times, start, submitted))
    };
    let mut counts = FaultCounts::default();
    let aborted = inject_faults(&mut cluster, schedule, &mut rng, &submitted, &mut counts);
    if submitter.join().is_err() {
        panic!("submitting jobs failed");
    }
    let ids: Vec<(i64, usize)> = submitted.lock().unwrap().ids.clone();
    assert!(submitted.lock().unwrap().done);
    cluster.event(&format!(
        "all {} jobs submitted and faults injected; waiting",
        ids.len()
    ));
    let job_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
    wait_for_all(&mut cluster, &job_ids, plan.wait_limit, &mut counts);
    let t = tally(&cluster, &ids, &specs, &aborted);
    let duplicates = job_ids.len() - job_ids.iter().collect::<BTreeSet<_>>().len();
    println!(
        "chaos: submitted={} completed={} failed_test={} failed_infra={} aborted={} lost={} concurrent={} incomplete_results={} unexpected={} infra_retries={} faults: worker_kill={} scheduler_kill={} broker_restart={} results_outage={} aborts={} crashes={} seed={} elapsed={:.0}s",
        t.submitted,
        t.completed,
        t.failed_test,
        t.failed_infra,
        t.aborted,
        t.lost,
        t.concurrent,
        t.incomplete_results,
        t.unexpected,
        t.infra_retries,
        counts.worker_kill,
        counts.scheduler_kill,
        counts.broker_restart,
        counts.results_outage,
        counts.aborts,
        counts.crashes,
        o.seed,
        started.elapsed().as_secs_f64(),
    );
    let ok = t.lost == 0
        && t.concurrent == 0
        && t.incomplete_results == 0
        && t.unexpected == 0
        && duplicates == 0;
    if duplicates != 0 {
        println!("chaos: PROBLEM {duplicates} job ids were returned for two submissions");
    }
    if !ok {
        cluster.keep = true;
        println!("chaos: FAILED (rerun with --seed {})", o.seed);
    }
    drop(cluster);
    if ok {
        0
    } else {
        1
    }
}
