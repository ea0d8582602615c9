//! Faults of the broker itself: a job longer than RabbitMQ's consumer_timeout, and a
//! RabbitMQ restart in the middle of a batch. These change the broker for everyone, so
//! they live in a test binary of their own (cargo runs test binaries one after the
//! other) and take turns within it.

use autotest_tests::certs::TestCa;
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

/// A TLS listener added to the running broker for a test, on 127.0.0.1 only, and
/// removed when dropped; its certificates from a [`TestCa`] (a client certificate from
/// the same CA for drone1, and a second CA that signed nothing of the broker's).
struct TlsListener {
    port: u16,
    ca: TestCa,
    client: (std::path::PathBuf, std::path::PathBuf),
}

impl TlsListener {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `client_certs`, the listener asks clients for a certificate signed by its
    /// CA and refuses those without one.
    fn start_with(client_certs: bool) -> Self {
        let ca = TestCa::new();
        let client = ca.client("drone1");
        // The broker runs as its own user: let it read the files.
        ca.readable_by_others();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let verify = if client_certs {
            ",{verify,verify_peer},{fail_if_no_peer_cert,true}"
        } else {
            ""
        };
        rabbitmqctl(&[
            "eval",
            &format!(
                "ssl:start(), rabbit_networking:start_ssl_listener({{\"127.0.0.1\", {port}}}, [{{cacertfile,\"{}\"}},{{certfile,\"{}\"}},{{keyfile,\"{}\"}}{verify}], 1).",
                ca.ca().display(),
                ca.server_cert().display(),
                ca.server_key().display()
            ),
        ]);
        Self { port, ca, client }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        rabbitmqctl(&[
            "eval",
            &format!(
                "rabbit_networking:stop_tcp_listener({{\"127.0.0.1\", {}}}).",
                self.port
            ),
        ]);
    }
}

/// A second `drone-worker` process for drone1 on `config` (its own results directory;
/// with `ca_file`, trusting that CA instead), its stderr in `<world>/<log>`.
fn second_worker(
    world: &World,
    config: &std::path::Path,
    ca_file: Option<std::path::PathBuf>,
    log: &str,
) -> std::process::Child {
    let mut command = Command::new(autotest_tests::binary("drone-worker"));
    command
        .arg("--config")
        .arg(config)
        .args(["--name", "drone1"])
        .env("AUTOTEST_DRONE_RESULTS_DIR", world.dir.join("other-drone"))
        .stderr(std::fs::File::create(world.dir.join(log)).unwrap());
    if let Some(ca_file) = ca_file {
        command.env("AUTOTEST_BROKER_CA_FILE", ca_file);
    }
    command.spawn().unwrap()
}

/// A job runs to Completed, and the management API shows the worker's and the
/// scheduler's connections as TLS ones.
async fn a_job_completes_over_tls(world: &World) {
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("over tls", "echo ok > out.txt\n", &["host1"])
        .await;
    assert_eq!(
        world.wait_for_jobs(&[id], MINUTE).await[0].status,
        "Completed"
    );
    world
        .wait_for(
            || {
                let tls = autotest_tests::broker::tls_connections(&world.vhost);
                tls.iter().any(|n| n == "drone-worker@drone1")
                    && tls.iter().any(|n| n.starts_with("autotest-scheduler@"))
            },
            "the worker and the scheduler connected over TLS",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_path_works_over_tls_and_a_certificate_from_another_ca_is_refused() {
    let _turn = SERIAL.lock().await;
    let _broker = autotest_tests::broker::exclusive();
    let listener = TlsListener::start();
    let world = World::builder()
        .drone("drone1", 2)
        .tls(listener.port, &listener.ca.ca())
        .start()
        .await;
    assert!(world.config.broker.url.expose().starts_with("amqps://"));
    a_job_completes_over_tls(&world).await;

    // A worker that trusts another CA does not connect, and says why.
    let mut worker = second_worker(
        &world,
        &world.config_path,
        Some(listener.ca.other_ca()),
        "untrusting.log",
    );
    world
        .wait_for(
            || read(&world.dir.join("untrusting.log")).contains("certificate"),
            "the worker refusing the broker's certificate",
        )
        .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_that_asks_for_client_certificates_gets_the_configured_one() {
    let _turn = SERIAL.lock().await;
    let _broker = autotest_tests::broker::exclusive();
    let listener = TlsListener::start_with(true);
    let (client_cert, client_key) = (
        listener.client.0.display().to_string(),
        listener.client.1.display().to_string(),
    );
    let world = World::builder()
        .drone("drone1", 2)
        .tls(listener.port, &listener.ca.ca())
        .config("BROKER", "client_cert", &client_cert)
        .config("BROKER", "client_key", &client_key)
        .start()
        .await;
    a_job_completes_over_tls(&world).await;

    // The same config without the client certificate: the broker refuses the worker.
    let config: String = read(&world.config_path)
        .lines()
        .filter(|l| !l.starts_with("client_cert") && !l.starts_with("client_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    let without = world.dir.join("without-cert.ini");
    std::fs::write(&without, config).unwrap();
    let mut worker = second_worker(&world, &without, None, "no-cert.log");
    world
        .wait_for(
            || read(&world.dir.join("no-cert.log")).contains("lost the broker"),
            "the worker without a certificate failing to connect",
        )
        .await;
    let tls = autotest_tests::broker::tls_connections(&world.vhost);
    assert_eq!(
        tls.iter().filter(|n| *n == "drone-worker@drone1").count(),
        1,
        "only the worker with a certificate is connected: {tls:?}"
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
    world.stop().await;
}
