//! Host-queue entries as the dispatcher and the status consumer change them. Every
//! change is a conditional update on (id, attempt, expected status), so a decision
//! taken on a stale view, or a report from an older attempt, changes nothing.

use super::schema::{drones, entry_history, host_queue_entries as hqe, hosts, jobs};
use super::{Cache, Db, DbError};
use crate::api::{host_status, status, task_flags};
use crate::{with_conn, write_txn};
use common::protocol::{StatusEvent, TaskKind, TaskOutcome};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeSet;

/// What applying one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry changed; `slot_freed` when a drone slot or a host became free.
    Changed { slot_freed: bool },
    /// From an older attempt, another drone, or out of order: recorded in the entry's
    /// history, nothing else changed.
    Stale,
    /// A heartbeat; `reclaimed` entries the drone does not hold were handed back.
    Heartbeat { reclaimed: bool },
}

/// One report as read from `autotest.status`.
#[derive(Debug, Clone)]
pub struct Report {
    pub drone: String,
    pub event: StatusEvent,
    /// When the drone sent it (its clock, UTC microseconds).
    pub sent_at: i64,
}

/// The rules for infra failures, from `[SCHEDULER]`.
#[derive(Debug, Clone, Copy)]
pub struct InfraRules {
    /// `max_infra_retries`.
    pub max_retries: i32,
    /// An attempt dispatched this long before a heartbeat that does not list it was
    /// either taken by the drone or expired in its queue (the job message's TTL is
    /// `drone_timeout_sec`): the drone does not have it.
    pub reclaim_after_us: i64,
}

/// Inside a transaction: the other entries of a synchronous group follow their lead
/// (the entry the drone reports about). When the lead went back to the queue the group
/// dissolves and its entries go back to the queue too; when it ended, their hosts are
/// freed with it.
macro_rules! sync_group {
    ($conn:ident, $lead_id:expr) => {{
        let lead_id: i64 = $lead_id;
        let members: Vec<(i64, Option<i64>, Option<i64>)> = hqe::table
            .filter(hqe::group_lead_id.eq(lead_id))
            .select((hqe::id, hqe::host_id, hqe::meta_label_id))
            .load($conn)
            .await?;
        if !members.is_empty() {
            type Lead = (
                String,
                Option<i32>,
                Option<i64>,
                Option<i64>,
                Option<String>,
                Option<String>,
                i32,
            );
            let (state, exit_code, started_on, finished_on, kind, reason, retries): Lead =
                hqe::table
                    .filter(hqe::id.eq(lead_id))
                    .select((
                        hqe::status,
                        hqe::exit_code,
                        hqe::started_on,
                        hqe::finished_on,
                        hqe::failure_kind,
                        hqe::failure_reason,
                        hqe::infra_retries,
                    ))
                    .get_result($conn)
                    .await?;
            let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
            diesel::update(hqe::table.filter(hqe::id.eq_any(&ids)))
                .set((
                    hqe::status.eq(&state),
                    hqe::exit_code.eq(exit_code),
                    hqe::started_on.eq(started_on),
                    hqe::finished_on.eq(finished_on),
                    hqe::failure_kind.eq(&kind),
                    hqe::failure_reason.eq(&reason),
                    hqe::infra_retries.eq(retries),
                ))
                .execute($conn)
                .await?;
            if state == status::QUEUED {
                diesel::update(hqe::table.filter(hqe::id.eq_any(&ids)))
                    .set((
                        hqe::drone.eq(None::<String>),
                        hqe::group_lead_id.eq(None::<i64>),
                        hqe::dispatched_on.eq(None::<i64>),
                    ))
                    .execute($conn)
                    .await?;
                let metahost: Vec<i64> = members
                    .iter()
                    .filter(|m| m.2.is_some())
                    .map(|m| m.0)
                    .collect();
                diesel::update(hqe::table.filter(hqe::id.eq_any(&metahost)))
                    .set((hqe::host_id.eq(None::<i64>), hqe::execution_subdir.eq("")))
                    .execute($conn)
                    .await?;
            }
            if !status::ACTIVE.contains(&state.as_str()) {
                let host_ids: Vec<i64> = members.iter().filter_map(|m| m.1).collect();
                diesel::update(
                    hosts::table
                        .filter(hosts::id.eq_any(&host_ids))
                        .filter(hosts::status.ne(host_status::REPAIR_FAILED)),
                )
                .set(hosts::status.eq("Ready"))
                .execute($conn)
                .await?;
            }
        }
    }};
}

