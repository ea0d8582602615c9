//! The faults of a run: when each strikes, and injecting them while the jobs run.

use super::api::{is_final, Api, JobSummaryDoc};
use super::cluster::Cluster;
use super::jobs::Submitted;
use super::options::{Plan, Rng};
use super::process::pause;
use super::{OUTAGE, OWNER};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A kind of fault the run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    WorkerKill,
    SchedulerKill,
    BrokerRestart,
    ResultsOutage,
    Abort,
}

/// How many faults of each kind were injected, and how many processes ended by
/// themselves (`crashes`).
#[derive(Default)]
pub struct FaultCounts {
    pub worker_kill: usize,
    pub scheduler_kill: usize,
    pub broker_restart: usize,
    pub results_outage: usize,
    pub aborts: usize,
    pub crashes: usize,
}

/// Injects the faults at their moments; returns the ids aborted on purpose.
pub fn inject_faults(
    cluster: &mut Cluster,
    schedule: Vec<(Duration, Fault)>,
    rng: &mut Rng,
    submitted: &Mutex<Submitted>,
    counts: &mut FaultCounts,
) -> BTreeSet<i64> {
    let mut injector = Injector {
        cluster,
        rng,
        submitted,
        counts,
        schedule: Vec::new(),
        aborted: BTreeSet::new(),
        results_back_at: None,
    };
    for (at, fault) in schedule {
        injector.later(at, fault);
    }
    loop {
        injector.counts.crashes += injector.cluster.check_processes();
        injector.end_outage_when_due();
        let Some(&(at, fault)) = injector.schedule.last() else {
            if injector.results_back_at.is_none() {
                return injector.aborted;
            }
            pause(Duration::from_millis(100));
            continue;
        };
        if injector.cluster.started.elapsed() < at {
            pause(Duration::from_millis(100));
            continue;
        }
        injector.schedule.pop();
        match fault {
            Fault::WorkerKill => injector.kill_worker(),
            Fault::SchedulerKill => injector.kill_scheduler(),
            Fault::BrokerRestart => {
                injector.cluster.restart_broker(injector.rng);
                injector.counts.broker_restart += 1;
            }
            Fault::ResultsOutage => injector.start_outage(at),
            Fault::Abort => injector.abort_a_job(at),
        }
    }
}

/// The state of fault injection while the jobs run.
struct Injector<'a> {
    cluster: &'a mut Cluster,
    rng: &'a mut Rng,
    submitted: &'a Mutex<Submitted>,
    counts: &'a mut FaultCounts,
    /// Faults still to come, the next one last.
    schedule: Vec<(Duration, Fault)>,
    /// Jobs aborted on purpose.
    aborted: BTreeSet<i64>,
    /// When the results host, now unreachable, comes back.
    results_back_at: Option<Instant>,
}

