//! How a page of jobs is found without reading the whole history. Owner, `since` and
//! the cursor go through indexes (`jobs (owner, id)`, `jobs (created_on)`, the primary
//! key). A job's status is summed up from its entries and a name is matched anywhere in
//! it, so neither has an index of its own. A job is found from its entries
//! (`host_queue_entries (status, job_id)`) when its status needs an entry in some
//! state: Queued and Running from the entries still active (few at any time), Failed
//! from a failed entry and Aborted from an aborted one (a small part of all entries).
//! Completed, which most jobs are, and the name look at a bounded window of jobs,
//! ending the page early with a cursor when the window runs out.

use super::schema::{host_queue_entries as hqe, jobs};
use super::{Db, DbError};
use crate::model::{EntryStatus, JobStatus};
use crate::with_conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// Which jobs a page lists; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub owner: Option<String>,
    pub status: Option<JobStatus>,
    /// A LIKE pattern (see [`super::test_results::like_pattern`]).
    pub name_like: Option<String>,
    /// Jobs with an entry on a host carrying this label, or queued for it.
    pub label: Option<String>,
    /// Only jobs older than this id (the cursor of the "Older" link).
    pub before: Option<i64>,
    /// Only jobs created at or after this time (UTC microseconds).
    pub since: Option<i64>,
}

/// A name filter as a LIKE pattern: a glob (`*`, `?`) on the whole name as given,
/// other text anywhere in the name.
pub fn name_pattern(text: &str) -> String {
    let pattern = super::test_results::like_pattern(text);
    if text.contains(['*', '?']) {
        pattern
    } else {
        format!("%{pattern}%")
    }
}

/// The most jobs one page looks at when a filter has no index.
pub const JOB_WINDOW: i64 = 10_000;
/// The most active entries one page reads to find Queued or Running jobs.
pub const ENTRY_WINDOW: i64 = 5_000;

/// How a page finds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The indexed filters select the rows: one query, as many jobs as it takes.
    Direct,
    /// Only jobs with an entry in these states can match.
    Entries(&'static [EntryStatus]),
    /// At most [`JOB_WINDOW`] jobs past the cursor are looked at.
    Window,
}

const WAITING: &[EntryStatus] = &[EntryStatus::Queued, EntryStatus::Pending];
/// A Failed job has a failed entry (and an Aborted one an aborted entry): see
/// [`JobStatus::of`].
const FAILED: &[EntryStatus] = &[EntryStatus::Failed];
const ABORTED: &[EntryStatus] = &[EntryStatus::Aborted];

/// Every state an entry leaves; a Running job has at least one entry in one of them.
const ACTIVE: &[EntryStatus] = &[
    EntryStatus::Queued,
    EntryStatus::Pending,
    EntryStatus::Starting,
    EntryStatus::Running,
    EntryStatus::Gathering,
];

/// The scan `filter` needs.
pub fn scan_for(filter: &JobFilter) -> Scan {
    match filter.status {
        Some(JobStatus::Queued) => Scan::Entries(WAITING),
        Some(JobStatus::Running) => Scan::Entries(ACTIVE),
        Some(JobStatus::Failed) => Scan::Entries(FAILED),
        Some(JobStatus::Aborted) => Scan::Entries(ABORTED),
        Some(JobStatus::Completed) => Scan::Window,
        None if filter.name_like.is_some() || filter.label.is_some() => Scan::Window,
        None => Scan::Direct,
    }
}

/// Where the scan of one page stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Only jobs with an id at or above this (from `since`, or the window's end).
    pub lowest: Option<i64>,
    /// Only these jobs (the candidates of [`Scan::Entries`]), newest first.
    pub only: Option<Vec<i64>>,
    /// The cursor to give when the page ends short of its limit: the scan stopped here
    /// with older jobs left to look at.
    pub cut: Option<i64>,
}

/// How much later a job may be stored than another stamped before it (its creation
/// time is taken when it is submitted, its id when its group is stored), with room for
/// the clock being set back.
pub const SINCE_MARGIN_US: i64 = 3_600_000_000;

