//! `/api/whoami`, `/api/users` and `/api/tokens`: who the caller is, users (admins
//! only), and the caller's own tokens (every user's for an admin).

use super::{token, AuthState, Caller};
use crate::db::users::{self, TokenRow, UserRow};
use crate::http_error::ApiError;
use api::auth::{CreateUser, TokenCreated, TokenView, UserCreated, UserView, WhoAmI};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::names::UserName;
use common::time::format_micros;

/// The routes, to merge into the API's router.
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/whoami", get(whoami))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}/revoke", post(revoke_token))
        .with_state(state)
}

fn user_view(user: UserRow) -> UserView {
    UserView {
        name: user.name,
        admin: user.admin,
        created: format_micros(user.created),
        acl_groups: Vec::new(),
    }
}

fn token_view(token: TokenRow) -> TokenView {
    TokenView {
        id: token.id,
        user: token.user,
        created: format_micros(token.created),
        revoked: token.revoked.map(format_micros),
    }
}

async fn whoami(caller: Caller) -> Result<Json<WhoAmI>, ApiError> {
    let name = caller.user()?;
    Ok(Json(WhoAmI {
        name: name.to_string(),
        admin: caller.is_admin(),
    }))
}

async fn list_users(
    State(state): State<AuthState>,
    caller: Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    caller.admin()?;
    let rows = users::list(&state.db).await?;
    let mut groups = crate::db::acl::groups_by_user(&state.db).await?;
    let view = |user: UserRow| UserView {
        acl_groups: groups.remove(&user.name).unwrap_or_default(),
        ..user_view(user)
    };
    Ok(Json(rows.into_iter().map(view).collect()))
}

async fn create_user(
    State(state): State<AuthState>,
    caller: Caller,
    Json(body): Json<CreateUser>,
) -> Result<Response, ApiError> {
    caller.admin()?;
    let name = UserName::new(body.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let new = token::generate();
    let (user, row) = users::create(&state.db, &name, body.admin, &new.hash).await?;
    tracing::info!(user = %name, admin = body.admin, by = caller.name(), "user created");
    let acl_groups = crate::db::acl::groups_by_user(&state.db)
        .await?
        .remove(&user.name)
        .unwrap_or_default();
    let created = UserCreated {
        user: UserView {
            acl_groups,
            ..user_view(user)
        },
        token: TokenCreated {
            id: row.id,
            token: new.secret,
        },
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_tokens(
    State(state): State<AuthState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.user()?;
    let whose = if caller.is_admin() { None } else { caller.id() };
    let rows = users::tokens(&state.db, whose).await?;
    Ok(Json(rows.into_iter().map(token_view).collect()))
}

async fn create_token(
    State(state): State<AuthState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.user()?;
    let user = users::by_name(&state.db, caller.user()?)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the caller's user no longer exists"))?;
    let new = token::generate();
    let row = users::create_token(&state.db, &user, &new.hash).await?;
    let created = TokenCreated {
        id: row.id,
        token: new.secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn revoke_token(
    State(state): State<AuthState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<TokenView>, ApiError> {
    let name = caller.user()?.to_string();
    let admin = caller.is_admin();
    let own = caller.id();
    let revoked =
        users::revoke_token(&state.db, id, move |owner| admin || Some(owner) == own).await?;
    match revoked {
        Some(row) => Ok(Json(token_view(row))),
        None => Err(ApiError::forbidden(format!(
            "token {id} is not one of user {name}'s; only an admin may revoke another user's token"
        ))),
    }
}