/// The current attempt of an entry failed for the infrastructure's sake: it goes back to
/// the queue (the retry avoids this drone) while it has retries left, else it ends
/// Failed with `failure_kind` = infra; an entry with an abort recorded ends Aborted. The
/// host is freed and the event goes into the entry's history. Evaluates to whether the
/// entry was still at `attempt` on `drone` and active.
macro_rules! infra_failure {
    ($conn:ident, $entry_id:expr, $attempt:expr, $drone:expr, $reason:expr, $now:expr, $rules:expr) => {{
        let (entry_id, attempt, drone, reason, now): (i64, i32, &str, &str, i64) =
            ($entry_id, $attempt, $drone, $reason, $now);
        let row: Option<(i32, Option<i64>, Option<i64>, Option<i64>)> = hqe::table
            .filter(hqe::id.eq(entry_id))
            .filter(hqe::attempt.eq(attempt))
            .filter(hqe::drone.eq(drone))
            .filter(hqe::status.eq_any(status::ACTIVE))
            .select((
                hqe::infra_retries,
                hqe::meta_label_id,
                hqe::host_id,
                hqe::aborted_on,
            ))
            .get_result($conn)
            .await
            .optional()?;
        match row {
            None => false,
            Some((retries, meta_label, host_id, aborted_on)) => {
                // As conditional as the read: where writers run side by side (MySQL),
                // a report recorded in between wins and this changes nothing.
                let target = hqe::table
                    .filter(hqe::id.eq(entry_id))
                    .filter(hqe::attempt.eq(attempt))
                    .filter(hqe::drone.eq(drone))
                    .filter(hqe::status.eq_any(status::ACTIVE));
                let (changed, outcome) = if aborted_on.is_some() {
                    let n = diesel::update(target)
                        .set((
                            hqe::status.eq(status::ABORTED),
                            hqe::failure_reason.eq(reason),
                            hqe::finished_on.eq(now),
                        ))
                        .execute($conn)
                        .await?;
                    (n, "aborted (an abort was recorded)".to_string())
                } else if retries < $rules.max_retries {
                    let n = diesel::update(target)
                        .set((
                            hqe::status.eq(status::QUEUED),
                            hqe::drone.eq(None::<String>),
                            hqe::failure_kind.eq("infra"),
                            hqe::failure_reason.eq(reason),
                            hqe::infra_retries.eq(retries + 1),
                            hqe::avoid_drone.eq(drone),
                            hqe::started_on.eq(None::<i64>),
                            hqe::exit_code.eq(None::<i32>),
                            hqe::dispatched_on.eq(None::<i64>),
                        ))
                        .execute($conn)
                        .await?;
                    if n > 0 && meta_label.is_some() {
                        // A metahost entry may go to another host this time.
                        diesel::update(hqe::table.filter(hqe::id.eq(entry_id)))
                            .set((hqe::host_id.eq(None::<i64>), hqe::execution_subdir.eq("")))
                            .execute($conn)
                            .await?;
                    }
                    (
                        n,
                        format!("retry {} of {}", retries + 1, $rules.max_retries),
                    )
                } else {
                    let n = diesel::update(target)
                        .set((
                            hqe::status.eq(status::FAILED),
                            hqe::failure_kind.eq("infra"),
                            hqe::failure_reason.eq(reason),
                            hqe::finished_on.eq(now),
                        ))
                        .execute($conn)
                        .await?;
                    (
                        n,
                        format!("failed: no infra retries left ({} made)", retries),
                    )
                };
                if changed == 0 {
                    false
                } else {
                    diesel::update(
                        hosts::table
                            .filter(hosts::id.nullable().eq(host_id))
                            .filter(hosts::status.ne(host_status::REPAIR_FAILED)),
                    )
                    .set(hosts::status.eq("Ready"))
                    .execute($conn)
                    .await?;
                    // A host still locked for a failed repair (a repair-only job lost with
                    // its drone) stays out of service.
                    diesel::update(
                        hosts::table
                            .filter(hosts::id.nullable().eq(host_id))
                            .filter(hosts::lock_reason.like("repair failed%")),
                    )
                    .set(hosts::status.eq(host_status::REPAIR_FAILED))
                    .execute($conn)
                    .await?;
                    diesel::insert_into(entry_history::table)
                        .values((
                            entry_history::entry_id.eq(entry_id),
                            entry_history::attempt.eq(attempt),
                            entry_history::drone.eq(Some(drone)),
                            entry_history::event.eq("infra-failure"),
                            entry_history::detail.eq(format!("{reason}; {outcome}")),
                            entry_history::at.eq(now),
                        ))
                        .execute($conn)
                        .await?;
                    tracing::warn!(
                        entry.id = entry_id,
                        attempt,
                        drone.name = drone,
                        reason,
                        outcome,
                        "infra failure"
                    );
                    sync_group!($conn, entry_id);
                    true
                }
            }
        }
    }};
}

