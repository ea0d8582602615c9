//! The naive ceiling the benchmark compares the system with: the same broker path with
//! nothing recorded and one rsync per job.

use common::broker;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use std::path::{Path, PathBuf};
use std::time::Instant;

const STATUS_QUEUE: &str = "bench.ceiling.status";
const CONTROL: &str = "job.run_test('sleeptest', seconds=0)\n";

fn drone_queue(d: usize) -> String {
    format!("bench.ceiling.{d}")
}

/// Where the naive drones work and push.
#[derive(Clone)]
struct Dirs {
    work: PathBuf,
    dest: PathBuf,
}

/// The same path with nothing recorded and one rsync per job: `drones` consumers, each
/// running up to `capacity` jobs at once. Returns jobs per second.
pub async fn naive_ceiling(
    amqp: &str,
    dir: &Path,
    jobs: usize,
    drones: usize,
    capacity: usize,
) -> f64 {
    let dirs = Dirs {
        work: dir.join("ceiling"),
        dest: dir.join("ceiling-results"),
    };
    std::fs::create_dir_all(&dirs.dest).unwrap();
    let connection = broker::connect(amqp, "bench ceiling (publish)")
        .await
        .unwrap();
    let publish = broker::confirm_channel(&connection).await.unwrap();
    let queues: Vec<String> = (0..drones)
        .map(drone_queue)
        .chain([STATUS_QUEUE.to_string()])
        .collect();
    for queue in &queues {
        publish
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let consumers: Vec<_> = (0..drones)
        .map(|d| tokio::spawn(naive_drone(amqp.to_string(), d, capacity, dirs.clone())))
        .collect();
    let status_connection = broker::connect(amqp, "bench ceiling (status)")
        .await
        .unwrap();
    let status_channel = status_connection.create_channel().await.unwrap();
    let mut statuses = status_channel
        .basic_consume(
            STATUS_QUEUE.into(),
            "s".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let publisher = tokio::spawn(async move {
        publish_jobs(&publish, jobs, drones).await;
        connection
    });
    let mut received = 0;
    while received < jobs {
        let delivery = statuses.next().await.unwrap().unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        received += 1;
    }
    let elapsed = start.elapsed();
    let _ = publisher.await;
    for c in consumers {
        c.abort();
    }
    jobs as f64 / elapsed.as_secs_f64()
}

/// Publishes `jobs` messages round-robin over the drones' queues, then waits for every
/// confirm.
async fn publish_jobs(publish: &lapin::Channel, jobs: usize, drones: usize) {
    let mut confirms = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let queue = drone_queue(i % drones);
        confirms.push(
            publish
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    i.to_string().as_bytes(),
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap(),
        );
    }
    for confirm in confirms {
        assert!(confirm.await.unwrap().is_ack());
    }
}

/// One naive drone: consumes its queue, up to `capacity` jobs at once.
async fn naive_drone(amqp: String, d: usize, capacity: usize, dirs: Dirs) {
    let connection = broker::connect(&amqp, "bench ceiling (drone)")
        .await
        .unwrap();
    let channel = broker::confirm_channel(&connection).await.unwrap();
    channel
        .basic_qos(capacity as u16, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            drone_queue(d).as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    while let Some(Ok(delivery)) = consumer.next().await {
        tokio::spawn(naive_job(channel.clone(), delivery, dirs.clone()));
    }
}

/// One job: its directory and control file, /bin/true, one rsync, a confirmed status.
async fn naive_job(channel: lapin::Channel, delivery: lapin::message::Delivery, dirs: Dirs) {
    let n = String::from_utf8_lossy(&delivery.data).to_string();
    let job_dir = dirs.work.join(&n);
    std::fs::create_dir_all(&job_dir).unwrap();
    std::fs::write(job_dir.join("control"), CONTROL).unwrap();
    let out = std::fs::File::create(job_dir.join("autoserv.stdout")).unwrap();
    let err = std::fs::File::create(job_dir.join("autoserv.stderr")).unwrap();
    tokio::process::Command::new("/bin/true")
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .unwrap();
    let status = tokio::process::Command::new("rsync")
        .arg("-a")
        .arg("--relative")
        .arg(dirs.work.join(".").join(&n))
        .arg(format!("{}/", dirs.dest.display()))
        .status()
        .await
        .unwrap();
    assert!(status.success());
    broker::publish_confirmed(
        &channel,
        "",
        STATUS_QUEUE,
        n.as_bytes(),
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();
}
