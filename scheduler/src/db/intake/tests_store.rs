//! Status intake's writes of parsed tests: a part kept as it arrives, and at the end of
//! the attempt every kept part stored as tests, attributes and iterations, in the
//! transaction that ends the entry. What a drone sent is bounded again here.

use crate::db::schema::{
    host_queue_entries as hqe, test_attributes, test_iterations, test_result_parts as parts, tests,
};
use crate::db::{DbError, SqliteConn};
use crate::intake::TestsWrite;
use crate::model::AttemptId;
use common::test_report;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
use serde::Deserialize;

/// The most tests stored for one attempt, whatever a drone sends.
pub const MAX_STORED_TESTS: usize = 100_000;
/// Rows per insert statement (SQLite allows 32,766 bound values in one).
const CHUNK: usize = 500;

/// A kept part, as [`crate::intake`] wrote it.
#[derive(Deserialize)]
struct PartBody {
    tests: Vec<tko::TestResult>,
    #[serde(default)]
    dropped: u64,
    #[serde(default)]
    parse_error: Option<String>,
}

/// What the parts of an attempt add up to.
#[derive(Default)]
struct Gathered {
    tests: Vec<tko::TestResult>,
    dropped: u64,
    errors: Vec<String>,
}

/// Reads the kept bodies of an attempt (in part order) into tests, bounded.
fn gather(bodies: Vec<(i32, String)>, announced: u32) -> Gathered {
    let mut out = Gathered::default();
    if bodies.len() as u32 != announced {
        out.errors.push(format!(
            "{} of {announced} parts of the parsed tests arrived",
            bodies.len()
        ));
    }
    for (part, body) in bodies {
        match serde_json::from_str::<PartBody>(&body) {
            Ok(body) => {
                out.dropped += body.dropped;
                out.errors.extend(body.parse_error);
                for mut test in body.tests {
                    if out.tests.len() >= MAX_STORED_TESTS {
                        out.dropped += 1;
                        continue;
                    }
                    test_report::bound(&mut test);
                    out.tests.push(test);
                }
            }
            Err(error) => out.errors.push(format!(
                "part {part} of the parsed tests is unreadable: {error}"
            )),
        }
    }
    out
}

/// Everything status intake does with parsed tests.
pub(crate) trait TestWrites {
    async fn write_tests(&mut self, write: &TestsWrite) -> Result<(), DbError>;
}

/// Inserts `values` into `table`: several rows per statement where the backend can
/// (MySQL), one per statement on SQLite (diesel has no multi-row insert for it).
macro_rules! insert_rows {
    (batch, $conn:expr, $table:expr, $values:expr) => {
        diesel::insert_into($table)
            .values($values)
            .execute($conn)
            .await?;
    };
    (single, $conn:expr, $table:expr, $values:expr) => {
        for value in $values {
            diesel::insert_into($table)
                .values(value)
                .execute($conn)
                .await?;
        }
    };
}

macro_rules! test_writes {
    ($conn:ty) => {
        impl TestWrites for $conn {
            async fn write_tests(&mut self, write: &TestsWrite) -> Result<(), DbError> {
                match write {
                    TestsWrite::Part {
                        attempt,
                        part,
                        body,
                    } => {
                        let key = (attempt.entry, attempt.attempt, *part as i32);
                        diesel::delete(parts::table.find(key)).execute(self).await?;
                        diesel::insert_into(parts::table)
                            .values((
                                parts::entry_id.eq(key.0),
                                parts::attempt.eq(key.1),
                                parts::part.eq(key.2),
                                parts::body.eq(body),
                            ))
                            .execute(self)
                            .await?;
                        Ok(())
                    }
                    TestsWrite::Store {
                        attempt,
                        host_id,
                        parts: announced,
                    } => {
                        let bodies: Vec<(i32, String)> = parts::table
                            .filter(parts::entry_id.eq(attempt.entry))
                            .filter(parts::attempt.eq(attempt.attempt))
                            .order(parts::part)
                            .select((parts::part, parts::body))
                            .load(self)
                            .await?;
                        // Parts of earlier attempts of the entry are never stored now.
                        diesel::delete(parts::table.filter(parts::entry_id.eq(attempt.entry)))
                            .execute(self)
                            .await?;
                        if *announced == 0 && bodies.is_empty() {
                            return Ok(());
                        }
                        let gathered = gather(bodies, *announced);
                        store(self, *attempt, *host_id, gathered).await
                    }
                }
            }
        }
    };
}

