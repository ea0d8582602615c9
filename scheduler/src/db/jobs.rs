//! Jobs and their host-queue entries, as users read and abort them (storing new jobs
//! is in [`super::job_create`]).

use super::schema::{drone_sets, entry_history, host_queue_entries as hqe, hosts, jobs, labels};
use super::{Cache, Db, DbError};
use crate::model::{AttemptId, EntryStatus, JobStatus, TaskFlags};
use crate::with_conn;
use common::names::{DroneName, HostName, LabelName, Owner};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// One line of the job list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummaryRow {
    pub id: i64,
    pub name: String,
    pub owner: Owner,
    pub priority: i32,
    /// Summed up from its entries.
    pub status: JobStatus,
    /// UTC microseconds.
    pub created_on: i64,
}

/// One job with its entries.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub owner: Owner,
    pub priority: i32,
    pub created_on: i64,
    /// The name of the drone set its entries are limited to.
    pub drone_set: Option<String>,
    pub synch_count: i32,
    pub tasks: TaskFlags,
    pub entries: Vec<EntryRow>,
}

impl JobRow {
    /// The job's status, summed up from its entries.
    pub fn status(&self) -> JobStatus {
        JobStatus::of(self.entries.iter().map(|e| e.status))
    }
}

/// One host-queue entry of a job, with its history. Times are UTC microseconds.
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub id: i64,
    /// The host; none for a metahost entry not given a host yet.
    pub host: Option<HostName>,
    /// The metahost label the entry was created for.
    pub label: Option<LabelName>,
    pub status: EntryStatus,
    pub drone: Option<DroneName>,
    pub attempt: i32,
    pub exit_code: Option<i32>,
    pub failure_reason: Option<String>,
    /// Its results' subdirectory under the job's.
    pub execution_subdir: String,
    pub created_on: i64,
    pub started_on: Option<i64>,
    pub finished_on: Option<i64>,
    pub aborted_by: Option<String>,
    pub aborted_on: Option<i64>,
    /// `test` or `infra`.
    pub failure_kind: Option<String>,
    pub infra_retries: i32,
    /// Files and bytes of its results, by the manifest its drone checked.
    pub manifest: Option<(i64, i64)>,
    /// When it is aborted if still not started (UTC microseconds).
    pub queue_deadline: Option<i64>,
    /// The longest it may run once started.
    pub max_runtime_us: Option<i64>,
    /// Infra failures and stale reports, oldest first.
    pub history: Vec<HistoryRow>,
}

impl EntryRow {
    /// Whether its results were pushed to the results host: it completed, or Autoserv
    /// ran and failed.
    pub fn results_pushed(&self) -> bool {
        self.status == EntryStatus::Completed
            || (self.status == EntryStatus::Failed && self.exit_code.is_some())
    }
}

/// One event in an entry's history.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct HistoryRow {
    pub attempt: i32,
    pub drone: Option<String>,
    /// `infra-failure` or `stale-report`.
    pub event: String,
    pub detail: String,
    pub at: i64,
}

/// Aborts a job: see [`super::aborts::abort`].
pub async fn abort(
    db: &Db,
    id: i64,
    by: &Owner,
    reason: Option<String>,
) -> Result<Vec<(AttemptId, DroneName)>, DbError> {
    let ids: Vec<i64> = with_conn!(db, |conn| {
        let exists: i64 = jobs::table
            .filter(jobs::id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if exists == 0 {
            return Err(DbError::NotFound(format!("no job {id}")));
        }
        hqe::table
            .filter(hqe::job_id.eq(id))
            .select(hqe::id)
            .load(conn)
            .await?
    });
    super::aborts::abort(db, &ids, by.as_str(), reason).await
}

/// Entries starting or running on `drone` with an abort recorded: the aborts to send
/// (again).
pub async fn pending_aborts(db: &Db, drone: &DroneName) -> Result<Vec<AttemptId>, DbError> {
    let pending: Vec<(i64, i32)> = with_conn!(db, |conn| {
        hqe::table
            .filter(hqe::drone.eq(drone))
            // Once Autoserv has exited (Gathering) there is nothing left to stop.
            .filter(hqe::status.eq_any([EntryStatus::Starting, EntryStatus::Running]))
            // A group's drone knows its lead only.
            .filter(hqe::group_lead_id.is_null())
            .filter(hqe::aborted_on.is_not_null())
            .select((hqe::id, hqe::attempt))
            .load(conn)
            .await?
    });
    Ok(pending.into_iter().map(AttemptId::from).collect())
}

/// Every job, newest first, with its summed-up status.
pub async fn list(db: &Db) -> Result<Vec<JobSummaryRow>, DbError> {
    type Row = (i64, String, Owner, i32, i64);
    let (rows, states): (Vec<Row>, Vec<(i64, EntryStatus)>) = with_conn!(db, |conn| {
        let rows = jobs::table
            .order(jobs::id.desc())
            .select((
                jobs::id,
                jobs::name,
                jobs::owner,
                jobs::priority,
                jobs::created_on,
            ))
            .load::<Row>(conn)
            .await?;
        let states = hqe::table
            .select((hqe::job_id, hqe::status))
            .load::<(i64, EntryStatus)>(conn)
            .await?;
        (rows, states)
    });
    let mut by_job: BTreeMap<i64, Vec<EntryStatus>> = BTreeMap::new();
    for (job_id, status) in states {
        by_job.entry(job_id).or_default().push(status);
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, owner, priority, created_on)| {
            let entries = by_job.get(&id).map(Vec::as_slice).unwrap_or_default();
            JobSummaryRow {
                id,
                name,
                owner,
                priority,
                status: JobStatus::of(entries.iter().copied()),
                created_on,
            }
        })
        .collect())
}

