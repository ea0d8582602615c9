//! The results spreadsheet (Autotest TKO's spreadsheet view): tests of the entries'
//! final attempts in a time window, counted by test name, column (host or job) and
//! status, in one grouped query with a bounded number of groups.

use super::schema::{host_labels, host_queue_entries as hqe, hosts, jobs, labels, tests};
use super::{Db, DbError};
use crate::with_conn;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// The most (test, column, status) groups one spreadsheet reads.
pub const MAX_GROUPS: i64 = 5000;

/// What the columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridBy {
    Host,
    Job,
}

/// Which tests a spreadsheet counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridFilter {
    pub by: GridBy,
    /// A LIKE pattern on the test name.
    pub name_like: Option<String>,
    /// Tests on hosts carrying this label.
    pub label: Option<String>,
    pub owner: Option<String>,
    /// Tests started at or after (UTC microseconds).
    pub since: i64,
    /// Tests started before.
    pub until: i64,
}

/// One group: a test name, a column (host or job id; None: no host), a status and how
/// many tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCount {
    pub test: String,
    pub column: Option<i64>,
    pub status: String,
    pub count: i64,
}

/// The counts and the names of their columns (host names, or job names by id).
#[derive(Debug, Clone, Default)]
pub struct GridCounts {
    pub counts: Vec<GridCount>,
    pub column_names: BTreeMap<i64, String>,
    /// More groups matched than [`MAX_GROUPS`].
    pub truncated: bool,
}

/// Applies a [`GridFilter`]'s conditions to a boxed query over tests joined with
/// their entries and jobs.
macro_rules! grid_filters {
    ($query:expr, $filter:expr, $label_id:expr) => {{
        let mut query = $query
            .filter(tests::attempt.eq(hqe::attempt))
            .filter(tests::started.ge($filter.since))
            .filter(tests::started.lt($filter.until));
        if let Some(pattern) = &$filter.name_like {
            query = query.filter(tests::name.like(pattern.clone()).escape('\\'));
        }
        if let Some(owner) = &$filter.owner {
            query = query.filter(jobs::owner.eq(owner.clone()));
        }
        if let Some(label_id) = $label_id {
            query = query.filter(
                tests::host_id.eq_any(
                    host_labels::table
                        .filter(host_labels::label_id.eq(label_id))
                        .select(host_labels::host_id.nullable()),
                ),
            );
        }
        query
    }};
}

type Row = (String, Option<i64>, String, i64);

/// The counts of the tests `filter` selects.
pub async fn counts(db: &Db, filter: &GridFilter) -> Result<GridCounts, DbError> {
    let filter = filter.clone();
    type Read = (Vec<Row>, Vec<(i64, String)>);
    let (mut rows, names): Read = with_conn!(db, |conn| {
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
            (Vec::new(), Vec::new())
        } else {
            let label_id = label_id.flatten();
            let base = tests::table
                .inner_join(hqe::table.on(hqe::id.eq(tests::entry_id)))
                .inner_join(jobs::table.on(jobs::id.eq(tests::job_id)));
            let rows: Vec<Row> = match filter.by {
                GridBy::Host => {
                    let query = base
                        .group_by((tests::name, tests::host_id, tests::status))
                        .select((tests::name, tests::host_id, tests::status, count_star()))
                        .order((tests::name.asc(), tests::host_id.asc()))
                        .limit(MAX_GROUPS + 1)
                        .into_boxed();
                    grid_filters!(query, filter, label_id).load(conn).await?
                }
                GridBy::Job => {
                    let query = base
                        .group_by((tests::name, tests::job_id, tests::status))
                        .select((
                            tests::name,
                            tests::job_id.nullable(),
                            tests::status,
                            count_star(),
                        ))
                        .order((tests::name.asc(), tests::job_id.desc()))
                        .limit(MAX_GROUPS + 1)
                        .into_boxed();
                    grid_filters!(query, filter, label_id).load(conn).await?
                }
            };
            let mut ids: Vec<i64> = rows.iter().filter_map(|r| r.1).collect();
            ids.sort_unstable();
            ids.dedup();
            let names: Vec<(i64, String)> = match filter.by {
                GridBy::Host => {
                    hosts::table
                        .filter(hosts::id.eq_any(&ids))
                        .select((hosts::id, hosts::hostname))
                        .load(conn)
                        .await?
                }
                GridBy::Job => {
                    jobs::table
                        .filter(jobs::id.eq_any(&ids))
                        .select((jobs::id, jobs::name))
                        .load(conn)
                        .await?
                }
            };
            (rows, names)
        }
    });
    let truncated = rows.len() as i64 > MAX_GROUPS;
    rows.truncate(MAX_GROUPS as usize);
    Ok(GridCounts {
        counts: rows
            .into_iter()
            .map(|(test, column, status, count)| GridCount {
                test,
                column,
                status,
                count,
            })
            .collect(),
        column_names: names.into_iter().collect(),
        truncated,
    })
}
