//! `deploy/rabbitmq-setup.sh`: the scheduler and each drone on a user of their own with
//! least privilege. The whole path works with them, and a drone's credentials can
//! neither read another drone's jobs nor publish jobs.

use autotest_tests::World;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::types::FieldTable;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_drone_has_its_own_least_privilege_user() {
    let world = World::builder()
        .drone("drone1", 2)
        .drone("drone2", 2)
        .least_privilege()
        .start()
        .await;
    world.create_hosts(&["host1", "host2"]).await;
    let ids = [
        world
            .submit("one", "echo one > out.txt\n", &["host1"])
            .await,
        world
            .submit("two", "echo two > out.txt\n", &["host2"])
            .await,
    ];
    for job in world.wait_for_jobs(&ids, MINUTE).await {
        assert_eq!(job.status, "Completed", "{job:?}");
    }
    // The programs connected as their own users, named for the management UI.
    // (The management API lists connections a few seconds after they open.)
    let vhost = world.vhost.clone();
    let expected = |users: &[String]| {
        users.contains(&format!("drone-worker@drone1 as {vhost}-drone-drone1"))
            && users.iter().any(|u| {
                u.starts_with("autotest-scheduler@")
                    && u.ends_with(&format!(" as {vhost}-scheduler"))
            })
    };
    let users = || -> Vec<String> {
        autotest_tests::broker::connections_with_users(&world.vhost)
            .into_iter()
            .map(|(name, user)| format!("{name} as {user}"))
            .collect()
    };
    world
        .wait_for(
            || expected(&users()),
            "connections named and on their own users",
        )
        .await;

    let drone1_url = world
        .worker_config("drone1")
        .broker
        .url
        .expose()
        .to_string();
    let connection = common::broker::connect(&drone1_url, "a nosy drone")
        .await
        .unwrap();
    // Another drone's job queue: refused.
    let channel = connection.create_channel().await.unwrap();
    let refused = channel
        .basic_consume(
            "autotest.drone.drone2".into(),
            "nosy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("ACCESS_REFUSED")),
        "drone1 could read drone2's jobs: {:?}",
        refused.map(|_| ())
    );
    // Publishing a job: refused (the channel is closed by the broker).
    let channel = connection.create_channel().await.unwrap();
    let published = channel
        .basic_publish(
            common::broker::JOBS_EXCHANGE.into(),
            "drone2".into(),
            BasicPublishOptions::default(),
            b"{}",
            Default::default(),
        )
        .await;
    let closed = async {
        let mut tries = 0;
        while channel.status().connected() && tries < 100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tries += 1;
        }
        !channel.status().connected()
    };
    assert!(
        published.is_err() || closed.await,
        "drone1 could publish a job"
    );
    // Its own queue is its own: a second consumer there is allowed.
    let channel = connection.create_channel().await.unwrap();
    let mut own = channel
        .basic_consume(
            "autotest.drone.drone1.control".into(),
            "own".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("a drone reads its own queues");
    assert!(futures_util::poll!(own.next()).is_pending());
    let _ = connection.close(200, "done".into()).await;

    // The definitions file for the management UI holds the vhost, users and rights.
    let definitions: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(world.dir.join("rabbitmq/definitions.json")).unwrap(),
    )
    .unwrap();
    let permissions = definitions["permissions"].as_array().unwrap();
    assert_eq!(permissions.len(), 3, "{permissions:?}");
    assert_eq!(definitions["vhosts"][0]["name"], world.vhost.as_str());
    world.stop().await;
}
