//! `/jobs` (and `/`): the newest jobs first, a page at a time, filtered by owner,
//! status, name and label; each row's status follows the job live (see `app.js`).

use super::format::{field, name_pattern, number, query_value, status_class, when};
use super::{render, PageError, Viewer};
use crate::db::job_pages::{self, JobFilter, JobLine};
use crate::http::AppState;
use crate::model::JobStatus;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

/// The query string of `/jobs`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct JobsQuery {
    pub owner: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
    pub label: Option<String>,
    pub before: Option<String>,
}

/// The filter a query asks for, checked (400 on a bad status or cursor).
pub fn filter(query: &JobsQuery) -> Result<JobFilter, PageError> {
    let status = match field("status", &query.status)? {
        None => None,
        Some(text) => Some(text.parse::<JobStatus>().map_err(|_| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "status: expected Queued, Running, Completed, Failed or Aborted, got {text:?}"
                ),
            )
        })?),
    };
    Ok(JobFilter {
        owner: field("owner", &query.owner)?,
        status,
        name_like: field("name", &query.name)?.as_deref().map(name_pattern),
        label: field("label", &query.label)?,
        before: number("before", &query.before)?,
        since: None,
    })
}

/// One row as the template writes it.
pub struct JobRowView {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub priority: i32,
    pub created: String,
    pub status: &'static str,
    pub status_class: String,
    /// `2 Running, 1 Completed`.
    pub counts: String,
    /// `3 passed / 1 failed`, empty without tests.
    pub tests: String,
}

/// Entry counts as text: `2 Running, 1 Completed`.
pub fn counts_text<'a>(counts: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(status, n)| format!("{n} {status}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_view(job: JobLine) -> JobRowView {
    let status = job.status.as_str();
    JobRowView {
        counts: counts_text(job.entries.iter().map(|(s, n)| (s.as_str(), *n))),
        tests: if job.tests_passed + job.tests_failed > 0 {
            format!("{} passed / {} failed", job.tests_passed, job.tests_failed)
        } else {
            String::new()
        },
        id: job.id,
        name: job.name,
        owner: job.owner,
        priority: job.priority,
        created: when(job.created_on),
        status,
        status_class: status_class(status),
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    viewer: Viewer,
    rows: Vec<JobRowView>,
    /// The form's values, to show them again.
    owner: String,
    name: String,
    label: String,
    /// Each status and whether the form selected it.
    statuses: Vec<(&'static str, bool)>,
    /// The link to the next, older page.
    older: Option<String>,
    /// The ids on the page, comma-separated, for the live poll.
    live_ids: String,
    filtered: bool,
}

/// `GET /jobs?owner=&status=&name=&label=&before=`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<JobsQuery>,
) -> Result<Response, PageError> {
    let filter = filter(&query)?;
    let page = job_pages::page(&state.db, &filter).await?;
    let text = |value: &Option<String>| value.clone().unwrap_or_default().trim().to_string();
    let older = page.older.map(|before| {
        let mut link = format!("/jobs?before={before}");
        for (key, value) in [
            ("owner", &query.owner),
            ("status", &query.status),
            ("name", &query.name),
            ("label", &query.label),
        ] {
            let value = text(value);
            if !value.is_empty() {
                link.push_str(&format!("&{key}={}", query_value(&value)));
            }
        }
        link
    });
    let rows: Vec<JobRowView> = page.jobs.into_iter().map(row_view).collect();
    let live_ids = rows
        .iter()
        .map(|r| r.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    render(&JobsPage {
        viewer,
        owner: text(&query.owner),
        name: text(&query.name),
        label: text(&query.label),
        statuses: JobStatus::ALL
            .iter()
            .map(|s| (s.as_str(), text(&query.status) == s.as_str()))
            .collect(),
        filtered: filter != JobFilter::default(),
        rows,
        older,
        live_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_becomes_a_filter() {
        let query = JobsQuery {
            owner: Some("alice".into()),
            status: Some("Running".into()),
            name: Some("nightly".into()),
            label: Some(" ".into()),
            before: Some("120".into()),
        };
        let filter = filter(&query).unwrap();
        assert_eq!(filter.owner.as_deref(), Some("alice"));
        assert_eq!(filter.status, Some(JobStatus::Running));
        assert_eq!(filter.name_like.as_deref(), Some("%nightly%"));
        assert_eq!(filter.label, None, "a blank field is no filter");
        assert_eq!(filter.before, Some(120));
        let bad = JobsQuery {
            status: Some("Sleeping".into()),
            ..Default::default()
        };
        assert_eq!(filter_err(&bad), StatusCode::BAD_REQUEST);
    }

    fn filter_err(query: &JobsQuery) -> StatusCode {
        filter(query).unwrap_err().status
    }

    #[test]
    fn counts_read_as_text() {
        assert_eq!(
            counts_text([("Running", 2), ("Queued", 0), ("Completed", 1)]),
            "2 Running, 1 Completed"
        );
        assert_eq!(counts_text([]), "");
    }
}
