//! Infra failures are not test failures: an attempt its drone could not start, or one
//! lost with its drone, is retried on another drone up to `max_infra_retries`; a drone
//! cut off from the broker stops its own jobs (its lease) before the retry starts; a
//! broker that takes connections and then says nothing holds a worker up only for the
//! broker timeout.

use autotest_tests::proxy::Proxy;
use autotest_tests::world::read;
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attempt_the_drone_cannot_start_is_retried_elsewhere_and_fails_as_infra_after_the_retries(
) {
    let mut world = World::builder()
        .drone("drone1", 2)
        .drone("drone2", 2)
        .config("SCHEDULER", "max_infra_retries", "2")
        .without_workers()
        .start()
        .await;
    // drone1 cannot start Autoserv: its supervisor is missing.
    world
        .start_worker_with("drone1", |_| {}, "/nonexistent/autoserv-supervisor".into())
        .await;
    world.wait_for_drone("drone1", "ok").await;
    world.create_hosts(&["host1", "host2"]).await;

    // With no other drone, every retry lands on drone1 again until none are left.
    let doomed = world.submit("doomed", "true\n", &["host1"]).await;
    let job = world.wait_for_jobs(&[doomed], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Failed", "{job:?}");
    assert_eq!(entry.failure_kind.as_deref(), Some("infra"), "{entry:?}");
    assert_eq!(entry.infra_retries, 2, "{entry:?}");
    assert_eq!(entry.attempt, 3, "first attempt and two retries: {entry:?}");
    assert_eq!(entry.exit_code, None);
    let reasons: Vec<&str> = entry.history.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(reasons, ["infra-failure"; 3], "{:?}", entry.history);
    assert!(
        entry
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.contains("could not start Autoserv")),
        "{entry:?}"
    );
    let host = world.api(|c| c.hosts()).await.unwrap();
    assert!(
        host.iter().all(|h| h.status == "Ready"),
        "hosts freed: {host:?}"
    );

    // With a healthy drone beside it, the retry goes there and the job completes.
    world.start_worker("drone2").await;
    world.wait_for_drone("drone2", "ok").await;
    let saved = world
        .submit("saved", "echo ran > out.txt\n", &["host2"])
        .await;
    let job = world.wait_for_jobs(&[saved], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:?}");
    assert_eq!(entry.drone.as_deref(), Some("drone2"));
    assert_eq!(entry.infra_retries, 1, "{entry:?}");
    assert_eq!(
        entry.failure_kind, None,
        "a completed entry is no failure: {entry:?}"
    );
    assert_eq!(entry.history.len(), 1, "{:?}", entry.history);
    assert_eq!(entry.history[0].drone.as_deref(), Some("drone1"));
    assert_eq!(
        read(
            &world
                .results_dir()
                .join(format!("{saved}-tester/host2/out.txt"))
        ),
        "ran\n"
    );
    world.stop().await;
}

/// Starts `drone`'s worker with its broker connections through a relay the test
/// controls, and waits until the scheduler sees the drone.
async fn worker_behind_proxy(world: &mut World, drone: &str) -> Proxy {
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let via_proxy = world
        .amqp_url
        .replace("127.0.0.1:5672", &proxy.addr().to_string());
    world
        .start_worker_with(
            drone,
            |c| c.broker.url = common::config::Secret::new(via_proxy),
            autotest_tests::binary("autoserv-supervisor"),
        )
        .await;
    world.wait_for_drone(drone, "ok").await;
    proxy
}

