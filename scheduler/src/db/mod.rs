//! The scheduler's database: one query layer for SQLite (bundled, the default) and
//! MySQL/MariaDB (pure-Rust client). Each query is written once inside [`with_conn!`] or
//! [`write_txn!`], which expand it for each backend; the per-backend pieces are the
//! writer lock (SQLite has one writer at a time; ours queue in-process) and the
//! last-insert-id function. Query functions shared by several transactions take a
//! [`Conn`] and write each statement inside [`on_conn!`]. The layer returns the
//! model's types and rows; it knows nothing of the HTTP API or the dispatcher.

pub mod aborts;
pub mod acl;
pub mod assign;
pub mod counts;
pub mod dispatch_acl;
pub mod dispatch_view;
pub mod drone_sets;
pub mod drones;
pub mod host_pages;
pub mod hosts;
pub mod intake;
pub mod job_acl;
pub mod job_create;
pub mod job_mail;
pub mod job_pages;
pub mod job_scan;
pub mod jobs;
#[cfg(test)]
mod page_scale_tests;
pub mod result_grid;
pub mod results_place;
pub mod schema;
pub mod sessions;
pub mod test_results;
pub mod users;

use common::config::DatabaseConfig;
use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, SqliteConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncMysqlConnection, SimpleAsyncConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, InPlace>;
type SqlitePool = bb8::Pool<AsyncDieselConnectionManager<SqliteConn>>;
type MysqlPool = bb8::Pool<AsyncDieselConnectionManager<AsyncMysqlConnection>>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Every SQLite connection: WAL (readers never block the writer), a busy timeout
/// instead of immediate SQLITE_BUSY, and full fsync on commit (a recorded state change
/// survives a power cut).
/// The busy timeout comes first: switching to WAL takes a lock, and without it a
/// scheduler started while another still holds the file failed at once.
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// A database failure, in the caller's terms.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// Refused by an ACL group rule.
    #[error("{0}")]
    Forbidden(String),
    /// A write shared with other requests failed (group commit).
    #[error("storing failed: {0}")]
    Failed(String),
}

impl DbError {
    pub fn pool(error: impl std::fmt::Display) -> Self {
        Self::Pool(error.to_string())
    }
}

/// The pool, for whichever backend the config names.
#[derive(Clone)]
pub enum Db {
    /// SQLite allows one writer at a time; writers queue on the lock in this process
    /// instead of meeting in SQLite's busy handler, which sleeps for milliseconds.
    Sqlite(SqlitePool, std::sync::Arc<tokio::sync::Mutex<()>>),
    Mysql(MysqlPool),
}

/// A connection of either backend, for query functions written once: each statement
/// in them runs through [`on_conn!`], which picks the backend and nothing else.
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConn),
    Mysql(&'a mut AsyncMysqlConnection),
}

impl<'a> From<&'a mut SqliteConn> for Conn<'a> {
    fn from(conn: &'a mut SqliteConn) -> Self {
        Conn::Sqlite(conn)
    }
}

impl<'a> From<&'a mut AsyncMysqlConnection> for Conn<'a> {
    fn from(conn: &'a mut AsyncMysqlConnection) -> Self {
        Conn::Mysql(conn)
    }
}

/// Runs `$body` with `$c` bound to the backend connection inside `$conn` (a
/// `&mut Conn`): the statement is written once and compiled for each backend.
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(inner) => {
                let $c = &mut **inner;
                $body
            }
            $crate::db::Conn::Mysql(inner) => {
                let $c = &mut **inner;
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to a pooled connection of either backend. On SQLite
/// the body runs inside an `async` block (see [`in_place`]): `?` and `return Err(..)`
/// work as in the enclosing function, but never write `return Ok(..)` in a body (on
/// SQLite it would end the block, not the function).
#[macro_export]
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool, _) => {
                let mut guard = pool.get().await.map_err($crate::db::DbError::pool)?;
                let $conn = &mut *guard;
                let body = async { Ok::<_, $crate::db::DbError>($body) };
                $crate::db::in_place(body).await?
            }
            $crate::db::Db::Mysql(pool) => {
                let mut guard = pool.get().await.map_err($crate::db::DbError::pool)?;
                let $conn = &mut *guard;
                $body
            }
        }
    };
}

