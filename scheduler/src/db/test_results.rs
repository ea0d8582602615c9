//! Reading parsed tests: the tests of a job's entries (for `job show`), a filtered and
//! paged list (`atest test list`), and one test with its attributes and iterations.

use super::schema::{
    host_queue_entries as hqe, hosts, jobs, test_attributes, test_iterations, tests,
};
use super::{Db, DbError};
use crate::with_conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// A test as stored.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct TestRow {
    pub id: i64,
    pub job_id: i64,
    pub entry_id: i64,
    pub attempt: i32,
    pub host: Option<String>,
    pub name: String,
    pub subdir: Option<String>,
    pub status: String,
    pub reason: Option<String>,
    /// UTC microseconds.
    pub started: Option<i64>,
    pub finished: Option<i64>,
}

/// The parse outcome and the tests of one entry's current attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryTests {
    pub tests: Vec<TestRow>,
    pub parse_error: Option<String>,
    pub dropped: Option<i64>,
}

/// The filters of a list; see `api::TestQuery`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub job: Option<i64>,
    pub host: Option<String>,
    pub status: Option<String>,
    /// A SQL `LIKE` pattern (escaped with `\`).
    pub name_like: Option<String>,
    /// UTC microseconds.
    pub since: Option<i64>,
    pub limit: i64,
    pub before: Option<i64>,
    pub all_attempts: bool,
}

/// `*` and `?` of a glob as `%` and `_` of `LIKE`, with `%`, `_` and `\` escaped.
pub fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

macro_rules! test_columns {
    () => {
        (
            tests::id,
            tests::job_id,
            tests::entry_id,
            tests::attempt,
            hosts::hostname.nullable(),
            tests::name,
            tests::subdir,
            tests::status,
            tests::reason,
            tests::started,
            tests::finished,
        )
    };
}

/// An entry's id, attempt, parse error and dropped count.
type EntryParse = (i64, i32, Option<String>, Option<i64>);

/// The tests of the current attempt of each entry of `job`, by entry.
pub async fn of_job(db: &Db, job: i64) -> Result<BTreeMap<i64, EntryTests>, DbError> {
    let (entries, rows): (Vec<EntryParse>, Vec<TestRow>) = with_conn!(db, |conn| {
        let entries = hqe::table
            .filter(hqe::job_id.eq(job))
            .select((hqe::id, hqe::attempt, hqe::parse_error, hqe::tests_dropped))
            .load(conn)
            .await?;
        let rows = tests::table
            .left_join(hosts::table.on(hosts::id.nullable().eq(tests::host_id)))
            .filter(tests::job_id.eq(job))
            .order(tests::id)
            .select(test_columns!())
            .load(conn)
            .await?;
        (entries, rows)
    });
    let current: BTreeMap<i64, i32> = entries
        .iter()
        .map(|(id, attempt, _, _)| (*id, *attempt))
        .collect();
    let mut out: BTreeMap<i64, EntryTests> = entries
        .into_iter()
        .map(|(id, _, parse_error, dropped)| {
            (
                id,
                EntryTests {
                    tests: Vec::new(),
                    parse_error,
                    dropped,
                },
            )
        })
        .collect();
    for row in rows {
        if current.get(&row.entry_id) == Some(&row.attempt) {
            out.entry(row.entry_id).or_default().tests.push(row);
        }
    }
    Ok(out)
}

