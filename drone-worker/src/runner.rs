//! Running Autoserv for one attempt: the entry's results directory, the control file,
//! and the command as its own process group with stdout and stderr saved beside it.

use crate::spare::{Spares, ENTRY};
use crate::supervise::Order;
use common::config::CommandTemplate;
use common::protocol::RunJob;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Files the worker writes into an entry's results directory (see [`crate::spare`]).
pub use crate::spare::{CONTROL_FILE, ENTRY_FILES, STDERR_FILE, STDOUT_FILE};

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
    /// Autoserv's pid, or the one-attempt supervisor's.
    pub pid: u32,
    end: End,
}

/// How the end of a started Autoserv is learnt.
enum End {
    /// From the long-lived supervisor's answer; from the files if it goes away.
    Served {
        code: oneshot::Receiver<i32>,
        prefix: PathBuf,
    },
    /// A one-attempt supervisor, this worker's child, exits with Autoserv's status.
    Child(tokio::process::Child),
    /// Only from the files: the long-lived supervisor went away after starting it.
    Files(PathBuf),
}

/// An attempt on its way: started, or handed to the long-lived supervisor, which has
/// not answered yet (it will start Autoserv at once; the worker reports Running
/// meanwhile, as it did once it had spawned a supervisor of the attempt's own).
pub enum Start {
    Started(Started),
    Handed(Handed),
}

/// An attempt the long-lived supervisor has and has not answered for yet.
pub struct Handed {
    pid: oneshot::Receiver<u32>,
    code: oneshot::Receiver<i32>,
    order: Order,
    supervisor: PathBuf,
    lease: Lease,
}

impl Start {
    /// The supervisor has the attempt, and will start it unless it dies first.
    pub fn is_handed(&self) -> bool {
        matches!(self, Start::Handed(_))
    }

    /// Waits until Autoserv is started. If the long-lived supervisor went away before
    /// answering, its files say whether it started Autoserv; if not, a supervisor of
    /// the attempt's own starts it.
    pub async fn started(self) -> Result<Started, RunError> {
        let handed = match self {
            Start::Started(started) => return Ok(started),
            Start::Handed(handed) => handed,
        };
        match handed.pid.await {
            Ok(pid) => Ok(Started {
                pid,
                end: End::Served {
                    code: handed.code,
                    prefix: handed.order.prefix,
                },
            }),
            Err(_) => recover_or_spawn(
                handed.order,
                &handed.supervisor,
                &handed.lease,
                "the supervisor went away before it answered",
            ),
        }
    }
}

/// The long-lived `autoserv-supervisor --serve` ([`crate::supervise::serve`]) that this
/// worker starts Autoserv through, started on first use and again after it is gone.
/// When it cannot be started, each attempt gets a one-attempt supervisor of its own.
pub struct Supervisor {
    path: PathBuf,
    /// How each attempt's processes are contained (see [`crate::contain`]).
    pub containment: crate::contain::Mode,
    link: tokio::sync::Mutex<Option<Link>>,
    next_id: AtomicU64,
}

struct Link {
    stdin: tokio::process::ChildStdin,
    waiting: Arc<Mutex<HashMap<u64, Waiter>>>,
    alive: Arc<AtomicBool>,
    _process: tokio::process::Child,
}

struct Waiter {
    started: Option<oneshot::Sender<u32>>,
    ended: oneshot::Sender<i32>,
}

