//! Who is calling: the [`Caller`] extractor, and the guard every request passes before
//! its handler (the `Host` check against DNS rebinding, the token or the session cookie,
//! and the rule that changes are never anonymous).

use super::session::{self, Session};
use super::token;
use super::AuthState;
use crate::db::users::UserRow;
use crate::http_error::ApiError;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use common::config::AuthConfig;
use std::net::SocketAddr;

/// The user a request comes from, or nobody (an anonymous read).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    user: Option<UserRow>,
    /// The signed-in browser's session, when the session cookie named the caller.
    session: Option<Session>,
}

impl Caller {
    /// Nobody.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The caller's user name; None when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.name.as_str())
    }

    /// The caller's user id in the database; None when anonymous.
    pub fn id(&self) -> Option<i64> {
        self.user.as_ref().map(|u| u.id)
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.admin)
    }

    /// The session the caller is signed in with; None for a token, the proxy, or nobody.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The anti-forgery token the caller's forms must carry (the session's).
    pub fn csrf(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.csrf.as_str())
    }

    /// The caller's name, or 401 when anonymous.
    pub fn user(&self) -> Result<&str, ApiError> {
        self.name().ok_or_else(|| {
            ApiError::unauthorized("this needs a token (Authorization: Bearer TOKEN)")
        })
    }

    /// The caller's name if an admin: 401 when anonymous, 403 otherwise.
    pub fn admin(&self) -> Result<&str, ApiError> {
        let name = self.user()?;
        if self.is_admin() {
            Ok(name)
        } else {
            Err(ApiError::forbidden(format!(
                "only an admin may do this, and user {name} is not one"
            )))
        }
    }
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower case.
fn host_part(value: &str) -> String {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match value.rsplit_once(':') {
            Some((host, port))
                if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                host
            }
            _ => value,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a request with this `Host` header is for this scheduler (one of
/// `[SCHEDULER] public_names`): a page on another site that resolves its own name to
/// this address (DNS rebinding) sends its own name, and is refused.
pub fn host_allowed(host: Option<&[u8]>, public_names: &[String]) -> Result<(), ApiError> {
    let refused = |what: String| {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "{what}; this scheduler answers to {} ([SCHEDULER] public_names)",
                public_names.join(", ")
            ),
        )
    };
    let Some(host) = host else {
        return Err(refused("the request has no Host header".into()));
    };
    let host = host_part(&String::from_utf8_lossy(host));
    if public_names.contains(&host) {
        Ok(())
    } else {
        Err(refused(format!("the request is for host {host:?}")))
    }
}

/// Whether a caller may pass the guard at all (the handler then checks its own right):
/// changes need a user; reads need one unless `anonymous_read` (the health check, the
/// sign-in page and the pages' stylesheet and script excepted, which tell nothing about
/// jobs). Signing in is open: it carries its own token.
pub fn admitted(
    method: &Method,
    path: &str,
    anonymous: bool,
    anonymous_read: bool,
) -> Result<(), ApiError> {
    if !anonymous || path == "/signin" {
        return Ok(());
    }
    let read = method == Method::GET || method == Method::HEAD;
    if read && (path.starts_with("/static/") || path == "/favicon.ico") {
        return Ok(());
    }
    if !read {
        return Err(ApiError::unauthorized(
            "changes need a token (Authorization: Bearer TOKEN)",
        ));
    }
    if !anonymous_read && path != "/api/health" {
        return Err(ApiError::unauthorized(
            "this scheduler needs a token for every request ([AUTH] anonymous_read is false)",
        ));
    }
    Ok(())
}

/// The caller a request's headers name: a bearer token, else (where it counts, see
/// [`session::cookie_counts`]) a valid session cookie, else (from a trusted proxy only)
/// the proxy's user header, else nobody. An expired or unknown session is nobody. A bad
/// or revoked token is a 401 even where an anonymous read would do, so a caller learns
/// its token is wrong.
async fn identify(parts: &Parts, state: &AuthState) -> Result<Caller, ApiError> {
    let auth: &AuthConfig = &state.config.auth;
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let secret = token::parse_bearer(value.as_bytes()).map_err(ApiError::unauthorized)?;
        let user = crate::db::users::by_token_hash(&state.db, &token::hash(secret)).await?;
        return match user {
            Some(user) => Ok(Caller {
                user: Some(user),
                session: None,
            }),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        };
    }
    if session::cookie_counts(&parts.method, parts.uri.path()) {
        if let Some(secret) = session::cookie_secret(&parts.headers) {
            if let Some((user, session)) = session::lookup(&state.db, secret).await? {
                return Ok(Caller {
                    user: Some(user),
                    session: Some(session),
                });
            }
        }
    }
    let Some(header_name) = &auth.trusted_proxy_header else {
        return Ok(Caller::anonymous());
    };
    let Some(value) = parts.headers.get(header_name.as_str()) else {
        return Ok(Caller::anonymous());
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if !peer.is_some_and(|ip| auth.trusted_proxies.contains(&ip.to_canonical())) {
        tracing::debug!(peer = ?peer, header = %header_name, "user header from an untrusted address ignored");
        return Ok(Caller::anonymous());
    }
    let name = value
        .to_str()
        .map_err(|_| ApiError::unauthorized(format!("the {header_name} header is not text")))?
        .trim();
    match crate::db::users::by_name(&state.db, name).await? {
        Some(user) => Ok(Caller {
            user: Some(user),
            session: None,
        }),
        None => Err(ApiError::unauthorized(format!(
            "the proxy names user {name:?}, who does not exist (autotest-scheduler add-user creates users)"
        ))),
    }
}

