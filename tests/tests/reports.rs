//! Status reports on the wire: events raised while a report is in flight go together in
//! the next one, in order, and the scheduler records every event of a report.

use autotest_tests::broker as mq;
use autotest_tests::World;
use common::broker;
use common::names::DroneName;
use common::protocol::{StatusEvent, StatusReport};
use drone_worker::reporter::Reporter;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        mq::delete_vhost(&self.0);
    }
}

/// The reports waiting on the status queue, oldest first.
async fn status_reports(url: &str) -> Vec<StatusReport> {
    let connection = broker::connect(url, "test").await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(broker::STATUS_QUEUE.into(), BasicGetOptions::default())
        .await
        .expect("basic_get")
    {
        out.push(common::protocol::decode(&message.delivery.data).expect("a readable report"));
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    broker::close(&connection, "done").await;
    out
}

fn running(entry_id: i64) -> StatusEvent {
    StatusEvent::Running {
        entry_id,
        attempt: 1,
        pid: 100 + entry_id as u32,
    }
}

// One thread: the reporter's publishing task cannot start before all ten are raised.
#[tokio::test(flavor = "current_thread")]
async fn events_raised_together_go_in_one_report_in_order() {
    let name = autotest_tests::unique("autotest_reports").replace('_', "-");
    let url = mq::create_vhost(&name);
    let _vhost = Vhost(name);
    let dir = tempdir();
    let reporter = Reporter::new(&url, DroneName::new("drone1").unwrap(), dir.join("lease"));

    // Alone: one event, one report, confirmed before `send` returns.
    reporter.send(running(1)).await;
    let alone = status_reports(&url).await;
    assert_eq!(alone.len(), 1, "{alone:?}");
    assert_eq!(alone[0].events, vec![running(1)]);

    let raised: Vec<StatusEvent> = (2..12).map(running).collect();
    futures_util::future::join_all(raised.iter().cloned().map(|e| reporter.send(e))).await;
    let together = status_reports(&url).await;
    assert_eq!(
        together.len(),
        1,
        "ten events at once make one report: {together:?}"
    );
    assert_eq!(together[0].events, raised, "in the order they were raised");
    assert!(
        dir.join("lease").exists(),
        "a confirmed report renews the lease file"
    );
    reporter.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(autotest_tests::unique("autotest_reports"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_a_report_is_recorded_in_order() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    // Started and left running: the test reports its end itself, as the drone would.
    let job = world.start_blocking("several", "host1").await;
    let entry = &job.entries[0];
    let report = StatusReport {
        schema: common::protocol::SCHEMA_VERSION,
        drone: DroneName::new("drone1").unwrap(),
        events: vec![
            StatusEvent::Gathering {
                entry_id: entry.id,
                attempt: entry.attempt,
                exit_code: 3,
            },
            StatusEvent::Finished {
                entry_id: entry.id,
                attempt: entry.attempt,
                exit_code: 3,
                infra_failure: None,
                test_failure: None,
                manifest: None,
                test_parts: 0,
            },
        ],
        sent_at: 0,
        sender_version: "test".into(),
    };
    world.publish_status(&report).await;
    let done = world.wait_for_jobs(&[job.id], MINUTE).await.remove(0);
    assert_eq!(done.entries[0].status, "Failed", "{done:?}");
    assert_eq!(done.entries[0].exit_code, Some(3), "{done:?}");
    // The drone's own reports of that attempt now come after its end: recorded as
    // stale, changing nothing.
    world.release();
    let after = world
        .wait_until(
            &[job.id],
            MINUTE,
            "the drone's late Finished recorded as stale",
            |j| {
                j[0].entries[0]
                    .history
                    .iter()
                    .any(|h| h.event == "stale-report" && h.detail.contains("finished"))
            },
        )
        .await
        .remove(0);
    assert_eq!(after.entries[0].status, "Failed");
    assert_eq!(after.entries[0].exit_code, Some(3));
    world.stop().await;
}

/// What the status consumer relies on when its stream does not end with its
/// connection: `broker::gone` returns once the broker has closed the connection.
#[tokio::test]
async fn gone_notices_a_connection_the_broker_closed() {
    let name = autotest_tests::unique("autotest_gone").replace('_', "-");
    let url = mq::create_vhost(&name);
    let _vhost = Vhost(name.clone());
    let connection = broker::connect(&url, "gone test").await.expect("connect");
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), broker::gone(&connection))
            .await
            .is_err(),
        "an open connection is not gone"
    );
    // The management API lists a new connection within a few seconds.
    let deadline = std::time::Instant::now() + MINUTE;
    while mq::close_connections(&name) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection was never listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::timeout(Duration::from_secs(10), broker::gone(&connection))
        .await
        .expect("gone returns once the broker closed the connection");
}