/// Tests matching `filter`, newest first, with their attributes: at most
/// `filter.limit` of them, and whether older ones match too.
pub async fn list(
    db: &Db,
    filter: &Filter,
) -> Result<(Vec<(TestRow, BTreeMap<String, String>)>, bool), DbError> {
    let filter = filter.clone();
    let (rows, attributes): (Vec<TestRow>, Vec<(i64, String, String)>) = with_conn!(db, |conn| {
        let mut query = tests::table
            .left_join(hosts::table.on(hosts::id.nullable().eq(tests::host_id)))
            .inner_join(hqe::table.on(hqe::id.eq(tests::entry_id)))
            .select(test_columns!())
            .order(tests::id.desc())
            .limit(filter.limit + 1)
            .into_boxed();
        if !filter.all_attempts {
            query = query.filter(tests::attempt.eq(hqe::attempt));
        }
        if let Some(job) = filter.job {
            query = query.filter(tests::job_id.eq(job));
        }
        if let Some(host) = &filter.host {
            query = query.filter(hosts::hostname.eq(host.clone()));
        }
        if let Some(status) = &filter.status {
            query = query.filter(tests::status.eq(status.clone()));
        }
        if let Some(pattern) = &filter.name_like {
            query = query.filter(tests::name.like(pattern.clone()).escape('\\'));
        }
        if let Some(since) = filter.since {
            query = query.filter(tests::started.ge(since));
        }
        if let Some(before) = filter.before {
            query = query.filter(tests::id.lt(before));
        }
        let rows: Vec<TestRow> = query.load(conn).await?;
        let ids: Vec<i64> = rows
            .iter()
            .take(filter.limit as usize)
            .map(|r| r.id)
            .collect();
        let attributes = test_attributes::table
            .filter(test_attributes::test_id.eq_any(&ids))
            .select((
                test_attributes::test_id,
                test_attributes::name,
                test_attributes::value,
            ))
            .load(conn)
            .await?;
        (rows, attributes)
    });
    let mut by_test: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    for (id, name, value) in attributes {
        by_test.entry(id).or_default().insert(name, value);
    }
    let more = rows.len() as i64 > filter.limit;
    let page = rows
        .into_iter()
        .take(filter.limit as usize)
        .map(|row| {
            let attributes = by_test.remove(&row.id).unwrap_or_default();
            (row, attributes)
        })
        .collect();
    Ok((page, more))
}

/// One iteration's keys: attributes and perf values.
pub type Iterations = BTreeMap<i32, (BTreeMap<String, String>, BTreeMap<String, f64>)>;

/// One test: its row, attributes, iterations, and its job's owner and the entry's
/// execution subdir (for the results path).
pub struct TestDetailRow {
    pub test: TestRow,
    pub attributes: BTreeMap<String, String>,
    pub iterations: Iterations,
    pub owner: String,
    pub execution_subdir: String,
}

/// The test `id`.
pub async fn get(db: &Db, id: i64) -> Result<TestDetailRow, DbError> {
    type Keys = Vec<(i32, String, Option<String>, Option<f64>)>;
    type Found = (
        Option<TestRow>,
        Vec<(String, String)>,
        Keys,
        Option<(String, String)>,
    );
    let (test, attributes, keys, place): Found = with_conn!(db, |conn| {
        let test: Option<TestRow> = tests::table
            .left_join(hosts::table.on(hosts::id.nullable().eq(tests::host_id)))
            .filter(tests::id.eq(id))
            .select(test_columns!())
            .first(conn)
            .await
            .optional()?;
        let attributes = test_attributes::table
            .filter(test_attributes::test_id.eq(id))
            .select((test_attributes::name, test_attributes::value))
            .load(conn)
            .await?;
        let keys = test_iterations::table
            .filter(test_iterations::test_id.eq(id))
            .order((test_iterations::iteration, test_iterations::name))
            .select((
                test_iterations::iteration,
                test_iterations::name,
                test_iterations::value,
                test_iterations::perf,
            ))
            .load(conn)
            .await?;
        let place = match &test {
            Some(test) => hqe::table
                .inner_join(jobs::table)
                .filter(hqe::id.eq(test.entry_id))
                .select((jobs::owner, hqe::execution_subdir))
                .first(conn)
                .await
                .optional()?,
            None => None,
        };
        (test, attributes, keys, place)
    });
    let test = test.ok_or_else(|| DbError::NotFound(format!("no such test: {id}")))?;
    let (owner, execution_subdir) = place.unwrap_or_default();
    let mut iterations = Iterations::new();
    for (index, name, value, perf) in keys {
        let slot = iterations.entry(index).or_default();
        match (value, perf) {
            (Some(value), _) => {
                slot.0.insert(name, value);
            }
            (None, Some(perf)) => {
                slot.1.insert(name, perf);
            }
            (None, None) => {}
        }
    }
    Ok(TestDetailRow {
        test,
        attributes: attributes.into_iter().collect(),
        iterations,
        owner,
        execution_subdir,
    })
}

#[cfg(test)]
mod unit {
    use super::like_pattern;

    #[test]
    fn a_glob_becomes_a_like_pattern_with_its_own_wildcards_escaped() {
        assert_eq!(like_pattern("net*.t?"), "net%.t_");
        assert_eq!(like_pattern("100%_done\\"), "100\\%\\_done\\\\");
    }
}