/// Runs `$body` (returning `Result<_, DbError>`) in a write transaction; `$last_id` is
/// the SQL expression giving the id of the last inserted row.
#[macro_export]
macro_rules! write_txn {
    ($db:expr, |$conn:ident, $last_id:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool, write_lock) => {
                let _writer = write_lock.lock().await;
                let mut guard = pool.get().await.map_err($crate::db::DbError::pool)?;
                #[allow(unused_variables)]
                let $last_id = "last_insert_rowid()";
                // BEGIN (deferred) is safe: this process is the only writer and its
                // writers hold `write_lock`, so no other write can slip in between
                // this transaction's reads and writes.
                let body = diesel_async::AsyncConnection::transaction(
                    &mut *guard,
                    async |$conn| -> Result<_, $crate::db::DbError> { $body },
                );
                $crate::db::in_place(body).await
            }
            $crate::db::Db::Mysql(pool) => {
                let mut guard = pool.get().await.map_err($crate::db::DbError::pool)?;
                #[allow(unused_variables)]
                let $last_id = "LAST_INSERT_ID()";
                diesel_async::AsyncConnection::transaction(
                    &mut *guard,
                    async |$conn| -> Result<_, $crate::db::DbError> { $body },
                )
                .await
            }
        }
    };
}

/// The MySQL URL for a config (contains the password: never log it).
pub fn mysql_url(config: &DatabaseConfig) -> Option<String> {
    match config {
        DatabaseConfig::Mysql {
            host,
            port,
            user,
            password,
            database,
        } => Some(format!(
            "mysql://{}:{}@{host}:{port}/{database}",
            common::percent_encode(user.as_bytes()),
            common::percent_encode(password.expose().as_bytes())
        )),
        DatabaseConfig::Sqlite { .. } => None,
    }
}

impl Db {
    /// Applies migrations, then opens the pool.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, DbError> {
        match config {
            DatabaseConfig::Sqlite { path } => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| DbError::Connect(format!("{}: {e}", parent.display())))?;
                }
                let url = path.to_string_lossy().to_string();
                let migrate_url = url.clone();
                tokio::task::spawn_blocking(move || -> Result<(), DbError> {
                    use diesel::connection::SimpleConnection;
                    use diesel::Connection;
                    let mut conn = SqliteConnection::establish(&migrate_url)
                        .map_err(|e| DbError::Connect(format!("{migrate_url}: {e}")))?;
                    conn.batch_execute(SQLITE_SETUP)?;
                    conn.run_pending_migrations(SQLITE_MIGRATIONS)
                        .map_err(|e| DbError::Migration(e.to_string()))?;
                    Ok(())
                })
                .await
                .map_err(|e| DbError::Migration(e.to_string()))??;
                let mut manager_config = ManagerConfig::<SqliteConn>::default();
                manager_config.custom_setup = Box::new(|url| {
                    Box::pin(async move {
                        let mut conn = SqliteConn::establish(url).await?;
                        conn.batch_execute(SQLITE_SETUP)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::new_with_config(url, manager_config);
                let pool = bb8::Pool::builder()
                    .max_size(4)
                    .test_on_check_out(false)
                    .build(manager)
                    .await
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                Ok(Db::Sqlite(pool, Default::default()))
            }
            DatabaseConfig::Mysql {
                host,
                port,
                database,
                ..
            } => {
                let url = mysql_url(config).expect("mysql config");
                let where_ = format!("mysql {host}:{port}/{database}");
                let conn = AsyncMysqlConnection::establish(&url)
                    .await
                    .map_err(|e| DbError::Connect(format!("{where_}: {e}")))?;
                let mut harness = AsyncMigrationHarness::new(conn);
                tokio::task::block_in_place(|| {
                    harness.run_pending_migrations(MYSQL_MIGRATIONS).map(|_| ())
                })
                .map_err(|e| DbError::Migration(e.to_string()))?;
                let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url);
                let pool = bb8::Pool::builder()
                    .max_size(8)
                    .test_on_check_out(false)
                    .build(manager)
                    .await
                    .map_err(|e| DbError::Connect(format!("{where_}: {e}")))?;
                Ok(Db::Mysql(pool))
            }
        }
    }
}

