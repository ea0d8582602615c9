//! The worker's Prometheus metrics, served as `GET /metrics` by its results server
//! (see docs/metrics.md). The pusher and the parse count as they go; what the worker
//! holds (attempts, the lease's age, the journal's size) is read at each scrape.

use crate::Inner;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the pusher counts.
#[derive(Clone, Debug, Default)]
pub struct PushCounts {
    /// Results directories now on the results host (each entry's, each special
    /// task's).
    pub pushes: Counter,
    /// Failed tries (rsync failed, or the copy did not match its manifest).
    pub failures: Counter,
    /// Bytes of files rsync copied (its "total transferred file size").
    pub bytes: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DroneLabel {
    drone: String,
}

/// The worker's registry and the instruments in it.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub push: PushCounts,
    pub parse_errors: Counter,
    /// Results directories removed from the drone after their verified push, and
    /// removals that failed (the directory stays).
    pub removals: Counter,
    pub removal_failures: Counter,
    attempts_held: Gauge,
    attempts_running: Gauge,
    lease_age: Gauge<f64, AtomicU64>,
    journal_entries: Gauge,
    journal_bytes: Gauge,
    /// One scrape at a time: each sets the gauges, then encodes them.
    scraping: tokio::sync::Mutex<()>,
}

impl Metrics {
    /// The instruments of the worker of `drone` whose lease lasts `lease_secs`.
    pub fn new(drone: &str, lease_secs: u64) -> Self {
        let mut metrics = Self {
            registry: common::metrics::registry("drone-worker"),
            push: PushCounts::default(),
            parse_errors: Counter::default(),
            removals: Counter::default(),
            removal_failures: Counter::default(),
            attempts_held: Gauge::default(),
            attempts_running: Gauge::default(),
            lease_age: Gauge::default(),
            journal_entries: Gauge::default(),
            journal_bytes: Gauge::default(),
            scraping: tokio::sync::Mutex::new(()),
        };
        let lease_timeout = Gauge::<i64>::default();
        lease_timeout.set(i64::try_from(lease_secs).unwrap_or(i64::MAX));
        let r = &mut metrics.registry;
        r.register(
            "autotest_worker_drone",
            "The drone this worker serves (always 1)",
            Info::new(DroneLabel {
                drone: drone.to_string(),
            }),
        );
        r.register(
            "autotest_worker_results_pushes",
            "Results directories pushed to the results host and checked there",
            metrics.push.pushes.clone(),
        );
        r.register(
            "autotest_worker_results_push_failures",
            "Failed tries to push results (rsync failed, or the copy did not match its manifest)",
            metrics.push.failures.clone(),
        );
        r.register_with_unit(
            "autotest_worker_results_pushed",
            "Bytes of result files copied to the results host (rsync's total transferred file size)",
            Unit::Bytes,
            metrics.push.bytes.clone(),
        );
        r.register(
            "autotest_worker_parse_errors",
            "Parses of an entry's results that met an error (part of the results unreadable, or the parser failed)",
            metrics.parse_errors.clone(),
        );
        r.register(
            "autotest_worker_results_removed",
            "Results directories removed from the drone keep_pushed_hours after the results host's copy was verified",
            metrics.removals.clone(),
        );
        r.register(
            "autotest_worker_results_removal_failures",
            "Removals of verified results that failed: the directory stays on the drone until the worker starts again",
            metrics.removal_failures.clone(),
        );
        r.register(
            "autotest_worker_attempts_held",
            "Attempts this worker holds (accepted, running, pushing or reporting)",
            metrics.attempts_held.clone(),
        );
        r.register(
            "autotest_worker_attempts_running",
            "Attempts whose Autoserv (or special task) runs now",
            metrics.attempts_running.clone(),
        );
        r.register_with_unit(
            "autotest_worker_lease_age",
            "Time since the broker last confirmed a report of this drone: the lease runs out past autotest_worker_lease_timeout_seconds",
            Unit::Seconds,
            metrics.lease_age.clone(),
        );
        r.register_with_unit(
            "autotest_worker_lease_timeout",
            "How long the lease lasts without a confirmed report ([SCHEDULER] drone_timeout_sec)",
            Unit::Seconds,
            lease_timeout,
        );
        r.register(
            "autotest_worker_journal_entries",
            "Attempt records in the journal (attempts not finished here)",
            metrics.journal_entries.clone(),
        );
        r.register_with_unit(
            "autotest_worker_journal",
            "Bytes of the journal directory's files (records, done.log, parsed tests, spare records)",
            Unit::Bytes,
            metrics.journal_bytes.clone(),
        );
        metrics
    }
}

/// The router of `/metrics` on the results server.
pub(crate) fn router(inner: Arc<Inner>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let inner = inner.clone();
            async move { inner.scrape().await }
        }),
    )
}

impl Inner {
    /// Sets the gauges of what the worker holds now, then answers the registry.
    async fn scrape(&self) -> axum::response::Response {
        let metrics = &self.metrics;
        let _one_at_a_time = metrics.scraping.lock().await;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        metrics.attempts_held.set(count(self.attempts.count()));
        metrics
            .attempts_running
            .set(count(self.attempts.running_count()));
        metrics
            .lease_age
            .set(self.reporter.since_contact().as_secs_f64());
        let journal = self.journal.clone();
        match tokio::task::spawn_blocking(move || journal.size()).await {
            Ok(Ok(size)) => {
                metrics.journal_entries.set(count(size.records));
                metrics
                    .journal_bytes
                    .set(i64::try_from(size.bytes).unwrap_or(i64::MAX));
            }
            Ok(Err(error)) => tracing::warn!(%error, "metrics: cannot read the journal's size"),
            Err(error) => tracing::warn!(%error, "metrics: cannot read the journal's size"),
        }
        common::metrics::respond(&metrics.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_by_prometheus_conventions_and_documented() {
        let metrics = Metrics::new("drone1", 60);
        metrics.push.pushes.inc();
        metrics.push.bytes.inc_by(2048);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &metrics.registry).unwrap();
        let mut families = Vec::new();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line["# TYPE ".len()..].split(' ');
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(name.starts_with("autotest_"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(text.contains(&format!("# HELP {name} ")), "no help: {name}");
            families.push(name.to_string());
        }
        assert_eq!(families.len(), 14, "{text}");
        for line in [
            "autotest_worker_drone_info{drone=\"drone1\"} 1\n",
            "autotest_worker_results_pushes_total 1\n",
            "autotest_worker_results_pushed_bytes_total 2048\n",
            "autotest_worker_lease_timeout_seconds 60\n",
            "autotest_worker_journal_bytes 0\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
