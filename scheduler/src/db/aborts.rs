//! Aborts as the database records them, and the deadlines the timeout keeper aborts
//! by.

use super::schema::{host_queue_entries as hqe, hosts};
use super::{Cache, Db, DbError};
use crate::model::{AttemptId, EntryStatus, HostStatus};
use crate::{with_conn, write_txn};
use common::names::DroneName;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The states in which an entry waits for a drone.
const WAITING: [EntryStatus; 2] = [EntryStatus::Queued, EntryStatus::Pending];

/// The states in which an entry is held by a drone.
const ACTIVE: [EntryStatus; 3] = [
    EntryStatus::Starting,
    EntryStatus::Running,
    EntryStatus::Gathering,
];

/// Aborts entries, recorded before anything else: queued ones become Aborted at once;
/// for active ones the abort is recorded (`by`, time, reason) and their attempts are
/// returned with their drones, so the drones can be told; they end Aborted when their drone
/// reports. Finished entries are left alone.
pub async fn abort(
    db: &Db,
    ids: &[i64],
    by: &str,
    reason: Option<String>,
) -> Result<Vec<(AttemptId, DroneName)>, DbError> {
    let now = common::time::now_micros();
    let ids = ids.to_vec();
    let by = by.to_string();
    // Stored free text is bounded: a longer reason is cut and marked.
    let reason = reason.map(|r| common::text::reason(&r).into_owned());
    write_txn!(db, |conn, _last_id| {
        let recorded = (
            hqe::aborted_by.eq(&by),
            hqe::aborted_on.eq(now),
            hqe::abort_reason.eq(&reason),
        );
        // Pending entries give their hosts back.
        let held: Vec<Option<i64>> = hqe::table
            .filter(hqe::id.eq_any(&ids))
            .filter(hqe::status.eq(EntryStatus::Pending))
            .select(hqe::host_id)
            .load(conn)
            .await?;
        let held: Vec<i64> = held.into_iter().flatten().collect();
        diesel::update(
            hosts::table
                .filter(hosts::id.eq_any(&held))
                .filter(hosts::status.eq(HostStatus::Pending)),
        )
        .set(hosts::status.eq(HostStatus::Ready))
        .execute(conn)
        .await?;
        diesel::update(
            hqe::table
                .filter(hqe::id.eq_any(&ids))
                .filter(hqe::status.eq_any(WAITING)),
        )
        .set((
            recorded,
            hqe::status.eq(EntryStatus::Aborted),
            hqe::finished_on.eq(now),
        ))
        .execute(conn)
        .await?;
        diesel::update(
            hqe::table
                .filter(hqe::id.eq_any(&ids))
                .filter(hqe::status.eq_any(ACTIVE))
                .filter(hqe::aborted_on.is_null()),
        )
        .set(recorded)
        .execute(conn)
        .await?;
        // A group's drone knows its lead only.
        let active: Vec<(i64, i32, Option<DroneName>)> = hqe::table
            .filter(hqe::id.eq_any(&ids))
            .filter(hqe::status.eq_any(ACTIVE))
            .filter(hqe::group_lead_id.is_null())
            .select((hqe::id, hqe::attempt, hqe::drone))
            .load(conn)
            .await?;
        Ok(active
            .into_iter()
            .filter_map(|(entry, attempt, drone)| Some((AttemptId::new(entry, attempt), drone?)))
            .collect())
    })
}

/// An active entry with a maximum runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeLimit {
    pub entry: i64,
    /// When it started (UTC microseconds).
    pub started_on: i64,
    pub max_runtime_us: i64,
}

impl RuntimeLimit {
    /// When it runs out of time.
    pub fn deadline(&self) -> i64 {
        self.started_on + self.max_runtime_us
    }
}

/// What the timeout keeper needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// Waiting entries past their queue deadline.
    pub expired: Vec<i64>,
    /// The next queue deadline.
    pub next: Option<i64>,
    /// Active entries with a maximum runtime, not aborted yet.
    pub running: Vec<RuntimeLimit>,
}

/// The deadlines as they stand at `now`.
pub async fn timeouts(db: &Db, now: i64) -> Result<Deadlines, DbError> {
    Ok(with_conn!(db, |conn| {
        let expired: Vec<i64> = hqe::table
            .filter(hqe::status.eq_any(WAITING))
            .filter(hqe::queue_deadline.le(now))
            .select(hqe::id)
            .cached()
            .load(conn)
            .await?;
        let next: Option<i64> = hqe::table
            .filter(hqe::status.eq_any(WAITING))
            .filter(hqe::queue_deadline.gt(now))
            .select(diesel::dsl::min(hqe::queue_deadline))
            .cached()
            .get_result(conn)
            .await?;
        let running: Vec<(i64, Option<i64>, Option<i64>)> = hqe::table
            .filter(hqe::status.eq_any(ACTIVE))
            .filter(hqe::max_runtime_us.is_not_null())
            .filter(hqe::aborted_on.is_null())
            .filter(hqe::started_on.is_not_null())
            .select((hqe::id, hqe::started_on, hqe::max_runtime_us))
            .cached()
            .load(conn)
            .await?;
        let running = running
            .into_iter()
            .filter_map(|(entry, started_on, max)| {
                Some(RuntimeLimit {
                    entry,
                    started_on: started_on?,
                    max_runtime_us: max?,
                })
            })
            .collect();
        Deadlines {
            expired,
            next,
            running,
        }
    }))
}
