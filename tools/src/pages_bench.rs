//! The pages benchmark behind `deploy/bench.sh --pages`: a SQLite database filled with
//! a lab's history (100,000 jobs by default over 60 days, their entries, five parsed
//! tests per finished entry), the real scheduler serving it, and the time each page
//! takes to answer, seen from a client on the same machine (request to last byte).

use crate::benchkit::{admin_token, free_port, run_dir, summary};
use crate::system::System;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use std::path::Path;
use std::time::{Duration, Instant};

pub const USAGE: &str = "usage: pages_bench [--jobs N] [--requests N]
  --jobs N       jobs in the database (default 100000), with about 1.2 entries each
  --requests N   requests per page measured (default 40)";

const HOSTS: usize = 500;
const LABELS: [&str; 5] = ["board-a", "board-b", "board-c", "board-d", "board-e"];
const OWNERS: usize = 20;
const TESTS: [&str; 10] = [
    "sleeptest",
    "dbench",
    "kernbench",
    "hackbench",
    "iozone",
    "netperf2",
    "ltp",
    "fsx",
    "compilebench",
    "unixbench",
];
const DAY_US: i64 = 86_400_000_000;

pub struct Options {
    pub jobs: usize,
    pub requests: usize,
}

impl Options {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        let mut o = Options {
            jobs: 100_000,
            requests: 40,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let number = |v: Option<String>| v.and_then(|v| v.parse().ok());
            match arg.as_str() {
                "--jobs" => o.jobs = number(args.next())?,
                "--requests" => o.requests = number(args.next())?,
                _ => return None,
            }
        }
        Some(o)
    }
}

pub async fn run(o: Options) {
    let id = autotest_tests::unique("autotest_pages");
    let dir = run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("autotest.db");
    let config = |amqp: &str, port: u16| {
        format!(
            "[AUTOTEST_WEB]\ndatabase: {db}\n[SCHEDULER]\ndrones: drone1, drone2\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[AUTOSERV]\ncommand: /bin/sh {{control_file}}\n[BROKER]\nurl: {amqp}\n",
            db = db.display(),
            results = dir.join("results").display(),
        )
    };
    // The schema first (add-user migrates), then the history, then the scheduler.
    let setup = dir.join("setup.ini");
    std::fs::write(&setup, config("amqp://127.0.0.1:1/unused", free_port())).unwrap();
    admin_token(&setup, "bench");
    let began = Instant::now();
    let now = common::time::now_micros();
    let (entries, tests) = fill(&db, o.jobs, now);
    let size_mb = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "database: SQLite, {} jobs, {entries} entries, {tests} tests, {HOSTS} hosts, {size_mb:.0} MB, filled in {:.1} s",
        o.jobs,
        began.elapsed().as_secs_f64()
    );
    let mut system = System::start_scheduler(&id, &dir, config).await;
    let since = date(now - 7 * DAY_US);
    let pages = [
        "/jobs".to_string(),
        "/jobs?owner=user07".into(),
        "/jobs?status=Failed".into(),
        "/jobs?label=board-b".into(),
        "/jobs?name=smoke".into(),
        format!("/jobs/{}", o.jobs / 2),
        "/hosts".into(),
        "/hosts/host0042".into(),
        "/drones".into(),
        format!("/results?label=board-b&since={since}"),
        format!("/results?by=job&label=board-b&since={since}"),
        format!("/results?since={since}"),
    ];
    println!("each page {} times, after one warm-up request:", o.requests);
    for page in pages {
        let (status, bytes) = get(&system.server, &page);
        let mut times = Vec::with_capacity(o.requests);
        for _ in 0..o.requests {
            let start = Instant::now();
            get(&system.server, &page);
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "  {}",
            summary(&format!("{page} ({status}, {bytes} B)"), times)
        );
    }
    system.stop();
    system.finish();
}

