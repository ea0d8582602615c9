//! The timeout keeper: aborts entries still queued past `--timeout-mins` and entries
//! running past `--max-runtime-mins`, as `autotest_system`, within a second or so of
//! the deadline. It sleeps until the next deadline it knows of, and is woken when jobs
//! are created or entries start (new deadlines), never by a fixed sweep.

use crate::db::{aborts, Db};
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
    let deadlines = aborts::timeouts(db, now).await?;
    let (expired_running, next) = past_runtime(&deadlines, now);
    if !deadlines.expired.is_empty() {
        tracing::info!(entries = ?deadlines.expired, "aborting entries not started before their timeout");
        aborts::abort(
            db,
            &deadlines.expired,
            SYSTEM_USER,
            Some("timed out before it started".into()),
        )
        .await?;
    }
    if !expired_running.is_empty() {
        tracing::info!(entries = ?expired_running, "aborting entries past their maximum runtime");
        let active = aborts::abort(
            db,
            &expired_running,
            SYSTEM_USER,
            Some("ran past its maximum runtime".into()),
        )
        .await?;
        for (attempt, drone) in active {
            let grace = config.scheduler.abort_grace_sec;
            if let Err(error) =
                crate::status::send_abort_to(publisher, &drone, attempt, grace).await
            {
                tracing::warn!(%error, entry.id = attempt.entry, "abort recorded; telling the drone failed, will retry on its next heartbeat");
            }
        }
    }
    Ok(next)
}

/// The running entries past their maximum runtime at `now`, and the next deadline
/// (the earliest queue deadline or runtime deadline still ahead).
fn past_runtime(deadlines: &aborts::Deadlines, now: i64) -> (Vec<i64>, Option<i64>) {
    let mut next = deadlines.next;
    let mut expired = Vec::new();
    for limit in &deadlines.running {
        let deadline = limit.deadline();
        if deadline <= now {
            expired.push(limit.entry);
        } else {
            next = Some(next.map_or(deadline, |n: i64| n.min(deadline)));
        }
    }
    (expired, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aborts::{Deadlines, RuntimeLimit};

    fn limit(entry: i64, started_on: i64, max_runtime_us: i64) -> RuntimeLimit {
        RuntimeLimit {
            entry,
            started_on,
            max_runtime_us,
        }
    }

    #[test]
    fn an_entry_is_past_its_runtime_at_its_deadline_exactly() {
        let deadlines = Deadlines {
            running: vec![limit(1, 100, 50), limit(2, 100, 51)],
            ..Deadlines::default()
        };
        assert_eq!(past_runtime(&deadlines, 150), (vec![1], Some(151)));
    }

    #[test]
    fn the_next_deadline_is_the_earliest_of_queue_and_runtime() {
        let deadlines = Deadlines {
            next: Some(300),
            running: vec![limit(1, 100, 150), limit(2, 100, 500)],
            ..Deadlines::default()
        };
        assert_eq!(past_runtime(&deadlines, 200), (vec![], Some(250)));
        let none = Deadlines::default();
        assert_eq!(past_runtime(&none, 200), (vec![], None));
    }
}