/// Everything a request must pass before its handler: the [`host_allowed`] check, the
/// caller's identity, and [`admitted`].
async fn admit(parts: &Parts, state: &AuthState) -> Result<Caller, ApiError> {
    host_allowed(
        parts.headers.get(header::HOST).map(|v| v.as_bytes()),
        &state.config.auth.public_names,
    )?;
    let path = parts.uri.path();
    let browser_post = session::is_form_endpoint(path) || path == "/signin";
    if parts.method == Method::POST && browser_post && !session::same_origin(&parts.headers) {
        return Err(ApiError::forbidden(
            "a form posted from another site's page is refused",
        ));
    }
    let caller = identify(parts, state).await?;
    admitted(
        &parts.method,
        parts.uri.path(),
        caller.name().is_none(),
        state.config.auth.anonymous_read,
    )?;
    Ok(caller)
}

/// The guard, as a middleware over the whole router: it admits the request and leaves
/// the [`Caller`] for the handler.
pub async fn guard(State(state): State<AuthState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match admit(&parts, &state).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(error) => match signin_first(&parts, &error) {
            Some(redirect) => redirect,
            None => error.into_response(),
        },
    }
}

/// A browser refused for want of a user is sent to sign in: a page read (a result
/// file too) comes back to the page afterwards; a form posted after the session ended
/// starts over. Only what asks for HTML is a browser: API calls and tools (`atest`,
/// curl, a Prometheus scrape of `/metrics`) get the 401.
fn signin_first(parts: &Parts, error: &ApiError) -> Option<Response> {
    let path = parts.uri.path();
    let api = path == "/api" || path.starts_with("/api/");
    let wants_page = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if error.0 != StatusCode::UNAUTHORIZED
        || api
        || !wants_page
        || parts.headers.contains_key(header::AUTHORIZATION)
    {
        return None;
    }
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let next = parts.uri.path_and_query().map_or(path, |p| p.as_str());
        let to = format!("/signin?next={}", query_escape(next));
        return Some(Redirect::to(&to).into_response());
    }
    session::is_form_endpoint(path).then(|| Redirect::to("/signin").into_response())
}

/// `text` as a URL query value: every byte but letters, digits, `-._~/` percent-encoded.
fn query_escape(text: &str) -> String {
    use std::fmt::Write;
    text.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

impl<S> FromRequestParts<S> for Caller
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            // A route outside the guard: admitted here instead.
            None => admit(parts, &AuthState::from_ref(state)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["127.0.0.1", "localhost", "::1", "autotest.lab"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn host_header_must_be_a_public_name_whatever_the_port() {
        for ok in [
            "127.0.0.1:13467",
            "localhost",
            "LOCALHOST:80",
            "[::1]:8080",
            "autotest.lab.",
            "autotest.lab:1",
        ] {
            assert!(host_allowed(Some(ok.as_bytes()), &names()).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:13467",
            "127.0.0.2:13467",
            "autotest.lab.evil",
            "",
        ] {
            let error = host_allowed(Some(bad.as_bytes()), &names()).unwrap_err();
            assert_eq!(error.0, StatusCode::MISDIRECTED_REQUEST, "{bad}");
        }
        assert!(host_allowed(None, &names()).is_err());
    }

    #[test]
    fn changes_are_never_anonymous_and_reads_only_when_allowed() {
        let code = |m: Method, path: &str, anonymous: bool, reads: bool| {
            admitted(&m, path, anonymous, reads).err().map(|e| e.0)
        };
        assert_eq!(code(Method::GET, "/api/jobs", true, true), None);
        assert_eq!(code(Method::GET, "/results/1-a/x", true, true), None);
        assert_eq!(
            code(Method::POST, "/api/jobs", true, true),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(Method::DELETE, "/api/jobs/1", true, true),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(Method::GET, "/api/jobs", true, false),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(Method::GET, "/results/1-a/x", true, false),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(code(Method::GET, "/api/health", true, false), None);
        assert_eq!(code(Method::POST, "/api/jobs", false, false), None);
        assert_eq!(code(Method::GET, "/signin", true, false), None);
        assert_eq!(code(Method::POST, "/signin", true, false), None);
        assert_eq!(code(Method::GET, "/static/app.css", true, false), None);
        assert_eq!(
            code(Method::POST, "/ui/jobs", true, true),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(Method::GET, "/jobs", true, false),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn a_next_path_is_escaped_for_the_query() {
        assert_eq!(
            query_escape("/jobs/3?a=1&b=x y"),
            "/jobs/3%3Fa%3D1%26b%3Dx%20y"
        );
    }

    #[test]
    fn rights_of_a_caller() {
        let user = |admin| Caller {
            user: Some(UserRow {
                id: 1,
                name: "ann".into(),
                admin,
                created: 0,
            }),
            session: None,
        };
        assert_eq!(
            Caller::anonymous().user().err().map(|e| e.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            Caller::anonymous().admin().err().map(|e| e.0),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(user(false).user().ok(), Some("ann"));
        assert_eq!(
            user(false).admin().err().map(|e| e.0),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(user(true).admin().ok(), Some("ann"));
        assert!(!Caller::anonymous().is_admin());
    }
}
