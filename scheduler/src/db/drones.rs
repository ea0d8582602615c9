//! Drones as the scheduler keeps them: enabled flag, capacity, last heartbeat, free
//! space.

use super::dispatch_view;
use super::schema::drones;
use super::{Db, DbError};
use crate::model::DroneStatus;
use crate::{with_conn, write_txn};
use common::config::SchedulerConfig;
use common::names::DroneName;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// Records the configured drones at start: new ones are added; every drone takes the
/// config's capacity (a capacity set at run time still overrides it) and a drone
/// marked `<drone>_disabled` is disabled. A drone disabled at run time stays disabled.
pub async fn sync_from_config(db: &Db, config: &SchedulerConfig) -> Result<(), DbError> {
    let wanted: Vec<(String, bool, i32)> = config
        .drones
        .iter()
        .map(|d| {
            let capacity = i32::try_from(config.capacity_of(d)).unwrap_or(i32::MAX);
            (d.to_string(), config.drone_disabled.contains(d), capacity)
        })
        .collect();
    write_txn!(db, |conn, _last_id| {
        for (name, disabled, capacity) in &wanted {
            let updated = diesel::update(drones::table.filter(drones::name.eq(name)))
                .set(drones::capacity.eq(capacity))
                .execute(conn)
                .await?;
            if updated == 0 {
                diesel::insert_into(drones::table)
                    .values((
                        drones::name.eq(name),
                        drones::enabled.eq(!disabled),
                        drones::capacity.eq(capacity),
                    ))
                    .execute(conn)
                    .await?;
            } else if *disabled {
                diesel::update(drones::table.filter(drones::name.eq(name)))
                    .set(drones::enabled.eq(false))
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    })
}

/// `atest drone enable|disable`: effective for the next dispatch.
pub async fn set_enabled(db: &Db, name: &str, enabled: bool) -> Result<(), DbError> {
    let name = name.to_string();
    write_txn!(db, |conn, _last_id| {
        let n = diesel::update(drones::table.filter(drones::name.eq(&name)))
            .set(drones::enabled.eq(enabled))
            .execute(conn)
            .await?;
        if n == 0 {
            return Err(DbError::NotFound(format!("unknown drone: {name}")));
        }
        Ok(())
    })
}

/// `atest drone set-capacity`: effective for the next dispatch, kept across restarts.
pub async fn set_capacity(db: &Db, name: &str, capacity: i32) -> Result<(), DbError> {
    let name = name.to_string();
    write_txn!(db, |conn, _last_id| {
        let n = diesel::update(drones::table.filter(drones::name.eq(&name)))
            .set(drones::capacity_override.eq(Some(capacity)))
            .execute(conn)
            .await?;
        if n == 0 {
            return Err(DbError::NotFound(format!("unknown drone: {name}")));
        }
        Ok(())
    })
}

/// The configured drones' last heartbeats.
pub async fn heartbeats(
    db: &Db,
    configured: &[String],
) -> Result<Vec<(String, Option<i64>)>, DbError> {
    Ok(with_conn!(db, |conn| {
        drones::table
            .filter(drones::name.eq_any(configured))
            .select((drones::name, drones::last_heartbeat))
            .load(conn)
            .await?
    }))
}

/// A configured drone with its load and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroneRow {
    pub name: DroneName,
    pub enabled: bool,
    /// Entries Starting or Running on it (a synchronous group counts once).
    pub running: i64,
    pub status: DroneStatus,
    /// The capacity in force: set at run time, else the config's.
    pub capacity: i64,
    /// When it was last heard from (UTC microseconds).
    pub last_heartbeat: Option<i64>,
    /// Free space of its results filesystem, in MiB, by its last heartbeat that said.
    pub free_mb: Option<i64>,
}

/// The configured drones, by name, with their load and state.
pub async fn list(
    db: &Db,
    configured: &[String],
    alive_since: i64,
) -> Result<Vec<DroneRow>, DbError> {
    let loads = dispatch_view::loads(db, configured, alive_since).await?;
    let beats: Vec<(String, Option<i64>, Option<i64>)> = with_conn!(db, |conn| {
        drones::table
            .select((drones::name, drones::last_heartbeat, drones::free_mb))
            .load(conn)
            .await?
    });
    let beats: BTreeMap<String, (Option<i64>, Option<i64>)> = beats
        .into_iter()
        .map(|(name, beat, free)| (name, (beat, free)))
        .collect();
    Ok(loads
        .into_iter()
        .map(|d| DroneRow {
            last_heartbeat: beats.get(d.name.as_str()).and_then(|b| b.0),
            free_mb: beats.get(d.name.as_str()).and_then(|b| b.1),
            status: DroneStatus::of(d.enabled, d.alive, d.stopping, d.low_disk, d.running),
            name: d.name,
            enabled: d.enabled,
            running: d.running,
            capacity: d.capacity,
        })
        .collect())
}

/// The drones that ran entries of job `job_id`, with the address where each serves
/// results (from its heartbeats): first the one that ran the entry with results subdir
/// `subdir`, then the others, and those of earlier attempts (their results may be set
/// aside there as `<subdir>.attempt-N`, and a retried metahost entry may have had
/// another host).
pub async fn results_urls_of(
    db: &Db,
    job_id: i64,
    subdir: &str,
) -> Result<Vec<(String, String)>, DbError> {
    use super::schema::{entry_history, host_queue_entries as hqe};
    type Found = (Vec<(Option<String>, String)>, Vec<Option<String>>);
    let (current, earlier): Found = with_conn!(db, |conn| {
        let current: Vec<(Option<String>, String)> = hqe::table
            .filter(hqe::job_id.eq(job_id))
            .filter(hqe::drone.is_not_null())
            .select((hqe::drone, hqe::execution_subdir))
            .load(conn)
            .await?;
        let earlier: Vec<Option<String>> = entry_history::table
            .inner_join(hqe::table.on(hqe::id.eq(entry_history::entry_id)))
            .filter(hqe::job_id.eq(job_id))
            .select(entry_history::drone)
            .load(conn)
            .await?;
        (current, earlier)
    });
    let mut names: Vec<String> = Vec::new();
    let exact = current.iter().filter(|(_, s)| s == subdir);
    let others = current.iter().filter(|(_, s)| s != subdir);
    for drone in exact
        .chain(others)
        .filter_map(|(d, _)| d.clone())
        .chain(earlier.into_iter().flatten())
    {
        if !names.contains(&drone) {
            names.push(drone);
        }
    }
    let urls: Vec<(String, Option<String>)> = with_conn!(db, |conn| {
        drones::table
            .filter(drones::name.eq_any(&names))
            .select((drones::name, drones::results_url))
            .load(conn)
            .await?
    });
    Ok(names
        .into_iter()
        .filter_map(|name| {
            let url = urls.iter().find(|(n, _)| *n == name)?.1.clone()?;
            Some((name, url))
        })
        .collect())
}
