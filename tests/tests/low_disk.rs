//! Disks that fill: a drone whose results filesystem is below its `[DRONE] min_free_mb`
//! shows `low-disk` and gets no new work until it has room again; a job that fills its
//! drone's disk is an infra failure, retried on another drone, never a test failure; a
//! full results host holds the entry in Gathering, its results kept on the drone, until
//! the push goes through. Each drone or results host that fills runs on a small tmpfs of
//! the test's own (root only; the test says so and skips otherwise).

use autotest_tests::metrics;
use autotest_tests::tmpfs::Tmpfs;
use autotest_tests::world::read;
use autotest_tests::World;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;

/// A tmpfs of `size_mb`, or None (with the reason on stderr) where one cannot be mounted.
fn small_disk(size_mb: u64) -> Option<Tmpfs> {
    match Tmpfs::mount(size_mb) {
        Ok(tmpfs) => Some(tmpfs),
        Err(why) => {
            eprintln!("skipped: this test needs its own small filesystem: {why}");
            None
        }
    }
}

/// The scheduler's `/metrics`, parsed.
/// Starts drone1's worker with its results in `results` (on a small disk) and the
/// floor `min_free_mb`.
async fn start_drone1_on(world: &mut World, results: std::path::PathBuf, min_free_mb: u64) {
    world
        .start_worker_with(
            "drone1",
            move |config| {
                config.drone.results_dir = results;
                config.drone.min_free_mb = min_free_mb;
            },
            autotest_tests::binary("autoserv-supervisor"),
        )
        .await;
}

async fn scrape(world: &World) -> metrics::Exposition {
    let server = world.server().to_string();
    let (status, _, body) =
        tokio::task::spawn_blocking(move || autotest_tests::http::get(&server, "/metrics"))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    metrics::parse(&body)
}

