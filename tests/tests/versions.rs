//! A scheduler and a worker that cannot read each other's messages refuse to work
//! together, each with a clear message, instead of dead-lettering every job.

use autotest_tests::World;
use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

/// Makes the vhost look as if a release speaking message schema `schema` set it up.
async fn claim_schema(world: &World, schema: u32) {
    let connection = common::broker::connect(&world.amqp_url, "other release")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_delete(
            common::broker::SCHEMA_EXCHANGE.into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        common::broker::SCHEMA_ARGUMENT.into(),
        AMQPValue::LongString(common::broker::schema_marker(schema).into()),
    );
    channel
        .exchange_declare(
            common::broker::SCHEMA_EXCHANGE.into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_and_a_scheduler_of_another_message_schema_refuse_to_start_and_say_why() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    // Once the scheduler consumes status it has declared everything it will.
    world
        .wait_for(
            || {
                autotest_tests::broker::queues(&world.vhost)
                    .iter()
                    .any(|q| q.name == common::broker::STATUS_QUEUE && q.consumers > 0)
            },
            "the scheduler consuming autotest.status",
        )
        .await;
    claim_schema(&world, 999).await;

    // The worker (the real binary) stops at once with the reason.
    let mut worker = world.spawn_worker_process("drone1");
    let waited = tokio::time::timeout(Duration::from_secs(30), worker.wait()).await;
    let log = autotest_tests::world::read(&world.dir.join("worker-drone1.log"));
    let status = waited
        .unwrap_or_else(|_| panic!("the worker kept retrying instead of stopping: {log}"))
        .unwrap();
    assert!(!status.success());
    assert!(
        log.contains("incompatible versions")
            && log.contains(&format!(
                "message schema {}",
                common::protocol::SCHEMA_VERSION
            )),
        "{log}"
    );

    // So does a scheduler started on that vhost.
    let scheduler = scheduler::Scheduler::start(world.config.clone())
        .await
        .unwrap();
    let (_trigger, shutdown) = common::shutdown::Shutdown::new();
    let error = tokio::time::timeout(Duration::from_secs(60), scheduler.run(shutdown))
        .await
        .expect("the scheduler stopped")
        .expect_err("the scheduler refuses to run");
    assert!(
        format!("{error:#}").contains("incompatible versions"),
        "{error:#}"
    );

    // The same schema is fine: a worker of this release starts and is heard from.
    claim_schema(&world, common::protocol::SCHEMA_VERSION).await;
    let mut worker = world.spawn_worker_process("drone1");
    world.wait_for_drone("drone1", "ok").await;
    worker.kill().await.unwrap();
    world.stop().await;
}
