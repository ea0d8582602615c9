//! Users, API tokens and who may do what on the HTTP API.
//!
//! A request names its user with `Authorization: Bearer TOKEN` or, from a trusted
//! single-sign-on proxy only, with `[AUTH] trusted_proxy_header`. The guard
//! ([`caller::guard`]) refuses a request for a name not in `[SCHEDULER] public_names`
//! (421), a bad or revoked token (401), and an anonymous change (401) or, with
//! `[AUTH] anonymous_read` false, any anonymous request (401). Each handler then asks
//! its [`Caller`] for the right it needs (`user()`, `admin()`: 401 or 403).
//!
//! A browser signs in with a token at `/signin` and is then known by its session
//! cookie ([`session`]) for reading pages and posting the pages' forms, never for the
//! API.

pub mod caller;
pub mod routes;
pub mod session;
pub mod token;

pub use caller::Caller;

use crate::db::users::{self, Added};
use crate::db::{Db, DbError};
use common::config::Config;
use common::names::UserName;
use std::sync::Arc;

/// What telling callers apart needs of the scheduler (taken from the API's state).
#[derive(Clone)]
pub struct AuthState {
    pub db: Db,
    pub config: Arc<Config>,
}

/// What [`add_user`] did, and the new token's secret (shown once).
#[derive(Debug)]
pub struct AddedUser {
    pub token: String,
    /// The user existed already: the token is an extra one.
    pub existed: bool,
    /// The user existed and was made an admin.
    pub made_admin: bool,
}

/// `autotest-scheduler add-user NAME [--admin]`: creates user `name` with a token, or
/// gives an existing user a new token; `admin` makes the user an admin (an existing
/// one too). The database is migrated by [`Db::open`] first.
pub async fn add_user(db: &Db, name: &str, admin: bool) -> Result<AddedUser, DbError> {
    let name = UserName::new(name).map_err(|e| DbError::Invalid(e.to_string()))?;
    let token = token::generate();
    let (_, _, added) = users::add_user(db, &name, admin, &token.hash).await?;
    let (existed, made_admin) = match added {
        Added::Created => (false, false),
        Added::Existing { made_admin } => (true, made_admin),
    };
    Ok(AddedUser {
        token: token.secret,
        existed,
        made_admin,
    })
}
