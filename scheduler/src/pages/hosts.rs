//! `/hosts` and `/hosts/<name>`: each host's labels, status, lock, ACL groups and
//! current entry; one host's last jobs with their results.

use super::format::{results_link, span, status_class, when_opt};
use super::{render, PageError, Viewer};
use crate::db::host_pages::{self, HostEntry};
use crate::db::hosts::HostRow;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

/// How many of a host's last entries its page shows.
const LAST_ENTRIES: i64 = 30;

/// An entry as a host page shows it.
pub struct EntryLine {
    pub entry_id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub owner: String,
    pub status: &'static str,
    pub status_class: String,
    pub drone: String,
    pub exit_code: String,
    pub started: String,
    pub duration: String,
    pub tests: String,
    pub results_link: String,
}

fn entry_line(entry: HostEntry) -> EntryLine {
    EntryLine {
        status: entry.status.as_str(),
        status_class: status_class(entry.status.as_str()),
        drone: entry.drone.unwrap_or_default(),
        exit_code: entry.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        started: when_opt(entry.started_on),
        duration: span(entry.started_on, entry.finished_on),
        tests: if entry.tests_passed + entry.tests_failed > 0 {
            format!(
                "{} passed / {} failed",
                entry.tests_passed, entry.tests_failed
            )
        } else {
            String::new()
        },
        results_link: results_link(&format!(
            "{}-{}/{}/",
            entry.job_id, entry.owner, entry.execution_subdir
        )),
        entry_id: entry.entry_id,
        job_id: entry.job_id,
        job_name: entry.job_name,
        owner: entry.owner,
    }
}

/// A host as the pages show it.
pub struct HostView {
    pub name: String,
    pub labels: String,
    pub status: &'static str,
    pub status_class: String,
    pub locked: bool,
    pub lock_reason: String,
    pub locked_by: String,
    pub groups: String,
    pub current: Option<EntryLine>,
}

fn host_view(host: HostRow, extras: host_pages::HostExtras) -> HostView {
    HostView {
        name: host.name.to_string(),
        labels: host
            .labels
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        status: host.status.as_str(),
        status_class: status_class(host.status.as_str()),
        locked: host.locked,
        lock_reason: host.lock_reason.unwrap_or_default(),
        locked_by: host.locked_by.unwrap_or_default(),
        groups: extras.groups.join(", "),
        current: extras.current.map(entry_line),
    }
}

#[derive(Template)]
#[template(path = "hosts.html")]
struct HostsPage {
    viewer: Viewer,
    hosts: Vec<HostView>,
}

/// `GET /hosts`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let hosts = crate::db::hosts::list(&state.db).await?;
    let mut extras = host_pages::extras(&state.db).await?;
    let hosts = hosts
        .into_iter()
        .map(|h| {
            let more = extras.remove(h.name.as_str()).unwrap_or_default();
            host_view(h, more)
        })
        .collect();
    render(&HostsPage { viewer, hosts })
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    viewer: Viewer,
    host: HostView,
    entries: Vec<EntryLine>,
    host_actions: super::actions::HostActions,
}

/// `GET /hosts/<name>`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let hosts = crate::db::hosts::list(&state.db).await?;
    let host = hosts
        .into_iter()
        .find(|h| h.name.as_str() == name)
        .ok_or_else(|| PageError::not_found(format!("no host {name}")))?;
    let mut extras = host_pages::extras(&state.db).await?;
    let more = extras.remove(&name).unwrap_or_default();
    let entries = host_pages::last_entries(&state.db, &name, LAST_ENTRIES).await?;
    let shares_group = match &viewer.name {
        Some(user) => crate::db::acl::shares_group(&state.db, user, &name).await?,
        None => false,
    };
    let host_actions = super::actions::HostActions::new(&viewer, &name, host.locked, shares_group);
    render(&HostPage {
        host_actions,
        viewer,
        host: host_view(host, more),
        entries: entries.into_iter().map(entry_line).collect(),
    })
}
