//! Paged lists: `GET /api/jobs`, `GET /api/hosts` and `GET /api/tests` answer one page
//! (`limit`, default 100, at most 1000) and the cursor of the next one (`next`, null on
//! the last page). A cursor is opaque: send it back as `cursor=` with the same filters.

use crate::client::{Client, ClientError};
use crate::{HostView, JobSummary, TestQuery, TestView};
use serde::{Deserialize, Serialize};

/// A page's size when the request names none.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most one page holds.
pub const MAX_LIMIT: u32 = 1000;

/// The filters of `GET /api/jobs`; every one optional, each narrowing the list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    pub owner: Option<String>,
    /// A job status: Queued, Running, Completed, Failed or Aborted.
    pub status: Option<String>,
    /// Text anywhere in the job's name, or a glob (`*`, `?`) on the whole name.
    pub name: Option<String>,
    /// Jobs created at or after this time (RFC 3339, or a date `YYYY-MM-DD`).
    pub since: Option<String>,
    /// At most this many jobs, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl JobQuery {
    /// The query string, percent-encoded.
    pub fn to_query(&self) -> String {
        query_string(&[
            ("owner", self.owner.clone()),
            ("status", self.status.clone()),
            ("name", self.name.clone()),
            ("since", self.since.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ])
    }
}

/// The paging of `GET /api/hosts` (hosts by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl HostQuery {
    /// The query string, percent-encoded.
    pub fn to_query(&self) -> String {
        query_string(&[
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ])
    }
}

/// `GET /api/jobs`: a page of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobSummary>,
    /// The cursor of the next (older) page; null when nothing is left. A page may hold
    /// fewer than `limit` jobs and still have a next one: each answer looks at a
    /// bounded number of jobs, so follow `next` until it is null.
    pub next: Option<String>,
}

/// `GET /api/hosts`: a page of hosts by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPage {
    pub hosts: Vec<HostView>,
    pub next: Option<String>,
}

/// `GET /api/tests`: a page of tests, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestPage {
    pub tests: Vec<TestView>,
    pub next: Option<String>,
}

/// `key=value&...` of the pairs that have a value.
pub(crate) fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(key, value)| {
            value
                .as_ref()
                .map(|v| format!("{key}={}", crate::test_results::encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `path`, with `?query` when there is one.
fn with_query(path: &str, query: String) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

impl Client {
    /// `GET /api/jobs?...`: one page.
    pub fn jobs_page(&self, query: &JobQuery) -> Result<JobPage, ClientError> {
        self.get(&with_query("/api/jobs", query.to_query()))
    }
    /// Every job matching `query`, newest first, following the cursors.
    pub fn jobs_matching(&self, query: &JobQuery) -> Result<Vec<JobSummary>, ClientError> {
        let mut query = JobQuery {
            limit: Some(query.limit.unwrap_or(MAX_LIMIT)),
            ..query.clone()
        };
        let mut all = Vec::new();
        loop {
            let page = self.jobs_page(&query)?;
            all.extend(page.jobs);
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.jobs_matching(&JobQuery::default())
    }
    /// `GET /api/hosts?...`: one page.
    pub fn hosts_page(&self, query: &HostQuery) -> Result<HostPage, ClientError> {
        self.get(&with_query("/api/hosts", query.to_query()))
    }
    /// Every host, by name.
    pub fn hosts(&self) -> Result<Vec<HostView>, ClientError> {
        let mut query = HostQuery {
            limit: Some(MAX_LIMIT),
            cursor: None,
        };
        let mut all = Vec::new();
        loop {
            let page = self.hosts_page(&query)?;
            all.extend(page.hosts);
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => return Ok(all),
            }
        }
    }
    /// `GET /api/tests?...`: one page.
    pub fn tests(&self, query: &TestQuery) -> Result<TestPage, ClientError> {
        self.get(&with_query("/api/tests", query.to_query()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_query_encodes_what_is_given() {
        assert_eq!(JobQuery::default().to_query(), "");
        let query = JobQuery {
            owner: Some("ann".into()),
            name: Some("nightly *".into()),
            limit: Some(5),
            cursor: Some("120".into()),
            ..Default::default()
        };
        assert_eq!(
            query.to_query(),
            "owner=ann&name=nightly%20%2A&limit=5&cursor=120"
        );
        assert_eq!(
            HostQuery {
                limit: None,
                cursor: Some("host 1".into())
            }
            .to_query(),
            "cursor=host%201"
        );
    }

    #[test]
    fn a_page_reads_its_next_cursor_or_null() {
        let page: JobPage = serde_json::from_str(r#"{"jobs":[],"next":"7"}"#).unwrap();
        assert_eq!(page.next.as_deref(), Some("7"));
        let last: HostPage = serde_json::from_str(r#"{"hosts":[],"next":null}"#).unwrap();
        assert_eq!(last.next, None);
    }
}
