//! The planning rules, case by case, on dispatch views built by hand.

use super::*;
use crate::db::dispatch_view::DroneLoad;
use crate::model::TaskFlags;
use common::names::{HostName, Owner};

/// The name of host `id`.
fn host_name(id: i64) -> HostName {
    HostName::new(format!("host{id}")).unwrap()
}

/// A queued entry of job `job` for named host `host`, priority 0, on its own.
fn named(entry: i64, job: i64, host: i64) -> Candidate {
    Candidate {
        entry_id: entry,
        job_id: job,
        attempt: 0,
        priority: 0,
        execution_subdir: host_name(host),
        host_id: host,
        hostname: host_name(host),
        job_name: format!("job{job}"),
        owner: Owner::new("tester").unwrap(),
        control_file: String::new(),
        avoid_drone: None,
        drone_set_id: None,
        synch_count: 1,
        job_tasks: TaskFlags::none(),
        host_dirty: false,
    }
}

/// A queued metahost entry of job `job` for label `label`.
fn by_label(entry: i64, job: i64, label: i64) -> LabelEntry {
    LabelEntry {
        entry_id: entry,
        job_id: job,
        attempt: 0,
        priority: 0,
        label_id: label,
        job_name: format!("job{job}"),
        owner: Owner::new("tester").unwrap(),
        control_file: String::new(),
        avoid_drone: None,
        drone_set_id: None,
        synch_count: 1,
        job_tasks: TaskFlags::none(),
    }
}

/// A live, enabled drone running `running` of `capacity`.
fn drone(name: &str, running: i64, capacity: i64) -> DroneLoad {
    DroneLoad {
        name: DroneName::new(name).unwrap(),
        enabled: true,
        stopping: false,
        low_disk: false,
        accepting: true,
        alive: true,
        capacity,
        running,
    }
}

fn pool_host(id: i64) -> PoolHost {
    PoolHost {
        id,
        hostname: host_name(id),
        dirty: false,
    }
}

fn view(loads: Vec<DroneLoad>, named: Vec<Candidate>) -> DispatchView {
    DispatchView {
        loads,
        named,
        ..DispatchView::default()
    }
}

/// The plan for `view` with at most `max_start` runs per cycle (None: no free slot).
fn plan_of(mut view: DispatchView, max_start: i64) -> Option<Plan> {
    decide(&mut view, max_start).map(|decision| decision.plan)
}

/// Each pick as (entry, host, drone).
fn picks(plan: &Plan) -> Vec<(i64, i64, &str)> {
    plan.picks
        .iter()
        .map(|p| (p.candidate.entry_id, p.candidate.host_id, p.drone.as_str()))
        .collect()
}

#[test]
fn fetch_size_is_a_power_of_two_above_what_can_start() {
    assert_eq!(fetch_size(0, 100), 0);
    assert_eq!(fetch_size(1, 100), 32);
    assert_eq!(fetch_size(10, 100), 64);
    assert_eq!(fetch_size(1000, 100), 512);
}

#[test]
fn a_full_drone_gets_nothing() {
    let plan = plan_of(
        view(
            vec![drone("full", 2, 2), drone("free", 0, 2)],
            vec![named(1, 1, 1), named(2, 2, 2)],
        ),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(1, 1, "free"), (2, 2, "free")]);
}

#[test]
fn no_decision_is_taken_when_every_drone_is_full() {
    let full = view(
        vec![drone("a", 1, 1), drone("b", 3, 3)],
        vec![named(1, 1, 1)],
    );
    assert!(plan_of(full, 100).is_none());
}

#[test]
fn a_lost_disabled_stopping_or_low_disk_drone_gets_nothing() {
    let mut lost = drone("lost", 0, 4);
    lost.alive = false;
    let mut disabled = drone("disabled", 0, 4);
    disabled.accepting = false;
    let mut stopping = drone("stopping", 0, 4);
    stopping.stopping = true;
    stopping.accepting = false;
    let mut low_disk = drone("low-disk", 0, 4);
    low_disk.low_disk = true;
    low_disk.accepting = false;
    let loads = vec![lost, disabled, stopping, low_disk.clone()];
    assert!(plan_of(view(loads, vec![named(1, 1, 1)]), 100).is_none());
    // Beside a healthy drone, the entry goes there.
    let plan = plan_of(
        view(vec![low_disk, drone("b", 0, 4)], vec![named(1, 1, 1)]),
        100,
    );
    assert_eq!(picks(&plan.unwrap()), [(1, 1, "b")]);
}

