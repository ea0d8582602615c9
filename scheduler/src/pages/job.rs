//! `/jobs/<id>`: a job's settings and control file, each entry with its attempts and
//! its tests, links to the logs, and, while an entry runs, its log as it grows (see
//! [`super::live`]).

use super::format::{results_link, span, status_class, when, when_opt};
use super::{render, PageError, Viewer};
use crate::db::jobs::EntryRow;
use crate::db::test_results::{EntryTests, TestRow};
use crate::db::{self, job_pages};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

/// The log a running entry's page follows unless `?log=` names another: what the
/// worker writes Autoserv's output to.
pub const DEFAULT_LOG: &str = "autoserv.stdout";

/// A test as the job page shows it.
pub struct TestView {
    pub name: String,
    pub status: String,
    pub status_class: String,
    pub reason: String,
    pub duration: String,
    pub attempt: i32,
    /// Its subdirectory and its debug logs, under `/results/`.
    pub dir_link: Option<String>,
    pub debug_link: Option<String>,
}

/// An event of an entry's attempts.
pub struct EventView {
    pub at: String,
    pub attempt: i32,
    pub drone: String,
    pub event: String,
    pub detail: String,
}

/// An entry as the job page shows it.
pub struct EntryView {
    pub id: i64,
    pub host: String,
    pub drone: String,
    pub status: &'static str,
    pub status_class: String,
    pub exit_code: String,
    pub failure: String,
    pub attempt: i32,
    pub created: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub results_link: String,
    pub history: Vec<EventView>,
    pub tests: Vec<TestView>,
    pub parse_error: String,
    /// The log followed live, when the entry is on a drone.
    pub live_log: Option<String>,
}

fn test_view(test: TestRow, entry_dir: &str) -> TestView {
    let dir = test
        .subdir
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "----");
    TestView {
        dir_link: dir.map(|d| results_link(&format!("{entry_dir}/{d}/"))),
        debug_link: dir.map(|d| results_link(&format!("{entry_dir}/{d}/debug/"))),
        status_class: status_class(&test.status),
        duration: match (test.started, test.finished) {
            (Some(start), Some(end)) => span(Some(start), Some(end)),
            _ => String::new(),
        },
        reason: test.reason.unwrap_or_default(),
        name: test.name,
        status: test.status,
        attempt: test.attempt,
    }
}

fn entry_view(entry: EntryRow, tests: Option<EntryTests>, dir: &str, log: &str) -> EntryView {
    let entry_dir = format!("{dir}/{}", entry.execution_subdir);
    let (tests, parse_error) = match tests {
        Some(t) => (t.tests, t.parse_error.unwrap_or_default()),
        None => (Vec::new(), String::new()),
    };
    let failure = [entry.failure_kind.clone(), entry.failure_reason.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    EntryView {
        id: entry.id,
        host: entry
            .host
            .as_ref()
            .map(|h| h.to_string())
            .or_else(|| {
                entry
                    .label
                    .as_ref()
                    .map(|l| format!("any host labelled {l}"))
            })
            .unwrap_or_default(),
        drone: entry
            .drone
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default(),
        status: entry.status.as_str(),
        status_class: status_class(entry.status.as_str()),
        exit_code: entry.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        failure,
        attempt: entry.attempt,
        created: when(entry.created_on),
        started: when_opt(entry.started_on),
        finished: when_opt(entry.finished_on),
        duration: span(entry.started_on, entry.finished_on),
        results_link: results_link(&format!("{entry_dir}/")),
        history: entry
            .history
            .iter()
            .map(|h| EventView {
                at: when(h.at),
                attempt: h.attempt,
                drone: h.drone.clone().unwrap_or_default(),
                event: h.event.clone(),
                detail: h.detail.clone(),
            })
            .collect(),
        tests: tests
            .into_iter()
            .map(|t| test_view(t, &entry_dir))
            .collect(),
        parse_error,
        live_log: entry.status.is_active().then(|| log.to_string()),
    }
}

/// Where a job's results are, as its page says it: on the results host, or archived
/// or removed by the retention rules or an admin, and when.
pub fn results_where(place: crate::model::ResultsPlace, on: Option<i64>) -> String {
    use crate::model::ResultsPlace;
    let on = on.map(|t| format!(" on {}", when(t))).unwrap_or_default();
    match place {
        ResultsPlace::ResultsHost => "on the results host".into(),
        ResultsPlace::Archived => format!("archived{on} (links lead to the archive host)"),
        ResultsPlace::Removed => format!("removed{on}"),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    viewer: Viewer,
    id: i64,
    name: String,
    owner: String,
    priority: i32,
    created: String,
    status: &'static str,
    status_class: String,
    drone_set: String,
    synch_count: i32,
    tasks: String,
    /// Where the job's results are (see [`results_where`]).
    results_place: String,
    control_file: String,
    entries: Vec<EntryView>,
    job_actions: super::actions::JobActions,
}

/// The query string of `/jobs/<id>`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct JobQuery {
    /// Which file of a running entry to follow, relative to its results directory.
    pub log: Option<String>,
}

/// `GET /jobs/<id>?log=<file>`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Result<Response, PageError> {
    let id: i64 = id.parse().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("no job {id:?}: a job id is a number"),
        )
    })?;
    let log = match super::format::field("log", &query.log)? {
        Some(file) => {
            common::results_http::check(&file)
                .map_err(|(code, message)| PageError::new(code, message))?;
            file
        }
        None => DEFAULT_LOG.to_string(),
    };
    let job = db::jobs::show(&state.db, id).await?;
    let place = db::results_place::place_of(&state.db, id).await?;
    let control_file = job_pages::control_file(&state.db, id)
        .await?
        .unwrap_or_default();
    let mut tests = db::test_results::of_job(&state.db, id).await?;
    let dir = format!("{}-{}", job.id, job.owner);
    let status = job.status().as_str();
    let finished = api::is_final(status);
    let job_actions =
        super::actions::JobActions::new(&viewer, job.id, job.owner.as_str(), finished);
    render(&JobPage {
        job_actions,
        viewer,
        id: job.id,
        name: job.name.clone(),
        owner: job.owner.to_string(),
        priority: job.priority,
        created: when(job.created_on),
        status,
        status_class: status_class(status),
        drone_set: job.drone_set.clone().unwrap_or_default(),
        synch_count: job.synch_count,
        tasks: job.tasks.names().join(", "),
        results_place: place.map_or_else(String::new, |(place, on)| results_where(place, on)),
        control_file,
        entries: job
            .entries
            .into_iter()
            .map(|e| {
                let t = tests.remove(&e.id);
                entry_view(e, t, &dir, &log)
            })
            .collect(),
    })
}
