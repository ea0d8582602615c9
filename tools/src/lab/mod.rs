//! The lab benchmark behind `deploy/bench.sh --lab`: one scheduler on MariaDB and
//! `--drones` real `drone-worker` processes (each its own drone and queue, capacity
//! `--capacity`), with jobs that sleep `--min-sleep` to `--max-sleep` seconds kept
//! topped up so that every slot is busy and about `--queued` entries wait, for
//! `--seconds`. It prints the time from a slot freeing (Autoserv ending, as its control
//! file records) to the next entry Running on that drone, the status-report lag (the
//! scheduler's `autotest_status_report_lag_seconds`), the scheduler's CPU and memory,
//! the broker's queue depths and the machine's load.

mod feed;
pub mod figures;
mod sample;

use crate::benchkit::*;
use crate::system::System;
use std::time::{Duration, Instant};

/// What `lab_bench --help` prints.
pub const USAGE: &str = "usage: lab_bench [--drones N] [--capacity N] [--queued N] [--hosts N] [--seconds N] [--warmup N] [--min-sleep N] [--max-sleep N]";

/// The command line.
pub struct Options {
    pub drones: usize,
    pub capacity: usize,
    /// Entries kept waiting (Queued) while every slot is busy.
    pub queued: usize,
    /// Hosts; enough that a freed slot always finds an idle host with work.
    pub hosts: usize,
    /// How long the lab runs once every drone is heard from.
    pub seconds: u64,
    /// The first seconds of the run, left out of the slot figures (the first fill).
    pub warmup: u64,
    pub min_sleep: u64,
    pub max_sleep: u64,
}

impl Options {
    /// Reads `--name value` pairs (without the program's name); `None` for `--help`.
    /// Panics on anything else.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        let mut o = Options {
            drones: 100,
            capacity: 50,
            queued: 20_000,
            hosts: 0,
            seconds: 600,
            warmup: 150,
            min_sleep: 30,
            max_sleep: 120,
        };
        for (name, value) in crate::options::numeric_pairs(args)? {
            match name.as_str() {
                "--drones" => o.drones = value,
                "--capacity" => o.capacity = value,
                "--queued" => o.queued = value,
                "--hosts" => o.hosts = value,
                "--seconds" => o.seconds = value as u64,
                "--warmup" => o.warmup = value as u64,
                "--min-sleep" => o.min_sleep = value as u64,
                "--max-sleep" => o.max_sleep = value as u64,
                other => panic!("unknown option {other}; {USAGE}"),
            }
        }
        if o.hosts == 0 {
            o.hosts = (o.drones * o.capacity * 2).max(feed::HOSTS_PER_JOB);
        }
        assert!(o.drones > 0 && o.capacity > 0, "{USAGE}");
        assert!(o.min_sleep <= o.max_sleep, "--min-sleep above --max-sleep");
        assert!(
            o.hosts >= feed::HOSTS_PER_JOB,
            "--hosts must be at least {}",
            feed::HOSTS_PER_JOB
        );
        assert!(
            o.warmup < o.seconds,
            "--warmup must be shorter than --seconds"
        );
        Some(o)
    }

    fn slots(&self) -> usize {
        self.drones * self.capacity
    }
}

/// Runs the lab benchmark and prints its figures.
pub async fn run(o: Options) {
    // The test user may make databases named autotest_test_* only.
    let id = autotest_tests::unique("autotest_test_lab");
    let dir = run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let db = sample::Database::create(&id).await;
    let names: Vec<String> = (1..=o.drones).map(|i| format!("d{i:03}")).collect();
    let mut system = System::start_scheduler(&id, &dir, |amqp, port| {
        config(&o, &names, &db, &dir, amqp, port)
    })
    .await;
    println!(
        "== autotest lab bench: {} drones x capacity {} = {} slots, {} queued, {} hosts, jobs sleeping {}-{} s, {} s ({} s warm-up), MariaDB",
        o.drones, o.capacity, o.slots(), o.queued, o.hosts, o.min_sleep, o.max_sleep, o.seconds, o.warmup
    );
    let feeder = feed::Feeder::new(&system, &dir, &o);
    feeder.create_hosts(o.hosts).await;
    feeder.top_up(&db, o.slots() + o.queued).await;
    system.start_workers_named(&names);
    system.wait_for_heartbeats().await;
    let before = sample::scrape(&system.server);
    let window = sample::watch(&system, &db, &feeder, &o).await;
    let after = sample::scrape(&system.server);
    report(&o, &db, &dir, &window, &before, &after).await;
    println!(
        "  job creations that failed (the API did not answer in time): {}",
        feeder.failures()
    );
    stop(&mut system, &db, &feeder).await;
    db.drop().await;
    system.finish();
}

fn config(
    o: &Options,
    names: &[String],
    db: &sample::Database,
    dir: &std::path::Path,
    amqp: &str,
    port: u16,
) -> String {
    format!(
        "[AUTOTEST_WEB]\n{db}\n[SCHEDULER]\ndrones: {drones}\nmax_processes_per_drone: {capacity}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[DRONE]\nheartbeat_sec: 10\n[AUTOSERV]\ncommand: /bin/sh {{control_file}}\n[BROKER]\nurl: {amqp}\n",
        db = db.config_lines(),
        drones = names.join(", "),
        capacity = o.capacity,
        results = dir.join("results").display(),
    )
}

/// Prints the figures of the window.
async fn report(
    o: &Options,
    db: &sample::Database,
    dir: &std::path::Path,
    window: &sample::Window,
    before: &str,
    after: &str,
) {
    let from = window.start + o.warmup as i64 * 1_000_000;
    let frees = feed::ends(dir);
    let starts = db.starts_by_drone(window.start).await;
    let waits = figures::slot_waits(&frees, &starts, from, window.end - 5_000_000);
    let ended: usize = frees
        .values()
        .map(|t| {
            t.iter()
                .filter(|t| (window.start..window.end).contains(t))
                .count()
        })
        .sum();
    println!(
        "  {ended} entries ended in the window ({:.1}/s); running: mean {:.0}, min {} after the warm-up",
        ended as f64 / o.seconds as f64,
        window.running_mean(),
        window.running_min
    );
    println!(
        "  {}",
        summary(
            "a slot freed (Autoserv ends) -> the next entry Running on its drone",
            waits
        )
    );
    let lag = figures::bucket_delta(
        &figures::buckets_of(before, "autotest_status_report_lag_seconds"),
        &figures::buckets_of(after, "autotest_status_report_lag_seconds"),
    );
    let q = |p| figures::quantile(&lag, p).map_or("none".into(), |s| format!("{:.1} ms", s * 1e3));
    println!(
        "  status-report lag (sent -> committed; from the histogram, interpolated in its bucket): p50 {}, p99 {} (n={})",
        q(0.5),
        q(0.99),
        lag.last().map_or(0.0, |b| b.1)
    );
    let retries = |text| {
        autotest_tests::metrics::parse(text)
            .value("autotest_infra_retries_total", &[])
            .unwrap_or(0.0)
    };
    println!(
        "  entries sent back after an infra failure (lost drones included): {:.0}",
        retries(after) - retries(before)
    );
    window.print();
}

/// Aborts what is left, waits for the drones to end it, then stops the processes.
async fn stop(system: &mut System, db: &sample::Database, feeder: &feed::Feeder) {
    let began = Instant::now();
    feeder.abort_all().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while db.active().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "  aborted what was left; {} entries still active after {:.0} s",
        db.active().await,
        began.elapsed().as_secs_f64()
    );
    system.stop();
    sample::kill_leftovers(&system.dir);
}
