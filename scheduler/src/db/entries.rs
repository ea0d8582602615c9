//! Host-queue entries as the dispatcher and the status consumer change them. Every
//! change is a conditional update on (id, attempt, expected status), so a decision
//! taken on a stale view, or a report from an older attempt, changes nothing.

use super::drones::DroneLoad;
use super::schema::{drones, host_queue_entries as hqe, hosts, jobs};
use super::{Db, DbError};
use crate::api::status;
use crate::{with_conn, write_txn};
use common::protocol::StatusEvent;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// A queued entry whose host is ready: what a dispatch needs to build the message.
#[derive(Debug, Clone, Queryable)]
pub struct Candidate {
    pub entry_id: i64,
    pub job_id: i64,
    pub attempt: i32,
    pub execution_subdir: String,
    pub host_id: i64,
    pub hostname: String,
    pub job_name: String,
    pub owner: String,
    pub control_file: String,
}

/// What a dispatch cycle decides on, read on one connection: the configured drones
/// with their load, then up to `fetch(free slots)` queued entries on ready, unlocked
/// hosts, best first (priority, then job age).
pub async fn dispatch_view(
    db: &Db,
    configured: &[String],
    fetch: impl FnOnce(i64) -> i64,
) -> Result<(Vec<DroneLoad>, Vec<Candidate>), DbError> {
    type Rows = (
        Vec<(String, bool, i32)>,
        Vec<(Option<String>, i64)>,
        Vec<Candidate>,
    );
    let (rows, counts, candidates): Rows = with_conn!(db, |conn| {
        let rows: Vec<(String, bool, i32, Option<i32>)> = drones::table
            .filter(drones::name.eq_any(configured))
            .order(drones::name.asc())
            .select((
                drones::name,
                drones::enabled,
                drones::capacity,
                drones::capacity_override,
            ))
            .load(conn)
            .await?;
        // A capacity set at run time wins over the config's.
        let rows: Vec<(String, bool, i32)> = rows
            .into_iter()
            .map(|(name, enabled, capacity, set)| (name, enabled, set.unwrap_or(capacity)))
            .collect();
        let counts: Vec<(Option<String>, i64)> = hqe::table
            .filter(hqe::status.eq_any(status::ON_DRONE))
            .group_by(hqe::drone)
            .select((hqe::drone, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        let by_drone: BTreeMap<&str, i64> = counts
            .iter()
            .filter_map(|(d, n)| Some((d.as_deref()?, *n)))
            .collect();
        let free: i64 = rows
            .iter()
            .filter(|(_, enabled, _)| *enabled)
            .map(|(name, _, capacity)| {
                (i64::from(*capacity) - by_drone.get(name.as_str()).copied().unwrap_or(0)).max(0)
            })
            .sum();
        let limit = fetch(free);
        let candidates = if limit > 0 {
            hqe::table
                .inner_join(hosts::table)
                .inner_join(jobs::table)
                .filter(hqe::status.eq(status::QUEUED))
                .filter(hosts::status.eq("Ready"))
                .filter(hosts::locked.eq(false))
                .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
                .limit(limit)
                .select((
                    hqe::id,
                    hqe::job_id,
                    hqe::attempt,
                    hqe::execution_subdir,
                    hosts::id,
                    hosts::hostname,
                    jobs::name,
                    jobs::owner,
                    jobs::control_file,
                ))
                .load::<Candidate>(conn)
                .await?
        } else {
            Vec::new()
        };
        (rows, counts, candidates)
    });
    let counts: BTreeMap<String, i64> = counts
        .into_iter()
        .filter_map(|(d, n)| Some((d?, n)))
        .collect();
    let loads = rows
        .into_iter()
        .map(|(name, enabled, capacity)| DroneLoad {
            running: counts.get(&name).copied().unwrap_or(0),
            name,
            enabled,
            capacity: i64::from(capacity),
        })
        .collect();
    Ok((loads, candidates))
}

/// Entries left in Starting (dispatched, maybe never published), with their drone.
pub async fn starting(db: &Db) -> Result<Vec<(Candidate, String)>, DbError> {
    type Row = (
        i64,
        i64,
        i32,
        String,
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = with_conn!(db, |conn| {
        hqe::table
            .inner_join(hosts::table)
            .inner_join(jobs::table)
            .filter(hqe::status.eq(status::STARTING))
            .select((
                hqe::id,
                hqe::job_id,
                hqe::attempt,
                hqe::execution_subdir,
                hosts::id,
                hosts::hostname,
                jobs::name,
                jobs::owner,
                jobs::control_file,
                hqe::drone,
            ))
            .load(conn)
            .await?
    });
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                Candidate {
                    entry_id: r.0,
                    job_id: r.1,
                    attempt: r.2,
                    execution_subdir: r.3,
                    host_id: r.4,
                    hostname: r.5,
                    job_name: r.6,
                    owner: r.7,
                    control_file: r.8,
                },
                r.9?,
            ))
        })
        .collect())
}

