//! The pages people read in a browser, over HTTP as a browser asks for them: the job
//! list (filters, paging), a job with its entries and parsed tests, hosts, drones, the
//! results spreadsheet, and the live endpoints the pages poll (statuses, a running
//! entry's log fetched from its drone).

use autotest_tests::world::users::Answer;
use autotest_tests::World;
use scheduler::api::CreateHost;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// A control file leaving an Autotest status log: sleeptest passes, dbench fails.
const STATUS_LOG_JOB: &str = r#"
mkdir -p sleeptest dbench
printf 'START\t----\t----\ttimestamp=1765000000\t\n' > status.log
printf '\tSTART\tsleeptest\tsleeptest\ttimestamp=1765000001\t\n' >> status.log
printf '\t\tGOOD\tsleeptest\tsleeptest\ttimestamp=1765000009\tcompleted successfully\n' >> status.log
printf '\tEND GOOD\tsleeptest\tsleeptest\ttimestamp=1765000010\t\n' >> status.log
printf '\tSTART\tdbench\tdbench\ttimestamp=1765000011\t\n' >> status.log
printf '\t\tFAIL\tdbench\tdbench\ttimestamp=1765000019\tthroughput too low\n' >> status.log
printf '\tEND FAIL\tdbench\tdbench\ttimestamp=1765000020\t\n' >> status.log
printf 'END GOOD\t----\t----\ttimestamp=1765000021\t\n' >> status.log
"#;

/// GET `path` as the admin, as a browser would.
async fn get(world: &World, path: &str) -> Answer {
    let auth = format!("Bearer {}", world.token());
    world
        .request("GET", path, &[("authorization", &auth)], None)
        .await
}

/// GET `path`, which must answer 200; its body.
async fn page(world: &World, path: &str) -> String {
    let answer = get(world, path).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    answer.body
}

