//! What the job pages and `GET /api/jobs` read: one page of jobs, newest first,
//! filtered in SQL and cut by a keyset cursor (`id < before`) and the bounds of
//! [`super::job_scan`], then the entry and test counts of only those jobs; and the
//! statuses the live pages poll, in one query.

use super::schema::{host_queue_entries as hqe, jobs, labels, tests};
use super::{Db, DbError};
use crate::model::{EntryStatus, JobStatus};
use crate::with_conn;
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// Jobs on one page.
pub const PAGE: i64 = 50;

/// The most jobs one live poll asks about.
pub const MAX_LIVE_JOBS: usize = 200;

pub use super::job_scan::JobFilter;

/// One line of the job list.
#[derive(Debug, Clone)]
pub struct JobLine {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub priority: i32,
    pub created_on: i64,
    pub status: JobStatus,
    /// Entries per status, in the order of [`EntryStatus::ALL`]; only those present.
    pub entries: Vec<(EntryStatus, i64)>,
    /// Tests of the entries' final attempts that passed (GOOD) and failed (FAIL,
    /// ERROR, ABORT, ALERT).
    pub tests_passed: i64,
    pub tests_failed: i64,
}

/// A page of jobs and the cursor of the next (older) page, if there is one.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub jobs: Vec<JobLine>,
    pub older: Option<i64>,
}

/// The SQL condition "the job has (`negated`: has no) entry whose status is (`not_in`:
/// is not) in `states`". Written as a scalar subquery with `LIMIT 1` rather than
/// `EXISTS`, so that MariaDB checks it job by job through `hqe_job_status` as it walks
/// the jobs newest first, instead of first gathering every entry in those states.
fn has_entry(negated: bool, not_in: bool, states: &[EntryStatus]) -> String {
    let list = states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let op = if not_in { "NOT IN" } else { "IN" };
    let is = if negated { "IS NULL" } else { "IS NOT NULL" };
    format!(
        "(SELECT 1 FROM host_queue_entries e WHERE e.job_id = jobs.id AND e.status {op} ({list}) LIMIT 1) {is}"
    )
}

/// A job status as an SQL condition on `jobs`, the same as [`JobStatus::of`] sums up.
fn status_condition(status: JobStatus) -> String {
    use EntryStatus::*;
    let waiting = [Queued, Pending];
    let finals = [Completed, Failed, Aborted];
    let conditions = match status {
        JobStatus::Queued => vec![has_entry(true, true, &waiting)],
        JobStatus::Running => vec![
            has_entry(false, true, &finals),
            has_entry(false, true, &waiting),
        ],
        JobStatus::Completed => vec![
            has_entry(false, false, &[Completed]),
            has_entry(true, true, &[Completed]),
        ],
        JobStatus::Failed => vec![
            has_entry(false, false, &[Failed]),
            has_entry(true, true, &finals),
            has_entry(true, false, &[Aborted]),
        ],
        JobStatus::Aborted => vec![
            has_entry(false, false, &[Aborted]),
            has_entry(true, true, &finals),
        ],
    };
    conditions.join(" AND ")
}

/// The SQL condition "the job has an entry on a host with label `label_id`, or queued
/// for that label".
fn label_condition(label_id: i64) -> String {
    format!(
        "EXISTS (SELECT 1 FROM host_queue_entries e WHERE e.job_id = jobs.id AND (e.meta_label_id = {label_id} \
         OR e.host_id IN (SELECT hl.host_id FROM host_labels hl WHERE hl.label_id = {label_id})))"
    )
}

type JobColumns = (i64, String, String, i32, i64);

/// One page of jobs matching `filter`, newest first.
pub async fn page(db: &Db, filter: &JobFilter) -> Result<JobPage, DbError> {
    page_of(db, filter, PAGE).await
}

