//! What is due for a finished job's results, as pure functions: where they are
//! (`jobs.results_place`) and what the retention keys ask of them.

use std::time::Duration;

pub use crate::model::ResultsPlace as Place;

/// What to do with a finished job's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Copy to the archive, verify, remove from the results host.
    Archive,
    /// Remove from the results host.
    Purge,
}

impl Action {
    /// As `atest job archive|purge` and the metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Archive => "archive",
            Action::Purge => "purge",
        }
    }

    /// Where the results are once it is done.
    pub fn place(self) -> Place {
        match self {
            Action::Archive => Place::Archived,
            Action::Purge => Place::Removed,
        }
    }
}

/// The retention keys of `[SCHEDULER]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    pub archive_after: Option<Duration>,
    pub delete_after: Option<Duration>,
}

impl Rules {
    /// What is due at `now_us` for results at `place` of a job that ended at
    /// `ended_us`. Only results on the results host are acted on: archived copies are
    /// never deleted by age (the archive is not this scheduler's to prune). When both
    /// periods have passed, the deletion wins: archiving what is about to be deleted
    /// would only cost a transfer.
    pub fn due(&self, place: Place, ended_us: i64, now_us: i64) -> Option<Action> {
        if place != Place::ResultsHost {
            return None;
        }
        let passed = |after: Option<Duration>| {
            after.is_some_and(|after| {
                let after_us = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
                ended_us.saturating_add(after_us) <= now_us
            })
        };
        if passed(self.delete_after) {
            Some(Action::Purge)
        } else if passed(self.archive_after) {
            Some(Action::Archive)
        } else {
            None
        }
    }

    /// Whether any rule can ever act.
    pub fn any(&self) -> bool {
        self.archive_after.is_some() || self.delete_after.is_some()
    }
}

/// Whether an rsync `--itemize` line (`%i %n`) of a checksum dry run says the archive's
/// copy lacks or differs from a file or link: anything sent or created. Attribute-only
/// changes (`.d..t......`) leave the contents alone.
pub fn differs(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b'<' | b'>' | b'c'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_US: i64 = 86_400_000_000;
    fn days(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * 86_400))
    }

    #[test]
    fn nothing_is_due_without_rules_or_before_the_period() {
        let none = Rules::default();
        assert!(!none.any());
        assert_eq!(none.due(Place::ResultsHost, 0, 1000 * DAY_US), None);
        let archive = Rules {
            archive_after: days(30),
            delete_after: None,
        };
        assert_eq!(archive.due(Place::ResultsHost, 0, 29 * DAY_US), None);
        assert_eq!(
            archive.due(Place::ResultsHost, 0, 30 * DAY_US),
            Some(Action::Archive)
        );
    }

    #[test]
    fn deletion_wins_once_due_and_only_results_on_the_results_host_are_touched() {
        let both = Rules {
            archive_after: days(30),
            delete_after: days(90),
        };
        assert_eq!(
            both.due(Place::ResultsHost, 0, 40 * DAY_US),
            Some(Action::Archive)
        );
        assert_eq!(
            both.due(Place::ResultsHost, 0, 90 * DAY_US),
            Some(Action::Purge)
        );
        assert_eq!(both.due(Place::Archived, 0, 900 * DAY_US), None);
        assert_eq!(both.due(Place::Removed, 0, 900 * DAY_US), None);
        let huge = Rules {
            archive_after: Some(Duration::MAX),
            delete_after: None,
        };
        assert_eq!(huge.due(Place::ResultsHost, 1, i64::MAX - 1), None);
    }

    #[test]
    fn places_round_trip_through_the_column() {
        for place in [Place::ResultsHost, Place::Archived, Place::Removed] {
            assert_eq!(Place::from_stored(place.stored()), place);
        }
        assert_eq!(Place::ResultsHost.as_str(), "results-host");
        assert_eq!(Action::Archive.place(), Place::Archived);
    }

    #[test]
    fn a_dry_run_line_differs_when_something_would_be_sent_or_created() {
        assert!(differs("<f+++++++++ 5-ann/host1/status.log"));
        assert!(differs(">f.st...... 5-ann/host1/debug/log"));
        assert!(differs("cd+++++++++ 5-ann/host1/sub/"));
        assert!(differs("cL+++++++++ 5-ann/host1/link -> x"));
        assert!(!differs(".d..t...... 5-ann/host1/"));
        assert!(!differs(""));
    }
}
