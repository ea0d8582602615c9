//! Autotest's job-end mail, received by a real SMTP server.

use autotest_tests::smtp::{free_port, SmtpServer};
use autotest_tests::world::World;
use std::time::{Duration, Instant};

/// Waits until the server holds `n` mails; them.
async fn wait_for_mails(server: &SmtpServer, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mails = server.mails();
        if mails.len() >= n {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "{} mails of {n} after 60 s: {mails:#?}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job that ends in a listed status mails its owner and the lab's list, with its
/// name, status and links; one that ends in another status mails nobody; a relay down
/// when a job ends only delays the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_that_end_are_mailed_to_their_owner_and_the_list() {
    let port = free_port();
    let world = World::builder()
        .drone("drone1", 4)
        .config("NOTIFICATION", "smtp_host", "127.0.0.1")
        .config("NOTIFICATION", "smtp_port", &port.to_string())
        .config("NOTIFICATION", "owner_domain", "lab.example")
        .config("SCHEDULER", "notify_email", "lab-watch@lab.example")
        .config("SCHEDULER", "notify_email_from", "autotest@lab.example")
        .config("SCHEDULER", "notify_email_statuses", "Completed, Failed")
        .config("AUTOTEST_WEB", "base_url", "http://autotest.lab.example/")
        .start()
        .await;
    world.create_hosts(&["host1", "host2"]).await;

    // The relay is down when the first job ends: its mail waits.
    let passing = world
        .submit("nightly <build>", "echo ok\n", &["host1"])
        .await;
    world
        .wait_for_jobs(&[passing], Duration::from_secs(60))
        .await;
    let server = SmtpServer::start(&world.path("smtp"), port);
    let mails = wait_for_mails(&server, 1).await;
    let mail = &mails[0];
    assert!(
        mail.contains(&format!(
            "Subject: Autotest job {passing} Completed: nightly <build>"
        )),
        "{mail}"
    );
    assert!(mail.contains("lab-watch@lab.example"), "{mail}");
    assert!(mail.contains("tester@lab.example"), "{mail}");
    assert!(mail.contains("From: autotest@lab.example"), "{mail}");
    assert!(
        mail.contains(&format!("http://autotest.lab.example/jobs/{passing}")),
        "{mail}"
    );
    assert!(mail.contains("host1"), "{mail}");

    // Aborted is not listed: no mail. The next job's mail comes after its turn.
    let blocked = world.start_blocking("to abort", "host2").await;
    world
        .api(move |c| c.abort_job(blocked.id, "tester", None))
        .await
        .unwrap();
    let aborted = world
        .wait_for_jobs(&[blocked.id], Duration::from_secs(60))
        .await;
    assert_eq!(aborted[0].status, "Aborted");
    let failing = world.submit("failing", "exit 3\n", &["host1"]).await;
    let done = world
        .wait_for_jobs(&[failing], Duration::from_secs(60))
        .await;
    assert_eq!(done[0].status, "Failed");
    let mails = wait_for_mails(&server, 2).await;
    assert_eq!(mails.len(), 2, "{mails:#?}");
    assert!(
        mails[1].contains(&format!("Subject: Autotest job {failing} Failed: failing")),
        "{}",
        mails[1]
    );
    assert!(
        !mails
            .iter()
            .any(|m| m.contains(&format!("job {}", blocked.id))),
        "{mails:#?}"
    );
    world.stop().await;
}
