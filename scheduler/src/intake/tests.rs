//! The rules of status intake, one report at a time, on rows built in memory.

use super::*;
use common::protocol::{TaskKind, TaskOutcome};
use EntryStatus::{Aborted, Completed, Failed, Gathering, Queued, Running, Starting};

/// The scheduler's clock in these tests.
const NOW: i64 = 1_000_000_000;

const RULES: InfraRules = InfraRules {
    max_retries: 2,
    reclaim_after_us: 1_000,
};

fn drone(name: &str) -> DroneName {
    DroneName::new(name).unwrap()
}

fn host(name: &str) -> HostName {
    HostName::new(name).unwrap()
}

/// Entry 7 at attempt 2, Running on drone d1, on host1 (id 11).
fn row() -> EntryRow {
    EntryRow {
        attempt: AttemptId::new(7, 2),
        status: Running,
        drone: Some(drone("d1")),
        host_id: Some(11),
        hostname: Some(host("host1")),
        metahost: false,
        abort_requested: false,
        infra_retries: 0,
        job_tasks: TaskFlags::none(),
        exit_code: None,
        created_on: 0,
        started_on: Some(NOW - 50),
        finished_on: None,
        failure_kind: None,
        failure_reason: None,
    }
}

fn in_state(status: EntryStatus) -> EntryRow {
    EntryRow { status, ..row() }
}

/// Judges `event` from `from` about `row` (no group).
fn judge(event: &StatusEvent, row: &EntryRow, from: &str) -> Transition {
    let from = drone(from);
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    report(event, Some(row), &[], &cx)
}

fn running(attempt: i32) -> StatusEvent {
    StatusEvent::Running {
        entry_id: 7,
        attempt,
        pid: 42,
    }
}

fn gathering(exit_code: i32) -> StatusEvent {
    StatusEvent::Gathering {
        entry_id: 7,
        attempt: 2,
        exit_code,
    }
}

fn finished(exit_code: i32) -> StatusEvent {
    StatusEvent::Finished {
        entry_id: 7,
        attempt: 2,
        exit_code,
        infra_failure: None,
        test_failure: None,
        manifest: Some(ManifestSummary { files: 3, bytes: 9 }),
        test_parts: 0,
    }
}

fn lease_expired() -> StatusEvent {
    StatusEvent::Finished {
        entry_id: 7,
        attempt: 2,
        exit_code: 137,
        infra_failure: Some("lease expired".into()),
        test_failure: None,
        manifest: None,
        test_parts: 0,
    }
}

fn refused() -> StatusEvent {
    StatusEvent::Refused {
        entry_id: 7,
        attempt: 2,
        reason: "no such file".into(),
    }
}

fn push_failing() -> StatusEvent {
    StatusEvent::PushFailing {
        entry_id: 7,
        attempt: 2,
        reason: "results host full".into(),
    }
}

fn task(task: TaskKind, outcome: TaskOutcome) -> StatusEvent {
    StatusEvent::Task {
        entry_id: 7,
        attempt: 2,
        host: host("host1"),
        task,
        outcome,
    }
}

fn repair_failed_on(name: &str) -> StatusEvent {
    StatusEvent::RepairFailed {
        entry_id: 7,
        attempt: 2,
        host: host(name),
        reason: "no ssh".into(),
    }
}

fn assert_stale(transition: &Transition) {
    assert_eq!(transition.applied, Applied::Stale);
    assert_eq!(transition.entry, EntryChanges::default());
    assert!(transition.hosts.is_empty() && transition.group.is_none());
    assert_eq!(transition.history.as_ref().unwrap().event, "stale-report");
}

/// Every report about attempt 2 of entry 7.
fn every_report() -> Vec<StatusEvent> {
    vec![
        running(2),
        gathering(0),
        finished(0),
        lease_expired(),
        refused(),
        push_failing(),
        task(TaskKind::Verify, TaskOutcome::Started),
        repair_failed_on("host1"),
    ]
}

