//! Requests that used to hurt: a job naming tens of thousands of hosts, a repair of
//! an unknown host, a missing config file, and names with control characters printed
//! by atest.

use autotest_tests::World;
use scheduler::api::{CreateHost, CreateJob};
use std::time::{Duration, Instant};

fn job_on(name: &str, hosts: Vec<String>) -> CreateJob {
    serde_json::from_value(serde_json::json!({
        "name": name, "control_file": "true\n", "hosts": hosts, "owner": "tester",
    }))
    .expect("a job body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_naming_too_many_hosts_is_refused_at_once_and_a_big_one_is_stored() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let hosts: Vec<String> = (0..60_000).map(|i| format!("host{i}")).collect();
    let body = job_on("too big", hosts);
    let started = Instant::now();
    let refused = world.api(move |c| c.create_job(&body)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused after {:?}",
        started.elapsed()
    );
    let message = refused.to_string();
    assert!(message.contains("at most 5000 hosts"), "{message}");
    assert!(world.api(|c| c.jobs()).await.unwrap().is_empty());

    // Above the group size and old SQLite's 999 variables, below the cap: stored whole.
    const BIG: usize = 1200;
    let creators = (0..8).map(|part| {
        world.api(move |c| {
            for i in (part..BIG).step_by(8) {
                let body = CreateHost {
                    name: format!("big{i}"),
                    labels: vec![],
                };
                c.create_host(&body).expect("host created");
            }
        })
    });
    futures_util::future::join_all(creators).await;
    let names: Vec<String> = (0..BIG).map(|i| format!("big{i}")).collect();
    let mut twice = names.clone();
    twice.push("big7".into());
    let body = job_on("twice", twice);
    let message = world
        .api(move |c| c.create_job(&body))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("big7 is listed twice"), "{message}");
    let id = world.submit_body(job_on("big", names)).await;
    let job = world.job(id).await;
    assert_eq!(job.entries.len(), BIG);
    assert!(job.entries.iter().all(|e| e.status == "Queued"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repairing_an_unknown_host_is_not_found_like_the_other_host_calls() {
    let world = World::builder().drone("drone1", 1).start().await;
    let server = world.server().to_string();
    let bearer = format!("Bearer {}", world.token());
    let statuses = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        ["lock", "repair"].map(|call| {
            agent
                .post(format!("{server}/api/hosts/nosuch/{call}"))
                .header("Authorization", &bearer)
                .send_json(serde_json::json!({ "by": "tester" }))
                .expect("an answer")
                .status()
                .as_u16()
        })
    })
    .await
    .unwrap();
    assert_eq!(statuses, [404, 404]);
    let out = world.atest(&["host", "repair", "nosuch"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nosuch"), "{stderr}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_config_file_is_named_plainly() {
    for binary in ["autotest-scheduler", "drone-worker"] {
        let out = tokio::process::Command::new(autotest_tests::binary(binary))
            .args(["--config", "/nonexistent/global_config.ini"])
            .output()
            .await
            .expect("run");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "cannot read config file /nonexistent/global_config.ini: No such file or directory"
            ),
            "{binary}: {stderr}"
        );
        assert!(!stderr.contains("[-]"), "{binary}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atest_prints_control_characters_in_names_and_reasons_escaped() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let name = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\nsecond line";
    let id = world.submit(name, "exit 3\n", &["host1"]).await;
    world.wait_for_jobs(&[id], Duration::from_secs(60)).await;

    let shown = world.atest(&["job", "show", &id.to_string()]).await;
    let listed = world.atest(&["job", "list"]).await;
    for out in [&shown, &listed] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
            "raw control characters: {stdout:?}"
        );
        assert!(
            stdout.contains("evil\\x1b[2J\\x1b]0;owned\\x07\\nsecond line"),
            "{stdout}"
        );
    }
    // JSON carries the name as it is, escaped the JSON way.
    let json = world
        .atest(&["job", "show", &id.to_string(), "--json"])
        .await;
    let view: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(view["name"], name);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_certificate_stops_each_program_before_it_opens_anything() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.pem"), "not PEM\n").unwrap();
    let config = dir.path().join("global_config.ini");
    std::fs::write(
        &config,
        "[AUTOTEST_WEB]\ndatabase: autotest.db\n[SCHEDULER]\ndrones: drone1\nhttp_listen: 127.0.0.1:0\ntls_cert: missing.pem\ntls_key: garbage.pem\n[DRONE]\nresults_dir: drone\nhttp_listen: 127.0.0.1:0\ntls_cert: garbage.pem\ntls_key: garbage.pem\n",
    )
    .unwrap();
    for (binary, section, file) in [
        ("autotest-scheduler", "[SCHEDULER] tls_cert", "missing.pem"),
        ("drone-worker", "[DRONE] tls_cert", "garbage.pem"),
    ] {
        let out = tokio::process::Command::new(autotest_tests::binary(binary))
            .arg("--config")
            .arg(&config)
            .args(if binary == "drone-worker" {
                &["--name", "drone1"][..]
            } else {
                &[][..]
            })
            .output()
            .await
            .expect("run");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}: {section}: ", config.display())) && stderr.contains(file),
            "{binary}: {stderr}"
        );
    }
    assert!(
        !dir.path().join("autotest.db").exists() && !dir.path().join("drone").exists(),
        "nothing opened"
    );
}
