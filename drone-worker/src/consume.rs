//! The job queue's consumer: connects (again, with backoff, after the broker was
//! lost), takes each delivery into the journal and starts its attempt, and hears the
//! control queue (aborts) beside it, until the shutdown and then the drain are over.

use crate::attempts::AttemptId;
use crate::journal::Stage;
use crate::pusher::Pusher;
use crate::Inner;
use common::backoff::Backoff;
use common::broker;
use common::protocol::{self, RunJob};
use common::shutdown::Shutdown;
use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{message::Delivery, Channel};
use std::sync::Arc;
use std::time::Duration;

impl Inner {
    /// Consumes, reconnecting after a broker failure, until the shutdown and then the
    /// drain are over (Ok), or until a failure retrying cannot fix (Err).
    pub(crate) async fn consume_until_drained(
        self: Arc<Self>,
        pusher: Pusher,
        mut shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            let was_stopping = shutdown.is_triggered();
            if was_stopping && self.attempts.count() == 0 {
                break;
            }
            match self.consume(&pusher, &mut shutdown).await {
                Ok(()) => break,
                Err(error) if is_fatal(&error) => {
                    // What it holds stays in the journal for a compatible release.
                    tracing::error!(error = %format!("{error:#}"), "cannot work with this vhost");
                    return Err(error);
                }
                Err(error) => {
                    let retry_in = backoff.next_delay();
                    tracing::warn!(%error, ?retry_in, "lost the broker, reconnecting");
                    // Draining, it reconnects to hear aborts, until it holds nothing.
                    let mut signal = shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(retry_in) => {}
                        _ = signal.wait(), if !was_stopping => {}
                        _ = self.attempts.drained(), if was_stopping => break,
                    }
                }
            }
        }
        self.attempts.drained().await;
        Ok(())
    }

    /// Connects, declares, consumes until shutdown (Ok) or a broker failure (Err).
    pub(crate) async fn consume(
        self: &Arc<Self>,
        pusher: &Pusher,
        shutdown: &mut Shutdown,
    ) -> anyhow::Result<()> {
        // Reconnected while draining: aborts only, no jobs.
        let mut draining = shutdown.is_triggered();
        let control_queue = broker::control_queue(&self.name);
        let (connection, channel, mut consumer, mut control) =
            broker::within("setting up the drone's consumers", async {
                let url = &self.config.broker;
                let connection =
                    broker::connect(url, &format!("drone-worker@{}", self.name)).await?;
                broker::declare_common_if_allowed(&connection).await?;
                let channel = broker::confirm_channel(&connection).await?;
                broker::declare_drone_queue(&channel, &self.name).await?;
                let prefetch = (self.capacity * 2).clamp(1, 1000) as u16;
                channel
                    .basic_qos(prefetch, BasicQosOptions::default())
                    .await?;
                let consumer = if draining {
                    None
                } else {
                    Some(
                        channel
                            .basic_consume(
                                self.queue.as_str().into(),
                                format!("drone-worker@{}", self.name).into(),
                                BasicConsumeOptions::default(),
                                FieldTable::default(),
                            )
                            .await?,
                    )
                };
                let control = channel
                    .basic_consume(
                        control_queue.as_str().into(),
                        format!("drone-worker@{} (control)", self.name).into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                Ok::<_, anyhow::Error>((connection, channel, consumer, control))
            })
            .await?;
        tracing::info!(queue = %self.queue, control = %control_queue, "consuming");
        self.reporter.contact();
        loop {
            tokio::select! {
                _ = shutdown.wait(), if !draining => {
                    // No new jobs (what was delivered and not taken goes back to the
                    // queue with the connection); aborts are still heard until the
                    // entries held are done.
                    if let Some(consumer) = &consumer {
                        let _ = channel
                            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                            .await;
                    }
                    draining = true;
                }
                _ = self.attempts.drained(), if draining => {
                    broker::close(&connection, "drone worker shutting down").await;
                    return Ok(());
                }
                next = async { consumer.as_mut()?.next().await }, if !draining => match next {
                    Some(Ok(delivery)) => self.on_delivery(&channel, delivery, pusher).await,
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the broker cancelled the consumer"),
                },
                next = control.next() => match next {
                    Some(Ok(delivery)) => self.on_control(&channel, delivery, &control_queue).await,
                    Some(Err(error)) => return Err(error.into()),
                    None => anyhow::bail!("the broker cancelled the control consumer"),
                },
            }
        }
    }

    async fn on_delivery(self: &Arc<Self>, channel: &Channel, delivery: Delivery, pusher: &Pusher) {
        tracing::debug!(delivery_tag = delivery.delivery_tag, "delivery received");
        let job = match protocol::decode::<RunJob>(&delivery.data) {
            Ok(job) if job.hosts.is_empty() => {
                let reason = format!(
                    "entry {} attempt {} names no hosts: nothing to run Autoserv on",
                    job.entry_id, job.attempt
                );
                return reject(channel, &delivery, &self.queue, &reason).await;
            }
            Ok(job) if job.drone == self.name => job,
            Ok(job) => {
                let reason = format!("addressed to drone {}, not {}", job.drone, self.name);
                return reject(channel, &delivery, &self.queue, &reason).await;
            }
            Err(error) => return reject(channel, &delivery, &self.queue, &error.to_string()).await,
        };
        let id = AttemptId::of(&job);
        let duplicate = self.attempts.holds(id) || self.journal.knows(id);
        if duplicate {
            tracing::info!(
                entry.id = job.entry_id,
                attempt = job.attempt,
                "duplicate delivery ignored"
            );
            ack(&delivery).await;
            return;
        }
        // Journal first (no fsync yet), start at once, and ack only once the journal
        // is on disk: a crash before the ack means a redelivery, which the journal
        // recognises; a power cut before it also took Autoserv down with it.
        // In place: a small write, and waiting for a blocking-pool thread and then
        // for this task to be woken again cost more than it does.
        let journaled = tokio::task::block_in_place(|| self.journal.put(&job, Stage::Accepted));
        if let Err(error) = journaled {
            tracing::error!(%error, entry.id = job.entry_id, "cannot journal the job; handing it back");
            let _ = broker::requeue(&delivery).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        self.attempts.hold(id);
        tracing::debug!(entry.id = job.entry_id, "journaled");
        let (gate, opened) = tokio::sync::oneshot::channel();
        self.launch(job, Stage::Accepted, pusher, Some(gate));
        let journal = self.journal.clone();
        tokio::spawn(async move {
            // The fsync waits until Autoserv is spawned (or has to wait): creating the
            // entry's files during a journal commit of the filesystem would stall.
            let _ = opened.await;
            let synced = tokio::task::spawn_blocking(move || journal.sync(id)).await;
            // NotFound: the attempt ended at once (refused) and its record moved to
            // the done log already.
            if let Ok(Err(error)) = synced.as_ref().map(|r| r.as_ref().map_err(|e| e.kind())) {
                if error == std::io::ErrorKind::NotFound {
                    tracing::debug!(entry.id = id.entry, "journal record already closed");
                    return ack(&delivery).await;
                }
            }
            if let Ok(Err(error)) = synced {
                tracing::error!(%error, entry.id = id.entry, "cannot fsync the journal; acking anyway (the job is running)");
            }
            ack(&delivery).await;
        });
    }
}

/// Whether a broker failure is one retrying cannot fix.
fn is_fatal(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<broker::BrokerError>()
            .is_some_and(broker::BrokerError::is_fatal)
    })
}

/// Moves an unreadable message from `queue` to the dead-letter queue, with the reason.
pub(crate) async fn reject(channel: &Channel, delivery: &Delivery, queue: &str, reason: &str) {
    tracing::warn!(
        queue,
        reason,
        "unreadable message moved to the dead-letter queue"
    );
    if let Err(error) = broker::dead_letter(channel, delivery, queue, reason).await {
        tracing::error!(%error, "could not dead-letter the message; it stays on the queue");
    }
}

/// Acks a delivery, logging what went wrong (a redelivery is then ignored).
pub(crate) async fn ack(delivery: &Delivery) {
    match broker::ack(delivery, false).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("ack not sent (channel gone); the broker will redeliver and the duplicate will be ignored"),
        Err(error) => tracing::warn!(%error, "ack failed; the broker will redeliver and the duplicate will be ignored"),
    }
}
