//! The lists benchmark behind `deploy/bench.sh --lists`: a MariaDB database filled with
//! a large lab's history (1,000,000 jobs and 10,000,000 entries by default, written by
//! MariaDB itself from its sequence engine in bulk `INSERT … SELECT`s), the real
//! scheduler serving it, and the time `GET /api/jobs` takes for a first page and the
//! next page of each filter, seen from a client on the same machine. The database is
//! dropped at the end.

use crate::benchkit::{free_port, run_dir, summary};
use crate::system::System;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const USAGE: &str =
    "usage: lists_bench [--jobs N] [--entries-per-job N] [--requests N] [--existing DB]
  --jobs N              jobs in the database (default 1000000)
  --entries-per-job N   entries of each job (default 10)
  --requests N          requests per page measured (default 40)
  --existing DB         measure a database this bench filled before (kept, not dropped)
  MariaDB: root@127.0.0.1 without a password, or $AUTOTEST_BENCH_MYSQL_URL
  (mysql://USER:PASSWORD@HOST:PORT); the bench creates and drops its own database.";

const HOSTS: usize = 500;
const OWNERS: usize = 20;
const DAY_US: i64 = 86_400_000_000;
const CHUNK: usize = 500_000;

pub struct Options {
    pub jobs: usize,
    pub entries_per_job: usize,
    pub requests: usize,
    /// A database filled before: neither filled nor dropped.
    pub existing: Option<String>,
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        let mut o = Options {
            jobs: 1_000_000,
            entries_per_job: 10,
            requests: 40,
            existing: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let number = |v: Option<String>| v.and_then(|v| v.parse().ok()).filter(|n| *n > 0);
            match arg.as_str() {
                "--jobs" => o.jobs = number(args.next())?,
                "--entries-per-job" => o.entries_per_job = number(args.next())?,
                "--requests" => o.requests = number(args.next())?,
                "--existing" => o.existing = Some(args.next()?),
                _ => return None,
            }
        }
        Some(o)
    }
}

/// Where MariaDB is: user, password, host, port.
struct Server {
    user: String,
    password: String,
    host: String,
    port: u16,
}

