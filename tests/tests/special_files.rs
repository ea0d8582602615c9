//! What a job leaves in its results directory is data: devices, FIFOs and sockets are
//! neither pushed nor served (and the manifest lists them as skipped), sparse files stay
//! sparse, symlinks stay links; nothing a reader asks for blocks a server; a job's
//! results are capped by `[DRONE] max_results_mb`.

use autotest_tests::http::{get as get_with_location, split_url};
use autotest_tests::World;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// GETs `path` from `server`, failing the test if the answer takes over 5 s.
async fn prompt_get(server: &str, path: &str) -> (u16, Option<String>, String) {
    let (server, path) = (server.to_string(), path.to_string());
    let asked = path.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || get_with_location(&server, &path)),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {asked} did not answer within 5 s"))
    .unwrap()
}

fn kind_of(path: &Path) -> Option<std::fs::FileType> {
    std::fs::symlink_metadata(path).ok().map(|m| m.file_type())
}

const CONTROL: &str = "mkfifo fifo\n\
    mknod dev c 1 5\n\
    python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\"\n\
    truncate -s 16M sparse\n\
    printf x > 'odd\nname'\n\
    mkdir sub && ln -s /etc/passwd sub/passwd-link\n\
    echo done > out.txt\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_fifos_and_sockets_are_neither_copied_nor_served() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let go = world.path("go");
    let control = format!(
        "{CONTROL}while [ -d '{}' ] && [ ! -e '{}' ]; do sleep 0.02; done\n",
        world.path("").display(),
        go.display()
    );
    let id = world.submit("special", &control, &["host1"]).await;
    let entry = format!("/results/{id}-tester/host1");
    let drone_dir = world
        .path("drone-drone1")
        .join(format!("{id}-tester/host1"));
    world
        .wait_for(
            || drone_dir.join("out.txt").exists(),
            "the job made its files",
        )
        .await;
    // While it runs the scheduler sends readers to the drone: where the drone serves.
    let (status, location, _) = prompt_get(world.server(), &format!("{entry}/out.txt")).await;
    assert_eq!(status, 307);
    let (drone, _) = split_url(&location.expect("a Location"));
    std::fs::write(&go, b"").unwrap();
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(job.status, "Completed");

    let pushed = world.results_dir().join(format!("{id}-tester/host1"));
    for name in ["fifo", "dev", "sock"] {
        assert!(drone_dir.join(name).exists() || kind_of(&drone_dir.join(name)).is_some());
        assert_eq!(kind_of(&pushed.join(name)), None, "{name} was copied");
    }
    let sparse = std::fs::metadata(pushed.join("sparse")).unwrap();
    assert_eq!(sparse.len(), 16 << 20);
    assert!(sparse.blocks() * 512 < 1 << 20, "the copy is not sparse");
    assert!(kind_of(&pushed.join("sub/passwd-link")).is_some_and(|k| k.is_symlink()));
    let manifest: serde_json::Value = serde_json::from_str(&autotest_tests::world::read(
        &pushed.join(".autotest-manifest.json"),
    ))
    .unwrap();
    let skipped: Vec<(String, String)> = manifest["skipped"]
        .as_array()
        .expect("the manifest lists what was skipped")
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().into(),
                s["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("dev".to_string(), "character device".to_string()),
            ("fifo".into(), "fifo".into()),
            ("sock".into(), "socket".into())
        ]
    );

    for server in [world.server(), drone.as_str()] {
        for name in ["fifo", "dev", "sock", "sub/passwd-link"] {
            let (status, _, body) = prompt_get(server, &format!("{entry}/{name}")).await;
            assert!(
                status == 403 || status == 404,
                "{server}: {name} answered {status}: {body:.100}"
            );
        }
        let (status, _, _) = prompt_get(server, &format!("{entry}//out.txt")).await;
        assert_eq!(status, 400, "{server}: an empty path component");
        let (status, _, listing) = prompt_get(server, &format!("{entry}/")).await;
        assert_eq!(status, 200);
        assert!(listing.lines().any(|l| l == "odd\\nname"), "{listing}");
        assert!(
            !listing.lines().any(|l| l == "odd" || l == "name"),
            "{listing}"
        );
    }
    // A FIFO put straight into the results host's tree: each GET answers at once
    // (none waits for a writer, so none holds a thread).
    let planted = pushed.join("planted");
    assert!(std::process::Command::new("mkfifo")
        .arg(&planted)
        .status()
        .unwrap()
        .success());
    for _ in 0..20 {
        let (status, _, _) = prompt_get(world.server(), &format!("{entry}/planted")).await;
        assert!(status == 403 || status == 404, "answered {status}");
    }
    let (status, _, body) = prompt_get(world.server(), &format!("{entry}/out.txt")).await;
    assert_eq!((status, body.as_str()), (200, "done\n"), "still serving");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_over_max_results_mb_stop_the_job_and_fail_it_without_filling_the_disk() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("DRONE", "max_results_mb", "1")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let control = "echo small > small.txt\nhead -c 52428800 /dev/zero > big\nsleep 600\n";
    let id = world.submit("too big", control, &["host1"]).await;
    let job = &world.wait_for_jobs(&[id], MINUTE).await[0];
    let entry = &job.entries[0];
    assert_eq!(job.status, "Failed");
    assert_eq!(entry.failure_kind.as_deref(), Some("test"));
    let reason = entry.failure_reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("results exceed max_results_mb=1"),
        "{reason:?}"
    );
    for dir in [
        world.results_dir().join(format!("{id}-tester/host1")),
        world
            .path("drone-drone1")
            .join(format!("{id}-tester/host1")),
    ] {
        assert!(
            !dir.join("big").exists(),
            "{}: big is still there",
            dir.display()
        );
        assert_eq!(
            autotest_tests::world::read(&dir.join("small.txt")),
            "small\n"
        );
        let used: u64 = walk_blocks(&dir);
        assert!(used <= 1 << 20, "{}: {used} bytes", dir.display());
    }
    world.stop().await;
}

fn walk_blocks(dir: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            total += walk_blocks(&entry.path());
        }
    }
    total
}
