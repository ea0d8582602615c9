//! A TCP relay on loopback that a test can cut, silence and restore: the network
//! between a drone and the broker going down and coming back, or a broker that takes
//! connections and then answers nothing, without touching the broker.
//! Cutting closes every relayed connection at once and refuses new ones (they are
//! accepted and closed straight away) until it is restored. Silencing closes every
//! relayed connection too, then relays new ones through the AMQP connection handshake
//! and holds back everything the broker says after it, as RabbitMQ can while it is
//! still starting up; those connections stay silent even after the relay is restored.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Up,
    Cut,
    Silent,
}

/// A running relay to `target`.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<(Mode, u64)>,
    silenced: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        // The mode, and a generation that changes whenever live connections must go.
        let (mode, watch_mode) = watch::channel((Mode::Up, 0u64));
        let silenced = Arc::new(AtomicUsize::new(0));
        let counter = silenced.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let (now, generation) = *watch_mode.borrow();
                if now == Mode::Cut {
                    drop(inbound);
                    continue;
                }
                let mut gone = watch_mode.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let relay = async {
                        let (mut from_client, mut to_client) = inbound.into_split();
                        let (mut from_server, mut to_server) = outbound.into_split();
                        let up = tokio::io::copy(&mut from_client, &mut to_server);
                        let down = async {
                            if now == Mode::Silent {
                                if handshake_only(&mut from_server, &mut to_client)
                                    .await
                                    .is_ok()
                                {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                }
                                std::future::pending::<()>().await;
                            }
                            let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                        };
                        tokio::select! {
                            _ = up => {}
                            _ = down => {}
                        }
                    };
                    tokio::select! {
                        _ = relay => {}
                        _ = gone.wait_for(|(_, g)| *g != generation) => {}
                    }
                });
            }
        });
        Self {
            addr,
            mode,
            silenced,
            task,
        }
    }

    /// Where clients connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_modify(|(mode, generation)| {
            *mode = Mode::Cut;
            *generation += 1;
        });
    }

    /// Drops every relayed connection; new ones get the broker's side of the AMQP
    /// connection handshake (up to Connection.Open-Ok), then nothing.
    pub fn silence(&self) {
        self.mode.send_modify(|(mode, generation)| {
            *mode = Mode::Silent;
            *generation += 1;
        });
    }

    /// How many connections were made silent after their handshake.
    pub fn silenced(&self) -> usize {
        self.silenced.load(Ordering::SeqCst)
    }

    /// Relays new connections again (silenced ones stay silent).
    pub fn restore(&self) {
        self.mode.send_modify(|(mode, _)| *mode = Mode::Up);
    }
}

/// Relays the broker's frames until it has sent Connection.Open-Ok (class 10, method
/// 41): the client then holds an open connection.
async fn handshake_only(
    from_server: &mut tokio::net::tcp::OwnedReadHalf,
    to_client: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<()> {
    loop {
        // type (1), channel (2), size (4), payload, frame end (1).
        let mut header = [0u8; 7];
        from_server.read_exact(&mut header).await?;
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        let mut rest = vec![0u8; size + 1];
        from_server.read_exact(&mut rest).await?;
        to_client.write_all(&header).await?;
        to_client.write_all(&rest).await?;
        if header[0] == 1 && rest.starts_with(&[0, 10, 0, 41]) {
            return Ok(());
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
