//! Nothing an attempt starts outlives it. Where the machine has a writable cgroup v2
//! hierarchy, every attempt runs in a cgroup of its own,
//! `<cgroup v2 mount><worker's cgroup>/autotest-<drone>/<attempt>`: the supervisor makes
//! it, Autoserv enters it before it runs (`autoserv-supervisor --enter DIR PROGRAM
//! ...` moves itself in, then executes Autoserv, so nothing can fork outside it), and
//! once Autoserv has exited the supervisor kills whatever is left in it (`cgroup.kill`,
//! or freezing and SIGKILL to each process on kernels without it), waits until it is
//! empty and removes it.
//!
//! Everywhere, the supervisor is a child subreaper: what an attempt leaves behind when
//! its parents exit (`&`, `setsid`, a double fork) becomes the supervisor's child
//! instead of init's. Without a cgroup (`process-group` containment) the supervisor
//! kills Autoserv's process group once Autoserv exits, then every process re-parented
//! to it that carries the attempt's mark (the environment variable [`MARKER_VAR`],
//! which children inherit), until none is left.

use common::config::Containment;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that marks every process of one attempt.
pub const MARKER_VAR: &str = "AUTOTEST_ATTEMPT";

/// How long the end of an attempt waits for its processes to be gone.
const END_TIMEOUT: Duration = Duration::from_secs(10);

/// The containment a worker uses, found at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One cgroup per attempt under `parent`.
    Cgroup { parent: PathBuf },
    /// The process group and the subreaper; `why` no cgroup is used.
    ProcessGroup { why: String },
}

impl Mode {
    /// Decides the containment for drone `drone` as `[DRONE] containment` asks: with
    /// `cgroup`, an error when the machine has no writable cgroup v2.
    pub fn detect(choice: Containment, drone: &str) -> Result<Mode, String> {
        if choice == Containment::ProcessGroup {
            return Ok(Mode::ProcessGroup {
                why: "[DRONE] containment = process-group".to_string(),
            });
        }
        match probe(drone) {
            Ok(parent) => Ok(Mode::Cgroup { parent }),
            Err(why) if choice == Containment::Auto => Ok(Mode::ProcessGroup { why }),
            Err(why) => Err(why),
        }
    }

    /// One line for the worker's start.
    pub fn describe(&self) -> String {
        match self {
            Mode::Cgroup { parent } => {
                format!("a cgroup v2 per attempt under {}", parent.display())
            }
            Mode::ProcessGroup { why } => {
                format!("process group and subreaper (no cgroup: {why})")
            }
        }
    }

    /// Ends what is left of the attempt whose supervisor files are at `prefix` (its
    /// cgroup), as its supervisor does once Autoserv exits; for an attempt whose
    /// supervisor went away. Nothing to do when there is no such cgroup.
    pub async fn end_attempt(&self, prefix: &Path) {
        let Some(dir) = self.cgroup_of(prefix) else {
            return;
        };
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || end(&dir)).await {
            tracing::error!(%error, "cannot end the attempt's cgroup");
        }
    }

    /// Kills everything the attempt whose supervisor files are at `prefix` runs: its
    /// cgroup, and Autoserv's process group `pgid`.
    pub fn kill_attempt(&self, prefix: &Path, pgid: Option<u32>) {
        if let Some(dir) = self.cgroup_of(prefix).filter(|dir| dir.is_dir()) {
            if let Err(error) = kill_all(&dir) {
                tracing::error!(%error, "cannot kill the attempt's cgroup");
            }
        }
        if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    /// The cgroup of the attempt whose supervisor files are at `prefix`, if any.
    pub fn cgroup_of(&self, prefix: &Path) -> Option<PathBuf> {
        match self {
            Mode::Cgroup { parent } => Some(parent.join(name_of(prefix))),
            Mode::ProcessGroup { .. } => None,
        }
    }
}

/// The mount point of the cgroup v2 hierarchy, and the path within the hierarchy that
/// it shows, from the text of `/proc/self/mountinfo`.
pub fn v2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = before.split_whitespace().collect();
        Some((PathBuf::from(fields.get(4)?), fields.get(3)?.to_string()))
    })
}

/// This process's cgroup v2 path, from the text of `/proc/self/cgroup`.
pub fn own_cgroup(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string)
}

/// The directory of this process's cgroup under the v2 mount.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let (mount, root) = v2_mount(&mountinfo).ok_or("no cgroup v2 hierarchy is mounted")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| own_cgroup(&text))
        .ok_or("this process is in no cgroup v2")?;
    let relative = own
        .strip_prefix(root.trim_end_matches('/'))
        .unwrap_or(&own)
        .trim_start_matches('/');
    Ok(mount.join(relative))
}

