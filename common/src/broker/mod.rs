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

mod endpoint;
mod publisher;

pub use endpoint::{close, connect, gone, within, Endpoint, Tls, BROKER_TIMEOUT};
pub use publisher::Publisher;

use crate::names::DroneName;
use lapin::{
    options::{
        BasicAckOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
    BasicProperties, Channel, Connection, ExchangeKind,
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
