//! The timeout keeper: aborts entries still queued past `--timeout-mins` and entries
//! running past `--max-runtime-mins`, as `autotest_system`, within a second or so of
//! the deadline. It sleeps until the next deadline it knows of, and is woken when jobs
//! are created or entries start (new deadlines), never by a fixed sweep.

use crate::db::{entries, Db};
use common::broker::Publisher;
use common::config::Config;
use common::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Who aborts entries that ran out of time.
pub const SYSTEM_USER: &str = "autotest_system";

/// The longest sleep without a deadline in sight (a safety net, not the mechanism).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Runs until shutdown.
pub async fn run(
    db: Db,
    config: Arc<Config>,
    publisher: Arc<Publisher>,
    timers: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    loop {
        let woken = timers.notified();
        let sleep = match step(&db, &config, &publisher).await {
            Ok(next) => next.map_or(MAX_SLEEP, |at| {
                let now = common::time::now_micros();
                Duration::from_micros(u64::try_from(at - now).unwrap_or(0)).min(MAX_SLEEP)
            }),
            Err(error) => {
                tracing::error!(%error, "timeout check failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = woken => {}
            _ = shutdown.wait() => return,
        }
    }
}

/// Aborts what is past its deadline; returns the next deadline (UTC microseconds).
pub async fn step(db: &Db, config: &Config, publisher: &Publisher) -> anyhow::Result<Option<i64>> {
    let now = common::time::now_micros();
    let (expired_queued, next_queued, running) = entries::timeouts(db, now).await?;
    let mut next = next_queued;
    let mut expired_running = Vec::new();
    for (id, started, max) in running {
        let deadline = started + max;
        if deadline <= now {
            expired_running.push(id);
        } else {
            next = Some(next.map_or(deadline, |n: i64| n.min(deadline)));
        }
    }
    if !expired_queued.is_empty() {
        tracing::info!(entries = ?expired_queued, "aborting entries not started before their timeout");
        entries::abort(
            db,
            &expired_queued,
            SYSTEM_USER,
            Some("timed out before it started".into()),
        )
        .await?;
    }
    if !expired_running.is_empty() {
        tracing::info!(entries = ?expired_running, "aborting entries past their maximum runtime");
        let active = entries::abort(
            db,
            &expired_running,
            SYSTEM_USER,
            Some("ran past its maximum runtime".into()),
        )
        .await?;
        for (entry_id, attempt, drone) in active {
            let grace = config.scheduler.abort_grace_sec;
            if let Err(error) =
                crate::status::send_abort(publisher, &drone, entry_id, attempt, grace).await
            {
                tracing::warn!(%error, entry.id = entry_id, "abort recorded; telling the drone failed, will retry on its next heartbeat");
            }
        }
    }
    Ok(next)
}
