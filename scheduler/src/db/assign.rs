//! Dispatches as the database records them. Every change is a conditional update on
//! (id, attempt, expected status), so a decision taken on a stale view changes nothing.

use super::dispatch_view::{candidate_columns, Candidate};
use super::schema::{host_queue_entries as hqe, hosts, jobs};
use super::{Cache, Conn, Db, DbError};
use crate::model::{AttemptId, EntryStatus, HostStatus, TaskFlags};
use crate::{on_conn, with_conn, write_txn};
use common::names::{DroneName, HostName};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// One entry given to one drone.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub candidate: Candidate,
    /// The drone's name.
    pub drone: DroneName,
}

/// One Autoserv run recorded as Starting: its lead entry, the hosts it runs on (a
/// synchronous group's lead brings its members' hosts) and its drone.
#[derive(Debug, Clone)]
pub struct Run {
    pub lead: Candidate,
    pub hosts: Vec<HostName>,
    pub drone: DroneName,
}

/// Entries left in Starting (dispatched, maybe never published), as runs.
pub async fn starting(db: &Db) -> Result<Vec<Run>, DbError> {
    type Row = (Candidate, Option<DroneName>, Option<i64>);
    let rows: Vec<Row> = with_conn!(db, |conn| {
        hqe::table
            .inner_join(hosts::table)
            .inner_join(jobs::table)
            .filter(hqe::status.eq(EntryStatus::Starting))
            .order(hqe::id.asc())
            .select((candidate_columns(), hqe::drone, hqe::group_lead_id))
            .load(conn)
            .await?
    });
    let mut members: BTreeMap<i64, Vec<HostName>> = BTreeMap::new();
    for (candidate, _, lead) in &rows {
        if let Some(lead) = lead {
            members
                .entry(*lead)
                .or_default()
                .push(candidate.hostname.clone());
        }
    }
    Ok(rows
        .into_iter()
        .filter(|(_, _, lead)| lead.is_none())
        .filter_map(|(candidate, drone, _)| {
            let mut hosts = vec![candidate.hostname.clone()];
            hosts.extend(members.remove(&candidate.entry_id).unwrap_or_default());
            Some(Run {
                lead: candidate,
                hosts,
                drone: drone?,
            })
        })
        .collect())
}

/// Entries of synchronous jobs take their hosts and wait Pending for their group
/// (entry Queued → Pending, host Ready → Pending); returns how many did.
pub async fn reserve(db: &Db, reservations: Vec<Candidate>) -> Result<usize, DbError> {
    write_txn!(db, |conn, _last_id| {
        let mut conn = Conn::from(conn);
        let mut taken = 0;
        for candidate in &reservations {
            if reserve_in(&mut conn, candidate).await? {
                taken += 1;
            }
        }
        Ok(taken)
    })
}

/// One reservation of [`reserve`]: whether it took.
async fn reserve_in(conn: &mut Conn<'_>, candidate: &Candidate) -> Result<bool, DbError> {
    let host = on_conn!(conn, |c| {
        diesel::update(
            hosts::table
                .filter(hosts::id.eq(candidate.host_id))
                .filter(hosts::status.eq(HostStatus::Ready))
                .filter(hosts::locked.eq(false)),
        )
        .set(hosts::status.eq(HostStatus::Pending))
        .execute(c)
        .await?
    });
    if host == 0 {
        return Ok(false);
    }
    let entry = on_conn!(conn, |c| {
        diesel::update(
            hqe::table
                .filter(hqe::id.eq(candidate.entry_id))
                .filter(hqe::attempt.eq(candidate.attempt))
                .filter(hqe::status.eq(EntryStatus::Queued)),
        )
        .set((
            hqe::status.eq(EntryStatus::Pending),
            hqe::host_id.eq(Some(candidate.host_id)),
            hqe::execution_subdir.eq(&candidate.execution_subdir),
        ))
        .execute(c)
        .await?
    });
    if entry == 0 {
        free_host(conn, candidate.host_id, false).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Gives a host taken for an entry that moved meanwhile back (Ready).
async fn free_host(conn: &mut Conn<'_>, host_id: i64, cached: bool) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        diesel::update(hosts::table.filter(hosts::id.eq(host_id)))
            .set(hosts::status.eq(HostStatus::Ready))
            .cached_if(cached)
            .execute(c)
            .await?
    });
    Ok(())
}

/// Starts a synchronous group: its Pending entries become Starting on `drone`, each
/// with its attempt raised by one, the others pointing at the first (the lead), all in
/// `group<N>`; their hosts become Running. Returns the members with their new attempts
/// (lead first), or nothing if one of them moved meanwhile.
pub async fn assign_group(
    db: &Db,
    members: Vec<Candidate>,
    drone: &DroneName,
) -> Result<Option<Vec<Candidate>>, DbError> {
    let now = common::time::now_micros();
    if members.is_empty() {
        return Ok(None);
    }
    write_txn!(db, |conn, _last_id| {
        assign_group_in(&mut Conn::from(conn), &members, drone, now)
            .await
            .map(Some)
    })
    .or_else(|error| match error {
        DbError::Conflict(_) => Ok(None),
        other => Err(other),
    })
}

