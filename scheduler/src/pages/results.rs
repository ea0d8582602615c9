//! `/results` (Autotest TKO's spreadsheet view): test names down, hosts or jobs across
//! (`by=host|job`), each cell the counts of the tests behind it by status (`3 GOOD /
//! 1 FAIL`) and a link to them; filtered by test name, label, owner and dates. And
//! `/tests`, the list of tests a cell links to.

use super::format::{date, field, name_pattern, query_value, span, status_class, when_opt};
use super::{render, PageError, Viewer};
use crate::db::result_grid::{self, GridBy, GridCount, GridFilter};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;

/// The most rows (tests) and columns a spreadsheet shows.
pub const MAX_ROWS: usize = 200;
pub const MAX_COLUMNS: usize = 60;

/// The window shown when the query names no `since`: the last week.
const DEFAULT_WINDOW_US: i64 = 7 * 24 * 3600 * 1_000_000;

/// Statuses from the worst: a cell's colour is its worst status's.
const SEVERITY: [&str; 7] = ["ABORT", "ERROR", "FAIL", "ALERT", "WARN", "TEST_NA", "GOOD"];

/// The query string of `/results`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GridQuery {
    pub by: Option<String>,
    pub name: Option<String>,
    pub label: Option<String>,
    pub owner: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The filter a query asks for, checked; `now` ends the default window.
pub fn grid_filter(query: &GridQuery, now: i64) -> Result<GridFilter, PageError> {
    let by = match field("by", &query.by)?.as_deref() {
        None | Some("host") => GridBy::Host,
        Some("job") => GridBy::Job,
        Some(other) => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("by: expected host or job, got {other:?}"),
            ))
        }
    };
    let until = date("until", &query.until)?.unwrap_or(now);
    let since = date("since", &query.since)?.unwrap_or(until - DEFAULT_WINDOW_US);
    if since >= until {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "since must be before until",
        ));
    }
    Ok(GridFilter {
        by,
        name_like: field("name", &query.name)?.as_deref().map(name_pattern),
        label: field("label", &query.label)?,
        owner: field("owner", &query.owner)?,
        since,
        until,
    })
}

/// One cell: the counts written out, the worst status's class, and the link to its
/// tests.
pub struct Cell {
    pub text: String,
    pub class: String,
    pub link: String,
}

/// One row: a test name and a cell per column (None: no such test there).
pub struct GridRow {
    pub test: String,
    pub cells: Vec<Option<Cell>>,
}

/// A spreadsheet: its columns (id and name), its rows, and whether either was cut.
pub struct Grid {
    pub columns: Vec<(Option<i64>, String)>,
    pub rows: Vec<GridRow>,
    pub cut: bool,
}

/// The spreadsheet from the grouped counts: rows by test name, columns in the order
/// met (hosts by id, jobs newest first), both bounded.
pub fn grid(counts: &[GridCount], by: GridBy, names: &BTreeMap<i64, String>, since: &str) -> Grid {
    let mut columns: Vec<Option<i64>> = Vec::new();
    let mut tests: Vec<&str> = Vec::new();
    let mut cells: BTreeMap<(&str, Option<i64>), BTreeMap<&str, i64>> = BTreeMap::new();
    for count in counts {
        if !columns.contains(&count.column) {
            columns.push(count.column);
        }
        if !tests.contains(&count.test.as_str()) {
            tests.push(&count.test);
        }
        *cells
            .entry((count.test.as_str(), count.column))
            .or_default()
            .entry(count.status.as_str())
            .or_default() += count.count;
    }
    let cut = columns.len() > MAX_COLUMNS || tests.len() > MAX_ROWS;
    columns.truncate(MAX_COLUMNS);
    tests.truncate(MAX_ROWS);
    let column_name = |column: Option<i64>| match (by, column) {
        (_, None) => "(no host)".to_string(),
        (GridBy::Host, Some(id)) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("host {id}")),
        (GridBy::Job, Some(id)) => format!(
            "{id} {}",
            names.get(&id).map(String::as_str).unwrap_or_default()
        ),
    };
    let headers = columns.iter().map(|c| (*c, column_name(*c))).collect();
    let rows = tests
        .iter()
        .map(|test| GridRow {
            test: test.to_string(),
            cells: columns
                .iter()
                .map(|column| {
                    let statuses = cells.get(&(*test, *column))?;
                    let mut ordered: Vec<(&str, i64)> =
                        statuses.iter().map(|(s, n)| (*s, *n)).collect();
                    let rank = |s: &str| SEVERITY.iter().position(|x| *x == s).unwrap_or(0);
                    ordered.sort_by_key(|(s, _)| std::cmp::Reverse(rank(s)));
                    let worst = ordered
                        .iter()
                        .map(|(s, _)| *s)
                        .min_by_key(|s| rank(s))
                        .unwrap_or("GOOD");
                    let text = ordered
                        .iter()
                        .map(|(s, n)| format!("{n} {s}"))
                        .collect::<Vec<_>>()
                        .join(" / ");
                    let link = match (by, column) {
                        (GridBy::Job, Some(job)) => {
                            format!("/tests?job={job}&name={}", query_value(test))
                        }
                        (_, column) => {
                            let host = column.map(|c| column_name(Some(c))).unwrap_or_default();
                            format!(
                                "/tests?host={}&name={}&since={}",
                                query_value(&host),
                                query_value(test),
                                query_value(since)
                            )
                        }
                    };
                    Some(Cell {
                        text,
                        class: status_class(worst),
                        link,
                    })
                })
                .collect(),
        })
        .collect();
    Grid {
        columns: headers,
        rows,
        cut,
    }
}

