//! The pages people read in a browser, served by the scheduler beside the API: jobs,
//! hosts, drones and test results. HTML is rendered on the server from the askama
//! templates in `scheduler/templates/` (checked at compile time, every value escaped);
//! `static/app.js` drives only the live parts, so every page reads without JavaScript.
//!
//! Every page passes the same guard as the API ([`crate::auth::caller::guard`]); the
//! [`Viewer`] tells a template who is looking, to show only the buttons they may use.

mod assets;
mod drones;
mod error;
mod format;
mod hosts;
mod job;
mod jobs;
mod live;
mod results;
mod viewer;

pub use error::PageError;
pub use viewer::Viewer;

// Signing in, and the forms that change something.
pub mod actions;
mod job_form;
mod posted;
mod signin;

use crate::http::AppState;
use askama::Template;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// The pages' router. Its answers carry a content security policy that allows only
/// this scheduler's own scripts and styles: a value that escaped escaping still could
/// not run.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/jobs") }))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(job::show))
        .route("/hosts", get(hosts::list))
        .route("/hosts/{name}", get(hosts::show))
        .route("/drones", get(drones::list))
        .route("/results", get(results::grid_page))
        .route("/tests", get(results::tests_page))
        .route("/live/jobs", get(live::jobs))
        .route("/live/log/{entry_id}", get(live::log))
        .route("/static/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .merge(changing())
        .with_state(state)
        .layer(axum::middleware::map_response(secure_headers))
}

/// Signing in and out, and the forms that change something (signed-in browsers only;
/// see [`posted::Posted`]).
fn changing() -> Router<AppState> {
    Router::new()
        .route("/signin", get(signin::form).post(signin::sign_in))
        .route("/signout", post(signin::sign_out))
        .route("/jobs/new", get(job_form::form))
        .route("/jobs/{id}/abort", get(actions::abort_page))
        .route("/ui/jobs", post(job_form::create))
        .route("/ui/jobs/{id}/abort", post(actions::abort_job))
        .route("/ui/hosts/{name}/lock", post(actions::lock_host))
        .route("/ui/hosts/{name}/unlock", post(actions::unlock_host))
        .route("/ui/drones/{name}/enable", post(actions::enable_drone))
        .route("/ui/drones/{name}/disable", post(actions::disable_drone))
        .route("/ui/drones/{name}/capacity", post(actions::drone_capacity))
}

async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // A page may carry the viewer's anti-forgery token: no cache keeps it.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Renders a page template, or the error page when the template fails.
pub fn render(page: &impl Template) -> Result<Response, PageError> {
    let html = page.render().map_err(PageError::template)?;
    Ok(Html(html).into_response())
}
