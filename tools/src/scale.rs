//! The scale benchmark behind `deploy/bench.sh --scale`: does the scheduler's cost per
//! decision stay flat when a lot is queued? It runs the real scheduler (release binary,
//! SQLite) and two real drone workers, creates `--hosts` hosts and queues `--entries`
//! entries (jobs of 100 named hosts each) while the drones are disabled, then enables
//! the drones and lets short jobs run for `--seconds`. Each job's control file records
//! the moment it ends; the figure is, for each end, the time until the next entry is
//! recorded Running (a freed slot reused), with the scheduler's memory.

use crate::benchkit::*;
use crate::system::{System, DRONES};
use api::{Client, CreateHost, CreateJob};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOSTS_PER_JOB: usize = 100;
/// Clients creating hosts and jobs at once.
const THREADS: usize = 4;

/// What `scale_bench --help` prints.
pub const USAGE: &str = "usage: scale_bench [--hosts N] [--entries N] [--capacity N] [--seconds N]";

/// The command line.
pub struct Options {
    pub hosts: usize,
    /// Entries queued before the drones are enabled.
    pub entries: usize,
    /// Each drone's capacity.
    pub capacity: usize,
    /// How long the drones run.
    pub seconds: u64,
}

impl Options {
    /// Reads `--name value` pairs (without the program's name); `None` for `--help`.
    /// Panics on anything else.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Option<Options> {
        let mut o = Options {
            hosts: 10_000,
            entries: 100_000,
            capacity: 10,
            seconds: 40,
        };
        for (name, value) in crate::options::numeric_pairs(args)? {
            match name.as_str() {
                "--hosts" => o.hosts = value,
                "--entries" => o.entries = value,
                "--capacity" => o.capacity = value,
                "--seconds" => o.seconds = value as u64,
                other => panic!("unknown option {other}; {USAGE}"),
            }
        }
        assert!(
            o.hosts >= HOSTS_PER_JOB,
            "--hosts must be at least {HOSTS_PER_JOB}"
        );
        Some(o)
    }
}

/// What the drones did while enabled.
struct Window {
    /// When the drones were enabled and disabled (µs since the epoch).
    start: i64,
    end: i64,
    /// The scheduler's CPU seconds and largest RSS (KiB) meanwhile.
    cpu: f64,
    max_rss: u64,
}

/// Runs the scale benchmark and prints its figures.
pub async fn run(o: Options) {
    let mut system = start(&o).await;
    println!(
        "== autotest scale bench: {} hosts, {} queued entries ({} jobs of {HOSTS_PER_JOB} hosts), 2 drones x capacity {}, SQLite (synchronous=FULL)",
        o.hosts,
        o.entries,
        o.entries / HOSTS_PER_JOB,
        o.capacity
    );
    create_hosts(&system, o.hosts).await;
    let ends = system.dir.join("ends.log");
    queue_jobs(&system, o.entries / HOSTS_PER_JOB, o.hosts, &ends).await;
    system.wait_for_heartbeats().await;
    let window = run_drones(&system, o.seconds).await;
    let (reuse, ran) = slot_reuse(system.client.clone(), &ends, &window).await;
    println!(
        "  ran {ran} entries in {} s ({:.1}/s); {} still queued at the end",
        o.seconds,
        ran as f64 / o.seconds as f64,
        o.entries - ran
    );
    println!(
        "  {}",
        summary("a job ends -> the next entry Running", reuse)
    );
    println!(
        "  scheduler: RSS max {} KiB during the run, peak (VmHWM) {} KiB over the whole bench; {:.1} CPU s in the run",
        window.max_rss,
        peak_rss_kib(system.scheduler.id()),
        window.cpu
    );
    system.stop();
    system.finish();
}

/// Starts the scheduler, disables the drones, then starts the workers.
async fn start(o: &Options) -> System {
    let id = autotest_tests::unique("autotest_scale");
    let dir = run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let capacity = o.capacity;
    let mut system = System::start_scheduler(&id, &dir, |amqp, port| {
        format!(
            "[AUTOTEST_WEB]\ndatabase: {db}\n[SCHEDULER]\ndrones: drone1, drone2\nmax_processes_per_drone: {capacity}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[DRONE]\nheartbeat_sec: 5\n[AUTOSERV]\ncommand: /bin/sh {{control_file}}\n[BROKER]\nurl: {amqp}\n",
            db = dir.join("autotest.db").display(),
            results = dir.join("results").display(),
        )
    })
    .await;
    for drone in DRONES {
        system.client.disable_drone(drone).unwrap();
    }
    system.start_workers();
    system
}