/// Waits until the scheduler has recorded `n` more heartbeats of `drone` (each one wakes
/// the dispatcher).
async fn heartbeats(world: &World, drone: &str, n: usize) {
    let beat = |drones: Vec<api::DroneView>| {
        drones
            .into_iter()
            .find(|d| d.name == drone)
            .and_then(|d| d.last_heartbeat)
    };
    let mut last = beat(world.api(|c| c.drones()).await.unwrap());
    let mut seen = 0;
    let deadline = Instant::now() + MINUTE;
    while seen < n {
        assert!(Instant::now() < deadline, "{drone} stopped heartbeating");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = beat(world.api(|c| c.drones()).await.unwrap());
        if now != last {
            seen += 1;
            last = now;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drone_low_on_disk_takes_no_new_work_until_its_disk_has_room_again() {
    let Some(disk) = small_disk(64) else { return };
    let mut world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    let filler = disk.fill("filler", 40);
    let free_before = disk.free_mb();
    assert!(free_before < 32, "{free_before} MiB free");
    let results = disk.path().join("results");
    start_drone1_on(&mut world, results, 32).await;
    world.wait_for_drone("drone1", "low-disk").await;
    let drone = world.api(|c| c.drones()).await.unwrap().remove(0);
    let free = drone.free_mb.expect("free space reported");
    assert!((16..32).contains(&free), "{drone:?}");
    let listed = world.atest(&["drone", "list"]).await;
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("FREE MB") && listed.contains("low-disk"),
        "{listed}"
    );

    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("waits for room", "echo ran > out.txt\n", &["host1"])
        .await;
    // Every heartbeat wakes the dispatcher; after three the entry is still waiting.
    heartbeats(&world, "drone1", 3).await;
    let job = world.job(id).await;
    assert_eq!(job.entries[0].status, "Queued", "{job:?}");
    assert_eq!(job.entries[0].attempt, 0, "never dispatched: {job:?}");

    let scraped = scrape(&world).await;
    assert_eq!(
        scraped.get("autotest_drones", &[("status", "low-disk")]),
        1.0
    );
    let drone_free = scraped.get("autotest_drone_free_bytes", &[("drone", "drone1")]);
    assert_eq!(drone_free, free as f64 * MIB);
    assert!(
        scraped.get(
            "autotest_scheduler_free_bytes",
            &[("filesystem", "results")]
        ) > 0.0
    );
    let database = scraped.value(
        "autotest_scheduler_free_bytes",
        &[("filesystem", "database")],
    );
    match world.config.database {
        common::config::DatabaseConfig::Sqlite { .. } => assert!(database > Some(0.0)),
        common::config::DatabaseConfig::Mysql { .. } => assert_eq!(database, None),
    }
    let server = world.server().to_string();
    let (status, _, page) =
        tokio::task::spawn_blocking(move || autotest_tests::http::get(&server, "/drones"))
            .await
            .unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(">low-disk<"), "{page}");
    assert!(
        page.contains(&format!("data-field=\"free\">{free}.0 MiB<"))
            || page.contains(&format!("data-field=\"free\">{free} MiB<")),
        "{page}"
    );
    assert!(page.contains("id=\"scheduler-disks\""), "{page}");

    // Room again: the drone takes work by itself.
    std::fs::remove_file(&filler).unwrap();
    world.wait_for_drone("drone1", "ok").await;
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(job.entries[0].drone.as_deref(), Some("drone1"));
    let out = world
        .results_dir()
        .join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(read(&out), "ran\n");
    world.stop().await;
    drop(disk);
}

/// Fills the disk it runs on, and fails, where `../../fill-me` marks the drone's
/// results directory; elsewhere writes `out.txt` and passes.
const FILLS_ONE_DRONE: &str = "if [ -e ../../fill-me ]; then
  dd if=/dev/zero of=filler bs=1M 2>/dev/null
  echo 'cannot write: disk full' >&2
  exit 1
fi
echo ran > out.txt
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_that_fills_its_drone_s_disk_is_retried_on_another_drone_never_failed() {
    let Some(disk) = small_disk(48) else { return };
    let mut world = World::builder()
        .drone("drone1", 1)
        .drone("drone2", 1)
        .without_workers()
        .start()
        .await;
    let results = disk.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::write(results.join("fill-me"), "").unwrap();
    start_drone1_on(&mut world, results, 8).await;
    world.start_worker("drone2").await;
    world.wait_for_drone("drone1", "ok").await;
    world.wait_for_drone("drone2", "ok").await;
    world.create_hosts(&["host1"]).await;

    // Both drones idle: drone1 comes first by name.
    let id = world.submit("fills", FILLS_ONE_DRONE, &["host1"]).await;
    let job = world.wait_for_jobs(&[id], 2 * MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(job.status, "Completed", "{job:?}");
    assert_eq!(entry.drone.as_deref(), Some("drone2"), "{entry:?}");
    assert_eq!((entry.attempt, entry.infra_retries), (2, 1), "{entry:?}");
    assert_eq!(entry.exit_code, Some(0));
    let first = &entry.history[0];
    assert_eq!(
        (first.event.as_str(), first.drone.as_deref(), first.attempt),
        ("infra-failure", Some("drone1"), 1),
        "{entry:?}"
    );
    assert!(first.detail.contains("results filesystem"), "{first:?}");
    let out = world
        .results_dir()
        .join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(read(&out), "ran\n");
    // The full drone's attempt is kept beside it, as any infra failure's.
    let kept = world
        .results_dir()
        .join(format!("{id}-tester/host1.attempt-1"));
    assert!(kept.join("autoserv.args").exists(), "{}", kept.display());
    // And the full drone takes nothing more until its disk has room.
    world.wait_for_drone("drone1", "low-disk").await;
    world.stop().await;
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_results_host_holds_the_entry_in_gathering_until_the_push_goes_through() {
    let Some(disk) = small_disk(16) else { return };
    let results_host = disk.path().join("results");
    let world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "results_dir", results_host.to_str().unwrap())
        .config("DRONE", "push_retry_max_sec", "1")
        .start()
        .await;
    assert_eq!(world.results_dir(), results_host);
    let filler = disk.fill("filler", 14);
    world.create_hosts(&["host1"]).await;
    // Not zeros: the push keeps those sparse, taking no room.
    let control = "head -c 4194304 /dev/urandom > big\necho ran > out.txt\n";
    let id = world.submit("big results", control, &["host1"]).await;
    let jobs = world
        .wait_until(&[id], MINUTE, "the push is failing", |jobs| {
            jobs[0].entries[0]
                .failure_reason
                .as_deref()
                .is_some_and(|r| r.contains("results not pushed yet"))
        })
        .await;
    let entry = &jobs[0].entries[0];
    assert_eq!(entry.status, "Gathering", "{entry:?}");
    let on_drone = world
        .dir
        .join(format!("drone-drone1/{id}-tester/host1/big"));
    assert!(
        on_drone.exists(),
        "kept on the drone: {}",
        on_drone.display()
    );
    let scraped = scrape(&world).await;
    let free = scraped.get(
        "autotest_scheduler_free_bytes",
        &[("filesystem", "results")],
    );
    assert!(free < 4.0 * MIB, "{free}");

    std::fs::remove_file(&filler).unwrap();
    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    assert_eq!(job.status, "Completed", "{job:?}");
    let out = results_host.join(format!("{id}-tester/host1/out.txt"));
    assert_eq!(read(&out), "ran\n");
    world.stop().await;
    drop(disk);
}
