//! `atest job …`: submit, list, follow, abort and show jobs.

use crate::output::{opt, print_json, table};
use crate::user::current_user;
use api::{Client, CreateJob, JobView};
use std::path::PathBuf;

/// `atest job create`: the job to submit.
#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    control_file: PathBuf,
    /// Comma-separated host names: one entry per host.
    #[arg(long, value_delimiter = ',', required_unless_present = "label")]
    hosts: Vec<String>,
    /// Metahost: run on any ready host carrying this label.
    #[arg(long)]
    label: Option<String>,
    /// How many hosts with --label (default 1).
    #[arg(long, requires = "label")]
    count: Option<u32>,
    /// Comma-separated labels every host of the job must carry.
    #[arg(long, value_delimiter = ',')]
    dependencies: Vec<String>,
    /// Default: $USER, else the current user's name.
    #[arg(long)]
    owner: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Abort entries not started this many minutes after creation.
    #[arg(long)]
    timeout_mins: Option<u32>,
    /// Abort entries still running this many minutes after they started.
    #[arg(long)]
    max_runtime_mins: Option<u32>,
    /// Run only on the drones of this drone set (default: [SCHEDULER]
    /// default_drone_set_name, else any drone).
    #[arg(long)]
    drone_set: Option<String>,
    /// Synchronous job: entries wait (Pending) until N hosts are ready, then one
    /// Autoserv runs for all N (results in <job>-<owner>/group0/, group1/, ...).
    #[arg(long)]
    synch_count: Option<u32>,
    /// Verify each host before the job; a host that fails is repaired, and one
    /// whose repair fails is taken out of service.
    #[arg(long)]
    run_verify: bool,
    /// Clean the host up before the job: never, if-dirty or always.
    #[arg(long)]
    reboot_before: Option<String>,
    /// Clean the host up after the job: never, if-dirty or always.
    #[arg(long)]
    reboot_after: Option<String>,
}

