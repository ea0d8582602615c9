//! Retention of results: a drone removes its copy once the results host's copy is
//! verified (never before, and a removal cut short by a kill is finished at the next
//! start without touching unverified results); the results host archives a finished
//! job (read afterwards through the archive host) or purges it, at once through
//! `atest job archive`/`purge` (admins only) or by age.

use autotest_tests::http::{get, split_url};
use autotest_tests::World;
use common::shutdown::Shutdown;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const CONTROL: &str = "mkdir -p debug\necho hello > debug/client.log\n";

fn drone_copy(world: &World, id: i64) -> PathBuf {
    world.dir.join(format!("drone-drone1/{id}-tester/host1"))
}

fn pushed_log(world: &World) -> String {
    std::fs::read_to_string(world.dir.join("drone-drone1/.journal/drone1/pushed.log"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drone_removes_its_copy_only_once_the_results_host_has_verified_it() {
    let mut world = World::builder()
        .drone("drone1", 1)
        .config("DRONE", "keep_pushed_hours", "0")
        .without_workers()
        .start()
        .await;
    let mut sshd = autotest_tests::sshd::Sshd::start(&world.dir.join("sshd"));
    world.start_worker_pushing_to("drone1", &sshd).await;
    world.create_hosts(&["host1"]).await;
    // The results host cannot be reached: the push fails and the copy stays.
    sshd.stop();
    let id = world.submit("unreachable", CONTROL, &["host1"]).await;
    world
        .wait_until(&[id], MINUTE, "a failed push", |jobs| {
            let entry = &jobs[0].entries[0];
            entry.status == "Gathering" && entry.failure_reason.is_some()
        })
        .await;
    assert!(
        drone_copy(&world, id).join("debug/client.log").exists(),
        "results not on the results host stay on the drone"
    );
    assert!(!pushed_log(&world).contains(&format!("{id}-tester")));
    // Once reachable, the entry completes and the drone's copy goes.
    sshd.start_again();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    let copy = drone_copy(&world, id);
    world
        .wait_for(|| !copy.exists(), "the drone's copy to be removed")
        .await;
    assert!(!copy.parent().unwrap().exists(), "the job's directory too");
    assert!(pushed_log(&world).contains("removed"));
    // The worker counts the removal.
    let url = world.drone_results_url(id, "host1", "drone1").await;
    let metrics = tokio::task::spawn_blocking(move || {
        autotest_tests::metrics::parse(&get(&url, "/metrics").2)
    })
    .await
    .unwrap();
    assert_eq!(
        metrics.get("autotest_worker_results_removed_total", &[]),
        1.0
    );
    assert_eq!(
        metrics.get("autotest_worker_results_removal_failures_total", &[]),
        0.0
    );
    drop(sshd);
    world.stop().await;
}

/// Starts the `drone-worker` binary for drone1 with `fault` chosen; its results under
/// `<world>/drone-drone1` as the in-process workers'.
fn spawn_worker(world: &World, fault: Option<&str>) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(world.dir.join("worker-drone1.log"))
        .unwrap();
    let mut command = tokio::process::Command::new(autotest_tests::binary("drone-worker"));
    command
        .arg("--config")
        .arg(&world.config_path)
        .args(["--name", "drone1"])
        .env("AUTOTEST_DRONE_RESULTS_DIR", world.dir.join("drone-drone1"))
        .env(
            "AUTOTEST_BROKER_URL",
            world.worker_config("drone1").broker.url.expose(),
        )
        .env_remove(drone_worker::fault::VARIABLE)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(fault) = fault {
        command.env(drone_worker::fault::VARIABLE, fault);
    }
    command.spawn().unwrap()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removal_cut_short_by_a_kill_is_finished_at_restart_and_touches_nothing_unverified() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("DRONE", "keep_pushed_hours", "0")
        .without_workers()
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let drone_results = world.dir.join("drone-drone1");
    // Results the results host never verified (no record of them).
    let unverified = drone_results.join("999-tester/host1");
    std::fs::create_dir_all(&unverified).unwrap();
    std::fs::write(unverified.join("status.log"), b"kept").unwrap();

    let mut worker = spawn_worker(&world, Some("exit-at:removing"));
    let id = world.submit("removed", CONTROL, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.entries[0].status, "Completed", "{job:?}");
    let exit = tokio::time::timeout(MINUTE, worker.wait())
        .await
        .expect("the worker is killed at the removal")
        .unwrap();
    assert_eq!(exit.code(), Some(86), "the injected kill");
    // Renamed away, not deleted yet, and not recorded removed.
    let trash = drone_results.join(".autotest-removing");
    assert!(!drone_copy(&world, id).exists());
    assert_eq!(entries(&trash), 1);
    assert!(!pushed_log(&world).contains("removed"));

    let mut worker = spawn_worker(&world, None);
    let deadline = Instant::now() + MINUTE;
    while entries(&trash) > 0 || !pushed_log(&world).contains("removed") {
        assert!(Instant::now() < deadline, "the removal was never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read(unverified.join("status.log")).unwrap(),
        b"kept",
        "unverified results are never removed"
    );
    assert!(world
        .results_dir()
        .join(format!("{id}-tester/host1/debug/client.log"))
        .exists());
    worker.kill().await.unwrap();
    world.stop().await;
}

/// Serves `root` as an archive host: `/results/<path>` from `root/<path>`.
async fn archive_host(root: &Path) -> (String, common::shutdown::ShutdownTrigger) {
    let (trigger, shutdown) = Shutdown::new();
    let (bound, _) = common::results_http::listen(
        root.to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        axum::Router::new(),
        shutdown,
    )
    .await
    .unwrap();
    (format!("http://{bound}"), trigger)
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_archives_or_purges_a_finished_job_and_readers_are_sent_to_the_archive() {
    let archive = tempfile::tempdir().unwrap();
    let (archive_url, _serving) = archive_host(archive.path()).await;
    let world = World::builder()
        .drone("drone1", 2)
        .config("SCHEDULER", "archive_host", &archive_url)
        .config(
            "SCHEDULER",
            "archive_rsync",
            &archive.path().display().to_string(),
        )
        .start()
        .await;
    world.create_hosts(&["host1", "host2"]).await;
    let kept = world.submit("archived", CONTROL, &["host1"]).await;
    let gone = world.submit("purged", CONTROL, &["host1"]).await;
    world.wait_for_jobs(&[kept, gone], MINUTE).await;
    let running = world.start_blocking("running", "host2").await.id;

    // Not an admin: refused, nothing moved.
    let user = world.create_user("ann", false).await;
    let refused = world
        .atest_as(&user, &["job", "archive", &kept.to_string()])
        .await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("admin"), "{}", stderr(&refused));
    let answer = world
        .request(
            "POST",
            &format!("/api/jobs/{kept}/purge"),
            &[("Authorization", &format!("Bearer {user}"))],
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(answer.status, 403, "{answer:?}");
    // Not finished: refused with the reason.
    let early = world.atest(&["job", "archive", &running.to_string()]).await;
    assert!(!early.status.success());
    assert!(
        stderr(&early).contains("not finished"),
        "{}",
        stderr(&early)
    );
    world.release();
    assert!(world
        .results_dir()
        .join(format!("{kept}-tester/host1"))
        .exists());

    let archived = world.atest(&["job", "archive", &kept.to_string()]).await;
    assert!(archived.status.success(), "{}", stderr(&archived));
    assert!(stdout(&archived).contains("archived"));
    assert!(!world.results_dir().join(format!("{kept}-tester")).exists());
    let shown = world.atest(&["job", "show", &kept.to_string()]).await;
    assert!(
        stdout(&shown).contains("Results: archived"),
        "{}",
        stdout(&shown)
    );
    assert_eq!(world.job(kept).await.results_place, "archived");

    let purged = world.atest(&["job", "purge", &gone.to_string()]).await;
    assert!(purged.status.success(), "{}", stderr(&purged));
    let shown = world.atest(&["job", "show", &gone.to_string()]).await;
    assert!(
        stdout(&shown).contains("Results: removed"),
        "{}",
        stdout(&shown)
    );
    assert!(!world.results_dir().join(format!("{gone}-tester")).exists());

    let server = world.server().to_string();
    let (redirect, from_archive, removed, pages) = tokio::task::spawn_blocking(move || {
        let path = format!("/results/{kept}-tester/host1/debug/client.log");
        let (status, location, _) = get(&server, &path);
        let location = location.expect("a Location");
        let (host, at) = split_url(&location);
        let (_, _, body) = get(&host, &at);
        let removed = get(
            &server,
            &format!("/results/{gone}-tester/host1/debug/client.log"),
        );
        let pages = [kept, gone].map(|id| get(&server, &format!("/jobs/{id}")).2);
        let metrics = autotest_tests::metrics::parse(&get(&server, "/metrics").2);
        let moved = ["archive", "purge"]
            .map(|action| metrics.get("autotest_results_moved_total", &[("action", action)]));
        assert_eq!(moved, [1.0, 1.0], "one archive and one purge counted");
        ((status, location), body, (removed.0, removed.2), pages)
    })
    .await
    .unwrap();
    let [kept_page, gone_page] = pages;
    assert!(
        kept_page.contains(r#"data-field="results-place">archived on "#),
        "the job page says where its results went: {kept_page}"
    );
    assert!(
        gone_page.contains(r#"data-field="results-place">removed on "#),
        "{gone_page}"
    );
    assert_eq!(redirect.0, 307);
    assert!(redirect.1.starts_with(&archive_url), "{}", redirect.1);
    assert_eq!(from_archive, "hello\n");
    assert_eq!(removed.0, 410, "{}", removed.1);
    assert!(removed.1.contains("removed"), "{}", removed.1);
    world.wait_for_jobs(&[running], MINUTE).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_jobs_leave_the_results_host_by_age() {
    let archive = tempfile::tempdir().unwrap();
    let world = World::builder()
        .drone("drone1", 1)
        // About a second after the job ends; a pass every second.
        .config("SCHEDULER", "archive_after_days", "0.00001")
        .config(
            "SCHEDULER",
            "archive_rsync",
            &archive.path().display().to_string(),
        )
        .config("SCHEDULER", "retention_pass_sec", "1")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let id = world.submit("aged", CONTROL, &["host1"]).await;
    world.wait_for_jobs(&[id], MINUTE).await;
    world
        .wait_until(&[id], MINUTE, "archived", |jobs| {
            jobs[0].results_place == "archived"
        })
        .await;
    assert!(!world.results_dir().join(format!("{id}-tester")).exists());
    assert_eq!(
        std::fs::read_to_string(
            archive
                .path()
                .join(format!("{id}-tester/host1/debug/client.log"))
        )
        .unwrap(),
        "hello\n"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archive_over_ssh_is_made_and_checked_before_the_results_host_lets_go() {
    let outside = tempfile::tempdir().unwrap();
    let mut sshd = autotest_tests::sshd::Sshd::start(&outside.path().join("sshd"));
    let archive = outside.path().join("archive");
    let options: Vec<String> = sshd
        .ssh_options()
        .iter()
        .map(|o| shlex::try_quote(o).unwrap().into_owned())
        .collect();
    let world = World::builder()
        .drone("drone1", 1)
        .config(
            "SCHEDULER",
            "archive_rsync",
            &format!("{}:{}", sshd.results_host(), archive.display()),
        )
        .config("SCHEDULER", "archive_ssh_options", &options.join(" "))
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let first = world.submit("over ssh", CONTROL, &["host1"]).await;
    let second = world.submit("unreachable", CONTROL, &["host1"]).await;
    world.wait_for_jobs(&[first, second], MINUTE).await;

    let archived = world.atest(&["job", "archive", &first.to_string()]).await;
    assert!(archived.status.success(), "{}", stderr(&archived));
    assert_eq!(
        std::fs::read_to_string(archive.join(format!("{first}-tester/host1/debug/client.log")))
            .unwrap(),
        "hello\n"
    );
    assert!(!world.results_dir().join(format!("{first}-tester")).exists());

    // The archive cannot be reached: the results stay where they are.
    sshd.stop();
    let failed = world.atest(&["job", "archive", &second.to_string()]).await;
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("stay on the results host"),
        "{}",
        stderr(&failed)
    );
    assert!(world
        .results_dir()
        .join(format!("{second}-tester/host1/debug/client.log"))
        .exists());
    assert_eq!(world.job(second).await.results_place, "results-host");
    let server = world.server().to_string();
    let metrics = tokio::task::spawn_blocking(move || {
        autotest_tests::metrics::parse(&get(&server, "/metrics").2)
    })
    .await
    .unwrap();
    let archive = [("action", "archive")];
    assert_eq!(metrics.get("autotest_results_moved_total", &archive), 1.0);
    assert_eq!(
        metrics.get("autotest_results_move_failures_total", &archive),
        1.0,
        "the failed archive is counted"
    );
    world.stop().await;
}
