//! Hosts and drones changed at run time: locks, labels, enable/disable, capacity.
//! "Gets nothing new" is shown without hoping a sleep was long enough: after the
//! change, another job runs to completion, so the event-driven dispatcher has had its
//! chance, and the held-back entry must still be Queued.

use autotest_tests::World;
use scheduler::api::JobView;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn entry_status(job: &JobView) -> &str {
    job.entries[0].status.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_host_gets_no_new_work_while_its_running_entry_finishes() {
    let world = World::builder().drone("drone1", 4).start().await;
    world.create_hosts(&["host1", "host2"]).await;
    let running = world.start_blocking("running", "host1").await.id;
    let out = world
        .atest(&["host", "lock", "host1", "--reason", "cable swap"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let held = world.submit("held back", "true\n", &["host1"]).await;
    world.release();
    assert_eq!(
        world.wait_for_jobs(&[running], MINUTE).await[0].status,
        "Completed"
    );
    let other = world.submit("elsewhere", "true\n", &["host2"]).await;
    world.wait_for_jobs(&[other], MINUTE).await;
    assert_eq!(
        entry_status(&world.job(held).await),
        "Queued",
        "a locked host got new work"
    );

    let page: serde_json::Value =
        serde_json::from_slice(&world.atest(&["host", "list", "--json"]).await.stdout).unwrap();
    let hosts = &page["hosts"];
    assert_eq!(hosts[0]["locked"], true);
    assert_eq!(hosts[0]["lock_reason"], "cable swap");
    assert_eq!(hosts[0]["locked_by"], "tester", "who locked it");
    assert!(world
        .atest(&["host", "unlock", "host1"])
        .await
        .status
        .success());
    assert_eq!(
        world.wait_for_jobs(&[held], MINUTE).await[0].status,
        "Completed"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disabled_drone_gets_no_new_work_while_its_running_entry_finishes() {
    let world = World::builder()
        .drone("drone1", 1)
        .drone("drone2", 1)
        .start()
        .await;
    world
        .create_hosts(&["host1", "host2", "host3", "host4"])
        .await;
    let first = world.start_blocking("first", "host1").await;
    let busy = first.entries[0].drone.clone().unwrap();
    let first = first.id;
    let out = world.atest(&["drone", "disable", &busy]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut later = Vec::new();
    for host in ["host2", "host3", "host4"] {
        later.push(world.submit("later", "true\n", &[host]).await);
    }
    for job in world.wait_for_jobs(&later, MINUTE).await {
        assert_ne!(
            job.entries[0].drone.as_deref(),
            Some(busy.as_str()),
            "a disabled drone got new work"
        );
    }
    world.release();
    let first = &world.wait_for_jobs(&[first], MINUTE).await[0];
    assert_eq!(first.status, "Completed");
    assert_eq!(first.entries[0].drone.as_deref(), Some(busy.as_str()));
    let drones: serde_json::Value =
        serde_json::from_slice(&world.atest(&["drone", "list", "--json"]).await.stdout).unwrap();
    let row = drones
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == busy.as_str())
        .unwrap();
    assert_eq!(row["enabled"], false);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_capacity_takes_effect_at_once_without_a_restart() {
    let world = World::builder()
        .drone("drone1", 1)
        .worker_max_processes(10)
        .start()
        .await;
    let hosts = ["h1", "h2", "h3", "h4"];
    world.create_hosts(&hosts).await;
    let mut ids = Vec::new();
    for host in hosts {
        ids.push(
            world
                .submit("blocking", &world.blocking_control(), &[host])
                .await,
        );
    }
    let running = |jobs: &[JobView]| jobs.iter().filter(|j| entry_status(j) == "Running").count();
    world
        .wait_until(&ids, MINUTE, "one Running", |j| running(j) == 1)
        .await;
    let out = world.atest(&["drone", "set-capacity", "drone1", "3"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jobs = world
        .wait_until(&ids, MINUTE, "three Running", |j| running(j) == 3)
        .await;
    assert_eq!(
        jobs.iter().filter(|j| entry_status(j) == "Queued").count(),
        1
    );
    let drones: serde_json::Value =
        serde_json::from_slice(&world.atest(&["drone", "list", "--json"]).await.stdout).unwrap();
    assert_eq!(drones[0]["capacity"], 3);
    assert_eq!(drones[0]["running"], 3);
    assert_eq!(
        drones[0]["queued"], 0,
        "nothing waits in the drone's RabbitMQ queue"
    );
    world.release();
    world.wait_for_jobs(&ids, MINUTE).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn labels_are_created_added_and_removed() {
    let world = World::builder().drone("drone1", 1).start().await;
    assert!(world
        .atest(&["label", "create", "x86"])
        .await
        .status
        .success());
    let again = world.atest(&["label", "create", "x86"]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert!(world
        .atest(&["host", "create", "host1", "--label", "x86"])
        .await
        .status
        .success());
    let out = world
        .atest(&["host", "label", "host1", "--add", "gpu", "--remove", "x86"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: serde_json::Value =
        serde_json::from_slice(&world.atest(&["host", "list", "--json"]).await.stdout).unwrap();
    let hosts = &page["hosts"];
    assert_eq!(hosts[0]["labels"], serde_json::json!(["gpu"]));
    let labels: serde_json::Value =
        serde_json::from_slice(&world.atest(&["label", "list", "--json"]).await.stdout).unwrap();
    assert_eq!(
        labels,
        serde_json::json!([{"name": "gpu"}, {"name": "x86"}])
    );
    let unknown = world.atest(&["host", "lock", "nosuchhost"]).await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown host: nosuchhost"));
    world.stop().await;
}

async fn drone_status(world: &World, name: &str) -> String {
    let out = world.atest(&["drone", "list", "--json"]).await;
    let drones: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = drones
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .cloned()
        .unwrap();
    row["status"].as_str().unwrap().to_string()
}

async fn wait_status(world: &World, name: &str, want: &str) {
    let deadline = std::time::Instant::now() + MINUTE;
    while drone_status(world, name).await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_drone_is_shown_lost_and_gets_no_new_work_until_it_is_heard_again() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .drone("drone2", 2)
        .config("SCHEDULER", "drone_timeout_sec", "2")
        .start()
        .await;
    world.create_hosts(&["h1", "h2", "h3", "h4"]).await;
    wait_status(&world, "drone2", "ok").await;
    world.stop_worker("drone2").await;
    wait_status(&world, "drone2", "lost").await;
    let mut ids = Vec::new();
    for host in ["h1", "h2", "h3", "h4"] {
        ids.push(world.submit("while lost", "true\n", &[host]).await);
    }
    for job in world.wait_for_jobs(&ids, MINUTE).await {
        assert_eq!(
            job.entries[0].drone.as_deref(),
            Some("drone1"),
            "a lost drone got new work"
        );
    }
    world.start_worker("drone2").await;
    wait_status(&world, "drone2", "ok").await;
    assert!(world
        .atest(&["drone", "disable", "drone1"])
        .await
        .status
        .success());
    assert_eq!(drone_status(&world, "drone1").await, "disabled");
    let back = world.submit("back", "true\n", &["h1"]).await;
    let job = &world.wait_for_jobs(&[back], MINUTE).await[0];
    assert_eq!(job.entries[0].drone.as_deref(), Some("drone2"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_runs_only_on_the_drones_of_its_drone_set() {
    let world = World::builder()
        .drone("drone1", 1)
        .drone("drone2", 2)
        .drone("drone3", 2)
        .config("SCHEDULER", "default_drone_set_name", "rest")
        .start()
        .await;
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(world
        .atest(&["drone-set", "create", "one", "--drones", "drone1"])
        .await);
    ok(world
        .atest(&["drone-set", "create", "rest", "--drones", "drone2,drone3"])
        .await);
    let refused = world
        .atest(&["drone-set", "create", "bad", "--drones", "drone1,nosuch"])
        .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown drone: nosuch"));
    let again = world
        .atest(&["drone-set", "create", "one", "--drones", "drone2"])
        .await;
    assert!(!again.status.success(), "a drone set is created once");
    let sets: serde_json::Value =
        serde_json::from_slice(&ok(world.atest(&["drone-set", "list", "--json"]).await).stdout)
            .unwrap();
    assert_eq!(
        sets,
        serde_json::json!([
            {"name": "one", "drones": ["drone1"]},
            {"name": "rest", "drones": ["drone2", "drone3"]},
        ])
    );
    world.create_hosts(&["host1", "host2", "host3"]).await;
    std::fs::write(world.dir.join("true.ctl"), "true\n").unwrap();
    let unknown = world
        .atest(&[
            "job",
            "create",
            "--name",
            "x",
            "--control-file",
            "true.ctl",
            "--hosts",
            "host1",
            "--drone-set",
            "nosuch",
        ])
        .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown drone set: nosuch"));
    assert!(
        world.api(|c| c.jobs()).await.unwrap().is_empty(),
        "nothing created"
    );

    // drone1 (set "one") is full with a blocking job; the next job of set "one" waits
    // for it even though drone2 and drone3 are free...
    let submit_in = |name: &'static str, host: &'static str, set: &'static str| {
        let world = &world;
        async move {
            let out = ok(world
                .atest(&[
                    "job",
                    "create",
                    "--name",
                    name,
                    "--control-file",
                    "blocking.ctl",
                    "--hosts",
                    host,
                    "--drone-set",
                    set,
                ])
                .await);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<i64>()
                .unwrap()
        }
    };
    std::fs::write(world.dir.join("blocking.ctl"), world.blocking_control()).unwrap();
    let first = submit_in("first", "host1", "one").await;
    world
        .wait_until(&[first], MINUTE, "first Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    let second = submit_in("second", "host2", "one").await;
    // ...while a job of the default set ("rest") starts at once on drone2 or drone3.
    let other = world.submit("default set", "true\n", &["host3"]).await;
    let other = world.wait_for_jobs(&[other], MINUTE).await.remove(0);
    assert_eq!(other.drone_set.as_deref(), Some("rest"));
    assert!(
        matches!(other.entries[0].drone.as_deref(), Some("drone2" | "drone3")),
        "{other:?}"
    );
    let waiting = world.job(second).await;
    assert_eq!(entry_status(&waiting), "Queued", "{waiting:?}");
    assert_eq!(waiting.drone_set.as_deref(), Some("one"));

    world.release();
    for job in world.wait_for_jobs(&[first, second], MINUTE).await {
        assert_eq!(job.status, "Completed", "{job:?}");
        assert_eq!(job.entries[0].drone.as_deref(), Some("drone1"), "{job:?}");
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_worker_finishes_its_job_past_the_drone_timeout_and_gets_nothing_new() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .drone("drone2", 2)
        .config("SCHEDULER", "drone_timeout_sec", "2")
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["h1", "h2", "h3"]).await;
    let mut drone1 = world.spawn_worker_process("drone1");
    wait_status(&world, "drone1", "ok").await;
    // drone2 has not been heard from yet: the jobs go to drone1.
    let long = world.start_blocking("long", "h1").await;
    let doomed = world.start_blocking("to abort", "h3").await;
    for job in [&long, &doomed] {
        assert_eq!(job.entries[0].drone.as_deref(), Some("drone1"));
    }
    world.start_worker("drone2").await;
    wait_status(&world, "drone2", "ok").await;

    // SIGTERM, as `systemctl stop` or an upgrade sends: the worker drains.
    let pid = drone1.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_status(&world, "drone1", "stopping").await;
    let other = world.submit("meanwhile", "true\n", &["h2"]).await;
    let job = &world.wait_for_jobs(&[other], MINUTE).await[0];
    assert_eq!(
        job.entries[0].drone.as_deref(),
        Some("drone2"),
        "a stopping drone got new work"
    );

    // Aborts still reach a draining worker.
    let aborted = world.atest(&["job", "abort", &doomed.id.to_string()]).await;
    assert!(aborted.status.success(), "{aborted:?}");
    let job = world.wait_for_jobs(&[doomed.id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Aborted", "{job:#?}");

    // Well past drone_timeout_sec (and the scheduler's 5 s margin) the job still runs
    // on drone1, in its first attempt: the drain keeps the lease.
    let until = std::time::Instant::now() + Duration::from_secs(2 + 5 + 2);
    while std::time::Instant::now() < until {
        let job = world.job(long.id).await;
        let entry = &job.entries[0];
        assert_eq!(
            (entry.status.as_str(), entry.attempt, entry.drone.as_deref()),
            ("Running", 1, Some("drone1")),
            "{job:#?}"
        );
        assert_eq!(drone_status(&world, "drone1").await, "stopping");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    world.release();
    let job = world.wait_for_jobs(&[long.id], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:#?}");
    assert_eq!((entry.attempt, entry.failure_kind.as_deref()), (1, None));
    let exit = tokio::time::timeout(MINUTE, drone1.wait())
        .await
        .expect("the worker exits once drained")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    world.stop().await;
}