/// Inside a transaction: takes a host out of service after its repair failed: Repair
/// Failed, and locked, so that only `atest host repair` (or `host unlock`) brings it
/// back.
macro_rules! out_of_service {
    ($conn:ident, $host:expr, $reason:expr) => {{
        let (host, reason): (&str, &str) = ($host, $reason);
        diesel::update(hosts::table.filter(hosts::hostname.eq(host)))
            .set((
                hosts::status.eq(host_status::REPAIR_FAILED),
                hosts::locked.eq(true),
                hosts::lock_reason.eq(format!("repair failed: {reason}")),
            ))
            .execute($conn)
            .await?;
    }};
}

/// Applies reports from drones in one transaction. Any report from a drone counts as a
/// sign of life; a heartbeat also hands back the entries the drone does not hold.
pub async fn apply(
    db: &Db,
    reports: &[Report],
    rules: InfraRules,
) -> Result<Vec<Applied>, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        let mut out = Vec::with_capacity(reports.len());
        for Report {
            drone,
            event,
            sent_at,
        } in reports
        {
            let target = |entry_id: i64, attempt: i32| {
                hqe::table
                    .filter(hqe::id.eq(entry_id))
                    .filter(hqe::attempt.eq(attempt))
                    .filter(hqe::drone.eq(drone.clone()))
            };
            let (changed, slot_freed, finished_entry) = match event {
                StatusEvent::Running {
                    entry_id, attempt, ..
                } => {
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq(status::STARTING)),
                    )
                    .set((hqe::status.eq(status::RUNNING), hqe::started_on.eq(now)))
                    .cached()
                    .execute(conn)
                    .await?;
                    (n, false, None)
                }
                StatusEvent::Gathering {
                    entry_id,
                    attempt,
                    exit_code,
                } => {
                    // Also from Gathering: a worker restarted mid-push reports it again.
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq_any(status::ACTIVE)),
                    )
                    .set((
                        hqe::status.eq(status::GATHERING),
                        hqe::exit_code.eq(exit_code),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
                    (n, true, None)
                }
                StatusEvent::Finished {
                    entry_id,
                    attempt,
                    infra_failure: Some(reason),
                    ..
                } => {
                    let n = infra_failure!(conn, *entry_id, *attempt, drone, reason, now, rules);
                    (usize::from(n), true, None)
                }
                StatusEvent::Finished {
                    entry_id,
                    attempt,
                    exit_code,
                    infra_failure: None,
                    manifest,
                } => {
                    // An entry with an abort recorded ends Aborted, whatever its exit.
                    let aborted = diesel::update(
                        target(*entry_id, *attempt)
                            .filter(hqe::status.eq_any(status::ACTIVE))
                            .filter(hqe::aborted_on.is_not_null()),
                    )
                    .set((
                        hqe::status.eq(status::ABORTED),
                        hqe::exit_code.eq(exit_code),
                        hqe::finished_on.eq(now),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
                    let (final_status, kind) = if *exit_code == 0 {
                        (status::COMPLETED, None)
                    } else {
                        (status::FAILED, Some("test"))
                    };
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq_any(status::ACTIVE)),
                    )
                    .set((
                        hqe::status.eq(final_status),
                        hqe::failure_kind.eq(kind),
                        // A reason left by an earlier infra failure is in the history.
                        hqe::failure_reason.eq(None::<String>),
                        hqe::exit_code.eq(exit_code),
                        hqe::finished_on.eq(now),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
                    if let (Some(manifest), true) = (manifest, n + aborted > 0) {
                        diesel::update(
                            hqe::table
                                .filter(hqe::id.eq(*entry_id).or(hqe::group_lead_id.eq(*entry_id))),
                        )
                        .set((
                            hqe::manifest_files.eq(manifest.files as i64),
                            hqe::manifest_bytes.eq(manifest.bytes as i64),
                        ))
                        .cached()
                        .execute(conn)
                        .await?;
                    }
                    (n + aborted, true, Some(*entry_id))
                }
                StatusEvent::PushFailing {
                    entry_id,
                    attempt,
                    reason,
                } => {
                    // Not a test failure: the results wait on the drone until pushed.
                    let reason = format!("results not pushed yet: {reason}");
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq(status::GATHERING)),
                    )
                    .set((
                        hqe::failure_kind.eq("infra"),
                        hqe::failure_reason.eq(&reason),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
                    if n > 0 {
                        diesel::insert_into(entry_history::table)
                            .values((
                                entry_history::entry_id.eq(*entry_id),
                                entry_history::attempt.eq(*attempt),
                                entry_history::drone.eq(Some(drone)),
                                entry_history::event.eq("push-failing"),
                                entry_history::detail.eq(&reason),
                                entry_history::at.eq(now),
                            ))
                            .cached()
                            .execute(conn)
                            .await?;
                    }
                    (n, false, None)
                }
                StatusEvent::Task {
                    entry_id,
                    attempt,
                    host,
                    task,
                    outcome,
                } => {
                    let current: i64 = target(*entry_id, *attempt)
                        .filter(hqe::status.eq_any(status::ACTIVE))
                        .count()
                        .cached()
                        .get_result(conn)
                        .await?;
                    if current > 0 {
                        let host = hosts::table.filter(hosts::hostname.eq(host.as_str()));
                        match (task, outcome) {
                            (_, TaskOutcome::Started) => {
                                let state = match task {
                                    TaskKind::Verify => host_status::VERIFYING,
                                    TaskKind::Repair => host_status::REPAIRING,
                                    TaskKind::Cleanup => host_status::CLEANING,
                                };
                                diesel::update(host)
                                    .set(hosts::status.eq(state))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                            }
                            (TaskKind::Repair, TaskOutcome::Failed) => {
                                let name: String = host.select(hosts::hostname).first(conn).await?;
                                out_of_service!(conn, name.as_str(), "repair failed");
                            }
                            (_, outcome) => {
                                // Back to the job that holds the host.
                                diesel::update(host)
                                    .set(hosts::status.eq("Running"))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                                if *outcome == TaskOutcome::Passed && *task == TaskKind::Cleanup {
                                    diesel::update(host)
                                        .set(hosts::dirty.eq(false))
                                        .cached()
                                        .execute(conn)
                                        .await?;
                                }
                                if *outcome == TaskOutcome::Passed && *task == TaskKind::Repair {
                                    // A host locked because its repair failed is back.
                                    diesel::update(
                                        host.filter(hosts::lock_reason.like("repair failed%")),
                                    )
                                    .set((
                                        hosts::locked.eq(false),
                                        hosts::lock_reason.eq(None::<String>),
                                    ))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                                }
                                if *outcome == TaskOutcome::Failed {
                                    diesel::insert_into(entry_history::table)
                                        .values((
                                            entry_history::entry_id.eq(*entry_id),
                                            entry_history::attempt.eq(*attempt),
                                            entry_history::drone.eq(Some(drone)),
                                            entry_history::event.eq("task-failed"),
                                            entry_history::detail
                                                .eq(format!("{} failed; repairing", task.as_str())),
                                            entry_history::at.eq(now),
                                        ))
                                        .cached()
                                        .execute(conn)
                                        .await?;
                                }
                            }
                        }
                    }
                    (usize::from(current > 0), false, None)
                }
                StatusEvent::RepairFailed {
                    entry_id,
                    attempt,
                    host,
                    reason,
                } => {
                    type Row = (Option<i64>, Option<i64>, i32, Option<i64>);
                    let row: Option<Row> = hqe::table
                        .inner_join(jobs::table)
                        .filter(hqe::id.eq(*entry_id))
                        .filter(hqe::attempt.eq(*attempt))
                        .filter(hqe::drone.eq(drone.clone()))
                        .filter(hqe::status.eq_any(status::ACTIVE))
                        .select((
                            hqe::meta_label_id,
                            hqe::host_id,
                            jobs::tasks,
                            hqe::aborted_on,
                        ))
                        .first(conn)
                        .await
                        .optional()?;
                    match row {
                        None => (0, false, None),
                        Some((meta_label, host_id, tasks, aborted_on)) => {
                            let target = hqe::table.filter(hqe::id.eq(*entry_id));
                            // Entries that go with the failed host: a named entry of
                            // the run (the lead's or a group member's) cannot go
                            // elsewhere, so the run fails; otherwise metahost entries
                            // try other hosts and named ones wait for theirs.
                            let named_on_failed: i64 = hqe::table
                                .inner_join(hosts::table)
                                .filter(hqe::id.eq(*entry_id).or(hqe::group_lead_id.eq(*entry_id)))
                                .filter(hosts::hostname.eq(host.as_str()))
                                .filter(hqe::meta_label_id.is_null())
                                .count()
                                .cached()
                                .get_result(conn)
                                .await?;
                            let requeue = named_on_failed == 0
                                && tasks != task_flags::REPAIR_ONLY
                                && aborted_on.is_none();
                            if aborted_on.is_some() {
                                diesel::update(target)
                                    .set((
                                        hqe::status.eq(status::ABORTED),
                                        hqe::failure_reason.eq(reason),
                                        hqe::finished_on.eq(now),
                                    ))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                            } else if requeue {
                                diesel::update(target)
                                    .set((
                                        hqe::status.eq(status::QUEUED),
                                        hqe::drone.eq(None::<String>),
                                        hqe::dispatched_on.eq(None::<i64>),
                                        hqe::failure_reason.eq(reason),
                                    ))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                                if meta_label.is_some() {
                                    diesel::update(target)
                                        .set((
                                            hqe::host_id.eq(None::<i64>),
                                            hqe::execution_subdir.eq(""),
                                        ))
                                        .cached()
                                        .execute(conn)
                                        .await?;
                                }
                            } else {
                                diesel::update(target)
                                    .set((
                                        hqe::status.eq(status::FAILED),
                                        hqe::failure_kind.eq("infra"),
                                        hqe::failure_reason.eq(reason),
                                        hqe::finished_on.eq(now),
                                    ))
                                    .cached()
                                    .execute(conn)
                                    .await?;
                            }
                            diesel::update(
                                hosts::table
                                    .filter(hosts::id.nullable().eq(host_id))
                                    .filter(hosts::status.ne(host_status::REPAIR_FAILED)),
                            )
                            .set(hosts::status.eq(host_status::READY))
                            .cached()
                            .execute(conn)
                            .await?;
                            sync_group!(conn, *entry_id);
                            out_of_service!(conn, host.as_str(), reason);
                            diesel::insert_into(entry_history::table)
                                .values((
                                    entry_history::entry_id.eq(*entry_id),
                                    entry_history::attempt.eq(*attempt),
                                    entry_history::drone.eq(Some(drone)),
                                    entry_history::event.eq("repair-failed"),
                                    entry_history::detail.eq(format!(
                                        "{reason}; {}",
                                        if requeue {
                                            "the entry goes back to the queue for another host"
                                        } else {
                                            "the entry failed"
                                        }
                                    )),
                                    entry_history::at.eq(now),
                                ))
                                .cached()
                                .execute(conn)
                                .await?;
                            (1, true, None)
                        }
                    }
                }
                StatusEvent::Refused {
                    entry_id,
                    attempt,
                    reason,
                } => {
                    // The drone could not start Autoserv: not the test's fault.
                    let reason = format!("drone {drone} could not start Autoserv: {reason}");
                    let n = infra_failure!(conn, *entry_id, *attempt, drone, &reason, now, rules);
                    (usize::from(n), true, None)
                }
                StatusEvent::Heartbeat {
                    running,
                    results_url,
                    stopping,
                } => {
                    // A URL that does not fit the column is dropped, not a failed batch.
                    let results_url = results_url.as_ref().filter(|u| u.len() <= 1024);
                    diesel::update(drones::table.filter(drones::name.eq(drone)))
                        .set((
                            drones::results_url.eq(results_url),
                            drones::stopping.eq(stopping),
                        ))
                        .cached()
                        .execute(conn)
                        .await?;
                    let held: BTreeSet<(i64, i32)> = running.iter().copied().collect();
                    let dispatched_before = sent_at - rules.reclaim_after_us;
                    let on_drone: Vec<(i64, i32)> = hqe::table
                        .filter(hqe::drone.eq(drone))
                        .filter(hqe::status.eq_any(status::ON_DRONE))
                        .filter(hqe::group_lead_id.is_null())
                        .filter(hqe::dispatched_on.lt(dispatched_before))
                        .select((hqe::id, hqe::attempt))
                        .cached()
                        .load(conn)
                        .await?;
                    let mut reclaimed = false;
                    for (entry_id, attempt) in on_drone {
                        if held.contains(&(entry_id, attempt)) {
                            continue;
                        }
                        let reason = format!(
                            "drone {drone} does not hold attempt {attempt} (its job message expired or was lost)"
                        );
                        reclaimed |=
                            infra_failure!(conn, entry_id, attempt, drone, &reason, now, rules);
                    }
                    out.push(Applied::Heartbeat { reclaimed });
                    continue;
                }
            };
            if changed == 0 {
                let (entry_id, attempt) = event_entry(event).expect("not a heartbeat");
                diesel::insert_into(entry_history::table)
                    .values((
                        entry_history::entry_id.eq(entry_id),
                        entry_history::attempt.eq(attempt),
                        entry_history::drone.eq(Some(drone)),
                        entry_history::event.eq("stale-report"),
                        entry_history::detail.eq(serde_json::to_string(event).unwrap_or_default()),
                        entry_history::at.eq(now),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
                out.push(Applied::Stale);
                continue;
            }
            if let Some(entry_id) = finished_entry {
                let host_id: Option<i64> = hqe::table
                    .filter(hqe::id.eq(entry_id))
                    .select(hqe::host_id)
                    .get_result(conn)
                    .await?;
                diesel::update(
                    hosts::table
                        .filter(hosts::id.nullable().eq(host_id))
                        .filter(hosts::status.ne(host_status::REPAIR_FAILED)),
                )
                .set(hosts::status.eq("Ready"))
                .cached()
                .execute(conn)
                .await?;
            }
            if let Some((entry_id, _)) = event_entry(event) {
                sync_group!(conn, entry_id);
            }
            out.push(Applied::Changed { slot_freed });
        }
        // Whatever a drone reports shows it is alive.
        let heard: BTreeSet<&str> = reports.iter().map(|r| r.drone.as_str()).collect();
        for drone in heard {
            diesel::update(drones::table.filter(drones::name.eq(drone)))
                .set(drones::last_heartbeat.eq(now))
                .cached()
                .execute(conn)
                .await?;
        }
        Ok(out)
    })
}

