//! The worker's essential tasks, supervised: the consumer, the heartbeat, the lease
//! keeper, the pusher, the spares refill and the results server. Each runs for as long
//! as the worker does; if one ends or panics before the consumer has drained, the
//! worker stops with an error naming it (the process exits non-zero and the service
//! manager starts it again, to resume from the journal).

use crate::Inner;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::task::{Id, JoinSet};

/// The task that takes jobs; it alone ends on purpose, once drained.
pub const CONSUMER: &str = "consumer";

/// The essential tasks of one run of the worker.
pub(crate) struct Essential {
    inner: Arc<Inner>,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    names: HashMap<Id, &'static str>,
}

impl Essential {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            tasks: JoinSet::new(),
            names: HashMap::new(),
        }
    }

    /// Runs `task`, which must not end while the worker runs.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn_named(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Runs the consumer: Ok once drained after the shutdown, an error when it cannot
    /// go on.
    pub(crate) fn spawn_consumer(
        &mut self,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.spawn_named(CONSUMER, task);
    }

    fn spawn_named(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let inner = self.inner.clone();
        let handle = self.tasks.spawn(async move {
            inner.fault.at_task(name);
            (name, task.await)
        });
        self.names.insert(handle.id(), name);
    }

    /// Waits until a task ends: Ok when it is the consumer, drained; otherwise an error
    /// naming the task and why it ended (logged here).
    pub(crate) async fn until_one_ends(&mut self) -> anyhow::Result<()> {
        let Some(joined) = self.tasks.join_next_with_id().await else {
            anyhow::bail!("the worker has no essential task");
        };
        let error = match joined {
            Ok((_, (CONSUMER, Ok(())))) => return Ok(()),
            // The consumer logged why it cannot go on.
            Ok((_, (CONSUMER, Err(error)))) => return Err(error),
            Ok((_, (name, Ok(())))) => anyhow::anyhow!("the {name} task ended unexpectedly"),
            Ok((_, (name, Err(error)))) => error.context(format!("the {name} task failed")),
            Err(error) => {
                let name = self.names.get(&error.id()).copied().unwrap_or("unknown");
                if error.is_panic() {
                    let why = panic_message(error.into_panic());
                    anyhow::anyhow!("the {name} task panicked: {why}")
                } else {
                    anyhow::anyhow!("the {name} task was cancelled")
                }
            }
        };
        tracing::error!(error = %format!("{error:#}"), "an essential task of the worker ended; the worker stops");
        Err(error)
    }

    /// Stops the tasks still running (after the drain).
    pub(crate) async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }
}

/// What a panic said, when it said it with a string.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => text.to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

// The fault hook is in debug builds only.
#[cfg(all(test, debug_assertions))]
mod tests {
    use crate::fault::Fault;
    use crate::Worker;
    use common::config::Config;
    use common::names::DroneName;
    use common::shutdown::Shutdown;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_whose_heartbeat_panics_stops_within_seconds_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // No broker there: the consumer keeps reconnecting meanwhile.
        let text =
            "[SCHEDULER]\ndrones: drone1\n[BROKER]\nurl: amqp://guest:guest@127.0.0.1:1/%2f\n";
        let mut config = Config::from_parts(
            &dir.path().join("global_config.ini"),
            text,
            std::iter::empty(),
        )
        .unwrap();
        config.drone.results_dir = dir.path().join("results");
        config.drone.http_listen = None;
        let worker = Worker::new(config, DroneName::new("drone1").unwrap())
            .unwrap()
            .with_fault(Fault::parse("panic-task:heartbeat"));
        let (_trigger, shutdown) = Shutdown::new();
        let ended = tokio::time::timeout(Duration::from_secs(10), worker.run(shutdown))
            .await
            .expect("the worker stops within seconds");
        let error = format!("{:#}", ended.expect_err("the worker stops with an error"));
        assert!(error.contains("the heartbeat task panicked"), "{error}");
    }
}
