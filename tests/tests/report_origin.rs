//! Reports count only from the drone that holds the job: with a broker user per drone
//! (`deploy/rabbitmq-setup.sh`), a report another drone's user forges changes nothing
//! and is recorded as refused; a heartbeat dated a year ahead reclaims nothing; a
//! results URL outside `[SCHEDULER] drone_results_url` is not used; stored reasons are
//! bounded; a job message naming no hosts is dead-lettered.

use autotest_tests::http::get as get_with_location;
use autotest_tests::World;
use common::broker;
use common::protocol::{RunJob, StatusEvent, StatusReport, SCHEMA_VERSION};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// Publishes `report` on the status route over `url` (a drone's own broker URL),
/// stamped with `user_id` (RabbitMQ refuses one that is not the connection's user).
async fn publish_as(url: &str, reports: &[(StatusReport, Option<String>)]) {
    let connection = broker::connect(url, "a drone's credentials, misused")
        .await
        .expect("connect");
    let channel = broker::confirm_channel(&connection).await.expect("channel");
    for (report, user_id) in reports {
        let mut properties = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.as_str().into());
        }
        broker::publish_confirmed(
            &channel,
            broker::STATUS_EXCHANGE,
            broker::STATUS_ROUTING_KEY,
            &common::protocol::encode(report),
            properties,
        )
        .await
        .expect("the broker takes the report");
    }
    broker::close(&connection, "done").await;
}

