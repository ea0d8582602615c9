//! Status intake's reads and writes: loads the rows a report is judged on, asks
//! [`crate::intake`] what the report implies, and writes that, all in one transaction.
//! Every entry update is guarded by the attempt, drone and status it was judged on.
//! On MySQL the rows are read `FOR UPDATE`, so a writer running beside this one (an
//! abort, the lost-drone keeper) is seen, never overwritten.

mod conn;
#[cfg(test)]
mod lost_tests;
mod tests_store;

use super::schema::host_queue_entries as hqe;
use super::{Db, DbError};
use crate::intake::{
    self, Applied, Context, EntryChanges, EntryRow, History, InfraRules, Report, Tally, Transition,
};
use crate::model::{AttemptId, EntryStatus};
use crate::{with_conn, write_txn};
use common::names::DroneName;
use common::protocol::StatusEvent;
use conn::{IntakeConn, Reads};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeSet;

/// Applies reports from drones in one transaction: what each did, and the tally of
/// the transaction's transitions. Any report from a drone counts as a sign of life; a
/// heartbeat also hands back the entries the drone does not hold.
pub async fn apply(
    db: &Db,
    reports: &[Report],
    rules: InfraRules,
) -> Result<(Vec<Applied>, Tally), DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        let mut tally = Tally::default();
        let applied = apply_in(conn, reports, rules, now, &mut tally).await?;
        Ok((applied, tally))
    })
}

/// Entries on a drone that is lost (silent since `silent_since`): those it was running
/// or had been sent before `dispatched_before` (their job message has expired or was
/// taken) become infra failures; the drone's own lease has stopped them by now.
/// Entries in Gathering are left alone (their test is over and the drone may still push
/// the results), unless an abort was recorded: those end Aborted, so an abort always
/// ends an entry even when its drone never comes back. Returns how many were handed
/// back or ended, and the tally of those transitions.
pub async fn fail_lost_drone(
    db: &Db,
    drone: &DroneName,
    reason: &str,
    dispatched_before: i64,
    rules: InfraRules,
) -> Result<(usize, Tally), DbError> {
    let now = common::time::now_micros();
    let cx = Context { drone, now, rules };
    write_txn!(db, |conn, _last_id| {
        let mut tally = Tally::default();
        let on_drone = conn.on_drone(drone).await?;
        let mut n = 0;
        for attempt in intake::lost_attempts(&on_drone, dispatched_before) {
            n += usize::from(fail_attempt(conn, attempt, reason, &cx, &mut tally).await?);
        }
        for attempt in conn.aborted_gathering(drone).await? {
            n += usize::from(fail_attempt(conn, attempt, reason, &cx, &mut tally).await?);
        }
        Ok((n, tally))
    })
}

/// The entry's current (attempt, status, drone), for logging a stale report.
pub async fn current(
    db: &Db,
    entry_id: i64,
) -> Result<Option<(i32, EntryStatus, Option<String>)>, DbError> {
    Ok(with_conn!(db, |conn| {
        hqe::table
            .filter(hqe::id.eq(entry_id))
            .select((hqe::attempt, hqe::status, hqe::drone))
            .get_result(conn)
            .await
            .optional()?
    }))
}

async fn apply_in<C: IntakeConn>(
    conn: &mut C,
    reports: &[Report],
    rules: InfraRules,
    now: i64,
    tally: &mut Tally,
) -> Result<Vec<Applied>, DbError> {
    let mut out = Vec::with_capacity(reports.len());
    for report in reports {
        let cx = Context {
            drone: &report.drone,
            now,
            rules,
        };
        let applied = match (&report.event, &report.refused) {
            // Not from the drone it names: a heartbeat counts for nothing.
            (StatusEvent::Heartbeat { .. }, Some(_)) => Applied::Refused,
            (event, Some(why)) => refuse(conn, event, why, &cx).await?,
            (
                StatusEvent::Heartbeat {
                    running,
                    results_url,
                    stopping,
                    free_mb,
                    low_disk,
                },
                None,
            ) => {
                // A URL the drone may not name leaves the one it had.
                let url = (!report.url_ignored)
                    .then(|| intake::heartbeat_results_url(results_url.as_ref()));
                let said = intake::DroneSaid::of(*stopping, *free_mb, *low_disk);
                conn.drone_heard(cx.drone, url, &said).await?;
                let on_drone = conn.on_drone(cx.drone).await?;
                let running: Vec<AttemptId> =
                    running.iter().copied().map(AttemptId::from).collect();
                let mut reclaimed = false;
                for attempt in intake::reclaimable(&running, &on_drone, now, rules) {
                    let reason = intake::unheld_reason(cx.drone, attempt);
                    reclaimed |= fail_attempt(conn, attempt, &reason, &cx, tally).await?;
                }
                Applied::Heartbeat { reclaimed }
            }
            (event, None) => apply_report(conn, event, &cx, tally).await?,
        };
        out.push(applied);
    }
    // Whatever a drone reports shows it is alive; what another user sent in its name
    // does not.
    let heard: BTreeSet<&str> = reports
        .iter()
        .filter(|r| r.refused.is_none())
        .map(|r| r.drone.as_str())
        .collect();
    for drone in heard {
        conn.alive(drone, now).await?;
    }
    Ok(out)
}

