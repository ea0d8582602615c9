//! The benchmark behind `deploy/bench.sh`: runs the real scheduler and two real drone
//! workers (release binaries, separate processes) on a vhost and SQLite database of its
//! own, and prints
//! - idle dispatch latency (created → Running) and end-to-end latency (created →
//!   Completed), one job at a time on an idle system;
//! - throughput and the same latencies for a batch of jobs submitted at once;
//! - the naive ceiling of the same path measured in the same run on the same broker:
//!   publish with confirm → consume → spawn /bin/true → one rsync per job → confirmed
//!   status, with the same concurrency; and the system's rate as a ratio of it;
//! - peak RSS of the workers and the scheduler.

mod ceiling;

use crate::benchkit::*;
use crate::system::{System, DRONES};
use api::{Client, CreateHost, CreateJob, JobView};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `bench --help` prints.
pub const USAGE: &str =
    "usage: bench [--jobs N] [--idle-jobs N] [--hosts N] [--capacity N] [--status-log-tests N]";

/// The command line.
pub struct Options {
    /// Jobs in the batch.
    pub jobs: usize,
    /// Jobs run one at a time on the idle system.
    pub idle_jobs: usize,
    pub hosts: usize,
    /// Each drone's capacity.
    pub capacity: usize,
    /// When not 0, every job leaves an Autotest status log of this many tests (copied
    /// in place of running Autoserv), which the drones parse.
    pub status_log_tests: usize,
}

impl Options {
    /// Reads `--name value` pairs (without the program's name); `None` for `--help`.
    /// Panics on anything else.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        let mut o = Options {
            jobs: 1000,
            idle_jobs: 200,
            hosts: 200,
            capacity: 16,
            status_log_tests: 0,
        };
        for (name, value) in crate::options::numeric_pairs(args)? {
            match name.as_str() {
                "--jobs" => o.jobs = value,
                "--idle-jobs" => o.idle_jobs = value,
                "--hosts" => o.hosts = value,
                "--capacity" => o.capacity = value,
                "--status-log-tests" => o.status_log_tests = value,
                other => panic!("unknown option {other}; {USAGE}"),
            }
        }
        Some(o)
    }
}

/// (created → Running, created → Completed) in ms for every entry.
fn latencies(jobs: &[JobView]) -> (Vec<f64>, Vec<f64>) {
    let mut dispatch = Vec::new();
    let mut total = Vec::new();
    for job in jobs {
        for e in &job.entries {
            let created = common::time::parse_micros(&e.created_on).unwrap();
            dispatch.push((micros(&e.started_on) - created) as f64 / 1000.0);
            total.push((micros(&e.finished_on) - created) as f64 / 1000.0);
        }
    }
    (dispatch, total)
}

fn print_latencies(jobs: &[JobView]) {
    let (dispatch, total) = latencies(jobs);
    println!(
        "  {}",
        summary("dispatch latency (created -> Running)", dispatch)
    );
    println!(
        "  {}",
        summary("end-to-end latency (created -> Completed)", total)
    );
}

/// Runs the benchmark and prints its figures.
pub async fn run(o: Options) {
    let system = start(&o).await;
    println!("== autotest bench: {} jobs, {} hosts, 2 drones x capacity {}, SQLite (synchronous=FULL), RabbitMQ on loopback", o.jobs, o.hosts, o.capacity);
    let idle = one_at_a_time(system.client.clone(), o.idle_jobs, o.hosts).await;
    println!("idle, one job at a time:");
    print_latencies(&idle);
    let system_rate = batch_phase(&system, o.jobs, o.hosts).await;
    let mut system = system;
    system.stop();

    let busy_before = machine_busy_seconds();
    let ceiling =
        ceiling::naive_ceiling(&system.amqp, &system.dir, o.jobs, DRONES.len(), o.capacity).await;
    let ceiling_busy = machine_busy_seconds() - busy_before;
    println!("naive ceiling (publish+confirm -> consume -> spawn /bin/true -> rsync per job -> status+confirm), same concurrency:");
    println!("  throughput: {ceiling:.1} jobs/s");
    println!(
        "  machine CPU: {:.2} ms per job",
        ceiling_busy * 1000.0 / o.jobs as f64
    );
    println!("system / naive ceiling: {:.2}", system_rate / ceiling);
    system.finish();
}