/// Runs SQLite calls on the calling thread instead of one `spawn_blocking` round trip
/// per statement: SQLite is in-process and its calls take microseconds (a commit's
/// fsync, a fraction of a millisecond). Inside [`in_place`] (a whole query body) they
/// run as they are; elsewhere each is wrapped in `block_in_place`, which hands this
/// worker's other tasks to another thread meanwhile.
pub struct InPlace;

thread_local! {
    /// Set while [`in_place`] runs a query body on this thread.
    static IN_PLACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a whole SQLite query body (every statement of a [`with_conn!`] or
/// [`write_txn!`]) on this thread inside one `block_in_place`. Handing the worker's
/// other tasks to another thread costs two thread wake-ups; once per statement, it was
/// most of the scheduler's CPU (context switches) and a good part of a job's dispatch
/// latency. A body started inside another runs as a plain `.await`.
pub async fn in_place<F: std::future::Future>(body: F) -> F::Output {
    if IN_PLACE.get() {
        return body.await;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_PLACE.set(false);
        }
    }
    tokio::task::block_in_place(|| {
        IN_PLACE.set(true);
        let _reset = Reset;
        tokio::runtime::Handle::current().block_on(body)
    })
}

impl diesel_async::sync_connection_wrapper::SpawnBlocking for InPlace {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        let done = if IN_PLACE.get() {
            task()
        } else {
            tokio::task::block_in_place(task)
        };
        Box::pin(std::future::ready(Ok(done)))
    }

    fn get_runtime() -> Self {
        InPlace
    }
}

/// A statement kept prepared in the connection's statement cache. diesel re-prepares
/// every UPDATE, every `eq_any` and every SQL literal on each run (their SQL text can
/// vary), and on SQLite preparing a join costs more than running it: perf of a run
/// showed 19 % of the scheduler's CPU in `sqlite3Prepare`, on the path of every
/// dispatch. Both backends key such statements by their SQL text (neither has a
/// static query id), so caching is correct for any statement; it is kept for those
/// whose text comes in a bounded number of shapes, so the cache cannot grow without
/// end: use [`Cache::cached_if`] where a list of values of any length is bound.
///
/// SQLite also re-prepares a statement each time a bound `LIMIT` is bound again (the
/// planner reads its value): 10 % of the scheduler's CPU once the rest was cached.
/// [`Cache::cached_limit`] writes the limit into the text instead, and a lookup by a
/// unique key uses `.get_result()`, not `.first()` (which binds `LIMIT 1`).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q> {
    query: Q,
    cache: bool,
    limit: Option<u32>,
}

/// `.cached()` on any statement: see [`Cached`].
pub trait Cache: Sized {
    fn cached(self) -> Cached<Self> {
        self.cached_if(true)
    }
    /// Cached when `cache` (a list bound in the statement is short), else as diesel
    /// would.
    fn cached_if(self, cache: bool) -> Cached<Self> {
        Cached {
            query: self,
            cache,
            limit: None,
        }
    }
    /// Cached, with `LIMIT limit` in its text (each limit is a statement of its own:
    /// keep the values few).
    fn cached_limit(self, limit: u32) -> Cached<Self> {
        Cached {
            query: self,
            cache: true,
            limit: Some(limit),
        }
    }
}