#[test]
fn a_report_from_an_older_attempt_is_recorded_as_stale_and_changes_nothing() {
    let newer = EntryRow {
        attempt: AttemptId::new(7, 3),
        ..in_state(Gathering)
    };
    for event in every_report() {
        let transition = judge(&event, &newer, "d1");
        assert_stale(&transition);
        let history = transition.history.unwrap();
        assert_eq!(history.attempt, AttemptId::new(7, 2), "{event:?}");
        assert_eq!(history.detail, serde_json::to_string(&event).unwrap());
    }
}

#[test]
fn a_report_from_another_drone_than_the_attempts_is_stale() {
    for event in every_report() {
        let transition = judge(&event, &in_state(Starting), "d2");
        assert_stale(&transition);
        assert_eq!(transition.history.unwrap().drone, drone("d2"));
    }
}

#[test]
fn a_report_about_an_entry_that_does_not_exist_is_stale() {
    let from = drone("d1");
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    for event in every_report() {
        assert_stale(&report(&event, None, &[], &cx));
    }
}

#[test]
fn every_report_about_a_finished_entry_is_stale() {
    for status in [Completed, Failed, Aborted] {
        for event in every_report() {
            assert_stale(&judge(&event, &in_state(status), "d1"));
        }
    }
}

#[test]
fn running_after_starting_marks_the_entry_running_at_the_schedulers_time() {
    let transition = judge(&running(2), &in_state(Starting), "d1");
    assert_eq!(transition.applied, Applied::Changed { slot_freed: false });
    assert_eq!(transition.entry.status, Some(Running));
    assert_eq!(transition.entry.started_on, Some(Some(NOW)));
    assert!(transition.hosts.is_empty() && transition.history.is_none());
}

#[test]
fn running_reported_twice_is_stale_the_second_time() {
    assert_stale(&judge(&running(2), &in_state(Running), "d1"));
}

#[test]
fn running_after_refused_is_stale() {
    let refused_row = judge(&refused(), &in_state(Starting), "d1");
    let after = in_state(Starting).with(&refused_row.entry);
    let after = EntryRow {
        drone: None,
        ..after
    };
    assert_eq!(after.status, Queued);
    assert_stale(&judge(&running(2), &after, "d1"));
}

#[test]
fn gathering_records_the_exit_code_and_frees_the_slot_but_not_the_host() {
    for status in [Starting, Running, Gathering] {
        let transition = judge(&gathering(3), &in_state(status), "d1");
        assert_eq!(transition.applied, Applied::Changed { slot_freed: true });
        assert_eq!(transition.entry.status, Some(Gathering));
        assert_eq!(transition.entry.exit_code, Some(Some(3)));
        assert!(transition.hosts.is_empty(), "{status}");
    }
}

#[test]
fn finished_ends_the_entry_by_its_exit_code_and_frees_its_host() {
    let table = [
        (0, Completed, None),
        (1, Failed, Some("test")),
        (137, Failed, Some("test")),
    ];
    for (exit_code, status, kind) in table {
        let transition = judge(&finished(exit_code), &in_state(Gathering), "d1");
        assert_eq!(transition.applied, Applied::Changed { slot_freed: true });
        assert_eq!(transition.entry.status, Some(status), "exit {exit_code}");
        assert_eq!(transition.entry.failure_kind, Some(kind));
        assert_eq!(transition.entry.exit_code, Some(Some(exit_code)));
        assert_eq!(transition.entry.finished_on, Some(Some(NOW)));
        assert_eq!(transition.hosts, vec![HostWrite::Free(11)]);
    }
}

