//! The scheduler's Prometheus metrics (`GET /metrics`, see docs/metrics.md). Counters
//! and histograms are bumped where their event happens, after the commit that records
//! it: jobs created (the creator), status reports (the status consumer), and what
//! intake's transitions did (a [`Tally`]). What mirrors the database (entries and
//! drones by status, each drone's load) is read at each scrape instead ([`scrape`]),
//! so it is right after a restart and costs nothing between scrapes.

pub mod scrape;

use crate::intake::{Applied, Report, Tally};
use crate::model::EntryStatus;
use common::protocol::StatusEvent;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A label naming a status (of an entry or a drone).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub status: &'static str,
}

/// A label naming a drone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DroneLabel {
    pub drone: String,
}

/// A label naming one of the scheduler's own filesystems (see [`crate::own_disk`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FilesystemLabel {
    pub filesystem: &'static str,
}

/// The kind of a status report (its `type` on the wire).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

/// What the results keeper did to a job's results: `archive` or `purge`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// Why a report changed nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Report lag is expected well under a second: finer buckets than
/// [`common::metrics::LATENCY_BUCKETS`] below it.
const REPORT_LAG_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type Histograms = Family<StatusLabel, Histogram, fn() -> Histogram>;

/// The scheduler's registry and the instruments in it; one per process, shared by the
/// tasks that count and the handler of `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs_created: Counter,
    reports_applied: Family<EventLabel, Counter>,
    reports_refused: Counter,
    reports_ignored: Family<ReasonLabel, Counter>,
    infra_retries: Counter,
    parse_errors: Counter,
    results_moved: Family<ActionLabel, Counter>,
    results_move_failures: Family<ActionLabel, Counter>,
    dispatch_latency: Histogram,
    end_to_end_latency: Histograms,
    report_lag: Histogram,
    /// Since when (UTC microseconds) the status consumer has held reports it has not
    /// applied; 0 when it holds none.
    unapplied_since: AtomicI64,
    oldest_unapplied: Gauge<f64, AtomicU64>,
    pub(crate) entries: Family<StatusLabel, Gauge>,
    pub(crate) drones: Family<StatusLabel, Gauge>,
    pub(crate) drone_running: Family<DroneLabel, Gauge>,
    pub(crate) drone_capacity: Family<DroneLabel, Gauge>,
    pub(crate) drone_free: Family<DroneLabel, Gauge>,
    pub(crate) own_free: Family<FilesystemLabel, Gauge>,
    /// One scrape at a time: each sets the database's gauges, then encodes them.
    pub(crate) scraping: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The instruments, registered under their documented names.
    pub fn new() -> Self {
        let metrics = Self {
            registry: common::metrics::registry("autotest-scheduler"),
            jobs_created: Counter::default(),
            reports_applied: Family::default(),
            reports_refused: Counter::default(),
            reports_ignored: Family::default(),
            infra_retries: Counter::default(),
            parse_errors: Counter::default(),
            results_moved: Family::default(),
            results_move_failures: Family::default(),
            dispatch_latency: common::metrics::latency_histogram(),
            end_to_end_latency: Family::new_with_constructor(common::metrics::latency_histogram),
            report_lag: Histogram::new(REPORT_LAG_BUCKETS),
            unapplied_since: AtomicI64::new(0),
            oldest_unapplied: Gauge::default(),
            entries: Family::default(),
            drones: Family::default(),
            drone_running: Family::default(),
            drone_capacity: Family::default(),
            drone_free: Family::default(),
            own_free: Family::default(),
            scraping: tokio::sync::Mutex::new(()),
        };
        // Every event and reason shows from the start, at 0, so a rate over them
        // needs no first occurrence.
        for event in EVENTS {
            let _ = metrics.reports_applied.get_or_create(&EventLabel { event });
        }
        for action in ["archive", "purge"] {
            let label = ActionLabel { action };
            let _ = metrics.results_moved.get_or_create(&label);
            let _ = metrics.results_move_failures.get_or_create(&label);
        }
        for reason in ["stale", "unknown_entry"] {
            let _ = metrics
                .reports_ignored
                .get_or_create(&ReasonLabel { reason });
        }
        metrics.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "autotest_jobs_created",
            "Jobs stored (atest job create, the API, host repairs)",
            self.jobs_created.clone(),
        );
        r.register(
            "autotest_status_reports_applied",
            "Status reports from drones that changed an entry, or heartbeats recorded, by event",
            self.reports_applied.clone(),
        );
        r.register(
            "autotest_status_reports_refused",
            "Status reports refused: not sent by the broker user of the drone they name",
            self.reports_refused.clone(),
        );
        r.register(
            "autotest_status_reports_ignored",
            "Status reports that changed nothing: stale (an older attempt, another drone, out of order) or about an unknown entry",
            self.reports_ignored.clone(),
        );
        r.register(
            "autotest_infra_retries",
            "Attempts sent back to the queue after an infra failure (reported, or a lost or silent drone)",
            self.infra_retries.clone(),
        );
        r.register(
            "autotest_parse_errors",
            "Parsed test results that came with a parse error (a drone could not read part of an entry's results)",
            self.parse_errors.clone(),
        );
        r.register(
            "autotest_results_moved",
            "Jobs whose results were moved off the results host, by action: archive (copied to archive_rsync and checked first) or purge; by the retention rules or atest job archive/purge",
            self.results_moved.clone(),
        );
        r.register(
            "autotest_results_move_failures",
            "Archives or purges that failed and left the job's results where they were, by action",
            self.results_move_failures.clone(),
        );
        r.register_with_unit(
            "autotest_dispatch_latency",
            "Time from an entry's creation to its start (Running)",
            Unit::Seconds,
            self.dispatch_latency.clone(),
        );
        r.register_with_unit(
            "autotest_end_to_end_latency",
            "Time from an entry's creation to its end, by final status",
            Unit::Seconds,
            self.end_to_end_latency.clone(),
        );
        r.register_with_unit(
            "autotest_status_report_lag",
            "Time from a drone sending a status report (its clock) to the scheduler committing it",
            Unit::Seconds,
            self.report_lag.clone(),
        );
        r.register_with_unit(
            "autotest_oldest_unapplied_report_age",
            "Age of the oldest status report the scheduler has received and not applied yet (0 when none)",
            Unit::Seconds,
            self.oldest_unapplied.clone(),
        );
        r.register(
            "autotest_entries",
            "Host-queue entries by status",
            self.entries.clone(),
        );
        r.register(
            "autotest_drones",
            "Configured drones by status (ok, disabled, draining, lost, stopping, low-disk)",
            self.drones.clone(),
        );
        r.register(
            "autotest_drone_running_entries",
            "Entries Starting or Running on each drone (a synchronous group counts once)",
            self.drone_running.clone(),
        );
        r.register(
            "autotest_drone_capacity",
            "Each drone's capacity in force (set at run time, else the config's)",
            self.drone_capacity.clone(),
        );
        r.register_with_unit(
            "autotest_drone_free",
            "Free space of each drone's results filesystem, by its last heartbeat that said",
            Unit::Bytes,
            self.drone_free.clone(),
        );
        r.register_with_unit(
            "autotest_scheduler_free",
            "Free space of the scheduler's filesystems: its SQLite database's (database) and, on the results host, the results directory's (results)",
            Unit::Bytes,
            self.own_free.clone(),
        );
        self
    }

    /// The registry, for the handler of `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The counter of jobs created, for the creator.
    pub fn jobs_created(&self) -> Counter {
        self.jobs_created.clone()
    }

    /// The status consumer holds reports received at `now`, not applied yet (the
    /// oldest counts: a later batch does not move it).
    pub fn reports_received(&self, now: i64) {
        let _ = self
            .unapplied_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The status consumer holds no report it has not applied (a batch was applied,
    /// or the connection it came on is gone and the broker has the reports again).
    pub fn reports_settled(&self) {
        self.unapplied_since.store(0, Ordering::Relaxed);
    }

    /// Seconds since the oldest report held unapplied was received, at `now`.
    pub fn oldest_unapplied_age(&self, now: i64) -> f64 {
        match self.unapplied_since.load(Ordering::Relaxed) {
            0 => 0.0,
            since => crate::intake::tally::seconds(since, now),
        }
    }

    /// Counts a batch of reports and what applying them did.
    pub fn reports(&self, reports: &[Report], outcomes: &[Applied], tally: &Tally) {
        self.report_lags(common::time::now_micros(), reports);
        for (report, outcome) in reports.iter().zip(outcomes) {
            let event = event_name(&report.event);
            match outcome {
                Applied::Changed { .. } | Applied::Heartbeat { .. } => {
                    self.reports_applied
                        .get_or_create(&EventLabel { event })
                        .inc();
                    if let StatusEvent::Tests {
                        parse_error: Some(_),
                        ..
                    } = &report.event
                    {
                        self.parse_errors.inc();
                    }
                }
                Applied::Refused => {
                    self.reports_refused.inc();
                }
                Applied::Stale => self.ignored("stale"),
                Applied::UnknownEntry => self.ignored("unknown_entry"),
            }
        }
        self.transitions(tally);
    }

    /// Each report's lag, from its `sent_at` to `now` (a drone's clock ahead of ours
    /// counts as no lag).
    pub(crate) fn report_lags(&self, now: i64, reports: &[Report]) {
        for report in reports {
            self.report_lag
                .observe((now - report.sent_at).max(0) as f64 / 1e6);
        }
    }

    fn ignored(&self, reason: &'static str) {
        self.reports_ignored
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts an archive or purge of a job's results (`archive` or `purge`) that was
    /// done, or that failed and changed nothing.
    pub fn results_moved(&self, action: &'static str, done: bool) {
        let family = if done {
            &self.results_moved
        } else {
            &self.results_move_failures
        };
        family.get_or_create(&ActionLabel { action }).inc();
    }

    /// Counts what intake's transitions did (also those the scheduler made itself,
    /// for a lost drone).
    pub fn transitions(&self, tally: &Tally) {
        self.infra_retries.inc_by(tally.infra_retries);
        for seconds in &tally.started {
            self.dispatch_latency.observe(*seconds);
        }
        for (status, seconds) in &tally.ended {
            self.end_to_end_latency
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .observe(*seconds);
        }
    }

    /// The entries counted by status (every status, 0 for those with none).
    pub(crate) fn set_entries(&self, counts: &[(EntryStatus, i64)]) {
        for status in EntryStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.entries
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(n);
        }
    }

    /// Sets the age of the oldest unapplied report at `now`.
    pub(crate) fn set_oldest_unapplied(&self, now: i64) {
        self.oldest_unapplied.set(self.oldest_unapplied_age(now));
    }
}

/// Every kind of report, as [`event_name`] names it.
const EVENTS: [&str; 9] = [
    "running",
    "gathering",
    "finished",
    "tests",
    "push_failing",
    "task",
    "repair_failed",
    "refused",
    "heartbeat",
];

/// A report's kind, as its `type` on the wire.
fn event_name(event: &StatusEvent) -> &'static str {
    match event {
        StatusEvent::Running { .. } => "running",
        StatusEvent::Gathering { .. } => "gathering",
        StatusEvent::Finished { .. } => "finished",
        StatusEvent::Tests { .. } => "tests",
        StatusEvent::PushFailing { .. } => "push_failing",
        StatusEvent::Task { .. } => "task",
        StatusEvent::RepairFailed { .. } => "repair_failed",
        StatusEvent::Refused { .. } => "refused",
        StatusEvent::Heartbeat { .. } => "heartbeat",
    }
}

#[cfg(test)]
mod tests;
