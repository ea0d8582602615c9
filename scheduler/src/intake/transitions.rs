//! The rules of status intake, one function per report. A report applies only to the
//! entry's current attempt, on the drone it was dispatched to, in the states the report
//! can follow; anything else is stale: recorded in the entry's history, nothing else.

use super::{
    Applied, Context, EntryRow, GroupSync, History, HostWrite, InfraNote, InfraRules, Member,
    OnDrone, TestsWrite, Transition,
};
use crate::model::{AttemptId, EntryStatus, HostStatus, TaskFlags};
use common::names::{DroneName, HostName};
use common::protocol::{ManifestSummary, StatusEvent, TaskKind, TaskOutcome};
use std::collections::BTreeSet;

use EntryStatus::{Aborted, Completed, Failed, Gathering, Queued, Running, Starting};

/// The states an entry is held by a drone in.
const ACTIVE: &[EntryStatus] = &[Starting, Running, Gathering];

/// The longest results URL a drone's row keeps.
const MAX_RESULTS_URL: usize = 1024;

/// What `event` (not a heartbeat) does to the entry, read as `row` (None when no such
/// entry exists) with its group's `members`.
pub fn report(
    event: &StatusEvent,
    row: Option<&EntryRow>,
    members: &[Member],
    cx: &Context<'_>,
) -> Transition {
    let Some(attempt) = super::event_attempt(event) else {
        // A heartbeat is about its drone, not one entry: see `reclaimable`.
        return Transition::nothing(Applied::Heartbeat { reclaimed: false });
    };
    let current = |states: &[EntryStatus]| row.filter(|row| holds(row, attempt, cx, states));
    let stale = || {
        Transition::stale(History {
            attempt,
            drone: cx.drone.clone(),
            event: "stale-report",
            detail: serde_json::to_string(event).unwrap_or_default(),
        })
    };
    let transition = match event {
        StatusEvent::Running { .. } => current(&[Starting]).map(running(cx.now)),
        StatusEvent::Gathering { exit_code, .. } => current(ACTIVE).map(gathering(*exit_code)),
        StatusEvent::Finished {
            infra_failure: Some(reason),
            ..
        } => current(ACTIVE).map(|row| infra_failed(row, reason, cx)),
        StatusEvent::Finished {
            exit_code,
            infra_failure: None,
            test_failure,
            manifest,
            test_parts,
            ..
        } => current(ACTIVE).map(|row| {
            let mut transition =
                finished(row, *exit_code, test_failure.as_deref(), *manifest, cx.now);
            transition.tests = Some(TestsWrite::Store {
                attempt: row.attempt,
                host_id: row.host_id,
                parts: *test_parts,
            });
            transition
        }),
        StatusEvent::Tests {
            part,
            parts,
            tests,
            dropped,
            parse_error,
            ..
        } => match tests_part(*part, *parts, tests, *dropped, parse_error.as_deref()) {
            Some(body) => current(ACTIVE).map(|row| {
                let mut transition = Transition::of(row, false);
                transition.tests = Some(TestsWrite::Part {
                    attempt: row.attempt,
                    part: *part,
                    body,
                });
                transition
            }),
            None => None,
        },
        StatusEvent::PushFailing { reason, .. } => {
            current(&[Gathering]).map(|row| push_failing(row, reason, cx))
        }
        StatusEvent::Task {
            host,
            task,
            outcome,
            ..
        } => current(ACTIVE).map(|row| task_report(row, host, *task, *outcome, cx)),
        StatusEvent::RepairFailed { host, reason, .. } => {
            current(ACTIVE).map(|row| repair_failed(row, members, host, reason, cx))
        }
        StatusEvent::Refused { reason, .. } => current(ACTIVE).map(|row| {
            let reason = format!("drone {} could not start Autoserv: {reason}", cx.drone);
            infra_failed(row, &reason, cx)
        }),
        StatusEvent::Heartbeat { .. } => None,
    };
    match transition {
        Some(mut transition) => {
            if let Some(row) = &transition.row {
                transition.group = group_sync(&row.with(&transition.entry), members);
            }
            transition
        }
        None => stale(),
    }
}