/// The lowest id a job created at or after `since` can have: one above the last job
/// created before `since` − [`SINCE_MARGIN_US`] (found through `jobs_created`); None
/// when there is no such job.
async fn since_lowest(db: &Db, since: i64) -> Result<Option<i64>, DbError> {
    let before: Option<i64> = with_conn!(db, |conn| {
        jobs::table
            .filter(jobs::created_on.lt(since.saturating_sub(SINCE_MARGIN_US)))
            .select(jobs::id)
            .order((jobs::created_on.desc(), jobs::id.desc()))
            .first::<i64>(conn)
            .await
            .optional()?
    });
    Ok(before.map(|id| id + 1))
}

/// The id of the last job of the window: the [`JOB_WINDOW`]th job below the cursor
/// (owner and `lowest` applied); None when fewer are left.
async fn window_end(
    db: &Db,
    filter: &JobFilter,
    lowest: Option<i64>,
) -> Result<Option<i64>, DbError> {
    let filter = filter.clone();
    Ok(with_conn!(db, |conn| {
        let mut query = jobs::table
            .select(jobs::id)
            .order(jobs::id.desc())
            .offset(JOB_WINDOW - 1)
            .limit(1)
            .into_boxed();
        if let Some(owner) = &filter.owner {
            query = query.filter(jobs::owner.eq(owner.clone()));
        }
        if let Some(before) = filter.before {
            query = query.filter(jobs::id.lt(before));
        }
        if let Some(lowest) = lowest {
            query = query.filter(jobs::id.ge(lowest));
        }
        query.first::<i64>(conn).await.optional()?
    }))
}

/// Jobs with an entry in `states` below the cursor, newest first, from at most
/// [`ENTRY_WINDOW`] entries per state (one ordered read of `hqe_status_job` each, so
/// that neither backend walks every entry); and where that limit cut them.
async fn entry_candidates(
    db: &Db,
    states: &'static [EntryStatus],
    before: Option<i64>,
    lowest: Option<i64>,
) -> Result<(Vec<i64>, Option<i64>), DbError> {
    let lists: Vec<Vec<i64>> = with_conn!(db, |conn| {
        let mut lists = Vec::with_capacity(states.len());
        for state in states {
            let mut query = hqe::table
                .filter(hqe::status.eq(*state))
                .select(hqe::job_id)
                .order(hqe::job_id.desc())
                .limit(ENTRY_WINDOW)
                .into_boxed();
            if let Some(before) = before {
                query = query.filter(hqe::job_id.lt(before));
            }
            if let Some(lowest) = lowest {
                query = query.filter(hqe::job_id.ge(lowest));
            }
            lists.push(query.load::<i64>(conn).await?);
        }
        lists
    });
    Ok(merge_candidates(lists, ENTRY_WINDOW as usize))
}

/// The job ids of per-state lists (each newest first), newest first and once each, and
/// where a full list (`window` long) cut them: below its last id, its state may hold
/// more, so only the ids at or above the highest such cut are complete.
pub fn merge_candidates(lists: Vec<Vec<i64>>, window: usize) -> (Vec<i64>, Option<i64>) {
    let cut = lists
        .iter()
        .filter(|list| list.len() >= window)
        .filter_map(|list| list.last().copied())
        .max();
    let mut ids: Vec<i64> = lists
        .into_iter()
        .flatten()
        .filter(|id| cut.is_none_or(|cut| *id >= cut))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    (ids, cut)
}

/// Where the page of `filter` stops looking.
pub async fn bounds(db: &Db, filter: &JobFilter) -> Result<Bounds, DbError> {
    let lowest = match filter.since {
        Some(since) => since_lowest(db, since).await?,
        None => None,
    };
    Ok(match scan_for(filter) {
        Scan::Direct => Bounds {
            lowest,
            ..Bounds::default()
        },
        Scan::Window => {
            let end = window_end(db, filter, lowest).await?;
            Bounds {
                lowest: end.or(lowest),
                cut: end,
                ..Bounds::default()
            }
        }
        Scan::Entries(states) => {
            let (ids, cut) = entry_candidates(db, states, filter.before, lowest).await?;
            Bounds {
                lowest,
                cut,
                only: Some(ids),
            }
        }
    })
}

