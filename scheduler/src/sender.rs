//! What the status consumer makes of a report before intake judges it: whether its
//! broker user is the drone's it names ([`crate::intake::origin`]), and whether the
//! results URL of a heartbeat is one the drone may name
//! ([`crate::intake::results_url`]). Also the count of reports about entries that do
//! not exist, which are not stored.

use crate::intake::origin::Senders;
use crate::intake::{results_url, Report};
use common::config::Config;
use common::names::DroneName;
use common::protocol::{StatusEvent, StatusReport};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What the consumer checks each report against, from the config.
#[derive(Debug)]
pub struct Gate {
    senders: Senders,
    url_patterns: Vec<String>,
    /// (drone, URL) pairs already logged as ignored: each is logged once.
    ignored_urls: Mutex<BTreeSet<(DroneName, String)>>,
}

/// Reports about entries that do not exist, since the scheduler started.
static UNKNOWN_ENTRY_REPORTS: AtomicU64 = AtomicU64::new(0);

/// Reports refused (not from the drone they name), since the scheduler started.
static REFUSED_REPORTS: AtomicU64 = AtomicU64::new(0);

impl Gate {
    pub fn new(config: &Config) -> Self {
        Self {
            senders: Senders::from_config(config),
            url_patterns: config.scheduler.report_origin.drone_results_url.clone(),
            ignored_urls: Mutex::new(BTreeSet::new()),
        }
    }

    /// The events of one delivery as reports, each marked refused when `user_id` is
    /// not the named drone's broker user; a heartbeat's results URL the drone may not
    /// name is dropped (logged once per drone and URL).
    pub fn admit(&self, report: StatusReport, user_id: Option<&str>) -> Vec<Report> {
        let drone = report.drone;
        let sent_at = report.sent_at;
        let refused = self.senders.check(&drone, user_id).err();
        if let Some(why) = &refused {
            let n = REFUSED_REPORTS.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(drone.name = %drone, reason = why, refused_total = n, "status report refused: not from the drone it names; it changes nothing");
        }
        report
            .events
            .into_iter()
            .map(|event| Report {
                url_ignored: refused.is_none() && !self.results_url_allowed(&drone, &event),
                drone: drone.clone(),
                event,
                refused: refused.clone(),
                sent_at,
            })
            .collect()
    }

    /// Whether the heartbeat names no results URL or one `drone` may name; an URL it
    /// may not is logged once per drone and URL.
    fn results_url_allowed(&self, drone: &DroneName, event: &StatusEvent) -> bool {
        let StatusEvent::Heartbeat {
            results_url: Some(url),
            ..
        } = event
        else {
            return true;
        };
        if results_url::allowed(url, drone, &self.url_patterns) {
            return true;
        }
        let first = self
            .ignored_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((drone.clone(), url.chars().take(200).collect()));
        if first {
            tracing::warn!(drone.name = %drone, url = %url.escape_debug(), "results URL from the drone ignored: it does not match [SCHEDULER] drone_results_url");
        }
        false
    }

    /// Says at start, once, when reports cannot be told apart.
    pub fn warn_if_shared(&self) {
        if let Some(why) = self.senders.shared() {
            tracing::warn!(
                reason = why,
                "drones share a broker user: status reports cannot be told apart, so any report naming a drone is accepted as that drone's (see docs/operating.md, broker users per drone)"
            );
        }
    }
}

/// Counts (and logs) a report about an entry that does not exist.
pub fn unknown_entry(drone: &DroneName, entry_id: i64) {
    let n = UNKNOWN_ENTRY_REPORTS.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::warn!(drone.name = %drone, entry.id = entry_id, unknown_entry_reports = n, "status report about an entry that does not exist: counted, not stored");
}

/// Reports about entries that do not exist since the scheduler started.
pub fn unknown_entry_reports() -> u64 {
    UNKNOWN_ENTRY_REPORTS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn gate(scheduler_user: &str, extra: &str) -> Gate {
        let text = format!(
            "[SCHEDULER]\ndrones: d1, d2\n{extra}\n[BROKER]\nurl: amqp://{scheduler_user}:pw@127.0.0.1:5672/v\n"
        );
        Gate::new(&Config::from_parts(Path::new("/g.ini"), &text, std::iter::empty()).unwrap())
    }

    fn heartbeat(drone: &str, url: &str) -> StatusReport {
        StatusReport {
            schema: common::protocol::SCHEMA_VERSION,
            drone: DroneName::new(drone).unwrap(),
            events: vec![
                StatusEvent::Heartbeat {
                    running: vec![],
                    results_url: Some(url.into()),
                    stopping: false,
                    free_mb: None,
                    low_disk: false,
                },
                StatusEvent::Running {
                    entry_id: 1,
                    attempt: 1,
                    pid: 9,
                },
            ],
            sent_at: 0,
            sender_version: "t".into(),
        }
    }

    #[test]
    fn every_event_of_a_report_from_another_user_is_refused() {
        let gate = gate("lab-scheduler", "");
        let ok = gate.admit(heartbeat("d1", "http://d1:1"), Some("lab-drone-d1"));
        assert!(ok.iter().all(|r| r.refused.is_none() && !r.url_ignored));
        let forged = gate.admit(heartbeat("d1", "http://d1:1"), Some("lab-drone-d2"));
        assert_eq!(forged.len(), 2);
        assert!(forged.iter().all(|r| r.refused.is_some()));
        let unstamped = gate.admit(heartbeat("d1", "http://d1:1"), None);
        assert!(unstamped.iter().all(|r| r.refused.is_some()));
    }

    #[test]
    fn a_shared_user_accepts_and_a_foreign_results_url_is_ignored() {
        let gate = gate("guest", "drone_results_url: http://{drone}:8080");
        let reports = gate.admit(heartbeat("d2", "http://d1:8080"), Some("guest"));
        assert!(reports.iter().all(|r| r.refused.is_none()));
        assert!(reports[0].url_ignored, "d2 may not name d1's server");
        assert!(!reports[1].url_ignored, "only heartbeats carry a URL");
        let reports = gate.admit(heartbeat("d2", "http://d2:8080"), None);
        assert!(!reports[0].url_ignored);
    }
}