/// Nanosecond timestamps the control file logged, as (event, drone dir, time).
fn runs(path: &std::path::Path) -> Vec<(String, String, u128)> {
    read(path)
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let event = parts.next().unwrap().to_string();
            let dir = parts.next().unwrap().to_string();
            let at = parts.next().unwrap().parse().unwrap();
            (event, dir, at)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drone_cut_off_from_the_broker_stops_its_job_before_the_retry_runs_elsewhere() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .drone("drone2", 2)
        .config("SCHEDULER", "drone_timeout_sec", "3")
        .without_workers()
        .start()
        .await;
    let proxy = worker_behind_proxy(&mut world, "drone1").await;
    world.create_hosts(&["host1"]).await;
    let dir = world.dir.display().to_string();
    let control = format!(
        "log() {{ echo \"$1 $PWD $(date +%s%N)\" >> {dir}/runs.log; }}\n\
         trap 'log stopped; exit 143' TERM\n\
         log started\n\
         pwd > where.txt\n\
         while [ ! -e {dir}/release ]; do sleep 0.05; done\n\
         log ended\n"
    );
    let id = world
        .submit("outlives its drone", &control, &["host1"])
        .await;
    world
        .wait_until(&[id], MINUTE, "Running on drone1", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    world.start_worker("drone2").await;
    world.wait_for_drone("drone2", "ok").await;

    proxy.cut();
    let job = world
        .wait_until(&[id], MINUTE, "Running again on drone2", |j| {
            let e = &j[0].entries[0];
            e.status == "Running" && e.drone.as_deref() == Some("drone2")
        })
        .await
        .remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.attempt, 2, "{entry:?}");
    assert_eq!(entry.infra_retries, 1);
    assert!(
        entry.history[0].event == "infra-failure" && entry.history[0].detail.contains("lost"),
        "{:?}",
        entry.history
    );
    let drones = world.api(|c| c.drones()).await.unwrap();
    assert!(
        drones
            .iter()
            .any(|d| d.name == "drone1" && d.status == "lost"),
        "{drones:?}"
    );
    // The first attempt was stopped by drone1's own lease before the retry started.
    // Running is recorded once the retry's Autoserv is spawned, which can be before
    // its first line is written.
    let runs_log = world.dir.join("runs.log");
    world
        .wait_for(
            || {
                runs(&runs_log)
                    .iter()
                    .any(|(e, d, _)| e == "started" && d.contains("/drone-drone2/"))
            },
            "drone2's attempt logs its start",
        )
        .await;
    let log = runs(&runs_log);
    let on = |drone: &str, event: &str| {
        log.iter()
            .find(|(e, d, _)| e == event && d.contains(&format!("/drone-{drone}/")))
            .map(|(_, _, t)| *t)
    };
    let stopped = on("drone1", "stopped").expect("drone1's attempt was stopped");
    let retried = on("drone2", "started").expect("drone2's attempt started");
    assert!(
        stopped < retried,
        "the old attempt still ran when the retry started: {log:?}"
    );

    world.release();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].drone.as_deref(), Some("drone2"));

    // drone1 comes back: its report about attempt 1 goes into the history only, and
    // what attempt 1 left is set aside beside the entry's results.
    proxy.restore();
    let job = world
        .wait_until(&[id], MINUTE, "drone1's stale report", |j| {
            j[0].entries[0]
                .history
                .iter()
                .any(|h| h.event == "stale-report" && h.drone.as_deref() == Some("drone1"))
        })
        .await
        .remove(0);
    assert_eq!(job.entries[0].status, "Completed", "unchanged: {job:?}");
    let stale = job.entries[0]
        .history
        .iter()
        .find(|h| h.event == "stale-report")
        .unwrap();
    assert_eq!(stale.attempt, 1);
    assert!(stale.detail.contains("infra_failure"), "{stale:?}");
    let results = world.results_dir().join(format!("{id}-tester"));
    assert!(
        read(&results.join("host1/where.txt")).contains("/drone-drone2/"),
        "the entry's results are the retry's"
    );
    assert!(
        read(&results.join("host1.attempt-1/where.txt")).contains("/drone-drone1/"),
        "the lost attempt's results are kept beside them"
    );
    world.stop().await;
}