/// The cursor of the next page: the last job shown when there was one more than the
/// limit, else where the scan was cut, else none (nothing older matches).
pub fn next_cursor(shown_last: Option<i64>, had_more: bool, bounds: &Bounds) -> Option<i64> {
    if had_more {
        shown_last
    } else {
        bounds.cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_without_an_index_bound_the_scan() {
        let mut filter = JobFilter {
            owner: Some("ann".into()),
            since: Some(5),
            before: Some(100),
            ..Default::default()
        };
        assert_eq!(scan_for(&filter), Scan::Direct);
        filter.status = Some(JobStatus::Queued);
        assert_eq!(scan_for(&filter), Scan::Entries(WAITING));
        filter.status = Some(JobStatus::Running);
        assert_eq!(scan_for(&filter), Scan::Entries(ACTIVE));
        filter.status = Some(JobStatus::Failed);
        assert_eq!(scan_for(&filter), Scan::Entries(FAILED));
        filter.status = Some(JobStatus::Aborted);
        assert_eq!(scan_for(&filter), Scan::Entries(ABORTED));
        filter.status = Some(JobStatus::Completed);
        assert_eq!(scan_for(&filter), Scan::Window);
        filter.status = None;
        filter.name_like = Some("%nightly%".into());
        assert_eq!(scan_for(&filter), Scan::Window);
    }

    #[test]
    fn a_failed_or_aborted_job_always_has_an_entry_of_the_state_it_is_found_by() {
        // Every mix of two entry states: the job's status is Failed (Aborted) only
        // when one of them is Failed (Aborted), so the entry scan misses none.
        for a in EntryStatus::ALL {
            for b in EntryStatus::ALL {
                let status = JobStatus::of([*a, *b]);
                for (job, states) in [(JobStatus::Failed, FAILED), (JobStatus::Aborted, ABORTED)] {
                    if status == job {
                        assert!(states.contains(a) || states.contains(b), "{a:?} {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_state_but_the_final_ones_is_active() {
        for state in EntryStatus::ALL {
            assert_eq!(ACTIVE.contains(state), !state.is_final(), "{state:?}");
        }
        assert!(WAITING.iter().all(|s| ACTIVE.contains(s)));
    }

    #[test]
    fn candidates_merge_newest_first_and_stop_where_a_full_list_was_cut() {
        let (ids, cut) = merge_candidates(vec![vec![9, 7, 7], vec![8, 3]], 5);
        assert_eq!((ids, cut), (vec![9, 8, 7, 3], None), "no list was full");
        // The first state's list is full at 6: below it, that state may have more.
        let (ids, cut) = merge_candidates(vec![vec![9, 8, 6], vec![7, 5, 2]], 3);
        assert_eq!(ids, vec![9, 8, 7, 6]);
        assert_eq!(cut, Some(6));
        let (ids, cut) = merge_candidates(vec![vec![9, 8], vec![10, 4]], 2);
        assert_eq!(
            (ids, cut),
            (vec![10, 9, 8], Some(8)),
            "the higher cut holds"
        );
    }

    #[test]
    fn a_full_page_continues_after_its_last_job_and_a_short_one_after_its_window() {
        let cut = Bounds {
            cut: Some(40),
            ..Bounds::default()
        };
        assert_eq!(next_cursor(Some(90), true, &cut), Some(90));
        assert_eq!(next_cursor(Some(90), false, &cut), Some(40));
        assert_eq!(next_cursor(None, false, &cut), Some(40));
        assert_eq!(next_cursor(Some(90), false, &Bounds::default()), None);
    }
}