/// At most `limit` jobs matching `filter`, newest first, and the cursor of the next
/// page: see [`super::job_scan`] for how far one page looks.
pub async fn page_of(db: &Db, filter: &JobFilter, limit: i64) -> Result<JobPage, DbError> {
    let bounds = super::job_scan::bounds(db, filter).await?;
    if bounds.only.as_ref().is_some_and(Vec::is_empty) {
        return Ok(JobPage {
            jobs: Vec::new(),
            older: bounds.cut,
        });
    }
    let filter = filter.clone();
    let scan = bounds.clone();
    type Read = (
        Vec<JobColumns>,
        Vec<(i64, EntryStatus, i64)>,
        Vec<(i64, String, i64)>,
    );
    let (rows, entries, tests): Read = with_conn!(db, |conn| {
        let label_id: Option<Option<i64>> = match &filter.label {
            Some(label) => Some(
                labels::table
                    .filter(labels::name.eq(label))
                    .select(labels::id)
                    .get_result::<i64>(conn)
                    .await
                    .optional()?,
            ),
            None => None,
        };
        if matches!(label_id, Some(None)) {
            // No such label: no job has it.
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            let mut query = jobs::table
                .select((
                    jobs::id,
                    jobs::name,
                    jobs::owner,
                    jobs::priority,
                    jobs::created_on,
                ))
                .order(jobs::id.desc())
                .limit(limit + 1)
                .into_boxed();
            if let Some(lowest) = scan.lowest {
                query = query.filter(jobs::id.ge(lowest));
            }
            if let Some(since) = filter.since {
                query = query.filter(jobs::created_on.ge(since));
            }
            if let Some(only) = &scan.only {
                query = query.filter(jobs::id.eq_any(only.clone()));
            }
            if let Some(owner) = &filter.owner {
                query = query.filter(jobs::owner.eq(owner.clone()));
            }
            if let Some(pattern) = &filter.name_like {
                query = query.filter(jobs::name.like(pattern.clone()).escape('\\'));
            }
            if let Some(before) = filter.before {
                query = query.filter(jobs::id.lt(before));
            }
            if let Some(status) = filter.status {
                query = query.filter(sql::<Bool>(&status_condition(status)));
            }
            if let Some(Some(label_id)) = label_id {
                query = query.filter(sql::<Bool>(&label_condition(label_id)));
            }
            let rows: Vec<JobColumns> = query.load(conn).await?;
            let ids: Vec<i64> = rows.iter().take(limit as usize).map(|r| r.0).collect();
            let entries = hqe::table
                .filter(hqe::job_id.eq_any(&ids))
                .group_by((hqe::job_id, hqe::status))
                .select((hqe::job_id, hqe::status, count_star()))
                .load::<(i64, EntryStatus, i64)>(conn)
                .await?;
            let tests = tests::table
                .inner_join(hqe::table.on(hqe::id.eq(tests::entry_id)))
                .filter(tests::job_id.eq_any(&ids))
                .filter(tests::attempt.eq(hqe::attempt))
                .group_by((tests::job_id, tests::status))
                .select((tests::job_id, tests::status, count_star()))
                .load::<(i64, String, i64)>(conn)
                .await?;
            (rows, entries, tests)
        }
    });
    Ok(assemble(rows, limit, &bounds, entries, tests))
}

/// The page from its rows (one more than `limit` when there are older jobs).
fn assemble(
    mut rows: Vec<JobColumns>,
    limit: i64,
    bounds: &super::job_scan::Bounds,
    entries: Vec<(i64, EntryStatus, i64)>,
    tests: Vec<(i64, String, i64)>,
) -> JobPage {
    let had_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let older = super::job_scan::next_cursor(rows.last().map(|r| r.0), had_more, bounds);
    let mut by_job: BTreeMap<i64, BTreeMap<usize, (EntryStatus, i64)>> = BTreeMap::new();
    for (job, status, count) in entries {
        let order = EntryStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or(0);
        by_job
            .entry(job)
            .or_default()
            .insert(order, (status, count));
    }
    let mut passed: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (job, status, count) in tests {
        let counts = passed.entry(job).or_default();
        match status.as_str() {
            "GOOD" => counts.0 += count,
            "FAIL" | "ERROR" | "ABORT" | "ALERT" => counts.1 += count,
            _ => {}
        }
    }
    let jobs = rows
        .into_iter()
        .map(|(id, name, owner, priority, created_on)| {
            let entries: Vec<(EntryStatus, i64)> = by_job
                .remove(&id)
                .map(|m| m.into_values().collect())
                .unwrap_or_default();
            let (tests_passed, tests_failed) = passed.get(&id).copied().unwrap_or_default();
            JobLine {
                status: status_of(&entries),
                id,
                name,
                owner,
                priority,
                created_on,
                entries,
                tests_passed,
                tests_failed,
            }
        })
        .collect();
    JobPage { jobs, older }
}