/// Whether `row` is at `attempt`, on the reporting drone, in one of `states`.
fn holds(row: &EntryRow, attempt: AttemptId, cx: &Context<'_>, states: &[EntryStatus]) -> bool {
    row.attempt == attempt && row.drone.as_ref() == Some(cx.drone) && states.contains(&row.status)
}

/// Autoserv started.
fn running(now: i64) -> impl Fn(&EntryRow) -> Transition {
    move |row| {
        let mut transition = Transition::of(row, false);
        transition.entry.status = Some(Running);
        transition.entry.started_on = Some(Some(now));
        transition
    }
}

/// Autoserv exited; the results are being pushed. Also from Gathering: a worker
/// restarted mid-push reports it again.
fn gathering(exit_code: i32) -> impl Fn(&EntryRow) -> Transition {
    move |row| {
        let mut transition = Transition::of(row, true);
        transition.entry.status = Some(Gathering);
        transition.entry.exit_code = Some(Some(exit_code));
        transition
    }
}

/// The results are pushed: the entry ends by its exit code (Failed with the drone's
/// `test_failure` reason when it gave one), or Aborted when an abort was recorded, and
/// its host is free.
fn finished(
    row: &EntryRow,
    exit_code: i32,
    test_failure: Option<&str>,
    manifest: Option<ManifestSummary>,
    now: i64,
) -> Transition {
    let mut transition = Transition::of(row, true);
    let entry = &mut transition.entry;
    if row.abort_requested {
        entry.status = Some(Aborted);
    } else {
        let (status, kind) = if exit_code == 0 && test_failure.is_none() {
            (Completed, None)
        } else {
            (Failed, Some("test"))
        };
        entry.status = Some(status);
        entry.failure_kind = Some(kind);
        // A reason left by an earlier infra failure is in the history.
        entry.failure_reason = Some(test_failure.map(str::to_string));
    }
    entry.exit_code = Some(Some(exit_code));
    entry.finished_on = Some(Some(now));
    transition.manifest = manifest;
    transition.hosts.extend(row.host_id.map(HostWrite::Free));
    transition
}

/// A part of an attempt's parsed tests as kept until the attempt ends, or None when
/// the part cannot be one (numbered past its count, or past the most parts there are).
fn tests_part(
    part: u32,
    parts: u32,
    tests: &[tko::TestResult],
    dropped: u64,
    parse_error: Option<&str>,
) -> Option<String> {
    if part >= parts || parts > common::test_report::MAX_PARTS {
        return None;
    }
    let body = serde_json::json!({
        "tests": tests,
        "dropped": dropped,
        "parse_error": parse_error,
    });
    Some(body.to_string())
}

/// Not a test failure: the results wait on the drone until pushed.
fn push_failing(row: &EntryRow, reason: &str, cx: &Context<'_>) -> Transition {
    let reason = common::text::reason(&format!("results not pushed yet: {reason}")).into_owned();
    let mut transition = Transition::of(row, false);
    transition.entry.failure_kind = Some(Some("infra"));
    transition.entry.failure_reason = Some(Some(reason.clone()));
    transition.history = Some(History {
        attempt: row.attempt,
        drone: cx.drone.clone(),
        event: "push-failing",
        detail: reason,
    });
    transition
}

/// A special task on `host` started or ended: the host shows the task while it runs,
/// then goes back to the job that holds it; a failed repair takes it out of service.
fn task_report(
    row: &EntryRow,
    host: &HostName,
    task: TaskKind,
    outcome: TaskOutcome,
    cx: &Context<'_>,
) -> Transition {
    let mut transition = Transition::of(row, false);
    let hosts = &mut transition.hosts;
    match (task, outcome) {
        (_, TaskOutcome::Started) => {
            let state = match task {
                TaskKind::Verify => HostStatus::Verifying,
                TaskKind::Repair => HostStatus::Repairing,
                TaskKind::Cleanup => HostStatus::Cleaning,
            };
            hosts.push(HostWrite::Status(host.clone(), state));
        }
        (TaskKind::Repair, TaskOutcome::Failed) => {
            hosts.push(HostWrite::OutOfService(
                host.clone(),
                "repair failed".into(),
            ));
        }
        (_, outcome) => {
            hosts.push(HostWrite::Status(host.clone(), HostStatus::Running));
            match (task, outcome) {
                (TaskKind::Cleanup, TaskOutcome::Passed) => {
                    hosts.push(HostWrite::Cleaned(host.clone()))
                }
                (TaskKind::Repair, TaskOutcome::Passed) => {
                    hosts.push(HostWrite::Repaired(host.clone()))
                }
                (_, TaskOutcome::Failed) => {
                    transition.history = Some(History {
                        attempt: row.attempt,
                        drone: cx.drone.clone(),
                        event: "task-failed",
                        detail: format!("{} failed; repairing", task.as_str()),
                    });
                }
                _ => {}
            }
        }
    }
    transition
}

