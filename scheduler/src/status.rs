//! The status consumer: reads what drones report from `autotest.status`, applies a
//! batch of reports in one transaction, then acks them. Unreadable reports go to the
//! dead-letter queue with the reason; reports from an older attempt are logged as stale
//! and change nothing.

use crate::db::{intake, Db};
use crate::intake::{Applied, InfraRules, Report};
use crate::model::AttemptId;
use common::backoff::Backoff;
use common::broker;
use common::config::Config;
use common::names::DroneName;
use common::protocol::{self, StatusReport};
use common::shutdown::Shutdown;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Most reports applied in one transaction.
const BATCH: usize = 500;

/// How long after `drone_timeout_sec` the scheduler waits before it takes entries back
/// from a silent drone: the drone's own lease (it stops its jobs once it has not reached
/// the broker for `drone_timeout_sec`) has then certainly run out.
pub const LEASE_MARGIN_US: i64 = 5_000_000;

/// The infra-failure rules from the config.
pub fn infra_rules(config: &Config) -> InfraRules {
    InfraRules {
        max_retries: i32::try_from(config.scheduler.max_infra_retries).unwrap_or(i32::MAX),
        reclaim_after_us: timeout_us(config) + LEASE_MARGIN_US,
    }
}

/// `drone_timeout_sec` in microseconds.
pub fn timeout_us(config: &Config) -> i64 {
    i64::try_from(config.scheduler.drone_timeout_sec)
        .unwrap_or(i64::MAX / 4_000_000)
        .saturating_mul(1_000_000)
}

/// Since when (UTC microseconds) the status consumer has been reading without a break;
/// 0 while it is not. Drones cannot be judged silent before it has read for a while.
#[derive(Debug, Default)]
pub struct Listening(AtomicI64);

impl Listening {
    pub fn since(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
    fn set(&self, since: Option<i64>) {
        self.0.store(since.unwrap_or(0), Ordering::Relaxed);
    }
}

/// What the status consumer works with.
pub struct StatusConsumer {
    pub db: Db,
    pub config: Arc<Config>,
    /// Wakes the dispatcher (a slot or a drone became free).
    pub wake: Arc<Notify>,
    /// Wakes the timeout keeper (entries started: new runtime deadlines).
    pub timers: Arc<Notify>,
    /// For sending aborts again on heartbeats.
    pub publisher: Arc<broker::Publisher>,
    pub listening: Arc<Listening>,
    pub connection_name: String,
    /// Who may report for which drone, and where drones may send readers.
    pub gate: Arc<crate::sender::Gate>,
    /// Counts reports and what they did.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Consumes status reports until shutdown, reconnecting after broker failures.
pub async fn run(consumer: StatusConsumer, mut shutdown: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_triggered() {
        let StatusConsumer {
            db,
            config,
            wake,
            timers,
            publisher,
            listening,
            connection_name,
            gate,
            metrics,
        } = &consumer;
        let result = consume(
            Shared {
                db,
                config,
                wake,
                timers,
                publisher,
                listening,
                gate,
                metrics,
            },
            connection_name,
            &mut shutdown,
        )
        .await;
        listening.set(None);
        // What this connection held unacked goes back to the queue.
        metrics.reports_settled();
        match result {
            Ok(()) => return,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "status consumer lost the broker, reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return,
                }
            }
        }
    }
}

/// Declares the whole topology (so jobs are routable before any worker starts).
pub async fn declare_topology(
    channel: &lapin::Channel,
    config: &Config,
) -> Result<(), broker::BrokerError> {
    broker::declare_common(channel).await?;
    for drone in &config.scheduler.drones {
        broker::declare_drone_queue(channel, drone).await?;
    }
    Ok(())
}

/// [`StatusConsumer`] borrowed for one connection.
struct Shared<'a> {
    db: &'a Db,
    config: &'a Config,
    wake: &'a Notify,
    timers: &'a Notify,
    publisher: &'a broker::Publisher,
    listening: &'a Listening,
    gate: &'a crate::sender::Gate,
    metrics: &'a crate::metrics::Metrics,
}

