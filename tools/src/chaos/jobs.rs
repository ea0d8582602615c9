//! The jobs of a run: what each one does, its control file, and submitting them at
//! their moments without ever submitting one twice.

use super::api::{Api, ApiError, JobSummaryDoc};
use super::options::Rng;
use super::process::pause;
use super::{HOSTS, LABEL, OWNER};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one job does.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub index: usize,
    pub sleep_secs: f64,
    pub exit_code: i32,
    /// A named host; `None` for a metahost entry on the label.
    pub host: Option<String>,
    /// Lines of data.txt, so results differ in size.
    pub lines: u32,
}

/// The name of host `i` (from 0): `host01`, `host02`, ...
pub fn host_name(i: usize) -> String {
    format!("host{:02}", i + 1)
}

/// Draws `jobs` jobs: mostly short and passing, some longer than the lowered
/// consumer_timeout, some failing; about a third on a named host.
pub fn job_specs(jobs: usize, rng: &mut Rng) -> Vec<JobSpec> {
    (0..jobs)
        .map(|index| {
            let roll = rng.unit();
            let (sleep_secs, exit_code) = if roll < 0.08 {
                // Longer than the lowered consumer_timeout.
                (rng.between(8.0, 12.0), 0)
            } else if roll < 0.13 {
                (rng.between(0.0, 1.0), 3)
            } else {
                (rng.between(0.0, 2.0), 0)
            };
            let host = (rng.unit() < 0.3).then(|| host_name(rng.below(HOSTS)));
            JobSpec {
                index,
                sleep_secs,
                exit_code,
                host,
                lines: 1 + rng.below(20_000) as u32,
            }
        })
        .collect()
}

/// The control file: run by /bin/sh in the entry's results directory
/// (`.../<job_id>-<owner>/<host>`) with AUTOSERV_HOSTS set.
pub fn control_file(spec: &JobSpec, locks: &Path, concurrent: &Path) -> String {
    format!(
        r#"# chaos job {index}: sleep {sleep:.2} s, exit {code}
set -u
tag="$(basename "$(dirname "$PWD")") $AUTOSERV_HOSTS"
exec 8>>"{locks}/host-$AUTOSERV_HOSTS"
flock -n 8 || echo "host $AUTOSERV_HOSTS busy: $tag started while another run held the host ($(date +%T.%N))" >> "{concurrent}"
exec 9>>"{locks}/entry-$(basename "$(dirname "$PWD")")-$AUTOSERV_HOSTS"
flock -n 9 || echo "entry $tag started while another run of it was alive ($(date +%T.%N))" >> "{concurrent}"
echo "start $(date +%T.%N) pid $$" >> chaos.log
seq 1 {lines} > data.txt
sleep {sleep:.2}
echo "end $(date +%T.%N)" >> chaos.log
printf '%s\n' "$tag" > chaos-result.tmp && mv chaos-result.tmp chaos-result
exit {code}
"#,
        index = spec.index,
        sleep = spec.sleep_secs,
        code = spec.exit_code,
        lines = spec.lines,
        locks = locks.display(),
        concurrent = concurrent.display(),
    )
}

/// Jobs submitted so far, shared with the submitting thread.
#[derive(Default)]
pub struct Submitted {
    pub ids: Vec<(i64, usize)>,
    pub done: bool,
}

/// Submits each job at its moment (from `started`), recording each id in `submitted`.
pub fn submit_all(
    api: Api,
    specs: Vec<JobSpec>,
    controls: Vec<String>,
    times: Vec<Duration>,
    started: Instant,
    submitted: Arc<Mutex<Submitted>>,
) {
    for ((spec, control), at) in specs.iter().zip(controls).zip(times) {
        let now = started.elapsed();
        if at > now {
            pause(at - now);
        }
        let name = format!("chaos {}", spec.index);
        let mut body = json!({
            "name": name,
            "control_file": control,
            "owner": OWNER,
        });
        match &spec.host {
            Some(host) => body["hosts"] = json!([host]),
            None => {
                body["label"] = json!(LABEL);
                body["count"] = json!(1);
            }
        }
        let id = api.patiently("submit a job", |api| {
            match api.post("/api/jobs", body.clone()) {
                Ok(created) => Ok(created["id"].as_i64().expect("job id")),
                Err(ApiError::Unreachable(e)) => {
                    // The scheduler may have stored it before it was killed: never
                    // submit a job twice.
                    match existing_job(api, &name) {
                        Ok(Some(id)) => Ok(id),
                        Ok(None) => Err(ApiError::Unreachable(e)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        });
        submitted.lock().unwrap().ids.push((id, spec.index));
    }
    submitted.lock().unwrap().done = true;
}

/// The id of the job called `name`, if the scheduler has it.
pub fn existing_job(api: &Api, name: &str) -> Result<Option<i64>, ApiError> {
    let list: Vec<JobSummaryDoc> = api.jobs()?;
    Ok(list.iter().find(|j| j.name == name).map(|j| j.id))
}
