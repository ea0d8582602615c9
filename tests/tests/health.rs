//! `GET /api/health`: 200 while the database answers and the status consumer is
//! connected to the broker; 503 naming what is down while either is unreachable, and
//! 200 again once it is back.

use autotest_tests::proxy::Proxy;
use autotest_tests::World;
use std::time::{Duration, Instant};

/// The health answer: its status and its JSON body.
async fn health(server: &str) -> (u16, serde_json::Value) {
    let server = server.to_string();
    let (status, _, body) =
        tokio::task::spawn_blocking(move || autotest_tests::http::get(&server, "/api/health"))
            .await
            .expect("health request");
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    (status, body)
}

/// Asks until the answer has `status`, for a minute at most; returns its body.
async fn wait_for_health(world: &World, status: u16, what: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (answered, body) = health(world.server()).await;
        if answered == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: health still answers {answered} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_names_the_broker_while_it_is_unreachable() {
    let mut world = World::builder().without_workers().start().await;
    wait_for_health(&world, 200, "with the broker up").await;
    // The same scheduler, reaching the broker through a relay the test cuts.
    world.stop_scheduler().await;
    let proxy = Proxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let via_proxy = world
        .config
        .broker
        .url
        .expose()
        .replace("127.0.0.1:5672", &proxy.addr().to_string());
    world.config.broker.url = common::config::Secret::new(via_proxy);
    world.start_scheduler().await;
    let body = wait_for_health(&world, 200, "through the relay").await;
    assert_eq!(body["status"], "ok", "{body}");

    proxy.cut();
    let body = wait_for_health(&world, 503, "with the broker cut off").await;
    assert_eq!(body["status"], "down", "{body}");
    assert!(body["down"]["broker"].is_string(), "{body}");
    assert!(body["down"].get("database").is_none(), "{body}");

    proxy.restore();
    wait_for_health(&world, 200, "with the broker back").await;
    world.stop().await;
}

/// A database that does not answer: MySQL at a closed port, and (SQLite being a file the
/// scheduler opens itself, with no server to lose) a SQLite file that cannot be opened.
/// The pools are made without connecting, as the scheduler's would be once its
/// database went away; the broker is not listened to either, and is named too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_database_while_it_is_unreachable() {
    use diesel_async::pooled_connection::bb8::Pool;
    use diesel_async::pooled_connection::AsyncDieselConnectionManager;
    use diesel_async::AsyncMysqlConnection;
    use scheduler::db::{Db, SqliteConn};

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mysql = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(format!(
        "mysql://autotest@127.0.0.1:{port}/autotest_web"
    ));
    let mysql = Db::Mysql(
        Pool::builder()
            .connection_timeout(Duration::from_secs(1))
            .build_unchecked(mysql),
    );
    let sqlite = AsyncDieselConnectionManager::<SqliteConn>::new("/nonexistent/autotest.db");
    let sqlite = Db::Sqlite(
        Pool::builder()
            .connection_timeout(Duration::from_secs(1))
            .build_unchecked(sqlite),
        Default::default(),
    );
    for db in [mysql, sqlite] {
        let health = scheduler::health::Health {
            db,
            listening: Default::default(),
        };
        let (status, body) = health.report().await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "down", "{body}");
        assert!(body["down"]["database"].is_string(), "{body}");
        assert!(body["down"]["broker"].is_string(), "{body}");
    }
}