#[derive(Template)]
#[template(path = "results.html")]
struct ResultsPage {
    viewer: Viewer,
    by_job: bool,
    name: String,
    label: String,
    owner: String,
    since: String,
    until: String,
    columns: Vec<(Option<i64>, String)>,
    rows: Vec<GridRow>,
    truncated: bool,
}

/// `GET /results?by=host|job&name=&label=&owner=&since=&until=`.
pub async fn grid_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<GridQuery>,
) -> Result<Response, PageError> {
    let filter = grid_filter(&query, common::time::now_micros())?;
    let counts = result_grid::counts(&state.db, &filter).await?;
    let day = |micros: i64| common::time::format_micros(micros);
    let since = day(filter.since);
    let Grid { columns, rows, cut } = grid(&counts.counts, filter.by, &counts.column_names, &since);
    let text = |value: &Option<String>| value.clone().unwrap_or_default().trim().to_string();
    render(&ResultsPage {
        viewer,
        by_job: filter.by == GridBy::Job,
        name: text(&query.name),
        label: text(&query.label),
        owner: text(&query.owner),
        since: text(&query.since),
        until: text(&query.until),
        columns,
        rows,
        truncated: cut || counts.truncated,
    })
}

/// The query string of `/tests`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TestsQuery {
    pub job: Option<String>,
    pub host: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub since: Option<String>,
}

/// A test as the list shows it.
pub struct TestLine {
    pub id: i64,
    pub job_id: i64,
    pub host: String,
    pub name: String,
    pub status: String,
    pub status_class: String,
    pub reason: String,
    pub started: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "tests.html")]
struct TestsPage {
    viewer: Viewer,
    tests: Vec<TestLine>,
    what: String,
}

/// `GET /tests?job=&host=&name=&status=&since=`: the newest 200 such tests.
pub async fn tests_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<TestsQuery>,
) -> Result<Response, PageError> {
    let filter = crate::db::test_results::Filter {
        job: super::format::number("job", &query.job)?,
        host: field("host", &query.host)?,
        status: field("status", &query.status)?,
        name_like: field("name", &query.name)?
            .as_deref()
            .map(crate::db::test_results::like_pattern),
        since: date("since", &query.since)?,
        limit: 200,
        before: None,
        all_attempts: false,
    };
    let what = [
        filter.job.map(|j| format!("job {j}")),
        filter.host.as_ref().map(|h| format!("host {h}")),
        field("name", &query.name)?.map(|n| format!("test {n}")),
        filter.status.as_ref().map(|s| format!("status {s}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let (rows, _) = crate::db::test_results::list(&state.db, &filter).await?;
    let tests = rows
        .into_iter()
        .map(|(t, _)| TestLine {
            id: t.id,
            job_id: t.job_id,
            host: t.host.unwrap_or_default(),
            status_class: status_class(&t.status),
            started: when_opt(t.started),
            duration: match (t.started, t.finished) {
                (Some(s), Some(f)) => span(Some(s), Some(f)),
                _ => String::new(),
            },
            reason: t.reason.unwrap_or_default(),
            name: t.name,
            status: t.status,
        })
        .collect();
    render(&TestsPage {
        viewer,
        tests,
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(test: &str, column: i64, status: &str, count: i64) -> GridCount {
        GridCount {
            test: test.into(),
            column: Some(column),
            status: status.into(),
            count,
        }
    }

    #[test]
    fn a_cell_writes_its_counts_and_takes_the_worst_status_colour() {
        let names = BTreeMap::from([(1, "host1".to_string()), (2, "host2".to_string())]);
        let counts = [
            count("dbench", 1, "GOOD", 3),
            count("dbench", 1, "FAIL", 1),
            count("sleeptest", 2, "GOOD", 2),
        ];
        let grid = grid(&counts, GridBy::Host, &names, "2026-12-01");
        assert_eq!(
            grid.columns,
            [(Some(1), "host1".into()), (Some(2), "host2".into())]
        );
        assert_eq!(grid.rows.len(), 2);
        let cell = grid.rows[0].cells[0].as_ref().unwrap();
        assert_eq!(cell.text, "3 GOOD / 1 FAIL");
        assert_eq!(cell.class, "status-fail");
        assert_eq!(cell.link, "/tests?host=host1&name=dbench&since=2026-12-01");
        assert!(grid.rows[0].cells[1].is_none(), "dbench never ran on host2");
        assert!(!grid.cut);
    }

    #[test]
    fn the_query_picks_columns_and_a_window() {
        let now = 30 * 24 * 3600 * 1_000_000;
        let filter = grid_filter(&GridQuery::default(), now).unwrap();
        assert_eq!((filter.by, filter.until), (GridBy::Host, now));
        assert_eq!(
            filter.since,
            now - DEFAULT_WINDOW_US,
            "the last week by default"
        );
        let by_job = GridQuery {
            by: Some("job".into()),
            since: Some("2026-12-07".into()),
            until: Some("2026-12-01".into()),
            ..Default::default()
        };
        assert_eq!(
            grid_filter(&by_job, now).err().unwrap().status,
            StatusCode::BAD_REQUEST
        );
        let bad = GridQuery {
            by: Some("drone".into()),
            ..Default::default()
        };
        assert_eq!(
            grid_filter(&bad, now).err().unwrap().status,
            StatusCode::BAD_REQUEST
        );
    }
}
