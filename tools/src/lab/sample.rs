//! What the lab benchmark reads while it runs: its MariaDB database, the scheduler's
//! `/metrics`, its process, the broker's queues and the machine.

use super::feed::Feeder;
use super::Options;
use crate::benchkit::{cpu_seconds, current_rss_kib, machine_busy_seconds, peak_rss_kib};
use crate::system::System;
use autotest_tests::world::{mysql_exec, mysql_parts, mysql_server_url};
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The run's own database on the test MariaDB server, dropped at the end.
pub struct Database {
    server: String,
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Start {
    #[diesel(sql_type = Text)]
    drone: String,
    #[diesel(sql_type = BigInt)]
    started_on: i64,
}

impl Database {
    pub async fn create(name: &str) -> Self {
        let server = mysql_server_url();
        mysql_exec(&server, &format!("CREATE DATABASE {name}")).await;
        Self {
            server,
            name: name.to_string(),
        }
    }

    /// The `[AUTOTEST_WEB]` lines that make the scheduler use it.
    pub fn config_lines(&self) -> String {
        let (user, password, host, port) = mysql_parts(&self.server);
        format!(
            "db_type: mysql\ndatabase: {}\nhost: {host}\nport: {port}\nuser: {user}\npassword: {password}",
            self.name
        )
    }

    async fn connect(&self) -> AsyncMysqlConnection {
        let url = format!("{}/{}", self.server.trim_end_matches('/'), self.name);
        AsyncMysqlConnection::establish(&url)
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {url}: {e}"))
    }

    async fn count(&self, statuses: &str) -> usize {
        let sql =
            format!("SELECT COUNT(*) AS n FROM host_queue_entries WHERE status IN ({statuses})");
        let rows: Vec<Count> = diesel::sql_query(sql)
            .load(&mut self.connect().await)
            .await
            .expect("count entries");
        rows.into_iter().next().map_or(0, |c| c.n as usize)
    }

    /// Entries Queued, Starting, Running or Gathering.
    pub async fn waiting_or_active(&self) -> usize {
        self.count("'Queued', 'Pending', 'Starting', 'Running', 'Gathering'")
            .await
    }

    /// Entries Starting, Running or Gathering.
    pub async fn active(&self) -> usize {
        self.count("'Starting', 'Running', 'Gathering'").await
    }

    async fn running(&self) -> usize {
        self.count("'Running'").await
    }

    /// Each drone's entries recorded Running since `since` (µs), by start time.
    pub async fn starts_by_drone(&self, since: i64) -> BTreeMap<String, Vec<i64>> {
        let sql = format!("SELECT drone, started_on FROM host_queue_entries WHERE drone IS NOT NULL AND started_on >= {since}");
        let rows: Vec<Start> = diesel::sql_query(sql)
            .load(&mut self.connect().await)
            .await
            .expect("read starts");
        let mut starts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in rows {
            starts.entry(row.drone).or_default().push(row.started_on);
        }
        starts
    }

    pub async fn drop(&self) {
        mysql_exec(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {}", self.name),
        )
        .await;
    }
}

/// The scheduler's `/metrics` answer.
pub fn scrape(server: &str) -> String {
    ureq::get(&format!("{server}/metrics"))
        .call()
        .and_then(|r| r.into_body().read_to_string())
        .expect("scrape the scheduler's /metrics")
}

/// What the run's window saw.
#[derive(Default)]
pub struct Window {
    /// When it began and ended (µs since the epoch).
    pub start: i64,
    pub end: i64,
    seconds: f64,
    /// CPU seconds over the window: the scheduler, the workers, MariaDB, RabbitMQ and
    /// the whole machine (busy, all cores).
    cpu: [f64; 5],
    max_rss: u64,
    peak_rss: u64,
    running: Vec<usize>,
    pub running_min: usize,
    /// The most messages ready in the drones' job queues together, and in the status
    /// queue (ready and unacknowledged).
    max_jobs_ready: u64,
    max_status: u64,
    load: Vec<f64>,
}

impl Window {
    pub fn running_mean(&self) -> f64 {
        self.running.iter().sum::<usize>() as f64 / self.running.len().max(1) as f64
    }

