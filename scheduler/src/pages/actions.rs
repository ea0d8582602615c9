//! The forms that change something, besides a new job: abort a job, lock or unlock a
//! host, enable, disable or resize a drone. Each endpoint (`POST /ui/...`) takes a form
//! from a signed-in session ([`Posted`]), applies the same function, and so the same
//! rules, as the API call it mirrors (owner or admin; a shared ACL group; admins only),
//! and goes back to the page the form was on.
//!
//! The buttons come from the snippets in `templates/actions/`, which the pages include
//! with a view made here: [`JobActions`], [`HostActions`], [`DroneActions`].

use super::posted::Posted;
use super::{render, PageError, Viewer};
use crate::http::{self, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

/// What `templates/actions/job_actions.html` needs of a job: whether the viewer may
/// abort it (its owner or an admin, signed in, and the job not finished).
#[derive(Debug, Clone)]
pub struct JobActions {
    pub id: i64,
    pub may_abort: bool,
}

impl JobActions {
    pub fn new(viewer: &Viewer, id: i64, owner: &str, finished: bool) -> Self {
        let mine = viewer.name.as_deref() == Some(owner) || viewer.admin;
        Self {
            id,
            may_abort: viewer.csrf.is_some() && mine && !finished,
        }
    }
}

/// What `templates/actions/host_actions.html` needs of a host: its name, whether it
/// is locked, and whether the viewer may lock or unlock it (signed in, and an admin or
/// sharing an ACL group with it: the caller works that out, as
/// `db::acl::shares_group` says).
#[derive(Debug, Clone)]
pub struct HostActions {
    pub name: String,
    pub locked: bool,
    pub may_use: bool,
}

impl HostActions {
    pub fn new(viewer: &Viewer, name: &str, locked: bool, shares_group: bool) -> Self {
        Self {
            name: name.to_string(),
            locked,
            may_use: viewer.csrf.is_some() && (viewer.admin || shares_group),
        }
    }
}

/// What `templates/actions/drone_actions.html` needs of a drone: shown to a signed-in
/// admin only.
#[derive(Debug, Clone)]
pub struct DroneActions {
    pub name: String,
    pub enabled: bool,
    pub capacity: i64,
    pub may_change: bool,
}

impl DroneActions {
    pub fn new(viewer: &Viewer, name: &str, enabled: bool, capacity: i64) -> Self {
        Self {
            name: name.to_string(),
            enabled,
            capacity,
            may_change: viewer.csrf.is_some() && viewer.admin,
        }
    }
}

/// The reason given with an abort or a lock (optional).
#[derive(Deserialize)]
pub struct Reason {
    #[serde(default)]
    reason: String,
}

impl Reason {
    fn given(&self) -> Option<String> {
        let reason = self.reason.trim();
        (!reason.is_empty()).then(|| reason.to_string())
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

#[derive(Deserialize)]
pub struct Capacity {
    #[serde(default)]
    capacity: String,
}

/// `POST /ui/jobs/{id}/abort`.
pub async fn abort_job(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<Reason>,
) -> Result<Response, PageError> {
    http::abort(&state, &posted.caller, id, posted.form.given()).await?;
    Ok(posted.back(&format!("/jobs/{id}")))
}

/// `POST /ui/hosts/{name}/lock`.
pub async fn lock_host(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<Reason>,
) -> Result<Response, PageError> {
    let reason = posted.form.given();
    let host = http::set_host_locked(&state, &posted.caller, name, true, reason).await?;
    Ok(posted.back(&format!("/hosts/{host}")))
}

/// `POST /ui/hosts/{name}/unlock`.
pub async fn unlock_host(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<NoFields>,
) -> Result<Response, PageError> {
    let host = http::set_host_locked(&state, &posted.caller, name, false, None).await?;
    Ok(posted.back(&format!("/hosts/{host}")))
}

/// `POST /ui/drones/{name}/enable`.
pub async fn enable_drone(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<NoFields>,
) -> Result<Response, PageError> {
    http::set_drone_enabled(&state, &posted.caller, &name, true).await?;
    Ok(posted.back("/drones"))
}

/// `POST /ui/drones/{name}/disable`.
pub async fn disable_drone(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<NoFields>,
) -> Result<Response, PageError> {
    http::set_drone_enabled(&state, &posted.caller, &name, false).await?;
    Ok(posted.back("/drones"))
}

/// `POST /ui/drones/{name}/capacity` (field `capacity`, 0 or more).
pub async fn drone_capacity(
    State(state): State<AppState>,
    Path(name): Path<String>,
    posted: Posted<Capacity>,
) -> Result<Response, PageError> {
    let text = posted.form.capacity.trim();
    let capacity = text.parse::<i32>().map_err(|_| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("capacity: expected a whole number (0 or more), got {text:?}"),
        )
    })?;
    http::set_drone_capacity(&state, &posted.caller, &name, capacity).await?;
    Ok(posted.back("/drones"))
}

#[derive(Template)]
#[template(path = "job_abort.html")]
struct AbortPage {
    viewer: Viewer,
    name: String,
    owner: String,
    status: String,
    finished: bool,
    job_actions: JobActions,
}

/// `GET /jobs/{id}/abort`: the job's owner and state, and the Abort button for whoever
/// may use it (a page that works without the job page's script).
pub async fn abort_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let job = crate::db::jobs::show(&state.db, id).await?;
    let status = job.status().to_string();
    let finished = api::is_final(&status);
    let status = if !finished && job.entries.iter().any(|e| e.aborted_on.is_some()) {
        "Aborting".to_string()
    } else {
        status
    };
    let owner = job.owner.to_string();
    render(&AbortPage {
        job_actions: JobActions::new(&viewer, id, &owner, finished),
        viewer,
        name: job.name,
        owner,
        status,
        finished,
    })
}