/// A host failed verify or cleanup and then repair: it goes out of service. A named
/// entry of the run (the lead's or a group member's) cannot go elsewhere, so the run
/// fails; otherwise metahost entries try other hosts and named ones wait for theirs.
fn repair_failed(
    row: &EntryRow,
    members: &[Member],
    host: &HostName,
    reason: &str,
    cx: &Context<'_>,
) -> Transition {
    let reason = &*common::text::reason(reason);
    let named_on_failed = (!row.metahost && row.hostname.as_ref() == Some(host))
        || members
            .iter()
            .any(|m| !m.metahost && m.hostname.as_ref() == Some(host));
    let requeue =
        !named_on_failed && row.job_tasks != TaskFlags::REPAIR_ONLY && !row.abort_requested;
    let mut transition = Transition::of(row, true);
    let entry = &mut transition.entry;
    entry.failure_reason = Some(Some(reason.to_string()));
    if row.abort_requested {
        entry.status = Some(Aborted);
        entry.finished_on = Some(Some(cx.now));
    } else if requeue {
        entry.status = Some(Queued);
        entry.undispatched = true;
        entry.host_released = row.metahost;
    } else {
        entry.status = Some(Failed);
        entry.failure_kind = Some(Some("infra"));
        entry.finished_on = Some(Some(cx.now));
    }
    transition.hosts.extend(row.host_id.map(HostWrite::Free));
    transition
        .hosts
        .push(HostWrite::OutOfService(host.clone(), reason.to_string()));
    let fate = if requeue {
        "the entry goes back to the queue for another host"
    } else {
        "the entry failed"
    };
    transition.history = Some(History {
        attempt: row.attempt,
        drone: cx.drone.clone(),
        event: "repair-failed",
        detail: format!("{reason}; {fate}"),
    });
    transition
}

/// The current attempt of an entry failed for the infrastructure's sake: it goes back
/// to the queue (the retry avoids this drone) while it has retries left, else it ends
/// Failed with `failure_kind` = infra; an entry with an abort recorded ends Aborted.
/// The host is freed and the event goes into the entry's history. Stale unless `row`
/// is at `attempt` on the context's drone and active.
pub fn infra_failure(
    row: Option<&EntryRow>,
    attempt: AttemptId,
    members: &[Member],
    reason: &str,
    cx: &Context<'_>,
) -> Transition {
    match row.filter(|row| holds(row, attempt, cx, ACTIVE)) {
        Some(row) => {
            let mut transition = infra_failed(row, reason, cx);
            transition.group = group_sync(&row.with(&transition.entry), members);
            transition
        }
        None => Transition::stale(History {
            attempt,
            drone: cx.drone.clone(),
            event: "stale-report",
            detail: String::new(),
        }),
    }
}