#[test]
fn the_least_loaded_drone_is_picked_first() {
    // Load is running over capacity: a at 1/2 is busier than b at 1/4.
    let plan = plan_of(
        view(
            vec![drone("a", 1, 2), drone("b", 1, 4)],
            vec![named(1, 1, 1), named(2, 2, 2), named(3, 3, 3)],
        ),
        100,
    )
    .unwrap();
    // b (1/4) first; then b (2/4) ties with a (1/2), and a wins by name; then a is
    // full.
    assert_eq!(picks(&plan), [(1, 1, "b"), (2, 2, "a"), (3, 3, "b")]);
}

#[test]
fn drones_equally_loaded_are_taken_in_name_order() {
    let plan = plan_of(
        view(
            vec![drone("b", 0, 1), drone("a", 0, 1)],
            vec![named(1, 1, 1)],
        ),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(1, 1, "a")]);
}

#[test]
fn an_entry_restricted_to_a_drone_set_only_goes_to_its_drones() {
    let mut entry = named(1, 1, 1);
    entry.drone_set_id = Some(7);
    let mut view = view(vec![drone("a", 0, 4), drone("b", 3, 4)], vec![entry]);
    view.drone_sets.insert(7, BTreeSet::from(["b".to_string()]));
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 1, "b")]);
}

#[test]
fn an_entry_whose_drone_set_is_full_waits_while_others_start() {
    let mut waiting = named(1, 1, 1);
    waiting.drone_set_id = Some(7);
    waiting.priority = 10;
    let mut view = view(
        vec![drone("a", 0, 4), drone("b", 2, 2)],
        vec![waiting, named(2, 2, 2)],
    );
    view.drone_sets.insert(7, BTreeSet::from(["b".to_string()]));
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(2, 2, "a")]);
}

#[test]
fn an_entry_of_a_drone_set_with_no_drones_goes_nowhere() {
    let mut entry = named(1, 1, 1);
    entry.drone_set_id = Some(99);
    let plan = plan_of(view(vec![drone("a", 0, 4)], vec![entry]), 100).unwrap();
    assert!(plan.picks.is_empty());
}

#[test]
fn a_retry_avoids_the_drone_that_failed_it_when_another_is_free() {
    let mut retry = named(1, 1, 1);
    retry.avoid_drone = Some(DroneName::new("a").unwrap());
    // a is the least loaded, but the entry's last infra failure was there.
    let plan = plan_of(
        view(vec![drone("a", 0, 4), drone("b", 3, 4)], vec![retry]),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(1, 1, "b")]);
}

#[test]
fn a_retry_goes_back_to_the_drone_that_failed_it_when_no_other_has_room() {
    let mut retry = named(1, 1, 1);
    retry.avoid_drone = Some(DroneName::new("a").unwrap());
    let plan = plan_of(
        view(vec![drone("a", 0, 4), drone("b", 4, 4)], vec![retry]),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(1, 1, "a")]);
}

#[test]
fn higher_priority_entries_start_first() {
    let mut urgent = named(2, 2, 2);
    urgent.priority = 5;
    let plan = plan_of(
        view(vec![drone("a", 0, 1)], vec![named(1, 1, 1), urgent]),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(2, 2, "a")]);
}

#[test]
fn older_jobs_start_first_at_equal_priority() {
    let plan = plan_of(
        view(vec![drone("a", 0, 1)], vec![named(9, 3, 3), named(5, 2, 2)]),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(5, 2, "a")]);
}

#[test]
fn a_named_host_entry_starts_before_a_metahost_entry_of_equal_priority() {
    // The metahost entry belongs to an older job, yet the named host goes first.
    let mut view = view(vec![drone("a", 0, 1)], vec![named(5, 2, 2)]);
    view.by_label = vec![by_label(1, 1, 10)];
    view.pools.insert(10, vec![pool_host(7)]);
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(5, 2, "a")]);
}

