//! `POST /api/jobs/{id}/archive` and `POST /api/jobs/{id}/purge` (admins only): a
//! finished job's results moved to the archive, or removed from the results host, at
//! once (see [`crate::retention`]).

use crate::api::ResultsMoved;
use crate::auth::caller::Caller;
use crate::http_error::ApiError;
use crate::retention::rules::Action;
use crate::retention::{Keeper, RetentionError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

pub async fn archive_job(
    State(keeper): State<Arc<Keeper>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<ResultsMoved>, ApiError> {
    act(&keeper, &caller, id, Action::Archive).await
}

pub async fn purge_job(
    State(keeper): State<Arc<Keeper>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<ResultsMoved>, ApiError> {
    act(&keeper, &caller, id, Action::Purge).await
}

async fn act(
    keeper: &Keeper,
    caller: &Caller,
    id: i64,
    action: Action,
) -> Result<Json<ResultsMoved>, ApiError> {
    let by = caller.admin()?.to_string();
    let place = keeper
        .act_now(id, action)
        .await
        .map_err(|error| match error {
            RetentionError::Db(db) => ApiError::from(db),
            RetentionError::NotFinished { .. }
            | RetentionError::NotHere(_)
            | RetentionError::Already { .. } => {
                ApiError::new(StatusCode::CONFLICT, error.to_string())
            }
            RetentionError::Transfer(why) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("job {id}'s results stay on the results host: {why}"),
            ),
        })?;
    tracing::info!(job.id = id, %by, place = place.as_str(), "job results moved at an admin's request");
    Ok(Json(ResultsMoved {
        id,
        results_place: place.as_str().to_string(),
    }))
}