fn report(drone: &str, sent_at: i64, events: Vec<StatusEvent>) -> StatusReport {
    StatusReport {
        schema: SCHEMA_VERSION,
        drone: common::names::DroneName::new(drone).unwrap(),
        events,
        sent_at,
        sender_version: "forged".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_forged_by_another_drones_user_or_a_future_heartbeat_changes_nothing() {
    let world = World::builder()
        .drone("drone1", 1)
        .drone("drone2", 1)
        .least_privilege()
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let job = world.start_blocking("held", "host1").await;
    let entry = job.entries[0].clone();
    let holder = entry.drone.clone().expect("a drone holds it");
    let other = if holder == "drone1" {
        "drone2"
    } else {
        "drone1"
    };
    let url_of = |drone: &str| world.worker_config(drone).broker.url.expose().to_string();
    let user_of = |drone: &str| broker::Endpoint::from(&url_of(drone)).user();
    let (entry_id, attempt) = (entry.id, entry.attempt);
    let done = vec![
        StatusEvent::Gathering {
            entry_id,
            attempt,
            exit_code: 0,
        },
        StatusEvent::Finished {
            entry_id,
            attempt,
            exit_code: 0,
            infra_failure: None,
            manifest: None,
            test_failure: None,
            test_parts: 0,
        },
    ];
    let now = common::time::now_micros();
    // The other drone's user, naming the holder: once stamped with its own user, once
    // without a user_id.
    publish_as(
        &url_of(other),
        &[
            (report(&holder, now, done.clone()), user_of(other)),
            (report(&holder, now, done.clone()), None),
        ],
    )
    .await;
    // The holder's own user: a heartbeat dated a year ahead that lists nothing, then
    // (as a marker: once it is recorded, the heartbeat before it on the queue was
    // handled) a report naming the other drone, which the holder's user may not send.
    let year = 365 * 24 * 3600 * 1_000_000_i64;
    let heartbeat = StatusEvent::Heartbeat {
        running: Vec::new(),
        results_url: None,
        stopping: false,
        free_mb: None,
        low_disk: false,
    };
    publish_as(
        &url_of(&holder),
        &[
            (
                report(&holder, now + year, vec![heartbeat]),
                user_of(&holder),
            ),
            (report(other, now, done.clone()), user_of(&holder)),
        ],
    )
    .await;
    let refused = |view: &api::JobView| {
        view.entries[0]
            .history
            .iter()
            .filter(|h| h.event == "refused-report")
            .count()
    };
    let view = world
        .wait_until(&[job.id], MINUTE, "6 refused records", |j| {
            refused(&j[0]) >= 6
        })
        .await
        .remove(0);
    let now_entry = &view.entries[0];
    assert_eq!(now_entry.status, "Running", "{now_entry:?}");
    assert_eq!(now_entry.attempt, attempt, "not reclaimed nor retried");
    assert_eq!(now_entry.drone.as_deref(), Some(holder.as_str()));
    assert!(
        !now_entry.history.iter().any(|h| h.event == "infra-failure"),
        "{:?}",
        now_entry.history
    );
    let other_user = user_of(other).unwrap();
    assert!(
        now_entry
            .history
            .iter()
            .any(|h| h.event == "refused-report" && h.detail.contains(&other_user)),
        "the refusal names the user that sent it: {:?}",
        now_entry.history
    );
    let hosts = world.api(|c| c.hosts()).await.expect("hosts");
    assert_eq!(hosts[0].status, "Running", "the host is still held");

    // The real drone's own reports still count: the job completes with its results.
    world.release();
    let job = &world.wait_for_jobs(&[job.id], MINUTE).await[0];
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].attempt, attempt);
    assert!(job.entries[0].manifest.is_some(), "{job:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_results_url_outside_drone_results_url_is_not_used() {
    // The worker serves on http://127.0.0.1:PORT, which this template does not allow.
    let world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "drone_results_url", "http://{drone}:8080")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let control = format!("echo early > early.txt\n{}", world.blocking_control());
    let id = world.submit("on the drone", &control, &["host1"]).await;
    world
        .wait_until(&[id], MINUTE, "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    // A heartbeat (with the worker's URL) recorded since it started.
    let beat = || async {
        world.api(|c| c.drones()).await.expect("drones")[0]
            .last_heartbeat
            .clone()
    };
    let first = beat().await;
    let deadline = std::time::Instant::now() + MINUTE;
    while beat().await == first {
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = world.server().to_string();
    let path = format!("/results/{id}-tester/host1/early.txt");
    let (status, location, _) =
        tokio::task::spawn_blocking(move || get_with_location(&server, &path))
            .await
            .unwrap();
    assert_ne!(status, 307, "redirected to {location:?}");
    assert_eq!(location, None);
    world.release();
    assert_eq!(
        world.wait_for_jobs(&[id], MINUTE).await[0].status,
        "Completed"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_reasons_are_cut_and_marked() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let long = "é".repeat(5000);
    world
        .api(move |c| c.lock_host("host1", Some(long)))
        .await
        .expect("locked");
    let hosts = world.api(|c| c.hosts()).await.expect("hosts");
    let reason = hosts[0].lock_reason.clone().expect("a reason");
    assert!(reason.len() <= common::text::MAX_REASON, "{}", reason.len());
    assert!(reason.starts_with("éé"));
    assert!(reason.ends_with(common::text::CUT_MARK), "{reason}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_message_naming_no_hosts_is_dead_lettered_and_never_run() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let job = RunJob {
        schema: SCHEMA_VERSION,
        entry_id: 999_999,
        job_id: 999_999,
        attempt: 1,
        drone: common::names::DroneName::new("drone1").unwrap(),
        hosts: Vec::new(),
        owner: common::names::Owner::new("mallory").unwrap(),
        job_name: "no hosts".into(),
        execution_subdir: common::names::HostName::new("host1").unwrap(),
        control_file: "touch /tmp/ran\n".into(),
        tasks: Default::default(),
        sender_version: "test".into(),
    };
    world
        .publish_raw(
            broker::JOBS_EXCHANGE,
            "drone1",
            &common::protocol::encode(&job),
        )
        .await;
    // A real job after it: once it completes, the message before it was handled.
    let id = world.submit("after", "echo fine\n", &["host1"]).await;
    assert_eq!(
        world.wait_for_jobs(&[id], MINUTE).await[0].status,
        "Completed"
    );
    let dead = world.drain_queue(broker::DEAD_LETTER_QUEUE).await;
    assert_eq!(
        dead.len(),
        1,
        "{:?}",
        dead.iter().map(|(_, h)| h).collect::<Vec<_>>()
    );
    assert!(
        dead[0].1[broker::REASON_HEADER].contains("names no hosts"),
        "{:?}",
        dead[0].1
    );
    let ran = world.dir.join("drone-drone1/999999-mallory/host1").exists();
    assert!(!ran, "Autoserv ran for a job with no hosts");
    world.stop().await;
}
