//! `GET /results/<job_id>-<owner>/<subdir>/<path>` (Autotest's retrieve_logs): from the
//! results host's directory when the file is there (this scheduler must see that
//! directory: `results_host` localhost); otherwise a temporary redirect to the drone
//! that ran the entry, when it still serves that path (results not pushed yet, or
//! kept there); otherwise to `[SCHEDULER] archive_host`. A job whose results were
//! archived goes to `archive_host` at once; one whose results were removed is 410 Gone. Hostile paths are refused the
//! same way everywhere (see [`common::results_http`]).

use crate::db::Db;
use crate::http_error::ApiError;
use crate::model::ResultsPlace as Place;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use common::config::{Config, ResultsHost};
use common::results_http;
use std::sync::Arc;
use std::time::Duration;

/// What serving results needs of the scheduler.
#[derive(Clone)]
pub struct ResultsState {
    pub db: Db,
    pub config: Arc<Config>,
}

/// How long the scheduler waits for a drone to say whether it has a path: long
/// enough for a busy drone, short enough for a reader waiting on a silent one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The handler.
pub async fn serve(
    State(state): State<ResultsState>,
    Path(requested): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let scheduler = &state.config.scheduler;
    let relative =
        results_http::check(&requested).map_err(|(code, message)| ApiError::new(code, message))?;
    let not_here = match &scheduler.results_host {
        ResultsHost::Local => {
            match results_http::serve_for(&scheduler.results_dir, &requested, &headers).await {
                Ok(response) => return Ok(response),
                Err((StatusCode::NOT_FOUND, _)) => "not on the results host".to_string(),
                Err((code, message)) => return Err(ApiError::new(code, message)),
            }
        }
        ResultsHost::Remote(host) => format!(
            "the results host {host}:{} is not this machine",
            scheduler.results_dir.display()
        ),
    };
    let path = results_http::encode(&relative);
    let archive = scheduler
        .archive_url
        .as_ref()
        .map(|archive| format!("{}/results/{path}", archive.trim_end_matches('/')));
    // Results moved off the results host: no drone is asked.
    if let Some(job_id) = job_of(&relative) {
        match crate::db::results_place::place_of(&state.db, job_id).await? {
            Some((Place::Archived, on)) => {
                return match &archive {
                    Some(url) => Ok(Redirect::temporary(url).into_response()),
                    None => Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("job {job_id}'s results were archived{} and no [SCHEDULER] archive_host says where readers find them", since(on)),
                    )),
                };
            }
            Some((Place::Removed, on)) => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    format!("job {job_id}'s results were removed{}", since(on)),
                ))
            }
            _ => {}
        }
    }
    for (name, base) in drones_of(&state, &relative).await? {
        let url = format!("{}/results/{path}", base.trim_end_matches('/'));
        if has(&url, scheduler.drone_ca.as_ref().map(|c| c.path.as_path())).await {
            tracing::debug!(drone = %name, %url, "results served by the drone");
            return Ok(Redirect::temporary(&url).into_response());
        }
    }
    if let Some(url) = &archive {
        return Ok(Redirect::temporary(url).into_response());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no results at {requested}: {not_here}, not on the drone that ran it, and no [SCHEDULER] archive_host"),
    ))
}

/// ` on <when>`, when known.
fn since(on: Option<i64>) -> String {
    on.map(|on| format!(" on {}", common::time::format_micros(on)))
        .unwrap_or_default()
}

/// The job a results path `<job_id>-<owner>/...` belongs to.
fn job_of(relative: &std::path::Path) -> Option<i64> {
    let tag = relative.iter().next()?.to_string_lossy().into_owned();
    tag.split_once('-')?.0.parse().ok()
}

/// The drones that may hold what `relative` names (see
/// [`crate::db::drones::results_urls_of`]), and where they serve results.
async fn drones_of(
    state: &ResultsState,
    relative: &std::path::Path,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut parts = relative.iter().map(|p| p.to_string_lossy());
    let (Some(_), Some(subdir)) = (parts.next(), parts.next()) else {
        return Ok(Vec::new());
    };
    let Some(job_id) = job_of(relative) else {
        return Ok(Vec::new());
    };
    // A lost attempt's results are set aside as `<subdir>.attempt-N`.
    let subdir = match subdir.rsplit_once(".attempt-") {
        Some((base, n)) if n.parse::<u32>().is_ok() => base.to_string(),
        _ => subdir.to_string(),
    };
    Ok(crate::db::drones::results_urls_of(&state.db, job_id, &subdir).await?)
}

/// Whether a drone answers `url` (HEAD) with success, within [`PROBE_TIMEOUT`]; an
/// `https://` drone is trusted through `ca_file` (`[SCHEDULER] drone_ca_file`), else
/// the public roots.
async fn has(url: &str, ca_file: Option<&std::path::Path>) -> bool {
    let url = url.to_string();
    let ca_file = ca_file.map(std::path::Path::to_path_buf);
    tokio::task::spawn_blocking(
        move || match drone_agent(ca_file.as_deref(), PROBE_TIMEOUT) {
            Ok(agent) => agent
                .head(&url)
                .call()
                .is_ok_and(|answer| answer.status().is_success()),
            Err(error) => {
                tracing::warn!(%error, "[SCHEDULER] drone_ca_file");
                false
            }
        },
    )
    .await
    .unwrap_or(false)
}

/// An HTTP client for drones' results servers, answering within `timeout`: an
/// `https://` drone is trusted through `ca_file` (`[SCHEDULER] drone_ca_file`), else
/// the public roots. Error statuses are answers, not errors.
pub fn drone_agent(
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<ureq::Agent, String> {
    let tls = match ca_file.map(api::tls::trusting) {
        None => ureq::tls::TlsConfig::default(),
        Some(Ok(tls)) => tls,
        Some(Err(error)) => return Err(error.to_string()),
    };
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .tls_config(tls)
        .build();
    Ok(ureq::Agent::new_with_config(config))
}