    pub fn print(&self) {
        let cores = |i: usize| self.cpu[i] / self.seconds;
        println!(
            "  CPU (cores, mean over the window): scheduler {:.2}, workers {:.2}, MariaDB {:.2}, RabbitMQ {:.2}; machine busy {:.2} of {}",
            cores(0),
            cores(1),
            cores(2),
            cores(3),
            cores(4),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "  scheduler RSS: max {} KiB sampled in the window, peak (VmHWM) {} KiB",
            self.max_rss, self.peak_rss
        );
        println!(
            "  broker: at most {} messages ready in the drones' job queues together, {} in autotest.status",
            self.max_jobs_ready, self.max_status
        );
        let max_load = self.load.iter().copied().fold(0.0, f64::max);
        let mean_load = self.load.iter().sum::<f64>() / self.load.len().max(1) as f64;
        println!("  load average (1 min): mean {mean_load:.1}, max {max_load:.1}");
    }
}

/// The process ids whose command name is `comm`.
fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// CPU seconds so far: scheduler, workers, MariaDB, RabbitMQ, machine.
fn cpu_now(system: &System) -> [f64; 5] {
    let sum = |pids: Vec<u32>| pids.into_iter().map(cpu_seconds).sum::<f64>();
    let mariadb = [pids_named("mariadbd"), pids_named("mysqld")].concat();
    [
        cpu_seconds(system.scheduler.id()),
        sum(system.worker_pids()),
        sum(mariadb),
        sum(pids_named("beam.smp")),
        machine_busy_seconds(),
    ]
}

/// Runs the lab for `o.seconds`, keeping it fed and sampling it.
pub async fn watch(system: &System, db: &Database, feeder: &Feeder, o: &Options) -> Window {
    let wanted = o.slots() + o.queued;
    let began = Instant::now();
    let mut w = Window {
        start: common::time::now_micros(),
        running_min: usize::MAX,
        ..Window::default()
    };
    let cpu_before = cpu_now(system);
    let until = began + Duration::from_secs(o.seconds);
    let warm = began + Duration::from_secs(o.warmup);
    let mut tick = 0u64;
    while Instant::now() < until {
        w.max_rss = w.max_rss.max(current_rss_kib(system.scheduler.id()));
        if tick.is_multiple_of(5) {
            feeder.top_up(db, wanted).await;
            let running = db.running().await;
            if Instant::now() >= warm {
                w.running.push(running);
                w.running_min = w.running_min.min(running);
            }
        }
        if tick.is_multiple_of(10) {
            broker_depths(system, &mut w);
            w.load.push(load_average());
        }
        tick += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    w.end = common::time::now_micros();
    w.seconds = began.elapsed().as_secs_f64();
    let cpu_after = cpu_now(system);
    for i in 0..5 {
        w.cpu[i] = cpu_after[i] - cpu_before[i];
    }
    w.peak_rss = peak_rss_kib(system.scheduler.id());
    w
}

fn broker_depths(system: &System, w: &mut Window) {
    let queues = autotest_tests::broker::queues(&system.vhost);
    let jobs: u64 = queues
        .iter()
        .filter(|q| q.name.starts_with("autotest.drone.") && !q.name.ends_with(".control"))
        .map(|q| q.messages_ready)
        .sum();
    let status: u64 = queues
        .iter()
        .filter(|q| q.name == common::broker::STATUS_QUEUE)
        .map(|q| q.messages_ready + q.messages_unacknowledged)
        .sum();
    w.max_jobs_ready = w.max_jobs_ready.max(jobs);
    w.max_status = w.max_status.max(status);
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Kills what the run's workers started and left (an Autoserv outlives its worker by
/// design): every process whose command line names the run's directory, with its
/// process group unless that group is the benchmark's own.
pub fn kill_leftovers(dir: &std::path::Path) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::{getpgid, getpgrp, Pid};
    let needle = dir.to_string_lossy().into_owned();
    let own = getpgrp();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let mut killed = 0;
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(&needle) {
            continue;
        }
        let pid = Pid::from_raw(pid);
        match getpgid(Some(pid)) {
            Ok(group) if group != own => {
                let _ = killpg(group, Signal::SIGKILL);
            }
            _ => {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        killed += 1;
    }
    if killed > 0 {
        println!("  killed {killed} processes the run left");
    }
}
