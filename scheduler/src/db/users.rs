//! Users of the API and their tokens. A token is stored only as the SHA-256 of its
//! secret (see [`crate::auth::token`]); requests are matched by that hash.

use super::schema::{api_tokens, users};
use super::{Db, DbError};
use crate::{with_conn, write_txn};
use common::names::UserName;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub admin: bool,
    /// UTC microseconds.
    pub created: i64,
}

/// A token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub user: String,
    /// UTC microseconds.
    pub created: i64,
    pub revoked: Option<i64>,
}

const USER_COLUMNS: (users::id, users::name, users::admin, users::created) =
    (users::id, users::name, users::admin, users::created);

/// What [`add_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new user.
    Created,
    /// The user existed: a new token was added (and admin granted if asked).
    Existing { made_admin: bool },
}

/// Creates user `name` with a first token whose hash is `hash`; a user of that name is
/// a conflict.
pub async fn create(
    db: &Db,
    name: &UserName,
    admin: bool,
    hash: &str,
) -> Result<(UserRow, TokenRow), DbError> {
    let (user, token, added) = add(db, name, admin, hash, false).await?;
    debug_assert_eq!(added, Added::Created);
    Ok((user, token))
}

/// Creates user `name`, or gives an existing one a new token (and, with `admin`,
/// makes it an admin): `autotest-scheduler add-user`.
pub async fn add_user(
    db: &Db,
    name: &UserName,
    admin: bool,
    hash: &str,
) -> Result<(UserRow, TokenRow, Added), DbError> {
    add(db, name, admin, hash, true).await
}

async fn add(
    db: &Db,
    name: &UserName,
    admin: bool,
    hash: &str,
    existing_ok: bool,
) -> Result<(UserRow, TokenRow, Added), DbError> {
    let name = name.as_str();
    let now = common::time::now_micros();
    write_txn!(db, |conn, last_id| {
        let found: Option<UserRow> = users::table
            .filter(users::name.eq(name))
            .select(USER_COLUMNS)
            .first(conn)
            .await
            .optional()?;
        let (user, added) = match found {
            Some(_) if !existing_ok => {
                return Err(DbError::Conflict(format!("user {name} exists already")));
            }
            Some(mut user) => {
                let made_admin = admin && !user.admin;
                if made_admin {
                    diesel::update(users::table.filter(users::id.eq(user.id)))
                        .set(users::admin.eq(true))
                        .execute(conn)
                        .await?;
                    user.admin = true;
                }
                (user, Added::Existing { made_admin })
            }
            None => {
                diesel::insert_into(users::table)
                    .values((
                        users::name.eq(name),
                        users::admin.eq(admin),
                        users::created.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                let id: i64 = diesel::select(sql::<BigInt>(last_id))
                    .get_result(conn)
                    .await?;
                super::acl::join_everyone(&mut super::Conn::from(&mut *conn), None, Some(id))
                    .await?;
                let user = UserRow {
                    id,
                    name: name.to_string(),
                    admin,
                    created: now,
                };
                (user, Added::Created)
            }
        };
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user.id),
                api_tokens::hash.eq(hash),
                api_tokens::created.eq(now),
            ))
            .execute(conn)
            .await?;
        let id: i64 = diesel::select(sql::<BigInt>(last_id))
            .get_result(conn)
            .await?;
        let token = TokenRow {
            id,
            user: user.name.clone(),
            created: now,
            revoked: None,
        };
        Ok((user, token, added))
    })
}

/// The user holding the valid (not revoked) token whose hash is `hash`.
pub async fn by_token_hash(db: &Db, hash: &str) -> Result<Option<UserRow>, DbError> {
    Ok(with_conn!(db, |conn| {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::hash.eq(hash))
            .filter(api_tokens::revoked.is_null())
            .select(USER_COLUMNS)
            .get_result(conn)
            .await
            .optional()?
    }))
}