/// One GET of `path`: its status and body size.
fn get(server: &str, path: &str) -> (u16, usize) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let mut response = agent
        .get(&format!("{server}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    (status, body.len())
}

/// `YYYY-MM-DD` of a time in microseconds.
fn date(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(micros / 1_000_000).unwrap();
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

/// Writes the lab's history into the database at `path`: hosts with labels, `jobs` jobs
/// spread over the 60 days before `now` (the newest 100 still queued or running), about
/// 1.2 entries each, and five tests per finished entry. Returns the entries and tests
/// written.
fn fill(path: &Path, jobs: usize, now: i64) -> (usize, usize) {
    let mut conn = diesel::SqliteConnection::establish(&path.display().to_string())
        .expect("open the bench database");
    let mut sql = String::from("PRAGMA journal_mode=WAL; BEGIN;");
    for (i, label) in LABELS.iter().enumerate() {
        sql += &format!(
            "INSERT INTO labels (id, name) VALUES ({}, '{label}');",
            i + 1
        );
    }
    for h in 1..=HOSTS {
        sql += &format!(
            "INSERT INTO hosts (id, hostname, status, locked, created_on) VALUES ({h}, 'host{h:04}', 'Ready', 0, {});
             INSERT INTO host_labels (host_id, label_id) VALUES ({h}, {});",
            now - 61 * DAY_US,
            h % LABELS.len() + 1
        );
    }
    conn.batch_execute(&sql).expect("hosts");
    let (mut entry, mut test) = (0usize, 0usize);
    let span = 60 * DAY_US;
    for chunk in (1..=jobs).collect::<Vec<_>>().chunks(2_000) {
        let (mut j, mut e, mut t) = (Vec::new(), Vec::new(), Vec::new());
        for &job in chunk {
            let created = now - span + span * job as i64 / jobs as i64;
            let kind = ["kernel-build", "smoke", "regression", "perf"][job % 4];
            j.push(format!(
                "({job}, '{kind}-{job}', 'user{:02}', {}, 'job.run_test(\"sleeptest\")', {created})",
                job % OWNERS + 1,
                job % 3
            ));
            let hosts = if job % 5 == 0 { 2 } else { 1 };
            for k in 0..hosts {
                entry += 1;
                let host = (job * 7 + k * 13) % HOSTS + 1;
                let recent = jobs - job < 100;
                let status = match (recent, job % 50) {
                    (true, n) if n % 2 == 0 => "Queued",
                    (true, _) => "Running",
                    (false, 0) => "Aborted",
                    (false, n) if n % 10 == 3 => "Failed",
                    _ => "Completed",
                };
                let (started, finished) = match status {
                    "Queued" => ("NULL".to_string(), "NULL".to_string()),
                    "Running" => ((created + 1_000_000).to_string(), "NULL".to_string()),
                    _ => (
                        (created + 1_000_000).to_string(),
                        (created + 600_000_000).to_string(),
                    ),
                };
                e.push(format!(
                    "({entry}, {job}, {host}, '{status}', {}, 'host{host:04}', 'drone{}', 1, {created}, {started}, {finished})",
                    job % 3,
                    entry % 2 + 1
                ));
                if matches!(status, "Completed" | "Failed") {
                    for n in 0..5 {
                        test += 1;
                        let name = TESTS[(job + n) % TESTS.len()];
                        let verdict = if status == "Failed" && n == 0 {
                            "FAIL"
                        } else {
                            "GOOD"
                        };
                        t.push(format!(
                            "({test}, {job}, {entry}, 1, {host}, '{name}', '{name}', '{verdict}', {}, {})",
                            created + 1_000_000 + n as i64 * 100_000_000,
                            created + 1_000_000 + (n as i64 + 1) * 100_000_000
                        ));
                    }
                }
            }
        }
        let mut sql = format!(
            "INSERT INTO jobs (id, name, owner, priority, control_file, created_on) VALUES {};",
            j.join(",")
        );
        sql += &format!(
            "INSERT INTO host_queue_entries (id, job_id, host_id, status, priority, execution_subdir, drone, attempt, created_on, started_on, finished_on) VALUES {};",
            e.join(",")
        );
        if !t.is_empty() {
            sql += &format!(
                "INSERT INTO tests (id, job_id, entry_id, attempt, host_id, name, subdir, status, started, finished) VALUES {};",
                t.join(",")
            );
        }
        conn.batch_execute(&sql).expect("jobs, entries and tests");
    }
    conn.batch_execute("COMMIT; ANALYZE;").expect("commit");
    (entry, test)
}
