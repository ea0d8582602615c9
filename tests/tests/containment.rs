//! Nothing a job starts outlives it: processes left in the background (`&`), in a
//! session of their own (`setsid`), through a double fork and deaf to SIGTERM are all
//! gone once the job completes, and once it is aborted; in a cgroup per attempt, and
//! with the process group and the subreaper alone.

use autotest_tests::World;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// A mark no other process on the machine carries: the fraction of `sleep 1000.<mark>`.
fn unique_mark() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{nanos:09}", std::process::id())
}

/// A control file that leaves four sleepers behind, each with its own mark (`<mark>1`
/// to `<mark>4`), says so in `started`, then waits until `go` exists in `dir`.
fn escaping_control(mark: &str, dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        "sleep 1000.{mark}1 &\n\
         setsid sleep 1000.{mark}2 &\n\
         sh -c 'sleep 1000.{mark}3 & exit 0' &\n\
         (trap '' TERM; exec sleep 1000.{mark}4) &\n\
         touch started\n\
         while [ -d '{dir}' ] && [ ! -e '{dir}/go' ]; do sleep 0.02; done\n"
    )
}

/// The pids of processes whose command line carries `mark`.
fn marked(mark: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if line.contains(mark) && drone_worker::supervise::is_alive(pid) {
            found.push((pid, line));
        }
    }
    found
}

/// Waits until no process carries `mark`; kills what is left (so a failure leaves
/// nothing behind) and fails if anything was.
async fn assert_none_left(mark: &str, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = marked(mark);
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = marked(mark);
    }
    for (pid, _) in &left {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "left behind {when}: {left:?}");
}

async fn started(world: &World, id: i64, mark: &str) {
    let dir = world
        .path("drone-drone1")
        .join(format!("{id}-tester/host1"));
    world
        .wait_for(|| dir.join("started").exists(), "the job started")
        .await;
    let deadline = Instant::now() + MINUTE;
    while marked(mark).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the sleepers did not start: {:?}",
            marked(mark)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn nothing_escapes(containment: &str) {
    let world = World::builder()
        .drone("drone1", 2)
        .config("DRONE", "containment", containment)
        .config("SCHEDULER", "abort_grace_sec", "1")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;

    let mark = unique_mark();
    let id = world
        .submit(
            "completes",
            &escaping_control(&mark, &world.path("")),
            &["host1"],
        )
        .await;
    started(&world, id, &mark).await;
    std::fs::write(world.path("go"), b"").unwrap();
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    assert_none_left(&mark, "after the job completed").await;

    std::fs::remove_file(world.path("go")).unwrap();
    let mark = unique_mark();
    let id = world
        .submit(
            "aborted",
            &escaping_control(&mark, &world.path("")),
            &["host1"],
        )
        .await;
    started(&world, id, &mark).await;
    let out = world.atest(&["job", "abort", &id.to_string()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Aborted");
    assert_none_left(&mark, "after the job was aborted").await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_a_job_starts_outlives_it_in_a_cgroup_per_attempt() {
    // Where the machine has no writable cgroup v2 the worker refuses `cgroup`.
    let writable = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|m| drone_worker::contain::v2_mount(&m))
        .is_some_and(|(mount, _)| writable(&mount.join("cgroup.procs")));
    if !writable {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    nothing_escapes("cgroup").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_a_job_starts_outlives_it_with_the_process_group_and_subreaper() {
    nothing_escapes("process-group").await;
}

fn writable(path: &std::path::Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(path).is_ok()
}