#[test]
fn results_over_the_drones_cap_fail_the_test_with_the_reason_whatever_the_exit() {
    for exit_code in [0, 137] {
        let report = StatusEvent::Finished {
            entry_id: 7,
            attempt: 2,
            exit_code,
            infra_failure: None,
            test_failure: Some("results exceed max_results_mb=1".into()),
            manifest: None,
            test_parts: 0,
        };
        let transition = judge(&report, &in_state(Running), "d1");
        assert_eq!(transition.entry.status, Some(Failed), "exit {exit_code}");
        assert_eq!(transition.entry.failure_kind, Some(Some("test")));
        assert_eq!(
            transition.entry.failure_reason,
            Some(Some("results exceed max_results_mb=1".into()))
        );
        assert_eq!(transition.hosts, vec![HostWrite::Free(11)]);
    }
}

#[test]
fn a_finished_report_clears_a_reason_left_by_an_earlier_infra_failure() {
    let earlier = EntryRow {
        failure_kind: Some("infra".into()),
        failure_reason: Some("results not pushed yet: full".into()),
        ..in_state(Gathering)
    };
    let after = earlier.with(&judge(&finished(0), &earlier, "d1").entry);
    assert_eq!((after.failure_kind, after.failure_reason), (None, None));
}

#[test]
fn finished_after_an_abort_was_recorded_ends_aborted_whatever_the_exit() {
    let aborting = EntryRow {
        abort_requested: true,
        failure_reason: Some("kept".into()),
        ..in_state(Running)
    };
    for exit_code in [0, 1] {
        let transition = judge(&finished(exit_code), &aborting, "d1");
        assert_eq!(transition.entry.status, Some(Aborted));
        assert_eq!(transition.entry.failure_kind, None, "left as it is");
        assert_eq!(transition.entry.failure_reason, None, "left as it is");
        assert_eq!(transition.entry.exit_code, Some(Some(exit_code)));
        assert_eq!(transition.hosts, vec![HostWrite::Free(11)]);
    }
}

#[test]
fn the_manifest_is_stored_only_when_the_report_applies() {
    let applied = judge(&finished(0), &in_state(Gathering), "d1");
    assert_eq!(
        applied.manifest,
        Some(ManifestSummary { files: 3, bytes: 9 })
    );
    let stale = judge(&finished(0), &in_state(Gathering), "d2");
    assert_eq!(stale.manifest, None);
}

#[test]
fn gathering_then_push_failing_then_pushed_completes_the_entry() {
    let mut entry = in_state(Running);
    let steps: [(StatusEvent, EntryStatus, Option<&str>); 3] = [
        (gathering(0), Gathering, None),
        (push_failing(), Gathering, Some("infra")),
        (finished(0), Completed, None),
    ];
    for (event, status, kind) in steps {
        let transition = judge(&event, &entry, "d1");
        assert!(transition.changed(), "{event:?}");
        entry = entry.with(&transition.entry);
        assert_eq!(entry.status, status);
        assert_eq!(entry.failure_kind.as_deref(), kind);
    }
    assert_eq!(entry.exit_code, Some(0));
}

#[test]
fn push_failing_keeps_the_entry_gathering_and_records_why() {
    let transition = judge(&push_failing(), &in_state(Gathering), "d1");
    assert_eq!(transition.applied, Applied::Changed { slot_freed: false });
    assert_eq!(transition.entry.status, None);
    let reason = "results not pushed yet: results host full";
    assert_eq!(transition.entry.failure_reason, Some(Some(reason.into())));
    let history = transition.history.unwrap();
    assert_eq!(
        (history.event, history.detail.as_str()),
        ("push-failing", reason)
    );
}

#[test]
fn push_failing_before_gathering_is_stale() {
    for status in [Starting, Running] {
        assert_stale(&judge(&push_failing(), &in_state(status), "d1"));
    }
}

