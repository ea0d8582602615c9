//! The control queue's commands: an abort stops an attempt's process group (SIGTERM,
//! then SIGKILL after the grace period), or keeps an attempt not started yet from
//! starting.

use crate::attempts::AttemptId;
use crate::consume::{ack, reject};
use crate::supervise;
use crate::Inner;
use common::protocol;
use lapin::{message::Delivery, Channel};
use nix::sys::signal::Signal;
use std::sync::Arc;
use std::time::Duration;

impl Inner {
    pub(crate) async fn on_control(
        self: &Arc<Self>,
        channel: &Channel,
        delivery: Delivery,
        queue: &str,
    ) {
        let control = match protocol::decode::<protocol::Control>(&delivery.data) {
            Ok(control) if control.drone == self.name => control,
            Ok(control) => {
                let reason = format!("addressed to drone {}, not {}", control.drone, self.name);
                return reject(channel, &delivery, queue, &reason).await;
            }
            Err(error) => return reject(channel, &delivery, queue, &error.to_string()).await,
        };
        match control.command {
            protocol::ControlCommand::Abort {
                entry_id,
                attempt,
                grace_sec,
            } => {
                let id = AttemptId {
                    entry: entry_id,
                    attempt,
                };
                self.abort(id, Duration::from_secs(grace_sec)).await;
            }
        }
        ack(&delivery).await;
    }

    /// Stops an attempt: SIGTERM to its process group, SIGKILL after `grace` if it is
    /// still there; an attempt not started yet will not start.
    async fn abort(self: &Arc<Self>, id: AttemptId, grace: Duration) {
        let AttemptId {
            entry: entry_id,
            attempt,
        } = id;
        let Some(prefix) = self.attempts.abort(id) else {
            tracing::info!(
                entry.id = entry_id,
                attempt,
                "abort noted; the attempt is not running here"
            );
            return;
        };
        // Autoserv's pid (its process group), written by the supervisor as it starts.
        let mut pgid = supervise::recorded_pid(&prefix);
        for _ in 0..50 {
            if pgid.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            pgid = supervise::recorded_pid(&prefix);
        }
        let Some(pgid) = pgid else {
            tracing::error!(
                entry.id = entry_id,
                attempt,
                "cannot abort: Autoserv's process group is unknown"
            );
            return;
        };
        tracing::info!(
            entry.id = entry_id,
            attempt,
            pgid,
            ?grace,
            "aborting: SIGTERM to the process group"
        );
        supervise::signal_group(pgid, Signal::SIGTERM);
        let inner = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if inner.attempts.running(id).is_some() {
                tracing::warn!(
                    entry.id = entry_id,
                    attempt,
                    pgid,
                    "still running after the grace period: SIGKILL"
                );
                supervise::signal_group(pgid, Signal::SIGKILL);
            }
        });
    }
}
