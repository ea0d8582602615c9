//! `autoserv-supervisor PREFIX PROGRAM [ARGS...]`: the small process the worker starts
//! in front of Autoserv. It starts Autoserv in a process group of its own, writes
//! `PREFIX.pid` (Autoserv's pid = its process group) and, when Autoserv ends,
//! `PREFIX.exit` (its exit status); it outlives a crash of the worker, so a restarted
//! worker finds the attempt still running, or finds how it ended, instead of guessing.
//! Aborts signal Autoserv's group, which the supervisor is not in: it always lives to
//! record the status.
//!
//! The lease: with `--lease FILE SECS` the supervisor stops Autoserv (SIGTERM to its
//! group, SIGKILL 2 s later) once FILE has not been touched for SECS seconds, and
//! writes `PREFIX.lease`. The worker touches FILE each time the broker confirms one of
//! its reports; so a drone cut off from the broker for `drone_timeout_sec` stops its
//! jobs even when the worker itself is dead, before the scheduler retries them
//! elsewhere.
//!
//! Nothing Autoserv starts outlives it: the supervisor is a child subreaper, starts
//! Autoserv in the attempt's cgroup when the worker gives one, and once Autoserv has
//! exited records its status, then kills what is left (see [`crate::contain`]) before
//! it answers the worker (a worker that restarted meanwhile ends the cgroup itself).
//!
//! The worker normally runs one long-lived `autoserv-supervisor --serve` ([`serve`])
//! that does the same for every attempt, with the same files; the one-attempt form is
//! its fallback when that cannot be started.

use crate::contained;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

pub fn lease_file(prefix: &Path) -> PathBuf {
    with_suffix(prefix, ".lease")
}

/// Why the supervisor stopped Autoserv for an expired lease, if it did.
pub fn lease_expired(prefix: &Path) -> Option<String> {
    std::fs::read_to_string(lease_file(prefix)).ok()
}

/// Marks the lease as renewed now (the broker just confirmed a report).
pub fn renew_lease(file: &Path) -> std::io::Result<()> {
    let handle = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file)?;
    handle.set_modified(std::time::SystemTime::now())
}

/// Seconds since the lease file was last renewed; None when there is none yet.
pub fn lease_age(file: &Path) -> Option<u64> {
    let modified = std::fs::metadata(file).ok()?.modified().ok()?;
    Some(modified.elapsed().map_or(0, |d| d.as_secs()))
}

/// Sends `signal` to the process group `pgid`, if it is still there.
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pgid) {
        match killpg(Pid::from_raw(raw), signal) {
            // A group already gone is what an abort or a lease hopes for.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => {
                tracing::error!(pgid, ?signal, %error, "cannot signal the process group")
            }
        }
    }
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
pub fn run(mut args: &[String]) -> i32 {
    let mut lease: Option<(PathBuf, u64)> = None;
    let mut cgroup: Option<PathBuf> = None;
    loop {
        match args.first().map(String::as_str) {
            Some("--lease") => match (args.get(1), args.get(2).and_then(|s| s.parse().ok())) {
                (Some(file), Some(secs)) => lease = Some((PathBuf::from(file), secs)),
                _ => {
                    eprintln!("autoserv-supervisor: --lease needs FILE and SECONDS");
                    return 2;
                }
            },
            Some("--cgroup") => match args.get(1) {
                Some(dir) => {
                    cgroup = Some(PathBuf::from(dir));
                    args = &args[2..];
                    continue;
                }
                None => {
                    eprintln!("autoserv-supervisor: --cgroup needs a directory");
                    return 2;
                }
            },
            _ => break,
        }
        args = &args[3..];
    }
    let Some(prefix) = args.first() else {
        eprintln!("usage: autoserv-supervisor [--lease FILE SECONDS] [--cgroup DIR] PREFIX PROGRAM [ARGS...]");
        return 2;
    };
    let prefix = PathBuf::from(prefix);
    let _ = crate::contain::become_subreaper();
    let child = match contained::spawn(&args[1..], &prefix, cgroup.as_deref(), |_| {}) {
        Ok(child) => child,
        Err(reason) => {
            eprintln!("autoserv-supervisor: {reason}");
            let _ = write_atomic(&exit_file(&prefix), "127");
            return 127;
        }
    };
    let pid = child.id();
    let _ = write_atomic(&pid_file(&prefix), &pid.to_string());
    let prefix_for_lease = prefix.clone();
    let waited = move |child: contained::Contained| {
        let (code, notes) = child.wait(|status| finish(&prefix, status));
        for note in notes {
            eprintln!("autoserv-supervisor: {note}");
        }
        code
    };
    let Some((file, secs)) = lease else {
        return waited(child);
    };
    let prefix = prefix_for_lease;
    // Wait in a thread; check the lease between waits, without delaying the exit.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(waited(child));
    });
    let mut stopping: Option<Instant> = None;
    let mut turns = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(code) => return code,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return finish(
                    &prefix,
                    Err(std::io::Error::other("the waiting thread died")),
                )
            }
        }
        if let Some(reason) = enforce_lease(pid, &prefix, &file, secs, &mut stopping) {
            eprintln!("autoserv-supervisor: {reason}");
        }
        turns += 1;
        if turns == 20 {
            turns = 0;
            contained::reap_orphans();
        }
    }
}

