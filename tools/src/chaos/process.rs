//! The system's processes as the run starts, kills and restarts them, and the run's own
//! response to Ctrl-C and SIGTERM.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set once Ctrl-C or SIGTERM has reached the run.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One of the system's processes, started again after each kill with its log appended.
pub struct Daemon {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Daemon {
    /// Starts the program in a process group of its own, its stderr appended to the log.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // A Ctrl-C at the terminal reaches chaos alone, which cleans up.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if it ended by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }
}

/// Sleeps, but gives up (panics, which cleans up) on Ctrl-C or SIGTERM.
pub fn pause(d: Duration) {
    let end = Instant::now() + d;
    loop {
        assert!(!INTERRUPTED.load(Ordering::Relaxed), "interrupted");
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Sets [`INTERRUPTED`] on Ctrl-C or SIGTERM, from a thread of its own.
pub fn watch_signals() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("signal runtime");
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("chaos: interrupted; cleaning up");
            INTERRUPTED.store(true, Ordering::Relaxed);
        });
    });
}

/// Kills what the jobs left running: any process whose working directory is under
/// `dir` (Autoserv stand-ins outlive a killed worker on purpose).
pub fn kill_processes_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids = entries.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        cwd.starts_with(dir).then_some(pid)
    });
    for pid in pids {
        // Gone already is as good as killed.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
