//! HTTPS for the servers this system runs (the scheduler's API, a drone's results
//! server): a certificate chain and its private key read from PEM files into a rustls
//! server configuration (the ring provider, as the broker connection uses), and one
//! [`serve`] that answers plain HTTP or HTTPS with the peer's address available to
//! handlers as `ConnectInfo<SocketAddr>` either way.

use axum::serve::ListenerExt;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM certificate file: {message}")]
    BadCertificate { path: PathBuf, message: String },
    #[error("{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC): {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("{cert} and {key} cannot serve TLS together: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// Every certificate in a PEM file, at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::BadKey {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The rustls server configuration of the certificate chain in `cert` (PEM, the
/// server's first, then any intermediates) and its private key in `key` (PEM): read,
/// parsed, and the key checked against the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certificates(cert)?;
    let private_key = read_private_key(key)?;
    let mismatch = |e: rustls::Error| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: e.to_string(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(mismatch)?
    .with_no_client_auth()
    .with_single_cert(certs, private_key)
    .map_err(mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown`: HTTPS with `tls`, plain HTTP
/// without. Handlers may take `ConnectInfo<SocketAddr>` (the peer's address) in both.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            // `tap_io` gives the listener axum's `SocketAddr` connect info.
            let listener = TlsListener::new(listener, config).tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// A listener whose connections have completed a TLS handshake. Handshakes run in
/// tasks of their own, so a slow or silent client delays no one else; a failed one is
/// logged and dropped.
struct TlsListener {
    local: std::io::Result<SocketAddr>,
    ready: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Self {
        let local = listener.local_addr();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!(%error, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self {
            local,
            ready,
            accepting,
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task holds a sender until it is aborted with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(address) => Ok(*address),
            Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    /// Serves a route answering the peer's address, plain or with `tls`; GETs it once
    /// over `connect` and returns the body.
    async fn peer_seen<S, F>(tls: Option<Arc<rustls::ServerConfig>>, connect: F) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin,
        F: AsyncFnOnce(TcpStream) -> S,
    {
        let router = axum::Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, tls, router, async move {
            let _ = stopped.await;
        }));
        let tcp = TcpStream::connect(address).await.unwrap();
        let local = tcp.local_addr().unwrap();
        let mut stream = connect(tcp).await;
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response).to_string();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.ends_with(&local.to_string()),
            "{response} from {local}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        response
    }

    #[tokio::test]
    async fn handlers_see_the_peer_address_over_http_and_https() {
        peer_seen(None, async |tcp| tcp).await;

        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is installed (deploy/test.sh installs it)");
        assert!(status.success());
        let cert = dir.path().join("cert.pem");
        let config = server_config(&cert, &dir.path().join("key.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(read_certificates(&cert).unwrap());
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        peer_seen(Some(config), async |tcp| {
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.expect("TLS handshake")
        })
        .await;
    }

    #[test]
    fn unreadable_or_garbled_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let error = server_config(&missing, &garbage).unwrap_err().to_string();
        assert!(
            error.contains("missing.pem") && error.contains("No such file"),
            "{error}"
        );
        let error = read_certificates(&garbage).unwrap_err().to_string();
        assert!(
            error.contains("garbage.pem") && error.contains("no PEM certificate"),
            "{error}"
        );
        let error = read_private_key(&garbage).unwrap_err().to_string();
        assert!(
            error.contains("garbage.pem") && error.contains("no PEM private key"),
            "{error}"
        );
    }
}