/// The body of [`assign_group`]: a member that moved meanwhile (aborted, timed out)
/// is a [`DbError::Conflict`], which rolls the whole group back.
async fn assign_group_in(
    conn: &mut Conn<'_>,
    members: &[Candidate],
    drone: &DroneName,
    now: i64,
) -> Result<Vec<Candidate>, DbError> {
    let lead_id = members[0].entry_id;
    let job_id = members[0].job_id;
    // Named by the position of the lead among the job's entries: unique within the
    // job, and the same for a retry with the same lead (whose earlier, lost attempt
    // left its results set aside).
    let before: i64 = on_conn!(conn, |c| {
        hqe::table
            .filter(hqe::job_id.eq(job_id))
            .filter(hqe::id.lt(lead_id))
            .count()
            .get_result(c)
            .await?
    });
    let subdir = HostName::new(format!("group{before}"))
        .map_err(|error| DbError::Invalid(error.to_string()))?;
    let mut taken = Vec::with_capacity(members.len());
    for member in members {
        let lead = (member.entry_id != lead_id).then_some(lead_id);
        let n = on_conn!(conn, |c| {
            diesel::update(
                hqe::table
                    .filter(hqe::id.eq(member.entry_id))
                    .filter(hqe::attempt.eq(member.attempt))
                    .filter(hqe::status.eq(EntryStatus::Pending)),
            )
            .set((
                hqe::status.eq(EntryStatus::Starting),
                hqe::drone.eq(drone),
                hqe::attempt.eq(member.attempt + 1),
                hqe::dispatched_on.eq(now),
                hqe::execution_subdir.eq(&subdir),
                hqe::group_lead_id.eq(lead),
            ))
            .execute(c)
            .await?
        });
        if n == 0 {
            return Err(DbError::Conflict(format!(
                "entry {} is no longer Pending",
                member.entry_id
            )));
        }
        on_conn!(conn, |c| {
            diesel::update(hosts::table.filter(hosts::id.eq(member.host_id)))
                .set((hosts::status.eq(HostStatus::Running), hosts::dirty.eq(true)))
                .execute(c)
                .await?
        });
        let mut member = member.clone();
        member.attempt += 1;
        member.execution_subdir = subdir.clone();
        taken.push(member);
    }
    Ok(taken)
}

/// Records the assignments (entry → Starting on drone, attempt + 1, host → Running)
/// in one transaction; returns those that took, with their new attempt number.
pub async fn assign(db: &Db, assignments: Vec<Assignment>) -> Result<Vec<Assignment>, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        assign_in(&mut Conn::from(conn), assignments, now).await
    })
}

/// [`assign`] inside a write transaction of either backend.
pub async fn assign_in(
    conn: &mut Conn<'_>,
    assignments: Vec<Assignment>,
    now: i64,
) -> Result<Vec<Assignment>, DbError> {
    let mut taken = Vec::with_capacity(assignments.len());
    for mut assignment in assignments {
        if assign_one(conn, &assignment, now).await? {
            assignment.candidate.attempt += 1;
            taken.push(assignment);
        }
    }
    Ok(taken)
}

/// One assignment of [`assign_in`]: whether it took (its host was free and its entry
/// still Queued at its attempt).
async fn assign_one(
    conn: &mut Conn<'_>,
    assignment: &Assignment,
    now: i64,
) -> Result<bool, DbError> {
    let Assignment { candidate, drone } = assignment;
    let host = if candidate.job_tasks == TaskFlags::REPAIR_ONLY {
        on_conn!(conn, |c| {
            diesel::update(
                hosts::table
                    .filter(hosts::id.eq(candidate.host_id))
                    .filter(hosts::status.eq_any([HostStatus::Ready, HostStatus::RepairFailed])),
            )
            .set(hosts::status.eq(HostStatus::Running))
            .cached()
            .execute(c)
            .await?
        })
    } else {
        // The job will have run on it: dirty until a cleanup passes.
        on_conn!(conn, |c| {
            diesel::update(
                hosts::table
                    .filter(hosts::id.eq(candidate.host_id))
                    .filter(hosts::status.eq(HostStatus::Ready))
                    .filter(hosts::locked.eq(false)),
            )
            .set((hosts::status.eq(HostStatus::Running), hosts::dirty.eq(true)))
            .cached()
            .execute(c)
            .await?
        })
    };
    if host == 0 {
        return Ok(false);
    }
    let entry = on_conn!(conn, |c| {
        diesel::update(
            hqe::table
                .filter(hqe::id.eq(candidate.entry_id))
                .filter(hqe::attempt.eq(candidate.attempt))
                .filter(hqe::status.eq(EntryStatus::Queued)),
        )
        .set((
            hqe::status.eq(EntryStatus::Starting),
            hqe::drone.eq(drone),
            hqe::attempt.eq(candidate.attempt + 1),
            hqe::dispatched_on.eq(now),
            // A metahost entry gets its host here.
            hqe::host_id.eq(Some(candidate.host_id)),
            hqe::execution_subdir.eq(&candidate.execution_subdir),
        ))
        .cached()
        .execute(c)
        .await?
    });
    if entry == 0 {
        free_host(conn, candidate.host_id, true).await?;
        return Ok(false);
    }
    Ok(true)
}

/// Records that an entry left in Starting was published again just now.
pub async fn redispatched(db: &Db, attempt: AttemptId) -> Result<(), DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        diesel::update(
            hqe::table
                .filter(hqe::id.eq(attempt.entry))
                .filter(hqe::attempt.eq(attempt.attempt))
                .filter(hqe::status.eq(EntryStatus::Starting)),
        )
        .set(hqe::dispatched_on.eq(now))
        .execute(conn)
        .await?;
        Ok(())
    })
}