#[test]
fn a_metahost_entry_of_higher_priority_starts_before_a_named_host_entry() {
    let mut urgent = by_label(1, 1, 10);
    urgent.priority = 3;
    let mut view = view(vec![drone("a", 0, 1)], vec![named(5, 2, 2)]);
    view.by_label = vec![urgent];
    view.pools.insert(10, vec![pool_host(7)]);
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 7, "a")]);
}

#[test]
fn a_metahost_entry_takes_a_ready_host_with_its_label() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![by_label(1, 1, 10)];
    view.pools.insert(10, vec![pool_host(7), pool_host(8)]);
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 7, "a")]);
    let placed = &plan.picks[0].candidate;
    assert_eq!(placed.hostname.as_str(), "host7");
    assert_eq!(
        placed.execution_subdir.as_str(),
        "host7",
        "results go under the host's name"
    );
}

#[test]
fn a_metahost_entry_skips_hosts_lacking_a_dependency_of_its_job() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![by_label(1, 1, 10)];
    view.pools.insert(10, vec![pool_host(7), pool_host(8)]);
    view.dependencies.insert(1, vec![20]);
    view.host_labels.insert(7, vec![10]);
    view.host_labels.insert(8, vec![10, 20]);
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 8, "a")]);
}

#[test]
fn the_metahost_entries_of_one_job_go_to_distinct_hosts() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![by_label(1, 1, 10), by_label(2, 1, 10), by_label(3, 1, 10)];
    view.pools
        .insert(10, vec![pool_host(7), pool_host(8), pool_host(9)]);
    // The job already ran on host 8.
    view.used.insert((1, 8));
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 7, "a"), (2, 9, "a")]);
}

#[test]
fn a_metahost_entry_with_no_ready_host_waits() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![by_label(1, 1, 10)];
    view.pools.insert(10, vec![]);
    assert!(plan_of(view, 100).unwrap().picks.is_empty());
}

#[test]
fn two_entries_for_one_host_start_one_at_a_time() {
    let plan = plan_of(
        view(vec![drone("a", 0, 4)], vec![named(1, 1, 1), named(2, 2, 1)]),
        100,
    )
    .unwrap();
    assert_eq!(picks(&plan), [(1, 1, "a")]);
}

#[test]
fn a_host_taken_by_a_named_entry_is_not_given_to_a_metahost_entry() {
    let mut view = view(vec![drone("a", 0, 4)], vec![named(1, 1, 7)]);
    view.by_label = vec![by_label(2, 2, 10)];
    view.pools.insert(10, vec![pool_host(7)]);
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 7, "a")]);
}

/// A metahost entry of job `job` for label `label`, owned by `owner`.
fn owned_by_label(entry: i64, job: i64, label: i64, owner: &str) -> LabelEntry {
    LabelEntry {
        owner: Owner::new(owner).unwrap(),
        ..by_label(entry, job, label)
    }
}

#[test]
fn a_metahost_entry_is_given_only_hosts_its_owner_may_use() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![
        owned_by_label(1, 1, 10, "alice"),
        owned_by_label(2, 1, 10, "alice"),
    ];
    view.pools
        .insert(10, vec![pool_host(7), pool_host(8), pool_host(9)]);
    view.acl
        .insert(Owner::new("alice").unwrap(), BTreeSet::from([8, 9]));
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 8, "a"), (2, 9, "a")]);
}

#[test]
fn a_metahost_entry_whose_owner_may_use_no_ready_host_waits_while_others_start() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![
        owned_by_label(1, 1, 10, "alice"),
        owned_by_label(2, 2, 10, "bob"),
    ];
    view.pools.insert(10, vec![pool_host(7), pool_host(8)]);
    // alice may use host 9 only, which is not ready; bob may use host 7.
    view.acl
        .insert(Owner::new("alice").unwrap(), BTreeSet::from([9]));
    view.acl
        .insert(Owner::new("bob").unwrap(), BTreeSet::from([7]));
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(2, 7, "a")]);
}

#[test]
fn an_owner_with_no_acl_group_gets_no_host() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![owned_by_label(1, 1, 10, "alice")];
    view.pools.insert(10, vec![pool_host(7)]);
    view.acl
        .insert(Owner::new("alice").unwrap(), BTreeSet::new());
    assert!(plan_of(view, 100).unwrap().picks.is_empty());
}

