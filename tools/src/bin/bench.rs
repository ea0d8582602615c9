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
//!
//! Usage: bench [--jobs N] [--idle-jobs N] [--hosts N] [--capacity N]

use api::Client;
use api::{CreateHost, CreateJob, JobView};
use autotest_tests::broker as mq;
use common::broker;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::benchkit::*;

struct Options {
    jobs: usize,
    idle_jobs: usize,
    hosts: usize,
    capacity: usize,
}

fn options() -> Options {
    let mut o = Options {
        jobs: 1000,
        idle_jobs: 200,
        hosts: 200,
        capacity: 16,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value: usize = pair
            .get(1)
            .and_then(|v| v.parse().ok())
            .expect("numeric option value");
        match pair[0].as_str() {
            "--jobs" => o.jobs = value,
            "--idle-jobs" => o.idle_jobs = value,
            "--hosts" => o.hosts = value,
            "--capacity" => o.capacity = value,
            other => panic!("unknown option {other}"),
        }
    }
    o
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options()));
}

async fn run(o: Options) {
    let id = autotest_tests::unique("autotest_bench");
    let dir = tools::benchkit::run_dir(&id);
    std::fs::create_dir_all(&dir).unwrap();
    settle_filesystem(&dir);
    let vhost = id.replace('_', "-");
    let amqp = mq::create_vhost(&vhost);
    let port = free_port();
    let config = dir.join("global_config.ini");
    std::fs::write(
        &config,
        format!(
            "[AUTOTEST_WEB]\ndatabase: {db}\n[SCHEDULER]\ndrones: drone1, drone2\nmax_processes_per_drone: {cap}\nresults_dir: {results}\nhttp_listen: 127.0.0.1:{port}\n[AUTOSERV]\ncommand: /bin/true {{results_dir}}\n[BROKER]\nurl: {amqp}\n",
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
    let c = client.clone();
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

    println!("== autotest bench: {} jobs, {} hosts, 2 drones x capacity {}, SQLite (synchronous=FULL), RabbitMQ on loopback", o.jobs, o.hosts, o.capacity);

    // 1. Idle: one job at a time.
    let c = client.clone();
    let idle_jobs = o.idle_jobs;
    let idle: Vec<JobView> = tokio::task::spawn_blocking(move || {
        (0..idle_jobs)
            .map(|i| {
                let id = c
                    .create_job(&job(i, &format!("host{}", i % hosts)))
                    .unwrap();
                loop {
                    let j = c.job(id).unwrap();
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
    .unwrap();
    let (dispatch, total) = latencies(&idle);
    println!("idle, one job at a time:");
    println!(
        "  {}",
        summary("dispatch latency (created -> Running)", dispatch)
    );
    println!(
        "  {}",
        summary("end-to-end latency (created -> Completed)", total)
    );

    // 2. A batch submitted at once.
    let pids: Vec<u32> = workers.iter().map(Child::id).collect();
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
    let c = client.clone();
    let jobs = o.jobs;
    let started = Instant::now();
    let busy_before = machine_busy_seconds();
    let (batch, system_busy) = tokio::task::spawn_blocking(move || {
        // Submitted by 4 clients at once, as users of a lab would.
        let ids: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let c = &c;
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
                .filter(|j| {
                    ids.contains(&j.id) && (j.status == "Completed" || j.status == "Failed")
                })
                .count();
            if done == ids.len() {
                break;
            }
        }
        // The machine's work for the batch ends here, before this tool reads every job.
        let busy = machine_busy_seconds() - busy_before;
        let views: Vec<JobView> = ids.iter().map(|id| c.job(*id).unwrap()).collect();
        (views, busy)
    })
    .await
    .unwrap();
    let wall = started.elapsed();
    sampler.abort();
    let failed = batch.iter().filter(|j| j.status != "Completed").count();
    let first = batch
        .iter()
        .map(|j| common::time::parse_micros(&j.created_on).unwrap())
        .min()
        .unwrap();
    let last = batch
        .iter()
        .flat_map(|j| j.entries.iter().map(|e| micros(&e.finished_on)))
        .max()
        .unwrap();
    let last_created = batch
        .iter()
        .map(|j| common::time::parse_micros(&j.created_on).unwrap())
        .max()
        .unwrap();
    let system_rate = jobs as f64 / ((last - first) as f64 / 1e6);
    let (dispatch, total) = latencies(&batch);
    println!("batch of {jobs} submitted at once by 4 clients ({failed} not completed):");
    println!("  throughput: {system_rate:.1} jobs/s (first created -> last completed; {:.1} s wall including submission)", wall.as_secs_f64());
    println!(
        "  submission: {:.2} s (first created -> last created), then {:.2} s to the last completed",
        (last_created - first) as f64 / 1e6,
        (last - last_created) as f64 / 1e6
    );
    println!(
        "  {}",
        summary("dispatch latency (created -> Running)", dispatch)
    );
    println!(
        "  {}",
        summary("end-to-end latency (created -> Completed)", total)
    );
    println!("  worker RSS at full load: max {} KiB; peak (VmHWM) {} KiB and {} KiB; scheduler peak {} KiB",
        peak.load(Ordering::Relaxed), peak_rss_kib(pids[0]), peak_rss_kib(pids[1]), peak_rss_kib(scheduler.id()));

    println!(
        "  CPU time (whole run): scheduler {:.2} s, workers {:.2} s and {:.2} s, the workers' reaped children (rsync; not the long-lived supervisor and its Autoserv) {:.2} s and {:.2} s",
        cpu_seconds(scheduler.id()),
        cpu_seconds(pids[0]),
        cpu_seconds(pids[1]),
        children_cpu_seconds(pids[0]),
        children_cpu_seconds(pids[1])
    );
    println!(
        "  machine CPU during the batch (every process and the kernel, this tool and RabbitMQ included): {:.2} ms per job",
        system_busy * 1000.0 / jobs as f64
    );
    for w in &mut workers {
        terminate(w);
    }
    terminate(&mut scheduler);

    // 3. The naive ceiling on the same broker.
    let busy_before = machine_busy_seconds();
    let ceiling = naive_ceiling(&amqp, &dir, jobs, 2, o.capacity).await;
    let ceiling_busy = machine_busy_seconds() - busy_before;
    println!("naive ceiling (publish+confirm -> consume -> spawn /bin/true -> rsync per job -> status+confirm), same concurrency:");
    println!("  throughput: {ceiling:.1} jobs/s");
    println!(
        "  machine CPU: {:.2} ms per job",
        ceiling_busy * 1000.0 / jobs as f64
    );
    println!("system / naive ceiling: {:.2}", system_rate / ceiling);

    mq::delete_vhost(&vhost);
    if std::env::var_os("AUTOTEST_BENCH_KEEP").is_some() {
        println!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn job(i: usize, host: &str) -> CreateJob {
    CreateJob::new(
        format!("bench {i}"),
        "job.run_test('sleeptest', seconds=0)\n",
        vec![host.into()],
        "bench",
    )
}

/// The same path with nothing recorded and one rsync per job: `drones` consumers, each
/// running up to `capacity` jobs at once. Returns jobs per second.
async fn naive_ceiling(amqp: &str, dir: &Path, jobs: usize, drones: usize, capacity: usize) -> f64 {
    let work = dir.join("ceiling");
    let dest = dir.join("ceiling-results");
    std::fs::create_dir_all(&dest).unwrap();
    let connection = broker::connect(amqp, "bench ceiling (publish)")
        .await
        .unwrap();
    let publish = broker::confirm_channel(&connection).await.unwrap();
    for d in 0..drones {
        publish
            .queue_declare(
                format!("bench.ceiling.{d}").as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    publish
        .queue_declare(
            "bench.ceiling.status".into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumers = Vec::new();
    for d in 0..drones {
        let amqp = amqp.to_string();
        let work = work.clone();
        let dest = dest.clone();
        consumers.push(tokio::spawn(async move {
            let connection = broker::connect(&amqp, "bench ceiling (drone)")
                .await
                .unwrap();
            let channel = broker::confirm_channel(&connection).await.unwrap();
            channel
                .basic_qos(capacity as u16, BasicQosOptions::default())
                .await
                .unwrap();
            let mut consumer = channel
                .basic_consume(
                    format!("bench.ceiling.{d}").as_str().into(),
                    "c".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            while let Some(Ok(delivery)) = consumer.next().await {
                let channel = channel.clone();
                let work = work.clone();
                let dest = dest.clone();
                tokio::spawn(async move {
                    let n = String::from_utf8_lossy(&delivery.data).to_string();
                    let job_dir = work.join(&n);
                    std::fs::create_dir_all(&job_dir).unwrap();
                    std::fs::write(
                        job_dir.join("control"),
                        "job.run_test('sleeptest', seconds=0)\n",
                    )
                    .unwrap();
                    let out = std::fs::File::create(job_dir.join("autoserv.stdout")).unwrap();
                    let err = std::fs::File::create(job_dir.join("autoserv.stderr")).unwrap();
                    tokio::process::Command::new("/bin/true")
                        .stdout(out)
                        .stderr(err)
                        .status()
                        .await
                        .unwrap();
                    let status = tokio::process::Command::new("rsync")
                        .arg("-a")
                        .arg("--relative")
                        .arg(PathBuf::from(&work).join(".").join(&n))
                        .arg(format!("{}/", dest.display()))
                        .status()
                        .await
                        .unwrap();
                    assert!(status.success());
                    broker::publish_confirmed(
                        &channel,
                        "",
                        "bench.ceiling.status",
                        n.as_bytes(),
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap();
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                });
            }
        }));
    }
    let status_connection = broker::connect(amqp, "bench ceiling (status)")
        .await
        .unwrap();
    let status_channel = status_connection.create_channel().await.unwrap();
    let mut statuses = status_channel
        .basic_consume(
            "bench.ceiling.status".into(),
            "s".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        let mut confirms = Vec::with_capacity(jobs);
        for i in 0..jobs {
            let queue = format!("bench.ceiling.{}", i % drones);
            confirms.push(
                publish
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        lapin::options::BasicPublishOptions::default(),
                        i.to_string().as_bytes(),
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap(),
            );
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
        connection
    });
    let mut received = 0;
    while received < jobs {
        let delivery = statuses.next().await.unwrap().unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        received += 1;
    }
    let elapsed = start.elapsed();
    let _ = publisher.await;
    for c in consumers {
        c.abort();
    }
    jobs as f64 / elapsed.as_secs_f64()
}