/// Makes `autotest-<drone>` in this process's cgroup and checks that a process can be
/// moved into a cgroup made there and that it can be killed as a whole.
fn probe(drone: &str) -> Result<PathBuf, String> {
    let parent = own_cgroup_dir()?.join(format!("autotest-{drone}"));
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Several workers may share a process (the tests): each probe has its own name.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = parent.join(format!("probe-{}-{n}", std::process::id()));
    create(&probe).map_err(|e| format!("cannot create {}: {e}", probe.display()))?;
    let moved = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .map_err(|e| format!("cannot start sleep to try the cgroup: {e}"))
        .and_then(|mut child| {
            let moved = std::fs::write(probe.join("cgroup.procs"), child.id().to_string())
                .map_err(|e| format!("cannot move a process into {}: {e}", probe.display()));
            let _ = child.kill();
            let _ = child.wait();
            moved
        });
    let removed = end(&probe).map_err(|e| format!("cannot remove {}: {e}", probe.display()));
    moved.and(removed).map(|()| parent)
}

/// The name of the cgroup of the attempt whose supervisor files are at `prefix`
/// (`<entry dir>/.autoserv-<attempt>`): readable, short, and unique by a hash of the path.
pub fn name_of(prefix: &Path) -> String {
    let part = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let entry = prefix.parent();
    let readable: String = format!(
        "{}.{}.{}",
        part(entry.and_then(Path::parent)),
        part(entry),
        part(Some(prefix)).trim_start_matches(".autoserv-")
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
            c
        } else {
            '_'
        }
    })
    .take(160)
    .collect();
    let hash = hex::encode(Sha256::digest(prefix.as_os_str().as_encoded_bytes()));
    format!("attempt-{readable}-{}", &hash[..12])
}

/// Makes the cgroup `dir`, ending first what a crash may have left under that name.
pub fn create(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            end(dir)?;
            std::fs::create_dir(dir)
        }
        other => other,
    }
}

/// `autoserv-supervisor --enter DIR PROGRAM [ARGS...]`: moves this process into the
/// cgroup DIR, then becomes PROGRAM. Returns only on failure, with the exit code.
pub fn enter_and_exec(args: &[String]) -> i32 {
    use std::os::unix::process::CommandExt;
    let (Some(dir), Some(program)) = (args.first(), args.get(1)) else {
        eprintln!("usage: autoserv-supervisor --enter CGROUP PROGRAM [ARGS...]");
        return 2;
    };
    let procs = Path::new(dir).join("cgroup.procs");
    if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
        eprintln!(
            "autoserv-supervisor: cannot enter the attempt's cgroup {}: {e}",
            procs.display()
        );
        return 127;
    }
    let error = std::process::Command::new(program).args(&args[2..]).exec();
    eprintln!("autoserv-supervisor: cannot start {program}: {error}");
    127
}

/// Whether `program` names an executable file (as a path, or found on `PATH`).
pub fn executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| runnable(&dir.join(program))))
}

