//! Paged lists: `GET /api/jobs`, `/api/hosts`, `/api/tests` and `atest … list` give a
//! page and the cursor of the next one; the cursor never repeats nor skips a job while
//! new ones arrive; each filter narrows; bad values are refused and change nothing.

use api::{Client, CreateJob, HostQuery, JobQuery, TestQuery};
use autotest_tests::world::World;
use serde_json::Value;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// A control file that leaves an Autotest status log of three tests behind.
const THREE_TESTS: &str = r#"
printf 'START\t----\t----\ttimestamp=1765000000\t\n' > status.log
for t in a b c; do
  printf '\tSTART\t%s\t%s\ttimestamp=1765000001\t\n' $t $t >> status.log
  printf '\t\tGOOD\t%s\t%s\ttimestamp=1765000002\tdone\n' $t $t >> status.log
  printf '\tEND GOOD\t%s\t%s\ttimestamp=1765000003\t\n' $t $t >> status.log
done
printf 'END GOOD\t----\t----\ttimestamp=1765000004\t\n' >> status.log
"#;

/// Every page of `query` (`limit` per page): the ids in the order they came, and the
/// number of pages.
fn walk(client: &Client, mut query: JobQuery) -> (Vec<i64>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let page = client.jobs_page(&query).expect("a page");
        pages += 1;
        ids.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return (ids, pages),
        }
    }
}

fn job(name: &str, control: &str, host: &str, owner: &str) -> CreateJob {
    CreateJob::new(name, control, vec![host.to_string()], owner)
}