#[test]
fn an_infra_failure_is_retried_up_to_the_limit_then_fails_with_an_infra_kind() {
    let table = [
        (0, Queued, "retry 1 of 2"),
        (1, Queued, "retry 2 of 2"),
        (2, Failed, "failed: no infra retries left (2 made)"),
    ];
    for (retries, status, outcome) in table {
        let entry = EntryRow {
            infra_retries: retries,
            ..row()
        };
        let transition = judge(&lease_expired(), &entry, "d1");
        assert_eq!(transition.applied, Applied::Changed { slot_freed: true });
        assert_eq!(transition.entry.status, Some(status), "after {retries}");
        assert_eq!(transition.entry.failure_kind, Some(Some("infra")));
        let history = transition.history.unwrap();
        assert_eq!(history.event, "infra-failure");
        assert_eq!(history.detail, format!("lease expired; {outcome}"));
    }
}

#[test]
fn a_retried_attempt_goes_back_to_the_queue_avoiding_its_drone() {
    let transition = judge(&lease_expired(), &row(), "d1");
    let entry = &transition.entry;
    assert_eq!(entry.infra_retries, Some(1));
    assert_eq!(entry.avoid_drone, Some(drone("d1")));
    assert!(entry.undispatched);
    assert_eq!(
        (entry.started_on, entry.exit_code),
        (Some(None), Some(None))
    );
    assert_eq!(entry.finished_on, None);
    assert!(!entry.host_released, "a named entry keeps its host");
}

#[test]
fn a_retried_metahost_entry_gives_its_host_up() {
    let entry = EntryRow {
        metahost: true,
        ..row()
    };
    assert!(judge(&lease_expired(), &entry, "d1").entry.host_released);
}

#[test]
fn an_infra_failure_with_an_abort_recorded_ends_aborted() {
    let entry = EntryRow {
        abort_requested: true,
        ..row()
    };
    let transition = judge(&lease_expired(), &entry, "d1");
    assert_eq!(transition.entry.status, Some(Aborted));
    assert_eq!(transition.entry.finished_on, Some(Some(NOW)));
    assert_eq!(transition.entry.infra_retries, None);
    let note = transition.infra.unwrap();
    assert_eq!(note.outcome, "aborted (an abort was recorded)");
}

#[test]
fn an_infra_failure_frees_the_host_unless_it_is_locked_for_a_failed_repair() {
    let transition = judge(&lease_expired(), &row(), "d1");
    assert_eq!(
        transition.hosts,
        vec![HostWrite::Free(11), HostWrite::KeepOutOfService(11)]
    );
}

#[test]
fn refused_is_an_infra_failure_that_names_the_drone() {
    let transition = judge(&refused(), &in_state(Starting), "d1");
    assert_eq!(transition.entry.status, Some(Queued));
    let reason = "drone d1 could not start Autoserv: no such file";
    assert_eq!(transition.entry.failure_reason, Some(Some(reason.into())));
    assert_eq!(transition.infra.unwrap().reason, reason);
}

#[test]
fn a_task_starting_shows_the_task_on_the_host() {
    let table = [
        (TaskKind::Verify, HostStatus::Verifying),
        (TaskKind::Repair, HostStatus::Repairing),
        (TaskKind::Cleanup, HostStatus::Cleaning),
    ];
    for (kind, status) in table {
        let transition = judge(&task(kind, TaskOutcome::Started), &row(), "d1");
        assert_eq!(transition.applied, Applied::Changed { slot_freed: false });
        assert_eq!(transition.entry, EntryChanges::default());
        assert_eq!(
            transition.hosts,
            vec![HostWrite::Status(host("host1"), status)]
        );
    }
}

