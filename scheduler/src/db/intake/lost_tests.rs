//! A lost drone's entries on a real (SQLite) database: an aborted entry in Gathering
//! ends, one not aborted is left to finish.

use super::*;
use crate::db::Db;
use diesel_async::SimpleAsyncConnection;

async fn execute(db: &Db, sql: &str) {
    let Db::Sqlite(pool, _) = db else {
        unreachable!("opened as SQLite")
    };
    pool.get().await.unwrap().batch_execute(sql).await.unwrap();
}

async fn status_of(db: &Db, id: i64) -> String {
    current(db, id).await.unwrap().unwrap().1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_drones_aborted_entry_in_gathering_ends_aborted() {
    let dir = std::env::temp_dir().join(format!(
        "autotest-lost-gathering-{}-{}",
        std::process::id(),
        common::time::now_micros()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[AUTOTEST_WEB]\ndatabase: {}\n[SCHEDULER]\ndrones: drone1\n",
        dir.join("autotest.db").display()
    );
    let config =
        common::config::Config::from_parts(&dir.join("g.ini"), &text, std::iter::empty()).unwrap();
    let db = Db::open(&config.database).await.unwrap();
    crate::db::drones::sync_from_config(&db, &config.scheduler)
        .await
        .unwrap();
    execute(
        &db,
        "INSERT INTO hosts (id, hostname, status, locked, created_on, dirty) VALUES
             (1, 'host1', 'Running', 0, 1, 0), (2, 'host2', 'Running', 0, 1, 0);
         INSERT INTO jobs (id, name, owner, priority, control_file, created_on, synch_count, tasks)
             VALUES (1, 'j', 'me', 0, 'x', 1, 1, 0);
         INSERT INTO host_queue_entries (id, job_id, host_id, status, priority, execution_subdir,
             drone, attempt, created_on, dispatched_on, aborted_by, aborted_on)
             VALUES (1, 1, 1, 'Gathering', 0, 'host1', 'drone1', 1, 1, 1, 'me', 2),
                    (2, 1, 2, 'Gathering', 0, 'host2', 'drone1', 1, 1, 1, NULL, NULL);",
    )
    .await;
    let drone = DroneName::new("drone1").unwrap();
    let rules = InfraRules {
        max_retries: 2,
        reclaim_after_us: 1,
    };
    let (n, tally) = fail_lost_drone(&db, &drone, "drone drone1 lost", 10, rules)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(tally.ended.len(), 1, "{tally:?}");
    assert_eq!(status_of(&db, 1).await, "Aborted");
    assert_eq!(status_of(&db, 2).await, "Gathering", "left to finish");
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
}