/// One look at the lease of the Autoserv whose group is `pid`: once the lease file is
/// older than `secs`, SIGTERM to the group and `PREFIX.lease` written (the reason is
/// returned, for the caller to say where Autoserv's stderr goes); SIGKILL from 2 s
/// after that.
fn enforce_lease(
    pid: u32,
    prefix: &Path,
    file: &Path,
    secs: u64,
    stopping: &mut Option<Instant>,
) -> Option<String> {
    match stopping {
        None if lease_age(file).is_some_and(|age| age > secs) => {
            let reason = format!(
                "the drone had not reached the broker for over {secs} s (its lease expired): Autoserv was stopped"
            );
            let _ = write_atomic(&lease_file(prefix), &reason);
            signal_group(pid, Signal::SIGTERM);
            *stopping = Some(Instant::now());
            Some(reason)
        }
        Some(since) if since.elapsed() > Duration::from_secs(2) => {
            signal_group(pid, Signal::SIGKILL);
            None
        }
        _ => None,
    }
}

/// A process's exit code, 128 + N when signal N killed it, -1 when it is unknown.
pub fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}

/// Records Autoserv's exit status; returns the code to leave with.
fn finish(prefix: &Path, status: std::io::Result<std::process::ExitStatus>) -> i32 {
    let code = exit_code(status);
    let _ = write_atomic(&exit_file(prefix), &code.to_string());
    code
}

/// One attempt for [`serve`] to start: what [`run`] takes as arguments, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The worker's number for it, repeated in the lines that answer it.
    pub id: u64,
    /// Autoserv's working directory.
    pub dir: PathBuf,
    /// Autoserv's stdout and stderr (created, or truncated).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The lease file and how long it may go untouched, in seconds.
    pub lease: Option<(PathBuf, u64)>,
    /// Where the `.pid`, `.exit` and `.lease` files go.
    pub prefix: PathBuf,
    /// Autoserv's command line.
    pub argv: Vec<String>,
    /// The attempt's cgroup (see [`crate::contain`]), made by the supervisor; None:
    /// the process group and the subreaper contain it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
}

/// An Autoserv [`serve`] started and watches for the lease.
struct Watched {
    prefix: PathBuf,
    stderr: PathBuf,
    lease: (PathBuf, u64),
    stopping: Option<Instant>,
}

