//! The scale benchmark behind `deploy/bench.sh --scale`: does the scheduler's cost per
//! decision stay flat when a lot is queued? It runs the real scheduler (release binary,
//! SQLite) and two real drone workers, creates `--hosts` hosts and queues `--entries`
//! entries (jobs of 100 named hosts each) while the drones are disabled, then enables
//! the drones and lets short jobs run for `--seconds`. Each job's control file records
//! the moment it ends; the figure is, for each end, the time until the next entry is
//! recorded Running (a freed slot reused), with the scheduler's memory.
//!
//! Usage: scale_bench [--hosts N] [--entries N] [--capacity N] [--seconds N]

use api::Client;
use api::{CreateHost, CreateJob};
use autotest_tests::broker as mq;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::benchkit::*;

const HOSTS_PER_JOB: usize = 100;

struct Options {
    hosts: usize,
    entries: usize,
    capacity: usize,
    seconds: u64,
}

fn options() -> Options {
    let mut o = Options {
        hosts: 10_000,
        entries: 100_000,
        capacity: 10,
        seconds: 40,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value: usize = pair
            .get(1)
            .and_then(|v| v.parse().ok())
            .expect("numeric option value");
        match pair[0].as_str() {
            "--hosts" => o.hosts = value,
            "--entries" => o.entries = value,
            "--capacity" => o.capacity = value,
            "--seconds" => o.seconds = value as u64,
            other => panic!("unknown option {other}"),
        }
    }
    assert!(
        o.hosts >= HOSTS_PER_JOB,
        "--hosts must be at least {HOSTS_PER_JOB}"
    );
    o
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options()));
}

/// Runs `f` on `threads` blocking threads, each given its index; returns when all end.
async fn parallel(threads: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let f = f.clone();
            tokio::task::spawn_blocking(move || f(t))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn run(o: Options) {
    let id = autotest_tests::unique("autotest_scale");
    let dir = tools::benchkit::run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let vhost = id.replace('_', "-");
    let amqp = mq::create_vhost(&vhost);
    let port = free_port();
    let config = dir.join("global_config.ini");
    let ends = dir.join("ends.log");
    std::fs::write(
        &config,
        format!(
            "[AUTOTEST_WEB]\ndatabase: {db}\n[SCHEDULER]\ndrones: drone1, drone2\nmax_processes_per_drone: {cap}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[DRONE]\nheartbeat_sec: 5\n[AUTOSERV]\ncommand: /bin/sh {{control_file}}\n[BROKER]\nurl: {amqp}\n",
            db = dir.join("autotest.db").display(),
            cap = o.capacity,
            results = dir.join("results").display(),
        ),
    )
    .unwrap();
    let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut scheduler = Command::new(autotest_tests::binary("autotest-scheduler"))
        .arg("--config")
        .arg(&config)
        .stderr(log("scheduler"))
        .stdout(Stdio::null())
        .spawn()
        .expect("start the scheduler");
    let server = format!("http://127.0.0.1:{port}");
    let client = Arc::new(Client::new(&server));
    let c = client.clone();
    wait_blocking(move || c.drones().is_ok(), Duration::from_secs(30)).await;
    for drone in ["drone1", "drone2"] {
        client.disable_drone(drone).unwrap();
    }
    let mut workers: Vec<Child> = ["drone1", "drone2"]
        .iter()
        .map(|name| {
            Command::new(autotest_tests::binary("drone-worker"))
                .arg("--config")
                .arg(&config)
                .args(["--name", name])
                .env(
                    "AUTOTEST_DRONE_RESULTS_DIR",
                    dir.join(format!("drone-{name}")),
                )
                .stderr(log(name))
                .stdout(Stdio::null())
                .spawn()
                .expect("start a worker")
        })
        .collect();

    println!(
        "== autotest scale bench: {} hosts, {} queued entries ({} jobs of {HOSTS_PER_JOB} hosts), 2 drones x capacity {}, SQLite (synchronous=FULL)",
        o.hosts,
        o.entries,
        o.entries / HOSTS_PER_JOB,
        o.capacity
    );
    let began = Instant::now();
    let (hosts, threads) = (o.hosts, 4);
    parallel(threads, move |t| {
        let c = Client::new(&format!("http://127.0.0.1:{port}"));
        for i in (t..hosts).step_by(threads) {
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
    let began = Instant::now();
    let jobs = o.entries / HOSTS_PER_JOB;
    let control = format!("sleep 0.2\ndate +%s%N >> {}\n", ends.display());
    parallel(threads, move |t| {
        let c = Client::new(&format!("http://127.0.0.1:{port}"));
        for j in (t..jobs).step_by(threads) {
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
        current_rss_kib(scheduler.id())
    );
    let c = client.clone();
    wait_blocking(
        move || {
            c.drones()
                .map(|d| d.iter().all(|d| d.last_heartbeat.is_some()))
                .unwrap_or(false)
        },
        Duration::from_secs(30),
    )
    .await;

    // Run: the drones take work; sample the scheduler's memory meanwhile.
    let cpu_before = cpu_seconds(scheduler.id());
    let window_start = common::time::now_micros();
    for drone in ["drone1", "drone2"] {
        client.enable_drone(drone).unwrap();
    }
    let mut max_rss = 0;
    let until = Instant::now() + Duration::from_secs(o.seconds);
    while Instant::now() < until {
        max_rss = max_rss.max(current_rss_kib(scheduler.id()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let window_end = common::time::now_micros();
    let cpu = cpu_seconds(scheduler.id()) - cpu_before;
    for drone in ["drone1", "drone2"] {
        client.disable_drone(drone).unwrap();
    }

    // Ends (from the control files) and starts (Running, from the scheduler).
    let mut end_times: Vec<i64> = std::fs::read_to_string(&ends)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i64>().ok())
        .map(|ns| ns / 1000)
        .collect();
    end_times.sort();
    let c = client.clone();
    let mut starts: Vec<i64> = tokio::task::spawn_blocking(move || {
        let mut starts = Vec::new();
        for job in c.jobs().unwrap() {
            if job.status == "Queued" {
                continue;
            }
            for e in c.job(job.id).unwrap().entries {
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
        .filter(|e| **e < window_end - 1_000_000)
        .filter_map(|e| {
            let i = starts.partition_point(|s| s <= e);
            starts.get(i).map(|s| (s - e) as f64 / 1000.0)
        })
        .collect();
    let ran = starts.iter().filter(|s| **s >= window_start).count();
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
        max_rss,
        peak_rss_kib(scheduler.id()),
        cpu
    );

    for worker in &mut workers {
        terminate(worker);
    }
    terminate(&mut scheduler);
    mq::delete_vhost(&vhost);
    if std::env::var_os("AUTOTEST_BENCH_KEEP").is_some() {
        println!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