impl Supervisor {
    pub fn new(path: PathBuf, containment: crate::contain::Mode) -> Self {
        Self {
            path,
            containment,
            link: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    /// The `autoserv-supervisor` binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands an attempt to the long-lived supervisor: where its answer (Autoserv's pid,
    /// 0 when it could not be started) and then its exit code will come. An error when
    /// the supervisor cannot be started or written to.
    async fn hand(
        &self,
        order: &mut Order,
    ) -> std::io::Result<(oneshot::Receiver<u32>, oneshot::Receiver<i32>)> {
        order.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = serde_json::to_vec(order).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let (started, pid) = oneshot::channel();
        let (ended, code) = oneshot::channel();
        let mut link = self.link.lock().await;
        if !link
            .as_ref()
            .is_some_and(|l| l.alive.load(Ordering::Acquire))
        {
            *link = Some(self.launch()?);
        }
        let Some(live) = link.as_mut() else {
            return Err(std::io::Error::other("the supervisor was not started"));
        };
        live.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                order.id,
                Waiter {
                    started: Some(started),
                    ended,
                },
            );
        let written = async {
            live.stdin.write_all(&line).await?;
            live.stdin.flush().await
        }
        .await;
        if let Err(error) = written {
            live.alive.store(false, Ordering::Release);
            live.waiting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&order.id);
            return Err(error);
        }
        Ok((pid, code))
    }

    fn launch(&self) -> std::io::Result<Link> {
        let mut process = tokio::process::Command::new(&self.path)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Not in the worker's group: a Ctrl-C or a signal to it must not reach it.
            .process_group(0)
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err(std::io::Error::other(
                "the supervisor's stdin or stdout is not piped",
            ));
        };
        let waiting: Arc<Mutex<HashMap<u64, Waiter>>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        tracing::debug!(pid = process.id(), "long-lived supervisor started");
        tokio::spawn(read_answers(stdout, waiting.clone(), alive.clone()));
        Ok(Link {
            stdin,
            waiting,
            alive,
            _process: process,
        })
    }
}

/// Hands the supervisor's answers to who waits for them; when it is gone, drops every
/// waiter (they go by the files then).
async fn read_answers(
    stdout: tokio::process::ChildStdout,
    waiting: Arc<Mutex<HashMap<u64, Waiter>>>,
    alive: Arc<AtomicBool>,
) {
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split(' ');
        let (kind, id, value) = (words.next(), words.next(), words.next());
        let (Some(id), Some(value)) = (
            id.and_then(|i| i.parse::<u64>().ok()),
            value.and_then(|v| v.parse::<i64>().ok()),
        ) else {
            tracing::warn!(%line, "unreadable answer from the supervisor");
            continue;
        };
        let mut waiting = waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kind {
            Some("pid") => {
                if let Some(started) = waiting.get_mut(&id).and_then(|w| w.started.take()) {
                    let _ = started.send(value as u32);
                }
            }
            Some("exit") => {
                if let Some(waiter) = waiting.remove(&id) {
                    let _ = waiter.ended.send(value as i32);
                }
            }
            _ => tracing::warn!(%line, "unreadable answer from the supervisor"),
        }
    }
    alive.store(false, Ordering::Release);
    let orphans = std::mem::take(
        &mut *waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if !orphans.is_empty() {
        tracing::warn!(
            attempts = orphans.len(),
            "the long-lived supervisor is gone; waiting on its files instead"
        );
    }
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
/// under `supervisor` (see [`crate::supervise`]). The directory is a spare from
/// `spares` when there is one.
pub async fn start(
    dir: &Path,
    job: &RunJob,
    template: &CommandTemplate,
    supervisor: &Supervisor,
    lease: &Lease,
    spares: &Spares,
) -> Result<Start, RunError> {
    let prepare = |source| RunError::Prepare {
        path: dir.to_path_buf(),
        source,
    };
    if !place(spares, dir) {
        std::fs::create_dir_all(dir).map_err(prepare)?;
    }
    // In a spare the files exist already: writing truncates them, allocating nothing.
    let control = dir.join(CONTROL_FILE);
    std::fs::write(&control, &job.control_file).map_err(prepare)?;

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
    spawn_supervised(dir, argv, job.attempt, supervisor, lease).await
}

/// Starts a special task (verify, repair, cleanup) on `host` in `dir`, under the
/// supervisor like Autoserv itself (so it can be aborted, re-attached and leased).
pub async fn start_task(
    dir: &Path,
    host: &str,
    attempt: i32,
    template: &CommandTemplate,
    supervisor: &Supervisor,
    lease: &Lease,
) -> Result<Started, RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Prepare {
        path: dir.to_path_buf(),
        source,
    })?;
    let argv = template.render(&[
        ("results_dir", &dir.to_string_lossy()),
        ("hosts", host),
        ("owner", ""),
        ("job_name", ""),
        ("job_id", ""),
        ("control_file", ""),
    ]);
    spawn_supervised(dir, argv, attempt, supervisor, lease)
        .await?
        .started()
        .await
}