macro_rules! store_statements {
    ($conn:ty, $mode:ident) => {
        impl Store for $conn {
            async fn insert_tests(&mut self, rows: &[TestRow<'_>]) -> Result<(), DbError> {
                for chunk in rows.chunks(CHUNK) {
                    let values: Vec<_> = chunk
                        .iter()
                        .map(|r| {
                            (
                                tests::job_id.eq(r.job_id),
                                tests::entry_id.eq(r.attempt.entry),
                                tests::attempt.eq(r.attempt.attempt),
                                tests::host_id.eq(r.host_id),
                                tests::name.eq(&r.test.name),
                                tests::subdir.eq(r.test.subdir.as_deref()),
                                tests::status.eq(r.test.status.as_str()),
                                tests::reason.eq(r.test.reason.as_deref()),
                                tests::started.eq(r.test.started.map(seconds_to_micros)),
                                tests::finished.eq(r.test.finished.map(seconds_to_micros)),
                            )
                        })
                        .collect();
                    insert_rows!($mode, &mut *self, tests::table, values);
                }
                Ok(())
            }

            async fn test_ids(&mut self, attempt: AttemptId) -> Result<Vec<i64>, DbError> {
                Ok(tests::table
                    .filter(tests::entry_id.eq(attempt.entry))
                    .filter(tests::attempt.eq(attempt.attempt))
                    .order(tests::id)
                    .select(tests::id)
                    .load(self)
                    .await?)
            }

            async fn insert_attributes(
                &mut self,
                rows: &[(i64, &str, &str)],
            ) -> Result<(), DbError> {
                for chunk in rows.chunks(CHUNK) {
                    let values: Vec<_> = chunk
                        .iter()
                        .map(|(id, name, value)| {
                            (
                                test_attributes::test_id.eq(*id),
                                test_attributes::name.eq(*name),
                                test_attributes::value.eq(*value),
                            )
                        })
                        .collect();
                    insert_rows!($mode, &mut *self, test_attributes::table, values);
                }
                Ok(())
            }

            async fn insert_iterations(
                &mut self,
                rows: &[IterationRow<'_>],
            ) -> Result<(), DbError> {
                for chunk in rows.chunks(CHUNK) {
                    let values: Vec<_> = chunk
                        .iter()
                        .map(|r| {
                            (
                                test_iterations::test_id.eq(r.test_id),
                                test_iterations::iteration.eq(r.iteration),
                                test_iterations::name.eq(r.name),
                                test_iterations::value.eq(r.value),
                                test_iterations::perf.eq(r.perf),
                            )
                        })
                        .collect();
                    insert_rows!($mode, &mut *self, test_iterations::table, values);
                }
                Ok(())
            }

            async fn entry_parse_result(
                &mut self,
                entry: i64,
                parse_error: Option<&str>,
                dropped: i64,
            ) -> Result<Option<i64>, DbError> {
                diesel::update(hqe::table.find(entry))
                    .set((
                        hqe::parse_error.eq(parse_error),
                        hqe::tests_dropped.eq(dropped),
                    ))
                    .execute(self)
                    .await?;
                Ok(hqe::table
                    .find(entry)
                    .select(hqe::job_id)
                    .first(self)
                    .await
                    .optional()?)
            }
        }
    };
}

test_writes!(SqliteConn);
test_writes!(AsyncMysqlConnection);
store_statements!(SqliteConn, single);
store_statements!(AsyncMysqlConnection, batch);

/// The tables keep UTC microseconds, as every other time of the schema.
fn seconds_to_micros(seconds: i64) -> i64 {
    seconds.saturating_mul(1_000_000)
}

/// A test to insert.
pub(crate) struct TestRow<'a> {
    job_id: i64,
    attempt: AttemptId,
    host_id: Option<i64>,
    test: &'a tko::TestResult,
}

/// One key of one iteration: an attribute or a perf value.
pub(crate) struct IterationRow<'a> {
    test_id: i64,
    iteration: i32,
    name: &'a str,
    value: Option<&'a str>,
    perf: Option<f64>,
}

/// The statements [`store`] is made of.
pub(crate) trait Store {
    async fn insert_tests(&mut self, rows: &[TestRow<'_>]) -> Result<(), DbError>;
    async fn test_ids(&mut self, attempt: AttemptId) -> Result<Vec<i64>, DbError>;
    async fn insert_attributes(&mut self, rows: &[(i64, &str, &str)]) -> Result<(), DbError>;
    async fn insert_iterations(&mut self, rows: &[IterationRow<'_>]) -> Result<(), DbError>;
    /// Records the parse's outcome on the entry; the entry's job.
    async fn entry_parse_result(
        &mut self,
        entry: i64,
        parse_error: Option<&str>,
        dropped: i64,
    ) -> Result<Option<i64>, DbError>;
}

/// Stores the gathered tests of `attempt`.
async fn store<C: Store>(
    conn: &mut C,
    attempt: AttemptId,
    host_id: Option<i64>,
    gathered: Gathered,
) -> Result<(), DbError> {
    let parse_error = (!gathered.errors.is_empty())
        .then(|| test_report::cut(&gathered.errors.join("; "), test_report::MAX_TEXT_BYTES));
    let Some(job_id) = conn
        .entry_parse_result(
            attempt.entry,
            parse_error.as_deref(),
            gathered.dropped as i64,
        )
        .await?
    else {
        return Ok(());
    };
    let rows: Vec<TestRow> = gathered
        .tests
        .iter()
        .map(|test| TestRow {
            job_id,
            attempt,
            host_id,
            test,
        })
        .collect();
    conn.insert_tests(&rows).await?;
    let ids = conn.test_ids(attempt).await?;
    // The attempt's tests were just inserted in order; any stored before (a report
    // applied twice) come first and are left as they are.
    let ids = &ids[ids.len().saturating_sub(gathered.tests.len())..];
    let mut attributes = Vec::new();
    let mut iterations = Vec::new();
    for (id, test) in ids.iter().zip(&gathered.tests) {
        for (name, value) in &test.attributes {
            attributes.push((*id, name.as_str(), value.as_str()));
        }
        for iteration in &test.iterations {
            let index = iteration.index as i32;
            for (name, value) in &iteration.attributes {
                iterations.push(IterationRow {
                    test_id: *id,
                    iteration: index,
                    name,
                    value: Some(value),
                    perf: None,
                });
            }
            for (name, perf) in &iteration.perf {
                if !iteration.attributes.contains_key(name) {
                    iterations.push(IterationRow {
                        test_id: *id,
                        iteration: index,
                        name,
                        value: None,
                        perf: Some(*perf),
                    });
                }
            }
        }
    }
    conn.insert_attributes(&attributes).await?;
    conn.insert_iterations(&iterations).await
}
