//! Which ended jobs are still to be mailed about (`jobs.notify`), for the job-end mail
//! (the mailer in `notify.rs`).

use super::schema::{host_queue_entries as hqe, jobs};
use super::{Db, DbError};
use crate::model::{EntryStatus, JobStatus};
use crate::with_conn;
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// `jobs.notify` of a job to be mailed about once it ends.
pub const PENDING: &str = "pending";

/// What became of a job's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailed {
    Sent,
    /// The job ended in a status nobody is mailed about.
    Skipped,
    /// The mail server refused the mail for good.
    Failed,
}

impl Mailed {
    fn as_str(self) -> &'static str {
        match self {
            Mailed::Sent => "sent",
            Mailed::Skipped => "skipped",
            Mailed::Failed => "failed",
        }
    }
}

/// An ended job to mail about.
#[derive(Debug, Clone)]
pub struct EndedJob {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub status: JobStatus,
    /// Each entry: its results subdirectory (the host's name), status, and why it
    /// failed.
    pub entries: Vec<(String, EntryStatus, Option<String>)>,
}

/// Up to `limit` jobs, oldest first, that wait for their mail and whose entries have
/// all ended.
pub async fn ended(db: &Db, limit: i64) -> Result<Vec<EndedJob>, DbError> {
    const FINAL: [&str; 3] = ["Completed", "Failed", "Aborted"];
    type Entry = (i64, String, EntryStatus, Option<String>);
    let (rows, entries) = with_conn!(db, |conn| {
        let open = hqe::table
            .filter(hqe::job_id.eq(jobs::id))
            .filter(hqe::status.ne_all(FINAL));
        let rows: Vec<(i64, String, String)> = jobs::table
            .filter(jobs::notify.eq(PENDING))
            .filter(not(exists(open)))
            .order(jobs::id)
            .limit(limit)
            .select((jobs::id, jobs::name, jobs::owner))
            .load(conn)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let entries: Vec<Entry> = hqe::table
            .filter(hqe::job_id.eq_any(&ids))
            .order(hqe::id)
            .select((
                hqe::job_id,
                hqe::execution_subdir,
                hqe::status,
                hqe::failure_reason,
            ))
            .load(conn)
            .await?;
        (rows, entries)
    });
    let mut by_job: BTreeMap<i64, Vec<(String, EntryStatus, Option<String>)>> = BTreeMap::new();
    for (job, subdir, status, reason) in entries {
        by_job
            .entry(job)
            .or_default()
            .push((subdir, status, reason));
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, owner)| {
            let entries = by_job.remove(&id).unwrap_or_default();
            EndedJob {
                id,
                name,
                owner,
                status: JobStatus::of(entries.iter().map(|e| e.1)),
                entries,
            }
        })
        .collect())
}

/// Records what became of job `id`'s mail.
pub async fn mark(db: &Db, id: i64, mailed: Mailed) -> Result<(), DbError> {
    with_conn!(db, |conn| {
        diesel::update(jobs::table.find(id))
            .set(jobs::notify.eq(mailed.as_str()))
            .execute(conn)
            .await?
    });
    Ok(())
}
