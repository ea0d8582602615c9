//! A publishing connection of its own, opened on first use and reopened after a
//! failure.

use super::{
    close, confirm_channel, connect, declare_common_if_allowed, publish_confirmed, within,
};
use super::{BrokerError, Endpoint};
use lapin::{
    options::QueueDeclareOptions, types::FieldTable, BasicProperties, Channel, Connection,
};

/// A publishing connection of its own (so consumer flow control never stalls it), in
/// confirm mode, opened on first use and reopened after a failure.
pub struct Publisher {
    broker: Endpoint,
    connection_name: String,
    /// The connection, and how many have been opened: a failure on an older one must
    /// not close its successor.
    link: tokio::sync::Mutex<(u64, Option<(Connection, Channel)>)>,
}

impl Publisher {
    /// A publisher to `broker` (`&config.broker`, or a bare URL); connects on first use.
    pub fn new(broker: impl Into<Endpoint>, connection_name: &str) -> Self {
        Self {
            broker: broker.into(),
            connection_name: connection_name.to_string(),
            link: tokio::sync::Mutex::new((0, None)),
        }
    }

    /// The publishing channel and its connection's number.
    async fn channel(&self) -> Result<(Channel, u64), BrokerError> {
        let mut link = self.link.lock().await;
        if let (opened, Some((connection, channel))) = &*link {
            if connection.status().connected() && channel.status().connected() {
                return Ok((channel.clone(), *opened));
            }
        }
        let (connection, channel) = within("opening a channel to publish", async {
            let connection = connect(&self.broker, &self.connection_name).await?;
            // Whoever publishes first (a worker's first heartbeat may beat the
            // scheduler's own declarations) finds the exchanges there; declaring is
            // idempotent.
            declare_common_if_allowed(&connection).await?;
            let channel = confirm_channel(&connection).await?;
            Ok::<_, BrokerError>((connection, channel))
        })
        .await?;
        link.0 += 1;
        link.1 = Some((connection, channel.clone()));
        Ok((channel, link.0))
    }

    /// Publishes once with confirm and `mandatory`; after a failure the next call
    /// reconnects.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BrokerError> {
        let (channel, opened) = self.channel().await?;
        let result = publish_confirmed(&channel, exchange, routing_key, payload, properties).await;
        if matches!(result, Err(BrokerError::Amqp(_) | BrokerError::Timeout(_))) {
            self.reset_if(opened).await;
        }
        result
    }

    /// Messages ready in a queue (a passive declare on this connection).
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, BrokerError> {
        Ok(self.queue_counts(queue).await?.0)
    }

    /// Messages ready in a queue and its consumers (a passive declare on this
    /// connection).
    pub async fn queue_counts(&self, queue: &str) -> Result<(u32, u32), BrokerError> {
        let (channel, opened) = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let declared = within("reading a queue's depth", async {
            Ok::<_, BrokerError>(
                channel
                    .queue_declare(queue.into(), passive, FieldTable::default())
                    .await?,
            )
        })
        .await;
        match declared {
            Ok(declared) => Ok((declared.message_count(), declared.consumer_count())),
            Err(error) => {
                self.reset_if(opened).await;
                Err(error)
            }
        }
    }

    /// Drops the connection (it is reopened on the next publish).
    pub async fn reset(&self) {
        let link = self.link.lock().await.1.take();
        if let Some((connection, _)) = link {
            close(&connection, "closing").await;
        }
    }

    /// Drops connection number `opened` if it is still the current one.
    async fn reset_if(&self, opened: u64) {
        let link = {
            let mut link = self.link.lock().await;
            if link.0 == opened {
                link.1.take()
            } else {
                None
            }
        };
        if let Some((connection, _)) = link {
            close(&connection, "closing").await;
        }
    }
}
