//! Integrity of results: the worker writes a manifest (path, size, SHA-256 of every
//! file) into the results directory, checks the results host's copy against it after
//! the push, and pushes again, comparing contents, when the copy does not match. The
//! corruption here is one rsync's quick check (size and modification time) cannot see:
//! a stale file on the results host with the same size and time as Autoserv's.

use autotest_tests::world::read;
use autotest_tests::World;
use std::path::Path;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const GOOD: &str = "good result 0123\n";
const STALE: &str = "BAD! result 0123\n";

/// Runs a job that writes `payload.txt` (with a fixed time), puts a stale copy of the
/// same size and time on the results host while the job runs, and checks that the
/// entry completes only with the good copy there, and says what happened.
async fn stale_copy_is_pushed_again(world: &World) {
    world.create_hosts(&["host1"]).await;
    let control = format!(
        "printf '{}' > payload.txt\ntouch -d @1000000000 payload.txt\n{}",
        GOOD.trim_end().to_string() + "\\n",
        world.blocking_control()
    );
    let id = world.submit("integrity", &control, &["host1"]).await;
    world
        .wait_until(&[id], MINUTE, "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    let copy = world.results_dir().join(format!("{id}-tester/host1"));
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("payload.txt"), STALE).unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-d", "@1000000000"])
        .arg(copy.join("payload.txt"))
        .status()
        .unwrap();
    assert!(touched.success());
    world.release();

    let job = world.wait_for_jobs(&[id], MINUTE).await.remove(0);
    let entry = &job.entries[0];
    assert_eq!(entry.status, "Completed", "{job:#?}");
    assert_eq!(
        read(&copy.join("payload.txt")),
        GOOD,
        "the stale copy was replaced"
    );
    assert!(
        entry
            .history
            .iter()
            .any(|h| h.event == "push-failing" && h.detail.contains("payload.txt")),
        "the mismatch is in the entry's history: {entry:#?}"
    );

    // The manifest is on the results host, and `job show` sums it up.
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&copy.join(".autotest-manifest.json"))).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let listed: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(
        listed.contains(&"payload.txt") && listed.contains(&"control"),
        "{listed:?}"
    );
    let payload = files.iter().find(|f| f["path"] == "payload.txt").unwrap();
    assert_eq!(payload["size"], GOOD.len());
    assert_eq!(payload["sha256"], sha256_of(&copy.join("payload.txt")));
    let on_disk: u64 = listed
        .iter()
        .map(|p| std::fs::metadata(copy.join(p)).unwrap().len())
        .sum();
    let summary = entry
        .manifest
        .expect("job show carries the manifest's size");
    assert_eq!(summary.files, files.len() as u64);
    assert_eq!(summary.bytes, on_disk);

    // `atest job show --json` shows the same.
    let out = world
        .atest(&["job", "show", &id.to_string(), "--json"])
        .await;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        shown["entries"][0]["manifest"],
        serde_json::json!({"files": files.len(), "bytes": on_disk})
    );
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_copy_on_a_local_results_host_is_replaced_before_the_entry_completes() {
    let world = World::builder().drone("drone1", 2).start().await;
    stale_copy_is_pushed_again(&world).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_copy_on_a_results_host_over_ssh_is_replaced_before_the_entry_completes() {
    let mut world = World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await;
    let sshd = autotest_tests::sshd::Sshd::start(&world.dir.join("sshd"));
    world.start_worker_pushing_to("drone1", &sshd).await;
    stale_copy_is_pushed_again(&world).await;
    drop(sshd);
    world.stop().await;
}
