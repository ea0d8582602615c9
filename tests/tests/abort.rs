//! `atest job abort`: queued entries end at once; running ones lose their process
//! group (SIGTERM, then SIGKILL after the grace period) and keep their results.

use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn alive(pid: &str) -> bool {
    pid.trim()
        .parse()
        .is_ok_and(drone_worker::supervise::is_alive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborting_a_queued_entry_ends_it_at_once_and_it_never_runs() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let first = world.start_blocking("first", "host1").await.id;
    let queued = world.submit("queued", "touch ran\n", &["host1"]).await;
    let out = world
        .atest(&[
            "job",
            "abort",
            &queued.to_string(),
            "--reason",
            "not needed",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = world.job(queued).await;
    assert_eq!(
        job.status, "Aborted",
        "aborted at once, not when a slot frees"
    );
    assert_eq!(job.entries[0].aborted_by.as_deref(), Some("tester"));
    assert!(job.entries[0].aborted_on.is_some());
    world.release();
    world.wait_for_jobs(&[first], MINUTE).await;
    // The host is free again: a later job on it runs, and the aborted one never did.
    let later = world.submit("later", "true\n", &["host1"]).await;
    world.wait_for_jobs(&[later], MINUTE).await;
    assert!(!world
        .results_dir()
        .join(format!("{queued}-tester"))
        .exists());
    assert_eq!(world.job(queued).await.entries[0].status, "Aborted");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborting_a_running_entry_kills_its_process_group_and_keeps_its_results() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "abort_grace_sec", "1")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    // Ignores SIGTERM (so does its child), so only the SIGKILL after the grace ends it.
    let control = "echo partial > out.txt\ntrap '' TERM\nsleep 600 &\necho $! > child.pid\necho $$ > shell.pid\nwait\n";
    let id = world.submit("stubborn", control, &["host1"]).await;
    let dir = world
        .path("drone-drone1")
        .join(format!("{id}-tester/host1"));
    let deadline = std::time::Instant::now() + MINUTE;
    // Written last, and read only once complete (the shell creates, then writes it).
    while !std::fs::read_to_string(dir.join("shell.pid")).is_ok_and(|s| s.ends_with('\n')) {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shell = std::fs::read_to_string(dir.join("shell.pid")).unwrap();
    let child = std::fs::read_to_string(dir.join("child.pid")).unwrap();
    assert!(alive(&shell) && alive(&child));
    let out = world.atest(&["job", "abort", &id.to_string()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Aborted");
    assert_eq!(
        job.entries[0].exit_code,
        Some(137),
        "killed by SIGKILL after the grace period"
    );
    assert_eq!(job.entries[0].aborted_by.as_deref(), Some("tester"));
    assert!(
        !alive(&shell) && !alive(&child),
        "the whole process group is gone"
    );
    let pushed = world
        .results_dir()
        .join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(
        autotest_tests::world::read(&pushed),
        "partial\n",
        "what it left is on the results host"
    );
    world.stop().await;
}

fn body(name: &str, control: &str, host: &str) -> scheduler::api::CreateJob {
    scheduler::api::CreateJob::new(name, control, vec![host.into()], "tester")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_past_its_max_runtime_is_aborted_by_the_system_within_seconds() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "abort_grace_sec", "1")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let mut long = body("too long", "echo started > out.txt\nsleep 600\n", "host1");
    long.max_runtime_secs = Some(2);
    let id = world.submit_body(long).await;
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    let entry = &job.entries[0];
    assert_eq!(job.status, "Aborted");
    assert_eq!(entry.aborted_by.as_deref(), Some("autotest_system"));
    let ran = common::time::parse_micros(entry.finished_on.as_deref().unwrap()).unwrap()
        - common::time::parse_micros(entry.started_on.as_deref().unwrap()).unwrap();
    assert!(
        (2_000_000..10_000_000).contains(&ran),
        "ran {ran} us for a 2 s limit"
    );
    let pushed = world
        .results_dir()
        .join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(autotest_tests::world::read(&pushed), "started\n");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_not_started_before_its_timeout_is_aborted_by_the_system() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let blocker = world.start_blocking("blocker", "host1").await.id;
    let mut waiting = body("waits", "touch ran\n", "host1");
    waiting.timeout_secs = Some(1);
    let id = world.submit_body(waiting).await;
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Aborted");
    assert_eq!(
        job.entries[0].aborted_by.as_deref(),
        Some("autotest_system")
    );
    assert!(job.entries[0].started_on.is_none(), "it never started");
    world.release();
    world.wait_for_jobs(&[blocker], MINUTE).await;
    world.stop().await;
}
