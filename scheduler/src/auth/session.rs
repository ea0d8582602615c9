//! Signed-in browsers: a session made from an API token at `/signin`, carried by the
//! `autotest_session` cookie (`HttpOnly`, `SameSite=Strict`), and the rules of what the
//! cookie may do. It names the caller only for reading pages and results, and for the
//! form endpoints (`POST /ui/...`, `POST /signout`), whose handlers also check the
//! form's anti-forgery token. It never authorizes an API call: those need a bearer token
//! or the trusted proxy's header.

use super::token;
use crate::db::sessions::{self, NewSession};
use crate::db::users::UserRow;
use crate::db::{Db, DbError};
use axum::http::{header, HeaderMap, Method};

/// The session cookie's name.
pub const COOKIE: &str = "autotest_session";

/// The longest `next` path a sign-in redirects to.
const MAX_NEXT: usize = 2048;

/// The session a request came with: its stored hash (to sign out) and its anti-forgery
/// token (which the forms carry).
#[derive(Clone)]
pub struct Session {
    pub hash: String,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Whether the session cookie may name the caller of `method` on `path`: reads of
/// anything but the API, and posts to the form endpoints.
pub fn cookie_counts(method: &Method, path: &str) -> bool {
    if path == "/api" || path.starts_with("/api/") {
        return false;
    }
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    method == Method::POST && is_form_endpoint(path)
}

/// The endpoints browsers post forms to: `/ui/...` and `/signout`.
pub fn is_form_endpoint(path: &str) -> bool {
    path.starts_with("/ui/") || path == "/signout"
}

/// The session cookie's value, if the request has one that looks like a secret.
pub fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that keeps `secret` for `hours` (`Secure` over HTTPS).
pub fn set_cookie(secret: &str, secure: bool, hours: u32) -> String {
    let max_age = u64::from(hours) * 3600;
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// Whether two secrets are equal, in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `next` if it is a path on this site (`/jobs?x=1`), not a link to another one
/// (`//evil`, `/\evil`, `https://evil`), nor back to the sign-in page.
pub fn safe_next(next: &str) -> Option<&str> {
    let fine = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= MAX_NEXT
        && next.bytes().all(|b| b.is_ascii_graphic())
        && !next.starts_with("/signin");
    fine.then_some(next)
}

/// Whether a browser's post comes from a page of this site: its `Origin` header, if
/// any, names the host the request is for. (Non-browser clients send no `Origin`.)
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => origin_host.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// A new session for the holder of API token `token_secret`, lasting `hours`: its
/// user and cookie secret. None when the token is unknown or revoked.
pub async fn start(
    db: &Db,
    token_secret: &str,
    hours: u32,
) -> Result<Option<(UserRow, String)>, DbError> {
    let Some((user, token_id)) = sessions::token_user(db, &token::hash(token_secret)).await? else {
        return Ok(None);
    };
    let secret = token::random_hex();
    let csrf = token::random_hex();
    let created = common::time::now_micros();
    let session = NewSession {
        hash: &token::hash(&secret),
        user_id: user.id,
        token_id,
        csrf: &csrf,
        created,
        expires: created + i64::from(hours) * 3600 * 1_000_000,
    };
    sessions::create(db, &session).await?;
    Ok(Some((user, secret)))
}

/// The user and session of a cookie's `secret`, if the session is valid now.
pub async fn lookup(db: &Db, secret: &str) -> Result<Option<(UserRow, Session)>, DbError> {
    let hash = token::hash(secret);
    let found = sessions::find(db, &hash, common::time::now_micros()).await?;
    Ok(found.map(|row| {
        (
            row.user,
            Session {
                hash,
                csrf: row.csrf,
            },
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_counts_for_reads_and_form_posts_never_for_the_api() {
        assert!(cookie_counts(&Method::GET, "/jobs"));
        assert!(cookie_counts(&Method::HEAD, "/results/1-a/x"));
        assert!(cookie_counts(&Method::POST, "/ui/jobs"));
        assert!(cookie_counts(&Method::POST, "/signout"));
        assert!(!cookie_counts(&Method::GET, "/api/jobs"));
        assert!(!cookie_counts(&Method::POST, "/api/jobs"));
        assert!(!cookie_counts(&Method::POST, "/api/jobs/1/abort"));
        assert!(!cookie_counts(&Method::POST, "/jobs"));
        assert!(!cookie_counts(&Method::DELETE, "/ui/jobs"));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_must_look_like_a_secret() {
        let secret = "ab".repeat(32);
        let mut headers = HeaderMap::new();
        let value = format!("theme=dark; {COOKIE}={secret}; x=1");
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert_eq!(cookie_secret(&headers), Some(secret.as_str()));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("autotest_session=short"),
        );
        assert_eq!(cookie_secret(&headers), None);
        assert_eq!(cookie_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_strict() {
        let set = set_cookie("abc", false, 12);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.contains("Path=/") && set.contains("Max-Age=43200"));
        assert!(!set.contains("Secure"));
        assert!(set_cookie("abc", true, 1).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/jobs/3?x=1"), Some("/jobs/3?x=1"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "jobs",
            "/signin?next=/x",
            "/a b",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_post_from_another_site_is_told_apart() {
        let mut headers = HeaderMap::new();
        assert!(
            same_origin(&headers),
            "no Origin: not a browser's cross-site post"
        );
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }
}
