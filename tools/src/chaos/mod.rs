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

pub use options::{Options, USAGE};

use faults::{Fault, FaultCounts};
use jobs::{JobSpec, Submitted};
use options::{Plan, Rng};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally::Tally;

mod api;
mod cluster;
mod faults;
mod jobs;
mod options;
mod process;
mod rabbitmq;
mod tally;

const DRONES: [&str; 3] = ["drone1", "drone2", "drone3"];
const DRONE_CAPACITY: u32 = 5;
const HOSTS: usize = 30;
const OWNER: &str = "chaos";
const LABEL: &str = "chaos";
/// RabbitMQ's consumer_timeout during the run, in ms.
const CONSUMER_TIMEOUT_MS: u64 = 5000;
const OUTAGE: Duration = Duration::from_secs(20);

/// Runs the fault test with these options; returns the process's exit code (0 when
/// nothing was lost, run twice, left without results or given an unasked-for outcome).
pub fn run(o: Options) -> i32 {
    let started = Instant::now();
    process::watch_signals();
    check_tools();
    let plan = options::plan(&o);
    let mut rng = Rng(o.seed);
    let script = Script::draw(&o, &plan, &mut rng);
    let temp = tempfile::Builder::new()
        .prefix("autotest_chaos_")
        .tempdir()
        .expect("temp dir");
    println!(
        "chaos: seed={} jobs={} drones={} hosts={HOSTS} window={:.0}s consumer_timeout={CONSUMER_TIMEOUT_MS}ms dir={}",
        o.seed,
        o.jobs,
        DRONES.len(),
        plan.window.as_secs_f64(),
        temp.path().display()
    );
    let mut cluster = cluster::start(temp, Instant::now());
    cluster.started = Instant::now();
    cluster.event(&format!(
        "system up after {:.1} s; submitting",
        started.elapsed().as_secs_f64()
    ));
    let mut counts = FaultCounts::default();
    let specs = script.specs.clone();
    let (ids, aborted) = play(&mut cluster, script, &mut rng, &mut counts);
    let job_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
    tally::wait_for_all(&mut cluster, &job_ids, plan.wait_limit, &mut counts);
    let t = tally::tally(&cluster, &ids, &specs, &aborted);
    let duplicates = job_ids.len() - job_ids.iter().collect::<BTreeSet<_>>().len();
    let ok = report(&o, &t, &counts, duplicates, started);
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

/// Panics naming the first tool the run needs that is not on PATH.
fn check_tools() {
    for tool in ["flock", "rsync", "ssh", "rabbitmqctl", "timeout", "seq"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).exists()));
        assert!(
            found,
            "{tool} not found on PATH (deploy/chaos.sh installs what is missing)"
        );
    }
}

/// What the seed decided: the jobs, when each is submitted, and when each fault strikes.
struct Script {
    specs: Vec<JobSpec>,
    times: Vec<Duration>,
    schedule: Vec<(Duration, Fault)>,
}

impl Script {
    fn draw(o: &Options, plan: &Plan, rng: &mut Rng) -> Self {
        let specs = jobs::job_specs(o.jobs, rng);
        let window = plan.window.as_secs_f64();
        let mut times: Vec<Duration> = (0..o.jobs)
            .map(|_| Duration::from_secs_f64(rng.unit() * window))
            .collect();
        times.sort();
        let schedule = faults::fault_schedule(plan, rng);
        Self {
            specs,
            times,
            schedule,
        }
    }
}

/// Submits the jobs from a thread of their own while injecting the faults; returns
/// the jobs submitted (id, index) and those aborted on purpose.
fn play(
    cluster: &mut cluster::Cluster,
    script: Script,
    rng: &mut Rng,
    counts: &mut FaultCounts,
) -> (Vec<(i64, usize)>, BTreeSet<i64>) {
    let controls: Vec<String> = script
        .specs
        .iter()
        .map(|s| {
            jobs::control_file(
                s,
                &cluster.dir.join("locks"),
                &cluster.dir.join("concurrent.log"),
            )
        })
        .collect();
    let submitted = Arc::new(Mutex::new(Submitted::default()));
    let submitter = {
        let api = cluster.api.clone();
        let submitted = submitted.clone();
        let start = cluster.started;
        let (specs, times) = (script.specs, script.times);
        std::thread::spawn(move || jobs::submit_all(api, specs, controls, times, start, submitted))
    };
    let aborted = faults::inject_faults(cluster, script.schedule, rng, &submitted, counts);
    if submitter.join().is_err() {
        panic!("submitting jobs failed");
    }
    let ids: Vec<(i64, usize)> = submitted.lock().unwrap().ids.clone();
    assert!(submitted.lock().unwrap().done);
    cluster.event(&format!(
        "all {} jobs submitted and faults injected; waiting",
        ids.len()
    ));
    (ids, aborted)
}

/// Prints the run's line of figures and its problems; whether the run passed.
fn report(
    o: &Options,
    t: &Tally,
    counts: &FaultCounts,
    duplicates: usize,
    started: Instant,
) -> bool {
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
    if duplicates != 0 {
        println!("chaos: PROBLEM {duplicates} job ids were returned for two submissions");
    }
    t.lost == 0
        && t.concurrent == 0
        && t.incomplete_results == 0
        && t.unexpected == 0
        && duplicates == 0
}
