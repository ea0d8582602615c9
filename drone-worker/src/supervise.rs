//! `drone-worker supervise PREFIX PROGRAM [ARGS...]`: the process the worker starts in
//! place of Autoserv. It leads Autoserv's process group, writes `PREFIX.pid` when it
//! starts and `PREFIX.exit` (Autoserv's exit status) when Autoserv ends, and outlives a
//! crash of the worker: a restarted worker finds the group still running, or finds the
//! exit status, instead of guessing. SIGTERM and SIGINT sent to the group reach
//! Autoserv; the supervisor itself waits on, to record how Autoserv ended.

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

/// Whether `pid` is a live supervisor for `prefix` (not a zombie, not a reused pid).
pub fn is_running(pid: u32, prefix: &Path) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let wanted = prefix.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = with_suffix(path, ".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Runs the supervisor; returns the exit code to leave with.
pub fn run(args: &[String]) -> i32 {
    let (Some(prefix), Some(program)) = (args.first(), args.get(1)) else {
        eprintln!("usage: drone-worker supervise PREFIX PROGRAM [ARGS...]");
        return 2;
    };
    let prefix = PathBuf::from(prefix);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("drone-worker supervise: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Handled (so not fatal) while Autoserv ends: the group's signal reaches it too.
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        let _ = write_atomic(&pid_file(&prefix), &std::process::id().to_string());
        let mut child = match tokio::process::Command::new(program).args(&args[2..]).spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("drone-worker supervise: cannot start {program}: {e}");
                let _ = write_atomic(&exit_file(&prefix), "127");
                return 127;
            }
        };
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
                _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        let code = match status {
            Ok(status) => status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1),
            Err(_) => -1,
        };
        let _ = write_atomic(&exit_file(&prefix), &code.to_string());
        code
    })
}
