//! Where each job's results are (`jobs.results_place`, `results_place_on`), for the
//! retention of results on the results host (the results keeper).

use super::schema::{host_queue_entries as hqe, jobs};
use super::{Db, DbError};
use crate::model::ResultsPlace as Place;
use crate::with_conn;
use diesel::dsl::{exists, max, not};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The statuses an entry ends in.
const FINAL: [&str; 3] = ["Completed", "Failed", "Aborted"];

/// A job as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlace {
    pub id: i64,
    pub owner: String,
    /// Its entries not ended yet.
    pub active: i64,
    pub place: Place,
    /// When `place` was recorded (UTC microseconds); None on the results host.
    pub place_on: Option<i64>,
    /// When its last entry ended (else when it was created).
    pub ended_on: i64,
}

/// Job `id` as retention sees it.
pub async fn of_job(db: &Db, id: i64) -> Result<JobPlace, DbError> {
    type Row = (i64, String, i64, Option<String>, Option<i64>);
    let (job, active, ended): (Option<Row>, i64, Option<i64>) = with_conn!(db, |conn| {
        let job = jobs::table
            .filter(jobs::id.eq(id))
            .select((
                jobs::id,
                jobs::owner,
                jobs::created_on,
                jobs::results_place,
                jobs::results_place_on,
            ))
            .get_result::<Row>(conn)
            .await
            .optional()?;
        let active: i64 = hqe::table
            .filter(hqe::job_id.eq(id))
            .filter(hqe::status.ne_all(FINAL))
            .count()
            .get_result(conn)
            .await?;
        let ended: Option<i64> = hqe::table
            .filter(hqe::job_id.eq(id))
            .select(max(hqe::finished_on))
            .get_result(conn)
            .await?;
        (job, active, ended)
    });
    let (id, owner, created_on, place, place_on) =
        job.ok_or_else(|| DbError::NotFound(format!("no job {id}")))?;
    Ok(JobPlace {
        id,
        owner,
        active,
        place: Place::from_stored(place.as_deref()),
        place_on,
        ended_on: ended.unwrap_or(created_on),
    })
}

/// Up to `limit` finished jobs with results on the results host, after job
/// `after_id`, by id: (id, owner, when its last entry ended).
pub async fn finished_on_results_host(
    db: &Db,
    after_id: i64,
    limit: i64,
) -> Result<Vec<(i64, String, i64)>, DbError> {
    type Read = (Vec<(i64, String, i64)>, Vec<(i64, Option<i64>)>);
    let (rows, ends): Read = with_conn!(db, |conn| {
        let open = hqe::table
            .filter(hqe::job_id.eq(jobs::id))
            .filter(hqe::status.ne_all(FINAL));
        let rows: Vec<(i64, String, i64)> = jobs::table
            .filter(jobs::results_place.is_null())
            .filter(jobs::id.gt(after_id))
            .filter(not(exists(open)))
            .order(jobs::id)
            .limit(limit)
            .select((jobs::id, jobs::owner, jobs::created_on))
            .load(conn)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let ends: Vec<(i64, Option<i64>)> = hqe::table
            .filter(hqe::job_id.eq_any(&ids))
            .group_by(hqe::job_id)
            .select((hqe::job_id, max(hqe::finished_on)))
            .load(conn)
            .await?;
        (rows, ends)
    });
    let ends: std::collections::HashMap<i64, i64> = ends
        .into_iter()
        .filter_map(|(id, end)| Some((id, end?)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|(id, owner, created)| (id, owner, ends.get(&id).copied().unwrap_or(created)))
        .collect())
}

/// Records that job `id`'s results are now at `place` (one short statement).
pub async fn set(db: &Db, id: i64, place: Place, now_us: i64) -> Result<(), DbError> {
    let on = place.stored().map(|_| now_us);
    with_conn!(db, |conn| {
        diesel::update(jobs::table.find(id))
            .set((
                jobs::results_place.eq(place.stored()),
                jobs::results_place_on.eq(on),
            ))
            .execute(conn)
            .await?
    });
    Ok(())
}

/// Where job `id`'s results are and since when; None when there is no such job.
pub async fn place_of(db: &Db, id: i64) -> Result<Option<(Place, Option<i64>)>, DbError> {
    let row: Option<(Option<String>, Option<i64>)> = with_conn!(db, |conn| {
        jobs::table
            .filter(jobs::id.eq(id))
            .select((jobs::results_place, jobs::results_place_on))
            .get_result(conn)
            .await
            .optional()?
    });
    Ok(row.map(|(place, on)| (Place::from_stored(place.as_deref()), on)))
}