/// Starts the system on a settled filesystem, with `o.hosts` hosts, and waits until
/// every drone has been heard from.
async fn start(o: &Options) -> System {
    let id = autotest_tests::unique("autotest_bench");
    let dir = run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    settle_filesystem(&dir);
    let capacity = o.capacity;
    let command = match o.status_log_tests {
        0 => "/bin/true {results_dir}".to_string(),
        tests => {
            let log = dir.join("status.log");
            std::fs::write(&log, status_log(tests)).unwrap();
            format!("/bin/cp {} {{results_dir}}/status.log", log.display())
        }
    };
    let mut system = System::start_scheduler(&id, &dir, |amqp, port| {
        format!(
            "[AUTOTEST_WEB]\ndatabase: {db}\n[SCHEDULER]\ndrones: drone1, drone2\nmax_processes_per_drone: {capacity}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[AUTOSERV]\ncommand: {command}\n[BROKER]\nurl: {amqp}\n",
            db = dir.join("autotest.db").display(),
            results = dir.join("results").display(),
        )
    })
    .await;
    system.start_workers();
    let c = system.client.clone();
    let hosts = o.hosts;
    tokio::task::spawn_blocking(move || {
        for i in 0..hosts {
            c.create_host(&CreateHost {
                name: format!("host{i}"),
                labels: vec![],
            })
            .unwrap();
        }
    })
    .await
    .unwrap();
    system.wait_for_heartbeats().await;
    system
}

