//! `GET /api/tests` and `GET /api/tests/{id}`: the tests parsed from what jobs left
//! behind, filtered and paged.

use crate::api_map;
use crate::db::{self, test_results::Filter, Db};
use crate::http_error::ApiError;
use axum::extract::{Path, Query, State};
use axum::Json;

/// The most tests one page holds.
pub const MAX_PAGE: u32 = 1000;
/// A page's size when the request names none.
pub const DEFAULT_PAGE: u32 = 100;

/// The filter a query asks for, checked.
fn filter(query: api::TestQuery) -> Result<Filter, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
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
        limit: i64::from(limit),
        before: query.before,
        all_attempts: query.all_attempts,
    })
}

/// `GET /api/tests?job=&host=&status=&name=&since=&limit=&before=&all_attempts=`.
pub async fn list(
    State(db): State<Db>,
    Query(query): Query<api::TestQuery>,
) -> Result<Json<Vec<api::TestView>>, ApiError> {
    let filter = filter(query)?;
    let rows = db::test_results::list(&db, &filter).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(row, attributes)| api_map::test_view(row, attributes))
            .collect(),
    ))
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
        assert_eq!(ok.limit, i64::from(DEFAULT_PAGE));
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
        ] {
            assert!(filter(bad).is_err());
        }
    }
}
