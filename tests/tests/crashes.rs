//! Crashes of a part while jobs run: nothing lost, nothing run twice.

use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_job_re_attaches_after_restart_and_the_job_runs_once() {
    let world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let runs = world.path("runs");
    let control = format!(
        "echo run >> \"{runs}\"\n{blocking}echo finished > out.txt\nexit 4\n",
        runs = runs.display(),
        blocking = world.blocking_control()
    );
    let mut worker = world.spawn_worker_process("drone1");
    let id = world.submit("survives", &control, &["host1"]).await;
    world
        .wait_until(&[id], MINUTE, "entry Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    worker.start_kill().expect("SIGKILL the worker");
    worker.wait().await.expect("worker gone");
    // Autoserv outlives the worker (its own process group); let it finish while no
    // worker runs, then restart the worker: it must pick the exit status up.
    world.release();
    let exit_file = world
        .path("drone-drone1")
        .join(format!("{id}-tester/host1/.autoserv-1.exit"));
    let deadline = std::time::Instant::now() + MINUTE;
    while !exit_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "Autoserv did not finish on its own"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _worker = world.spawn_worker_process("drone1");
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.entries[0].status, "Failed");
    assert_eq!(
        job.entries[0].exit_code,
        Some(4),
        "the real exit status, recorded by the supervisor"
    );
    assert_eq!(job.entries[0].attempt, 1, "not dispatched again");
    assert_eq!(
        autotest_tests::world::read(&runs),
        "run\n",
        "Autoserv ran exactly once"
    );
    let out = world
        .results_dir()
        .join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(
        autotest_tests::world::read(&out),
        "finished\n",
        "results pushed after the restart"
    );
    assert!(!world
        .results_dir()
        .join(format!("{id}-tester/host1/.autoserv-1.exit"))
        .exists());
    drop(_worker);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_worker_re_attaches_to_an_autoserv_still_running() {
    let world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let runs = world.path("runs");
    let control = format!(
        "echo run >> \"{}\"\n{}",
        runs.display(),
        world.blocking_control()
    );
    let mut worker = world.spawn_worker_process("drone1");
    let id = world.submit("survives", &control, &["host1"]).await;
    world
        .wait_until(&[id], MINUTE, "entry Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    worker.start_kill().expect("SIGKILL the worker");
    worker.wait().await.expect("worker gone");
    let _worker = world.spawn_worker_process("drone1");
    // The new worker has re-attached (its log says so) before the job may end.
    let log = world.path("worker-drone1.log");
    let deadline = std::time::Instant::now() + MINUTE;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("re-attaching")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted worker did not re-attach"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    world.release();
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    assert_eq!(job.entries[0].attempt, 1);
    assert_eq!(
        autotest_tests::world::read(&runs),
        "run\n",
        "Autoserv ran exactly once"
    );
    drop(_worker);
    world.stop().await;
}

fn duplicate_of(job: &scheduler::api::JobView, drone: &str, host: &str) -> Vec<u8> {
    let entry = &job.entries[0];
    common::protocol::encode(&common::protocol::RunJob {
        schema: common::protocol::SCHEMA_VERSION,
        entry_id: entry.id,
        job_id: job.id,
        attempt: entry.attempt,
        drone: common::names::DroneName::new(drone).unwrap(),
        hosts: vec![common::names::HostName::new(host).unwrap()],
        owner: common::names::Owner::new("tester").unwrap(),
        job_name: job.name.clone(),
        execution_subdir: common::names::HostName::new(host).unwrap(),
        control_file: "echo duplicate >> runs\n".into(),
        tasks: Default::default(),
        sender_version: "test".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_delivery_never_starts_a_second_autoserv() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let runs = world.path("runs");
    let control = format!(
        "echo run >> \"{}\"\n{}",
        runs.display(),
        world.blocking_control()
    );
    let id = world.submit("once", &control, &["host1"]).await;
    let jobs = world
        .wait_until(&[id], MINUTE, "entry Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    // As RabbitMQ would redeliver after a dropped connection: while it runs...
    let duplicate = duplicate_of(&jobs[0], "drone1", "host1");
    world
        .publish_raw(common::broker::JOBS_EXCHANGE, "drone1", &duplicate)
        .await;
    world.release();
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    // ...and after it finished.
    world
        .publish_raw(common::broker::JOBS_EXCHANGE, "drone1", &duplicate)
        .await;
    let witness = world.submit("witness", "true\n", &["host1"]).await;
    world.wait_for_jobs(&[witness], MINUTE).await;
    assert_eq!(
        autotest_tests::world::read(&runs),
        "run\n",
        "Autoserv ran once"
    );
    assert_eq!(world.job(id).await.entries[0].attempt, 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduler_killed_mid_batch_restarts_from_the_database_and_runs_nothing_twice() {
    let mut world = World::builder()
        .drone("drone1", 3)
        .drone("drone2", 3)
        .start()
        .await;
    let hosts = ["h1", "h2", "h3", "h4", "h5", "h6"];
    world.create_hosts(&hosts).await;
    let runs = world.path("runs");
    let mut ids = Vec::new();
    for i in 0..30 {
        let control = format!(
            "echo $AUTOSERV_LABEL >> \"{}\"\nsleep 0.1\n",
            runs.display()
        );
        ids.push(
            world
                .submit(&format!("job{i}"), &control, &[hosts[i % hosts.len()]])
                .await,
        );
    }
    // Kill it while entries are running, queued and finishing.
    world
        .wait_until(&ids, MINUTE, "some done", |jobs| {
            jobs.iter().filter(|j| j.status == "Completed").count() >= 5
        })
        .await;
    world.kill_scheduler().await;
    world.start_scheduler().await;
    let jobs = world.wait_for_jobs(&ids, 2 * MINUTE).await;
    for job in &jobs {
        assert_eq!(job.status, "Completed", "{job:?}");
    }
    let lines = autotest_tests::world::read(&runs);
    let mut names: Vec<&str> = lines.lines().collect();
    names.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("job{i}")).collect();
    expected.sort();
    assert_eq!(names, expected, "every job ran exactly once");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_status_report_from_an_older_attempt_changes_nothing() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let job = world.start_blocking("current", "host1").await;
    let entry = &job.entries[0];
    let stale = common::protocol::StatusReport {
        schema: common::protocol::SCHEMA_VERSION,
        drone: common::names::DroneName::new("drone1").unwrap(),
        events: vec![common::protocol::StatusEvent::Finished {
            entry_id: entry.id,
            attempt: entry.attempt - 1,
            exit_code: 7,
            infra_failure: None,
            test_failure: None,
            manifest: None,
            test_parts: 0,
        }],
        sent_at: 0,
        sender_version: "test".into(),
    };
    world.publish_status(&stale).await;
    // A later report on the same queue is applied after it: once it shows, the stale
    // one has been through the scheduler.
    world.create_hosts(&["host2"]).await;
    let witness = world.submit("witness", "true\n", &["host2"]).await;
    world.wait_for_jobs(&[witness], MINUTE).await;
    let after = world.job(job.id).await;
    assert_eq!(
        after.entries[0].status, "Running",
        "a stale Finished ended the entry"
    );
    assert_eq!(after.entries[0].exit_code, None);
    let history = &after.entries[0].history;
    assert!(
        history.len() == 1
            && history[0].event == "stale-report"
            && history[0].attempt == entry.attempt - 1
            && history[0].detail.contains("\"exit_code\":7"),
        "the stale report is recorded in the entry's history: {history:?}"
    );
    world.release();
    let done = &world.wait_for_jobs(&[job.id], MINUTE).await[0];
    assert_eq!(done.status, "Completed");
    assert_eq!(done.entries[0].exit_code, Some(0));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_serves_and_queues_jobs_while_the_broker_is_unreachable() {
    let dir = std::env::temp_dir().join(autotest_tests::unique("nobroker"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("global_config.ini");
    // Port 9 (discard) on loopback: nothing speaks AMQP there.
    let text = format!(
        "[AUTOTEST_WEB]\ndatabase: {}\n[SCHEDULER]\ndrones: drone1\nhttp_listen: 127.0.0.1:0\nresults_dir: {}\n[BROKER]\nurl: amqp://guest:guest@127.0.0.1:9/%2f\n",
        dir.join("autotest.db").display(),
        dir.join("results").display()
    );
    std::fs::write(&config, &text).unwrap();
    let config = common::config::Config::from_parts(&config, &text, std::iter::empty()).unwrap();
    let scheduler = scheduler::Scheduler::start(config)
        .await
        .expect("starts without a broker");
    let server = format!("http://{}", scheduler.local_addr());
    let token = scheduler::auth::add_user(scheduler.db(), "tester", true)
        .await
        .expect("admin created")
        .token;
    let (trigger, shutdown) = common::shutdown::Shutdown::new();
    let task = tokio::spawn(scheduler.run(shutdown));
    let job = tokio::task::spawn_blocking(move || {
        let client = scheduler::client::Client::new(&server).with_token(Some(token));
        client
            .create_host(&scheduler::api::CreateHost {
                name: "host1".into(),
                labels: vec![],
            })
            .unwrap();
        let id = client
            .create_job(&scheduler::api::CreateJob::new(
                "waits",
                "true\n",
                vec!["host1".into()],
                "tester",
            ))
            .unwrap();
        client.job(id).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(job.status, "Queued", "stored and waiting for the broker");
    trigger.trigger();
    task.await.unwrap().expect("stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_during_the_cleanup_after_a_job_re_attaches_to_it() {
    let world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let state = world.dir.join("hoststate");
    let hold = state.join("hold-cleanup-host1");
    std::fs::write(&hold, "").unwrap();
    let mut worker = world.spawn_worker_process("drone1");
    let id = world
        .submit_body(scheduler::api::CreateJob {
            reboot_after: Some("always".into()),
            ..scheduler::api::CreateJob::new(
                "cleaned after",
                "echo ran > out.txt\n",
                vec!["host1".into()],
                "tester",
            )
        })
        .await;
    // The job has run; the cleanup after it holds the host.
    let deadline = std::time::Instant::now() + MINUTE;
    while host_status(&world).await != "Cleaning" {
        assert!(std::time::Instant::now() < deadline, "host1 never Cleaning");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.start_kill().expect("SIGKILL the worker");
    worker.wait().await.expect("worker gone");
    let _worker = world.spawn_worker_process("drone1");
    // The restarted worker waits for the cleanup: the entry is not over before it.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let job = world.job(id).await;
        assert!(
            !matches!(job.entries[0].status.as_str(), "Completed" | "Failed"),
            "finished while its cleanup still ran: {job:?}"
        );
    }
    std::fs::remove_file(&hold).unwrap();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].attempt, 1);
    assert_eq!(
        autotest_tests::world::read(&state.join("tasks.log")),
        "cleanup host1\n",
        "the cleanup ran once"
    );
    let deadline = std::time::Instant::now() + MINUTE;
    while host_status(&world).await != "Ready" {
        assert!(std::time::Instant::now() < deadline, "host1 never Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.stop().await;
}

async fn host_status(world: &World) -> String {
    let hosts = world.api(|c| c.hosts().unwrap()).await;
    hosts
        .into_iter()
        .find(|h| h.name == "host1")
        .unwrap()
        .status
}
