//! The lost-drone keeper: a drone silent for `[SCHEDULER] drone_timeout_sec` gets no
//! new work (the dispatcher checks heartbeats itself); once it has been silent for the
//! timeout plus [`LEASE_MARGIN_US`], the entries it was running are infra failures and
//! go back to the queue for another drone (see `db::intake::fail_lost_drone`). By then the
//! drone's own lease has stopped them, so a retry never runs beside the old attempt.
//!
//! Silence is the absence of events, so this one check runs on a timer: every tenth of
//! the timeout (at least once a second), reading only the drones table when all is well.
//!
//! Heartbeats travel in `autotest.status` behind the reports. When the scheduler falls
//! behind reading it, a drone that is alive looks silent while its lease, renewed by
//! the broker's confirms, keeps its jobs running; taking them back then would run a
//! retry beside the first attempt. So before judging a silent drone the keeper looks
//! at the queue, and judges nobody while reports wait there beyond what the consumer
//! has taken ([`judge`]).

use crate::db::{drones, intake, Db, DbError};
use crate::metrics::Metrics;
use crate::status::{infra_rules, timeout_us, Listening, LEASE_MARGIN_US};
use common::broker::{BrokerError, Publisher, STATUS_QUEUE};
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
    broker: Arc<Publisher>,
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
        match step(&db, &config, &listening, &broker, &metrics).await {
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
    broker: &Publisher,
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
    // A drone without a row is not judged (it has never been recorded).
    let silent: Vec<_> = config
        .scheduler
        .drones
        .iter()
        .filter(|drone| {
            beats
                .get(drone.as_str())
                .is_some_and(|beat| !beat.is_some_and(|t| t >= cutoff))
        })
        .collect();
    if silent.is_empty() {
        return Ok(0);
    }
    let waiting = broker.queue_depth(STATUS_QUEUE).await;
    if let Judgement::Wait(why) = judge(&waiting) {
        tracing::warn!(
            drones = ?silent.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "{why}: drones that look silent are not taken for lost yet"
        );
        return Ok(0);
    }
    let mut taken = 0;
    for drone in silent {
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

/// Whether silent drones may be taken for lost now.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    Judge,
    /// Not now, and why.
    Wait(String),
}

/// The rule, from what `autotest.status` holds beyond the consumer's prefetch window
/// (RabbitMQ's ready count): any report waiting there means the scheduler is behind
/// and a heartbeat may be among them; a queue that cannot be read says nothing either
/// way, so nobody is judged until it can be.
pub fn judge(waiting: &Result<u32, BrokerError>) -> Judgement {
    match waiting {
        Ok(0) => Judgement::Judge,
        Ok(n) => Judgement::Wait(format!(
            "{n} status reports wait in {STATUS_QUEUE} (the scheduler is behind reading them)"
        )),
        Err(error) => Judgement::Wait(format!("cannot read the depth of {STATUS_QUEUE}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_drones_are_judged_only_when_no_report_waits_behind_the_consumer() {
        assert_eq!(judge(&Ok(0)), Judgement::Judge);
        let Judgement::Wait(why) = judge(&Ok(10_559)) else {
            panic!("a backlog postpones the judgement");
        };
        assert!(why.contains("10559 status reports wait"), "{why}");
        let Judgement::Wait(why) = judge(&Err(BrokerError::Timeout("reading a queue's depth")))
        else {
            panic!("an unreadable queue postpones the judgement");
        };
        assert!(why.contains("cannot read the depth"), "{why}");
    }
}
