//! The worker's keepers: the heartbeat (what it holds, where it serves results, whether
//! it is stopping, its results filesystem's free space), and the refill of spare journal records and entry directories
//! (see [`crate::spare`]).

use crate::Inner;
use common::protocol::StatusEvent;
use common::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

impl Inner {
    /// Keeps the spare journal records and entry directories (see [`spare`]) filled:
    /// at start, and each time a start took one.
    pub(crate) async fn refill_loop(self: Arc<Self>) {
        loop {
            let inner = self.clone();
            let made = tokio::task::spawn_blocking(move || {
                (inner.journal.refill(), inner.entry_spares.refill())
            })
            .await;
            let failed = match made {
                Ok((records, entries)) => {
                    if let Err(error) = &records {
                        tracing::warn!(%error, "cannot make spare journal records; retrying in 10 s");
                    }
                    if let Err(error) = &entries {
                        tracing::warn!(%error, "cannot make spare entry directories; retrying in 10 s");
                    }
                    records.is_err() || entries.is_err()
                }
                Err(error) => {
                    tracing::error!(%error, "making spares failed; retrying in 10 s");
                    true
                }
            };
            // Starts make their files themselves meanwhile.
            if failed {
                tokio::time::sleep(Duration::from_secs(10)).await;
            } else {
                self.refill.notified().await;
            }
        }
    }

    /// The results filesystem's free space in MiB, and whether it is below `[DRONE]
    /// min_free_mb` (see [`crate::space`]).
    async fn free_space(&self, was_low: bool) -> (Option<u64>, bool) {
        let dir = self.config.drone.results_dir.clone();
        let min_free_mb = self.config.drone.min_free_mb;
        tokio::task::spawn_blocking(move || crate::space::reading(&dir, min_free_mb, was_low))
            .await
            .unwrap_or((None, false))
    }

    /// Heartbeats until `shutdown`; one that did not go out is tried again soon.
    pub(crate) async fn heartbeat_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let every = Duration::from_secs(self.config.drone.heartbeat_sec);
        let mut was_low = false;
        loop {
            let running: Vec<(i64, i32)> =
                self.attempts.held().into_iter().map(Into::into).collect();
            let (free_mb, low_disk) = self.free_space(was_low).await;
            if low_disk != was_low {
                let min_free_mb = self.config.drone.min_free_mb;
                if low_disk {
                    tracing::warn!(
                        ?free_mb,
                        min_free_mb,
                        "the results filesystem is below min_free_mb: taking no new work"
                    );
                } else {
                    tracing::info!(
                        ?free_mb,
                        min_free_mb,
                        "the results filesystem has room again (a tenth above min_free_mb): taking work"
                    );
                }
                was_low = low_disk;
            }
            // A heartbeat that did not go out is tried again soon: until one does, the
            // scheduler counts this drone as lost and sends it nothing.
            let next = match self
                .reporter
                .try_send(&StatusEvent::Heartbeat {
                    running,
                    results_url: self.results_url.get().cloned(),
                    stopping: self.stopping.load(std::sync::atomic::Ordering::Relaxed),
                    free_mb,
                    low_disk,
                })
                .await
            {
                Ok(()) => every,
                Err(error) => {
                    tracing::debug!(%error, "heartbeat not sent");
                    every.min(Duration::from_millis(500))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = shutdown.wait() => return,
                _ = self.beat_now.notified() => {}
            }
        }
    }
}