async fn spawn_supervised(
    dir: &Path,
    argv: Vec<String>,
    attempt: i32,
    supervisor: &Supervisor,
    lease: &Lease,
) -> Result<Start, RunError> {
    let prefix = crate::supervise::prefix(dir, attempt);
    let mut order = Order {
        id: 0,
        dir: dir.to_path_buf(),
        stdout: dir.join(STDOUT_FILE),
        stderr: dir.join(STDERR_FILE),
        lease: Some((lease.file.clone(), lease.secs)),
        cgroup: supervisor.containment.cgroup_of(&prefix),
        prefix,
        argv,
    };
    match supervisor.hand(&mut order).await {
        Ok((pid, code)) => Ok(Start::Handed(Handed {
            pid,
            code,
            order,
            supervisor: supervisor.path().to_path_buf(),
            lease: lease.clone(),
        })),
        Err(error) => recover_or_spawn(order, supervisor.path(), lease, &error.to_string())
            .map(Start::Started),
    }
}

/// The long-lived supervisor could not take the attempt (`why`) or went away before
/// answering: Autoserv is running if its `.pid` file says so (the files then tell its
/// end); otherwise a supervisor of the attempt's own starts it.
fn recover_or_spawn(
    order: Order,
    supervisor: &Path,
    lease: &Lease,
    why: &str,
) -> Result<Started, RunError> {
    if let Some(pid) = crate::supervise::recorded_pid(&order.prefix) {
        tracing::warn!(
            why,
            pid,
            "the long-lived supervisor went away after starting Autoserv"
        );
        return Ok(Started {
            pid,
            end: End::Files(order.prefix),
        });
    }
    tracing::warn!(
        why,
        "the long-lived supervisor is unavailable; starting a supervisor for this attempt"
    );
    let prepare = |source| RunError::Prepare {
        path: order.dir.clone(),
        source,
    };
    let stdout = std::fs::File::create(&order.stdout).map_err(prepare)?;
    let stderr = std::fs::File::create(&order.stderr).map_err(prepare)?;
    let cgroup = order.cgroup.iter();
    let child = tokio::process::Command::new(supervisor)
        .arg("--lease")
        .arg(&lease.file)
        .arg(lease.secs.to_string())
        .args(cgroup.flat_map(|dir| [std::ffi::OsStr::new("--cgroup"), dir.as_os_str()]))
        .arg(&order.prefix)
        .args(&order.argv)
        .current_dir(&order.dir)
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
    Ok(Started {
        pid,
        end: End::Child(child),
    })
}

/// Waits for Autoserv's end; its exit code (as a process exit status: 0–255, 128 + N
/// when killed by signal N).
pub async fn wait(started: Started) -> i32 {
    match started.end {
        End::Served { code, prefix } => match code.await {
            Ok(code) => code,
            // The supervisor is gone: Autoserv may still run, and may yet be recorded.
            Err(_) => wait_recovered(&prefix).await,
        },
        End::Files(prefix) => wait_recovered(&prefix).await,
        End::Child(mut child) => {
            let status = child.wait().await;
            if let Err(error) = &status {
                tracing::error!(%error, "waiting for Autoserv failed");
            }
            crate::supervise::exit_code(status)
        }
    }
}

pub use crate::recovered::wait_recovered;

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
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
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
    }

    #[test]
    fn an_entry_left_between_the_two_renames_is_used_not_left_behind() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
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
    }
}