#[test]
fn a_task_ending_gives_the_host_back_to_the_job() {
    let back = HostWrite::Status(host("host1"), HostStatus::Running);
    let table = [
        (
            TaskKind::Verify,
            TaskOutcome::Passed,
            vec![back.clone()],
            None,
        ),
        (
            TaskKind::Cleanup,
            TaskOutcome::Passed,
            vec![back.clone(), HostWrite::Cleaned(host("host1"))],
            None,
        ),
        (
            TaskKind::Repair,
            TaskOutcome::Passed,
            vec![back.clone(), HostWrite::Repaired(host("host1"))],
            None,
        ),
        (
            TaskKind::Verify,
            TaskOutcome::Failed,
            vec![back.clone()],
            Some("verify failed; repairing"),
        ),
        (
            TaskKind::Cleanup,
            TaskOutcome::Failed,
            vec![back],
            Some("cleanup failed; repairing"),
        ),
    ];
    for (kind, outcome, hosts, failed) in table {
        let transition = judge(&task(kind, outcome), &row(), "d1");
        assert_eq!(transition.hosts, hosts, "{kind:?} {outcome:?}");
        let history = transition.history.map(|h| (h.event, h.detail));
        assert_eq!(history, failed.map(|d| ("task-failed", d.to_string())));
    }
}

#[test]
fn a_failed_repair_task_takes_the_host_out_of_service() {
    let transition = judge(&task(TaskKind::Repair, TaskOutcome::Failed), &row(), "d1");
    assert_eq!(
        transition.hosts,
        vec![HostWrite::OutOfService(
            host("host1"),
            "repair failed".into()
        )]
    );
    assert_eq!(transition.entry, EntryChanges::default());
}

#[test]
fn a_task_report_of_a_stale_attempt_leaves_the_host_alone() {
    let older = task(TaskKind::Repair, TaskOutcome::Failed);
    let newer = EntryRow {
        attempt: AttemptId::new(7, 3),
        ..row()
    };
    assert_stale(&judge(&older, &newer, "d1"));
}

#[test]
fn a_failed_repair_sends_a_metahost_entry_back_to_the_queue_for_another_host() {
    let entry = EntryRow {
        metahost: true,
        ..row()
    };
    let transition = judge(&repair_failed_on("host1"), &entry, "d1");
    assert_eq!(transition.applied, Applied::Changed { slot_freed: true });
    assert_eq!(transition.entry.status, Some(Queued));
    assert!(transition.entry.undispatched && transition.entry.host_released);
    assert_eq!(transition.entry.infra_retries, None, "not an infra retry");
    assert_eq!(
        transition.hosts,
        vec![
            HostWrite::Free(11),
            HostWrite::OutOfService(host("host1"), "no ssh".into())
        ]
    );
    let detail = transition.history.unwrap().detail;
    assert_eq!(
        detail,
        "no ssh; the entry goes back to the queue for another host"
    );
}

#[test]
fn a_failed_repair_of_a_named_host_or_of_a_repair_only_job_fails_the_entry() {
    let named = row();
    let repair_only = EntryRow {
        metahost: true,
        job_tasks: TaskFlags::REPAIR_ONLY,
        ..row()
    };
    for entry in [named, repair_only] {
        let transition = judge(&repair_failed_on("host1"), &entry, "d1");
        assert_eq!(transition.entry.status, Some(Failed));
        assert_eq!(transition.entry.failure_kind, Some(Some("infra")));
        assert_eq!(transition.entry.finished_on, Some(Some(NOW)));
        assert_eq!(
            transition.history.unwrap().detail,
            "no ssh; the entry failed"
        );
    }
}

#[test]
fn a_failed_repair_of_another_hosts_named_member_fails_the_whole_group() {
    let lead = EntryRow {
        metahost: true,
        ..row()
    };
    let members = [Member {
        id: 8,
        host_id: Some(12),
        hostname: Some(host("host2")),
        metahost: false,
    }];
    let from = drone("d1");
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    let transition = report(&repair_failed_on("host2"), Some(&lead), &members, &cx);
    assert_eq!(transition.entry.status, Some(Failed));
    let group = transition.group.unwrap();
    assert_eq!(group.lead.status, Failed);
    assert_eq!(group.free_hosts, vec![12]);
}

