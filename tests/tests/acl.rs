//! ACL groups (Autotest's): `Everyone` holds every new user and host; a user runs jobs
//! only on hosts sharing a group with it, named or given to a metahost entry; host
//! rights (lock, unlock, labels) follow the groups; only admins change groups.

use api::auth::{AclMembers, AclView, EVERYONE};
use api::{ClientError, CreateHost, CreateJob, JobView};
use autotest_tests::World;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn hosts_of(job: &JobView) -> Vec<String> {
    let mut hosts: Vec<String> = job
        .entries
        .iter()
        .map(|e| e.host.clone().expect("host assigned"))
        .collect();
    hosts.sort();
    hosts
}

async fn create_host(world: &World, name: &str, labels: &[&str]) {
    let body = CreateHost {
        name: name.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    world
        .api(move |c| c.create_host(&body))
        .await
        .expect("host created");
}

fn members(users: &[&str], hosts: &[&str]) -> AclMembers {
    AclMembers {
        users: users.iter().map(|u| u.to_string()).collect(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    }
}

/// Group `name` as the API lists it.
async fn group(world: &World, name: &str) -> Option<AclView> {
    let name = name.to_string();
    world
        .api(move |c| c.acls().expect("ACL groups listed"))
        .await
        .into_iter()
        .find(|g| g.name == name)
}

/// Admin: puts `hosts` in a new group `name` with `users`, and takes them out of
/// `Everyone`, so that only the group's users may use them.
async fn confine(world: &World, name: &str, users: &[&str], hosts: &[&str]) {
    let body = AclView {
        name: name.into(),
        users: users.iter().map(|u| u.to_string()).collect(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    };
    world
        .api(move |c| c.create_acl(&body))
        .await
        .expect("group created");
    let out = members(&[], hosts);
    world
        .api(move |c| c.acl_remove(EVERYONE, &out))
        .await
        .expect("hosts taken out of Everyone");
}

/// A job of `owner` on named `hosts` or on `count` hosts carrying `label`.
fn job(owner: &str, hosts: &[&str], label: Option<(&str, u32)>) -> CreateJob {
    CreateJob {
        label: label.map(|(l, _)| l.to_string()),
        count: label.map(|(_, n)| n),
        ..CreateJob::new(
            "acl",
            "echo ran on $AUTOSERV_HOSTS > out.txt\n",
            hosts.iter().map(|h| h.to_string()).collect(),
            owner,
        )
    }
}

async fn job_count(world: &World) -> usize {
    world.api(|c| c.jobs().expect("jobs listed")).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn everyone_holds_new_users_and_hosts_and_only_admins_change_groups() {
    let world = World::builder().drone("drone1", 2).start().await;
    create_host(&world, "host1", &[]).await;
    let alice = world.create_user("alice", false).await;
    let everyone = group(&world, EVERYONE).await.expect("Everyone exists");
    assert!(
        everyone.users.contains(&"alice".to_string()),
        "{everyone:?}"
    );
    assert!(
        everyone.users.contains(&"tester".to_string()),
        "{everyone:?}"
    );
    assert_eq!(everyone.hosts, ["host1"]);
    let users = world.api(|c| c.users().expect("users listed")).await;
    let listed = users.iter().find(|u| u.name == "alice").expect("alice");
    assert_eq!(listed.acl_groups, [EVERYONE]);

    // A user who is no admin reads the groups but changes none.
    let seen = world.api_as(&alice, |c| c.acls()).await.expect("read");
    assert!(seen.iter().any(|g| g.name == EVERYONE));
    let body = AclView {
        name: "mine".into(),
        users: vec!["alice".into()],
        hosts: vec!["host1".into()],
    };
    let refused = world.api_as(&alice, move |c| c.create_acl(&body)).await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let add = members(&["alice"], &["host1"]);
    let refused = world
        .api_as(&alice, move |c| c.acl_add(EVERYONE, &add))
        .await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let remove = members(&["alice"], &[]);
    let refused = world
        .api_as(&alice, move |c| c.acl_remove(EVERYONE, &remove))
        .await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    assert!(group(&world, "mine").await.is_none());
    assert!(group(&world, EVERYONE)
        .await
        .unwrap()
        .users
        .contains(&"alice".to_string()));

    // Unknown members are named and nothing is created.
    let body = AclView {
        name: "lab".into(),
        users: vec!["alice".into(), "ghost".into()],
        hosts: vec!["host1".into(), "nohost".into()],
    };
    let refused = world.api(move |c| c.create_acl(&body)).await;
    let message = format!("{refused:?}");
    assert!(
        message.contains("ghost") && message.contains("nohost"),
        "{message}"
    );
    assert!(group(&world, "lab").await.is_none());
    let body = AclView {
        name: "lab".into(),
        users: vec!["alice".into()],
        hosts: vec!["host1".into()],
    };
    let again = body.clone();
    let created = world
        .api(move |c| c.create_acl(&body))
        .await
        .expect("created");
    assert_eq!(
        (created.users, created.hosts),
        (vec!["alice".to_string()], vec!["host1".to_string()])
    );
    let conflict = world.api(move |c| c.create_acl(&again)).await;
    assert!(
        format!("{conflict:?}").contains("exists already"),
        "{conflict:?}"
    );
    let unknown = members(&["ghost"], &[]);
    let refused = world.api(move |c| c.acl_add("lab", &unknown)).await;
    assert!(format!("{refused:?}").contains("ghost"), "{refused:?}");

    // `atest acl list --json`: an array of {"name","users","hosts"}.
    let out = world.atest(&["acl", "list", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out.stdout).expect("a JSON array of objects");
    let lab = listed
        .iter()
        .find(|g| g["name"] == "lab")
        .expect("lab listed");
    let mut keys: Vec<&str> = lab.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["hosts", "name", "users"]);
    assert_eq!(lab["users"], serde_json::json!(["alice"]));
    assert_eq!(lab["hosts"], serde_json::json!(["host1"]));

    // The same through `atest acl`: refused to a user who is no admin, done for one.
    let refused = world
        .atest_as(&alice, &["acl", "create", "team", "--users", "alice"])
        .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("admin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let made = world
        .atest(&[
            "acl", "create", "team", "--users", "alice", "--hosts", "host1",
        ])
        .await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let shown = String::from_utf8_lossy(&made.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.split_whitespace().eq(["team", "alice", "host1"])),
        "{shown}"
    );
    let team = group(&world, "team").await.expect("team created");
    assert_eq!(
        (team.users, team.hosts),
        (vec!["alice".to_string()], vec!["host1".to_string()])
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_outside_a_hosts_groups_may_neither_submit_to_it_nor_lock_it_until_added() {
    let world = World::builder().drone("drone1", 2).start().await;
    create_host(&world, "host1", &[]).await;
    let alice = world.create_user("alice", false).await;
    confine(&world, "lab", &[], &["host1"]).await;

    let before = job_count(&world).await;
    let body = job("alice", &["host1"], None);
    let refused = world.api_as(&alice, move |c| c.create_job(&body)).await;
    match refused {
        Err(ClientError::Forbidden(message)) => assert!(message.contains("host1"), "{message}"),
        other => panic!("expected 403: {other:?}"),
    }
    assert_eq!(job_count(&world).await, before, "no job was created");
    let refused = world
        .api_as(&alice, |c| c.lock_host("host1", Some("mine".into())))
        .await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let refused = world.api_as(&alice, |c| c.unlock_host("host1")).await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let refused = world
        .api_as(&alice, |c| {
            c.change_labels(
                "host1",
                &api::ChangeLabels {
                    add: vec!["x".into()],
                    remove: vec![],
                },
            )
        })
        .await;
    assert!(
        matches!(refused, Err(ClientError::Forbidden(_))),
        "{refused:?}"
    );
    let hosts = world.api(|c| c.hosts().unwrap()).await;
    assert!(!hosts[0].locked && hosts[0].labels.is_empty(), "{hosts:?}");

    let add = members(&["alice"], &[]);
    world
        .api(move |c| c.acl_add("lab", &add))
        .await
        .expect("alice added");
    world
        .api_as(&alice, |c| c.lock_host("host1", Some("mine".into())))
        .await
        .expect("locked by a member");
    assert!(world.api(|c| c.hosts().unwrap()).await[0].locked);
    world
        .api_as(&alice, |c| c.unlock_host("host1"))
        .await
        .expect("unlocked by a member");
    let body = job("alice", &["host1"], None);
    let id = world
        .api_as(&alice, move |c| c.create_job(&body))
        .await
        .expect("a member submits");
    let done = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(done.status, "Completed", "{done:?}");
    assert_eq!(hosts_of(done), ["host1"]);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_metahost_job_of_a_user_confined_to_one_group_gets_only_that_groups_hosts() {
    let world = World::builder().drone("drone1", 4).start().await;
    // The other group's hosts come first: without the ACL rule they would be taken.
    for host in ["a1", "a2", "b1", "b2"] {
        create_host(&world, host, &["pool"]).await;
    }
    let alice = world.create_user("alice", false).await;
    confine(&world, "team-a", &[], &["a1", "a2"]).await;
    confine(&world, "team-b", &["alice"], &["b1", "b2"]).await;

    let body = job("alice", &[], Some(("pool", 2)));
    let id = world
        .api_as(&alice, move |c| c.create_job(&body))
        .await
        .expect("job created");
    let done = &world.wait_for_jobs(&[id], MINUTE).await[0];
    assert_eq!(done.status, "Completed", "{done:?}");
    assert_eq!(hosts_of(done), ["b1", "b2"]);

    // More hosts than alice may use: refused, naming the label, nothing stored.
    let before = job_count(&world).await;
    let body = job("alice", &[], Some(("pool", 3)));
    let refused = world.api_as(&alice, move |c| c.create_job(&body)).await;
    match refused {
        Err(ClientError::Forbidden(message)) => assert!(message.contains("pool"), "{message}"),
        other => panic!("expected 403: {other:?}"),
    }
    assert_eq!(job_count(&world).await, before);
    world.stop().await;
}
