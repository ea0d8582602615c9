//! The lab's work: its hosts, and jobs of sleeping entries kept topped up, each
//! control file recording when its Autoserv ends.

use super::sample::Database;
use super::Options;
use crate::benchkit::parallel;
use api::{Client, CreateHost, CreateJob};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Entries per job: one per named host.
pub const HOSTS_PER_JOB: usize = 100;
/// Clients creating at once.
const THREADS: usize = 4;

/// Creates the lab's hosts and jobs, and keeps the jobs' ids for the end.
#[derive(Clone)]
pub struct Feeder {
    server: String,
    token: String,
    control: String,
    hosts: usize,
    next_job: Arc<AtomicUsize>,
    jobs: Arc<Mutex<Vec<i64>>>,
    /// Job creations that failed (the API did not answer in time).
    failed: Arc<AtomicUsize>,
}

/// Where the control files append `<ns since the epoch> <control file>` as they end.
fn ends_log(dir: &Path) -> PathBuf {
    dir.join("ends.log")
}

impl Feeder {
    pub fn new(system: &crate::system::System, dir: &Path, o: &Options) -> Self {
        let spread = o.max_sleep - o.min_sleep + 1;
        // dash has no $RANDOM: two bytes of /dev/urandom pick the sleep.
        let control = format!(
            "r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')\nsleep $(( {min} + r % {spread} ))\necho \"$(date +%s%N) $0\" >> {ends}\n",
            min = o.min_sleep,
            ends = ends_log(dir).display(),
        );
        Self {
            server: system.server.clone(),
            token: system.token.clone(),
            control,
            hosts: o.hosts,
            next_job: Arc::new(AtomicUsize::new(0)),
            jobs: Arc::new(Mutex::new(Vec::new())),
            failed: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.server).with_token(Some(self.token.clone()))
    }

    /// Creates hosts `h0`.. `h<hosts-1>`.
    pub async fn create_hosts(&self, hosts: usize) {
        let began = Instant::now();
        let this = self.clone();
        parallel(THREADS, move |t| {
            let c = this.client();
            for i in (t..hosts).step_by(THREADS) {
                let host = CreateHost {
                    name: format!("h{i}"),
                    labels: vec![],
                };
                c.create_host(&host).expect("create a host");
            }
        })
        .await;
        println!(
            "  created {hosts} hosts in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }

    /// Creates jobs until at least `wanted` entries are Queued or active; returns how
    /// many entries it queued.
    pub async fn top_up(&self, db: &Database, wanted: usize) -> usize {
        let have = db.waiting_or_active().await;
        let jobs = wanted.saturating_sub(have).div_ceil(HOSTS_PER_JOB);
        if jobs == 0 {
            return 0;
        }
        let this = self.clone();
        parallel(THREADS, move |t| {
            let c = this.client();
            for _ in (t..jobs).step_by(THREADS) {
                let j = this.next_job.fetch_add(1, Ordering::Relaxed);
                let first = (j * HOSTS_PER_JOB) % this.hosts;
                let hosts = (0..HOSTS_PER_JOB)
                    .map(|k| format!("h{}", (first + k) % this.hosts))
                    .collect();
                let job = CreateJob::new(format!("lab {j}"), this.control.clone(), hosts, "bench");
                match c.create_job(&job) {
                    Ok(id) => this.jobs.lock().unwrap().push(id),
                    // An overloaded scheduler is a figure, not the end of the run.
                    Err(error) => {
                        this.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("  creating a job failed: {error}");
                    }
                }
            }
        })
        .await;
        jobs * HOSTS_PER_JOB
    }

    /// Job creations that failed so far.
    pub fn failures(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Aborts every job the feeder made.
    pub async fn abort_all(&self) {
        let this = self.clone();
        parallel(THREADS, move |t| {
            let c = this.client();
            let jobs = this.jobs.lock().unwrap().clone();
            for id in jobs.iter().skip(t).step_by(THREADS) {
                let _ = c.abort_job(*id, "bench", Some("the lab bench is over".into()));
            }
        })
        .await;
    }
}

/// Each drone's Autoserv ends (µs since the epoch), from the control files' log; the
/// drone is the `drone-<name>` directory its control file ran in.
pub fn ends(dir: &Path) -> BTreeMap<String, Vec<i64>> {
    let mut ends: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let text = std::fs::read_to_string(ends_log(dir)).unwrap_or_default();
    for line in text.lines() {
        let Some((ns, control)) = line.split_once(' ') else {
            continue;
        };
        let drone = Path::new(control)
            .components()
            .find_map(|c| c.as_os_str().to_str()?.strip_prefix("drone-"));
        if let (Ok(ns), Some(drone)) = (ns.parse::<i64>(), drone) {
            ends.entry(drone.to_string()).or_default().push(ns / 1000);
        }
    }
    ends
}
