//! The HTTP API (`/api/...`), used by `atest` and by scripts. JSON in and out; every
//! error is `{"error": "..."}` with a 4xx or 5xx status. Names are validated here, where
//! they enter the system.

use crate::api::{
    ChangeLabels, CreateHost, CreateJob, JobCreated, LabelView, LockHost, SetCapacity,
};
use crate::api_map;
use crate::auth::Caller;
use crate::db::{self, Db, DbError};
pub use crate::http_error::ApiError;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::config::Config;
use common::names::{DroneName, HostName, LabelName, Owner};
use std::sync::Arc;
use tokio::sync::Notify;

/// Largest control file accepted.
pub const MAX_CONTROL_FILE_BYTES: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub wake: Arc<Notify>,
    /// For `queued` in the drone list.
    pub broker: Arc<common::broker::Publisher>,
    /// Wakes the timeout keeper (new deadlines).
    pub timers: Arc<Notify>,
    /// Stores new jobs, several per transaction when they arrive together.
    pub jobs: crate::dispatch::Creator,
    /// Archives and purges finished jobs' results.
    pub keeper: Arc<crate::retention::Keeper>,
}

impl FromRef<AppState> for crate::results::ResultsState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            config: state.config.clone(),
        }
    }
}

impl FromRef<AppState> for Arc<crate::retention::Keeper> {
    fn from_ref(state: &AppState) -> Self {
        state.keeper.clone()
    }
}

impl FromRef<AppState> for crate::auth::AuthState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            config: state.config.clone(),
        }
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/results/{*path}", get(crate::results::serve))
        .route(
            "/api/hosts",
            get(crate::http_lists::list_hosts).post(create_host),
        )
        .route(
            "/api/jobs",
            get(crate::http_lists::list_jobs).post(create_job),
        )
        .route("/api/jobs/{id}", get(show_job))
        .route("/api/jobs/{id}/abort", post(abort_job))
        .route(
            "/api/jobs/{id}/archive",
            post(crate::http_results::archive_job),
        )
        .route("/api/jobs/{id}/purge", post(crate::http_results::purge_job))
        .route("/api/tests", get(crate::http_tests::list))
        .route("/api/tests/{id}", get(crate::http_tests::show))
        .route("/api/drones", get(list_drones))
        .route("/api/drones/{name}/enable", post(enable_drone))
        .route("/api/drones/{name}/disable", post(disable_drone))
        .route("/api/drones/{name}/capacity", post(set_capacity))
        .route("/api/labels", get(list_labels).post(create_label))
        .route(
            "/api/drone-sets",
            get(list_drone_sets).post(create_drone_set),
        )
        .route("/api/hosts/{name}/labels", post(change_labels))
        .route("/api/hosts/{name}/lock", post(lock_host))
        .route("/api/hosts/{name}/unlock", post(unlock_host))
        .route("/api/hosts/{name}/repair", post(repair_host))
        .with_state(state.clone())
        .merge(crate::auth::routes::router(
            crate::auth::AuthState::from_ref(&state),
        ))
        .merge(crate::http_acl::router(crate::http_acl::AclState {
            db: state.db.clone(),
            wake: state.wake.clone(),
            auth: crate::auth::AuthState::from_ref(&state),
        }))
}

async fn create_host(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateHost>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let name = HostName::new(body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let labels = label_names(body.labels)?;
    let host = db::hosts::create(&state.db, &name, &labels).await?;
    state.wake.notify_one();
    Ok((StatusCode::CREATED, Json(api_map::host_view(host))).into_response())
}

/// Whose a new job is: the caller's, or for an admin the body's `owner` (an admin
/// submitting on someone's behalf). A non-admin naming another owner is refused.
fn job_owner(caller: &Caller, asked: &str) -> Result<Owner, ApiError> {
    let name = caller.user()?;
    let owner = if asked.is_empty() || asked == name {
        name
    } else if caller.is_admin() {
        asked
    } else {
        return Err(ApiError::forbidden(format!(
            "user {name} may not submit a job as {asked:?}: only an admin may name another owner"
        )));
    };
    Owner::new(owner).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A job that could not be stored: a bad request when it names something unknown or
/// lacks a dependency, else the database's error.
fn job_refused(error: DbError) -> ApiError {
    match error {
        DbError::NotFound(message) | DbError::Invalid(message) => ApiError::bad_request(message),
        DbError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
        other => other.into(),
    }
}

async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateJob>,
) -> Result<Response, ApiError> {
    let id = store_job(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(JobCreated { id })).into_response())
}

