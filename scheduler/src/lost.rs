//! The lost-drone keeper: a drone silent for `[SCHEDULER] drone_timeout_sec` gets no
//! new work (the dispatcher checks heartbeats itself); once it has been silent for the
//! timeout plus [`LEASE_MARGIN_US`], the entries it was running are infra failures and
//! go back to the queue for another drone (see `db::intake::fail_lost_drone`). By then the
//! drone's own lease has stopped them, so a retry never runs beside the old attempt.
//!
//! Silence is the absence of events, so this one check runs on a timer: every tenth of
//! the timeout (at least once a second), reading only the drones table when all is well.

use crate::db::{drones, intake, Db, DbError};
use crate::metrics::Metrics;
use crate::status::{infra_rules, timeout_us, Listening, LEASE_MARGIN_US};
use common::config::Config;
use common::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Runs until shutdown; wakes the dispatcher when entries were handed back.
pub async fn run(
    db: Db,
    config: Arc<Config>,
    listening: Arc<Listening>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    let every = Duration::from_millis((config.scheduler.drone_timeout_sec * 100).max(1000));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return,
        }
        match step(&db, &config, &listening, &metrics).await {
            Ok(0) => {}
            Ok(_) => wake.notify_one(),
            Err(error) => tracing::error!(%error, "lost-drone check failed"),
        }
    }
}

/// One check; returns how many entries were taken back from lost drones (counted in
/// `metrics`).
pub async fn step(
    db: &Db,
    config: &Config,
    listening: &Listening,
    metrics: &Metrics,
) -> Result<usize, DbError> {
    let now = common::time::now_micros();
    let silence = timeout_us(config) + LEASE_MARGIN_US;
    // Heartbeats are only seen while the status consumer reads: after a scheduler or
    // broker restart, every drone gets a full timeout to be heard from again.
    match listening.since() {
        Some(since) if now - since >= silence => {}
        _ => return Ok(0),
    }
    let cutoff = now - silence;
    let configured: Vec<String> = config
        .scheduler
        .drones
        .iter()
        .map(|d| d.to_string())
        .collect();
    let beats: BTreeMap<String, Option<i64>> = drones::heartbeats(db, &configured)
        .await?
        .into_iter()
        .collect();
    let mut taken = 0;
    for drone in &config.scheduler.drones {
        // A drone without a row is not judged (it has never been recorded).
        let Some(beat) = beats.get(drone.as_str()) else {
            continue;
        };
        if beat.is_some_and(|t| t >= cutoff) {
            continue;
        }
        let reason = format!(
            "drone {drone} lost: no heartbeat for over {} s",
            config.scheduler.drone_timeout_sec
        );
        let (n, tally) =
            intake::fail_lost_drone(db, drone, &reason, cutoff, infra_rules(config)).await?;
        metrics.transitions(&tally);
        taken += n;
    }
    Ok(taken)
}
