//! API tokens: made, listed and revoked by their user (any, by an admin), stored only
//! as a hash; and `autotest-scheduler add-user`, the bootstrap without the API.

use autotest_tests::World;
use scheduler::client::ClientError;

/// Every stored token hash, read from the database itself.
async fn stored_hashes(world: &World) -> Vec<String> {
    async fn read(db: &scheduler::db::Db) -> Result<Vec<String>, scheduler::db::DbError> {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use scheduler::db::schema::api_tokens;
        Ok(scheduler::with_conn!(db, |conn| {
            api_tokens::table
                .select(api_tokens::hash)
                .load(conn)
                .await?
        }))
    }
    let db = scheduler::db::Db::open(&world.config.database)
        .await
        .expect("database");
    read(&db).await.expect("token hashes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_make_list_and_revoke_their_own_tokens_which_are_stored_hashed() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let alice = world.create_user("alice", false).await;
    let bob = world.create_user("bob", false).await;
    let me = world.api_as(&alice, |c| c.whoami()).await.unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("alice", false));
    assert!(world.api(|c| c.whoami()).await.unwrap().admin);

    let second = world.api_as(&alice, |c| c.create_token()).await.unwrap();
    assert!(second.token.starts_with("atk_") && second.token.len() >= 4 + 32);
    assert_ne!(second.token, alice);
    assert_eq!(
        world
            .api_as(&second.token, |c| c.whoami())
            .await
            .unwrap()
            .name,
        "alice"
    );
    let mine = world.api_as(&alice, |c| c.tokens()).await.unwrap();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine
        .iter()
        .all(|t| t.user == "alice" && t.revoked.is_none()));
    let every = world.api(|c| c.tokens()).await.unwrap();
    assert!(every.iter().any(|t| t.user == "bob") && every.iter().any(|t| t.user == "tester"));

    // Bob can neither revoke Alice's token nor see it; an unknown id is a 404.
    let id = second.id;
    let error = world
        .api_as(&bob, move |c| c.revoke_token(id))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Forbidden(_)), "{error:?}");
    assert!(world
        .api_as(&bob, |c| c.tokens())
        .await
        .unwrap()
        .iter()
        .all(|t| t.user == "bob"));
    assert_eq!(
        world
            .api_as(&second.token, |c| c.whoami())
            .await
            .unwrap()
            .name,
        "alice"
    );
    let error = world
        .api_as(&alice, |c| c.revoke_token(999_999))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Refused(m) if m.contains("999999")),
        "{error:?}"
    );

    // Alice revokes it: it stops working, her first token goes on working.
    let revoked = world
        .api_as(&alice, move |c| c.revoke_token(id))
        .await
        .unwrap();
    assert!(revoked.revoked.is_some());
    let error = world
        .api_as(&second.token, |c| c.whoami())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Unauthorized(_)), "{error:?}");
    assert_eq!(
        world.api_as(&alice, |c| c.whoami()).await.unwrap().name,
        "alice"
    );
    // An admin revokes anyone's.
    let bobs = world.api_as(&bob, |c| c.tokens()).await.unwrap()[0].id;
    world.api(move |c| c.revoke_token(bobs)).await.unwrap();
    let error = world.api_as(&bob, |c| c.whoami()).await.unwrap_err();
    assert!(matches!(error, ClientError::Unauthorized(_)), "{error:?}");

    // The database holds hashes, never a secret.
    let hashes = stored_hashes(&world).await;
    assert_eq!(hashes.len(), 4, "tester, alice twice, bob");
    for secret in [&alice, &bob, &second.token, &world.token().to_string()] {
        let random = secret.trim_start_matches("atk_");
        assert!(
            hashes.iter().all(|h| !h.contains(random)),
            "a secret is stored"
        );
        assert!(
            hashes.contains(&scheduler::auth::token::hash(secret)),
            "its hash is"
        );
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_user_prints_only_a_token_and_the_token_works() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let add = |args: &[&str]| {
        std::process::Command::new(autotest_tests::binary("autotest-scheduler"))
            .arg("--config")
            .arg(&world.config_path)
            .arg("add-user")
            .args(args)
            .output()
            .expect("run autotest-scheduler add-user")
    };
    let token_of = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        let token = stdout.strip_suffix('\n').expect("one line").to_string();
        assert!(
            !token.contains(char::is_whitespace),
            "the token alone: {stdout:?}"
        );
        token
    };
    let first = token_of(&add(&["dave"]));
    let me = world.api_as(&first, |c| c.whoami()).await.unwrap();
    assert_eq!((me.name.as_str(), me.admin), ("dave", false));

    let out = add(&["dave", "--admin"]);
    let second = token_of(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("now an admin"));
    assert!(world.api_as(&second, |c| c.whoami()).await.unwrap().admin);
    assert!(
        world.api_as(&first, |c| c.whoami()).await.unwrap().admin,
        "the user is"
    );

    let out = add(&["../evil"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid user name"));
    let users = world.api(|c| c.users()).await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["dave", "tester"]);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn atest_makes_users_and_tokens_that_the_scheduler_accepts() {
    let world = World::builder()
        .drone("drone1", 1)
        .without_workers()
        .start()
        .await;
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = world.atest(&["whoami"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out), "tester (admin)");

    let out = world.atest(&["user", "create", "ann"]).await;
    assert!(out.status.success(), "{out:?}");
    let ann = text(&out);
    assert!(
        !ann.contains(char::is_whitespace),
        "the token alone: {ann:?}"
    );
    assert_eq!(text(&world.atest_as(&ann, &["whoami"]).await), "ann");
    let out = world
        .atest_as(&ann, &["user", "create", "eve", "--admin"])
        .await;
    assert!(!out.status.success(), "ann is no admin");
    assert!(out.stdout.is_empty());

    let out = world.atest_as(&ann, &["token", "create"]).await;
    assert!(out.status.success(), "{out:?}");
    let second = text(&out);
    assert_eq!(text(&world.atest_as(&second, &["whoami"]).await), "ann");
    let list = world.atest_as(&ann, &["token", "list", "--json"]).await;
    let tokens: serde_json::Value =
        serde_json::from_slice(&list.stdout).unwrap_or_else(|e| panic!("{e}: {list:?}"));
    let ids: Vec<i64> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{tokens}");
    let out = world
        .atest_as(&ann, &["token", "revoke", &ids[1].to_string()])
        .await;
    assert!(out.status.success(), "{out:?}");
    let out = world.atest_as(&second, &["whoami"]).await;
    assert!(!out.status.success(), "a revoked token is refused");
    assert_eq!(text(&world.atest_as(&ann, &["whoami"]).await), "ann");
    let out = world.atest_with(None, &["label", "create", "l1"]).await;
    assert!(!out.status.success(), "no token, no change");
    world.stop().await;
}