/// Checks a new job as `caller` submits it and stores it: its id. The API and the
/// pages' job form both submit through here, so the same rules hold for both.
pub(crate) async fn store_job(
    state: &AppState,
    caller: &Caller,
    body: CreateJob,
) -> Result<i64, ApiError> {
    let owner = job_owner(caller, &body.owner)?;
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("the job name is empty"));
    }
    if body.name.len() > 1024 || body.name.contains('\0') {
        return Err(ApiError::bad_request(
            "the job name is longer than 1024 bytes or contains NUL",
        ));
    }
    if body.control_file.len() > MAX_CONTROL_FILE_BYTES {
        return Err(ApiError::bad_request(format!(
            "the control file is larger than {MAX_CONTROL_FILE_BYTES} bytes"
        )));
    }
    if body.hosts.is_empty() && body.label.is_none() {
        return Err(ApiError::bad_request(
            "no hosts given: name hosts, or a label to run on any host carrying it",
        ));
    }
    let hosts = crate::job_limits::named_hosts(body.hosts)?;
    let label = match body.label {
        Some(label) => {
            let label = LabelName::new(label).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let count = crate::job_limits::metahost_count(body.count, hosts.len())?;
            Some((label, count))
        }
        None if body.count.is_some() => return Err(ApiError::bad_request("--count needs --label")),
        None => None,
    };
    let limit = |secs: Option<u32>, mins: Option<u32>| -> Result<Option<i64>, ApiError> {
        match secs.map(i64::from).or(mins.map(|m| i64::from(m) * 60)) {
            Some(0) => Err(ApiError::bad_request("a timeout must be more than zero")),
            Some(s) => Ok(Some(s * 1_000_000)),
            None => Ok(None),
        }
    };
    let drone_set = match body.drone_set.filter(|s| !s.is_empty()) {
        Some(set) => Some(
            common::names::DroneSetName::new(set)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
        None => state.config.scheduler.default_drone_set_name.clone(),
    };
    let entries = hosts.len() as u32 + label.as_ref().map_or(0, |(_, n)| *n);
    let synch_count = match body.synch_count {
        None | Some(1) => 1,
        Some(0) => return Err(ApiError::bad_request("--synch-count must be at least 1")),
        Some(n) if n > entries => {
            return Err(ApiError::bad_request(format!(
                "--synch-count {n} is more than the job's {entries} hosts"
            )))
        }
        Some(n) => n as i32,
    };
    let tasks = crate::model::TaskFlags::from_options(
        body.run_verify,
        body.reboot_before.as_deref(),
        body.reboot_after.as_deref(),
    )
    .map_err(ApiError::bad_request)?;
    // A job that names no limit gets Autotest's defaults from `[AUTOTEST_WEB]`.
    let hours = |h: Option<u32>| h.map(|h| i64::from(h) * 3_600_000_000);
    let config = &state.config.scheduler;
    let timeout_us =
        limit(body.timeout_secs, body.timeout_mins)?.or(hours(config.job_timeout_default_hours));
    let max_runtime_us = limit(body.max_runtime_secs, body.max_runtime_mins)?
        .or(hours(config.job_max_runtime_default_hours));
    let job = db::job_create::NewJob {
        drone_set,
        synch_count,
        tasks,
        timeout_us,
        max_runtime_us,
        notify: state.config.notify.enabled(),
        name: body.name,
        owner,
        priority: body.priority,
        control_file: body.control_file,
        hosts,
        label,
        dependencies: {
            let mut deps = label_names(body.dependencies)?;
            deps.sort();
            deps.dedup();
            deps
        },
    };
    // The creator dispatches the job, or wakes the dispatcher when that is left to it.
    let id = state.jobs.create(job).await.map_err(job_refused)?;
    state.timers.notify_one();
    Ok(id)
}

async fn list_drone_sets(
    State(state): State<AppState>,
) -> ApiResult<Vec<crate::api::DroneSetView>> {
    let sets = db::drone_sets::list(&state.db).await?;
    Ok(Json(
        sets.into_iter().map(api_map::drone_set_view).collect(),
    ))
}

