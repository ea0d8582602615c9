//! Where RabbitMQ's management UI shows a queue: `[SCHEDULER]
//! rabbitmq_management_url`, or `http://<broker host>:15672` when it is not set.

use super::Config;

/// RabbitMQ's management port.
const MANAGEMENT_PORT: u16 = 15672;

impl Config {
    /// The management UI's base URL (no trailing `/`).
    pub fn management_url(&self) -> String {
        match &self.scheduler.rabbitmq_management_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{}:{MANAGEMENT_PORT}",
                broker_host(self.broker.url.expose())
            ),
        }
    }

    /// The management UI's page of queue `queue` in the broker's vhost.
    pub fn management_queue_url(&self, queue: &str) -> String {
        format!(
            "{}/#/queues/{}/{}",
            self.management_url(),
            broker_vhost(self.broker.url.expose()),
            crate::percent_encode(queue.as_bytes())
        )
    }
}

/// The authority of an AMQP URL without its user and password.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// The host of an AMQP URL (`localhost` when it names none).
fn broker_host(url: &str) -> String {
    let authority = authority(url);
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority, |end| &authority[..=end])
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        "localhost".to_string()
    } else {
        host.to_string()
    }
}

/// The vhost of an AMQP URL, percent-encoded as the management UI wants it (`%2F` for
/// the default vhost `/`).
fn broker_vhost(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("", |start| &rest[start + 1..]);
    let vhost = path.split('?').next().unwrap_or_default();
    if vhost.is_empty() {
        "%2F".to_string()
    } else {
        vhost.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_url_gives_the_management_host_and_vhost() {
        assert_eq!(broker_host("amqp://u:p@mq.lab:5672/%2f"), "mq.lab");
        assert_eq!(broker_host("amqps://mq.lab/autotest?heartbeat=5"), "mq.lab");
        assert_eq!(broker_host("amqp://u:p@[::1]:5672/v"), "[::1]");
        assert_eq!(broker_host("amqp://"), "localhost");
        assert_eq!(broker_vhost("amqp://u:p@mq:5672/%2f"), "%2f");
        assert_eq!(broker_vhost("amqp://mq:5672/lab-1?heartbeat=5"), "lab-1");
        assert_eq!(broker_vhost("amqp://mq:5672"), "%2F");
        assert_eq!(broker_vhost("amqp://mq:5672/"), "%2F");
    }
}
