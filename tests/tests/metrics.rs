//! `GET /metrics` of the scheduler and of a drone's results server, read as
//! Prometheus reads them after a small batch: the counts match the jobs run.

use autotest_tests::metrics::{self, Exposition};
use autotest_tests::World;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// A `GET` of `url` with `headers`: status, `Content-Type` and body.
async fn get(url: String, headers: Vec<(&'static str, String)>) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build(),
        );
        let mut request = agent.get(&url);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut response = request.call().expect("an answer");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.body_mut().read_to_string().expect("a text body");
        (status, content_type, body)
    })
    .await
    .expect("request")
}

/// Scrapes `base`'s `/metrics` as Prometheus would, checked.
async fn scrape(base: &str) -> Exposition {
    let (status, content_type, body) = get(format!("{base}/metrics"), vec![]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, common::metrics::CONTENT_TYPE);
    metrics::parse(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_three_passing_jobs_and_one_failing_both_programs_count_what_ran() {
    let world = World::builder().drone("drone1", 2).start().await;
    world
        .create_hosts(&["host1", "host2", "host3", "host4"])
        .await;
    let mut ids = Vec::new();
    for host in ["host1", "host2", "host3"] {
        ids.push(world.submit("passes", "echo ok > out.txt\n", &[host]).await);
    }
    // Fails, and leaves test results the drone cannot read all of.
    let broken = "printf '<testsuite><testcase name=\"cut\">' > junit.xml\nexit 3\n";
    ids.push(world.submit("fails", broken, &["host4"]).await);
    let jobs = world.wait_for_jobs(&ids, MINUTE).await;
    let statuses: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
    assert_eq!(statuses, ["Completed", "Completed", "Completed", "Failed"]);

    let scheduler = scrape(world.server()).await;
    assert_eq!(scheduler.get("autotest_jobs_created_total", &[]), 4.0);
    let entries = |status| scheduler.get("autotest_entries", &[("status", status)]);
    assert_eq!(
        (entries("Completed"), entries("Failed"), entries("Queued")),
        (3.0, 1.0, 0.0)
    );
    let applied =
        |event| scheduler.get("autotest_status_reports_applied_total", &[("event", event)]);
    assert_eq!((applied("running"), applied("finished")), (4.0, 4.0));
    assert!(applied("heartbeat") > 0.0);
    assert_eq!(scheduler.sum("autotest_status_reports_refused_total"), 0.0);
    assert_eq!(scheduler.sum("autotest_status_reports_ignored_total"), 0.0);
    assert_eq!(scheduler.get("autotest_infra_retries_total", &[]), 0.0);
    assert_eq!(scheduler.get("autotest_parse_errors_total", &[]), 1.0);
    assert_eq!(
        scheduler.observations("autotest_dispatch_latency_seconds", &[]),
        4.0
    );
    let ended = |status| {
        scheduler.observations("autotest_end_to_end_latency_seconds", &[("status", status)])
    };
    assert_eq!((ended("Completed"), ended("Failed")), (3.0, 1.0));
    assert_eq!(scheduler.get("autotest_drones", &[("status", "ok")]), 1.0);
    assert_eq!(scheduler.get("autotest_drones", &[("status", "lost")]), 0.0);
    let drone = [("drone", "drone1")];
    assert_eq!(scheduler.get("autotest_drone_capacity", &drone), 2.0);
    assert_eq!(scheduler.get("autotest_drone_running_entries", &drone), 0.0);
    // Every report received was observed for its lag: at least the ones applied.
    let applied_total = scheduler.sum("autotest_status_reports_applied_total");
    assert!(
        scheduler.observations("autotest_status_report_lag_seconds", &[]) >= applied_total,
        "report lag observed less often than reports were applied ({applied_total})"
    );
    // Heartbeats keep arriving; none waits long to be applied.
    assert!(scheduler.get("autotest_oldest_unapplied_report_age_seconds", &[]) < 5.0);
    let build = [
        ("program", "autotest-scheduler"),
        ("version", common::VERSION),
    ];
    assert_eq!(scheduler.get("autotest_build_info", &build), 1.0);

    // The worker lets an attempt go just after its last report is confirmed.
    let base = world.drone_results_url(ids[0], "host1", "drone1").await;
    let deadline = Instant::now() + MINUTE;
    let worker = loop {
        let worker = scrape(&base).await;
        if worker.get("autotest_worker_attempts_held", &[]) == 0.0 {
            break worker;
        }
        assert!(
            Instant::now() < deadline,
            "attempts still held:\n{}",
            worker.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(worker.get("autotest_worker_results_pushes_total", &[]), 4.0);
    assert_eq!(
        worker.get("autotest_worker_results_push_failures_total", &[]),
        0.0
    );
    assert!(worker.get("autotest_worker_results_pushed_bytes_total", &[]) > 0.0);
    assert_eq!(worker.get("autotest_worker_parse_errors_total", &[]), 1.0);
    assert_eq!(worker.get("autotest_worker_attempts_running", &[]), 0.0);
    assert_eq!(worker.get("autotest_worker_journal_entries", &[]), 0.0);
    assert!(
        worker.get("autotest_worker_journal_bytes", &[]) > 0.0,
        "done.log"
    );
    let lease_timeout = worker.get("autotest_worker_lease_timeout_seconds", &[]);
    assert_eq!(
        lease_timeout,
        world.config.scheduler.drone_timeout_sec as f64
    );
    assert!(worker.get("autotest_worker_lease_age_seconds", &[]) < lease_timeout);
    assert_eq!(
        worker.get("autotest_worker_drone_info", &[("drone", "drone1")]),
        1.0
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_anonymous_reads_a_scraper_needs_a_token() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .config("AUTH", "anonymous_read", "false")
        .start()
        .await;
    let url = format!("{}/metrics", world.server());
    let (status, _, body) = get(url.clone(), vec![]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("anonymous_read"), "{body}");
    let token = world.create_user("prometheus", false).await;
    let bearer = vec![("authorization", format!("Bearer {token}"))];
    let (status, _, body) = get(url, bearer).await;
    assert_eq!(status, 200, "{body}");
    let scheduler = metrics::parse(&body);
    assert_eq!(scheduler.get("autotest_jobs_created_total", &[]), 0.0);
    assert_eq!(scheduler.get("autotest_drones", &[("status", "lost")]), 1.0);
    assert!(!body.contains(&token), "no secret in the answer");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_attempt_the_drone_cannot_start_counts_as_infra_retries_then_a_failure() {
    let mut world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "max_infra_retries", "2")
        .without_workers()
        .start()
        .await;
    // drone1 cannot start Autoserv: its supervisor is missing.
    world
        .start_worker_with("drone1", |_| {}, "/nonexistent/autoserv-supervisor".into())
        .await;
    world.wait_for_drone("drone1", "ok").await;
    world.create_hosts(&["host1"]).await;
    let id = world.submit("doomed", "true\n", &["host1"]).await;
    assert_eq!(world.wait_for_jobs(&[id], MINUTE).await[0].status, "Failed");
    let scheduler = scrape(world.server()).await;
    assert_eq!(scheduler.get("autotest_infra_retries_total", &[]), 2.0);
    let applied =
        |event| scheduler.get("autotest_status_reports_applied_total", &[("event", event)]);
    assert_eq!((applied("refused"), applied("running")), (3.0, 0.0));
    assert_eq!(
        scheduler.observations("autotest_dispatch_latency_seconds", &[]),
        0.0
    );
    assert_eq!(
        scheduler.observations(
            "autotest_end_to_end_latency_seconds",
            &[("status", "Failed")]
        ),
        1.0
    );
    assert_eq!(
        scheduler.get("autotest_entries", &[("status", "Failed")]),
        1.0
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_pushes_count_until_the_results_host_takes_them() {
    let mut world = World::builder()
        .drone("drone1", 1)
        .config("DRONE", "push_retry_max_sec", "1")
        .without_workers()
        .start()
        .await;
    // The drone's results directory on the results host cannot be made: a file is
    // where its parent should be.
    let blocked = world.dir.join("blocked");
    std::fs::write(&blocked, "not a directory").unwrap();
    let target = blocked.join("results");
    world
        .start_worker_with(
            "drone1",
            |config| config.scheduler.results_dir = target,
            autotest_tests::binary("autoserv-supervisor"),
        )
        .await;
    world.wait_for_drone("drone1", "ok").await;
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("stuck", "echo ok > out.txt\n", &["host1"])
        .await;
    world
        .wait_until(&[id], MINUTE, "push failure reported", |j| {
            j[0].entries[0].failure_kind.as_deref() == Some("infra")
        })
        .await;
    let base = world.drone_results_url(id, "host1", "drone1").await;
    let deadline = Instant::now() + MINUTE;
    loop {
        let worker = scrape(&base).await;
        let failures = worker.get("autotest_worker_results_push_failures_total", &[]);
        if failures >= 2.0 {
            assert_eq!(worker.get("autotest_worker_results_pushes_total", &[]), 0.0);
            assert_eq!(worker.get("autotest_worker_attempts_held", &[]), 1.0);
            assert_eq!(worker.get("autotest_worker_journal_entries", &[]), 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pushes never failed:\n{}",
            worker.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The results host can take them again: the next try goes through.
    std::fs::remove_file(&blocked).unwrap();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let worker = scrape(&base).await;
    assert_eq!(worker.get("autotest_worker_results_pushes_total", &[]), 1.0);
    assert!(worker.get("autotest_worker_results_pushed_bytes_total", &[]) > 0.0);
    world.stop().await;
}