async fn create_drone_set(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<crate::api::DroneSetView>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let name = common::names::DroneSetName::new(body.name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if body.drones.is_empty() {
        return Err(ApiError::bad_request(
            "a drone set needs at least one drone",
        ));
    }
    let mut drones = Vec::with_capacity(body.drones.len());
    for drone in body.drones {
        let drone = DroneName::new(drone).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if !drones.contains(&drone) {
            drones.push(drone);
        }
    }
    let set = db::drone_sets::create(&state.db, &name, &drones)
        .await
        .map_err(|e| match e {
            DbError::NotFound(message) => ApiError::bad_request(message),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(api_map::drone_set_view(set))).into_response())
}

async fn show_job(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<crate::api::JobView> {
    let scheduler = &state.config.scheduler;
    let job = db::jobs::show(&state.db, id).await?;
    let tests = db::test_results::of_job(&state.db, id).await?;
    let mut view = api_map::job_view(job, &scheduler.results_host, &scheduler.results_dir);
    api_map::with_tests(&mut view, tests);
    if let Some((place, on)) = db::results_place::place_of(&state.db, id).await? {
        view.results_place = place.as_str().to_string();
        view.results_place_on = on.map(common::time::format_micros);
    }
    Ok(Json(view))
}

/// The caller as the user recorded for what it does (`by` of an abort or a repair).
fn caller_owner(caller: &Caller) -> Result<Owner, ApiError> {
    Owner::new(caller.user()?).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Aborts a job: its owner or an admin. The body's `by` is ignored: the abort is
/// recorded as the caller's.
async fn abort_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<crate::api::AbortJob>,
) -> ApiResult<serde_json::Value> {
    let aborting = abort(&state, &caller, id, body.reason).await?;
    Ok(Json(serde_json::json!({ "id": id, "aborting": aborting })))
}

/// Aborts job `id` as `caller` (its owner or an admin): how many entries were active
/// (and were told to stop).
pub(crate) async fn abort(
    state: &AppState,
    caller: &Caller,
    id: i64,
    reason: Option<String>,
) -> Result<usize, ApiError> {
    let by = caller_owner(caller)?;
    let owner = db::users::job_owner(&state.db, id).await?;
    if owner != by.as_str() && !caller.is_admin() {
        return Err(ApiError::forbidden(format!(
            "job {id} is {owner}'s: only its owner or an admin may abort it"
        )));
    }
    let active = db::jobs::abort(&state.db, id, &by, reason).await?;
    let grace_sec = state.config.scheduler.abort_grace_sec;
    for (attempt, drone) in &active {
        // Recorded already: if this cannot be sent now, the next heartbeat of the
        // drone sends it again.
        if let Err(error) =
            crate::status::send_abort_to(&state.broker, drone, *attempt, grace_sec).await
        {
            tracing::warn!(%error, entry.id = attempt.entry, drone.name = %drone, "abort recorded; telling the drone failed, will retry on its next heartbeat");
        }
    }
    state.wake.notify_one();
    Ok(active.len())
}

fn drone_names(state: &AppState) -> Vec<String> {
    state
        .config
        .scheduler
        .drones
        .iter()
        .map(|d| d.to_string())
        .collect()
}

async fn list_drones(State(state): State<AppState>) -> ApiResult<Vec<crate::api::DroneView>> {
    let alive_since = common::time::now_micros()
        - i64::try_from(state.config.scheduler.drone_timeout_sec).unwrap_or(i64::MAX / 2)
            * 1_000_000;
    let rows = db::drones::list(&state.db, &drone_names(&state), alive_since).await?;
    let mut drones = Vec::with_capacity(rows.len());
    for row in rows {
        let queued = state
            .broker
            .queue_depth(&common::broker::drone_queue(&row.name))
            .await
            .ok();
        drones.push(api_map::drone_view(row, queued));
    }
    Ok(Json(drones))
}

fn known_drone(state: &AppState, name: &str) -> Result<(), ApiError> {
    if drone_names(state).iter().any(|d| d == name) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown drone: {name} (not in [SCHEDULER] drones)"),
        ))
    }
}

async fn enable_drone(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    set_drone_enabled(&state, &caller, &name, true).await?;
    Ok(Json(serde_json::json!({ "name": name, "enabled": true })))
}

async fn disable_drone(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    set_drone_enabled(&state, &caller, &name, false).await?;
    Ok(Json(serde_json::json!({ "name": name, "enabled": false })))
}

/// Enables or disables drone `name` (admins only).
pub(crate) async fn set_drone_enabled(
    state: &AppState,
    caller: &Caller,
    name: &str,
    enabled: bool,
) -> Result<(), ApiError> {
    caller.admin()?;
    known_drone(state, name)?;
    db::drones::set_enabled(&state.db, name, enabled).await?;
    if enabled {
        state.wake.notify_one();
    }
    Ok(())
}

