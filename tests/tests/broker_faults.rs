//! Faults of the broker itself: a job longer than RabbitMQ's consumer_timeout, and a
//! RabbitMQ restart in the middle of a batch. These change the broker for everyone, so
//! they live in a test binary of their own (cargo runs test binaries one after the
//! other) and take turns within it.

use autotest_tests::world::read;
use autotest_tests::World;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use std::process::Command;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// One broker-wide change at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is installed (deploy/test.sh installs RabbitMQ)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Lowers the broker's consumer_timeout; puts the old value back when dropped.
struct ConsumerTimeout {
    previous: String,
}

impl ConsumerTimeout {
    fn lower_to(ms: u64) -> Self {
        let previous = rabbitmqctl(&["eval", "application:get_env(rabbit, consumer_timeout)."]);
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, consumer_timeout, {ms})."),
        ]);
        Self { previous }
    }
}

impl Drop for ConsumerTimeout {
    fn drop(&mut self) {
        // `{ok,1800000}` when it was set, `undefined` when it was not.
        let restore = match self.previous.strip_prefix("{ok,") {
            Some(rest) => format!(
                "application:set_env(rabbit, consumer_timeout, {}).",
                rest.trim_end_matches('}')
            ),
            None => "application:unset_env(rabbit, consumer_timeout).".to_string(),
        };
        rabbitmqctl(&["eval", &restore]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_running_longer_than_the_consumer_timeout_completes_normally() {
    let _turn = SERIAL.lock().await;
    let _broker = autotest_tests::broker::exclusive();
    let _timeout = ConsumerTimeout::lower_to(5000);
    let world = World::builder().drone("drone1", 2).start().await;

    // The lowered timeout is in force: a consumer that holds a delivery loses its channel.
    let connection = common::broker::connect(&world.amqp_url, "holds a delivery")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = "consumer-timeout-probe";
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    world.publish_raw("", queue, b"held").await;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let held = consumer
        .next()
        .await
        .expect("a delivery")
        .expect("delivered");
    let since = Instant::now();
    let closed = tokio::time::timeout(2 * MINUTE, consumer.next()).await;
    assert!(
        matches!(closed, Ok(None) | Ok(Some(Err(_)))),
        "the broker never timed out a consumer holding a delivery: {closed:?}"
    );
    let broker_took = since.elapsed();
    drop(held);
    let _ = connection.close(200, "probe done".into()).await;

    // A job that spans at least one of the broker's checks after the timeout: its
    // delivery was acked long ago, so the worker's consumer is never timed out.
    let consumer = || {
        autotest_tests::broker::connections(&world.vhost)
            .into_iter()
            .find(|(name, _)| name == "drone-worker@drone1")
            .expect("the worker's consumer connection")
    };
    let before = consumer();
    world.create_hosts(&["host1"]).await;
    let secs = broker_took.as_secs() + 10;
    eprintln!("the broker timed out a held delivery after {broker_took:?}; the job runs {secs} s");
    let id = world
        .submit(
            "outlives consumer_timeout",
            &format!("sleep {secs}\necho done > out.txt\n"),
            &["host1"],
        )
        .await;
    let job = world.wait_for_jobs(&[id], 3 * MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:?}");
    assert_eq!(entry.attempt, 1, "ran once, never redelivered: {entry:?}");
    assert_eq!(
        read(
            &world
                .results_dir()
                .join(format!("{id}-tester/host1/out.txt"))
        ),
        "done\n"
    );
    assert_eq!(
        consumer(),
        before,
        "the worker's consumer connection was never closed by the broker"
    );
    world.stop().await;
}

/// Waits until the broker takes connections and its management API answers again.
async fn wait_for_broker() {
    let deadline = Instant::now() + 2 * MINUTE;
    loop {
        let amqp = tokio::net::TcpStream::connect("127.0.0.1:5672")
            .await
            .is_ok();
        let api = tokio::net::TcpStream::connect("127.0.0.1:15672")
            .await
            .is_ok();
        if amqp && api {
            return;
        }
        assert!(Instant::now() < deadline, "RabbitMQ did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_mid_batch_loses_nothing_and_disturbs_no_running_job() {
    let _turn = SERIAL.lock().await;
    let _broker = autotest_tests::broker::exclusive();
    let world = World::builder()
        .drone("drone1", 3)
        .drone("drone2", 3)
        .start()
        .await;
    let hosts: Vec<String> = (1..=6).map(|i| format!("host{i}")).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    world.create_hosts(&host_refs).await;
    world.create_hosts(&["long"]).await;
    let long = world.start_blocking("spans the restart", "long").await;
    let dir = world.dir.display().to_string();
    let control =
        |i: usize| format!("echo job{i} >> {dir}/runs.log\nsleep 0.3\necho {i} > out.txt\n");
    let mut ids = Vec::new();
    for i in 0..24 {
        let id = world
            .submit(&format!("job{i}"), &control(i), &[host_refs[i % 6]])
            .await;
        ids.push(id);
    }
    world
        .wait_until(&ids, MINUTE, "a few done", |jobs| {
            jobs.iter().filter(|j| j.status == "Completed").count() >= 4
        })
        .await;

    rabbitmqctl(&["stop_app"]);
    // Jobs submitted while the broker is down wait in the database.
    for i in 24..30 {
        let id = world
            .submit(&format!("job{i}"), &control(i), &[host_refs[i % 6]])
            .await;
        ids.push(id);
    }
    rabbitmqctl(&["start_app"]);
    wait_for_broker().await;

    let jobs = world.wait_for_jobs(&ids, 3 * MINUTE).await;
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(job.status, "Completed", "job{i}: {job:?}");
        let out =
            world
                .results_dir()
                .join(format!("{}-tester/{}/out.txt", job.id, host_refs[i % 6]));
        assert_eq!(read(&out), format!("{i}\n"), "results of job{i}");
    }
    let mut ran: Vec<String> = read(&world.dir.join("runs.log"))
        .lines()
        .map(String::from)
        .collect();
    ran.sort();
    let mut expected: Vec<String> = (0..30).map(|i| format!("job{i}")).collect();
    expected.sort();
    assert_eq!(ran, expected, "every job ran exactly once");

    // The job running through the restart was not disturbed.
    let during = world.job(long.id).await;
    assert_eq!(during.entries[0].status, "Running", "{during:?}");
    world.release();
    let long = world.wait_for_jobs(&[long.id], MINUTE).await.remove(0);
    let entry = &long.entries[0];
    assert_eq!(entry.status, "Completed", "{long:?}");
    assert_eq!(entry.attempt, 1, "never restarted: {entry:?}");
    assert!(entry.history.is_empty(), "{:?}", entry.history);
    world.stop().await;
}