impl Server {
    fn from_env() -> Server {
        let url = std::env::var("AUTOTEST_BENCH_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let rest = url.trim_start_matches("mysql://");
        let (auth, place) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (host, port) = place.split_once(':').unwrap_or((place, "3306"));
        Server {
            user: user.into(),
            password: password.into(),
            host: host.into(),
            port: port.trim_end_matches('/').parse().expect("a port"),
        }
    }

    /// Runs `sql` through the `mysql` client (in `database`, if given).
    fn run(&self, database: Option<&str>, sql: &str) -> String {
        let mut command = Command::new("mysql");
        command
            .args([
                "-h",
                &self.host,
                "-P",
                &self.port.to_string(),
                "-u",
                &self.user,
            ])
            .arg("--batch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if !self.password.is_empty() {
            command.env("MYSQL_PWD", &self.password);
        }
        if let Some(database) = database {
            command.arg(database);
        }
        let mut child = command
            .spawn()
            .expect("run mysql (apt install mariadb-client)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("mysql");
        assert!(
            out.status.success(),
            "mysql failed on: {}",
            &sql[..sql.len().min(300)]
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub async fn run(o: Options) {
    let id = autotest_tests::unique("autotest_lists");
    let dir = run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::from_env();
    let database = o.existing.clone().unwrap_or_else(|| id.replace('-', "_"));
    if o.existing.is_none() {
        server.run(None, &format!("CREATE DATABASE {database}"));
    }
    let config = |amqp: &str, port: u16| {
        format!(
            "[AUTOTEST_WEB]\ndb_type: mysql\nhost: {host}\nport: {dbport}\ndatabase: {database}\nuser: {user}\npassword: {password}\n[SCHEDULER]\ndrones: drone1, drone2\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[AUTOSERV]\ncommand: /bin/sh {{control_file}}\n[BROKER]\nurl: {amqp}\n",
            host = server.host,
            dbport = server.port,
            user = server.user,
            password = server.password,
            results = dir.join("results").display(),
        )
    };
    // The schema first (add-user migrates), then the history, then the scheduler.
    let now = common::time::now_micros();
    if o.existing.is_none() {
        let setup = dir.join("setup.ini");
        std::fs::write(&setup, config("amqp://127.0.0.1:1/unused", free_port())).unwrap();
        crate::benchkit::admin_token(&setup, "setup");
        let began = Instant::now();
        fill(&server, &database, &o, now);
        println!(
            "database: MariaDB, {} jobs, {} entries, {HOSTS} hosts, filled in {:.1} s",
            o.jobs,
            o.jobs * o.entries_per_job,
            began.elapsed().as_secs_f64()
        );
    }
    let mut system = System::start_scheduler(&id, &dir, config).await;
    let bearer = format!("Bearer {}", system.token);
    measure(&system.server, &bearer, &o, now);
    system.stop();
    system.finish();
    if o.existing.is_none() {
        server.run(None, &format!("DROP DATABASE {database}"));
        println!("database {database} dropped");
    }
}

/// Times each filter's first page and the page after it.
fn measure(server: &str, bearer: &str, o: &Options, now: i64) {
    let day_ago = common::time::format_micros(now - DAY_US);
    let filters = [
        String::new(),
        "owner=user07".into(),
        "status=Queued".into(),
        "status=Running".into(),
        "status=Completed".into(),
        "status=Failed".into(),
        "status=Aborted".into(),
        "name=smoke".into(),
        "name=perf-1*".into(),
        format!("since={day_ago}"),
        "owner=user07&status=Failed".into(),
    ];
    println!(
        "GET /api/jobs (limit 100), each {} times after one warm-up request:",
        o.requests
    );
    for filter in filters {
        let first = format!("/api/jobs?{filter}");
        let (status, bytes, next) = get(server, bearer, &first);
        time(server, bearer, &first, status, bytes, o.requests);
        if let Some(next) = next {
            let second = format!("/api/jobs?{filter}&cursor={next}");
            let (status, bytes, _) = get(server, bearer, &second);
            time(server, bearer, &second, status, bytes, o.requests);
        }
    }
    let hosts = "/api/hosts".to_string();
    let (status, bytes, _) = get(server, bearer, &hosts);
    time(server, bearer, &hosts, status, bytes, o.requests);
}

fn time(server: &str, bearer: &str, path: &str, status: u16, bytes: usize, requests: usize) {
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        get(server, bearer, path);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  {}",
        summary(&format!("{path} ({status}, {bytes} B)"), times)
    );
}

/// One GET: its status, body size and `next`.
fn get(server: &str, bearer: &str, path: &str) -> (u16, usize, Option<String>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let mut response = agent
        .get(&format!("{server}{path}"))
        .header("Authorization", bearer)
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let next = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["next"].as_str().map(str::to_string));
    (status, body.len(), next)
}

/// Writes the history: hosts, `jobs` jobs over the 60 days before `now` (owners
/// `user01`..`user20`, names `kernel-build-N`, `smoke-N`, `regression-N`, `perf-N`),
/// `entries_per_job` entries each: the newest 100 jobs Queued or Running, every 50th
/// Aborted, one in ten Failed, the rest Completed.
fn fill(server: &Server, database: &str, o: &Options, now: i64) {
    let span = 60 * DAY_US;
    let start = now - span;
    let jobs = o.jobs;
    let per = o.entries_per_job;
    let mut sql = format!(
        "INSERT INTO hosts (id, hostname, status, locked, created_on)
           SELECT seq, CONCAT('host', LPAD(seq, 4, '0')), 'Ready', 0, {start} FROM seq_1_to_{HOSTS};"
    );
    sql += "SET unique_checks = 0; SET foreign_key_checks = 0;";
    for low in (1..=jobs).step_by(CHUNK) {
        let high = (low + CHUNK - 1).min(jobs);
        sql += &format!(
            "INSERT INTO jobs (id, name, owner, priority, control_file, created_on)
               SELECT seq, CONCAT(ELT(seq % 4 + 1, 'kernel-build', 'smoke', 'regression', 'perf'), '-', seq),
                      CONCAT('user', LPAD(seq % {OWNERS} + 1, 2, '0')), seq % 3, '',
                      {start} + seq * {span} DIV {jobs}
               FROM seq_{low}_to_{high};"
        );
    }
    server.run(Some(database), &sql);
    let entries = jobs * per;
    for low in (1..=entries).step_by(CHUNK) {
        let high = (low + CHUNK - 1).min(entries);
        let job = format!("((seq - 1) DIV {per} + 1)");
        let status = format!(
            "CASE WHEN {job} > {jobs} - 100 THEN IF({job} % 2 = 0, 'Queued', 'Running')
                  WHEN {job} % 50 = 0 THEN 'Aborted'
                  WHEN {job} % 10 = 3 THEN 'Failed' ELSE 'Completed' END"
        );
        let sql = format!(
            "SET unique_checks = 0; SET foreign_key_checks = 0;
             INSERT INTO host_queue_entries (id, job_id, host_id, status, priority, execution_subdir,
                    drone, attempt, created_on, started_on, finished_on)
               SELECT seq, {job}, seq % {HOSTS} + 1, {status}, 0, CONCAT('host', seq % {HOSTS} + 1),
                      'drone1', 1, {start} + {job} * {span} DIV {jobs}, NULL, NULL
               FROM seq_{low}_to_{high};"
        );
        server.run(Some(database), &sql);
        if high.is_multiple_of(CHUNK * 4) || high == entries {
            println!("  {high} entries written");
        }
    }
    server.run(
        Some(database),
        "ANALYZE TABLE jobs, host_queue_entries, hosts;",
    );
}
