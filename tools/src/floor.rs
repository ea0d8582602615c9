//! The floor of one broker trip, as the scheduler and the workers make it: a
//! persistent, `mandatory` message published on a confirm channel of one connection to
//! a durable queue, received by a consumer on another connection (each lapin connection
//! has its own I/O thread, as each process does). Prints, one message at a time on an
//! idle broker: publish → delivery, publish → confirm, and a full round trip (a reply
//! published by the consumer, received by the first connection).

use crate::benchkit::summary;
use autotest_tests::broker as mq;
use common::broker;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use std::time::{Duration, Instant};

/// Measures `messages` trips one at a time and prints the figures.
pub async fn run(messages: usize) {
    let vhost = autotest_tests::unique("autotest_floor").replace('_', "-");
    let url = mq::create_vhost(&vhost);
    let a = broker::connect(&url, "floor-a").await.unwrap();
    let b = broker::connect(&url, "floor-b").await.unwrap();
    let a_out = broker::confirm_channel(&a).await.unwrap();
    let b_out = broker::confirm_channel(&b).await.unwrap();
    let a_in = a.create_channel().await.unwrap();
    let b_in = b.create_channel().await.unwrap();
    for q in ["ping", "pong"] {
        a_out
            .queue_declare(
                q.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let consume = |channel: &lapin::Channel, queue: &'static str| {
        let channel = channel.clone();
        async move {
            channel
                .basic_consume(
                    queue.into(),
                    format!("floor-{queue}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap()
        }
    };
    let mut pings = consume(&b_in, "ping").await;
    let mut pongs = consume(&a_in, "pong").await;
    let start = Instant::now();
    let stamp = move || start.elapsed().as_nanos() as u64;

    // The other side: answers each ping with a pong, as a worker answers a job with
    // its Running report.
    let answer = tokio::spawn(async move {
        let mut one_way = Vec::new();
        while let Some(Ok(delivery)) = pings.next().await {
            let sent: u64 = std::str::from_utf8(&delivery.data)
                .unwrap()
                .parse()
                .unwrap();
            one_way.push((stamp() - sent) as f64 / 1e6);
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            let properties = broker::json_properties("pong", "pong", "floor");
            broker::publish_confirmed(&b_out, "", "pong", &delivery.data, properties)
                .await
                .unwrap();
            if one_way.len() == messages {
                break;
            }
        }
        one_way
    });

    let mut confirm = Vec::new();
    let mut round_trip = Vec::new();
    for _ in 0..messages {
        let sent = stamp();
        let properties = broker::json_properties("ping", "ping", "floor");
        broker::publish_confirmed(&a_out, "", "ping", sent.to_string().as_bytes(), properties)
            .await
            .unwrap();
        confirm.push((stamp() - sent) as f64 / 1e6);
        let delivery = pongs.next().await.unwrap().unwrap();
        round_trip.push((stamp() - sent) as f64 / 1e6);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        // An idle system: let both sides settle between messages.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let one_way = answer.await.unwrap();
    println!("broker floor, {messages} messages one at a time (ms):");
    println!("{}", summary("publish → delivery", one_way));
    println!("{}", summary("publish → confirm", confirm));
    println!("{}", summary("round trip (ping → pong)", round_trip));
    broker::close(&a, "done").await;
    broker::close(&b, "done").await;
    mq::delete_vhost(&vhost);
}
