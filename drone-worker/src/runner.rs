//! Running Autoserv for one attempt: the entry's results directory, the control file,
//! and the command as its own process group with stdout and stderr saved beside it.

use common::config::CommandTemplate;
use common::protocol::RunJob;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Files the worker writes into an entry's results directory.
pub const CONTROL_FILE: &str = "control";
pub const STDOUT_FILE: &str = "autoserv.stdout";
pub const STDERR_FILE: &str = "autoserv.stderr";

/// Why Autoserv could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot prepare results directory {path}: {source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
}

/// The entry's directory on this drone: `<drone results_dir>/<job_id>-<owner>/<subdir>`.
/// Safe by construction: both parts are validated names.
pub fn entry_dir(drone_results: &Path, job: &RunJob) -> PathBuf {
    drone_results.join(job.results_subdir())
}

/// A started Autoserv.
pub struct Started {
    pub child: tokio::process::Child,
    pub pid: u32,
}

/// The drone's lease, as the supervisor checks it: the file the worker touches on each
/// confirmed report, and how long it may go untouched.
#[derive(Debug, Clone)]
pub struct Lease {
    pub file: PathBuf,
    pub secs: u64,
}

/// Writes the control file and starts the command in `dir` as its own process group,
/// under `supervisor` (`autoserv-supervisor`, see [`crate::supervise`]).
pub fn start(
    dir: &Path,
    job: &RunJob,
    template: &CommandTemplate,
    supervisor: &Path,
    lease: &Lease,
) -> Result<Started, RunError> {
    let prepare = |source| RunError::Prepare {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(prepare)?;
    let control = dir.join(CONTROL_FILE);
    std::fs::write(&control, &job.control_file).map_err(prepare)?;
    let stdout = std::fs::File::create(dir.join(STDOUT_FILE)).map_err(prepare)?;
    let stderr = std::fs::File::create(dir.join(STDERR_FILE)).map_err(prepare)?;

    let hosts = job
        .hosts
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let job_id = job.job_id.to_string();
    tracing::debug!("entry directory ready");
    let argv = template.render(&[
        ("results_dir", &dir.to_string_lossy()),
        ("hosts", &hosts),
        ("owner", job.owner.as_str()),
        ("job_name", &job.job_name),
        ("job_id", &job_id),
        ("control_file", &control.to_string_lossy()),
    ]);
    spawn_supervised(dir, &argv, job.attempt, supervisor, lease, stdout, stderr)
}

/// Starts a special task (verify, repair, cleanup) on `host` in `dir`, under the
/// supervisor like Autoserv itself (so it can be aborted, re-attached and leased).
pub fn start_task(
    dir: &Path,
    host: &str,
    attempt: i32,
    template: &CommandTemplate,
    supervisor: &Path,
    lease: &Lease,
) -> Result<Started, RunError> {
    let prepare = |source| RunError::Prepare {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(prepare)?;
    let stdout = std::fs::File::create(dir.join(STDOUT_FILE)).map_err(prepare)?;
    let stderr = std::fs::File::create(dir.join(STDERR_FILE)).map_err(prepare)?;
    let argv = template.render(&[
        ("results_dir", &dir.to_string_lossy()),
        ("hosts", host),
        ("owner", ""),
        ("job_name", ""),
        ("job_id", ""),
        ("control_file", ""),
    ]);
    spawn_supervised(dir, &argv, attempt, supervisor, lease, stdout, stderr)
}

fn spawn_supervised(
    dir: &Path,
    argv: &[String],
    attempt: i32,
    supervisor: &Path,
    lease: &Lease,
    stdout: std::fs::File,
    stderr: std::fs::File,
) -> Result<Started, RunError> {
    let prefix = crate::supervise::prefix(dir, attempt);
    let child = tokio::process::Command::new(supervisor)
        .arg("--lease")
        .arg(&lease.file)
        .arg(lease.secs.to_string())
        .arg(&prefix)
        .args(argv)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: supervisor.display().to_string(),
            source,
        })?;
    let pid = child.id().unwrap_or(0);
    Ok(Started { child, pid })
}

/// Waits for the process; its exit code, or 128 + N when killed by signal N.
pub async fn wait(mut child: tokio::process::Child) -> i32 {
    match child.wait().await {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(e) => {
            tracing::error!(error = %e, "waiting for Autoserv failed");
            -1
        }
    }
}