/// The (entry, attempt) a report is about; None for a heartbeat.
pub fn event_entry(event: &StatusEvent) -> Option<(i64, i32)> {
    match event {
        StatusEvent::Running {
            entry_id, attempt, ..
        }
        | StatusEvent::Gathering {
            entry_id, attempt, ..
        }
        | StatusEvent::Finished {
            entry_id, attempt, ..
        }
        | StatusEvent::Refused {
            entry_id, attempt, ..
        }
        | StatusEvent::Task {
            entry_id, attempt, ..
        }
        | StatusEvent::PushFailing {
            entry_id, attempt, ..
        }
        | StatusEvent::RepairFailed {
            entry_id, attempt, ..
        } => Some((*entry_id, *attempt)),
        StatusEvent::Heartbeat { .. } => None,
    }
}

/// Entries on a drone that is lost (silent since `silent_since`): those it was running
/// or had been sent before `dispatched_before` (their job message has expired or was
/// taken) become infra failures; the drone's own lease has stopped them by now.
/// Entries in Gathering are left alone: their test is over and the drone may still push
/// the results. Returns how many were handed back or failed.
pub async fn fail_lost_drone(
    db: &Db,
    drone: &str,
    reason: &str,
    dispatched_before: i64,
    rules: InfraRules,
) -> Result<usize, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        let held: Vec<(i64, i32)> = hqe::table
            .filter(hqe::drone.eq(drone))
            .filter(hqe::group_lead_id.is_null())
            .filter(
                hqe::status.eq(status::RUNNING).or(hqe::status
                    .eq(status::STARTING)
                    .and(hqe::dispatched_on.lt(dispatched_before))),
            )
            .select((hqe::id, hqe::attempt))
            .load(conn)
            .await?;
        let mut n = 0;
        for (entry_id, attempt) in held {
            n += usize::from(infra_failure!(
                conn, entry_id, attempt, drone, reason, now, rules
            ));
        }
        Ok(n)
    })
}