/// GET a live endpoint, which must answer 200 with JSON.
async fn live(world: &World, path: &str) -> serde_json::Value {
    let body = page(world, path).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The job ids a job list page shows, in order.
fn listed_jobs(body: &str) -> Vec<i64> {
    body.split("<tr id=\"job-")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_show_jobs_their_tests_hosts_drones_and_the_results_spreadsheet() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let tested = world.submit("status log", STATUS_LOG_JOB, &["host1"]).await;
    let hostile = world
        .submit("<script>alert(1)</script>", "echo hi\n", &["host1"])
        .await;
    world.wait_for_jobs(&[tested, hostile], MINUTE).await;

    let jobs = page(&world, "/jobs").await;
    assert_eq!(listed_jobs(&jobs), [hostile, tested], "newest first");
    // askama writes `<` and `>` as character references (`&#60;`, the same as `&lt;`).
    assert!(
        jobs.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || jobs.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{jobs}"
    );
    assert!(
        !jobs.contains("<script>alert(1)"),
        "a job's name is text, never markup"
    );
    assert!(
        jobs.contains("2 passed / 1 failed"),
        "the test counts: {jobs}"
    );
    assert!(jobs.contains(r#"data-field="status">Completed<"#), "{jobs}");
    let root = get(&world, "/").await;
    assert_eq!(root.status, 303, "/ leads to the job list");
    let policy = get(&world, "/jobs").await;
    assert!(policy
        .header("content-security-policy")
        .is_some_and(|p| p.contains("script-src 'self'")));

    let job = page(&world, &format!("/jobs/{tested}")).await;
    for expected in [
        "status log",
        "sleeptest",
        "dbench",
        "throughput too low",
        r#"class="status status-good" data-field="status">GOOD<"#,
        r#"class="status status-fail" data-field="status">FAIL<"#,
        r#"class="status status-completed" data-field="status">Completed<"#,
        &format!(r#"href="/results/{tested}-tester/host1/""#),
        &format!(r#"href="/results/{tested}-tester/host1/dbench/debug/""#),
        "printf",
    ] {
        assert!(
            job.contains(expected),
            "the job page shows {expected:?}: {job}"
        );
    }
    let listing = get(&world, &format!("/results/{tested}-tester/host1/")).await;
    assert_eq!(listing.status, 200, "the entry's results link works");
    assert!(listing.body.contains("status.log"), "{}", listing.body);
    assert_eq!(get(&world, "/jobs/999999").await.status, 404);
    assert_eq!(get(&world, "/jobs/x").await.status, 400);

    let hosts = page(&world, "/hosts").await;
    assert!(
        hosts.contains(r#"<tr id="host-host1""#) && hosts.contains("Ready"),
        "{hosts}"
    );
    let host = page(&world, "/hosts/host1").await;
    assert!(
        host.contains(&format!("/jobs/{tested}")) && host.contains("2 passed / 1 failed"),
        "{host}"
    );
    assert_eq!(get(&world, "/hosts/nosuchhost").await.status, 404);

    let drones = page(&world, "/drones").await;
    assert!(drones.contains(r#"<tr id="drone-drone1""#), "{drones}");
    assert!(drones.contains(r#"data-field="status">ok"#), "{drones}");
    assert!(
        drones.contains(":15672/#/queues/"),
        "a link to the queue: {drones}"
    );
    assert!(
        drones.contains(r#"data-field="consumers">1<"#),
        "the worker consumes its queue: {drones}"
    );

    let grid = page(&world, "/results?since=2025-12-01").await;
    assert!(
        grid.contains("sleeptest") && grid.contains("1 GOOD"),
        "{grid}"
    );
    assert!(
        grid.contains("1 FAIL") && grid.contains("/tests?host=host1&#38;name=dbench"),
        "{grid}"
    );
    let by_job = page(&world, "/results?by=job&name=db*&since=2025-12-01").await;
    assert!(
        by_job.contains("dbench") && !by_job.contains("sleeptest"),
        "{by_job}"
    );
    assert!(
        by_job.contains(&format!("/tests?job={tested}&#38;name=dbench")),
        "{by_job}"
    );
    assert_eq!(get(&world, "/results?by=drone").await.status, 400);
    let old = page(&world, "/results?since=2000-01-01&until=2000-01-02").await;
    assert!(old.contains("No tests in this window"), "{old}");
    let tests = page(&world, "/tests?host=host1&name=dbench").await;
    assert!(
        tests.contains("FAIL") && tests.contains("throughput too low"),
        "{tests}"
    );
    assert!(!tests.contains("sleeptest"), "{tests}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_job_list_filters_and_pages_with_a_cursor() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let body = CreateHost {
        name: "big1".into(),
        labels: vec!["bigmem".into()],
    };
    world
        .api(move |c| c.create_host(&body))
        .await
        .expect("host created");
    world.create_hosts(&["host1"]).await;
    let mut ids = Vec::new();
    for i in 0..52 {
        ids.push(
            world
                .submit(&format!("bulk {i}"), "true\n", &["host1"])
                .await,
        );
    }
    let nightly = world.submit("nightly build", "true\n", &["big1"]).await;

    let first = listed_jobs(&page(&world, "/jobs").await);
    assert_eq!(first.len(), 50, "a page holds 50 jobs");
    assert_eq!(first[0], nightly);
    let body = page(&world, "/jobs").await;
    let cursor = first[49];
    assert!(
        body.contains(&format!(r#"href="/jobs?before={cursor}""#)),
        "an Older link"
    );
    let second = listed_jobs(&page(&world, &format!("/jobs?before={cursor}")).await);
    assert_eq!(second, [ids[2], ids[1], ids[0]], "the rest, older still");
    assert!(!page(&world, &format!("/jobs?before={cursor}"))
        .await
        .contains("id=\"older\""));

    let by_name = listed_jobs(&page(&world, "/jobs?name=nightly").await);
    assert_eq!(by_name, [nightly]);
    let by_label = listed_jobs(&page(&world, "/jobs?label=bigmem").await);
    assert_eq!(by_label, [nightly]);
    assert!(listed_jobs(&page(&world, "/jobs?label=nosuchlabel").await).is_empty());
    assert_eq!(
        listed_jobs(&page(&world, "/jobs?owner=tester&name=bulk%201*").await).len(),
        11
    );
    assert!(listed_jobs(&page(&world, "/jobs?owner=somebody").await).is_empty());
    assert_eq!(
        listed_jobs(&page(&world, "/jobs?status=Queued").await).len(),
        50
    );
    assert!(listed_jobs(&page(&world, "/jobs?status=Completed").await).is_empty());
    let filtered = page(&world, "/jobs?status=Queued&name=bulk").await;
    assert!(
        filtered.contains("status=Queued"),
        "the Older link keeps the filters"
    );
    assert_eq!(get(&world, "/jobs?status=Sleeping").await.status, 400);
    assert_eq!(get(&world, "/jobs?before=soon").await.status, 400);
    world.stop().await;
}

/// A control file printing a line every 50 ms until the world's `release` file exists.
fn chatty_control(world: &World) -> String {
    let release = world.path("release");
    format!(
        "i=0\nwhile [ ! -e \"{}\" ] && [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); sleep 0.05; done\n",
        release.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_endpoints_follow_a_running_entry_and_its_log() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("chatty", &chatty_control(&world), &["host1"])
        .await;
    let job = world
        .wait_until(&[id], MINUTE, "the job runs", |j| {
            j[0].entries[0].status == "Running"
        })
        .await
        .remove(0);
    let entry = job.entries[0].id;

    let state = live(&world, &format!("/live/jobs?ids={id}")).await;
    assert_eq!(state["jobs"][0]["status"], "Running", "{state}");
    assert_eq!(
        state["jobs"][0]["entries"][entry.to_string()],
        "Running",
        "{state}"
    );
    let page_body = page(&world, &format!("/jobs/{id}")).await;
    assert!(
        page_body.contains(&format!(r#"<pre id="log-{entry}""#)),
        "{page_body}"
    );

    // The log grows between two reads from the offset the first one returned.
    let log = |offset: u64| format!("/live/log/{entry}?file=autoserv.stdout&offset={offset}");
    let deadline = Instant::now() + MINUTE;
    let first = loop {
        let answer = live(&world, &log(0)).await;
        if answer["data"]
            .as_str()
            .is_some_and(|d| d.contains("line 1\n"))
        {
            break answer;
        }
        assert!(Instant::now() < deadline, "no log lines: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(first["running"], true);
    assert!(first["data"].as_str().unwrap().starts_with("line 0\n"));
    let offset = first["offset"].as_u64().unwrap();
    assert_eq!(offset as usize, first["data"].as_str().unwrap().len());
    let more = loop {
        let answer = live(&world, &log(offset)).await;
        if answer["data"].as_str().is_some_and(|d| !d.is_empty()) {
            break answer;
        }
        assert!(Instant::now() < deadline, "the log did not grow: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(more["offset"].as_u64().unwrap() > offset);
    assert!(
        more["data"].as_str().unwrap().starts_with("line "),
        "{more}"
    );

    for bad in ["../../etc/passwd", "/etc/passwd", "debug/../../x"] {
        let answer = get(&world, &format!("/live/log/{entry}?file={bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    assert_eq!(
        get(&world, "/live/log/999999?file=autoserv.stdout")
            .await
            .status,
        404
    );
    assert_eq!(get(&world, "/live/jobs?ids=1,x").await.status, 400);

    // The status change reaches the live poll once the job ends.
    std::fs::write(world.path("release"), b"").unwrap();
    let deadline = Instant::now() + MINUTE;
    loop {
        let state = live(&world, &format!("/live/jobs?ids={id}")).await;
        if state["jobs"][0]["status"] == "Completed" {
            assert_eq!(state["jobs"][0]["counts"]["Completed"], 1, "{state}");
            break;
        }
        assert!(Instant::now() < deadline, "not Completed: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = live(&world, &log(0)).await;
    assert_eq!(
        done["running"], false,
        "a finished entry is not followed: {done}"
    );
    world.stop().await;
}
