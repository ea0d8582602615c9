//! RabbitMQ names and topology, and the two operations both sides need: publishing
//! with a confirm that also catches `mandatory` returns, and dead-lettering a delivery
//! with the reason in a header.
//!
//! Topology (all durable):
//! - exchange `autotest.jobs` (direct) → queue `autotest.drone.<name>` per drone,
//!   routing key = drone name, dead-lettering to `autotest.dead-letter`;
//! - exchange `autotest.status` (direct) → queue `autotest.status`, routing key `status`;
//! - exchange `autotest.dead-letter` (fanout) → queue `autotest.dead-letter`;
//! - exchange `autotest.schema` (fanout, nothing bound, never published to): its
//!   `alternate-exchange` argument names the message schema of whoever declared it
//!   first (`autotest.schema.v1`). Everyone declares it with their own schema, and
//!   RabbitMQ refuses a declaration whose `alternate-exchange` differs (it ignores other
//!   custom arguments), so a scheduler and a worker that cannot read each other's
//!   messages find out at start, with [`BrokerError::IncompatibleSchema`], instead of
//!   dead-lettering jobs.

use crate::names::DroneName;
use lapin::{
    options::{
        BasicAckOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
};

pub const JOBS_EXCHANGE: &str = "autotest.jobs";
pub const CONTROL_EXCHANGE: &str = "autotest.control";
pub const STATUS_EXCHANGE: &str = "autotest.status";
pub const STATUS_QUEUE: &str = "autotest.status";
pub const STATUS_ROUTING_KEY: &str = "status";
pub const DEAD_LETTER_EXCHANGE: &str = "autotest.dead-letter";
pub const DEAD_LETTER_QUEUE: &str = "autotest.dead-letter";
pub const SCHEMA_EXCHANGE: &str = "autotest.schema";
/// The schema marker: `alternate-exchange` is one of the arguments RabbitMQ checks
/// when an exchange is declared again.
pub const SCHEMA_ARGUMENT: &str = "alternate-exchange";

/// The value of [`SCHEMA_ARGUMENT`] for a message schema.
pub fn schema_marker(schema: u32) -> String {
    format!("autotest.schema.v{schema}")
}
/// Header carrying why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-autotest-reason";

/// The queue a drone consumes control messages (abort) from.
pub fn control_queue(drone: &DroneName) -> String {
    format!("autotest.drone.{drone}.control")
}

/// The queue a drone consumes its jobs from.
pub fn drone_queue(drone: &DroneName) -> String {
    format!("autotest.drone.{drone}")
}

/// Why talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (negative confirm)")]
    Nacked,
    #[error("no queue is bound for routing key {routing_key:?} on {exchange:?}: message returned ({reply})")]
    Unroutable {
        exchange: String,
        routing_key: String,
        reply: String,
    },
    #[error("incompatible versions: this program (autotest {version}) speaks message schema {ours}, but this vhost's scheduler and workers use another one (the broker says: {reply}). Run the same release of autotest-scheduler and drone-worker, or give the new release a vhost of its own")]
    IncompatibleSchema {
        ours: u32,
        version: &'static str,
        reply: String,
    },
    #[error("cannot read the TLS file {file}: {error}")]
    Tls { file: String, error: String },
    #[error("the broker did not answer within 10 s ({0})")]
    Timeout(&'static str),
}

impl BrokerError {
    /// Whether retrying cannot help (the other side runs an incompatible release).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::IncompatibleSchema { .. })
    }
}

