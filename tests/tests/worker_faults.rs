//! Faults inside the worker itself, injected on purpose (`AUTOTEST_WORKER_FAULT`, a
//! hook of debug builds only): an attempt whose task panics is reported as an infra
//! failure and retried, never left Running, and its worker goes on serving; a worker
//! whose essential task panics exits non-zero, naming it.
//!
//! A binary of its own: the fault is chosen through the process environment.

use autotest_tests::world::read;
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// Held while a fault is in the environment, so each test's fault reaches only the
/// worker it starts.
static ENVIRONMENT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attempt_that_panics_is_retried_and_its_worker_keeps_serving_other_jobs() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .config("SCHEDULER", "max_infra_retries", "2")
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["host1", "host2"]).await;
    let faulted = world
        .submit("faulted", "echo ran > out.txt\n", &["host1"])
        .await;
    let entry_id = world.job(faulted).await.entries[0].id;

    // The first attempt of the entry panics once Autoserv has exited.
    let chosen = ENVIRONMENT.lock().await;
    std::env::set_var(
        drone_worker::fault::VARIABLE,
        format!("panic-in:gather:{entry_id}"),
    );
    world.start_worker("drone1").await;
    std::env::remove_var(drone_worker::fault::VARIABLE);
    drop(chosen);

    // With no other drone, the retry lands on drone1 again, and completes.
    let job = world.wait_for_jobs(&[faulted], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:?}");
    assert_eq!(
        entry.attempt, 2,
        "the panicked attempt and its retry: {entry:?}"
    );
    assert_eq!(entry.infra_retries, 1, "{entry:?}");
    assert_eq!(entry.history.len(), 1, "{:?}", entry.history);
    let failure = &entry.history[0];
    assert_eq!(failure.event, "infra-failure", "{failure:?}");
    assert_eq!(failure.attempt, 1, "{failure:?}");
    assert!(failure.detail.contains("panicked"), "{failure:?}");
    assert_eq!(
        read(
            &world
                .results_dir()
                .join(format!("{faulted}-tester/host1/out.txt"))
        ),
        "ran\n"
    );

    // The same worker takes the next job.
    let next = world
        .submit("next", "echo next > out.txt\n", &["host2"])
        .await;
    let job = world.wait_for_jobs(&[next], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:?}");
    assert_eq!(entry.drone.as_deref(), Some("drone1"), "{entry:?}");
    assert_eq!(entry.infra_retries, 0, "{entry:?}");
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert!(
        hosts.iter().all(|h| h.status == "Ready"),
        "hosts freed: {hosts:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_process_whose_heartbeat_panics_exits_non_zero_within_seconds() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let chosen = ENVIRONMENT.lock().await;
    std::env::set_var(drone_worker::fault::VARIABLE, "panic-task:heartbeat");
    let mut worker = world.spawn_worker_process("drone1");
    std::env::remove_var(drone_worker::fault::VARIABLE);
    drop(chosen);
    let status = tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker exits within seconds")
        .expect("the worker's exit status");
    assert!(!status.success(), "{status}");
    let log = read(&world.path("worker-drone1.log"));
    assert!(log.contains("the heartbeat task panicked"), "{log}");
    world.stop().await;
}