/// A job's status from its entry counts.
pub fn status_of(entries: &[(EntryStatus, i64)]) -> JobStatus {
    JobStatus::of(entries.iter().filter(|(_, n)| *n > 0).map(|(s, _)| *s))
}

/// What a live poll reads of one job: its status, its entry counts, and each entry's
/// status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveJob {
    pub id: i64,
    pub status: JobStatus,
    /// Entries per status (text), only those present.
    pub counts: BTreeMap<String, i64>,
    /// Each entry's status, by entry id.
    pub entries: BTreeMap<i64, EntryStatus>,
}

/// The live state of the jobs `ids` (at most [`MAX_LIVE_JOBS`]; unknown ids are left
/// out), in one query.
pub async fn live(db: &Db, ids: &[i64]) -> Result<Vec<LiveJob>, DbError> {
    let ids = ids.to_vec();
    let rows: Vec<(i64, i64, EntryStatus)> = with_conn!(db, |conn| {
        hqe::table
            .filter(hqe::job_id.eq_any(&ids))
            .select((hqe::job_id, hqe::id, hqe::status))
            .load(conn)
            .await?
    });
    let mut jobs: BTreeMap<i64, LiveJob> = BTreeMap::new();
    for (job, entry, status) in rows {
        let live = jobs.entry(job).or_insert_with(|| LiveJob {
            id: job,
            status: JobStatus::Queued,
            counts: BTreeMap::new(),
            entries: BTreeMap::new(),
        });
        *live.counts.entry(status.as_str().to_string()).or_default() += 1;
        live.entries.insert(entry, status);
    }
    Ok(jobs
        .into_values()
        .map(|mut live| {
            live.status = JobStatus::of(live.entries.values().copied());
            live
        })
        .collect())
}

/// A job's control file; None when there is no such job.
pub async fn control_file(db: &Db, id: i64) -> Result<Option<String>, DbError> {
    Ok(with_conn!(db, |conn| {
        jobs::table
            .filter(jobs::id.eq(id))
            .select(jobs::control_file)
            .get_result::<String>(conn)
            .await
            .optional()?
    }))
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn a_full_page_and_one_more_gives_the_cursor_of_the_older_page() {
        let rows: Vec<JobColumns> = (1..=PAGE + 1)
            .rev()
            .map(|id| (id, format!("job {id}"), "alice".into(), 0, 0))
            .collect();
        let none = super::super::job_scan::Bounds::default();
        let page = assemble(
            rows,
            PAGE,
            &none,
            vec![(PAGE + 1, EntryStatus::Running, 2)],
            vec![],
        );
        assert_eq!(page.jobs.len(), PAGE as usize);
        assert_eq!(page.older, Some(2), "the last job shown is the cursor");
        assert_eq!(page.jobs[0].status, JobStatus::Running);
        let last = assemble(
            vec![(1, "one".into(), "a".into(), 0, 0)],
            PAGE,
            &none,
            vec![],
            vec![],
        );
        assert_eq!(last.older, None);
    }

    #[test]
    fn test_counts_split_into_passed_and_failed() {
        let page = assemble(
            vec![(7, "j".into(), "a".into(), 0, 0)],
            PAGE,
            &super::super::job_scan::Bounds::default(),
            vec![(7, EntryStatus::Completed, 1)],
            vec![
                (7, "GOOD".into(), 3),
                (7, "FAIL".into(), 1),
                (7, "ERROR".into(), 1),
                (7, "TEST_NA".into(), 4),
            ],
        );
        let job = &page.jobs[0];
        assert_eq!((job.tests_passed, job.tests_failed), (3, 2));
        assert_eq!(job.status, JobStatus::Completed);
    }

    #[test]
    fn status_conditions_name_only_fixed_states() {
        let failed = status_condition(JobStatus::Failed);
        assert!(failed.contains("e.status IN ('Failed')"), "{failed}");
        assert!(failed.contains("LIMIT 1) IS NULL"), "{failed}");
        assert!(failed.contains("LIMIT 1) IS NOT NULL"), "{failed}");
        assert!(label_condition(3).contains("meta_label_id = 3"));
    }
}