/// Declares `autotest.schema` with our message schema; a vhost set up by an
/// incompatible release refuses it.
async fn declare_schema(channel: &Channel) -> Result<(), BrokerError> {
    let ours = crate::protocol::SCHEMA_VERSION;
    let mut args = FieldTable::default();
    args.insert(
        SCHEMA_ARGUMENT.into(),
        AMQPValue::LongString(schema_marker(ours).into()),
    );
    match channel
        .exchange_declare(
            SCHEMA_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable(),
            args,
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(error) if error.to_string().contains("inequivalent arg") => {
            Err(BrokerError::IncompatibleSchema {
                ours,
                version: crate::VERSION,
                reply: error.to_string(),
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// Returns once `connection` is no longer connected (checked every second). For a
/// consumer waiting on its stream, which should end when its connection does: once, in
/// CI, the status consumer went quiet through a broker restart without ever reporting
/// the loss, and the drones it no longer heard from were counted lost.
pub async fn gone(connection: &Connection) {
    while connection.status().connected() {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Closes a connection, waiting for the broker's agreement at most [`BROKER_TIMEOUT`]
/// (a quiet broker never agrees; the socket goes with the connection anyway).
pub async fn close(connection: &Connection, reason: &str) {
    let _ = tokio::time::timeout(BROKER_TIMEOUT, connection.close(200, reason.into())).await;
}

/// Opens a connection named so it reads well in the management UI.
pub async fn connect(url: &str, connection_name: &str) -> Result<Connection, BrokerError> {
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    // A broker that is starting up can accept the TCP connection and not answer for a
    // long time; every caller retries, so give up and try again instead of hanging
    // (a worker that hangs here stops renewing its lease).
    let connecting = async {
        if !url.starts_with("amqps://") {
            return Ok(Connection::connect(url, props).await?);
        }
        let tls = tls_config()?;
        let runtime = lapin::runtime::default_runtime()?;
        Ok(Connection::connect_with_config(url, props, tls, runtime).await?)
    };
    tokio::time::timeout(BROKER_TIMEOUT, connecting)
        .await
        .map_err(|_| BrokerError::Timeout("connecting"))?
}

/// The longest wait for the broker to connect or to confirm a message.
pub const BROKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Bounds an exchange with the broker by [`BROKER_TIMEOUT`]. A broker that accepted the
/// connection and then went quiet (still starting up after a restart, overloaded, a
/// half-open network) would otherwise leave the caller waiting for an answer that never
/// comes; every caller retries, so an error is what it needs.
pub async fn within<T, E>(
    what: &'static str,
    exchange: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E>
where
    E: From<BrokerError>,
{
    tokio::time::timeout(BROKER_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(BrokerError::Timeout(what).into()))
}

/// The TLS files for `amqps://` connections of this process (from `[BROKER]`).
static TLS: std::sync::RwLock<Option<TlsFiles>> = std::sync::RwLock::new(None);

#[derive(Clone, Debug)]
struct TlsFiles {
    ca_file: std::path::PathBuf,
    client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Uses the `[BROKER]` TLS files for this process's `amqps://` connections.
pub fn configure_tls(config: &crate::config::BrokerConfig) {
    *TLS.write().expect("TLS lock") = Some(TlsFiles {
        ca_file: config.ca_file.clone(),
        client: config.client_cert.clone().zip(config.client_key.clone()),
    });
}

fn tls_config() -> Result<lapin::tcp::OwnedTLSConfig, BrokerError> {
    let files = TLS.read().expect("TLS lock").clone().unwrap_or(TlsFiles {
        ca_file: crate::config::DEFAULT_CA_FILE.into(),
        client: None,
    });
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|error| BrokerError::Tls {
            file: path.display().to_string(),
            error: error.to_string(),
        })
    };
    let ca = read(&files.ca_file)?;
    let identity = match &files.client {
        Some((cert, key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read(cert)?,
            key: read(key)?,
        }),
        None => None,
    };
    Ok(lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain: Some(String::from_utf8_lossy(&ca).into_owned()),
    })
}

fn durable() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions::durable()
}

/// Declares the shared exchanges and queues (idempotent).
pub async fn declare_common(channel: &Channel) -> Result<(), BrokerError> {
    declare_schema(channel).await?;
    let none = FieldTable::default;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable(),
            none(),
        )
        .await?;
    channel
        .queue_declare(DEAD_LETTER_QUEUE.into(), durable_queue(), none())
        .await?;
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            none(),
        )
        .await?;
    channel
        .exchange_declare(
            JOBS_EXCHANGE.into(),
            ExchangeKind::Direct,
            durable(),
            none(),
        )
        .await?;
    channel
        .exchange_declare(
            STATUS_EXCHANGE.into(),
            ExchangeKind::Direct,
            durable(),
            none(),
        )
        .await?;
    channel
        .exchange_declare(
            CONTROL_EXCHANGE.into(),
            ExchangeKind::Direct,
            durable(),
            none(),
        )
        .await?;
    channel
        .queue_declare(STATUS_QUEUE.into(), durable_queue(), dead_letter_args())
        .await?;
    channel
        .queue_bind(
            STATUS_QUEUE.into(),
            STATUS_EXCHANGE.into(),
            STATUS_ROUTING_KEY.into(),
            QueueBindOptions::default(),
            none(),
        )
        .await?;
    Ok(())
}

fn dead_letter_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    args
}

/// Declares a drone's job and control queues and binds them (idempotent).
pub async fn declare_drone_queue(channel: &Channel, drone: &DroneName) -> Result<(), BrokerError> {
    let control = control_queue(drone);
    channel
        .queue_declare(control.as_str().into(), durable_queue(), dead_letter_args())
        .await?;
    channel
        .queue_bind(
            control.as_str().into(),
            CONTROL_EXCHANGE.into(),
            drone.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let queue = drone_queue(drone);
    channel
        .queue_declare(queue.as_str().into(), durable_queue(), dead_letter_args())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            JOBS_EXCHANGE.into(),
            drone.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares the shared topology as [`declare_common`] does, on a channel of its own,
/// where the credentials allow it: a drone's least-privilege user may not declare the
/// shared exchanges and queues (the scheduler or `deploy/rabbitmq-setup.sh` has), and
/// is refused without that being an error. The schema check still applies.
pub async fn declare_common_if_allowed(connection: &Connection) -> Result<(), BrokerError> {
    let channel = connection.create_channel().await?;
    let result = declare_common(&channel).await;
    let _ = channel.close(200, "declared".into()).await;
    match result {
        Err(BrokerError::Amqp(error)) if error.to_string().contains("ACCESS_REFUSED") => Ok(()),
        other => other,
    }
}

/// Puts a channel in confirm mode.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Persistent JSON message properties.
pub fn json_properties(message_id: &str, kind: &str, app_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
        .with_type(kind.into())
        .with_app_id(app_id.into())
}

/// Publishes persistently with `mandatory`, waits for the confirm, and treats both a
/// nack and a returned (unroutable) message as failures.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), BrokerError> {
    let publishing = async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                payload,
                properties,
            )
            .await?
            .await
    };
    let confirm = tokio::time::timeout(BROKER_TIMEOUT, publishing)
        .await
        .map_err(|_| BrokerError::Timeout("waiting for a publish confirm"))??;
    if !confirm.is_ack() {
        return Err(BrokerError::Nacked);
    }
    if let Some(returned) = confirm.take_message() {
        return Err(BrokerError::Unroutable {
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            reply: format!("{} {}", returned.reply_code, returned.reply_text),
        });
    }
    Ok(())
}

/// Moves a delivery to the dead-letter queue with `reason` in a header, then acks it.
/// The original is acked only once the dead-letter copy is confirmed, so nothing is lost.
pub async fn dead_letter(
    channel: &Channel,
    delivery: &lapin::message::Delivery,
    source_queue: &str,
    reason: &str,
) -> Result<(), BrokerError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        REASON_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason)),
    );
    headers.insert(
        "x-autotest-source-queue".into(),
        AMQPValue::LongString(LongString::from(source_queue)),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    publish_confirmed(
        channel,
        DEAD_LETTER_EXCHANGE,
        "",
        &delivery.data,
        properties,
    )
    .await?;
    ack(delivery, false).await?;
    Ok(())
}

