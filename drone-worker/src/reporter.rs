//! Status reports to the scheduler: published persistently with a confirm on a
//! connection of their own, retried with backoff (reconnecting) until the broker has
//! them. A report is never dropped because the broker was away for a while.
//!
//! One report is in flight at a time; events raised meanwhile wait and go together in
//! the next report, in the order they were raised. On an idle drone every event goes
//! out alone at once; on a busy one the broker, and the scheduler after it, handle one
//! message for several events instead of one each.

use common::backoff::Backoff;
use common::broker::{self, BrokerError, Publisher};
use common::names::DroneName;
use common::protocol::{self, StatusEvent, StatusReport, MAX_EVENTS_PER_REPORT, SCHEMA_VERSION};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The lease file is renewed at most this often: the supervisor reads its age in
/// whole seconds, and a busy drone has its reports confirmed hundreds of times a second.
const RENEW_EVERY: Duration = Duration::from_millis(250);

/// The most bytes of events put in one report (parts of parsed tests are large; a
/// report must stay far below [`protocol::MAX_MESSAGE_BYTES`]).
const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// How many of the waiting events (at least one) go in the next report: at most
/// [`MAX_EVENTS_PER_REPORT`], and no more bytes than [`MAX_REPORT_BYTES`].
fn batch_len<'a>(waiting: impl Iterator<Item = &'a StatusEvent>) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for event in waiting.take(MAX_EVENTS_PER_REPORT) {
        bytes += serde_json::to_vec(event).map_or(usize::MAX / 2, |v| v.len());
        if n > 0 && bytes > MAX_REPORT_BYTES {
            break;
        }
        n += 1;
    }
    n
}

/// Publishes status reports for one drone.
pub struct Reporter {
    shared: Arc<Shared>,
}

struct Shared {
    drone: DroneName,
    publisher: Publisher,
    /// The connection's broker user, stamped as `user_id` on every report: RabbitMQ
    /// refuses a `user_id` that is not the connection's user, so the scheduler can
    /// tell which drone's user sent it. None when the URL does not name the user
    /// (`EXTERNAL`): the reports then go unstamped.
    user_id: Option<String>,
    /// Renewed on confirmed reports (see [`crate::supervise`]).
    lease_file: std::path::PathBuf,
    contact: Mutex<Contact>,
    queue: Mutex<Queue>,
}

struct Contact {
    last: Instant,
    renewed: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    /// Events not yet taken into a report, each with who waits for its confirm.
    waiting: VecDeque<(StatusEvent, oneshot::Sender<()>)>,
    /// A task is publishing (and will take what waits when its report is confirmed).
    flushing: bool,
}