#[test]
fn an_owner_not_bound_by_acl_groups_may_be_given_any_host() {
    // An admin's entries have no row in the view's ACL.
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.by_label = vec![owned_by_label(1, 1, 10, "root")];
    view.pools.insert(10, vec![pool_host(7)]);
    view.acl
        .insert(Owner::new("alice").unwrap(), BTreeSet::new());
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(picks(&plan), [(1, 7, "a")]);
}

/// A Pending entry of synchronous job `job` (synch_count `size`) holding `host`.
fn pending(entry: i64, job: i64, host: i64, size: i32) -> Candidate {
    let mut member = named(entry, job, host);
    member.synch_count = size;
    member
}

#[test]
fn a_synchronous_group_starts_as_one_run_once_synch_count_entries_are_pending() {
    let mut view = view(vec![drone("a", 0, 1)], vec![]);
    view.pending = vec![pending(1, 1, 1, 2), pending(2, 1, 2, 2)];
    let plan = plan_of(view, 100).unwrap();
    assert_eq!(
        plan.groups.len(),
        1,
        "one slot, one Autoserv for both hosts"
    );
    let group = &plan.groups[0];
    let members: Vec<i64> = group.members.iter().map(|m| m.entry_id).collect();
    assert_eq!((members, group.drone.as_str()), (vec![1, 2], "a"));
}

#[test]
fn an_incomplete_synchronous_group_keeps_waiting() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.pending = vec![pending(1, 1, 1, 3), pending(2, 1, 2, 3)];
    let plan = plan_of(view, 100).unwrap();
    assert!(plan.groups.is_empty() && plan.picks.is_empty());
}

#[test]
fn pending_entries_beyond_whole_groups_wait_for_the_next_group() {
    let mut view = view(vec![drone("a", 0, 4)], vec![]);
    view.pending = (1..=5).map(|i| pending(i, 1, i, 2)).collect();
    let plan = plan_of(view, 100).unwrap();
    let groups: Vec<Vec<i64>> = plan
        .groups
        .iter()
        .map(|g| g.members.iter().map(|m| m.entry_id).collect())
        .collect();
    assert_eq!(groups, [vec![1, 2], vec![3, 4]]);
}

#[test]
fn an_entry_of_a_synchronous_job_takes_its_host_and_waits_without_a_slot() {
    let mut member = named(1, 1, 1);
    member.synch_count = 2;
    let plan = plan_of(
        view(vec![drone("a", 0, 2)], vec![member, named(2, 2, 2)]),
        100,
    )
    .unwrap();
    let reserved: Vec<i64> = plan.reservations.iter().map(|c| c.entry_id).collect();
    assert_eq!(reserved, [1]);
    assert_eq!(picks(&plan), [(2, 2, "a")], "the slot is left for others");
}

#[test]
fn no_more_than_max_jobs_started_per_cycle_start() {
    let entries = (1..=10).map(|i| named(i, i, i)).collect();
    let plan = plan_of(view(vec![drone("a", 0, 20)], entries), 3).unwrap();
    assert_eq!(picks(&plan), [(1, 1, "a"), (2, 2, "a"), (3, 3, "a")]);
}

#[test]
fn a_cycle_that_started_its_limit_with_slots_left_asks_for_another() {
    let entries = (1..=10).map(|i| named(i, i, i)).collect();
    let mut view = view(vec![drone("a", 0, 20)], entries);
    let decision = decide(&mut view, 3).unwrap();
    let (picked, more) = decision.only_picks().ok().unwrap();
    assert_eq!((picked.len(), more), (3, true));
}

#[test]
fn a_cycle_that_started_everything_it_saw_does_not_ask_for_another() {
    let mut view = view(vec![drone("a", 0, 20)], vec![named(1, 1, 1)]);
    let (picked, more) = decide(&mut view, 100).unwrap().only_picks().ok().unwrap();
    assert_eq!((picked.len(), more), (1, false));
}

#[test]
fn job_creation_leaves_synchronous_jobs_to_the_dispatcher() {
    let mut member = named(1, 1, 1);
    member.synch_count = 2;
    let mut view = view(vec![drone("a", 0, 4)], vec![member]);
    assert!(decide(&mut view, 100).unwrap().only_picks().is_err());
}