/// Records the assignments (entry → Starting on drone, attempt + 1, host → Running)
/// in one transaction; returns those that took, with their new attempt number.
pub async fn assign(
    db: &Db,
    assignments: Vec<(Candidate, String)>,
) -> Result<Vec<(Candidate, String)>, DbError> {
    write_txn!(db, |conn, _last_id| {
        let mut taken = Vec::with_capacity(assignments.len());
        for (mut candidate, drone) in assignments {
            let host = diesel::update(
                hosts::table
                    .filter(hosts::id.eq(candidate.host_id))
                    .filter(hosts::status.eq("Ready"))
                    .filter(hosts::locked.eq(false)),
            )
            .set(hosts::status.eq("Running"))
            .execute(conn)
            .await?;
            if host == 0 {
                continue;
            }
            let entry = diesel::update(
                hqe::table
                    .filter(hqe::id.eq(candidate.entry_id))
                    .filter(hqe::attempt.eq(candidate.attempt))
                    .filter(hqe::status.eq(status::QUEUED)),
            )
            .set((
                hqe::status.eq(status::STARTING),
                hqe::drone.eq(&drone),
                hqe::attempt.eq(candidate.attempt + 1),
            ))
            .execute(conn)
            .await?;
            if entry == 0 {
                diesel::update(hosts::table.filter(hosts::id.eq(candidate.host_id)))
                    .set(hosts::status.eq("Ready"))
                    .execute(conn)
                    .await?;
                continue;
            }
            candidate.attempt += 1;
            taken.push((candidate, drone));
        }
        Ok(taken)
    })
}

/// Puts an entry whose dispatch could not be published back in the queue.
pub async fn unassign(db: &Db, entry_id: i64, attempt: i32, host_id: i64) -> Result<bool, DbError> {
    write_txn!(db, |conn, _last_id| {
        let n = diesel::update(
            hqe::table
                .filter(hqe::id.eq(entry_id))
                .filter(hqe::attempt.eq(attempt))
                .filter(hqe::status.eq(status::STARTING)),
        )
        .set((
            hqe::status.eq(status::QUEUED),
            hqe::drone.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
        if n > 0 {
            diesel::update(hosts::table.filter(hosts::id.eq(host_id)))
                .set(hosts::status.eq("Ready"))
                .execute(conn)
                .await?;
        }
        Ok(n > 0)
    })
}

/// What applying one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry changed; `slot_freed` when a drone slot or a host became free.
    Changed {
        slot_freed: bool,
    },
    /// From an older attempt, another drone, or out of order: ignored.
    Stale,
    Heartbeat,
}

/// Applies reports from drones in one transaction.
pub async fn apply(db: &Db, reports: &[(String, StatusEvent)]) -> Result<Vec<Applied>, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        let mut out = Vec::with_capacity(reports.len());
        for (drone, event) in reports {
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
                    .execute(conn)
                    .await?;
                    (n, false, None)
                }
                StatusEvent::Gathering {
                    entry_id,
                    attempt,
                    exit_code,
                } => {
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq_any(status::ON_DRONE)),
                    )
                    .set((
                        hqe::status.eq(status::GATHERING),
                        hqe::exit_code.eq(exit_code),
                    ))
                    .execute(conn)
                    .await?;
                    (n, true, None)
                }
                StatusEvent::Finished {
                    entry_id,
                    attempt,
                    exit_code,
                } => {
                    let final_status = if *exit_code == 0 {
                        status::COMPLETED
                    } else {
                        status::FAILED
                    };
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq_any(status::ACTIVE)),
                    )
                    .set((
                        hqe::status.eq(final_status),
                        hqe::exit_code.eq(exit_code),
                        hqe::finished_on.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                    (n, true, Some(*entry_id))
                }
                StatusEvent::Refused {
                    entry_id,
                    attempt,
                    reason,
                } => {
                    let n = diesel::update(
                        target(*entry_id, *attempt).filter(hqe::status.eq_any(status::ACTIVE)),
                    )
                    .set((
                        hqe::status.eq(status::FAILED),
                        hqe::failure_reason.eq(reason),
                        hqe::finished_on.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                    (n, true, Some(*entry_id))
                }
                StatusEvent::Heartbeat { .. } => {
                    diesel::update(drones::table.filter(drones::name.eq(drone)))
                        .set(drones::last_heartbeat.eq(now))
                        .execute(conn)
                        .await?;
                    out.push(Applied::Heartbeat);
                    continue;
                }
            };
            if changed == 0 {
                out.push(Applied::Stale);
                continue;
            }
            if let Some(entry_id) = finished_entry {
                let host_id: i64 = hqe::table
                    .filter(hqe::id.eq(entry_id))
                    .select(hqe::host_id)
                    .first(conn)
                    .await?;
                diesel::update(hosts::table.filter(hosts::id.eq(host_id)))
                    .set(hosts::status.eq("Ready"))
                    .execute(conn)
                    .await?;
            }
            out.push(Applied::Changed { slot_freed });
        }
        Ok(out)
    })
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
            .first(conn)
            .await
            .optional()?
    }))
}