impl Injector<'_> {
    /// Schedules `fault` at `at` (from the start of the run).
    fn later(&mut self, at: Duration, fault: Fault) {
        self.schedule.push((at, fault));
        self.schedule.sort();
        self.schedule.reverse();
    }

    fn end_outage_when_due(&mut self) {
        if self.results_back_at.is_some_and(|t| Instant::now() >= t) {
            self.results_back_at = None;
            if let Some(sshd) = &mut self.cluster.sshd {
                sshd.start_again();
            }
            self.cluster.event("results host reachable again");
        }
    }

    /// SIGKILL to a worker, restarted after a random delay.
    fn kill_worker(&mut self) {
        let cluster = &mut *self.cluster;
        let w = self.rng.below(cluster.workers.len());
        let delay = self.rng.between(0.0, 3.0);
        let pid = cluster.workers[w].pid().unwrap_or(0);
        cluster.workers[w].kill();
        let name = cluster.workers[w].name.clone();
        cluster.event(&format!(
            "kill -9 {name} (pid {pid}); restart in {delay:.1} s"
        ));
        pause(Duration::from_secs_f64(delay));
        cluster.workers[w].start();
        self.counts.worker_kill += 1;
    }

    /// SIGKILL to the scheduler, restarted after a random delay.
    fn kill_scheduler(&mut self) {
        let cluster = &mut *self.cluster;
        let delay = self.rng.between(0.0, 2.0);
        let pid = cluster.scheduler.pid().unwrap_or(0);
        cluster.scheduler.kill();
        cluster.event(&format!(
            "kill -9 scheduler (pid {pid}); restart in {delay:.1} s"
        ));
        pause(Duration::from_secs_f64(delay));
        cluster.scheduler.start();
        cluster.wait_for_scheduler();
        cluster.event("scheduler answering again");
        self.counts.scheduler_kill += 1;
    }

    /// Stops the results host's sshd for [`OUTAGE`]; one outage at a time.
    fn start_outage(&mut self, at: Duration) {
        if self.results_back_at.is_some() {
            // One outage at a time: try again after this one.
            self.later(at + OUTAGE, Fault::ResultsOutage);
            return;
        }
        if let Some(sshd) = &mut self.cluster.sshd {
            sshd.stop();
        }
        self.results_back_at = Some(Instant::now() + OUTAGE);
        self.cluster
            .event("results host unreachable (sshd stopped) for 20 s");
        self.counts.results_outage += 1;
    }

    /// Aborts one unfinished job; tried again later if none is open yet.
    fn abort_a_job(&mut self, at: Duration) {
        let candidates = abort_candidates(&self.cluster.api, self.submitted, &self.aborted);
        if candidates.is_empty() {
            if self.submitted.lock().unwrap().done {
                self.cluster.event("no job left to abort");
            } else {
                self.later(at + Duration::from_secs(2), Fault::Abort);
            }
            return;
        }
        let id = candidates[self.rng.below(candidates.len())];
        self.aborted.insert(id);
        let answer = self.cluster.api.patiently("abort a job", |api| {
            api.post(
                &format!("/api/jobs/{id}/abort"),
                json!({"by": OWNER, "reason": "chaos"}),
            )
        });
        self.cluster.event(&format!("abort job {id}: {answer}"));
        self.counts.aborts += 1;
    }
}

/// Jobs worth aborting: submitted, not aborted yet, and not finished (running ones
/// first); the last few submitted if the scheduler cannot say.
pub fn abort_candidates(
    api: &Api,
    submitted: &Mutex<Submitted>,
    aborted: &BTreeSet<i64>,
) -> Vec<i64> {
    let ids: Vec<i64> = submitted
        .lock()
        .unwrap()
        .ids
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !aborted.contains(id))
        .collect();
    let list: Option<Vec<JobSummaryDoc>> = api.jobs().ok();
    let Some(list) = list else {
        return ids.into_iter().rev().take(10).collect();
    };
    let open = |wanted: &dyn Fn(&str) -> bool| -> Vec<i64> {
        list.iter()
            .filter(|j| ids.contains(&j.id) && wanted(&j.status))
            .map(|j| j.id)
            .collect()
    };
    let running = open(&|status| status == "Running");
    if running.is_empty() {
        open(&|status| !is_final(status))
    } else {
        running
    }
}

/// When each planned fault strikes: a random moment inside the window.
pub fn fault_schedule(plan: &Plan, rng: &mut Rng) -> Vec<(Duration, Fault)> {
    let window = plan.window.as_secs_f64();
    plan.faults
        .iter()
        .flat_map(|&(fault, n)| std::iter::repeat_n(fault, n))
        .map(|fault| {
            (
                Duration::from_secs_f64(rng.between(0.05, 0.95) * window),
                fault,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::options::{plan, Options};

    #[test]
    fn every_planned_fault_is_scheduled_inside_the_window() {
        let options =
            Options::parse(["--short".to_string(), "--seed".into(), "9".into()]).expect("options");
        let plan = plan(&options);
        let schedule = fault_schedule(&plan, &mut Rng(9));
        let planned: usize = plan.faults.iter().map(|(_, n)| n).sum();
        assert_eq!(schedule.len(), planned);
        assert!(schedule.iter().all(|(at, _)| *at < plan.window));
    }
}
