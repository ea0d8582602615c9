//! `/drones`: each configured drone's status, capacity and load, free space, when it
//! was last heard from, and its RabbitMQ queue (depth, consumers, a link to the
//! management UI); above them, the free space of the scheduler's own filesystems.

use super::format::{age, free_space, status_class};
use super::{render, PageError, Viewer};
use crate::http::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

/// A drone as the page shows it.
pub struct DroneView {
    pub name: String,
    pub status: &'static str,
    pub status_class: String,
    pub enabled: bool,
    pub capacity: i64,
    pub running: i64,
    pub heartbeat: String,
    /// Free space of its results filesystem, by its last heartbeat.
    pub free: String,
    /// Messages waiting in its queue and its consumers; None when the broker did not
    /// answer.
    pub queued: Option<u32>,
    pub consumers: Option<u32>,
    pub queue: String,
    pub queue_link: String,
    pub results_url: String,
    pub actions: super::actions::DroneActions,
}

#[derive(Template)]
#[template(path = "drones.html")]
struct DronesPage {
    viewer: Viewer,
    drones: Vec<DroneView>,
    /// The scheduler's own filesystems: (`database` or `results`, path, free space).
    own_disks: Vec<(&'static str, String, String)>,
    management_url: String,
}

/// `GET /drones`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let scheduler = &state.config.scheduler;
    let now = common::time::now_micros();
    let alive_since =
        now - i64::try_from(scheduler.drone_timeout_sec).unwrap_or(i64::MAX / 2) * 1_000_000;
    let names: Vec<String> = scheduler.drones.iter().map(|d| d.to_string()).collect();
    let rows = crate::db::drones::list(&state.db, &names, alive_since).await?;
    let urls = crate::db::host_pages::drone_results_urls(&state.db).await?;
    let mut drones = Vec::with_capacity(rows.len());
    for row in rows {
        let queue = common::broker::drone_queue(&row.name);
        let counts = state.broker.queue_counts(&queue).await.ok();
        let actions = super::actions::DroneActions::new(
            &viewer,
            row.name.as_str(),
            row.enabled,
            row.capacity,
        );
        drones.push(DroneView {
            actions,
            name: row.name.to_string(),
            status: row.status.as_str(),
            status_class: status_class(row.status.as_str()),
            enabled: row.enabled,
            capacity: row.capacity,
            running: row.running,
            heartbeat: age(row.last_heartbeat, now),
            free: free_space(
                row.free_mb
                    .and_then(|mb| u64::try_from(mb).ok())
                    .map(|mb| mb * common::disk::MIB),
            ),
            queued: counts.map(|c| c.0),
            consumers: counts.map(|c| c.1),
            queue_link: state.config.management_queue_url(&queue),
            results_url: urls.get(row.name.as_str()).cloned().unwrap_or_default(),
            queue,
        });
    }
    let own_disks = crate::own_disk::read(&state.config)
        .await
        .into_iter()
        .map(|d| {
            (
                d.filesystem,
                d.path.display().to_string(),
                free_space(d.free_bytes),
            )
        })
        .collect();
    render(&DronesPage {
        viewer,
        drones,
        own_disks,
        management_url: state.config.management_url(),
    })
}