/// Reads and records status reports on one connection until shutdown (Ok) or until the
/// connection fails (Err).
async fn consume(
    shared: Shared<'_>,
    connection_name: &str,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    let rules = infra_rules(shared.config);
    let (connection, channel, mut consumer) = subscribe(shared.config, connection_name).await?;
    tracing::info!(queue = broker::STATUS_QUEUE, "consuming status reports");
    shared.listening.set(Some(common::time::now_micros()));
    // One watch for the connection's life, not a new timer for every batch.
    let gone = broker::gone(&connection);
    tokio::pin!(gone);
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => {
                broker::close(&connection, "scheduler shutting down").await;
                return Ok(());
            }
            next = consumer.next() => next,
            () = &mut gone => {
                anyhow::bail!("the connection to the broker is down, and the consumer was not told")
            }
        };
        let mut batch = vec![next_delivery(first)?];
        shared.metrics.reports_received(common::time::now_micros());
        while batch.len() < BATCH {
            match consumer.next().now_or_never() {
                Some(next) => batch.push(next_delivery(next)?),
                None => break,
            }
        }
        let (reports, readable) = decode_batch(&channel, shared.gate, batch).await?;
        if reports.is_empty() {
            // Nothing readable: dead-lettered.
            shared.metrics.reports_settled();
        } else {
            record_batch(&shared, &reports, &readable, rules).await?;
        }
    }
}

/// Connects, declares the topology and starts consuming `autotest.status`.
async fn subscribe(
    config: &Config,
    connection_name: &str,
) -> anyhow::Result<(lapin::Connection, lapin::Channel, lapin::Consumer)> {
    broker::within("setting up the status consumer", async {
        let connection = broker::connect(&config.broker, connection_name).await?;
        let channel = broker::confirm_channel(&connection).await?;
        declare_topology(&channel, config).await?;
        channel
            .basic_qos(BATCH as u16 * 2, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                broker::STATUS_QUEUE.into(),
                connection_name.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, anyhow::Error>((connection, channel, consumer))
    })
    .await
}

/// The reports in a batch of deliveries, and the deliveries they came in; unreadable
/// deliveries go to the dead-letter queue with the reason.
async fn decode_batch(
    channel: &lapin::Channel,
    gate: &crate::sender::Gate,
    batch: Vec<Delivery>,
) -> anyhow::Result<(Vec<Report>, Vec<Delivery>)> {
    let mut reports = Vec::with_capacity(batch.len());
    let mut readable: Vec<Delivery> = Vec::with_capacity(batch.len());
    for delivery in batch {
        match protocol::decode::<StatusReport>(&delivery.data) {
            Ok(report) => {
                let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
                reports.extend(gate.admit(report, user_id));
                readable.push(delivery);
            }
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(
                    reason,
                    "unreadable status report moved to the dead-letter queue"
                );
                broker::dead_letter(channel, &delivery, broker::STATUS_QUEUE, &reason).await?;
            }
        }
    }
    Ok((reports, readable))
}

