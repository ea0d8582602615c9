//! `GET /api/tests` and `GET /api/tests/{id}`: the tests parsed from what jobs left
//! behind, filtered and paged like the other lists (`limit`, `cursor`, `next`).

use crate::api_map;
use crate::db::{self, test_results::Filter, Db};
use crate::http_error::ApiError;
use crate::http_lists::{bad_query, id_cursor, limit};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;

/// The filter a query asks for, checked.
fn filter(query: api::TestQuery) -> Result<Filter, ApiError> {
    let limit = limit(&query.limit.map(|l| l.to_string()))?;
    let before = id_cursor(&query.cursor)?.or(query.before);
    let since = match &query.since {
        Some(text) => Some(common::time::parse_since(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "since: expected a date (2026-12-07) or an RFC 3339 time, got {text:?}"
            ))
        })?),
        None => None,
    };
    if let Some(status) = &query.status {
        if tko::Status::parse(status).is_none() {
            return Err(ApiError::bad_request(format!(
                "status: expected GOOD, WARN, FAIL, ERROR, ABORT, TEST_NA or ALERT, got {status:?}"
            )));
        }
    }
    for (what, text) in [("host", &query.host), ("name", &query.name)] {
        if text.as_ref().is_some_and(|t| t.len() > 1024) {
            return Err(ApiError::bad_request(format!(
                "{what} is longer than 1024 bytes"
            )));
        }
    }
    Ok(Filter {
        job: query.job,
        host: query.host,
        status: query.status,
        name_like: query.name.as_deref().map(db::test_results::like_pattern),
        since,
        limit,
        before,
        all_attempts: query.all_attempts,
    })
}

/// `GET /api/tests?job=&host=&status=&name=&since=&limit=&cursor=&all_attempts=`.
pub async fn list(
    State(db): State<Db>,
    query: Result<Query<api::TestQuery>, QueryRejection>,
) -> Result<Json<api::TestPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let filter = filter(query)?;
    let (rows, more) = db::test_results::list(&db, &filter).await?;
    let next = more
        .then(|| rows.last().map(|(row, _)| row.id.to_string()))
        .flatten();
    Ok(Json(api::TestPage {
        tests: rows
            .into_iter()
            .map(|(row, attributes)| api_map::test_view(row, attributes))
            .collect(),
        next,
    }))
}

/// `GET /api/tests/{id}`.
pub async fn show(
    State(db): State<Db>,
    Path(id): Path<i64>,
) -> Result<Json<api::TestDetail>, ApiError> {
    let row = db::test_results::get(&db, id).await?;
    Ok(Json(api_map::test_detail(row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_checked_before_it_reaches_the_database() {
        let ok = filter(api::TestQuery {
            name: Some("net*".into()),
            since: Some("2026-12-07".into()),
            ..Default::default()
        })
        .unwrap_or_else(|_| panic!("a valid query"));
        assert_eq!(ok.limit, i64::from(api::DEFAULT_LIMIT));
        let paged = filter(api::TestQuery {
            cursor: Some("77".into()),
            before: Some(500),
            ..Default::default()
        })
        .unwrap_or_else(|_| panic!("a valid cursor"));
        assert_eq!(paged.before, Some(77), "the cursor wins over before");
        assert_eq!(ok.name_like.as_deref(), Some("net%"));
        assert!(ok.since.is_some());
        for bad in [
            api::TestQuery {
                limit: Some(0),
                ..Default::default()
            },
            api::TestQuery {
                limit: Some(5000),
                ..Default::default()
            },
            api::TestQuery {
                since: Some("soon".into()),
                ..Default::default()
            },
            api::TestQuery {
                status: Some("PASS".into()),
                ..Default::default()
            },
            api::TestQuery {
                host: Some("h".repeat(2000)),
                ..Default::default()
            },
            api::TestQuery {
                cursor: Some("next".into()),
                ..Default::default()
            },
        ] {
            assert!(filter(bad).is_err());
        }
    }
}