#[test]
fn a_failed_repair_after_an_abort_ends_aborted() {
    let entry = EntryRow {
        abort_requested: true,
        metahost: true,
        ..row()
    };
    let transition = judge(&repair_failed_on("host1"), &entry, "d1");
    assert_eq!(transition.entry.status, Some(Aborted));
    assert_eq!(
        transition.history.unwrap().detail,
        "no ssh; the entry failed"
    );
}

fn members() -> Vec<Member> {
    vec![
        Member {
            id: 8,
            host_id: Some(12),
            hostname: Some(host("host2")),
            metahost: false,
        },
        Member {
            id: 9,
            host_id: Some(13),
            hostname: Some(host("host3")),
            metahost: true,
        },
    ]
}

#[test]
fn a_group_follows_its_lead_and_keeps_its_hosts_while_the_lead_runs() {
    let from = drone("d1");
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    let transition = report(&running(2), Some(&in_state(Starting)), &members(), &cx);
    let group = transition.group.unwrap();
    assert_eq!(group.members, vec![8, 9]);
    assert_eq!(
        (group.lead.status, group.lead.started_on),
        (Running, Some(NOW))
    );
    assert!(!group.dissolve && group.release_hosts.is_empty() && group.free_hosts.is_empty());
}

#[test]
fn a_group_dissolves_when_its_lead_goes_back_to_the_queue() {
    let lead = in_state(Queued);
    let group = group_sync(&lead, &members()).unwrap();
    assert!(group.dissolve);
    assert_eq!(group.release_hosts, vec![9], "only metahost members move");
    assert_eq!(group.free_hosts, vec![12, 13]);
}

#[test]
fn a_group_frees_its_hosts_when_its_lead_ends() {
    for status in [Completed, Failed, Aborted] {
        let group = group_sync(&in_state(status), &members()).unwrap();
        assert!(!group.dissolve, "{status}");
        assert_eq!(group.free_hosts, vec![12, 13]);
    }
    let gathering = group_sync(&in_state(Gathering), &members()).unwrap();
    assert!(gathering.free_hosts.is_empty());
}

#[test]
fn an_entry_without_a_group_has_nothing_to_sync() {
    assert_eq!(group_sync(&row(), &[]), None);
    assert_eq!(judge(&finished(0), &row(), "d1").group, None);
}

fn on_drone(entry: i64, status: EntryStatus, dispatched_on: Option<i64>) -> OnDrone {
    OnDrone {
        attempt: AttemptId::new(entry, 1),
        status,
        dispatched_on,
    }
}

#[test]
fn a_heartbeat_reclaims_only_unlisted_attempts_dispatched_before_its_window_by_the_schedulers_clock(
) {
    let received_at = 10_000;
    let entries = [
        on_drone(1, Running, Some(received_at - RULES.reclaim_after_us - 1)),
        on_drone(2, Starting, Some(received_at - RULES.reclaim_after_us)),
        on_drone(3, Starting, Some(0)),
        on_drone(4, Starting, None),
    ];
    let reclaimed = reclaimable(&[AttemptId::new(3, 1)], &entries, received_at, RULES);
    assert_eq!(reclaimed, vec![AttemptId::new(1, 1)]);
}

#[test]
fn a_heartbeat_never_reclaims_an_attempt_it_lists() {
    let entries = [on_drone(1, Running, Some(0)), on_drone(2, Running, Some(0))];
    assert!(reclaimable(
        &[AttemptId::new(1, 1), AttemptId::new(2, 1)],
        &entries,
        1 << 40,
        RULES
    )
    .is_empty());
}

#[test]
fn a_heartbeat_sent_before_the_dispatch_reclaims_nothing() {
    // A heartbeat that waited in the queue while the scheduler was away says nothing
    // about attempts dispatched after it was sent.
    let entries = [on_drone(1, Starting, Some(5_000))];
    assert!(reclaimable(&[], &entries, 5_500, RULES).is_empty());
}

