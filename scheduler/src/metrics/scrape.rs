//! `GET /metrics`: the gauges that mirror the database are read now (one grouped
//! query for the entries, the drone list's queries for the drones), then the whole
//! registry is answered in the Prometheus text format. The request passes the same
//! guard as every read of the API (a token when `[AUTH] anonymous_read` is false).
//!
//! When the database cannot be read, the answer still carries what the process counts
//! itself (reports, latencies, the oldest unapplied report): the gauges read from the
//! database are left out of it rather than shown stale.

use super::{DroneLabel, FilesystemLabel, Metrics, StatusLabel};
use crate::db::{self, Db, DbError};
use crate::model::DroneStatus;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::config::Config;
use std::sync::Arc;

/// What the handler reads.
#[derive(Clone)]
pub struct MetricsState {
    pub db: Db,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

/// The router of `/metrics`.
pub fn router(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(state)
}

async fn serve(State(state): State<MetricsState>) -> Response {
    let metrics = &state.metrics;
    let _one_at_a_time = metrics.scraping.lock().await;
    metrics.set_oldest_unapplied(common::time::now_micros());
    if let Err(error) = read_database(&state).await {
        tracing::warn!(%error, "metrics: cannot read the database; answering without its gauges");
        metrics.entries.clear();
        metrics.drones.clear();
        metrics.drone_running.clear();
        metrics.drone_capacity.clear();
        metrics.drone_free.clear();
    }
    read_own_disks(&state).await;
    common::metrics::respond(metrics.registry())
}

/// Sets the gauges that mirror the database.
async fn read_database(state: &MetricsState) -> Result<(), DbError> {
    let metrics = &state.metrics;
    let entries = db::counts::entries_by_status(&state.db).await?;
    metrics.set_entries(&entries);
    let scheduler = &state.config.scheduler;
    let configured: Vec<String> = scheduler.drones.iter().map(|d| d.to_string()).collect();
    let alive_since = common::time::now_micros() - crate::status::timeout_us(&state.config);
    let drones = db::drones::list(&state.db, &configured, alive_since).await?;
    for status in DroneStatus::ALL {
        let n = drones.iter().filter(|d| d.status == *status).count();
        metrics
            .drones
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    // A drone no longer configured leaves the answer.
    metrics.drone_running.clear();
    metrics.drone_capacity.clear();
    metrics.drone_free.clear();
    for drone in &drones {
        let label = DroneLabel {
            drone: drone.name.to_string(),
        };
        metrics
            .drone_running
            .get_or_create(&label)
            .set(drone.running);
        metrics
            .drone_capacity
            .get_or_create(&label)
            .set(drone.capacity);
        if let Some(free_mb) = drone.free_mb {
            let bytes = free_mb.saturating_mul(1024 * 1024);
            metrics.drone_free.get_or_create(&label).set(bytes);
        }
    }
    Ok(())
}

/// Sets the free space of the scheduler's own filesystems; one that cannot be read
/// leaves the answer.
async fn read_own_disks(state: &MetricsState) {
    let metrics = &state.metrics;
    metrics.own_free.clear();
    for disk in crate::own_disk::read(&state.config).await {
        if let Some(free) = disk.free_bytes {
            let label = FilesystemLabel {
                filesystem: disk.filesystem,
            };
            let free = i64::try_from(free).unwrap_or(i64::MAX);
            metrics.own_free.get_or_create(&label).set(free);
        }
    }
}