/// `atest job …`.
#[derive(clap::Subcommand)]
pub enum JobAction {
    /// Submit a job; prints its id.
    Create(Box<CreateArgs>),
    /// List your jobs, newest first (--all: everyone's; --owner: one user's).
    List(Box<crate::job_list::ListArgs>),
    /// Wait until the jobs have finished, printing progress to stderr; exits non-zero
    /// if one of them did not complete.
    Wait {
        #[arg(required = true)]
        ids: Vec<i64>,
        /// Give up after this many seconds (default: wait forever).
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Abort a job: queued entries at once, running ones get SIGTERM, then SIGKILL
    /// after [SCHEDULER] abort_grace_sec; their results are still pushed.
    Abort {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a job and its entries.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Move a finished job's results to the archive ([SCHEDULER] archive_rsync),
    /// verified, then remove them from the results host (admins only).
    Archive { id: i64 },
    /// Remove a finished job's results from the results host (admins only); an
    /// archived copy is not touched.
    Purge { id: i64 },
}

/// The line `job show` prints when the results are not on the results host.
fn results_place(job: &JobView) -> Option<String> {
    match job.results_place.as_str() {
        "" | "results-host" => None,
        place => Some(format!(
            "Results: {place}{}",
            job.results_place_on
                .as_deref()
                .map(|on| format!(" on {on}"))
                .unwrap_or_default()
        )),
    }
}

/// Carries out one `atest job` command.
pub fn run(client: &Client, action: JobAction) -> Result<(), String> {
    match action {
        JobAction::Create(args) => create(client, *args),
        JobAction::List(args) => crate::job_list::list(client, *args),
        JobAction::Wait { ids, timeout } => wait(client, &ids, timeout),
        JobAction::Abort { id, reason } => {
            let by = current_user(client)?;
            client
                .abort_job(id, &by, reason)
                .map_err(|e| e.to_string())?;
            println!("job {id} aborted");
            Ok(())
        }
        JobAction::Show { id, json } => show(client, id, json),
        JobAction::Archive { id } => {
            let moved = client.archive_job(id).map_err(|e| e.to_string())?;
            println!("job {id}: results {}", moved.results_place);
            Ok(())
        }
        JobAction::Purge { id } => {
            let moved = client.purge_job(id).map_err(|e| e.to_string())?;
            println!("job {id}: results {}", moved.results_place);
            Ok(())
        }
    }
}

fn create(client: &Client, args: CreateArgs) -> Result<(), String> {
    let owner = match args.owner {
        Some(owner) => owner,
        None => current_user(client)?,
    };
    let control = std::fs::read_to_string(&args.control_file).map_err(|err| {
        format!(
            "cannot read control file {}: {err}",
            args.control_file.display()
        )
    })?;
    let id = client
        .create_job(&CreateJob {
            name: args.name,
            control_file: control,
            hosts: args.hosts,
            label: args.label,
            count: args.count,
            dependencies: args.dependencies,
            owner,
            priority: args.priority,
            timeout_mins: args.timeout_mins,
            max_runtime_mins: args.max_runtime_mins,
            timeout_secs: None,
            max_runtime_secs: None,
            drone_set: args.drone_set,
            synch_count: args.synch_count,
            run_verify: args.run_verify,
            reboot_before: args.reboot_before,
            reboot_after: args.reboot_after,
        })
        .map_err(|e| e.to_string())?;
    println!("{id}");
    Ok(())
}

fn show(client: &Client, id: i64, json: bool) -> Result<(), String> {
    let job = client.job(id).map_err(|e| e.to_string())?;
    if json {
        print_json(&job);
        return Ok(());
    }
    println!(
        "Job {}: {} (owner {}, priority {}) {}",
        job.id,
        crate::output::escape(&job.name),
        job.owner,
        job.priority,
        job.status
    );
    if let Some(place) = results_place(&job) {
        println!("{place}");
    }
    table(
        &["HOST", "STATUS", "DRONE", "EXIT", "TESTS", "RESULTS"],
        job.entries
            .iter()
            .map(|en| {
                vec![
                    en.host.clone().unwrap_or_else(|| {
                        format!("(any {})", en.label.as_deref().unwrap_or("host"))
                    }),
                    en.status.clone(),
                    opt(&en.drone),
                    opt(&en.exit_code),
                    crate::tests_cmd::summary(en),
                    en.results_path
                        .clone()
                        .or_else(|| en.failure_reason.clone())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
    for entry in &job.entries {
        if let Some(error) = &entry.parse_error {
            println!(
                "entry {}: results not fully parsed: {}",
                entry.id,
                crate::output::clean(error)
            );
        }
    }
    Ok(())
}

/// Where a set of jobs stands, as `job wait` reports it.
#[derive(Default)]
struct Progress {
    /// Jobs finished.
    done: usize,
    /// Finished jobs that did not complete, as `id (status)`.
    failed: Vec<String>,
    /// Entries by state, over all the jobs.
    entries: std::collections::BTreeMap<String, usize>,
}

impl Progress {
    fn add(&mut self, job: JobView) {
        if api::is_final(&job.status) {
            self.done += 1;
            if job.status != api::COMPLETED {
                self.failed.push(format!("{} ({})", job.id, job.status));
            }
        }
        for entry in job.entries {
            *self.entries.entry(entry.status).or_default() += 1;
        }
    }

    fn line(&self, jobs: usize) -> String {
        format!(
            "{}/{jobs} jobs finished; entries: {}",
            self.done,
            self.entries
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Polls the jobs every half second until all are final.
fn wait(client: &Client, ids: &[i64], timeout: Option<u64>) -> Result<(), String> {
    let start = std::time::Instant::now();
    let mut last = String::new();
    loop {
        let mut progress = Progress::default();
        for id in ids {
            progress.add(client.job(*id).map_err(|e| e.to_string())?);
        }
        let line = progress.line(ids.len());
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if progress.done == ids.len() {
            return if progress.failed.is_empty() {
                Ok(())
            } else {
                Err(format!("not completed: {}", progress.failed.join(", ")))
            };
        }
        if timeout.is_some_and(|t| start.elapsed().as_secs() >= t) {
            return Err(format!(
                "timed out after {}s with {}/{} jobs finished",
                start.elapsed().as_secs(),
                progress.done,
                ids.len()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, status: &str, entries: &[&str]) -> JobView {
        let entry = |status: &str| {
            serde_json::from_value(serde_json::json!({
                "id": 1, "host": "h", "label": null, "status": status, "drone": null,
                "attempt": 0, "exit_code": null, "results_path": null,
                "failure_reason": null, "failure_kind": null, "infra_retries": 0,
                "manifest": null, "history": [], "created_on": "", "started_on": null,
                "finished_on": null, "aborted_by": null, "aborted_on": null
            }))
            .expect("entry view")
        };
        JobView {
            results_place: "results-host".into(),
            results_place_on: None,
            id,
            name: "j".into(),
            owner: "o".into(),
            priority: 0,
            status: status.into(),
            created_on: String::new(),
            drone_set: None,
            synch_count: 1,
            tasks: vec![],
            entries: entries.iter().map(|s| entry(s)).collect(),
        }
    }

    #[test]
    fn progress_counts_finished_jobs_and_entries_by_state() {
        let mut progress = Progress::default();
        progress.add(job(1, "Completed", &["Completed"]));
        progress.add(job(2, "Running", &["Running", "Queued"]));
        assert_eq!(
            progress.line(2),
            "1/2 jobs finished; entries: 1 Completed, 1 Queued, 1 Running"
        );
        assert!(progress.failed.is_empty());
    }

    #[test]
    fn a_finished_job_that_did_not_complete_is_named() {
        let mut progress = Progress::default();
        progress.add(job(7, "Aborted", &["Aborted"]));
        assert_eq!(progress.done, 1);
        assert_eq!(progress.failed, vec!["7 (Aborted)".to_string()]);
    }
}
