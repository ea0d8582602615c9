//! Users, tokens and who may do what on the HTTP API: every change refused without a
//! token, with a bad or revoked one, and without the right (nothing changing), and
//! accepted with it; tokens made, listed and revoked; `autotest-scheduler add-user`.

use autotest_tests::world::users::Answer;
use autotest_tests::World;
use serde_json::{json, Value};

/// A world with one drone and no worker: jobs stay queued, drones can be changed.
async fn world() -> World {
    World::builder()
        .drone("drone1", 2)
        .without_workers()
        .start()
        .await
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// Sends `method path body` with `token` (None: none).
async fn call(
    world: &World,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &Value,
) -> Answer {
    let header = token.map(bearer);
    let headers: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let body = (method != "GET").then(|| body.clone());
    world.request(method, path, &headers, body).await
}

/// Asserts a refusal: `status`, the one-line JSON error, and on 401 the challenge.
fn assert_refused(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    let error = answer
        .error()
        .unwrap_or_else(|| panic!("{what}: not a JSON error: {answer:?}"));
    assert!(!error.contains('\n'), "{what}: {error}");
    if status == 401 {
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{what}");
    }
}

/// The world's state that the admin-only calls below would change.
async fn snapshot(world: &World) -> Value {
    world
        .api(|c| {
            json!({
                "hosts": c.hosts().unwrap().iter().map(|h| (h.name.clone(), h.locked)).collect::<Vec<_>>(),
                "labels": c.labels().unwrap().iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
                "drones": c.drones().unwrap().iter().map(|d| (d.name.clone(), d.enabled, d.capacity)).collect::<Vec<_>>(),
                "sets": c.drone_sets().unwrap().iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "users": c.users().unwrap().iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
            })
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_calls_are_refused_without_a_valid_admin_token_and_change_nothing() {
    let world = world().await;
    let admin = world.token().to_string();
    let alice = world.create_user("alice", false).await;
    let revoked = world.create_user("carol", false).await;
    let id = world.api_as(&revoked, |c| c.tokens()).await.unwrap()[0].id;
    world
        .api_as(&revoked, move |c| c.revoke_token(id))
        .await
        .unwrap();

    let calls = [
        (
            "POST",
            "/api/hosts",
            json!({"name": "newhost", "labels": []}),
        ),
        ("POST", "/api/labels", json!({"name": "newlabel"})),
        (
            "POST",
            "/api/drone-sets",
            json!({"name": "newset", "drones": ["drone1"]}),
        ),
        ("POST", "/api/drones/drone1/disable", json!({})),
        (
            "POST",
            "/api/drones/drone1/capacity",
            json!({"capacity": 7}),
        ),
        (
            "POST",
            "/api/users",
            json!({"name": "mallory", "admin": true}),
        ),
        ("GET", "/api/users", json!(null)),
    ];
    let before = snapshot(&world).await;
    for (method, path, body) in &calls {
        let what = format!("{method} {path}");
        if *method != "GET" {
            let answer = call(&world, None, method, path, body).await;
            assert_refused(&answer, 401, &format!("{what} without a token"));
        }
        let answer = call(&world, Some("atk_0000"), method, path, body).await;
        assert_refused(&answer, 401, &format!("{what} with a bad token"));
        let answer = call(&world, Some(&revoked), method, path, body).await;
        assert_refused(&answer, 401, &format!("{what} with a revoked token"));
        let answer = call(&world, Some(&alice), method, path, body).await;
        assert_refused(
            &answer,
            403,
            &format!("{what} as a user who is not an admin"),
        );
        assert!(answer.error().unwrap().contains("admin"), "{answer:?}");
    }
    assert_eq!(snapshot(&world).await, before, "nothing changed");

    for (method, path, body) in &calls {
        let answer = call(&world, Some(&admin), method, path, body).await;
        assert!(
            (200..300).contains(&answer.status),
            "{method} {path} as admin: {answer:?}"
        );
    }
    let after = snapshot(&world).await;
    assert_eq!(after["hosts"], json!([["newhost", false]]));
    assert_eq!(after["labels"], json!(["newlabel"]));
    assert_eq!(after["drones"], json!([["drone1", false, 7]]));
    assert_eq!(after["sets"], json!(["newset"]));
    assert_eq!(
        after["users"],
        json!(["alice", "carol", "mallory", "tester"])
    );
    let answer = call(
        &world,
        Some(&admin),
        "POST",
        "/api/drones/drone1/enable",
        &json!({}),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_are_anonymous_but_a_bad_token_is_refused_and_host_changes_need_a_user() {
    let world = world().await;
    world.create_hosts(&["host1"]).await;
    let alice = world.create_user("alice", false).await;
    for path in [
        "/api/jobs",
        "/api/hosts",
        "/api/drones",
        "/api/labels",
        "/api/drone-sets",
    ] {
        let answer = call(&world, None, "GET", path, &json!(null)).await;
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        let answer = call(&world, Some("atk_nope"), "GET", path, &json!(null)).await;
        assert_refused(&answer, 401, &format!("{path} with a bad token"));
    }
    let answer = call(&world, None, "GET", "/api/whoami", &json!(null)).await;
    assert_refused(&answer, 401, "whoami without a token");
    let answer = world
        .request(
            "GET",
            "/api/jobs",
            &[("authorization", "Basic dGVzdGVyOng=")],
            None,
        )
        .await;
    assert_refused(&answer, 401, "a scheme other than Bearer");

    let host_calls = [
        ("/api/hosts/host1/lock", json!({"reason": "mine"})),
        (
            "/api/hosts/host1/labels",
            json!({"add": ["l1"], "remove": []}),
        ),
        ("/api/hosts/host1/unlock", json!({})),
        ("/api/hosts/host1/repair", json!({"by": "someone"})),
    ];
    for (path, body) in &host_calls {
        let answer = call(&world, None, "POST", path, body).await;
        assert_refused(&answer, 401, path);
    }
    let hosts = world.api(|c| c.hosts()).await.unwrap();
    assert!(!hosts[0].locked && hosts[0].labels.is_empty(), "{hosts:?}");
    assert!(
        world.api(|c| c.jobs()).await.unwrap().is_empty(),
        "no repair job"
    );
    for (path, body) in &host_calls {
        let answer = call(&world, Some(&alice), "POST", path, body).await;
        assert!((200..300).contains(&answer.status), "{path}: {answer:?}");
    }
    let repair: Value = serde_json::from_str(
        &call(
            &world,
            Some(&alice),
            "POST",
            "/api/hosts/host1/repair",
            &json!({"by": "someone"}),
        )
        .await
        .body,
    )
    .unwrap();
    let job = world.job(repair["id"].as_i64().unwrap()).await;
    assert_eq!(
        job.owner, "alice",
        "a repair is its caller's, whatever `by` says"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_is_its_callers_and_only_its_owner_or_an_admin_aborts_it() {
    let world = world().await;
    world.create_hosts(&["host1"]).await;
    let alice = world.create_user("alice", false).await;
    let bob = world.create_user("bob", false).await;
    let job = |owner: &str| json!({"name": "j", "control_file": "true\n", "hosts": ["host1"], "owner": owner});

    let answer = call(&world, None, "POST", "/api/jobs", &job("alice")).await;
    assert_refused(&answer, 401, "a job without a token");
    let answer = call(&world, Some(&alice), "POST", "/api/jobs", &job("bob")).await;
    assert_refused(&answer, 403, "a user submitting as another");
    assert!(
        world.api(|c| c.jobs()).await.unwrap().is_empty(),
        "nothing was created"
    );

    let created = call(&world, Some(&alice), "POST", "/api/jobs", &job("alice")).await;
    assert_eq!(created.status, 201, "{created:?}");
    let alices: i64 = serde_json::from_str::<Value>(&created.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let created = call(&world, Some(&alice), "POST", "/api/jobs", &job("")).await;
    let unnamed = serde_json::from_str::<Value>(&created.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        world.job(unnamed).await.owner,
        "alice",
        "no owner: the caller"
    );
    let on_behalf = world
        .api(|c| {
            c.create_job(&scheduler::api::CreateJob::new(
                "j",
                "true\n",
                vec!["host1".into()],
                "bob",
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        world.job(on_behalf).await.owner,
        "bob",
        "an admin submits for bob"
    );

    // Bob may not abort Alice's job; nothing about it changes.
    let path = format!("/api/jobs/{alices}/abort");
    let answer = call(&world, Some(&bob), "POST", &path, &json!({"by": "alice"})).await;
    assert_refused(&answer, 403, "aborting another user's job");
    let answer = call(&world, None, "POST", &path, &json!({"by": "alice"})).await;
    assert_refused(&answer, 401, "aborting without a token");
    let job = world.job(alices).await;
    assert_eq!(job.status, "Queued", "{job:?}");
    assert_eq!(job.entries[0].aborted_by, None);

    // Alice may, and the abort is recorded as hers whatever the body says.
    let answer = call(
        &world,
        Some(&alice),
        "POST",
        &path,
        &json!({"by": "mallory"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let jobs = world
        .wait_until(
            &[alices],
            std::time::Duration::from_secs(30),
            "aborted",
            |j| j[0].status == "Aborted",
        )
        .await;
    assert_eq!(jobs[0].entries[0].aborted_by.as_deref(), Some("alice"));
    // An admin may abort anyone's.
    world
        .api(move |c| c.abort_job(on_behalf, "x", None))
        .await
        .unwrap();
    let job = world.job(on_behalf).await;
    assert_eq!(
        job.entries[0].aborted_by.as_deref(),
        Some("tester"),
        "{job:?}"
    );
    let answer = call(
        &world,
        Some(&alice),
        "POST",
        "/api/jobs/999999/abort",
        &json!({"by": "alice"}),
    )
    .await;
    assert_eq!(answer.status, 404, "{answer:?}");

    // atest carries the token from $ATEST_TOKEN.
    let out = world
        .atest_as(&bob, &["job", "abort", &unnamed.to_string()])
        .await;
    assert!(!out.status.success(), "bob may not abort alice's job");
    let out = world.atest_with(None, &["host", "lock", "host1"]).await;
    assert!(
        !out.status.success(),
        "atest without a token changes nothing"
    );
    assert!(!world.api(|c| c.hosts()).await.unwrap()[0].locked);
    world.stop().await;
}