/// Creates `hosts` hosts, from [`THREADS`] clients of their own.
async fn create_hosts(system: &System, hosts: usize) {
    let began = Instant::now();
    let server = system.server.clone();
    let token = system.token.clone();
    parallel(THREADS, move |t| {
        let c = Client::new(&server).with_token(Some(token.clone()));
        for i in (t..hosts).step_by(THREADS) {
            c.create_host(&CreateHost {
                name: format!("h{i}"),
                labels: vec![],
            })
            .unwrap();
        }
    })
    .await;
    println!(
        "  created {hosts} hosts in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

/// Queues `jobs` jobs of [`HOSTS_PER_JOB`] hosts each, whose control files append the
/// moment they end to `ends`.
async fn queue_jobs(system: &System, jobs: usize, hosts: usize, ends: &Path) {
    let began = Instant::now();
    let control = format!("sleep 0.2\ndate +%s%N >> {}\n", ends.display());
    let server = system.server.clone();
    let token = system.token.clone();
    parallel(THREADS, move |t| {
        let c = Client::new(&server).with_token(Some(token.clone()));
        for j in (t..jobs).step_by(THREADS) {
            let first = (j * HOSTS_PER_JOB) % hosts;
            c.create_job(&CreateJob::new(
                format!("scale {j}"),
                control.clone(),
                (0..HOSTS_PER_JOB)
                    .map(|k| format!("h{}", (first + k) % hosts))
                    .collect(),
                "bench",
            ))
            .unwrap();
        }
    })
    .await;
    println!(
        "  queued {} entries in {:.1} s; scheduler RSS now {} KiB",
        jobs * HOSTS_PER_JOB,
        began.elapsed().as_secs_f64(),
        current_rss_kib(system.scheduler.id())
    );
}

/// Enables the drones for `seconds`, sampling the scheduler's memory, then disables
/// them.
async fn run_drones(system: &System, seconds: u64) -> Window {
    let scheduler = system.scheduler.id();
    let cpu_before = cpu_seconds(scheduler);
    let start = common::time::now_micros();
    for drone in DRONES {
        system.client.enable_drone(drone).unwrap();
    }
    let mut max_rss = 0;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        max_rss = max_rss.max(current_rss_kib(scheduler));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let end = common::time::now_micros();
    let cpu = cpu_seconds(scheduler) - cpu_before;
    for drone in DRONES {
        system.client.disable_drone(drone).unwrap();
    }
    Window {
        start,
        end,
        cpu,
        max_rss,
    }
}

/// For each job end (from the control files) before the window's last second, the ms
/// until the next entry was recorded Running; and how many entries started in the
/// window.
async fn slot_reuse(client: Arc<Client>, ends: &Path, window: &Window) -> (Vec<f64>, usize) {
    let mut end_times: Vec<i64> = std::fs::read_to_string(ends)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i64>().ok())
        .map(|ns| ns / 1000)
        .collect();
    end_times.sort();
    let mut starts: Vec<i64> = tokio::task::spawn_blocking(move || {
        let mut starts = Vec::new();
        for job in client.jobs().unwrap() {
            if job.status == "Queued" {
                continue;
            }
            for e in client.job(job.id).unwrap().entries {
                if let Some(t) = e.started_on.as_deref().and_then(common::time::parse_micros) {
                    starts.push(t);
                }
            }
        }
        starts
    })
    .await
    .unwrap();
    starts.sort();
    let reuse: Vec<f64> = end_times
        .iter()
        .filter(|e| **e < window.end - 1_000_000)
        .filter_map(|e| {
            let i = starts.partition_point(|s| s <= e);
            starts.get(i).map(|s| (s - e) as f64 / 1000.0)
        })
        .collect();
    let ran = starts.iter().filter(|s| **s >= window.start).count();
    (reuse, ran)
}
