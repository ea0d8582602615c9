//! Autotest's own `global_config.ini` keys that set defaults: the job limits of
//! `[AUTOTEST_WEB]` and `[SCHEDULER] enable_scheduler`.

use api::CreateJob;
use autotest_tests::world::World;

/// A job naming no limits gets `job_timeout_default` and `job_max_runtime_hrs_default`;
/// a job naming its own keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_without_limits_get_autotest_s_default_limits() {
    let world = World::builder()
        .drone("drone1", 2)
        .config("AUTOTEST_WEB", "job_timeout_default", "72")
        .config("AUTOTEST_WEB", "job_max_runtime_hrs_default", "2")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    world.api(|c| c.disable_drone("drone1")).await.unwrap();
    let plain = world.submit("plain", "true\n", &["host1"]).await;
    let own = world
        .submit_body(CreateJob {
            timeout_mins: Some(30),
            max_runtime_mins: Some(5),
            ..CreateJob::new("own limits", "true\n", vec!["host1".into()], "tester")
        })
        .await;
    let plain = world.job(plain).await;
    let entry = &plain.entries[0];
    assert_eq!(entry.max_runtime_secs, Some(2 * 3600));
    let created = time::OffsetDateTime::parse(
        &entry.created_on,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let deadline = time::OffsetDateTime::parse(
        entry.queue_deadline.as_deref().expect("a queue deadline"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((deadline - created).whole_hours(), 72);
    let own = world.job(own).await;
    assert_eq!(own.entries[0].max_runtime_secs, Some(300));
    let deadline = time::OffsetDateTime::parse(
        own.entries[0].queue_deadline.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let created = time::OffsetDateTime::parse(
        &own.entries[0].created_on,
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((deadline - created).whole_minutes(), 30);
    world.stop().await;
}

/// `enable_scheduler: False` keeps the scheduler from starting, and it says why.
#[test]
fn a_scheduler_not_enabled_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("global_config.ini");
    std::fs::write(
        &config,
        "[SCHEDULER]\nenable_scheduler: False\nhttp_listen: 127.0.0.1:1\n[BROKER]\nurl: amqp://127.0.0.1:1/%2f\n",
    )
    .unwrap();
    let out = std::process::Command::new(autotest_tests::binary("autotest-scheduler"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the scheduler is not enabled: [SCHEDULER] enable_scheduler is false"),
        "{stderr}"
    );
}
