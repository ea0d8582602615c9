//! A form posted by a signed-in browser: the [`Posted`] extractor admits it only with
//! the session's anti-forgery token in its `csrf` field, and [`Posted::back`] answers
//! it with a redirect to the page the form was on.

use crate::auth::session::{self, safe_next};
use crate::auth::{AuthState, Caller};
use crate::pages::PageError;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The largest form read: a control file of the API's largest size, percent-encoded.
const MAX_FORM_BYTES: usize = 4 * crate::http::MAX_CONTROL_FILE_BYTES;

/// A form `T` posted by `caller`, a signed-in session whose anti-forgery token the
/// form carried.
pub struct Posted<T> {
    pub caller: Caller,
    pub form: T,
    /// The page the form was on (its `Referer`, when on this site).
    from: Option<String>,
}

#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

impl<T> Posted<T> {
    /// A 303 back to the page the form was on, else to `otherwise`.
    pub fn back(&self, otherwise: &str) -> Response {
        Redirect::to(self.from.as_deref().unwrap_or(otherwise)).into_response()
    }
}

/// The path (and query) of the `Referer`, if it is a page of the site the request is for.
fn referring_page(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let (_, rest) = referer.split_once("://")?;
    let (referer_host, path) = rest.split_at(rest.find('/')?);
    if !referer_host.eq_ignore_ascii_case(host) {
        return None;
    }
    safe_next(path).map(str::to_owned)
}

fn bad_form(error: serde_urlencoded::de::Error) -> PageError {
    PageError::new(
        StatusCode::BAD_REQUEST,
        format!("the form could not be read: {error}"),
    )
}

impl<S, T> FromRequest<S> for Posted<T>
where
    T: DeserializeOwned,
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let Some(expected) = caller.csrf() else {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "forms are for a signed-in browser: sign in at /signin",
            ));
        };
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the form is larger than {MAX_FORM_BYTES} bytes"),
                )
            })?;
        let Csrf { csrf } = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        if !session::same_secret(&csrf, expected) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "the form's anti-forgery token is not this session's: reload the page and \
                 try again",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        Ok(Self {
            caller,
            form,
            from: referring_page(&parts.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn back_goes_only_to_a_page_of_this_site() {
        let headers = |referer: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            h.insert(header::REFERER, HeaderValue::from_static(referer));
            h
        };
        assert_eq!(
            referring_page(&headers("http://127.0.0.1:8080/hosts?x=1")).as_deref(),
            Some("/hosts?x=1")
        );
        assert_eq!(referring_page(&headers("http://evil.example/hosts")), None);
        assert_eq!(
            referring_page(&headers("http://127.0.0.1:8080//evil")),
            None
        );
        assert_eq!(referring_page(&HeaderMap::new()), None);
    }
}