impl<Q> Cache for Q {}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // Keyed by SQL text, never by type: the text is what identifies a statement.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<DB: Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Cached<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.query.walk_ast(pass.reborrow())?;
        if let Some(limit) = self.limit {
            pass.push_sql(&format!(" LIMIT {limit}"));
        }
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        if self.cache {
            Ok(true)
        } else {
            self.query.is_safe_to_cache_prepared(backend)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::prelude::*;
    use diesel_async::sync_connection_wrapper::SpawnBlocking;
    use diesel_async::RunQueryDsl;
    use std::sync::{Arc, Mutex};

    diesel::table! {
        probe (id) {
            id -> BigInt,
            v -> BigInt,
        }
    }

    /// What the connection prepared for its cache, and the text of each statement run.
    #[derive(Default)]
    struct Seen {
        cached: Vec<String>,
        run: Vec<String>,
    }

    async fn probe_connection() -> (SqliteConn, Arc<Mutex<Seen>>) {
        let mut conn = SqliteConn::establish(":memory:").await.unwrap();
        conn.batch_execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO probe VALUES (1, 10), (2, 20), (3, 30);")
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        let instrumentation = move |event: InstrumentationEvent<'_>| match event {
            InstrumentationEvent::CacheQuery { sql, .. } => {
                record.lock().unwrap().cached.push(sql.to_string())
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                record.lock().unwrap().run.push(query.to_string())
            }
            _ => {}
        };
        conn.set_instrumentation(Box::new(instrumentation) as Box<dyn Instrumentation>);
        (conn, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_statements_are_prepared_once() {
        let (mut conn, seen) = probe_connection().await;
        for round in 0..3_i64 {
            // An UPDATE and an `eq_any`, which diesel alone prepares on every run.
            diesel::update(probe::table.filter(probe::id.eq(1)))
                .set(probe::v.eq(round))
                .cached()
                .execute(&mut conn)
                .await
                .unwrap();
            let found: Vec<i64> = probe::table
                .filter(probe::id.eq_any([2, 3]))
                .order(probe::id.asc())
                .select(probe::v)
                .cached_limit(1)
                .load(&mut conn)
                .await
                .unwrap();
            assert_eq!(found, vec![20], "the written limit applies");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.cached.len(),
            2,
            "one preparation per statement: {:?}",
            seen.cached
        );
        // The limit is in the text, not bound: SQLite re-prepares a statement whose
        // bound LIMIT is bound again.
        assert!(seen.cached[1].ends_with(" LIMIT 1"), "{}", seen.cached[1]);
        assert_eq!(seen.run.len(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_list_of_any_length_is_cached_only_when_asked() {
        let (mut conn, seen) = probe_connection().await;
        for ids in [vec![1], vec![1, 2], vec![1, 2, 3]] {
            let short = ids.len() <= 1;
            let found: Vec<i64> = probe::table
                .filter(probe::id.eq_any(&ids))
                .select(probe::v)
                .cached_if(short)
                .load(&mut conn)
                .await
                .unwrap();
            assert_eq!(found.len(), ids.len());
        }
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.cached.len(),
            1,
            "only the short list: {:?}",
            seen.cached
        );
        assert_eq!(seen.run.len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_body_runs_on_one_thread_and_may_nest() {
        let outer = in_place(async {
            let body = std::thread::current().id();
            // A statement inside the body runs inline, on the body's thread.
            let statement = InPlace
                .spawn_blocking(|| std::thread::current().id())
                .await
                .unwrap();
            // A body inside a body (a query helper calling another) runs as an await
            // instead of starting a runtime inside the runtime, which would panic.
            let nested = in_place(async { std::thread::current().id() }).await;
            (body, statement, nested)
        })
        .await;
        assert_eq!(outer.0, outer.1);
        assert_eq!(outer.0, outer.2);
        assert!(!IN_PLACE.get(), "the flag is cleared after the body");
        // Outside a body a statement still leaves the worker's other tasks to run.
        let alone = InPlace.spawn_blocking(|| IN_PLACE.get()).await.unwrap();
        assert!(!alone);
    }
}