/// Runs `count` jobs one after the other, each submitted once the last completed.
async fn one_at_a_time(client: Arc<Client>, count: usize, hosts: usize) -> Vec<JobView> {
    tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|i| {
                let id = client
                    .create_job(&job(i, &format!("host{}", i % hosts)))
                    .unwrap();
                loop {
                    let j = client.job(id).unwrap();
                    if j.status == "Completed" {
                        return j;
                    }
                    assert_ne!(j.status, "Failed", "{j:?}");
                    // A light poll: the figures come from the database, not from this loop.
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Submits `jobs` jobs at once, waits for them, prints the batch's figures; returns
/// the system's rate in jobs per second.
async fn batch_phase(system: &System, jobs: usize, hosts: usize) -> f64 {
    let pids = system.worker_pids();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        let pids = pids.clone();
        tokio::spawn(async move {
            loop {
                let rss: u64 = pids.iter().map(|p| current_rss_kib(*p)).max().unwrap_or(0);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let c = system.client.clone();
    let started = Instant::now();
    let (batch, system_busy) =
        tokio::task::spawn_blocking(move || submit_batch_and_wait(&c, jobs, hosts))
            .await
            .unwrap();
    let wall = started.elapsed();
    sampler.abort();
    let system_rate = report_batch(&batch, jobs, wall);
    let scheduler = system.scheduler.id();
    println!("  worker RSS at full load: max {} KiB; peak (VmHWM) {} KiB and {} KiB; scheduler peak {} KiB",
        peak.load(Ordering::Relaxed), peak_rss_kib(pids[0]), peak_rss_kib(pids[1]), peak_rss_kib(scheduler));
    println!(
        "  CPU time (whole run): scheduler {:.2} s, workers {:.2} s and {:.2} s, the workers' reaped children (rsync; not the long-lived supervisor and its Autoserv) {:.2} s and {:.2} s",
        cpu_seconds(scheduler),
        cpu_seconds(pids[0]),
        cpu_seconds(pids[1]),
        children_cpu_seconds(pids[0]),
        children_cpu_seconds(pids[1])
    );
    println!(
        "  machine CPU during the batch (every process and the kernel, this tool and RabbitMQ included): {:.2} ms per job",
        system_busy * 1000.0 / jobs as f64
    );
    system_rate
}

/// Submits the batch from 4 clients at once and waits until every job is final;
/// returns the jobs and the machine's busy CPU seconds meanwhile.
fn submit_batch_and_wait(c: &Client, jobs: usize, hosts: usize) -> (Vec<JobView>, f64) {
    let busy_before = machine_busy_seconds();
    // Submitted by 4 clients at once, as users of a lab would.
    let ids: Vec<i64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    (0..jobs)
                        .filter(|i| i % 4 == t)
                        .map(|i| {
                            c.create_job(&job(i, &format!("host{}", i % hosts)))
                                .unwrap()
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    loop {
        std::thread::sleep(Duration::from_millis(100));
        // The figures come from the database's timestamps, not from this loop, so
        // it stays light: the drones' running counts (a small answer) until they
        // are all idle, and only then the whole job list (1,200 jobs), which would
        // otherwise take the scheduler's CPU from the jobs it measures.
        let running: i64 = c.drones().unwrap().iter().map(|d| d.running).sum();
        if running > 0 {
            continue;
        }
        let list = c.jobs().unwrap();
        let done = list
            .iter()
            .filter(|j| ids.contains(&j.id) && (j.status == "Completed" || j.status == "Failed"))
            .count();
        if done == ids.len() {
            break;
        }
    }
    // The machine's work for the batch ends here, before this tool reads every job.
    let busy = machine_busy_seconds() - busy_before;
    let views: Vec<JobView> = ids.iter().map(|id| c.job(*id).unwrap()).collect();
    (views, busy)
}

/// Prints the batch's throughput, submission time and latencies; returns the rate.
fn report_batch(batch: &[JobView], jobs: usize, wall: Duration) -> f64 {
    let failed = batch.iter().filter(|j| j.status != "Completed").count();
    let created = || {
        batch
            .iter()
            .map(|j| common::time::parse_micros(&j.created_on).unwrap())
    };
    let first = created().min().unwrap();
    let last_created = created().max().unwrap();
    let last = batch
        .iter()
        .flat_map(|j| j.entries.iter().map(|e| micros(&e.finished_on)))
        .max()
        .unwrap();
    let system_rate = jobs as f64 / ((last - first) as f64 / 1e6);
    println!("batch of {jobs} submitted at once by 4 clients ({failed} not completed):");
    println!("  throughput: {system_rate:.1} jobs/s (first created -> last completed; {:.1} s wall including submission)", wall.as_secs_f64());
    println!(
        "  submission: {:.2} s (first created -> last created), then {:.2} s to the last completed",
        (last_created - first) as f64 / 1e6,
        (last - last_created) as f64 / 1e6
    );
    print_latencies(batch);
    system_rate
}

/// An Autotest status log of `tests` passing tests in one client job.
fn status_log(tests: usize) -> String {
    let mut log = String::from("START\t----\t----\ttimestamp=1765000000\t\n");
    for i in 0..tests {
        log.push_str(&format!(
            "\tSTART\tt{i}\tt{i}\ttimestamp=1765000001\t\n\t\tGOOD\tt{i}\tt{i}\ttimestamp=1765000002\tcompleted\n\tEND GOOD\tt{i}\tt{i}\ttimestamp=1765000003\t\n"
        ));
    }
    log.push_str("END GOOD\t----\t----\ttimestamp=1765000004\t\n");
    log
}

fn job(i: usize, host: &str) -> CreateJob {
    CreateJob::new(
        format!("bench {i}"),
        "job.run_test('sleeptest', seconds=0)\n",
        vec![host.into()],
        "bench",
    )
}
