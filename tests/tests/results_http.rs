//! Results read over HTTP from the scheduler, and hostile paths refused.

use autotest_tests::World;
use std::io::{Read, Write};
use std::time::Duration;

/// A raw HTTP/1.0 GET (no client-side path normalisation, no chunked body): (status, body).
fn get(server: &str, path: &str) -> (u16, String) {
    let addr = server.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
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