/// A report about an entry that its drone's broker user did not send: the entry's
/// history says so (up to [`MAX_NOTES`] such records), nothing else changes.
async fn refuse<C: IntakeConn>(
    conn: &mut C,
    event: &StatusEvent,
    why: &str,
    cx: &Context<'_>,
) -> Result<Applied, DbError> {
    let Some(attempt) = intake::event_attempt(event) else {
        return Ok(Applied::Refused);
    };
    if conn.entry(attempt.entry).await?.is_none() {
        return Ok(Applied::UnknownEntry);
    }
    let event_text = serde_json::to_string(event).unwrap_or_default();
    let history = History {
        attempt,
        drone: cx.drone.clone(),
        event: "refused-report",
        detail: common::text::reason(&format!("{why}: {event_text}")).into_owned(),
    };
    note(conn, &history, cx.now).await?;
    Ok(Applied::Refused)
}

/// The most `stale-report` and `refused-report` records one entry keeps (each): past
/// them a drone could fill the table with reports that change nothing.
pub const MAX_NOTES: i64 = 32;

/// Records a report that changed nothing, unless the entry has [`MAX_NOTES`] of them.
async fn note<C: IntakeConn>(conn: &mut C, history: &History, now: i64) -> Result<(), DbError> {
    let kept = conn
        .history_count(history.attempt.entry, history.event)
        .await?;
    if kept < MAX_NOTES {
        conn.record(history, now).await?;
    }
    Ok(())
}

/// One report about one entry: read, judge, write.
async fn apply_report<C: IntakeConn>(
    conn: &mut C,
    event: &StatusEvent,
    cx: &Context<'_>,
    tally: &mut Tally,
) -> Result<Applied, DbError> {
    let Some(attempt) = intake::event_attempt(event) else {
        return Err(DbError::Invalid(
            "a heartbeat is not about one entry".into(),
        ));
    };
    let Some(row) = conn.entry(attempt.entry).await? else {
        return Ok(Applied::UnknownEntry);
    };
    let members = conn.members(attempt.entry).await?;
    let transition = intake::report(event, Some(&row), &members, cx);
    if write(conn, &transition, cx.now, tally).await? {
        Ok(transition.applied)
    } else {
        Ok(Applied::Stale)
    }
}

/// An infra failure of `attempt` found by the scheduler (not reported): written only
/// when the attempt is current. Returns whether it was.
async fn fail_attempt<C: IntakeConn>(
    conn: &mut C,
    attempt: AttemptId,
    reason: &str,
    cx: &Context<'_>,
    tally: &mut Tally,
) -> Result<bool, DbError> {
    let row = conn.entry(attempt.entry).await?;
    let members = match &row {
        Some(_) => conn.members(attempt.entry).await?,
        None => Vec::new(),
    };
    let transition = intake::infra_failure(row.as_ref(), attempt, &members, reason, cx);
    Ok(transition.changed() && write(conn, &transition, cx.now, tally).await?)
}

/// Writes what a transition implies, in order: the entry, its manifest, hosts, the
/// group, the history. The entry's update is guarded by the row it was judged on; if
/// that matches nothing (the entry moved on since it was read), nothing else is
/// written but a stale record, and the answer is false. What was written goes into
/// `tally`.
async fn write<C: IntakeConn>(
    conn: &mut C,
    transition: &Transition,
    now: i64,
    tally: &mut Tally,
) -> Result<bool, DbError> {
    if let Some(row) = &transition.row {
        if transition.entry != EntryChanges::default() {
            if !conn.update_entry(row, &transition.entry).await? {
                record_moved_on(conn, row, transition, now).await?;
                return Ok(false);
            }
            tally.count(row, &transition.entry, now);
        }
        if let Some(manifest) = transition.manifest {
            conn.store_manifest(row.attempt.entry, manifest).await?;
        }
    }
    if let Some(tests) = &transition.tests {
        conn.write_tests(tests).await?;
    }
    for host in &transition.hosts {
        conn.write_host(host).await?;
    }
    if let Some(group) = &transition.group {
        conn.sync_group(group).await?;
    }
    if let Some(history) = &transition.history {
        if transition.changed() {
            conn.record(history, now).await?;
        } else {
            note(conn, history, now).await?;
        }
    }
    if let (Some(note), Some(history)) = (&transition.infra, &transition.history) {
        tracing::warn!(
            entry.id = history.attempt.entry,
            attempt = history.attempt.attempt,
            drone.name = %history.drone,
            reason = note.reason,
            outcome = note.outcome,
            "infra failure"
        );
    }
    Ok(true)
}

/// The entry was no longer as `row` says when its update ran: the report is stale.
async fn record_moved_on<C: IntakeConn>(
    conn: &mut C,
    row: &EntryRow,
    transition: &Transition,
    now: i64,
) -> Result<(), DbError> {
    tracing::warn!(
        entry.id = row.attempt.entry,
        attempt = row.attempt.attempt,
        status = %row.status,
        "the entry changed between its read and its update; recorded as stale"
    );
    let Some(history) = &transition.history else {
        return Ok(());
    };
    let stale = History {
        event: "stale-report",
        detail: format!(
            "the entry left {} at attempt {} first",
            row.status, row.attempt.attempt
        ),
        ..history.clone()
    };
    note(conn, &stale, now).await
}
