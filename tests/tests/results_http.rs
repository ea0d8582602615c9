//! Results read over HTTP from the scheduler (from the results host, else the drone
//! that ran the entry, else the archive), and hostile paths refused.

use autotest_tests::http::{get as get_with_location, split_url};
use autotest_tests::World;
use std::time::Duration;

/// (status, body) of a raw GET.
fn get(server: &str, path: &str) -> (u16, String) {
    let (status, _, body) = get_with_location(server, path);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_are_served_over_http_and_hostile_paths_are_refused() {
    let world = World::builder().drone("drone1", 1).start().await;
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit(
            "logs",
            "mkdir -p debug\necho hello > debug/client.log\n",
            &["host1"],
        )
        .await;
    world.wait_for_jobs(&[id], Duration::from_secs(60)).await;
    std::os::unix::fs::symlink(
        "/etc",
        world
            .results_dir()
            .join(format!("{id}-tester/host1/escape")),
    )
    .unwrap();
    let server = world.server().to_string();
    let checks = tokio::task::spawn_blocking(move || {
        let file = get(
            &server,
            &format!("/results/{id}-tester/host1/debug/client.log"),
        );
        let listing = get(&server, &format!("/results/{id}-tester/host1/"));
        let hostile: Vec<(String, u16)> = [
            "/results/../../etc/passwd".to_string(),
            "/results/%2e%2e/%2e%2e/etc/passwd".to_string(),
            format!("/results/{id}-tester/host1/..%2f..%2f..%2fetc/passwd"),
            format!("/results/{id}-tester/host1/escape/passwd"),
            "/results//etc/passwd".to_string(),
        ]
        .into_iter()
        .map(|p| {
            let (status, body) = get(&server, &p);
            assert!(!body.contains("root:"), "{p} leaked /etc/passwd");
            (p, status)
        })
        .collect();
        (file, listing, hostile)
    })
    .await
    .unwrap();
    assert_eq!(checks.0, (200, "hello\n".to_string()));
    assert_eq!(checks.1 .0, 200);
    for name in ["autoserv.stdout", "control", "debug/"] {
        assert!(
            checks.1 .1.lines().any(|l| l == name),
            "listing lacks {name}: {}",
            checks.1 .1
        );
    }
    for (path, status) in checks.2 {
        assert!(status == 400 || status == 404, "{path} answered {status}");
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_not_on_the_results_host_come_from_the_drone_then_the_archive() {
    let world = World::builder()
        .drone("drone1", 1)
        .config("SCHEDULER", "archive_host", "http://archive.example:8080")
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let control = format!(
        "echo early > early.txt\necho spaced > 'my log.txt'\n{}",
        world.blocking_control()
    );
    let id = world.submit("on the drone", &control, &["host1"]).await;
    world
        .wait_until(&[id], Duration::from_secs(60), "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;
    // Running is reported when Autoserv starts: the files exist once the control file
    // has reached its blocking part.
    let started = world.path("started-host1");
    world
        .wait_for(|| started.exists(), "the control file to write its files")
        .await;
    let server = world.server().to_string();
    let path = format!("/results/{id}-tester/host1/early.txt");

    // Running: the results are only on the drone, which serves them.
    let (s, p) = (server.clone(), path.clone());
    let (drone, on_drone, spaced, hostile) = tokio::task::spawn_blocking(move || {
        let (status, location, _) = get_with_location(&s, &p);
        assert_eq!(status, 307, "a temporary redirect to the drone");
        let (drone, drone_path) = split_url(&location.expect("a Location"));
        assert_eq!(drone_path, p, "the same path on the drone");
        let on_drone = get(&drone, &drone_path);
        let (_, spaced, _) =
            get_with_location(&s, &format!("/results/{id}-tester/host1/my%20log.txt"));
        let spaced = get(&drone, &split_url(&spaced.expect("a Location")).1);
        // The drone refuses what the scheduler refuses, and its own files.
        let hostile: Vec<(String, u16, String)> = [
            "/results/../../etc/passwd".to_string(),
            "/results/%2e%2e/%2e%2e/etc/passwd".to_string(),
            format!("/results/{id}-tester/host1/..%2f..%2f..%2f..%2fetc/passwd"),
            "/results/.journal/drone1/journal".to_string(),
            "/results/.journal/".to_string(),
        ]
        .into_iter()
        .map(|p| {
            let (status, body) = get(&drone, &p);
            (p, status, body)
        })
        .collect();
        (drone, on_drone, spaced, hostile)
    })
    .await
    .unwrap();
    assert_eq!(on_drone, (200, "early\n".to_string()));
    assert_eq!(
        spaced,
        (200, "spaced\n".to_string()),
        "names are encoded in the redirect"
    );
    for (p, status, body) in hostile {
        assert!(
            status == 400 || status == 404,
            "the drone answered {status} to {p}"
        );
        assert!(
            !body.contains("root:") && !body.contains("running"),
            "{p}: {body}"
        );
    }

    // Finished: served by the scheduler from the results host.
    world.release();
    world.wait_for_jobs(&[id], Duration::from_secs(60)).await;
    let (s, p) = (server.clone(), path.clone());
    let done = tokio::task::spawn_blocking(move || get_with_location(&s, &p))
        .await
        .unwrap();
    assert_eq!(done, (200, None, "early\n".to_string()));

    // Gone from the results host: the drone still has its copy.
    std::fs::remove_dir_all(world.results_dir().join(format!("{id}-tester"))).unwrap();
    let (s, p) = (server.clone(), path.clone());
    let (status, location, _) = tokio::task::spawn_blocking(move || get_with_location(&s, &p))
        .await
        .unwrap();
    assert_eq!(status, 307);
    assert_eq!(location, Some(format!("{drone}{path}")));

    // Gone from the drone too: the archive.
    let drone_results = world.worker_config("drone1").drone.results_dir;
    std::fs::remove_dir_all(drone_results.join(format!("{id}-tester"))).unwrap();
    let (s, p) = (server.clone(), path.clone());
    let (status, location, _) = tokio::task::spawn_blocking(move || get_with_location(&s, &p))
        .await
        .unwrap();
    assert_eq!(status, 307);
    assert_eq!(
        location,
        Some(format!("http://archive.example:8080{path}")),
        "then the archive_host"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_nowhere_are_not_found_with_the_places_looked_at() {
    let world = World::builder().drone("drone1", 1).start().await;
    let server = world.server().to_string();
    let (status, body) =
        tokio::task::spawn_blocking(move || get(&server, "/results/99-nobody/host1/x"))
            .await
            .unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("not on the results host"), "{body}");
    world.stop().await;
}
