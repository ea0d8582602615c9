//! The pages in a real browser (headless chromium over WebDriver, see
//! `autotest_tests::browser`): signing in and out, a job made from the form and aborted,
//! and what a signed-in browser may not do (another user's job, the API with a cookie
//! alone, a form without the session's anti-forgery token).

use autotest_tests::browser::{self, get_page, post_form, raw_sign_in, Browser};
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// A world with one drone and no workers: jobs stay Queued until aborted.
async fn world(extra: &[(&str, &str, &str)]) -> World {
    let mut builder = World::builder().drone("drone1", 1).without_workers();
    for (section, key, value) in extra {
        builder = builder.config(section, key, value);
    }
    builder.start().await
}

/// Signs `browser` in with `token` from the sign-in page, and waits for the page it
/// goes on to.
async fn sign_in(browser: &Browser, world: &World, token: &str) {
    browser.open(&format!("{}/signin", world.server())).await;
    browser.fill("#token", token).await;
    browser.click("#signin-form button[type=submit]").await;
    browser.wait_for_css(".who form[action='/signout']").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_good_token_signs_in_and_a_bad_one_is_told_why() {
    let world = world(&[("AUTH", "anonymous_read", "false")]).await;
    let alice = world.create_user("alice", false).await;
    let browser = Browser::start("signin").await;

    // Without anonymous reads, a page sends the browser to sign in first.
    browser.open(&format!("{}/jobs?x=1", world.server())).await;
    browser.wait_for_css("#token").await;
    assert_eq!(browser.path().await, "/signin?next=/jobs%3Fx%3D1");
    let label = browser.wait_for_css("label[for=token]").await;
    assert_eq!(label.text().await.unwrap(), "API token");
    browser.screenshot("form").await;
    browser.assert_no_console_errors().await;

    browser.fill("#token", "atk_0123456789abcdef").await;
    browser.click("#signin-form button[type=submit]").await;
    browser
        .wait_for_css_text("#signin-error", "unknown or revoked")
        .await;
    assert!(browser.cookie("autotest_session").await.is_none());
    browser.screenshot("bad-token").await;
    // The 401 answer is logged by the browser itself; nothing else may be.
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.contains("401")),
        "console: {errors:?}"
    );

    browser.fill("#token", &alice).await;
    browser.click("#signin-form button[type=submit]").await;
    browser.wait_for_css(".who form[action='/signout']").await;
    browser.wait_for_css_text(".who", "alice").await;
    assert_eq!(
        browser.path().await,
        "/jobs?x=1",
        "back to the page asked for"
    );
    browser.screenshot("signed-in").await;
    browser.assert_no_console_errors().await;

    browser.click(".who form[action='/signout'] button").await;
    browser.wait_for_css("#token").await;
    assert_eq!(browser.path().await, "/signin");
    let who = browser.wait_for_css_text(".who", "Sign in").await;
    assert!(!who.contains("alice"), "{who}");
    assert!(browser.cookie("autotest_session").await.is_none());
    browser.open(&format!("{}/jobs", world.server())).await;
    browser.wait_for_css("#token").await;
    browser.screenshot("signed-out").await;
    browser.assert_no_console_errors().await;
    browser.close().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_made_from_the_form_is_aborted_by_its_owner() {
    let world = world(&[]).await;
    world.create_hosts(&["host1", "host2"]).await;
    let alice = world.create_user("alice", false).await;
    let browser = Browser::start("job_form").await;
    sign_in(&browser, &world, &alice).await;

    browser.open(&format!("{}/jobs/new", world.server())).await;
    browser.fill("#name", "from the form").await;
    browser
        .fill("#control_file", "echo one > out.txt\necho two >> out.txt\n")
        .await;
    browser.fill("#hosts", "host1, host2").await;
    browser.fill("#synch_count", "2").await;
    browser.fill("#priority", "5").await;
    browser.fill("#timeout_mins", "30").await;
    browser.fill("#max_runtime_mins", "90").await;
    browser.screenshot("filled").await;
    browser.assert_no_console_errors().await;
    browser.click("#job-form button[type=submit]").await;

    let deadline = std::time::Instant::now() + browser::PAGE_DEADLINE;
    let id = loop {
        let path = browser.path().await;
        if let Some(id) = path
            .strip_prefix("/jobs/")
            .and_then(|s| s.parse::<i64>().ok())
        {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "still on {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // What the API says of it is what the form said.
    let job = world.job(id).await;
    assert_eq!(job.name, "from the form");
    assert_eq!(job.owner, "alice");
    assert_eq!(job.priority, 5);
    assert_eq!(job.synch_count, 2);
    assert_eq!(job.status, "Queued");
    let mut hosts: Vec<_> = job.entries.iter().filter_map(|e| e.host.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, ["host1", "host2"]);
    // The job page may not be served by this build; what it logged is not checked.
    let _ = browser.console_errors().await;

    browser
        .open(&format!("{}/jobs/{id}/abort", world.server()))
        .await;
    browser.wait_for_text("Queued").await;
    browser.screenshot("before-abort").await;
    browser.fill("input[name=reason]", "not needed").await;
    browser.click("button[name=abort]").await;
    let shown = browser.wait_for_any_text(&["Aborted", "Aborting"]).await;
    assert_eq!(browser.path().await, format!("/jobs/{id}/abort"));
    assert!(
        !browser.has_css("button[name=abort]").await,
        "{shown}: no second abort"
    );
    browser.screenshot("aborted").await;
    browser.assert_no_console_errors().await;
    let jobs = world.wait_for_jobs(&[id], MINUTE).await;
    assert_eq!(jobs[0].status, "Aborted");
    browser.close().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_users_job_has_no_abort_button_and_a_forged_abort_is_refused() {
    let world = world(&[]).await;
    world.create_hosts(&["host1"]).await;
    let bob = world.create_user("bob", false).await;
    let id = world
        .submit("the admin's", "echo hi > out.txt\n", &["host1"])
        .await;
    let browser = Browser::start("not_yours").await;
    sign_in(&browser, &world, &bob).await;
    browser
        .open(&format!("{}/jobs/{id}/abort", world.server()))
        .await;
    browser
        .wait_for_text("Only its owner or an admin may abort it")
        .await;
    assert!(!browser.has_css("button[name=abort]").await);
    browser.screenshot("no-abort-button").await;
    browser.assert_no_console_errors().await;

    // Bob's own session and anti-forgery token, taken from his browser.
    let cookie = browser.cookie("autotest_session").await.expect("a session");
    let cookie = format!("autotest_session={}", cookie.value());
    let csrf = browser
        .wait_for_css("input[name=csrf]")
        .await
        .attr("value")
        .await
        .unwrap()
        .expect("the page embeds the csrf");
    let server = world.server().to_string();
    let abort = format!("/ui/jobs/{id}/abort");
    let forged = post_form(&server, &abort, &[("cookie", &cookie)], &[("csrf", &csrf)]).await;
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(
        forged.body.contains("only its owner or an admin"),
        "{forged:?}"
    );
    for fields in [vec![], vec![("csrf", "0".repeat(64))]] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let forged = post_form(&server, &abort, &[("cookie", &cookie)], &fields).await;
        assert_eq!(forged.status, 403, "no or a wrong csrf: {forged:?}");
        assert!(forged.body.contains("anti-forgery"), "{forged:?}");
    }
    // A cookie alone never makes an API change.
    let json = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/json"),
    ];
    let api = world
        .request(
            "POST",
            &format!("/api/jobs/{id}/abort"),
            &json,
            Some(serde_json::json!({"by": "bob"})),
        )
        .await;
    assert_eq!(api.status, 401, "{api:?}");
    let body = serde_json::json!({
        "name": "by cookie", "control_file": "true\n", "hosts": ["host1"], "owner": "bob"
    });
    let api = world.request("POST", "/api/jobs", &json, Some(body)).await;
    assert_eq!(api.status, 401, "{api:?}");
    // Nor does a form posted from another site's page, even with the right fields.
    let session = raw_sign_in(&server, world.token()).await;
    let cross_site = post_form(
        &server,
        &abort,
        &[
            ("cookie", &session.cookie),
            ("origin", "https://evil.example"),
        ],
        &[("csrf", &session.csrf)],
    )
    .await;
    assert_eq!(cross_site.status, 403, "{cross_site:?}");
    assert_eq!(world.job(id).await.status, "Queued", "nothing was aborted");
    browser.close().await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_cookie_is_http_only_and_same_site_strict() {
    let world = world(&[]).await;
    let alice = world.create_user("alice", false).await;
    let server = world.server().to_string();

    let session = raw_sign_in(&server, &alice).await;
    let set = &session.set_cookie;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(!set.contains(&alice), "the cookie is not the token");
    let bad = post_form(&server, "/signin", &[], &[("token", "atk_nope")]).await;
    assert_eq!(bad.status, 401, "{bad:?}");
    assert!(bad.header("set-cookie").is_none());
    let next = post_form(
        &server,
        "/signin",
        &[],
        &[("token", &alice), ("next", "//evil.example/")],
    )
    .await;
    assert_eq!(
        next.header("location"),
        Some("/jobs"),
        "no redirect off the site"
    );

    let browser = Browser::start("cookie").await;
    sign_in(&browser, &world, &alice).await;
    let cookie = browser.cookie("autotest_session").await.expect("a session");
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    let script_sees = browser
        .client()
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert!(
        !script_sees.to_string().contains("autotest_session"),
        "scripts cannot read it: {script_sees}"
    );
    browser.assert_no_console_errors().await;
    browser.close().await;

    // Signing out ends the session on the server, not only in the browser.
    let out = post_form(
        &server,
        "/signout",
        &[("cookie", &session.cookie)],
        &[("csrf", &session.csrf)],
    )
    .await;
    assert_eq!(out.status, 303, "{out:?}");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let page = get_page(&server, "/jobs/new", &[("cookie", &session.cookie)]).await;
    assert!(!page.body.contains("name=\"csrf\""), "{page:?}");
    // Signing in again in the same browser ends the session it held.
    let first = raw_sign_in(&server, &alice).await;
    let again = post_form(
        &server,
        "/signin",
        &[("cookie", &first.cookie)],
        &[("token", &alice)],
    )
    .await;
    assert_eq!(again.status, 303, "{again:?}");
    let page = get_page(&server, "/jobs/new", &[("cookie", &first.cookie)]).await;
    assert!(!page.body.contains("name=\"csrf\""), "{page:?}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    world.stop().await;
}

/// Host `name` as the API shows it.
async fn host(world: &World, name: &str) -> api::HostView {
    let name = name.to_string();
    world
        .api(move |c| c.hosts().expect("hosts listed"))
        .await
        .into_iter()
        .find(|h| h.name == name)
        .expect("the host is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_forms_follow_the_apis_rules() {
    let world = world(&[]).await;
    world.create_hosts(&["shared", "private"]).await;
    let alice = world.create_user("alice", false).await;
    // `private` is taken out of Everyone: alice shares no group with it.
    let group = api::auth::AclView {
        name: "lab".into(),
        users: vec![],
        hosts: vec!["private".into()],
    };
    world
        .api(move |c| c.create_acl(&group))
        .await
        .expect("group");
    let out = api::auth::AclMembers {
        users: vec![],
        hosts: vec!["private".into()],
    };
    world
        .api(move |c| c.acl_remove(api::auth::EVERYONE, &out))
        .await
        .expect("out of Everyone");
    let server = world.server().to_string();
    let alice = raw_sign_in(&server, &alice).await;
    let admin = raw_sign_in(&server, world.token()).await;
    let post =
        |session: &browser::RawSession, path: String, fields: Vec<(&'static str, String)>| {
            let (server, session) = (server.clone(), session.clone());
            async move {
                let mut all = vec![("csrf", session.csrf.clone())];
                all.extend(fields);
                let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
                post_form(&server, &path, &[("cookie", &session.cookie)], &all).await
            }
        };
    let reason = || vec![("reason", "cabling".to_string())];

    let locked = post(&alice, "/ui/hosts/shared/lock".into(), reason()).await;
    assert_eq!(locked.status, 303, "{locked:?}");
    assert_eq!(locked.header("location"), Some("/hosts/shared"));
    let shared = host(&world, "shared").await;
    assert!(shared.locked);
    assert_eq!(shared.lock_reason.as_deref(), Some("cabling"));
    assert_eq!(shared.locked_by.as_deref(), Some("alice"));
    let unlocked = post(&alice, "/ui/hosts/shared/unlock".into(), vec![]).await;
    assert_eq!(unlocked.status, 303, "{unlocked:?}");
    assert!(!host(&world, "shared").await.locked);
    let refused = post(&alice, "/ui/hosts/private/lock".into(), reason()).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("shares no ACL group"), "{refused:?}");
    assert!(!host(&world, "private").await.locked);

    for action in ["disable", "enable"] {
        let refused = post(&alice, format!("/ui/drones/drone1/{action}"), vec![]).await;
        assert_eq!(refused.status, 403, "{action} by a non-admin: {refused:?}");
    }
    let capacity = || vec![("capacity", "3".to_string())];
    let refused = post(&alice, "/ui/drones/drone1/capacity".into(), capacity()).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let disabled = post(&admin, "/ui/drones/drone1/disable".into(), vec![]).await;
    assert_eq!(disabled.status, 303, "{disabled:?}");
    let resized = post(&admin, "/ui/drones/drone1/capacity".into(), capacity()).await;
    assert_eq!(resized.status, 303, "{resized:?}");
    let bad = post(
        &admin,
        "/ui/drones/drone1/capacity".into(),
        vec![("capacity", "lots".into())],
    )
    .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let unknown = post(&admin, "/ui/drones/nope/disable".into(), vec![]).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    // A job on a host alice shares no group with is refused as by the API; a bad
    // number names its field.
    let job = |hosts: &str, priority: &str| {
        vec![
            ("name", "nope".to_string()),
            ("control_file", "true\n".to_string()),
            ("hosts", hosts.to_string()),
            ("priority", priority.to_string()),
        ]
    };
    let refused = post(&alice, "/ui/jobs".into(), job("private", "0")).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let bad = post(&alice, "/ui/jobs".into(), job("shared", "high")).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body.contains("priority: expected a whole number"),
        "{bad:?}"
    );
    let created = post(&alice, "/ui/jobs".into(), job("shared", "")).await;
    assert_eq!(created.status, 303, "{created:?}");
    let id: i64 = created.header("location").unwrap()["/jobs/".len()..]
        .parse()
        .unwrap();
    assert_eq!(world.job(id).await.owner, "alice");
    let drones = world.api(|c| c.drones().expect("drones")).await;
    assert!(!drones[0].enabled);
    assert_eq!(drones[0].capacity, 3);
    world.stop().await;
}