/// Records a batch of reports in one transaction, then acks their deliveries (or hands
/// them back when the database fails) and wakes whoever the outcome concerns.
async fn record_batch(
    shared: &Shared<'_>,
    reports: &[Report],
    readable: &[Delivery],
    rules: InfraRules,
) -> anyhow::Result<()> {
    let Shared {
        db,
        listening,
        metrics,
        ..
    } = *shared;
    let began = std::time::Instant::now();
    match intake::apply(db, reports, rules).await {
        Ok((outcomes, tally)) => {
            metrics.reports(reports, &outcomes, &tally);
            metrics.reports_settled();
            if listening.since().is_none() {
                listening.set(Some(common::time::now_micros()));
            }
            tracing::debug!(
                reports = reports.len(),
                applied_us = began.elapsed().as_micros() as u64,
                "status reports recorded"
            );
            follow_up(shared, reports, &outcomes).await;
            // One ack for the whole batch: every earlier delivery on this channel
            // has been acked or dead-lettered already. Bounded like every other
            // exchange with the broker: an ack that never completes must not stop
            // the consumer for good (the reports come again on the next
            // connection, and recording one twice changes nothing).
            if let Some(last) = readable.last() {
                broker::ack(last, true).await?;
            }
        }
        Err(error) => {
            // Reports wait unrecorded: heartbeats too, so silence proves nothing
            // until a batch is recorded again.
            listening.set(None);
            tracing::error!(%error, reports = readable.len(), "cannot record status reports; handing them back");
            for delivery in readable {
                broker::requeue(delivery).await?;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    Ok(())
}

/// After a batch is recorded: logs stale reports, sends pending aborts to drones heard
/// from, wakes the dispatcher when a slot or a drone became free and the timeout keeper
/// when entries started.
async fn follow_up(shared: &Shared<'_>, reports: &[Report], outcomes: &[Applied]) {
    let Shared {
        db,
        config,
        wake,
        timers,
        publisher,
        ..
    } = *shared;
    let mut wake_dispatcher = false;
    for (report, outcome) in reports.iter().zip(outcomes) {
        let drone = &report.drone;
        match outcome {
            Applied::Changed { slot_freed } => wake_dispatcher |= slot_freed,
            Applied::Stale => log_stale(db, drone, &report.event).await,
            Applied::Refused => {}
            Applied::UnknownEntry => {
                if let Some(attempt) = crate::intake::event_attempt(&report.event) {
                    crate::sender::unknown_entry(drone, attempt.entry);
                }
            }
            Applied::Heartbeat { .. } => {
                // A drone heard from again may take work.
                wake_dispatcher = true;
                resend_aborts(db, config, publisher, drone).await
            }
        }
    }
    if wake_dispatcher {
        wake.notify_one();
    }
    // Entries that started have new runtime deadlines.
    let started = reports.iter().zip(outcomes).any(|(r, o)| {
        matches!(
            (&r.event, o),
            (
                protocol::StatusEvent::Running { .. },
                Applied::Changed { .. }
            )
        )
    });
    if started {
        timers.notify_one();
    }
}

/// Tells a drone to abort an attempt (persistent, on its control queue).
pub async fn send_abort_to(
    publisher: &broker::Publisher,
    drone: &DroneName,
    attempt: AttemptId,
    grace_sec: u64,
) -> anyhow::Result<()> {
    let AttemptId {
        entry: entry_id,
        attempt,
    } = attempt;
    let control = protocol::Control {
        schema: protocol::SCHEMA_VERSION,
        drone: drone.clone(),
        command: protocol::ControlCommand::Abort {
            entry_id,
            attempt,
            grace_sec,
        },
        sender_version: common::VERSION.to_string(),
    };
    let properties = broker::json_properties(
        &format!("abort-{entry_id}.{attempt}"),
        "autotest.control",
        "autotest-scheduler",
    );
    publisher
        .publish(
            broker::CONTROL_EXCHANGE,
            drone.as_str(),
            &protocol::encode(&control),
            properties,
        )
        .await?;
    tracing::info!(
        entry.id = entry_id,
        attempt,
        drone.name = %drone,
        "abort sent"
    );
    Ok(())
}

fn next_delivery(next: Option<Result<Delivery, lapin::Error>>) -> anyhow::Result<Delivery> {
    match next {
        Some(Ok(delivery)) => Ok(delivery),
        Some(Err(error)) => Err(error.into()),
        None => anyhow::bail!("the broker cancelled the status consumer"),
    }
}

/// Aborts recorded for a drone's active entries are sent again on each heartbeat
/// until the entries end: an abort reaches a drone that was away or a broker that
/// restarted.
async fn resend_aborts(db: &Db, config: &Config, publisher: &broker::Publisher, drone: &DroneName) {
    match crate::db::jobs::pending_aborts(db, drone).await {
        Ok(pending) => {
            for attempt in pending {
                let grace = config.scheduler.abort_grace_sec;
                if let Err(error) = send_abort_to(publisher, drone, attempt, grace).await {
                    tracing::warn!(%error, entry.id = attempt.entry, "abort not sent, will retry");
                }
            }
        }
        Err(error) => tracing::error!(%error, "cannot read pending aborts"),
    }
}

async fn log_stale(db: &Db, drone: &DroneName, event: &protocol::StatusEvent) {
    let Some(attempt) = crate::intake::event_attempt(event) else {
        return;
    };
    let current = intake::current(db, attempt.entry).await.ok().flatten();
    tracing::warn!(
        entry.id = attempt.entry,
        attempt = attempt.attempt,
        drone.name = %drone,
        current = ?current,
        report = ?event,
        "stale status report recorded in the entry's history; nothing else changed"
    );
}