/// `autoserv-supervisor --serve`: the long-lived form, one per worker. It reads one
/// [`Order`] per line (JSON) on stdin and starts each Autoserv as [`run`] would, with
/// the same files; on stdout it answers `pid ID PID` once Autoserv is started (pid 0:
/// it could not be, and its exit status is 127) and `exit ID CODE` once it has ended
/// and its status is recorded. Starting a process costs the worker one `posix_spawn`
/// of Autoserv instead of one of a supervisor and then Autoserv.
///
/// When stdin ends (the worker stopped or died) it takes no more orders, waits for the
/// Autoserv processes it started, records their ends, and exits; answers nobody reads
/// are dropped. A worker started meanwhile re-attaches through the files.
pub fn serve() -> i32 {
    use std::io::BufRead;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let watched: Arc<Mutex<HashMap<u32, Watched>>> = Arc::default();
    if let Err(error) = crate::contain::become_subreaper() {
        eprintln!("autoserv-supervisor: cannot become a child subreaper: {error}");
    }
    {
        let watched = watched.clone();
        std::thread::spawn(move || {
            for turn in (0..20).cycle() {
                std::thread::sleep(Duration::from_millis(250));
                watch_leases(&watched);
                // Orphans that exited on their own, every 5 s (a look through /proc).
                if turn == 19 {
                    contained::reap_orphans();
                }
            }
        });
    }
    let mut waiting = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Order>(&line) {
            Ok(order) => waiting.extend(start_order(order, &out, &watched)),
            Err(error) => eprintln!("autoserv-supervisor: ignoring an unreadable order: {error}"),
        }
        waiting.retain(|w: &std::thread::JoinHandle<()>| !w.is_finished());
    }
    for w in waiting {
        let _ = w.join();
    }
    0
}

fn answer(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    // One write of a short line: answers from several threads never interleave.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

/// Appends the supervisor's own message to Autoserv's stderr, as [`run`]'s go there.
fn note(stderr: &Path, message: &str) {
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(stderr) {
        let _ = writeln!(file, "autoserv-supervisor: {message}");
    }
}

fn start_order(
    order: Order,
    out: &Arc<Mutex<std::io::Stdout>>,
    watched: &Arc<Mutex<HashMap<u32, Watched>>>,
) -> Option<std::thread::JoinHandle<()>> {
    let Order {
        id,
        dir,
        stdout,
        stderr,
        lease,
        prefix,
        argv,
        cgroup,
    } = order;
    let files =
        std::fs::File::create(&stdout).and_then(|o| Ok((o, std::fs::File::create(&stderr)?)));
    let spawned = match files {
        Ok((o, e)) => contained::spawn(&argv, &prefix, cgroup.as_deref(), |command| {
            command
                .current_dir(&dir)
                .stdin(std::process::Stdio::null())
                .stdout(o)
                .stderr(e);
        }),
        Err(e) => Err(format!(
            "cannot create {} or {}: {e}",
            stdout.display(),
            stderr.display()
        )),
    };
    let child = match spawned {
        Ok(child) => child,
        Err(reason) => {
            note(&stderr, &reason);
            let _ = write_atomic(&exit_file(&prefix), "127");
            answer(out, &format!("pid {id} 0"));
            answer(out, &format!("exit {id} 127"));
            return None;
        }
    };
    let pid = child.id();
    // Answered first: the worker reports Running on it, and the file is for a worker
    // that restarts (as with the one-attempt supervisor, whose start the worker knows
    // before its `.pid` is written).
    answer(out, &format!("pid {id} {pid}"));
    let _ = write_atomic(&pid_file(&prefix), &pid.to_string());
    if let Some(lease) = lease {
        watched.lock().unwrap_or_else(|e| e.into_inner()).insert(
            pid,
            Watched {
                prefix: prefix.clone(),
                stderr: stderr.clone(),
                lease,
                stopping: None,
            },
        );
    }
    let (out, watched) = (out.clone(), watched.clone());
    Some(std::thread::spawn(move || {
        let (code, notes) = child.wait(|status| {
            watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid);
            finish(&prefix, status)
        });
        for message in notes {
            note(&stderr, &message);
        }
        answer(&out, &format!("exit {id} {}", code & 0xff));
    }))
}

/// Stops the Autoserv processes whose lease expired (SIGTERM to the group, SIGKILL 2 s
/// later), as [`run`] does for its one.
fn watch_leases(watched: &Mutex<HashMap<u32, Watched>>) {
    let mut watched = watched.lock().unwrap_or_else(|e| e.into_inner());
    for (pid, w) in watched.iter_mut() {
        let (file, secs) = &w.lease;
        if let Some(reason) = enforce_lease(*pid, &w.prefix, file, *secs, &mut w.stopping) {
            note(&w.stderr, &reason);
        }
    }
}