/// The columns of a job as [`show`] reads it.
type JobColumns = (i64, String, Owner, i32, i64, Option<String>, i32, TaskFlags);

/// The columns of an entry as [`show`] reads it (two tuples: diesel's limit is 16).
type EntryColumns = (
    (
        i64,
        Option<HostName>,
        Option<LabelName>,
        EntryStatus,
        Option<DroneName>,
        i32,
        Option<i32>,
        Option<String>,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
    ),
    (
        Option<String>,
        i32,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ),
);

/// One job with its entries and their histories.
pub async fn show(db: &Db, id: i64) -> Result<JobRow, DbError> {
    type Read = (
        Option<JobColumns>,
        Vec<EntryColumns>,
        Vec<(i64, HistoryRow)>,
    );
    let (job, entries, history): Read = with_conn!(db, |conn| {
        let job = jobs::table
            .filter(jobs::id.eq(id))
            .left_join(drone_sets::table)
            .select((
                jobs::id,
                jobs::name,
                jobs::owner,
                jobs::priority,
                jobs::created_on,
                drone_sets::name.nullable(),
                jobs::synch_count,
                jobs::tasks,
            ))
            .get_result::<JobColumns>(conn)
            .await
            .optional()?;
        let entries = hqe::table
            .left_join(hosts::table)
            .left_join(labels::table)
            .filter(hqe::job_id.eq(id))
            .order(hqe::id.asc())
            .select((
                (
                    hqe::id,
                    hosts::hostname.nullable(),
                    labels::name.nullable(),
                    hqe::status,
                    hqe::drone,
                    hqe::attempt,
                    hqe::exit_code,
                    hqe::failure_reason,
                    hqe::execution_subdir,
                    hqe::created_on,
                    hqe::started_on,
                    hqe::finished_on,
                    hqe::aborted_by,
                    hqe::aborted_on,
                ),
                (
                    hqe::failure_kind,
                    hqe::infra_retries,
                    hqe::manifest_files,
                    hqe::manifest_bytes,
                    hqe::queue_deadline,
                    hqe::max_runtime_us,
                ),
            ))
            .load::<EntryColumns>(conn)
            .await?;
        let ids: Vec<i64> = entries.iter().map(|(e, _)| e.0).collect();
        let history = entry_history::table
            .filter(entry_history::entry_id.eq_any(&ids))
            .order(entry_history::id.asc())
            .select((
                entry_history::entry_id,
                (
                    entry_history::attempt,
                    entry_history::drone,
                    entry_history::event,
                    entry_history::detail,
                    entry_history::at,
                ),
            ))
            .cached_if(ids.len() <= 4)
            .load::<(i64, HistoryRow)>(conn)
            .await?;
        (job, entries, history)
    });
    let job = job.ok_or_else(|| DbError::NotFound(format!("no job {id}")))?;
    Ok(job_row(job, entries, history))
}

/// A job's row from what [`show`] read.
fn job_row(job: JobColumns, entries: Vec<EntryColumns>, history: Vec<(i64, HistoryRow)>) -> JobRow {
    let mut histories: BTreeMap<i64, Vec<HistoryRow>> = BTreeMap::new();
    for (entry_id, event) in history {
        histories.entry(entry_id).or_default().push(event);
    }
    let (id, name, owner, priority, created_on, drone_set, synch_count, tasks) = job;
    JobRow {
        id,
        name,
        owner,
        priority,
        created_on,
        drone_set,
        synch_count,
        tasks,
        entries: entries
            .into_iter()
            .map(|columns| entry_row(columns, &mut histories))
            .collect(),
    }
}

/// An entry's row, taking its history from `histories`.
fn entry_row(columns: EntryColumns, histories: &mut BTreeMap<i64, Vec<HistoryRow>>) -> EntryRow {
    let (
        (
            id,
            host,
            label,
            status,
            drone,
            attempt,
            exit_code,
            failure_reason,
            execution_subdir,
            created_on,
            started_on,
            finished_on,
            aborted_by,
            aborted_on,
        ),
        (
            failure_kind,
            infra_retries,
            manifest_files,
            manifest_bytes,
            queue_deadline,
            max_runtime_us,
        ),
    ) = columns;
    EntryRow {
        history: histories.remove(&id).unwrap_or_default(),
        id,
        host,
        label,
        status,
        drone,
        attempt,
        exit_code,
        failure_reason,
        execution_subdir,
        created_on,
        started_on,
        finished_on,
        aborted_by,
        aborted_on,
        failure_kind,
        infra_retries,
        manifest: manifest_files.zip(manifest_bytes),
        queue_deadline,
        max_runtime_us,
    }
}
