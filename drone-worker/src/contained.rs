//! Autoserv as the supervisor starts it: in a process group of its own, marked with
//! its attempt (see [`crate::contain`]), in the attempt's cgroup when there is one;
//! and, once it has exited, whatever it left killed and reaped.

use crate::contain::{self, MARKER_VAR};
use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{LazyLock, Mutex, MutexGuard};

/// The Autoserv processes this supervisor started and has not reaped yet: threads wait
/// for them, so the sweep for orphans leaves them alone.
static LIVE: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(Mutex::default);

fn live() -> MutexGuard<'static, HashSet<u32>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A started Autoserv and what contains it.
pub struct Contained {
    child: Child,
    cgroup: Option<PathBuf>,
    marker: String,
}

/// Starts `argv` for the attempt whose supervisor files are at `prefix`, in the cgroup
/// `cgroup` if given (made here; Autoserv enters it before it runs). `configure` sets
/// the directory and standard files. An error says why it could not start.
pub fn spawn(
    argv: &[String],
    prefix: &Path,
    cgroup: Option<&Path>,
    configure: impl FnOnce(&mut Command),
) -> Result<Contained, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("an order without a command".to_string());
    };
    let marker = contain::name_of(prefix);
    let mut command = match cgroup {
        Some(dir) => {
            // Through `--enter`, a program that does not exist would start and fail:
            // said here instead, as a direct start would.
            if !contain::executable(program) {
                return Err(format!("cannot start {program}: no such executable file"));
            }
            let supervisor = std::env::current_exe()
                .map_err(|e| format!("cannot find the supervisor's own binary: {e}"))?;
            contain::create(dir).map_err(|e| {
                format!("cannot create the attempt's cgroup {}: {e}", dir.display())
            })?;
            let mut command = Command::new(supervisor);
            command.arg("--enter").arg(dir).arg(program);
            command
        }
        None => Command::new(program),
    };
    command.args(args).env(MARKER_VAR, &marker).process_group(0);
    configure(&mut command);
    let mut live = live();
    match command.spawn() {
        Ok(child) => {
            live.insert(child.id());
            Ok(Contained {
                child,
                cgroup: cgroup.map(Path::to_path_buf),
                marker,
            })
        }
        Err(e) => {
            drop(live);
            if let Some(dir) = cgroup {
                let _ = contain::end(dir);
            }
            Err(format!("cannot start {program}: {e}"))
        }
    }
}

impl Contained {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for Autoserv's exit and hands its status to `record` (which records it
    /// for a worker that restarts), then ends what Autoserv left: its cgroup killed,
    /// emptied and removed; its process group and marked orphans killed and reaped.
    /// What `record` returned, and problems as notes for Autoserv's stderr.
    pub fn wait<T>(
        mut self,
        record: impl FnOnce(std::io::Result<ExitStatus>) -> T,
    ) -> (T, Vec<String>) {
        let status = self.child.wait();
        // Recorded first: a worker that re-attached waits for this file, and the
        // orphan reaper can hold `live()` through a whole look at /proc.
        let recorded = record(status);
        let pid = self.child.id();
        live().remove(&pid);
        let mut notes = Vec::new();
        if let Some(dir) = &self.cgroup {
            if let Err(e) = contain::end(dir) {
                notes.push(format!("cannot end the attempt's cgroup: {e}"));
            }
        }
        contain::sweep(pid, &self.marker, &live());
        (recorded, notes)
    }
}

/// Reaps exited orphans re-parented to this supervisor (Autoserv processes that
/// threads wait for are left to them).
pub fn reap_orphans() {
    contain::reap_zombies(&live());
}