async fn submit_as_owner(world: &World, body: CreateJob) -> i64 {
    world
        .api(move |c| c.create_job(&body))
        .await
        .expect("job created")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_neither_repeats_nor_skips_a_job_while_new_ones_are_created() {
    let world = World::builder().without_workers().start().await;
    world.create_hosts(&["host1"]).await;
    let mut older = Vec::new();
    for n in 0..23 {
        older.push(world.submit(&format!("old {n}"), "true", &["host1"]).await);
    }
    let server = world.server().to_string();
    let token = world.token().to_string();
    // A second client keeps creating jobs while the first pages through the list.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creating = {
        let (server, token, stop) = (server.clone(), token.clone(), stop.clone());
        std::thread::spawn(move || {
            let client = Client::new(&server).with_token(Some(token));
            let mut made = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || made < 10 {
                client
                    .create_job(&job(&format!("new {made}"), "true", "host1", "tester"))
                    .expect("created while paging");
                made += 1;
            }
            made
        })
    };
    let (seen, pages) = tokio::task::spawn_blocking(move || {
        let client = Client::new(&server).with_token(Some(token));
        let mut query = JobQuery {
            owner: Some("tester".into()),
            limit: Some(4),
            ..Default::default()
        };
        let (mut seen, mut pages) = (Vec::new(), 0);
        loop {
            let page = client.jobs_page(&query).expect("a page");
            pages += 1;
            assert!(page.jobs.len() <= 4, "a page holds at most its limit");
            seen.extend(page.jobs.iter().map(|j| j.id));
            // Wait for a new job between pages.
            let before = client
                .jobs_page(&JobQuery {
                    limit: Some(1),
                    ..Default::default()
                })
                .expect("newest")
                .jobs[0]
                .id;
            let deadline = std::time::Instant::now() + MINUTE;
            while client
                .jobs_page(&JobQuery {
                    limit: Some(1),
                    ..Default::default()
                })
                .expect("newest")
                .jobs[0]
                .id
                == before
            {
                assert!(std::time::Instant::now() < deadline, "no job was created");
                std::thread::sleep(Duration::from_millis(5));
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return (seen, pages),
            }
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = creating.join().unwrap();
    assert!(made >= 10);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sorted, seen, "newest first, no job twice");
    for id in &older {
        assert!(seen.contains(id), "job {id} was skipped: {seen:?}");
    }
    assert!(pages >= 6, "23 jobs or more in pages of 4: {pages} pages");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_filter_narrows_the_job_list_and_atest_lists_the_callers_own_jobs() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1", "host2"]).await;
    world
        .api(|c| c.lock_host("host2", Some("kept for queued jobs".into())))
        .await
        .unwrap();
    let alice = world.create_user("alice", false).await;
    let bob = world.create_user("bob", false).await;
    let ok = submit_as_owner(&world, job("nightly-ok", "exit 0", "host1", "alice")).await;
    let bad = submit_as_owner(&world, job("nightly-bad", "exit 1", "host1", "alice")).await;
    world.wait_for_jobs(&[ok, bad], MINUTE).await;
    let queued = submit_as_owner(&world, job("smoke", "true", "host2", "bob")).await;
    let aborted = submit_as_owner(&world, job("smoke-stopped", "true", "host2", "bob")).await;
    world
        .api(move |c| c.abort_job(aborted, "tester", None))
        .await
        .unwrap();
    let since_bad = world.job(bad).await.created_on;

    let server = world.server().to_string();
    let token = world.token().to_string();
    let lists = tokio::task::spawn_blocking(move || {
        let client = Client::new(&server).with_token(Some(token));
        let ids = |query: JobQuery| walk(&client, query).0;
        let q = |f: fn(&mut JobQuery)| {
            let mut query = JobQuery::default();
            f(&mut query);
            query
        };
        vec![
            ids(q(|q| q.owner = Some("alice".into()))),
            ids(q(|q| q.status = Some("Failed".into()))),
            ids(q(|q| q.status = Some("Completed".into()))),
            ids(q(|q| q.status = Some("Queued".into()))),
            ids(q(|q| q.status = Some("Aborted".into()))),
            ids(q(|q| q.status = Some("Running".into()))),
            ids(q(|q| q.name = Some("nightly".into()))),
            ids(q(|q| q.name = Some("smoke-*".into()))),
            ids(q(|q| q.since = Some("2999-01-01".into()))),
            ids(JobQuery {
                since: Some(since_bad),
                ..Default::default()
            }),
            ids(q(|q| {
                q.owner = Some("bob".into());
                q.status = Some("Queued".into());
            })),
        ]
    })
    .await
    .unwrap();
    let expected: Vec<Vec<i64>> = vec![
        vec![bad, ok],
        vec![bad],
        vec![ok],
        vec![queued],
        vec![aborted],
        vec![],
        vec![bad, ok],
        vec![aborted],
        vec![],
        vec![aborted, queued, bad],
        vec![queued],
    ];
    assert_eq!(lists, expected);

    let listed = |out: std::process::Output| -> Vec<i64> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        page["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    let mine = world
        .atest_with(Some(&alice), &["job", "list", "--json"])
        .await;
    assert_eq!(listed(mine), [bad, ok], "alice sees her own jobs");
    let bobs = world
        .atest_with(Some(&bob), &["job", "list", "--json"])
        .await;
    assert_eq!(listed(bobs), [aborted, queued]);
    let all = world
        .atest_with(Some(&alice), &["job", "list", "--all", "--json"])
        .await;
    assert_eq!(listed(all), [aborted, queued, bad, ok]);
    let other = world
        .atest_with(Some(&alice), &["job", "list", "--owner", "bob", "--json"])
        .await;
    assert_eq!(listed(other), [aborted, queued]);
    let admin = world.atest(&["job", "list", "--json"]).await;
    assert_eq!(listed(admin), Vec::<i64>::new(), "tester owns none");

    let paged = world
        .atest_with(Some(&alice), &["job", "list", "--all", "--limit", "3"])
        .await;
    assert!(paged.status.success());
    let stdout = String::from_utf8_lossy(&paged.stdout);
    assert_eq!(
        stdout.lines().count(),
        4,
        "a header and three jobs: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&paged.stderr);
    let hint = format!("atest job list --all --limit 3 --cursor {bad}");
    assert!(stderr.contains(&hint), "{stderr}");
    let rest = world
        .atest_with(
            Some(&alice),
            &[
                "job",
                "list",
                "--all",
                "--limit",
                "3",
                "--cursor",
                &bad.to_string(),
                "--json",
            ],
        )
        .await;
    let rest_page: Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(rest_page["jobs"][0]["id"], ok);
    assert_eq!(rest_page["next"], Value::Null);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_limits_cursors_and_filters_are_refused_and_change_nothing() {
    let world = World::builder().without_workers().start().await;
    world.create_hosts(&["host1"]).await;
    for n in 0..3 {
        world.submit(&format!("job {n}"), "true", &["host1"]).await;
    }
    let before = world.api(|c| c.jobs()).await.unwrap().len();
    for (path, says) in [
        ("/api/jobs?limit=0", "limit"),
        ("/api/jobs?limit=1001", "limit"),
        ("/api/jobs?limit=ten", "limit"),
        ("/api/jobs?cursor=abc", "cursor"),
        ("/api/jobs?cursor=-3", "cursor"),
        ("/api/jobs?status=Sleeping", "status"),
        ("/api/jobs?since=yesterday", "since"),
        ("/api/jobs?stauts=Failed", "stauts"),
        ("/api/hosts?limit=0", "limit"),
        ("/api/hosts?page=2", "page"),
        ("/api/tests?limit=5000", "limit"),
        ("/api/tests?cursor=next", "cursor"),
    ] {
        let answer = world.request("GET", path, &[], None).await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        let error = answer.error().unwrap_or_default();
        assert!(error.contains(says), "{path}: {error}");
    }
    assert_eq!(world.api(|c| c.jobs()).await.unwrap().len(), before);
    let page = world
        .request("GET", "/api/jobs?limit=1000", &[], None)
        .await;
    assert_eq!(page.status, 200);
    let one = world.request("GET", "/api/jobs?limit=1", &[], None).await;
    let body: Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    assert!(body["next"].is_string(), "{body}");
    let bad = world.atest(&["job", "list", "--all", "--limit", "0"]).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--limit"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_and_tests_page_by_cursor() {
    let world = World::builder().drone("drone1", 2).start().await;
    world
        .create_hosts(&["host5", "host1", "host4", "host2", "host3"])
        .await;
    let pages = world
        .api(|c| {
            let mut query = HostQuery {
                limit: Some(2),
                cursor: None,
            };
            let mut pages = Vec::new();
            loop {
                let page = c.hosts_page(&query).expect("hosts");
                pages.push(
                    page.hosts
                        .iter()
                        .map(|h| h.name.clone())
                        .collect::<Vec<_>>(),
                );
                match page.next {
                    Some(next) => query.cursor = Some(next),
                    None => return pages,
                }
            }
        })
        .await;
    assert_eq!(
        pages,
        [
            vec!["host1", "host2"],
            vec!["host3", "host4"],
            vec!["host5"]
        ]
    );
    let listed = world.atest(&["host", "list", "--limit", "2"]).await;
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(
        stderr.contains("atest host list --limit 2 --cursor host2"),
        "{stderr}"
    );

    // Each job leaves three tests behind.
    let control = THREE_TESTS;
    let first = world.submit("tests 1", control, &["host1"]).await;
    let second = world.submit("tests 2", control, &["host2"]).await;
    world.wait_for_jobs(&[first, second], MINUTE).await;
    let (pages, all) = world
        .api(|c| {
            let mut query = TestQuery {
                limit: Some(4),
                ..Default::default()
            };
            let mut pages = Vec::new();
            loop {
                let page = c.tests(&query).expect("tests");
                pages.push(page.tests.iter().map(|t| t.id).collect::<Vec<_>>());
                match page.next {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            let all = c
                .tests(&TestQuery::default())
                .expect("tests")
                .tests
                .iter()
                .map(|t| t.id)
                .collect::<Vec<_>>();
            (pages, all)
        })
        .await;
    assert!(all.len() >= 6, "three tests a job or more: {all:?}");
    let (last, full) = pages.split_last().expect("a page");
    assert!(full.iter().all(|p| p.len() == 4), "{pages:?}");
    assert!((1..=4).contains(&last.len()), "{pages:?}");
    assert_eq!(pages.concat(), all, "newest first, each once");
    world.stop().await;
}
