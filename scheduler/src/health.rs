//! `GET /api/health`: 200 while the database answers and the status consumer is
//! connected to the broker, else 503 naming what is down. Nothing is opened per
//! request: the database is asked `SELECT 1` on a pooled connection, and the broker's
//! state is the status consumer's own.

use crate::db::{Db, DbError};
use crate::status::Listening;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use diesel_async::SimpleAsyncConnection;
use std::sync::Arc;
use std::time::Duration;

/// The longest wait for the database's answer.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health check looks at.
#[derive(Clone)]
pub struct Health {
    pub db: Db,
    /// Set while the status consumer reads from the broker.
    pub listening: Arc<Listening>,
}

/// The health route, with its own state (merged into the API's router).
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/api/health", get(answer))
        .with_state(health)
}

async fn answer(State(health): State<Health>) -> (StatusCode, Json<serde_json::Value>) {
    let (status, body) = health.report().await;
    (status, Json(body))
}

impl Health {
    /// The answer: 200 and `{"status": "ok"}`, or 503 and `{"status": "down",
    /// "down": {"database": why, "broker": why}}` naming only what is down.
    pub async fn report(&self) -> (StatusCode, serde_json::Value) {
        let mut down = serde_json::Map::new();
        if let Err(error) = ping(&self.db).await {
            down.insert("database".into(), error.into());
        }
        if self.listening.since().is_none() {
            down.insert(
                "broker".into(),
                "the status consumer is not connected to the broker".into(),
            );
        }
        if down.is_empty() {
            let body = serde_json::json!({ "status": "ok", "version": common::VERSION });
            return (StatusCode::OK, body);
        }
        let body =
            serde_json::json!({ "status": "down", "version": common::VERSION, "down": down });
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// `SELECT 1` on a pooled connection, within [`DATABASE_TIMEOUT`].
async fn ping(db: &Db) -> Result<(), String> {
    let asked = async {
        match db {
            Db::Sqlite(pool, _) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                crate::db::in_place(conn.batch_execute("SELECT 1")).await?;
            }
            Db::Mysql(pool) => {
                let mut conn = pool.get().await.map_err(DbError::pool)?;
                conn.batch_execute("SELECT 1").await?;
            }
        }
        Ok::<_, DbError>(())
    };
    match tokio::time::timeout(DATABASE_TIMEOUT, asked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", DATABASE_TIMEOUT.as_secs())),
    }
}
