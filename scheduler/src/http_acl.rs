//! `/api/acls`: ACL groups (Autotest's), which decide who may run jobs on which hosts.
//! Anyone who may read lists them; only admins create them or change their members.
//! Names are validated here; a request naming an unknown user or host is refused
//! whole, naming them, and changes nothing.

use crate::auth::AuthState;
use crate::auth::Caller;
use crate::db::acl::{AclRow, Members};
use crate::db::{self, Db};
use crate::http_error::ApiError;
use api::auth::{AclMembers, AclView};
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::names::{HostName, UserName};
use std::sync::Arc;
use tokio::sync::Notify;

/// The longest ACL group name.
const MAX_NAME: usize = 128;

/// What the ACL handlers need of the scheduler (taken from the API's state).
#[derive(Clone)]
pub struct AclState {
    pub db: Db,
    /// Wakes the dispatcher: a member added may make queued entries startable.
    pub wake: Arc<Notify>,
    pub auth: AuthState,
}

impl FromRef<AclState> for AuthState {
    fn from_ref(state: &AclState) -> Self {
        state.auth.clone()
    }
}

/// The routes of `/api/acls`, to merge into the API's router.
pub fn router(state: AclState) -> Router {
    Router::new()
        .route("/api/acls", get(list).post(create))
        .route("/api/acls/{name}/add", post(add))
        .route("/api/acls/{name}/remove", post(remove))
        .with_state(state)
}

/// An ACL group's name: letters, digits, `-`, `_`, `.` and spaces, starting with a
/// letter or a digit, at most 128 bytes.
pub fn group_name(name: &str) -> Result<&str, ApiError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c));
    if fine {
        Ok(name)
    } else {
        Err(ApiError::bad_request(format!(
            "invalid ACL group name {name:?}: 1 to {MAX_NAME} letters, digits, '-', '_', '.' \
             or spaces, starting with a letter or a digit"
        )))
    }
}

/// Users and hosts named in a request, validated.
fn members(users: Vec<String>, hosts: Vec<String>) -> Result<Members, ApiError> {
    let bad = |e: common::names::InvalidName| ApiError::bad_request(e.to_string());
    let mut members = Members::default();
    for user in users {
        members.users.push(UserName::new(user).map_err(bad)?.into());
    }
    for host in hosts {
        members.hosts.push(HostName::new(host).map_err(bad)?.into());
    }
    Ok(members)
}

/// Host-level rights (lock, unlock, repair, labels): an admin, or a user sharing an
/// ACL group with the host; 403 otherwise, 404 for an unknown host.
pub async fn may_manage_host(db: &Db, caller: &Caller, host: &HostName) -> Result<(), ApiError> {
    let user = caller.user()?;
    if caller.is_admin() || db::acl::shares_group(db, user, host.as_str()).await? {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "user {user} shares no ACL group with host {host}: only such a user or an admin \
         may lock, unlock, repair or relabel it"
    )))
}

fn view(row: AclRow) -> AclView {
    AclView {
        name: row.name,
        users: row.users,
        hosts: row.hosts,
    }
}

async fn list(State(state): State<AclState>) -> Result<Json<Vec<AclView>>, ApiError> {
    let rows = db::acl::list(&state.db).await?;
    Ok(Json(rows.into_iter().map(view).collect()))
}

async fn create(
    State(state): State<AclState>,
    caller: Caller,
    Json(body): Json<AclView>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let name = group_name(&body.name)?.to_string();
    let members = members(body.users, body.hosts)?;
    let row = db::acl::create(&state.db, &name, None, &members).await?;
    Ok((StatusCode::CREATED, Json(view(row))).into_response())
}

async fn add(
    State(state): State<AclState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<AclMembers>,
) -> Result<Json<AclView>, ApiError> {
    caller.admin()?;
    let members = members(body.users, body.hosts)?;
    let row = db::acl::add(&state.db, group_name(&name)?, &members).await?;
    state.wake.notify_one();
    Ok(Json(view(row)))
}

async fn remove(
    State(state): State<AclState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<AclMembers>,
) -> Result<Json<AclView>, ApiError> {
    caller.admin()?;
    let members = members(body.users, body.hosts)?;
    let row = db::acl::remove(&state.db, group_name(&name)?, &members).await?;
    Ok(Json(view(row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_name_is_plain_text_of_bounded_length() {
        assert!(group_name("Everyone").is_ok());
        assert!(group_name("lab 3.x_86-team").is_ok());
        for bad in ["", " lab", "../x", "a/b", "a\nb", &"a".repeat(129)] {
            let refused = group_name(bad).expect_err(bad);
            assert_eq!(refused.0, StatusCode::BAD_REQUEST);
        }
    }
}