/// [`infra_failure`] of an entry known to be current, without its group.
fn infra_failed(row: &EntryRow, reason: &str, cx: &Context<'_>) -> Transition {
    let reason = &*common::text::reason(reason);
    let InfraRules { max_retries, .. } = cx.rules;
    let retries = row.infra_retries;
    let mut transition = Transition::of(row, true);
    let entry = &mut transition.entry;
    entry.failure_reason = Some(Some(reason.to_string()));
    let outcome = if row.abort_requested {
        entry.status = Some(Aborted);
        entry.finished_on = Some(Some(cx.now));
        "aborted (an abort was recorded)".to_string()
    } else if retries < max_retries {
        entry.status = Some(Queued);
        entry.undispatched = true;
        entry.failure_kind = Some(Some("infra"));
        entry.infra_retries = Some(retries + 1);
        entry.avoid_drone = Some(cx.drone.clone());
        entry.started_on = Some(None);
        entry.exit_code = Some(None);
        // A metahost entry may go to another host this time.
        entry.host_released = row.metahost;
        format!("retry {} of {max_retries}", retries + 1)
    } else {
        entry.status = Some(Failed);
        entry.failure_kind = Some(Some("infra"));
        entry.finished_on = Some(Some(cx.now));
        format!("failed: no infra retries left ({retries} made)")
    };
    if let Some(host) = row.host_id {
        // A host still locked for a failed repair (a repair-only job lost with its
        // drone) stays out of service.
        transition.hosts = vec![HostWrite::Free(host), HostWrite::KeepOutOfService(host)];
    }
    transition.history = Some(History {
        attempt: row.attempt,
        drone: cx.drone.clone(),
        event: "infra-failure",
        detail: format!("{reason}; {outcome}"),
    });
    transition.infra = Some(InfraNote {
        reason: reason.to_string(),
        outcome,
    });
    transition
}

/// The other entries of a synchronous group follow their lead, read as `lead` after
/// its change. When the lead went back to the queue the group dissolves and its entries
/// go back to the queue too; when it is no longer held by a drone, their hosts are
/// freed with it. None without members.
pub fn group_sync(lead: &EntryRow, members: &[Member]) -> Option<GroupSync> {
    if members.is_empty() {
        return None;
    }
    let dissolve = lead.status == Queued;
    let release_hosts = if dissolve {
        members
            .iter()
            .filter(|m| m.metahost)
            .map(|m| m.id)
            .collect()
    } else {
        Vec::new()
    };
    let free_hosts = if lead.status.is_active() {
        Vec::new()
    } else {
        members.iter().filter_map(|m| m.host_id).collect()
    };
    Some(GroupSync {
        members: members.iter().map(|m| m.id).collect(),
        lead: lead.clone(),
        dissolve,
        release_hosts,
        free_hosts,
    })
}

/// The attempts a heartbeat shows its drone does not hold: on the drone by the
/// database, not listed in `running`, and dispatched longer than the reclaim window
/// before `now`, when the scheduler received the heartbeat (so their job message was
/// taken or has expired). The drone's own clock plays no part: a heartbeat dated in
/// the future reclaims nothing more than one sent now.
pub fn reclaimable(
    running: &[AttemptId],
    on_drone: &[OnDrone],
    now: i64,
    rules: InfraRules,
) -> Vec<AttemptId> {
    let held: BTreeSet<AttemptId> = running.iter().copied().collect();
    let dispatched_before = now - rules.reclaim_after_us;
    on_drone
        .iter()
        .filter(|entry| entry.dispatched_on.is_some_and(|at| at < dispatched_before))
        .filter(|entry| !held.contains(&entry.attempt))
        .map(|entry| entry.attempt)
        .collect()
}

/// The attempts a lost drone held: those it was running, and those it had been sent
/// before `dispatched_before` (their job message has expired or was taken).
pub fn lost_attempts(on_drone: &[OnDrone], dispatched_before: i64) -> Vec<AttemptId> {
    on_drone
        .iter()
        .filter(|entry| {
            entry.status == Running
                || (entry.status == Starting
                    && entry.dispatched_on.is_some_and(|at| at < dispatched_before))
        })
        .map(|entry| entry.attempt)
        .collect()
}

/// Why a reclaimed attempt failed.
pub fn unheld_reason(drone: &DroneName, attempt: AttemptId) -> String {
    format!(
        "drone {drone} does not hold attempt {} (its job message expired or was lost)",
        attempt.attempt
    )
}

/// The results URL a heartbeat leaves on its drone's row: one that does not fit the
/// column is dropped, not a failed batch.
pub fn heartbeat_results_url(results_url: Option<&String>) -> Option<&str> {
    results_url
        .map(String::as_str)
        .filter(|url| url.len() <= MAX_RESULTS_URL)
}