/// Kills everything in the cgroup `dir` (and the cgroups under it), waits until it is
/// empty and removes it. Nothing to do when it does not exist.
pub fn end(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    kill_all(dir)?;
    let deadline = Instant::now() + END_TIMEOUT;
    // Exited processes leave the cgroup before they are reaped.
    while populated(dir) {
        if Instant::now() > deadline {
            return Err(std::io::Error::other(format!(
                "{} still has processes {} s after they were killed",
                dir.display(),
                END_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    remove_tree(dir)
}

/// SIGKILL to every process in the cgroup `dir`, through `cgroup.kill` where the
/// kernel has it (5.14 and later), else by freezing it and killing each process.
pub fn kill_all(dir: &Path) -> std::io::Result<()> {
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        return std::fs::write(kill_file, "1");
    }
    std::fs::write(dir.join("cgroup.freeze"), "1")?;
    for pid in pids(dir) {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    std::fs::write(dir.join("cgroup.freeze"), "0")
}

/// Every process in the cgroup `dir` and those under it.
fn pids(dir: &Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for sub in subgroups(dir) {
        found.extend(pids(&sub));
    }
    found
}

fn subgroups(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process is still in the cgroup `dir` or under it.
fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(events) => events.lines().any(|l| l.trim() == "populated 1"),
        Err(_) => !pids(dir).is_empty(),
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for sub in subgroups(dir) {
        remove_tree(&sub)?;
    }
    // The kernel may take a moment to let go of the last process.
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries < 100 => {
                tries += 1;
                tracing::debug!(error = %e, "cgroup not removable yet");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes this process a child subreaper: orphans of its descendants become its children.
pub fn become_subreaper() -> Result<(), String> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| e.to_string())
}

/// A child of this process, by `/proc`: its pid, state and whether it carries `marker`.
struct Child {
    pid: u32,
    zombie: bool,
    marked: bool,
}

/// The pids that may be children of this process: what the kernel lists in each of
/// its threads' `children` file, or, on a kernel without those files, every process.
/// Either way [`children`] checks each one's parent; the lists are a hint that makes a
/// look cost this process's children rather than every process on the machine.
fn candidate_pids() -> Vec<u32> {
    let listed = std::fs::read_dir("/proc/self/task").ok().and_then(|tasks| {
        let mut pids = Vec::new();
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).ok()?;
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        Some(pids)
    });
    if let Some(pids) = listed {
        return pids;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// The children of this process (`live` left out), by `/proc`.
fn children(live: &HashSet<u32>, marker: Option<&str>) -> Vec<Child> {
    let own = std::process::id();
    let needle = marker.map(|m| format!("{MARKER_VAR}={m}"));
    candidate_pids()
        .into_iter()
        .filter(|pid| !live.contains(pid))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
            let state = rest.next()?;
            let parent: u32 = rest.next()?.parse().ok()?;
            if parent != own {
                return None;
            }
            let marked = needle.as_ref().is_some_and(|needle| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
            });
            Some(Child {
                pid,
                zombie: state == "Z",
                marked,
            })
        })
        .collect()
}

/// Reaps this process's children that have exited, except those in `live` (the
/// Autoserv processes that threads of this process wait for).
///
/// A look at /proc costs a read per process on the machine, and every drone's
/// supervisor does this every few seconds; so `waitid` is asked first, without
/// reaping, which child has exited. None (the usual answer): nothing to do. Only
/// when the exited child is a live Autoserv, which its thread is about to reap and
/// which hides any other behind it, is /proc read.
pub fn reap_zombies(live: &HashSet<u32>) {
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        let exited = match waitid(Id::All, peek) {
            // No child has exited (or there is none at all).
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => status.pid(),
        };
        match exited {
            Some(pid) if !live.contains(&(pid.as_raw() as u32)) => reap(pid.as_raw() as u32, false),
            _ => break,
        }
    }
    for child in children(live, None) {
        if child.zombie {
            reap(child.pid, false);
        }
    }
}

fn reap(pid: u32, wait: bool) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let flags = (!wait).then_some(WaitPidFlag::WNOHANG);
    let _ = waitpid(Pid::from_raw(raw), flags);
}

/// After Autoserv (pid and process group `pgid`) has exited: SIGKILL to what is left
/// of its process group, then to every process re-parented to this one that carries
/// `marker`, until none is left (a killed orphan's children come next). Reaps them,
/// and any other exited child not in `live`.
pub fn sweep(pgid: u32, marker: &str, live: &HashSet<u32>) {
    if let Ok(raw) = i32::try_from(pgid) {
        if raw > 0 {
            let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let deadline = Instant::now() + END_TIMEOUT;
    loop {
        let found = children(live, Some(marker));
        let mut marked = 0;
        for child in found {
            if child.zombie {
                reap(child.pid, false);
            } else if child.marked {
                marked += 1;
                if let Ok(raw) = i32::try_from(child.pid) {
                    let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
                }
                reap(child.pid, true);
            }
        }
        if marked == 0 || Instant::now() > deadline {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_of_this_process_is_among_the_candidates() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = candidate_pids().contains(&child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "a running child is listed");
    }

    #[test]
    fn the_v2_mount_and_own_cgroup_are_read_from_proc() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v2_mount(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        let v1_only = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";
        assert_eq!(v2_mount(v1_only), None);
        assert_eq!(
            own_cgroup("4:memory:/x\n0::/system.slice/drone.service\n").as_deref(),
            Some("/system.slice/drone.service")
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn an_attempt_cgroup_name_is_readable_and_unique() {
        let a = name_of(Path::new("/var/drone/12-alice/host1/.autoserv-3"));
        assert!(a.starts_with("attempt-12-alice.host1.3-"), "{a}");
        let b = name_of(Path::new("/other/drone/12-alice/host1/.autoserv-3"));
        assert_ne!(a, b);
        let long = format!("/d/1-o/{}/.autoserv-1", "h".repeat(253));
        let name = name_of(Path::new(&long));
        assert!(name.len() < 200, "{}", name.len());
        let odd = name_of(Path::new("/d/1-o/a b\nc/.autoserv-1"));
        assert!(odd.starts_with("attempt-1-o.a_b_c.1-"), "{odd}");
    }

    #[test]
    fn executables_are_found_as_paths_and_on_the_path() {
        assert!(executable("/bin/sh"));
        assert!(executable("sh"));
        assert!(!executable("/nonexistent/autoserv"));
        assert!(!executable("/etc/passwd"));
    }
}