/// Aborts entries, recorded before anything else: queued ones become Aborted at once;
/// for active ones the abort is recorded (`by`, time, reason) and they are returned
/// (id, attempt, drone) so their drones can be told; they end Aborted when their drone
/// reports. Finished entries are left alone.
pub async fn abort(
    db: &Db,
    ids: &[i64],
    by: &str,
    reason: Option<String>,
) -> Result<Vec<(i64, i32, String)>, DbError> {
    let now = common::time::now_micros();
    let ids = ids.to_vec();
    let by = by.to_string();
    write_txn!(db, |conn, _last_id| {
        let recorded = (
            hqe::aborted_by.eq(&by),
            hqe::aborted_on.eq(now),
            hqe::abort_reason.eq(&reason),
        );
        // Pending entries give their hosts back.
        let held: Vec<Option<i64>> = hqe::table
            .filter(hqe::id.eq_any(&ids))
            .filter(hqe::status.eq(status::PENDING))
            .select(hqe::host_id)
            .load(conn)
            .await?;
        let held: Vec<i64> = held.into_iter().flatten().collect();
        diesel::update(
            hosts::table
                .filter(hosts::id.eq_any(&held))
                .filter(hosts::status.eq(status::PENDING)),
        )
        .set(hosts::status.eq("Ready"))
        .execute(conn)
        .await?;
        diesel::update(
            hqe::table
                .filter(hqe::id.eq_any(&ids))
                .filter(hqe::status.eq_any([status::QUEUED, status::PENDING])),
        )
        .set((
            recorded,
            hqe::status.eq(status::ABORTED),
            hqe::finished_on.eq(now),
        ))
        .execute(conn)
        .await?;
        diesel::update(
            hqe::table
                .filter(hqe::id.eq_any(&ids))
                .filter(hqe::status.eq_any(status::ACTIVE))
                .filter(hqe::aborted_on.is_null()),
        )
        .set(recorded)
        .execute(conn)
        .await?;
        // A group's drone knows its lead only.
        let active: Vec<(i64, i32, Option<String>)> = hqe::table
            .filter(hqe::id.eq_any(&ids))
            .filter(hqe::status.eq_any(status::ACTIVE))
            .filter(hqe::group_lead_id.is_null())
            .select((hqe::id, hqe::attempt, hqe::drone))
            .load(conn)
            .await?;
        Ok(active
            .into_iter()
            .filter_map(|(e, a, d)| Some((e, a, d?)))
            .collect())
    })
}

