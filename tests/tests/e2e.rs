//! End-to-end tests of the whole path of a job (atest → scheduler → RabbitMQ →
//! drone-worker → results host) on a real RabbitMQ, a real database (SQLite, or MariaDB
//! with AUTOTEST_TEST_DB=mysql), real rsync and real child processes.

use autotest_tests::world::read;
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dozens_of_jobs_on_two_drones_all_complete_with_results_on_the_results_host() {
    let world = World::builder()
        .drone("drone1", 3)
        .drone("drone2", 3)
        .start()
        .await;
    let hosts: Vec<String> = (1..=6).map(|i| format!("host{i}")).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    world.create_hosts(&host_refs).await;
    let mut ids = Vec::new();
    for i in 0..36 {
        let host = host_refs[i % host_refs.len()];
        let control = format!("echo \"job {i} on $AUTOSERV_HOSTS\" > out.txt\n");
        ids.push((
            world.submit(&format!("job {i}"), &control, &[host]).await,
            i,
            host,
        ));
    }
    let jobs = world
        .wait_for_jobs(
            &ids.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
            2 * MINUTE,
        )
        .await;
    let mut drones_used = std::collections::BTreeSet::new();
    for (job, (id, i, host)) in jobs.iter().zip(&ids) {
        assert_eq!(job.status, "Completed", "{job:?}");
        let entry = &job.entries[0];
        assert_eq!(entry.exit_code, Some(0));
        drones_used.insert(entry.drone.clone().expect("entry has a drone"));
        let dir = world.results_dir().join(format!("{id}-tester")).join(host);
        assert_eq!(entry.results_path.as_deref(), Some(dir.to_str().unwrap()));
        assert_eq!(read(&dir.join("out.txt")), format!("job {i} on {host}\n"));
        assert!(dir.join("control").exists() && dir.join("autoserv.stdout").exists());
    }
    assert_eq!(
        drones_used.len(),
        2,
        "both drones took work: {drones_used:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_exits_non_zero_ends_failed_with_its_exit_code_and_its_results() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("failing", "echo about to fail\nexit 3\n", &["host1"])
        .await;
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Failed");
    assert_eq!(job.entries[0].status, "Failed");
    assert_eq!(job.entries[0].exit_code, Some(3));
    let dir = world.results_dir().join(format!("{id}-tester/host1"));
    assert_eq!(read(&dir.join("autoserv.stdout")), "about to fail\n");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drone_of_capacity_two_never_runs_more_than_two_jobs_at_once() {
    // The worker's own limit is set high, so only the scheduler's bookkeeping holds it.
    let world = World::builder()
        .drone("drone1", 2)
        .worker_max_processes(50)
        .start()
        .await;
    let hosts = ["h1", "h2", "h3", "h4", "h5", "h6"];
    world.create_hosts(&hosts).await;
    let control = "date +%s%N > start\nsleep 0.3\ndate +%s%N > end\n";
    let mut ids = Vec::new();
    for host in hosts {
        ids.push((world.submit("overlap", control, &[host]).await, host));
    }
    world
        .wait_for_jobs(&ids.iter().map(|(id, _)| *id).collect::<Vec<_>>(), MINUTE)
        .await;
    let mut events = Vec::new();
    for (id, host) in &ids {
        let dir = world.results_dir().join(format!("{id}-tester/{host}"));
        let start: u128 = read(&dir.join("start")).trim().parse().unwrap();
        let end: u128 = read(&dir.join("end")).trim().parse().unwrap();
        events.push((start, 1i32));
        events.push((end, -1i32));
    }
    events.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, delta) in events {
        now += delta;
        peak = peak.max(now);
    }
    assert_eq!(
        peak, 2,
        "at most two at once, and the drone was used to its capacity"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_name_with_shell_characters_reaches_autoserv_as_one_argument() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let canary = world.path("pwned");
    let name = format!(
        "it's a \"quoted\" name; $(touch {c}) `touch {c}` && touch {c}",
        c = canary.display()
    );
    std::fs::write(world.path("control"), "true\n").unwrap();
    let output = world
        .atest(&[
            "job",
            "create",
            "--name",
            &name,
            "--control-file",
            "control",
            "--hosts",
            "host1",
        ])
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id: i64 = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("job id alone on stdout");
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    assert_eq!(job.name, name);
    let args = read(
        &world
            .results_dir()
            .join(format!("{id}-tester/host1/autoserv.args")),
    );
    let args: Vec<&str> = args.lines().collect();
    let label = args.iter().position(|a| *a == "-l").expect("-l given");
    assert_eq!(args[label + 1], name);
    assert!(!canary.exists(), "the job name was run by a shell");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_message_goes_to_the_dead_letter_queue_and_the_worker_keeps_working() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    world
        .publish_raw(
            common::broker::JOBS_EXCHANGE,
            "drone1",
            b"{this is not json",
        )
        .await;
    world
        .publish_raw(
            common::broker::JOBS_EXCHANGE,
            "drone1",
            br#"{"schema": 99, "sender_version": "9.0"}"#,
        )
        .await;
    world
        .publish_raw(
            common::broker::JOBS_EXCHANGE,
            "drone1",
            format!(
                "{{\"schema\": {}, \"entry_id\": 5}}",
                common::protocol::SCHEMA_VERSION
            )
            .as_bytes(),
        )
        .await;
    let oversized = format!(
        "{{\"schema\": {}, \"pad\": \"{}\"}}",
        common::protocol::SCHEMA_VERSION,
        "x".repeat(common::protocol::MAX_MESSAGE_BYTES)
    );
    world
        .publish_raw(
            common::broker::JOBS_EXCHANGE,
            "drone1",
            oversized.as_bytes(),
        )
        .await;
    let id = world
        .submit("after the poison", "echo fine\n", &["host1"])
        .await;
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    let dead = world.drain_queue(common::broker::DEAD_LETTER_QUEUE).await;
    assert_eq!(
        dead.len(),
        4,
        "{:?}",
        dead.iter().map(|(_, h)| h).collect::<Vec<_>>()
    );
    let reasons: Vec<&str> = dead
        .iter()
        .map(|(_, h)| h[common::broker::REASON_HEADER].as_str())
        .collect();
    assert!(reasons[0].contains("not JSON"), "{reasons:?}");
    assert!(reasons[1].contains("schema version 99"), "{reasons:?}");
    assert!(reasons[2].contains("missing field"), "{reasons:?}");
    assert!(reasons[3].contains("byte limit"), "{reasons:?}");
    assert_eq!(dead[0].0, b"{this is not json", "the original body is kept");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atest_refuses_an_unknown_host_or_an_unreadable_control_file_and_creates_nothing() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    std::fs::write(world.path("control"), "true\n").unwrap();
    let unknown = world
        .atest(&[
            "job",
            "create",
            "--name",
            "x",
            "--control-file",
            "control",
            "--hosts",
            "host1,nosuchhost",
        ])
        .await;
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown host: nosuchhost"), "{stderr}");
    assert!(unknown.stdout.is_empty());

    let unreadable = world
        .atest(&[
            "job",
            "create",
            "--name",
            "x",
            "--control-file",
            "missing",
            "--hosts",
            "host1",
        ])
        .await;
    assert!(!unreadable.status.success());
    assert!(
        String::from_utf8_lossy(&unreadable.stderr).contains("cannot read control file missing")
    );

    let list = world.atest(&["job", "list", "--json"]).await;
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        jobs,
        serde_json::json!({"jobs": [], "next": null}),
        "nothing was created"
    );

    let unreachable = tokio::process::Command::new(autotest_tests::binary("atest"))
        .args(["--server", "http://127.0.0.1:9", "job", "list"])
        .output()
        .await
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the scheduler"));
    world.stop().await;
}

/// Jobs submitted at the same moment are stored together (one transaction and one
/// fsync for the lot); one of them naming an unknown host is refused alone, and every
/// other submitter gets the id of its own job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_submitted_together_are_each_stored_or_refused_on_their_own() {
    let world = World::builder().drone("drone1", 4).start().await;
    world.create_hosts(&["host1", "host2"]).await;
    let answers: Vec<(usize, Result<i64, String>)> = world
        .api(|c| {
            std::thread::scope(|scope| {
                let submitters: Vec<_> = (0..24)
                    .map(|i| {
                        scope.spawn(move || {
                            let host = match i % 4 {
                                3 => "nosuchhost",
                                0 | 2 => "host1",
                                _ => "host2",
                            };
                            let body = scheduler::api::CreateJob::new(
                                format!("together {i}"),
                                "echo ok > out.txt\n",
                                vec![host.to_string()],
                                "tester",
                            );
                            (i, c.create_job(&body).map_err(|e| e.to_string()))
                        })
                    })
                    .collect();
                submitters.into_iter().map(|s| s.join().unwrap()).collect()
            })
        })
        .await;
    let mut stored = Vec::new();
    for (i, answer) in answers {
        match answer {
            Err(error) => {
                assert_eq!(i % 4, 3, "job {i} refused: {error}");
                assert!(error.contains("unknown host: nosuchhost"), "{error}");
            }
            Ok(id) => {
                assert_ne!(i % 4, 3, "job {i} on an unknown host was stored as {id}");
                stored.push((i, id));
            }
        }
    }
    assert_eq!(stored.len(), 18);
    let ids: Vec<i64> = stored.iter().map(|(_, id)| *id).collect();
    let mut listed: Vec<i64> = world
        .api(|c| c.jobs())
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "exactly the accepted jobs exist");
    let jobs = world.wait_for_jobs(&ids, MINUTE).await;
    for ((i, id), job) in stored.iter().zip(&jobs) {
        assert_eq!(job.id, *id);
        assert_eq!(
            job.name,
            format!("together {i}"),
            "submitter {i} got job {id}"
        );
        assert_eq!(job.status, "Completed", "{job:?}");
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atest_json_documents_have_the_documented_fields() {
    let world = World::builder().drone("drone1", 2).start().await;
    let created = world
        .atest(&[
            "host", "create", "host1", "--label", "x86", "--label", "fast",
        ])
        .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    std::fs::write(world.path("control"), "exit 0\n").unwrap();
    let out = world
        .atest(&[
            "job",
            "create",
            "--name",
            "j",
            "--control-file",
            "control",
            "--hosts",
            "host1",
            "--priority",
            "5",
        ])
        .await;
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    world.wait_for_jobs(&[id], MINUTE).await;
    let json = |out: std::process::Output| -> serde_json::Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    };
    let show = json(
        world
            .atest(&["job", "show", &id.to_string(), "--json"])
            .await,
    );
    for key in ["id", "name", "owner", "priority", "status", "entries"] {
        assert!(show.get(key).is_some(), "job show lacks {key}: {show}");
    }
    assert_eq!(show["priority"], 5);
    assert_eq!(show["owner"], "tester");
    let entry = &show["entries"][0];
    for key in ["host", "status", "drone", "exit_code", "results_path"] {
        assert!(entry.get(key).is_some(), "entry lacks {key}: {entry}");
    }
    let list = json(world.atest(&["job", "list", "--json"]).await);
    assert_eq!(list["jobs"][0]["id"], id);
    assert_eq!(list["jobs"][0]["status"], "Completed");
    assert_eq!(list["next"], serde_json::Value::Null);
    let drones = json(world.atest(&["drone", "list", "--json"]).await);
    assert_eq!(drones[0]["name"], "drone1");
    assert_eq!(drones[0]["enabled"], true);
    assert_eq!(drones[0]["running"], 0);
    assert_eq!(drones[0]["capacity"], 2);
    let hosts = json(world.atest(&["host", "list", "--json"]).await)["hosts"].clone();
    assert_eq!(hosts[0]["name"], "host1");
    assert_eq!(hosts[0]["labels"], serde_json::json!(["fast", "x86"]));
    assert_eq!(hosts[0]["status"], "Ready");
    assert_eq!(hosts[0]["locked"], false);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_label_given_twice_is_one_label() {
    // It used to break the host-label key: a database error, and no host.
    let world = World::builder().drone("drone1", 1).start().await;
    let created = world
        .atest(&[
            "host", "create", "host1", "--label", "x86", "--label", "fast", "--label", "x86",
        ])
        .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let out = world.atest(&["host", "list", "--json"]).await;
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let hosts = &page["hosts"];
    assert_eq!(hosts[0]["name"], "host1");
    assert_eq!(hosts[0]["labels"], serde_json::json!(["fast", "x86"]));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_host_runs_one_entry_at_a_time() {
    let world = World::builder()
        .drone("drone1", 4)
        .drone("drone2", 4)
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let control = "date +%s%N > start\nsleep 0.2\ndate +%s%N > end\n";
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(world.submit("same host", control, &["host1"]).await);
    }
    world.wait_for_jobs(&ids, MINUTE).await;
    let mut spans: Vec<(u128, u128)> = ids
        .iter()
        .map(|id| {
            let dir = world.results_dir().join(format!("{id}-tester/host1"));
            (
                read(&dir.join("start")).trim().parse().unwrap(),
                read(&dir.join("end")).trim().parse().unwrap(),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "entries on one host overlapped: {spans:?}"
        );
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_value_stops_the_programs_naming_section_and_key() {
    let dir = std::env::temp_dir().join(autotest_tests::unique("badconfig"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("global_config.ini");
    std::fs::write(
        &config,
        "[SCHEDULER]\ndrones: drone1\nmax_processes_per_drone: many\n",
    )
    .unwrap();
    for program in ["autotest-scheduler", "drone-worker"] {
        let out = tokio::process::Command::new(autotest_tests::binary(program))
            .arg("--config")
            .arg(&config)
            .args(
                ["--name", "drone1"]
                    .iter()
                    .filter(|_| program == "drone-worker"),
            )
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{}: [SCHEDULER] max_processes_per_drone: expected a positive integer",
                config.display()
            )),
            "{program}: {stderr}"
        );
    }
    std::fs::write(&config, "[SCHEDULER]\ndrones: drone1\n").unwrap();
    let out = tokio::process::Command::new(autotest_tests::binary("drone-worker"))
        .arg("--config")
        .arg(&config)
        .args(["--name", "drone9"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("drone \"drone9\" is not in [SCHEDULER] drones"));
    let _ = std::fs::remove_dir_all(&dir);
}

mod abort;
mod acl;
mod auth;
mod auth_access;
mod auth_tokens;
mod autotest_defaults;
mod containment;
mod crashes;
mod hardening;
mod health;
mod https;
mod infra;
mod integrity;
mod least_privilege;
mod lists;
mod low_disk;
mod mail;
mod metrics;
mod pages;
mod print_config;
mod report_origin;
mod reports;
mod results_http;
mod retention;
mod runtime_control;
mod scheduling;
mod special_files;
mod supervision;
mod supervisor;
mod test_results;
mod versions;
