//! `autoserv-supervisor PREFIX PROGRAM [ARGS...]`: the small process the worker starts
//! in front of Autoserv. It starts Autoserv in a process group of its own, writes
//! `PREFIX.pid` (Autoserv's pid = its process group) and, when Autoserv ends,
//! `PREFIX.exit` (its exit status); it outlives a crash of the worker, so a restarted
//! worker finds the attempt still running, or finds how it ended, instead of guessing.
//! Aborts signal Autoserv's group, which the supervisor is not in: it always lives to
//! record the status.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// The files of one attempt's supervisor in the entry's directory.
pub fn prefix(entry_dir: &Path, attempt: i32) -> PathBuf {
    entry_dir.join(format!(".autoserv-{attempt}"))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

pub fn pid_file(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".pid")
}

pub fn exit_file(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".exit")
}

/// The exit status a supervisor recorded, if it has.
pub fn recorded_exit(prefix: &Path) -> Option<i32> {
    std::fs::read_to_string(exit_file(prefix))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The supervisor's pid, if it started.
pub fn recorded_pid(prefix: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file(prefix))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a process is alive (not a zombie).
pub fn is_alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    // No fsync: these files matter after a crash of the worker, not of the machine
    // (which takes Autoserv down with it).
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Runs the supervisor; returns the exit code to leave with. Autoserv gets a process
/// group of its own (its pid, recorded in `PREFIX.pid`), which is what an abort
/// signals; the supervisor stays out of it, so it always lives to record the status.
pub fn run(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let (Some(prefix), Some(program)) = (args.first(), args.get(1)) else {
        eprintln!("usage: autoserv-supervisor PREFIX PROGRAM [ARGS...]");
        return 2;
    };
    let prefix = PathBuf::from(prefix);
    let mut child = match std::process::Command::new(program)
        .args(&args[2..])
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("autoserv-supervisor: cannot start {program}: {e}");
            let _ = write_atomic(&exit_file(&prefix), "127");
            return 127;
        }
    };
    let _ = write_atomic(&pid_file(&prefix), &child.id().to_string());
    let code = match child.wait() {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(_) => -1,
    };
    let _ = write_atomic(&exit_file(&prefix), &code.to_string());
    code
}