async fn set_capacity(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<SetCapacity>,
) -> ApiResult<serde_json::Value> {
    set_drone_capacity(&state, &caller, &name, body.capacity).await?;
    Ok(Json(
        serde_json::json!({ "name": name, "capacity": body.capacity }),
    ))
}

/// Sets drone `name`'s capacity (admins only; 0 or more).
pub(crate) async fn set_drone_capacity(
    state: &AppState,
    caller: &Caller,
    name: &str,
    capacity: i32,
) -> Result<(), ApiError> {
    caller.admin()?;
    known_drone(state, name)?;
    if capacity < 0 {
        return Err(ApiError::bad_request("capacity must be 0 or more"));
    }
    db::drones::set_capacity(&state.db, name, capacity).await?;
    state.wake.notify_one();
    Ok(())
}

fn label_names(names: Vec<String>) -> Result<Vec<LabelName>, ApiError> {
    names
        .into_iter()
        .map(LabelName::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn list_labels(State(state): State<AppState>) -> ApiResult<Vec<LabelView>> {
    let names = db::hosts::list_labels(&state.db).await?;
    Ok(Json(
        names.into_iter().map(|name| LabelView { name }).collect(),
    ))
}

async fn create_label(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<LabelView>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let name = LabelName::new(body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    db::hosts::create_label(&state.db, &name).await?;
    Ok((
        StatusCode::CREATED,
        Json(LabelView {
            name: name.to_string(),
        }),
    )
        .into_response())
}

fn host_name(name: String) -> Result<HostName, ApiError> {
    HostName::new(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn change_labels(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<ChangeLabels>,
) -> ApiResult<serde_json::Value> {
    caller.user()?;
    let host = host_name(name)?;
    crate::http_acl::may_manage_host(&state.db, &caller, &host).await?;
    let (add, remove) = (label_names(body.add)?, label_names(body.remove)?);
    db::hosts::change_labels(&state.db, &host, &add, &remove).await?;
    state.wake.notify_one();
    Ok(Json(serde_json::json!({ "name": host.to_string() })))
}

async fn lock_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<LockHost>,
) -> ApiResult<serde_json::Value> {
    let host = set_host_locked(&state, &caller, name, true, body.reason).await?;
    Ok(Json(
        serde_json::json!({ "name": host.to_string(), "locked": true }),
    ))
}

/// Locks (with an optional reason) or unlocks host `name` as `caller`: an admin, or a
/// user sharing an ACL group with the host.
pub(crate) async fn set_host_locked(
    state: &AppState,
    caller: &Caller,
    name: String,
    locked: bool,
    reason: Option<String>,
) -> Result<HostName, ApiError> {
    let by = caller.user()?;
    let host = host_name(name)?;
    crate::http_acl::may_manage_host(&state.db, caller, &host).await?;
    db::hosts::set_locked(&state.db, &host, locked, reason, by).await?;
    if !locked {
        state.wake.notify_one();
    }
    Ok(host)
}

/// `atest host repair HOST`: a job that only runs Autoserv's repair on the host, even
/// one whose repair failed (locked for that reason); a repair that passes puts the host
/// back in service.
async fn repair_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(_body): Json<crate::api::AbortJob>,
) -> Result<Response, ApiError> {
    let by = caller_owner(&caller)?;
    let host = host_name(name)?;
    crate::http_acl::may_manage_host(&state.db, &caller, &host).await?;
    let job = db::job_create::NewJob {
        name: format!("repair {host}"),
        owner: by,
        priority: i32::MAX / 2,
        control_file: String::new(),
        hosts: vec![host],
        label: None,
        dependencies: vec![],
        timeout_us: None,
        max_runtime_us: None,
        drone_set: state.config.scheduler.default_drone_set_name.clone(),
        synch_count: 1,
        tasks: crate::model::TaskFlags::REPAIR_ONLY,
        notify: false,
    };
    // An unknown host is 404, as for the other host calls.
    let id = state.jobs.create(job).await.map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(JobCreated { id })).into_response())
}

async fn unlock_host(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<serde_json::Value> {
    let host = set_host_locked(&state, &caller, name, false, None).await?;
    Ok(Json(
        serde_json::json!({ "name": host.to_string(), "locked": false }),
    ))
}
