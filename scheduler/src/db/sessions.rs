//! Signed-in browsers' sessions. A session is stored by the SHA-256 of its secret (the
//! value of the session cookie, which `auth/session.rs` makes) with its user, the token
//! it was made with, and its anti-forgery token. It is valid until it expires, signs out, or its
//! token is revoked.

use super::schema::{api_tokens, sessions, users};
use super::users::UserRow;
use super::{Db, DbError};
use crate::{with_conn, write_txn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// A session to store: who it is for, its hashed secret, its anti-forgery token and
/// when it ends (UTC microseconds).
#[derive(Debug)]
pub struct NewSession<'a> {
    pub hash: &'a str,
    pub user_id: i64,
    pub token_id: i64,
    pub csrf: &'a str,
    pub created: i64,
    pub expires: i64,
}

/// A valid session's user and anti-forgery token.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user: UserRow,
    pub csrf: String,
}

const USER_COLUMNS: (users::id, users::name, users::admin, users::created) =
    (users::id, users::name, users::admin, users::created);

/// The user holding the valid token whose hash is `hash`, and the token's id.
pub async fn token_user(db: &Db, hash: &str) -> Result<Option<(UserRow, i64)>, DbError> {
    Ok(with_conn!(db, |conn| {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::hash.eq(hash))
            .filter(api_tokens::revoked.is_null())
            .select((USER_COLUMNS, api_tokens::id))
            .get_result(conn)
            .await
            .optional()?
    }))
}

/// Stores `session`, and forgets sessions that have expired.
pub async fn create(db: &Db, session: &NewSession<'_>) -> Result<(), DbError> {
    let (hash, csrf) = (session.hash, session.csrf);
    let (user_id, token_id) = (session.user_id, session.token_id);
    let (created, expires) = (session.created, session.expires);
    write_txn!(db, |conn, last_id| {
        diesel::delete(sessions::table.filter(sessions::expires.le(created)))
            .execute(conn)
            .await?;
        diesel::insert_into(sessions::table)
            .values((
                sessions::hash.eq(hash),
                sessions::user_id.eq(user_id),
                sessions::token_id.eq(token_id),
                sessions::csrf.eq(csrf),
                sessions::created.eq(created),
                sessions::expires.eq(expires),
            ))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// The session whose secret hashes to `hash`, if it is valid at `now`: not expired,
/// and made with a token that is not revoked.
pub async fn find(db: &Db, hash: &str, now: i64) -> Result<Option<SessionRow>, DbError> {
    let found: Option<(UserRow, String)> = with_conn!(db, |conn| {
        sessions::table
            .inner_join(users::table.on(users::id.eq(sessions::user_id)))
            .inner_join(api_tokens::table.on(api_tokens::id.eq(sessions::token_id)))
            .filter(sessions::hash.eq(hash))
            .filter(sessions::expires.gt(now))
            .filter(api_tokens::revoked.is_null())
            .select((USER_COLUMNS, sessions::csrf))
            .get_result(conn)
            .await
            .optional()?
    });
    Ok(found.map(|(user, csrf)| SessionRow { user, csrf }))
}

/// Ends the session whose secret hashes to `hash` (signing out); true if there was one.
pub async fn delete(db: &Db, hash: &str) -> Result<bool, DbError> {
    let deleted = write_txn!(db, |conn, last_id| {
        let n = diesel::delete(sessions::table.filter(sessions::hash.eq(hash)))
            .execute(conn)
            .await?;
        Ok(n)
    })?;
    Ok(deleted > 0)
}