/// The user named `name`.
pub async fn by_name(db: &Db, name: &str) -> Result<Option<UserRow>, DbError> {
    Ok(with_conn!(db, |conn| {
        users::table
            .filter(users::name.eq(name))
            .select(USER_COLUMNS)
            .get_result(conn)
            .await
            .optional()?
    }))
}

/// Every user, by name.
pub async fn list(db: &Db) -> Result<Vec<UserRow>, DbError> {
    Ok(with_conn!(db, |conn| {
        users::table
            .select(USER_COLUMNS)
            .order(users::name.asc())
            .load(conn)
            .await?
    }))
}

/// A new token with hash `hash` for user `user_id`.
pub async fn create_token(db: &Db, user: &UserRow, hash: &str) -> Result<TokenRow, DbError> {
    let now = common::time::now_micros();
    let user_id = user.id;
    let id = write_txn!(db, |conn, last_id| {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user_id),
                api_tokens::hash.eq(hash),
                api_tokens::created.eq(now),
            ))
            .execute(conn)
            .await?;
        let id: i64 = diesel::select(sql::<BigInt>(last_id))
            .get_result(conn)
            .await?;
        Ok(id)
    })?;
    Ok(TokenRow {
        id,
        user: user.name.clone(),
        created: now,
        revoked: None,
    })
}

type TokenTuple = (i64, String, i64, Option<i64>);

fn token_row((id, user, created, revoked): TokenTuple) -> TokenRow {
    TokenRow {
        id,
        user,
        created,
        revoked,
    }
}

/// The tokens of `user` (every user's when None), oldest first.
pub async fn tokens(db: &Db, user: Option<i64>) -> Result<Vec<TokenRow>, DbError> {
    let rows: Vec<TokenTuple> = with_conn!(db, |conn| {
        let mut query = api_tokens::table
            .inner_join(users::table)
            .select((
                api_tokens::id,
                users::name,
                api_tokens::created,
                api_tokens::revoked,
            ))
            .order(api_tokens::id.asc())
            .into_boxed();
        if let Some(user) = user {
            query = query.filter(api_tokens::user_id.eq(user));
        }
        query.load(conn).await?
    });
    Ok(rows.into_iter().map(token_row).collect())
}

/// Revokes token `id` if `allowed` accepts its owner's user id (a token already
/// revoked keeps its first revocation time). Unknown: NotFound; not allowed:
/// `Ok(None)`, and nothing changes.
pub async fn revoke_token(
    db: &Db,
    id: i64,
    allowed: impl Fn(i64) -> bool + Send + Sync,
) -> Result<Option<TokenRow>, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, last_id| {
        let found: Option<(i64, String, i64, Option<i64>, i64)> = api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::id.eq(id))
            .select((
                api_tokens::id,
                users::name,
                api_tokens::created,
                api_tokens::revoked,
                api_tokens::user_id,
            ))
            .get_result(conn)
            .await
            .optional()?;
        let Some((id, user, created, revoked, user_id)) = found else {
            return Err(DbError::NotFound(format!("no token {id}")));
        };
        if !allowed(user_id) {
            return Ok(None);
        }
        let revoked = match revoked {
            Some(at) => at,
            None => {
                diesel::update(api_tokens::table.filter(api_tokens::id.eq(id)))
                    .set(api_tokens::revoked.eq(Some(now)))
                    .execute(conn)
                    .await?;
                now
            }
        };
        Ok(Some(token_row((id, user, created, Some(revoked)))))
    })
}

/// The owner of job `id` (who may abort it besides an admin).
pub async fn job_owner(db: &Db, id: i64) -> Result<String, DbError> {
    use super::schema::jobs;
    let owner: Option<String> = with_conn!(db, |conn| {
        jobs::table
            .filter(jobs::id.eq(id))
            .select(jobs::owner)
            .get_result(conn)
            .await
            .optional()?
    });
    owner.ok_or_else(|| DbError::NotFound(format!("no job {id}")))
}
