//! Helpers shared by the benchmark tools (`bench`, `scale_bench`): figures from
//! /proc, percentiles, and starting and stopping the real programs.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::Child;
use std::time::{Duration, Instant};

/// The `p`th percentile of `sorted` (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// One line: p50, p99 and max of `values_ms`, and how many.
pub fn summary(label: &str, mut values_ms: Vec<f64>) -> String {
    values_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    format!(
        "{label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        percentile(&values_ms, 50.0),
        percentile(&values_ms, 99.0),
        values_ms.last().copied().unwrap_or(f64::NAN),
        values_ms.len()
    )
}

/// An API timestamp in microseconds since the epoch; panics when absent.
pub fn micros(text: &Option<String>) -> i64 {
    text.as_deref()
        .and_then(common::time::parse_micros)
        .expect("timestamp")
}

/// The peak resident memory (VmHWM) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A TCP port on 127.0.0.1 free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM to `child`, then waits for it to end.
pub fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let _ = child.wait();
}

/// User + system CPU seconds of a live process (clock ticks of 100 Hz).
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_ticks(pid, 11) + stat_ticks(pid, 12)
}

/// User + system CPU seconds of the children a live process has waited for (and
/// theirs): a worker's rsyncs, and any one-attempt supervisors with Autoserv under
/// them. Not its long-lived supervisor's, which it waits for only when it stops.
pub fn children_cpu_seconds(pid: u32) -> f64 {
    stat_ticks(pid, 13) + stat_ticks(pid, 14)
}

/// CPU seconds the whole machine has spent busy (all processes and the kernel) since
/// boot; differences between two readings say what a phase cost, whoever paid it.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| fields.get(*i))
        .sum::<f64>()
        / 100.0
}

/// Field `index` (after the command name) of /proc/PID/stat, in seconds of 100 Hz ticks.
fn stat_ticks(pid: u32, index: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields
        .get(index)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 100.0
}

/// The resident memory (VmRSS) of a live process, in KiB.
pub fn current_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` on a blocking thread every 50 ms until it holds; panics after
/// `timeout`.
pub async fn wait_blocking(check: impl Fn() -> bool + Send + 'static, timeout: Duration) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the system to start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
}

/// Microseconds to create one entry-like directory under `dir` (two levels, three
/// small files), averaged over 20. What it made stays until `dir` is removed:
/// deleting it would slow the next probe (see [`settle_filesystem`]).
pub fn entry_dir_cost_us(dir: &std::path::Path) -> f64 {
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join("fs-probe").join(n.to_string());
    let started = std::time::Instant::now();
    for i in 0..20 {
        let entry = probe.join(format!("{i}-bench")).join("host");
        std::fs::create_dir_all(&entry).expect("probe directory");
        for name in ["control", "debug.stdout", "debug.stderr"] {
            std::fs::write(entry.join(name), b"x").expect("probe file");
        }
    }
    started.elapsed().as_secs_f64() * 1e6 / 20.0
}

/// The directory for one run, `<tmp>/autotest-bench/<id>`, in an inode group earlier
/// runs did not just empty where the filesystem allows it: the parent carries ext4's
/// top-directory hint (`chattr +T`), so the allocator spreads the runs' directories over
/// lightly used groups instead of putting each one where the last run deleted its tens
/// of thousands of files (see [`settle_filesystem`]). Where the hint is refused (not
/// ext4, no `chattr`) the runs share the parent's group and the probe says what it costs.
pub fn run_dir(id: &str) -> std::path::PathBuf {
    let parent = std::env::temp_dir().join("autotest-bench");
    std::fs::create_dir_all(&parent).expect("bench directory");
    let hinted = std::process::Command::new("chattr")
        .arg("+T")
        .arg(&parent)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !hinted {
        println!(
            "filesystem: the top-directory hint (chattr +T) was refused; runs share an inode group"
        );
    }
    parent.join(id)
}

/// Waits (up to five minutes) until creating files under `dir` costs what it does on a
/// quiet filesystem, and says what it found. This VM's root is ext4 without a journal;
/// there the inode allocator passes over every inode deleted in the last minute (five,
/// while its inode-table block is still dirty), checking each one. After an earlier
/// run deleted its tens of thousands of files from /tmp's block group, creating a file
/// there is about ten times slower for a minute or more: a run started then measures
/// that, not the scheduler. The probe's own files stay, so it does not prolong it.
pub fn settle_filesystem(dir: &std::path::Path) {
    const QUIET_US: f64 = 300.0;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut cost = entry_dir_cost_us(dir);
    let first = cost;
    while cost > QUIET_US && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(3));
        cost = entry_dir_cost_us(dir);
    }
    if first > QUIET_US {
        println!("filesystem: {first:.0} us to create an entry directory at first (deletes still settling); waited until {cost:.0} us");
    } else {
        println!("filesystem: {cost:.0} us to create an entry directory");
    }
    if cost > QUIET_US {
        println!("filesystem: still slow after five minutes; the figures below include it");
    }
}

/// Creates the admin `name` in the database of the scheduler configured by `config`
/// (`autotest-scheduler --config FILE add-user NAME --admin`) and returns its token.
pub fn admin_token(config: &std::path::Path, name: &str) -> String {
    let out = std::process::Command::new(autotest_tests::binary("autotest-scheduler"))
        .arg("--config")
        .arg(config)
        .args(["add-user", name, "--admin"])
        .output()
        .expect("run autotest-scheduler add-user");
    assert!(
        out.status.success(),
        "autotest-scheduler add-user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a token is text")
        .trim()
        .to_string()
}

/// Runs `f` on `threads` blocking threads, each given its index; returns when all end.
pub async fn parallel(threads: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = std::sync::Arc::new(f);
    let tasks: Vec<_> = (0..threads)
        .map(|t| {
            let f = f.clone();
            tokio::task::spawn_blocking(move || f(t))
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
