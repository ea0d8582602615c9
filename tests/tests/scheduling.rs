//! Autotest's host matching and ordering: metahosts (any ready host with a label),
//! dependency labels, priorities, named hosts before labels.

use autotest_tests::World;
use scheduler::api::JobView;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn hosts_of(job: &JobView) -> Vec<String> {
    let mut hosts: Vec<String> = job
        .entries
        .iter()
        .map(|e| e.host.clone().expect("host assigned"))
        .collect();
    hosts.sort();
    hosts
}

fn started(job: &JobView) -> i64 {
    common::time::parse_micros(job.entries[0].started_on.as_deref().expect("started")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metahost_job_runs_only_on_ready_hosts_carrying_its_label() {
    let world = World::builder().drone("drone1", 4).start().await;
    for (host, label) in [
        ("fast1", "fast"),
        ("fast2", "fast"),
        ("slow1", "slow"),
        ("slow2", "slow"),
    ] {
        assert!(world
            .atest(&["host", "create", host, "--label", label])
            .await
            .status
            .success());
    }
    std::fs::write(
        world.path("control"),
        "echo ran on $AUTOSERV_HOSTS > out.txt\n",
    )
    .unwrap();
    let out = world
        .atest(&[
            "job",
            "create",
            "--name",
            "meta",
            "--control-file",
            "control",
            "--label",
            "fast",
            "--count",
            "2",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: i64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");
    assert_eq!(
        hosts_of(job),
        ["fast1", "fast2"],
        "two distinct hosts carrying the label"
    );
    for entry in &job.entries {
        assert_eq!(entry.label.as_deref(), Some("fast"));
        let host = entry.host.as_deref().unwrap();
        let out = world
            .results_dir()
            .join(format!("{id}-tester/{host}/out.txt"));
        assert_eq!(
            autotest_tests::world::read(&out),
            format!("ran on {host}\n")
        );
    }
    let unknown = world
        .atest(&[
            "job",
            "create",
            "--name",
            "x",
            "--control-file",
            "control",
            "--label",
            "nosuchlabel",
        ])
        .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown label: nosuchlabel"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dependencies_exclude_hosts_lacking_one_of_the_labels() {
    let world = World::builder().drone("drone1", 4).start().await;
    assert!(world
        .atest(&["host", "create", "plain", "--label", "arm"])
        .await
        .status
        .success());
    assert!(world
        .atest(&["host", "create", "gpu1", "--label", "arm", "--label", "gpu"])
        .await
        .status
        .success());
    std::fs::write(world.path("control"), "true\n").unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = world
            .atest(&[
                "job",
                "create",
                "--name",
                "d",
                "--control-file",
                "control",
                "--label",
                "arm",
                "--dependencies",
                "gpu",
            ])
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse::<i64>()
                .unwrap(),
        );
    }
    for job in world.wait_for_jobs(&ids, MINUTE).await {
        assert_eq!(
            hosts_of(&job),
            ["gpu1"],
            "only the host with every dependency label"
        );
    }
    let named = world
        .atest(&[
            "job",
            "create",
            "--name",
            "d",
            "--control-file",
            "control",
            "--hosts",
            "plain",
            "--dependencies",
            "gpu",
        ])
        .await;
    assert!(!named.status.success());
    assert!(String::from_utf8_lossy(&named.stderr).contains("host plain lacks the label gpu"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_high_priority_job_behind_a_backlog_starts_first_and_named_hosts_go_before_labels() {
    let world = World::builder().drone("drone1", 1).start().await;
    assert!(world
        .atest(&["host", "create", "h1", "--label", "pool"])
        .await
        .status
        .success());
    world.start_blocking("blocker", "h1").await;
    let mut backlog = Vec::new();
    for _ in 0..20 {
        backlog.push(
            world
                .submit_with_priority("low", "true\n", &["h1"], 0)
                .await,
        );
    }
    let std::process::Output { stdout, .. } = world
        .atest(&[
            "job",
            "create",
            "--name",
            "label",
            "--control-file",
            "/dev/null",
            "--label",
            "pool",
            "--priority",
            "10",
        ])
        .await;
    let by_label: i64 = String::from_utf8(stdout).unwrap().trim().parse().unwrap();
    let named = world
        .submit_with_priority("named", "true\n", &["h1"], 10)
        .await;
    world.release();
    let mut all = backlog.clone();
    all.extend([by_label, named]);
    let jobs = world.wait_for_jobs(&all, 2 * MINUTE).await;
    let start_of = |id: i64| started(jobs.iter().find(|j| j.id == id).unwrap());
    assert!(
        start_of(named) < start_of(by_label),
        "a named host goes before a label at equal priority"
    );
    for low in &backlog {
        assert!(
            start_of(by_label) < start_of(*low),
            "priority 10 ran after the priority 0 backlog"
        );
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synchronous_job_holds_its_hosts_pending_then_runs_one_autoserv_for_all() {
    let world = World::builder().drone("drone1", 4).start().await;
    world
        .create_hosts(&["host1", "host2", "host3", "host4"])
        .await;
    let dir = world.dir.display().to_string();
    // host3 is busy, so the job's group cannot form yet.
    let busy = world.start_blocking("busy", "host3").await.id;
    std::fs::write(
        world.dir.join("synch.ctl"),
        format!("echo \"$AUTOSERV_HOSTS\" >> {dir}/synch.log\necho together > out.txt\n"),
    )
    .unwrap();
    let create = |hosts: &'static str, count: &'static str| {
        let world = &world;
        async move {
            world
                .atest(&[
                    "job",
                    "create",
                    "--name",
                    "synch",
                    "--control-file",
                    "synch.ctl",
                    "--hosts",
                    hosts,
                    "--synch-count",
                    count,
                ])
                .await
        }
    };
    let too_many = create("host1,host2", "3").await;
    assert!(!too_many.status.success());
    assert!(
        String::from_utf8_lossy(&too_many.stderr).contains("more than the job's 2 hosts"),
        "{}",
        String::from_utf8_lossy(&too_many.stderr)
    );
    let out = create("host1,host2,host3", "3").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let job = world
        .wait_until(&[id], MINUTE, "two entries Pending", |j| {
            j[0].entries
                .iter()
                .filter(|e| e.status == "Pending")
                .count()
                == 2
        })
        .await
        .remove(0);
    assert_eq!(job.synch_count, 3);
    assert_eq!(job.status, "Queued", "nothing runs yet: {job:?}");
    // A Pending entry holds its host: another job on host1 waits, while one on host4
    // runs to completion meanwhile.
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    let host1 = hosts.iter().find(|h| h.name == "host1").unwrap();
    assert_eq!(host1.status, "Pending", "{hosts:?}");
    let behind = world.submit("behind", "true\n", &["host1"]).await;
    let other = world.submit("other", "true\n", &["host4"]).await;
    world.wait_for_jobs(&[other], MINUTE).await;
    assert_eq!(world.job(behind).await.entries[0].status, "Queued");
    assert!(!world.dir.join("synch.log").exists(), "no Autoserv yet");

    // host3 frees up: the group is complete and one Autoserv runs for all three.
    world.release();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(
        autotest_tests::world::read(&world.dir.join("synch.log")),
        "host1,host2,host3\n",
        "one Autoserv for the three hosts"
    );
    let group = world.results_dir().join(format!("{id}-tester/group0"));
    assert_eq!(
        autotest_tests::world::read(&group.join("out.txt")),
        "together\n"
    );
    for entry in &job.entries {
        assert_eq!(entry.status, "Completed", "{entry:?}");
        assert_eq!(entry.exit_code, Some(0));
        assert!(
            entry
                .results_path
                .as_deref()
                .is_some_and(|p| p.ends_with(&format!("{id}-tester/group0"))),
            "{entry:?}"
        );
    }
    for other in world.wait_for_jobs(&[busy, behind], MINUTE).await {
        assert_eq!(other.status, "Completed", "{other:?}");
    }
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert!(hosts.iter().all(|h| h.status == "Ready"), "{hosts:?}");
    world.stop().await;
}

/// The special tasks the stand-in Autoserv ran, as "task host" lines, in order.
fn tasks_log(world: &World) -> Vec<String> {
    std::fs::read_to_string(world.dir.join("hoststate/tasks.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn job_id(out: &std::process::Output) -> i64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_repairs_a_host_and_one_that_cannot_be_repaired_leaves_service() {
    let world = World::builder().drone("drone1", 4).start().await;
    let state = world.dir.join("hoststate");
    for host in ["host1", "host2"] {
        let out = world
            .atest(&["host", "create", host, "--label", "pool"])
            .await;
        assert!(out.status.success());
    }
    std::fs::write(world.dir.join("ok.ctl"), "echo ran > out.txt\n").unwrap();
    // host1 is broken for good; the metahost entry tries it first (lowest id).
    std::fs::write(state.join("broken-host1"), "").unwrap();
    std::fs::write(state.join("unrepairable-host1"), "").unwrap();
    let meta = job_id(
        &world
            .atest(&[
                "job",
                "create",
                "--name",
                "verified",
                "--control-file",
                "ok.ctl",
                "--label",
                "pool",
                "--run-verify",
            ])
            .await,
    );
    let job = world.wait_for_jobs(&[meta], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:?}");
    assert_eq!(
        entry.host.as_deref(),
        Some("host2"),
        "went on to another host"
    );
    assert!(
        entry.history.iter().any(|h| h.event == "repair-failed"),
        "{:?}",
        entry.history
    );
    assert_eq!(
        tasks_log(&world),
        ["verify host1", "repair host1", "verify host2"]
    );
    assert_eq!(job.tasks, ["verify"]);
    // Verify and repair results under hosts/<host>/ on the results host, as in Autotest.
    let host1_tasks: Vec<String> = std::fs::read_dir(world.results_dir().join("hosts/host1"))
        .expect("task results of host1 on the results host")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        host1_tasks.iter().any(|d| d.ends_with("-verify"))
            && host1_tasks.iter().any(|d| d.ends_with("-repair")),
        "{host1_tasks:?}"
    );
    let page: serde_json::Value =
        serde_json::from_slice(&world.atest(&["host", "list", "--json"]).await.stdout).unwrap();
    let hosts = &page["hosts"];
    assert_eq!(hosts[0]["name"], "host1");
    assert_eq!(hosts[0]["status"], "Repair Failed");
    assert_eq!(hosts[0]["locked"], true);
    assert!(hosts[0]["lock_reason"]
        .as_str()
        .unwrap()
        .starts_with("repair failed"));

    // Out of service: a job naming host1 waits, while another job runs meanwhile.
    let waiting = job_id(
        &world
            .atest(&[
                "job",
                "create",
                "--name",
                "on host1",
                "--control-file",
                "ok.ctl",
                "--hosts",
                "host1",
                "--run-verify",
            ])
            .await,
    );
    let other = world.submit("other", "true\n", &["host2"]).await;
    world.wait_for_jobs(&[other], MINUTE).await;
    assert_eq!(world.job(waiting).await.entries[0].status, "Queued");

    // An operator fixes it: `atest host repair` runs a repair that passes; the host is
    // back, and the waiting job verifies it and runs.
    std::fs::remove_file(state.join("unrepairable-host1")).unwrap();
    let repair = job_id(&world.atest(&["host", "repair", "host1"]).await);
    let repaired = world.wait_for_jobs(&[repair], MINUTE).await.remove(0);
    assert_eq!(repaired.status, "Completed", "{repaired:?}");
    assert_eq!(repaired.tasks, ["repair-only"]);
    let job = world.wait_for_jobs(&[waiting], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert_eq!(
        (hosts[0].status.as_str(), hosts[0].locked),
        ("Ready", false)
    );

    // A named host that fails verify and repair fails its entry (no other host will
    // do); `atest host unlock` puts the host back as it is.
    std::fs::write(state.join("broken-host2"), "").unwrap();
    std::fs::write(state.join("unrepairable-host2"), "").unwrap();
    let doomed = job_id(
        &world
            .atest(&[
                "job",
                "create",
                "--name",
                "doomed",
                "--control-file",
                "ok.ctl",
                "--hosts",
                "host2",
                "--run-verify",
            ])
            .await,
    );
    let job = world.wait_for_jobs(&[doomed], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Failed", "{job:?}");
    assert_eq!(entry.failure_kind.as_deref(), Some("infra"));
    assert_eq!(entry.exit_code, None, "the job never ran");
    assert!(world
        .atest(&["host", "unlock", "host2"])
        .await
        .status
        .success());
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert_eq!(
        (hosts[1].status.as_str(), hosts[1].locked),
        ("Ready", false)
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cleanup_runs_before_on_dirty_hosts_and_after_when_asked_and_hosts_show_their_task() {
    let world = World::builder().drone("drone1", 4).start().await;
    let state = world.dir.join("hoststate");
    world.create_hosts(&["host1"]).await;
    std::fs::write(world.dir.join("ok.ctl"), "echo ran >> runs.txt\n").unwrap();
    let create = |name: &'static str, extra: &'static [&'static str]| {
        let world = &world;
        async move {
            let mut args = vec![
                "job",
                "create",
                "--name",
                name,
                "--control-file",
                "ok.ctl",
                "--hosts",
                "host1",
            ];
            args.extend_from_slice(extra);
            job_id(&world.atest(&args).await)
        }
    };
    // A fresh host is clean: if-dirty does nothing; the job leaves it dirty, and the
    // cleanup after it makes it clean again.
    let first = create(
        "first",
        &["--reboot-before", "if-dirty", "--reboot-after", "always"],
    )
    .await;
    world.wait_for_jobs(&[first], MINUTE).await;
    assert_eq!(tasks_log(&world), ["cleanup host1"]);
    let second = create("second", &["--reboot-before", "if-dirty"]).await;
    world.wait_for_jobs(&[second], MINUTE).await;
    assert_eq!(
        tasks_log(&world),
        ["cleanup host1"],
        "clean: no cleanup before"
    );
    // The second job left it dirty: the third cleans up first.
    let third = create("third", &["--reboot-before", "if-dirty"]).await;
    let job = world.wait_for_jobs(&[third], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(tasks_log(&world), ["cleanup host1", "cleanup host1"]);
    let bad = world
        .atest(&[
            "job",
            "create",
            "--name",
            "x",
            "--control-file",
            "ok.ctl",
            "--hosts",
            "host1",
            "--reboot-before",
            "sometimes",
        ])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("never, if-dirty or always"));

    // While verify runs, the host shows Verifying.
    std::fs::write(state.join("hold-verify-host1"), "").unwrap();
    let held = create("held", &["--run-verify"]).await;
    world
        .wait_for(
            || tasks_log(&world).last().map(String::as_str) == Some("verify host1"),
            "verify started",
        )
        .await;
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert_eq!(hosts[0].status, "Verifying", "{hosts:?}");
    std::fs::remove_file(state.join("hold-verify-host1")).unwrap();
    let job = world.wait_for_jobs(&[held], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert_eq!(hosts[0].status, "Ready");
    world.stop().await;
}