/// What the timeout keeper needs: queued entries past their deadline, the next queue
/// deadline, and active entries with a maximum runtime (id, started_on, max_runtime_us).
pub async fn timeouts(
    db: &Db,
    now: i64,
) -> Result<(Vec<i64>, Option<i64>, Vec<(i64, i64, i64)>), DbError> {
    Ok(with_conn!(db, |conn| {
        let expired: Vec<i64> = hqe::table
            .filter(hqe::status.eq_any([status::QUEUED, status::PENDING]))
            .filter(hqe::queue_deadline.le(now))
            .select(hqe::id)
            .cached()
            .load(conn)
            .await?;
        let next: Option<i64> = hqe::table
            .filter(hqe::status.eq_any([status::QUEUED, status::PENDING]))
            .filter(hqe::queue_deadline.gt(now))
            .select(diesel::dsl::min(hqe::queue_deadline))
            .cached()
            .get_result(conn)
            .await?;
        let running: Vec<(i64, Option<i64>, Option<i64>)> = hqe::table
            .filter(hqe::status.eq_any(status::ACTIVE))
            .filter(hqe::max_runtime_us.is_not_null())
            .filter(hqe::aborted_on.is_null())
            .filter(hqe::started_on.is_not_null())
            .select((hqe::id, hqe::started_on, hqe::max_runtime_us))
            .cached()
            .load(conn)
            .await?;
        let running = running
            .into_iter()
            .filter_map(|(id, s, m)| Some((id, s?, m?)))
            .collect();
        (expired, next, running)
    }))
}

/// The entry's current (attempt, status, drone), for logging a stale report.
pub async fn current(
    db: &Db,
    entry_id: i64,
) -> Result<Option<(i32, String, Option<String>)>, DbError> {
    Ok(with_conn!(db, |conn| {
        hqe::table
            .filter(hqe::id.eq(entry_id))
            .select((hqe::attempt, hqe::status, hqe::drone))
            .get_result(conn)
            .await
            .optional()?
    }))
}
