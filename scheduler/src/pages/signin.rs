//! Signing in and out: `/signin` takes an API token and starts a session (a cookie
//! that is `HttpOnly` and `SameSite=Strict`); `POST /signout` ends it.

use super::posted::Posted;
use super::{render, PageError, Viewer};
use crate::auth::session::{self, safe_next};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// Where a sign-in goes without a `next`.
const HOME: &str = "/jobs";

/// The longest token looked at.
const MAX_TOKEN: usize = 512;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    viewer: Viewer,
    /// Where to go after signing in (a path on this site), kept in a hidden field.
    next: String,
    /// Why the last attempt failed.
    message: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

fn next_or_home(next: &str) -> String {
    safe_next(next).unwrap_or(HOME).to_string()
}

/// `GET /signin`: the form.
pub async fn form(viewer: Viewer, Query(query): Query<NextQuery>) -> Result<Response, PageError> {
    render(&SignInPage {
        viewer,
        next: next_or_home(&query.next),
        message: None,
    })
}

/// `POST /signin`: a valid token starts a session and goes on to `next`; anything else
/// shows the form again with a 401.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Result<Response, PageError> {
    let next = next_or_home(&form.next);
    let token = form.token.trim();
    let readable = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    let hours = state.config.auth.session_hours;
    let started = if readable {
        session::start(&state.db, token, hours).await?
    } else {
        None
    };
    let Some((user, secret)) = started else {
        let page = SignInPage {
            viewer: Viewer::default(),
            next,
            message: Some(
                "That token is unknown or revoked. Paste a whole token (atk_...), as \
                 `autotest-scheduler add-user` or `atest token create` printed it."
                    .into(),
            ),
        };
        let mut response = render(&page)?;
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    // A session this browser had before ends: it now holds the new one only.
    if let Some(old) = session::cookie_secret(&headers) {
        crate::db::sessions::delete(&state.db, &crate::auth::token::hash(old)).await?;
    }
    tracing::info!(user = %user.name, "signed in");
    let secure = state.config.scheduler.tls.is_some();
    let cookie = session::set_cookie(&secret, secure, hours);
    Ok(with_cookie(Redirect::to(&next).into_response(), &cookie))
}

#[derive(Deserialize)]
pub struct SignOutForm {}

/// `POST /signout`: ends the session (the form carries its anti-forgery token).
pub async fn sign_out(
    State(state): State<AppState>,
    posted: Posted<SignOutForm>,
) -> Result<Response, PageError> {
    if let Some(session) = posted.caller.session() {
        crate::db::sessions::delete(&state.db, &session.hash).await?;
    }
    tracing::info!(user = posted.caller.name(), "signed out");
    let secure = state.config.scheduler.tls.is_some();
    let cookie = session::clear_cookie(secure);
    Ok(with_cookie(
        Redirect::to("/signin").into_response(),
        &cookie,
    ))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
