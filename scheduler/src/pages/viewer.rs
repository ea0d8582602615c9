//! Who is looking at a page: what the templates need to know of the caller.

use crate::auth::{AuthState, Caller};
use crate::pages::PageError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

/// The caller as the templates see it.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The signed-in user's name; None for an anonymous reader.
    pub name: Option<String>,
    pub admin: bool,
    /// The anti-forgery token every form that changes something carries (the
    /// signed-in session's); None when nobody is signed in.
    pub csrf: Option<String>,
}

impl Viewer {
    pub fn from_caller(caller: &Caller) -> Self {
        Self {
            name: caller.name().map(str::to_owned),
            admin: caller.is_admin(),
            csrf: caller.csrf().map(str::to_owned),
        }
    }

    pub fn signed_in(&self) -> bool {
        self.name.is_some()
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Self::from_caller(&caller))
    }
}
