//! The end of a run: waiting for every job to finish, then counting outcomes and
//! naming each problem.

use super::api::{is_final, ApiError, EntryDoc, JobDoc, JobSummaryDoc};
use super::cluster::Cluster;
use super::faults::FaultCounts;
use super::jobs::JobSpec;
use super::process::pause;
use super::OWNER;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The outcomes of a run's entries, and what went wrong.
#[derive(Default)]
pub struct Tally {
    pub submitted: usize,
    pub completed: usize,
    pub failed_test: usize,
    pub failed_infra: usize,
    pub aborted: usize,
    pub lost: usize,
    pub concurrent: usize,
    pub incomplete_results: usize,
    /// Outcomes the run did not ask for (a fault taken for a test failure, ...).
    pub unexpected: usize,
    /// Infra failures retried, over all entries.
    pub infra_retries: i64,
}

/// Waits until every job is final or the limit passes.
pub fn wait_for_all(cluster: &mut Cluster, ids: &[i64], limit: Duration, counts: &mut FaultCounts) {
    let deadline = Instant::now() + limit;
    let mut last_report = Instant::now();
    loop {
        counts.crashes += cluster.check_processes();
        let list: Option<Vec<JobSummaryDoc>> = cluster.api.jobs().ok();
        if let Some(list) = list {
            let open: Vec<&JobSummaryDoc> = list
                .iter()
                .filter(|j| ids.contains(&j.id) && !is_final(&j.status))
                .collect();
            if open.is_empty() {
                return;
            }
            if last_report.elapsed() >= Duration::from_secs(15) {
                last_report = Instant::now();
                cluster.event(&format!("waiting for {} jobs to finish", open.len()));
            }
        }
        if Instant::now() >= deadline {
            cluster.event(&format!("gave up waiting after {limit:?}"));
            return;
        }
        pause(Duration::from_millis(500));
    }
}

/// Counts every entry's outcome and prints each problem found.
pub fn tally(
    cluster: &Cluster,
    submitted: &[(i64, usize)],
    specs: &[JobSpec],
    aborted_on_purpose: &BTreeSet<i64>,
) -> Tally {
    let mut t = Tally {
        submitted: submitted.len(),
        ..Tally::default()
    };
    let mut problems = Vec::new();
    let results = cluster.dir.join("results");
    for &(id, index) in submitted {
        let Some(job) = read_job(cluster, id) else {
            t.lost += 1;
            problems.push(format!(
                "job {id} (chaos {index}): unknown to the scheduler"
            ));
            continue;
        };
        assert_eq!(job.name, format!("chaos {index}"), "job {id}");
        let expected = Expected {
            exit_code: specs[index].exit_code,
            aborted: aborted_on_purpose.contains(&id),
        };
        for e in &job.entries {
            t.infra_retries += e.infra_retries;
            t.count(&job, e, expected, &results, &mut problems);
        }
        if job.entries.is_empty() {
            t.lost += 1;
            problems.push(format!("job {id} has no entries"));
        }
    }
    let concurrent =
        std::fs::read_to_string(cluster.dir.join("concurrent.log")).unwrap_or_default();
    t.concurrent = concurrent.lines().count();
    for line in concurrent.lines() {
        problems.push(format!("ran twice at once: {line}"));
    }
    for p in &problems {
        println!("chaos: PROBLEM {p}");
    }
    t
}

/// A job's document, or `None` if the scheduler does not know it.
fn read_job(cluster: &Cluster, id: i64) -> Option<JobDoc> {
    let document = cluster.api.patiently("read a job", |api| {
        match api.get(&format!("/api/jobs/{id}")) {
            Err(ApiError::Status(404, _)) => Ok(None),
            other => other.map(Some),
        }
    })?;
    Some(serde_json::from_value(document).expect("job document"))
}

/// What the run asked of a job: its control file's exit code, and whether the run
/// aborted it.
#[derive(Clone, Copy)]
struct Expected {
    exit_code: i32,
    aborted: bool,
}

/// One line about an entry for a problem report.
fn describe(job: &JobDoc, e: &EntryDoc) -> String {
    format!(
        "job {} entry {} ({}, host {}, drone {}, attempt {}, exit {:?}, kind {:?}, reason {:?}, aborted_by {:?}, job status {}, history {})",
        job.id,
        e.id,
        e.status,
        e.host.as_deref().unwrap_or("-"),
        e.drone.as_deref().unwrap_or("-"),
        e.attempt.map_or("?".to_string(), |a| a.to_string()),
        e.exit_code,
        e.failure_kind,
        e.failure_reason,
        e.aborted_by,
        job.status,
        Value::from(e.history.clone()),
    )
}

impl Tally {
    /// Counts one entry's outcome, adding a line to `problems` for each surprise.
    fn count(
        &mut self,
        job: &JobDoc,
        e: &EntryDoc,
        expected: Expected,
        results: &Path,
        problems: &mut Vec<String>,
    ) {
        match e.status.as_str() {
            "Completed" => {
                self.completed += 1;
                if let Some(problem) = missing_results(job, e, results) {
                    self.incomplete_results += 1;
                    problems.push(problem);
                }
                if expected.exit_code != 0 && !expected.aborted {
                    self.unexpected += 1;
                    problems.push(format!(
                        "completed, but its control file exits {}: {}",
                        expected.exit_code,
                        describe(job, e)
                    ));
                }
            }
            "Failed" => {
                if e.failure_kind.as_deref() == Some("infra") {
                    self.failed_infra += 1;
                } else {
                    self.failed_test += 1;
                    if expected.exit_code == 0 && !expected.aborted {
                        self.unexpected += 1;
                        problems.push(format!(
                            "failed (test), but its control file exits 0: {}",
                            describe(job, e)
                        ));
                    }
                }
            }
            "Aborted" => {
                self.aborted += 1;
                if !expected.aborted {
                    self.unexpected += 1;
                    problems.push(format!(
                        "aborted, but nobody aborted it: {}",
                        describe(job, e)
                    ));
                }
            }
            _ => {
                self.lost += 1;
                problems.push(format!("not finished: {}", describe(job, e)));
            }
        }
    }
}

/// The problem with a Completed entry's results on the results host, if any: its
/// control file's last step writes `chaos-result`, naming the job and the host.
fn missing_results(job: &JobDoc, e: &EntryDoc, results: &Path) -> Option<String> {
    let host = e.host.as_deref().unwrap_or("?");
    let expected = format!("{}-{OWNER} {host}\n", job.id);
    let marker = results
        .join(format!("{}-{OWNER}", job.id))
        .join(host)
        .join("chaos-result");
    match std::fs::read_to_string(&marker) {
        Ok(text) if text == expected => None,
        found => Some(format!(
            "completed without full results: {}: {} is {:?}",
            describe(job, e),
            marker.display(),
            found.map_err(|e| e.to_string())
        )),
    }
}
