//! Status reports to the scheduler: published persistently with a confirm on a
//! connection of their own, retried with backoff (reconnecting) until the broker has
//! them. A report is never dropped because the broker was away for a while.

use common::broker::{self, BrokerError, Publisher};
use common::names::DroneName;
use common::protocol::{self, StatusEvent, StatusReport, SCHEMA_VERSION};
use std::time::Duration;

/// Publishes status reports for one drone.
pub struct Reporter {
    drone: DroneName,
    publisher: Publisher,
    /// Renewed on each confirmed report (see [`crate::supervise`]).
    lease_file: std::path::PathBuf,
    last_contact: std::sync::Mutex<std::time::Instant>,
}

impl Reporter {
    pub fn new(url: &str, drone: DroneName, lease_file: std::path::PathBuf) -> Self {
        let publisher = Publisher::new(url, &format!("drone-worker@{drone} (status)"));
        Self {
            drone,
            publisher,
            lease_file,
            last_contact: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// The broker has just confirmed something from this drone: the lease is renewed.
    pub fn contact(&self) {
        *self.last_contact.lock().expect("contact lock") = std::time::Instant::now();
        if let Err(error) = crate::supervise::renew_lease(&self.lease_file) {
            tracing::error!(%error, file = %self.lease_file.display(), "cannot renew the lease file; running jobs will be stopped when it expires");
        }
    }

    /// How long since the broker last confirmed anything from this drone (or since
    /// this process started).
    pub fn since_contact(&self) -> Duration {
        self.last_contact.lock().expect("contact lock").elapsed()
    }

    /// Publishes once; the error is returned, not retried.
    pub async fn try_send(&self, event: &StatusEvent) -> Result<(), BrokerError> {
        let report = StatusReport {
            schema: SCHEMA_VERSION,
            drone: self.drone.clone(),
            event: event.clone(),
            sent_at: common::time::now_micros(),
            sender_version: common::VERSION.to_string(),
        };
        let properties = broker::json_properties(
            &format!("status-{}-{}", self.drone, report.sent_at),
            "autotest.status",
            "drone-worker",
        );
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

    /// Publishes, retrying with backoff until the broker confirms.
    pub async fn send(&self, event: StatusEvent) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.try_send(&event).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "status report not confirmed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    pub async fn close(&self) {
        self.publisher.reset().await;
    }
}