#[test]
fn a_reclaimed_attempt_is_an_infra_failure_that_says_why() {
    let from = drone("d1");
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    let reason = unheld_reason(&from, AttemptId::new(7, 2));
    assert_eq!(
        reason,
        "drone d1 does not hold attempt 2 (its job message expired or was lost)"
    );
    let transition = infra_failure(Some(&row()), AttemptId::new(7, 2), &[], &reason, &cx);
    assert_eq!(transition.entry.status, Some(Queued));
    assert_eq!(transition.entry.avoid_drone, Some(from.clone()));
}

#[test]
fn an_infra_failure_the_scheduler_finds_for_a_stale_attempt_changes_nothing() {
    let from = drone("d1");
    let cx = Context {
        drone: &from,
        now: NOW,
        rules: RULES,
    };
    let gone = AttemptId::new(7, 1);
    for entry in [Some(row()), Some(in_state(Completed)), None] {
        let transition = infra_failure(entry.as_ref(), gone, &[], "lost", &cx);
        assert!(!transition.changed());
    }
    let elsewhere = drone("d2");
    let cx = Context {
        drone: &elsewhere,
        ..cx
    };
    let current = AttemptId::new(7, 2);
    assert!(!infra_failure(Some(&row()), current, &[], "lost", &cx).changed());
}

#[test]
fn a_lost_drone_gives_back_what_it_ran_and_what_it_was_sent_long_ago() {
    let entries = [
        on_drone(1, Running, Some(9_000)),
        on_drone(2, Starting, Some(999)),
        on_drone(3, Starting, Some(1_000)),
        on_drone(4, Starting, None),
    ];
    let lost = lost_attempts(&entries, 1_000);
    assert_eq!(lost, vec![AttemptId::new(1, 1), AttemptId::new(2, 1)]);
}

#[test]
fn every_time_a_report_writes_is_the_schedulers_clock() {
    let starting = judge(&running(2), &in_state(Starting), "d1");
    assert_eq!(starting.entry.started_on, Some(Some(NOW)));
    let ended = judge(&finished(0), &in_state(Gathering), "d1");
    assert_eq!(ended.entry.finished_on, Some(Some(NOW)));
    let failed = judge(
        &lease_expired(),
        &EntryRow {
            infra_retries: 5,
            ..row()
        },
        "d1",
    );
    assert_eq!(failed.entry.finished_on, Some(Some(NOW)));
}

#[test]
fn a_results_url_too_long_for_its_column_is_dropped() {
    let fits = "http://d1:8080".to_string();
    let too_long = format!("http://{}", "x".repeat(1020));
    assert_eq!(heartbeat_results_url(Some(&fits)), Some(fits.as_str()));
    assert_eq!(heartbeat_results_url(Some(&too_long)), None);
    assert_eq!(heartbeat_results_url(None), None);
}

#[test]
fn a_heartbeat_says_the_drone_s_free_space_as_its_row_keeps_it() {
    let said = DroneSaid::of(false, Some(4096), true);
    assert_eq!((said.free_mb, said.low_disk), (Some(4096), true));
    assert_eq!(
        DroneSaid::of(false, Some(u64::MAX), false).free_mb,
        Some(i64::MAX)
    );
    assert_eq!(DroneSaid::of(true, None, false).free_mb, None);
}

#[test]
fn a_heartbeat_is_about_no_single_entry() {
    let heartbeat = StatusEvent::Heartbeat {
        running: vec![(7, 2)],
        results_url: None,
        stopping: false,
        free_mb: None,
        low_disk: false,
    };
    assert_eq!(event_attempt(&heartbeat), None);
    let transition = judge(&heartbeat, &row(), "d1");
    assert_eq!(transition.applied, Applied::Heartbeat { reclaimed: false });
    assert!(transition.history.is_none() && transition.row.is_none());
    assert_eq!(event_attempt(&refused()), Some(AttemptId::new(7, 2)));
}
