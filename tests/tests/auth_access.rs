//! Who the scheduler lets in: `[AUTH] anonymous_read = false` (every request needs a
//! token, results included), a single-sign-on proxy's user header believed only from
//! `[AUTH] trusted_proxies`, and a `Host` not in `[SCHEDULER] public_names` refused.

use autotest_tests::World;
use std::io::{Read, Write};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_anonymous_reads_every_request_needs_a_token_results_included() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .config("AUTH", "anonymous_read", "false")
        .start()
        .await;
    std::fs::create_dir_all(world.results_dir().join("1-tester/host1")).unwrap();
    std::fs::write(
        world.results_dir().join("1-tester/host1/out.txt"),
        "secret results",
    )
    .unwrap();
    let bearer = format!("Bearer {}", world.token());
    for path in [
        "/api/jobs",
        "/api/hosts",
        "/api/drones",
        "/api/labels",
        "/results/1-tester/host1/out.txt",
    ] {
        let answer = world.request("GET", path, &[], None).await;
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
        assert!(
            answer.error().unwrap().contains("anonymous_read"),
            "{answer:?}"
        );
        assert!(!answer.body.contains("secret results"));
        let answer = world
            .request("GET", path, &[("authorization", &bearer)], None)
            .await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }
    let answer = world
        .request(
            "GET",
            "/results/1-tester/host1/out.txt",
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(answer.body, "secret results");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_user_header_is_believed_only_from_a_trusted_address() {
    let trusted = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .config("AUTH", "trusted_proxy_header", "X-Remote-User")
        .config("AUTH", "trusted_proxies", "127.0.0.1, ::1")
        .start()
        .await;
    trusted.create_user("alice", false).await;
    let as_alice = [("x-remote-user", "alice")];
    let answer = trusted.request("GET", "/api/whoami", &as_alice, None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("\"alice\""), "{answer:?}");
    let answer = trusted
        .request(
            "POST",
            "/api/labels",
            &as_alice,
            Some(serde_json::json!({"name": "l1"})),
        )
        .await;
    assert_eq!(answer.status, 403, "alice is no admin: {answer:?}");
    let answer = trusted
        .request("GET", "/api/whoami", &[("x-remote-user", "ghost")], None)
        .await;
    assert_eq!(answer.status, 401, "a user who does not exist: {answer:?}");
    trusted.stop().await;

    let untrusted = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .config("AUTH", "trusted_proxy_header", "X-Remote-User")
        .config("AUTH", "trusted_proxies", "192.0.2.1")
        .start()
        .await;
    let answer = untrusted
        .request("GET", "/api/whoami", &[("x-remote-user", "tester")], None)
        .await;
    assert_eq!(
        answer.status, 401,
        "the header from an address not listed: {answer:?}"
    );
    let answer = untrusted
        .request(
            "POST",
            "/api/labels",
            &[("x-remote-user", "tester")],
            Some(serde_json::json!({"name": "l1"})),
        )
        .await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(
        untrusted.api(|c| c.labels()).await.unwrap().is_empty(),
        "nothing changed"
    );
    untrusted.stop().await;
}

/// Sends a raw request with the `Host` header `host`: (status, body).
fn with_host(server: &str, host: &str, request_line: &str, token: &str) -> (u16, String) {
    let addr = server.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{{\"name\": \"lab1\"}}"
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
async fn a_request_for_a_host_name_that_is_not_the_schedulers_is_refused() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let server = world.server().to_string();
    let token = world.token().to_string();
    let port = server.rsplit(':').next().unwrap().to_string();
    let answers = tokio::task::spawn_blocking(move || {
        let evil = format!("rebound.example:{port}");
        [
            with_host(&server, &evil, "POST /api/labels", &token),
            with_host(&server, &evil, "GET /api/jobs", &token),
            with_host(
                &server,
                &format!("localhost:{port}"),
                "GET /api/jobs",
                &token,
            ),
            with_host(
                &server,
                &format!("127.0.0.1:{port}"),
                "POST /api/labels",
                &token,
            ),
        ]
    })
    .await
    .unwrap();
    for (status, body) in &answers[..2] {
        assert_eq!(*status, 421, "{body}");
        assert!(body.contains("public_names"), "{body}");
    }
    assert_eq!(answers[2].0, 200, "{}", answers[2].1);
    assert_eq!(answers[3].0, 201, "{}", answers[3].1);
    let labels = world.api(|c| c.labels()).await.unwrap();
    assert_eq!(
        labels.len(),
        1,
        "only the request for a public name changed something"
    );
    world.stop().await;
}
