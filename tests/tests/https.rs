//! The scheduler's API and a drone's results server over HTTPS, with certificates
//! made for the test: clients trusting the lab's CA get through, others are refused,
//! and plain HTTP to the HTTPS port gets nothing.

use autotest_tests::certs::TestCa;
use autotest_tests::World;
use scheduler::client::Client;
use std::path::Path;
use std::time::Duration;

/// A GET that follows no redirect: (status, `Location`, body), trusting `ca`.
fn get(url: &str, ca: &Path) -> Result<(u16, Option<String>, String), String> {
    let tls = api::tls::trusting(ca).map_err(|e| e.to_string())?;
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(tls)
        .build();
    let mut response = ureq::Agent::new_with_config(config)
        .get(url)
        .call()
        .map_err(|e| e.to_string())?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((response.status().as_u16(), location, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atest_over_https_trusts_the_lab_ca_and_refuses_another() {
    let certs = TestCa::new();
    let world = World::builder()
        .drone("drone1", 1)
        .https(&certs)
        .start()
        .await;
    assert!(
        world.server().starts_with("https://127.0.0.1:"),
        "{}",
        world.server()
    );
    world.create_hosts(&["host1"]).await;

    let ca = certs.ca().display().to_string();
    let trusted = world.atest(&["--ca-file", &ca, "host", "list"]).await;
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("host1"));
    let listed = world.atest(&["job", "list"]).await;
    assert!(listed.status.success(), "$ATEST_CA_FILE is honoured");

    let other = certs.other_ca().display().to_string();
    let refused = world.atest(&["--ca-file", &other, "job", "list"]).await;
    assert!(!refused.status.success(), "another CA's client got through");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cannot reach the scheduler") && stderr.contains("--ca-file"),
        "{stderr}"
    );

    let missing = world
        .atest(&["--ca-file", "/nonexistent/ca.pem", "job", "list"])
        .await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/ca.pem"),
        "the bad CA file is named"
    );

    // Plain HTTP to the HTTPS port, and HTTPS with only the public roots, get nothing.
    let plain = world.server().replacen("https://", "http://", 1);
    let public = world.server().to_string();
    let (plain, public) = tokio::task::spawn_blocking(move || {
        (Client::new(&plain).jobs(), Client::new(&public).jobs())
    })
    .await
    .unwrap();
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    assert!(
        public.is_err(),
        "the test CA is not a public root: {public:?}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_on_an_https_drone_reach_a_client_trusting_the_lab_ca() {
    let certs = TestCa::new();
    let world = World::builder()
        .drone("drone1", 1)
        .https(&certs)
        .start()
        .await;
    world.create_hosts(&["host1"]).await;
    let control = format!("echo early > early.txt\n{}", world.blocking_control());
    let id = world.submit("on the drone", &control, &["host1"]).await;
    world
        .wait_until(&[id], Duration::from_secs(60), "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;

    // Running: the scheduler (trusting the CA through drone_ca_file) finds the file
    // on the drone and sends the reader there, over HTTPS.
    let url = format!("{}/results/{id}-tester/host1/early.txt", world.server());
    let (ca, other) = (certs.ca(), certs.other_ca());
    let (redirect, on_drone, refused) = tokio::task::spawn_blocking(move || {
        let redirect = get(&url, &ca).expect("the scheduler answers");
        let location = redirect.1.clone().expect("a Location");
        (redirect, get(&location, &ca), get(&location, &other))
    })
    .await
    .unwrap();
    assert_eq!(redirect.0, 307, "{redirect:?}");
    let location = redirect.1.unwrap();
    assert!(location.starts_with("https://127.0.0.1:"), "{location}");
    assert_eq!(on_drone.unwrap(), (200, None, "early\n".to_string()));
    let refused = refused.unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");

    world.release();
    world.wait_for_jobs(&[id], Duration::from_secs(60)).await;
    world.stop().await;
}
