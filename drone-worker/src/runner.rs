//! Running Autoserv for one attempt: the entry's results directory, the control file,
//! and the command as its own process group with stdout and stderr saved beside it.

use crate::spare::{Spares, ENTRY};
use common::config::CommandTemplate;
use common::protocol::RunJob;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Files the worker writes into an entry's results directory.
pub const CONTROL_FILE: &str = "control";
pub const STDOUT_FILE: &str = "autoserv.stdout";
pub const STDERR_FILE: &str = "autoserv.stderr";
/// The files [`start`] writes, which a spare entry directory holds already.
pub const ENTRY_FILES: [&str; 3] = [CONTROL_FILE, STDOUT_FILE, STDERR_FILE];

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

/// Moves a spare (see [`crate::spare`]) into place as the entry's directory `dir`, with
/// the job's directory around it when that does not exist yet. False when there is no
/// spare or `dir` exists already (a retry on this drone): the caller makes it.
///
/// A rename of a directory fails when the target is a directory with something in it
/// and replaces it when it is empty; either is right here (an empty directory has
/// nothing to lose, and names are only ever used by path).
pub fn place(spares: &Spares, dir: &Path) -> bool {
    let Some(job_dir) = dir.parent() else {
        return false;
    };
    let Some(spare) = spares.take() else {
        return false;
    };
    if std::fs::rename(&spare, job_dir).is_ok() {
        // The job's directory was absent or empty, so the entry's cannot exist.
        if std::fs::rename(job_dir.join(ENTRY), dir).is_ok() {
            return true;
        }
        let _ = std::fs::remove_dir_all(job_dir.join(ENTRY));
        return false;
    }
    // The job's directory exists. A worker stopped between the two renames above left
    // its `.entry` in it, hollow (nothing is written before both are done): that becomes
    // this entry's directory, and the spare stays whole. Taken from a sibling entry
    // between its two renames, it costs the sibling only the fallback of making its own.
    if std::fs::rename(job_dir.join(ENTRY), dir).is_ok() {
        spares.give_back(spare);
        return true;
    }
    match std::fs::rename(spare.join(ENTRY), dir) {
        Ok(()) => {
            spares.give_back_hollow(spare);
            true
        }
        Err(_) => {
            spares.give_back(spare);
            false
        }
    }
}

/// Writes the control file and starts the command in `dir` as its own process group,
/// under `supervisor` (`autoserv-supervisor`, see [`crate::supervise`]). The directory
/// is a spare from `spares` when there is one.
pub fn start(
    dir: &Path,
    job: &RunJob,
    template: &CommandTemplate,
    supervisor: &Path,
    lease: &Lease,
    spares: &Spares,
) -> Result<Started, RunError> {
    let prepare = |source| RunError::Prepare {
        path: dir.to_path_buf(),
        source,
    };
    if !place(spares, dir) {
        std::fs::create_dir_all(dir).map_err(prepare)?;
    }
    // In a spare the files exist already: these truncate them, allocating nothing.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spare::Kind;
    use std::os::unix::fs::MetadataExt;

    fn ino(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_spare_becomes_the_entry_directory_and_a_retry_keeps_what_is_there() {
        let root = std::env::temp_dir().join(format!("runner-place-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let spares = Spares::open(&root.join(".spare"), Kind::EntryDir, 2).unwrap();
        assert!(
            !place(&spares, &root.join("1-alice/host1")),
            "no spare made yet"
        );
        spares.refill().unwrap();
        let first = spares.take().unwrap();
        let (first_job, first_entry) = (ino(&first), ino(&first.join(ENTRY)));
        spares.give_back(first);

        // A new job: the spare becomes both its directory and the entry's.
        let entry = root.join("1-alice/host1");
        assert!(place(&spares, &entry));
        assert_eq!(ino(&root.join("1-alice")), first_job);
        assert_eq!(ino(&entry), first_entry);
        for name in ENTRY_FILES {
            assert!(entry.join(name).is_file(), "{name} is in place");
        }
        assert!(!root.join("1-alice").join(ENTRY).exists());

        // Another host of the same job: only the spare's entry moves; the spare stays.
        let other = spares.take().unwrap();
        let other_entry = ino(&other.join(ENTRY));
        spares.give_back(other.clone());
        assert!(place(&spares, &root.join("1-alice/host2")));
        assert_eq!(ino(&root.join("1-alice/host2")), other_entry);
        assert!(other.is_dir() && !other.join(ENTRY).exists());
        assert!(
            entry.join(CONTROL_FILE).is_file(),
            "the first host is untouched"
        );

        // A retry on this drone: the entry's directory has results; nothing moves.
        std::fs::write(entry.join("status.log"), "attempt 1").unwrap();
        assert!(spares.wants_more());
        spares.refill().unwrap();
        assert!(!place(&spares, &entry));
        assert!(!spares.wants_more(), "the spare went back to the pool");
        assert_eq!(
            std::fs::read_to_string(entry.join("status.log")).unwrap(),
            "attempt 1"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_entry_left_between_the_two_renames_is_used_not_left_behind() {
        let root = std::env::temp_dir().join(format!("runner-leftover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let spares = Spares::open(&root.join(".spare"), Kind::EntryDir, 2).unwrap();
        spares.refill().unwrap();
        // The state a worker stopped between the renames leaves: the spare is the job's
        // directory, its `.entry` not yet the entry's.
        let stopped = spares.take().unwrap();
        let job_dir = root.join("7-alice");
        std::fs::rename(&stopped, &job_dir).unwrap();
        let leftover = ino(&job_dir.join(ENTRY));

        let entry = job_dir.join("host1");
        assert!(place(&spares, &entry));
        assert_eq!(ino(&entry), leftover, "the leftover became the entry");
        assert!(!job_dir.join(ENTRY).exists(), "nothing is left behind");
        for name in ENTRY_FILES {
            assert!(entry.join(name).is_file(), "{name} is in place");
        }
        let back = spares.take().expect("the spare place() took went back");
        assert!(back.join(ENTRY).is_dir(), "whole, with its entry");
        assert!(spares.take().is_none(), "and it was the only one left");
        let _ = std::fs::remove_dir_all(&root);
    }
}