/// Acks `delivery` (and, with `multiple`, every earlier one on its channel), giving up
/// after [`BROKER_TIMEOUT`]: an ack on a connection that is going away may never
/// complete, and what was not acked is delivered again. `Ok(false)`: not sent (the
/// channel is gone).
pub async fn ack(delivery: &lapin::message::Delivery, multiple: bool) -> Result<bool, BrokerError> {
    within("acking a delivery", async {
        Ok(delivery.ack(BasicAckOptions { multiple }).await?)
    })
    .await
}

/// Hands `delivery` back to its queue (a nack with requeue), bounded as [`ack`] is.
pub async fn requeue(delivery: &lapin::message::Delivery) -> Result<bool, BrokerError> {
    let requeue = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    within("handing a delivery back", async {
        Ok(delivery.nack(requeue).await?)
    })
    .await
}

/// A publishing connection of its own (so consumer flow control never stalls it), in
/// confirm mode, opened on first use and reopened after a failure.
pub struct Publisher {
    url: String,
    connection_name: String,
    /// The connection, and how many have been opened: a failure on an older one must
    /// not close its successor.
    link: tokio::sync::Mutex<(u64, Option<(Connection, Channel)>)>,
}

impl Publisher {
    pub fn new(url: &str, connection_name: &str) -> Self {
        Self {
            url: url.to_string(),
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
            let connection = connect(&self.url, &self.connection_name).await?;
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
            Ok(declared) => Ok(declared.message_count()),
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