/// RabbitMQ restarting can take a connection and answer nothing more for a while; a
/// worker that reconnected into that silence used to wait for ever, with its reports
/// stuck behind it, until its lease expired (seen once in five runs of the broker
/// restart test). Now each step of setting up a connection has the broker timeout: the
/// worker gives up on the silent connections and connects again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reconnecting_into_a_silent_broker_gives_up_and_connects_again() {
    let mut world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let proxy = worker_behind_proxy(&mut world, "drone1").await;
    world.create_hosts(&["host1"]).await;

    // The worker's consumer connection reconnects at once, its reporter at the next
    // heartbeat: both into connections the broker has stopped answering.
    proxy.silence();
    world
        .wait_for(
            || proxy.silenced() >= 2,
            "the worker's consumer and reporter reconnected into the silence",
        )
        .await;
    proxy.restore();
    let id = world
        .submit("after the silence", "echo ok > out.txt\n", &["host1"])
        .await;
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].drone.as_deref(), Some("drone1"));
    assert_eq!(
        read(
            &world
                .results_dir()
                .join(format!("{id}-tester/host1/out.txt"))
        ),
        "ok\n"
    );
    world.wait_for_drone("drone1", "ok").await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_wait_on_the_drone_while_the_results_host_is_unreachable() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    let mut sshd = autotest_tests::sshd::Sshd::start(&world.dir.join("sshd"));
    world.start_worker_pushing_to("drone1", &sshd).await;
    world.create_hosts(&["host1"]).await;

    // A push over SSH works while the results host is up.
    let first = world
        .submit("before", "echo first > out.txt\n", &["host1"])
        .await;
    assert_eq!(
        world.wait_for_jobs(&[first], MINUTE).await[0].status,
        "Completed"
    );
    let results = world.results_dir();
    assert_eq!(
        read(&results.join(format!("{first}-tester/host1/out.txt"))),
        "first\n"
    );

    sshd.stop();
    let id = world
        .submit("during", "echo second > out.txt\n", &["host1"])
        .await;
    world
        .wait_until(&[id], MINUTE, "Gathering", |j| {
            j[0].entries[0].status == "Gathering"
        })
        .await;
    // Several push attempts fail (they are retried every second at most); the entry
    // stays Gathering and the drone keeps the results.
    let local = world
        .dir
        .join(format!("drone-drone1/{id}-tester/host1/out.txt"));
    // The entry says why it waits: an infra matter, not the test.
    let job = world
        .wait_until(&[id], MINUTE, "push failure reported", |j| {
            j[0].entries[0].failure_kind.as_deref() == Some("infra")
        })
        .await
        .remove(0);
    let entry = &job.entries[0];
    assert!(
        entry
            .failure_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("results not pushed yet")),
        "{entry:?}"
    );
    assert!(entry.history.iter().any(|h| h.event == "push-failing"));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let job = world.job(id).await;
        assert_eq!(job.entries[0].status, "Gathering", "{job:?}");
        assert_eq!(read(&local), "second\n", "the drone keeps its copy");
    }
    assert!(!results.join(format!("{id}-tester")).exists());

    sshd.start_again();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].failure_kind, None, "completed: no failure");
    assert_eq!(
        read(&results.join(format!("{id}-tester/host1/out.txt"))),
        "second\n"
    );
    assert_eq!(
        read(&local),
        "second\n",
        "nothing deleted on the drone before the results host had it"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_attempt_on_a_host_named_near_the_limit_is_set_aside_and_its_drone_drains() {
    let mut world = World::builder()
        .drone("drone1", 1)
        .drone("drone2", 1)
        .config("SCHEDULER", "drone_timeout_sec", "3")
        .without_workers()
        .start()
        .await;
    let proxy = worker_behind_proxy(&mut world, "drone1").await;
    // 253 bytes: `<host>.attempt-1` does not fit in a file name.
    let host = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(host.len(), 253);
    world.create_hosts(&[host.as_str()]).await;
    let dir = world.dir.display().to_string();
    let control = format!("pwd > where.txt\nwhile [ ! -e {dir}/release ]; do sleep 0.05; done\n");
    let id = world.submit("long host", &control, &[host.as_str()]).await;
    world
        .wait_until(&[id], MINUTE, "Running on drone1", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    world.start_worker("drone2").await;
    world.wait_for_drone("drone2", "ok").await;
    proxy.cut();
    world
        .wait_until(&[id], MINUTE, "Running again on drone2", |j| {
            let e = &j[0].entries[0];
            e.status == "Running" && e.drone.as_deref() == Some("drone2")
        })
        .await;
    world.release();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    // drone1 comes back: it sets its attempt's results aside under a name that fits,
    // pushes them and reports (stale: the entry moved on).
    proxy.restore();
    world
        .wait_until(&[id], MINUTE, "drone1's stale report", |j| {
            j[0].entries[0]
                .history
                .iter()
                .any(|h| h.event == "stale-report" && h.drone.as_deref() == Some("drone1"))
        })
        .await;
    let results = world.results_dir().join(format!("{id}-tester"));
    let aside: Vec<String> = std::fs::read_dir(&results)
        .expect("the job's results")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".attempt-1"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        aside[0].len() <= 255 && aside[0].starts_with("aaaa"),
        "{aside:?}"
    );
    assert!(
        read(&results.join(&aside[0]).join("where.txt")).contains("/drone-drone1/"),
        "the lost attempt's results are kept beside the retry's"
    );
    // Nothing left on drone1: its drain ends.
    tokio::time::timeout(MINUTE, world.stop_worker("drone1"))
        .await
        .expect("drone1 drains");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_to_a_worker_whose_broker_is_unreachable_stops_it_without_a_panic() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    // A "broker" whose connections hang: a listener that never accepts, with its
    // accept queue full, so the kernel drops further SYNs (as for a broker whose
    // machine is down) and every connection attempt waits.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..3 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let unreachable = format!("amqp://guest:guest@{addr}/{}", world.vhost);
    for round in 0..3 {
        let log_path = world.dir.join(format!("worker-{round}.log"));
        let log = std::fs::File::create(&log_path).expect("log");
        let mut worker = tokio::process::Command::new(autotest_tests::binary("drone-worker"))
            .arg("--config")
            .arg(&world.config_path)
            .args(["--name", "drone1"])
            .env("AUTOTEST_DRONE_RESULTS_DIR", world.dir.join("drone-drone1"))
            .env("AUTOTEST_BROKER_URL", &unreachable)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start drone-worker");
        // A first attempt timed out; the next one is waiting when SIGTERM comes.
        world
            .wait_for(
                || read(&log_path).contains("lost the broker, reconnecting"),
                "the worker trying to reach the broker",
            )
            .await;
        let pid = worker.id().expect("pid").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = tokio::time::timeout(MINUTE, worker.wait())
            .await
            .expect("the worker stops within a minute")
            .expect("wait");
        let log = read(&log_path);
        assert!(
            !log.contains("panicked") && !log.contains("Task did not complete"),
            "round {round}: {log}"
        );
        assert!(status.success(), "round {round}: {status:?}\n{log}");
    }
    drop(fillers);
    world.stop().await;
}
