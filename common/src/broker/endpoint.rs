//! Reaching the broker: where it is and how to trust it ([`Endpoint`]), opening and
//! closing connections, and the bound on every exchange with it.

use super::BrokerError;
use crate::config::{BrokerConfig, Secret};
use lapin::{Connection, ConnectionProperties};
use std::path::{Path, PathBuf};

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

/// Opens a connection to `broker` (`&config.broker`, or a bare URL) named so it reads
/// well in the management UI.
pub async fn connect(
    broker: impl Into<Endpoint>,
    connection_name: &str,
) -> Result<Connection, BrokerError> {
    let broker = broker.into();
    let url = broker.url();
    let props = ConnectionProperties::default().with_connection_name(connection_name.into());
    // A broker that is starting up can accept the TCP connection and not answer for a
    // long time; every caller retries, so give up and try again instead of hanging
    // (a worker that hangs here stops renewing its lease).
    let connecting = async {
        if !url.starts_with("amqps://") {
            return Ok(Connection::connect(url, props).await?);
        }
        let tls = broker.tls_config()?;
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

/// Where the broker is and how to trust it: its URL and, for `amqps://`, the TLS files.
/// Built from the `[BROKER]` section (`&config.broker`), or from a bare URL, which
/// trusts the system's CA certificates and presents no client certificate.
#[derive(Clone, Debug)]
pub struct Endpoint {
    url: Secret,
    tls: Tls,
}

/// The TLS files of `amqps://` connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificates (PEM) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// A client certificate and its key (PEM), if the broker asks for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Default for Tls {
    /// The system's CA certificates, no client certificate.
    fn default() -> Self {
        Self {
            ca_file: crate::config::DEFAULT_CA_FILE.into(),
            client: None,
        }
    }
}

impl Endpoint {
    /// The broker at `url`, trusted through `tls` when the URL is `amqps://`.
    pub fn new(url: &str, tls: Tls) -> Self {
        Self {
            url: Secret::new(url),
            tls,
        }
    }

    /// The URL (with its credentials).
    pub fn url(&self) -> &str {
        self.url.expose()
    }

    /// The broker user a connection to this endpoint logs in as: the URL's user
    /// (`guest` when it names none). None when the user is not in the URL (the
    /// `EXTERNAL` mechanism takes it from the client certificate, `ANONYMOUS` has none)
    /// or the URL does not parse.
    pub fn user(&self) -> Option<String> {
        use lapin::uri::{AMQPUri, SASLMechanism};
        let uri: AMQPUri = self.url().parse().ok()?;
        match uri.query.auth_mechanism {
            Some(SASLMechanism::External | SASLMechanism::Anonymous) => None,
            _ => Some(uri.authority.userinfo.username),
        }
    }

    /// The TLS files used for `amqps://`.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    fn tls_config(&self) -> Result<lapin::tcp::OwnedTLSConfig, BrokerError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|error| BrokerError::Tls {
                file: path.display().to_string(),
                error: error.to_string(),
            })
        };
        let ca = read(&self.tls.ca_file)?;
        let identity = match &self.tls.client {
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
}

impl From<&BrokerConfig> for Endpoint {
    fn from(config: &BrokerConfig) -> Self {
        Self {
            url: config.url.clone(),
            tls: Tls {
                ca_file: config.ca_file.clone(),
                client: config.client_cert.clone().zip(config.client_key.clone()),
            },
        }
    }
}

impl From<&str> for Endpoint {
    fn from(url: &str) -> Self {
        Self::new(url, Tls::default())
    }
}

impl From<&String> for Endpoint {
    fn from(url: &String) -> Self {
        Self::new(url, Tls::default())
    }
}

impl From<&Endpoint> for Endpoint {
    fn from(endpoint: &Endpoint) -> Self {
        endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_from_the_broker_section_carries_its_tls_files() {
        let config = BrokerConfig {
            url: Secret::new("amqps://u:hunter2@broker:5671/%2f"),
            ca_file: "/etc/autotest/ca.pem".into(),
            client_cert: Some("/etc/autotest/client.pem".into()),
            client_key: Some("/etc/autotest/client.key".into()),
        };
        let endpoint = Endpoint::from(&config);
        assert_eq!(endpoint.url(), "amqps://u:hunter2@broker:5671/%2f");
        assert_eq!(
            endpoint.tls(),
            &Tls {
                ca_file: "/etc/autotest/ca.pem".into(),
                client: Some((
                    "/etc/autotest/client.pem".into(),
                    "/etc/autotest/client.key".into()
                )),
            }
        );
        assert!(!format!("{endpoint:?}").contains("hunter2"));
    }

    #[test]
    fn the_user_is_the_urls_decoded_or_guest() {
        let user = |url: &str| Endpoint::from(url).user();
        assert_eq!(
            user("amqp://lab%2Ddrone-1:pw@h:5672/v").as_deref(),
            Some("lab-drone-1")
        );
        assert_eq!(user("amqp://h/v").as_deref(), Some("guest"));
        assert_eq!(user("amqps://h/v?auth_mechanism=external"), None);
    }

    #[test]
    fn a_bare_url_trusts_the_system_certificates() {
        let endpoint = Endpoint::from("amqps://broker/%2f");
        assert_eq!(
            endpoint.tls().ca_file,
            PathBuf::from(crate::config::DEFAULT_CA_FILE)
        );
        assert_eq!(endpoint.tls().client, None);
    }

    #[test]
    fn an_unreadable_ca_file_is_named_in_the_error() {
        let endpoint = Endpoint::new(
            "amqps://broker/%2f",
            Tls {
                ca_file: "/nonexistent/ca.pem".into(),
                client: None,
            },
        );
        let error = endpoint.tls_config().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
