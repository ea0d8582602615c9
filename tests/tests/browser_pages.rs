//! The read-only pages in a real browser (headless chromium over WebDriver, see
//! `autotest_tests::browser`): a job made with `atest` on the open job list, its status
//! and its log changing on screen without a reload, a click through to a test's log,
//! values from users shown as text, and every page free of console errors, with a
//! screenshot of each.

use autotest_tests::browser::Browser;
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// Marks the open document, so that a later check can tell it was not reloaded.
async fn mark(browser: &Browser) {
    browser
        .client()
        .execute("window.autotestMark = 'still here';", vec![])
        .await
        .unwrap();
}

/// Whether the document marked by [`mark`] is still the one shown.
async fn still_marked(browser: &Browser) -> bool {
    browser
        .client()
        .execute("return window.autotestMark === 'still here';", vec![])
        .await
        .unwrap()
        == serde_json::Value::Bool(true)
}

/// Signs the browser in as the world's admin.
async fn sign_in(browser: &Browser, world: &World) {
    browser.open(&format!("{}/signin", world.server())).await;
    browser.fill("#token", world.token()).await;
    browser.click("#signin-form button[type=submit]").await;
    browser.wait_for_css(".who form[action='/signout']").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_from_atest_shows_on_the_job_list_and_its_status_changes_without_a_reload() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let control = world.path("blocking.control");
    std::fs::write(&control, world.blocking_control()).unwrap();
    let out = world
        .atest(&[
            "job",
            "create",
            "--name",
            "seen in a browser",
            "--control-file",
            control.to_str().unwrap(),
            "--hosts",
            "host1",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    world
        .wait_until(&[id], MINUTE, "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await;

    let browser = Browser::start("pages-live-status").await;
    browser.open(&format!("{}/jobs", world.server())).await;
    let row = format!("#job-{id}");
    browser.wait_for_css_text(&row, "seen in a browser").await;
    let status = format!("#job-{id} [data-field=status]");
    browser.wait_for_css_text(&status, "Running").await;
    browser.screenshot("running").await;
    mark(&browser).await;

    world.release();
    browser.wait_for_css_text(&status, "Completed").await;
    let cell = browser.wait_for_css(&status).await;
    let class = cell.attr("class").await.unwrap().unwrap_or_default();
    assert!(class.contains("status-completed"), "{class}");
    assert!(still_marked(&browser).await, "the page was reloaded");
    browser.screenshot("completed").await;
    browser.assert_no_console_errors().await;
    browser.close().await;
    world.stop().await;
}

/// Prints a line, then waits for `step` in the world's directory before the next line,
/// then leaves a status log (dated now, so the results spreadsheet's last week holds
/// it) whose test has a debug log, and waits for `release`.
fn logging_control(world: &World) -> String {
    let dir = world.path("").display().to_string();
    format!(
        r#"echo "first line of the job"
while [ -d "{dir}" ] && [ ! -e "{dir}/step" ]; do sleep 0.02; done
echo "second line, after the step"
mkdir -p sleeptest/debug
echo "sleeptest slept well" > sleeptest/debug/sleeptest.DEBUG
now=$(date +%s)
printf 'START\tsleeptest\tsleeptest\ttimestamp=%s\t\n' "$now" > status.log
printf '\tGOOD\tsleeptest\tsleeptest\ttimestamp=%s\tcompleted successfully\n' "$now" >> status.log
printf 'END GOOD\tsleeptest\tsleeptest\ttimestamp=%s\t\n' "$now" >> status.log
while [ -d "{dir}" ] && [ ! -e "{dir}/release" ]; do sleep 0.02; done
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_entry_s_log_grows_on_screen_and_a_test_s_log_is_a_click_away() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let id = world
        .submit("live log", &logging_control(&world), &["host1"])
        .await;
    let job = world
        .wait_until(&[id], MINUTE, "Running", |j| {
            j[0].entries[0].status == "Running"
        })
        .await
        .remove(0);
    let entry = job.entries[0].id;

    let browser = Browser::start("pages-live-log").await;
    browser.open(&format!("{}/jobs/{id}", world.server())).await;
    let log = format!("#log-{entry}");
    browser
        .wait_for_css_text(&log, "first line of the job")
        .await;
    mark(&browser).await;
    std::fs::write(world.path("step"), b"").unwrap();
    browser
        .wait_for_css_text(&log, "second line, after the step")
        .await;
    let text = browser.wait_for_css(&log).await.text().await.unwrap();
    assert!(
        text.find("first line").unwrap() < text.find("second line").unwrap(),
        "appended in order: {text}"
    );
    assert!(still_marked(&browser).await, "the page was reloaded");
    browser.screenshot("growing").await;

    world.release();
    browser.wait_for_css_text("#job-status", "Completed").await;
    assert!(still_marked(&browser).await, "the page was reloaded");
    browser.assert_no_console_errors().await;

    // Once it has ended, the page shows its test; the test's debug log is two clicks
    // away (its directory, then the file).
    browser.open(&format!("{}/jobs/{id}", world.server())).await;
    let tests = format!("#tests-{entry}");
    browser.wait_for_css_text(&tests, "sleeptest").await;
    browser.wait_for_css_text(&tests, "GOOD").await;
    browser.screenshot("job-with-tests").await;
    browser
        .click(&format!("{tests} a[href$='/sleeptest/debug/']"))
        .await;
    browser.wait_for_text("sleeptest.DEBUG").await;
    browser.click("a[href$='sleeptest.DEBUG']").await;
    browser.wait_for_text("sleeptest slept well").await;
    browser.screenshot("test-log").await;
    browser.assert_no_console_errors().await;
    browser.close().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_shows_values_as_text_without_console_errors() {
    let world = World::builder().drone("drone1", 2).start().await;
    world.create_hosts(&["host1"]).await;
    let name = "<script>alert(1)</script>";
    let hostile = world.submit(name, "echo '<b>bold</b>'\n", &["host1"]).await;
    let plain = world
        .submit("with tests", &logging_control(&world), &["host1"])
        .await;
    std::fs::write(world.path("step"), b"").unwrap();
    world.release();
    world.wait_for_jobs(&[hostile, plain], MINUTE).await;

    let browser = Browser::start("pages").await;
    let server = world.server().to_string();
    let pages = [
        ("jobs", "/jobs".to_string(), "#jobs"),
        ("job", format!("/jobs/{hostile}"), "#job-name"),
        ("job-tests", format!("/jobs/{plain}"), "#entries"),
        ("hosts", "/hosts".into(), "#hosts"),
        ("host", "/hosts/host1".into(), "#host-settings"),
        ("drones", "/drones".into(), "#drones"),
        ("results", "/results".into(), "#results-grid"),
        ("tests", format!("/tests?job={plain}"), "#tests"),
        ("signin", "/signin".into(), "#token"),
    ];
    for (step, path, css) in &pages {
        browser.open(&format!("{server}{path}")).await;
        browser.wait_for_css(css).await;
        browser.screenshot(step).await;
        browser.assert_no_console_errors().await;
    }
    // The hostile name is text on the list and on its page, and nothing ran.
    browser.open(&format!("{server}/jobs")).await;
    let cell = browser
        .wait_for_css(&format!("#job-{hostile} [data-field=name]"))
        .await;
    assert_eq!(cell.text().await.unwrap(), name);
    browser.open(&format!("{server}/jobs/{hostile}")).await;
    let title = browser.wait_for_css("#job-name").await;
    assert_eq!(title.text().await.unwrap(), name);
    assert!(
        browser.client().get_alert_text().await.is_err(),
        "an alert is open: the name ran as a script"
    );
    let scripts = browser
        .client()
        .execute("return document.querySelectorAll('script').length;", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(1), "only the page's own script");

    // Signed in, the job form and the action buttons render cleanly too.
    sign_in(&browser, &world).await;
    for (step, path, css) in [
        ("new-job", "/jobs/new".to_string(), "#control_file"),
        (
            "drones-admin",
            "/drones".into(),
            "form[action='/ui/drones/drone1/disable']",
        ),
        (
            "host-admin",
            "/hosts/host1".into(),
            "form[action='/ui/hosts/host1/lock']",
        ),
    ] {
        browser.open(&format!("{server}{path}")).await;
        browser.wait_for_css(css).await;
        browser.screenshot(step).await;
        browser.assert_no_console_errors().await;
    }
    browser.close().await;
    world.stop().await;
}