impl Reporter {
    pub fn new(
        broker: impl Into<common::broker::Endpoint>,
        drone: DroneName,
        lease_file: std::path::PathBuf,
    ) -> Self {
        let broker = broker.into();
        let user_id = broker.user();
        if user_id.is_none() {
            tracing::warn!("the broker URL names no user (EXTERNAL or ANONYMOUS login): status reports go without user_id, and a scheduler that checks it refuses them");
        }
        let publisher = Publisher::new(broker, &format!("drone-worker@{drone} (status)"));
        Self {
            shared: Arc::new(Shared {
                drone,
                publisher,
                user_id,
                lease_file,
                contact: Mutex::new(Contact {
                    last: Instant::now(),
                    renewed: None,
                }),
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// The broker has just confirmed something from this drone: the lease is renewed.
    pub fn contact(&self) {
        self.shared.contact();
    }

    /// How long since the broker last confirmed anything from this drone (or since
    /// this process started).
    pub fn since_contact(&self) -> Duration {
        self.shared
            .contact
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last
            .elapsed()
    }

    /// Publishes one event alone, once; the error is returned, not retried.
    pub async fn try_send(&self, event: &StatusEvent) -> Result<(), BrokerError> {
        self.shared.publish(std::slice::from_ref(event)).await
    }

    /// Returns once the broker has confirmed a report with `event`, retrying with
    /// backoff until it does. Events sent while a report is in flight go together in
    /// the next one.
    pub async fn send(&self, event: StatusEvent) {
        let (confirmed, wait) = oneshot::channel();
        let start = {
            let mut queue = self
                .shared
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.waiting.push_back((event, confirmed));
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            // A task of its own: the reports go out even if this caller stops waiting.
            tokio::spawn(self.shared.clone().flush());
        }
        let _ = wait.await;
    }

    pub async fn close(&self) {
        self.shared.publisher.reset().await;
    }
}

impl Shared {
    fn contact(&self) {
        let now = Instant::now();
        let renew = {
            let mut contact = self
                .contact
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            contact.last = now;
            let due = contact
                .renewed
                .is_none_or(|at| now.duration_since(at) >= RENEW_EVERY);
            if due {
                contact.renewed = Some(now);
            }
            due
        };
        if renew {
            if let Err(error) = crate::supervise::renew_lease(&self.lease_file) {
                tracing::error!(%error, file = %self.lease_file.display(), "cannot renew the lease file; running jobs will be stopped when it expires");
            }
        }
    }

    /// Publishes what waits, a report at a time, until nothing does.
    async fn flush(self: Arc<Self>) {
        loop {
            let batch: Vec<(StatusEvent, oneshot::Sender<()>)> = {
                let mut queue = self
                    .queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.flushing = false;
                    return;
                }
                let n = batch_len(queue.waiting.iter().map(|(event, _)| event));
                queue.waiting.drain(..n).collect()
            };
            let (events, confirmed): (Vec<StatusEvent>, Vec<_>) = batch.into_iter().unzip();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            while let Err(error) = self.publish(&events).await {
                let retry_in = backoff.next_delay();
                tracing::warn!(%error, events = events.len(), ?retry_in, "status report not confirmed, retrying");
                tokio::time::sleep(retry_in).await;
            }
            tracing::debug!(events = events.len(), "status report confirmed");
            for waiter in confirmed {
                let _ = waiter.send(());
            }
        }
    }

    async fn publish(&self, events: &[StatusEvent]) -> Result<(), BrokerError> {
        let report = StatusReport {
            schema: SCHEMA_VERSION,
            drone: self.drone.clone(),
            events: events.to_vec(),
            sent_at: common::time::now_micros(),
            sender_version: common::VERSION.to_string(),
        };
        let mut properties = broker::json_properties(
            &format!("status-{}-{}", self.drone, report.sent_at),
            "autotest.status",
            "drone-worker",
        );
        if let Some(user) = &self.user_id {
            properties = properties.with_user_id(user.as_str().into());
        }
        self.publisher
            .publish(
                broker::STATUS_EXCHANGE,
                broker::STATUS_ROUTING_KEY,
                &protocol::encode(&report),
                properties,
            )
            .await?;
        self.contact();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> StatusEvent {
        StatusEvent::Gathering {
            entry_id: 1,
            attempt: 1,
            exit_code: 0,
        }
    }

    fn big() -> StatusEvent {
        let tests = (0..2000)
            .map(|i| tko::TestResult::new(format!("{i:0>200}"), tko::Status::Good))
            .collect();
        StatusEvent::Tests {
            entry_id: 1,
            attempt: 1,
            part: 0,
            parts: 1,
            tests,
            dropped: 0,
            parse_error: None,
        }
    }

    #[test]
    fn a_report_holds_at_most_its_count_of_events_and_its_bytes() {
        let events: Vec<StatusEvent> = (0..100).map(|_| small()).collect();
        assert_eq!(batch_len(events.iter()), MAX_EVENTS_PER_REPORT);
        let events = [big(), big(), big(), small()];
        let n = batch_len(events.iter());
        assert!((1..=2).contains(&n), "{n}");
        // A single event larger than the budget still goes, alone.
        let events = [big(), big()];
        assert!(batch_len(events.iter()) >= 1);
    }
}
