//! `GET /api/jobs` and `GET /api/hosts`: one page at a time (`limit`, `cursor`), the
//! cursor of the next page in the answer's `next`. Jobs come newest first through the
//! same query as the `/jobs` page ([`db::job_pages::page_of`]); hosts by name.

use crate::api::{HostPage, JobPage, JobQuery, JobSummary};
use crate::db::job_pages::{JobFilter, JobLine};
use crate::db::{self, Db};
use crate::http_error::ApiError;
use crate::model::JobStatus;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;

/// The size of a page: `limit` as given (1 to [`api::MAX_LIMIT`]), else
/// [`api::DEFAULT_LIMIT`].
pub fn limit(text: &Option<String>) -> Result<i64, ApiError> {
    let Some(text) = text else {
        return Ok(i64::from(api::DEFAULT_LIMIT));
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=api::MAX_LIMIT).contains(&n) => Ok(i64::from(n)),
        _ => Err(ApiError::bad_request(format!(
            "limit: expected a number from 1 to {}, got {text:?}",
            api::MAX_LIMIT
        ))),
    }
}

/// A cursor naming a row by its id (jobs, tests): a positive number.
pub fn id_cursor(text: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(Some(id)),
        _ => Err(ApiError::bad_request(format!(
            "cursor: expected the `next` of a previous answer, got {text:?}"
        ))),
    }
}

/// Free text of the query (`owner`, `name`, a host cursor): at most 1024 bytes, no
/// control characters; blank counts as absent.
pub fn text(name: &str, value: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name}: expected at most 1024 bytes of text"
        )));
    }
    Ok(Some(value.to_string()))
}

/// A query string that did not parse (an unknown parameter, a repeated one).
pub fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// The filter of `GET /api/jobs`, checked, and the page's size.
pub fn job_filter(query: &JobQuery) -> Result<(JobFilter, i64), ApiError> {
    let status = match text("status", &query.status)? {
        None => None,
        Some(text) => Some(text.parse::<JobStatus>().map_err(|_| {
            ApiError::bad_request(format!(
                "status: expected Queued, Running, Completed, Failed or Aborted, got {text:?}"
            ))
        })?),
    };
    let since = match text("since", &query.since)? {
        None => None,
        Some(text) => Some(common::time::parse_since(&text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "since: expected a date (2026-12-07) or an RFC 3339 time, got {text:?}"
            ))
        })?),
    };
    let filter = JobFilter {
        owner: text("owner", &query.owner)?,
        status,
        name_like: text("name", &query.name)?
            .as_deref()
            .map(db::job_scan::name_pattern),
        label: None,
        before: id_cursor(&query.cursor)?,
        since,
    };
    Ok((filter, limit(&query.limit.map(|l| l.to_string()))?))
}

fn job_summary(job: JobLine) -> JobSummary {
    JobSummary {
        id: job.id,
        name: job.name,
        owner: job.owner,
        priority: job.priority,
        status: job.status.to_string(),
        created_on: common::time::format_micros(job.created_on),
    }
}

/// `GET /api/jobs?owner=&status=&name=&since=&limit=&cursor=`.
pub async fn list_jobs(
    State(db): State<Db>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let (filter, limit) = job_filter(&query)?;
    let page = db::job_pages::page_of(&db, &filter, limit).await?;
    Ok(Json(JobPage {
        jobs: page.jobs.into_iter().map(job_summary).collect(),
        next: page.older.map(|id| id.to_string()),
    }))
}

/// `GET /api/hosts?limit=&cursor=`: hosts by name; the cursor is the last name shown.
pub async fn list_hosts(
    State(db): State<Db>,
    query: Result<Query<api::HostQuery>, QueryRejection>,
) -> Result<Json<HostPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = limit(&query.limit.map(|l| l.to_string()))?;
    let after = text("cursor", &query.cursor)?;
    let (hosts, more) = db::hosts::page(&db, after.as_deref(), Some(limit)).await?;
    let next = more
        .then(|| hosts.last().map(|h| h.name.as_str().to_string()))
        .flatten();
    Ok(Json(HostPage {
        hosts: hosts.into_iter().map(crate::api_map::host_view).collect(),
        next,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(result: Result<(JobFilter, i64), ApiError>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(error) => error.0.as_u16(),
        }
    }

    #[test]
    fn a_job_query_becomes_a_filter_with_a_limit() {
        let (filter, limit) = job_filter(&JobQuery {
            owner: Some(" ann ".into()),
            status: Some("Failed".into()),
            name: Some("nightly".into()),
            since: Some("1970-01-02".into()),
            limit: None,
            cursor: Some("120".into()),
        })
        .unwrap_or_else(|_| panic!("a valid query"));
        assert_eq!(limit, 100);
        assert_eq!(filter.owner.as_deref(), Some("ann"));
        assert_eq!(filter.status, Some(JobStatus::Failed));
        assert_eq!(filter.name_like.as_deref(), Some("%nightly%"));
        assert_eq!(filter.since, Some(86_400_000_000));
        assert_eq!(filter.before, Some(120));
        let glob = job_filter(&JobQuery {
            name: Some("night?y*".into()),
            limit: Some(1000),
            ..Default::default()
        });
        let (glob, limit) = glob.unwrap_or_else(|_| panic!("a glob"));
        assert_eq!(glob.name_like.as_deref(), Some("night_y%"));
        assert_eq!(limit, 1000);
    }

    #[test]
    fn bad_values_are_refused_before_the_database() {
        let bad = [
            JobQuery {
                limit: Some(0),
                ..Default::default()
            },
            JobQuery {
                limit: Some(1001),
                ..Default::default()
            },
            JobQuery {
                status: Some("Sleeping".into()),
                ..Default::default()
            },
            JobQuery {
                since: Some("yesterday".into()),
                ..Default::default()
            },
            JobQuery {
                cursor: Some("abc".into()),
                ..Default::default()
            },
            JobQuery {
                cursor: Some("-4".into()),
                ..Default::default()
            },
            JobQuery {
                owner: Some("a\u{7}b".into()),
                ..Default::default()
            },
        ];
        for query in bad {
            assert_eq!(status_of(job_filter(&query)), 400, "{query:?}");
        }
    }

    #[test]
    fn limits_and_cursors_parse_or_say_what_was_expected() {
        assert_eq!(limit(&None).ok(), Some(100));
        assert_eq!(limit(&Some("7".into())).ok(), Some(7));
        for bad in ["x", "0", "1001", "-1", ""] {
            let error = limit(&Some(bad.into())).expect_err("refused");
            assert!(error.1.contains("1 to 1000"), "{}", error.1);
        }
        assert_eq!(id_cursor(&Some("42".into())).ok(), Some(Some(42)));
        assert!(id_cursor(&Some("0".into())).is_err());
        assert_eq!(text("cursor", &Some("  ".into())).ok(), Some(None));
    }
}
