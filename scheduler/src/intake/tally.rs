//! What status intake did that the scheduler's metrics count: entries that started
//! (and how long after they were created), entries that ended (and how long after),
//! and attempts that went back to the queue after an infra failure. Pure: filled from
//! the transitions `db::intake` writes, read by the metrics after the commit.

use super::{EntryChanges, EntryRow};
use crate::model::EntryStatus;

/// The transitions of one intake transaction, as metrics count them. A synchronous
/// group counts once, by its lead.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Attempts sent back to the queue after an infra failure.
    pub infra_retries: u64,
    /// Seconds from each started entry's creation to its start (Running).
    pub started: Vec<f64>,
    /// Each ended entry's final status and the seconds from its creation to its end.
    pub ended: Vec<(EntryStatus, f64)>,
}

impl Tally {
    /// Counts `changes` to `row`, written at `now` (UTC microseconds).
    pub fn count(&mut self, row: &EntryRow, changes: &EntryChanges, now: i64) {
        let Some(status) = changes.status else {
            return;
        };
        if status == row.status {
            return;
        }
        let since_created = seconds(row.created_on, now);
        if status == EntryStatus::Running {
            self.started.push(since_created);
        }
        if status.is_final() {
            self.ended.push((status, since_created));
        }
        if status == EntryStatus::Queued && changes.infra_retries.is_some() {
            self.infra_retries += 1;
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Seconds from `from` to `to` (UTC microseconds); 0 when `to` is earlier (a clock
/// set back).
pub fn seconds(from: i64, to: i64) -> f64 {
    (to.saturating_sub(from)).max(0) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttemptId, TaskFlags};
    use EntryStatus::*;

    fn row(status: EntryStatus) -> EntryRow {
        EntryRow {
            attempt: AttemptId::new(1, 1),
            status,
            drone: None,
            host_id: None,
            hostname: None,
            metahost: false,
            abort_requested: false,
            infra_retries: 0,
            job_tasks: TaskFlags::none(),
            exit_code: None,
            created_on: 1_000_000,
            started_on: None,
            finished_on: None,
            failure_kind: None,
            failure_reason: None,
        }
    }

    fn to(status: EntryStatus) -> EntryChanges {
        EntryChanges {
            status: Some(status),
            ..EntryChanges::default()
        }
    }

    #[test]
    fn a_start_counts_the_seconds_since_creation() {
        let mut tally = Tally::default();
        tally.count(&row(Starting), &to(Running), 3_500_000);
        assert_eq!(tally.started, vec![2.5]);
        assert!(tally.ended.is_empty() && tally.infra_retries == 0);
    }

    #[test]
    fn an_end_counts_its_status_and_the_seconds_since_creation() {
        let mut tally = Tally::default();
        tally.count(&row(Gathering), &to(Completed), 61_000_000);
        tally.count(&row(Running), &to(Failed), 2_000_000);
        tally.count(&row(Running), &to(Aborted), 1_000_000);
        assert_eq!(
            tally.ended,
            vec![(Completed, 60.0), (Failed, 1.0), (Aborted, 0.0)]
        );
        assert!(tally.started.is_empty());
    }

    #[test]
    fn a_requeue_after_an_infra_failure_counts_as_a_retry() {
        let mut tally = Tally::default();
        let retry = EntryChanges {
            infra_retries: Some(1),
            ..to(Queued)
        };
        tally.count(&row(Running), &retry, 2_000_000);
        // A host's failed repair also requeues, but it is not an infra retry.
        tally.count(&row(Running), &to(Queued), 2_000_000);
        assert_eq!(tally.infra_retries, 1);
        assert!(tally.started.is_empty() && tally.ended.is_empty());
    }

    #[test]
    fn changes_that_keep_the_status_count_nothing() {
        let mut tally = Tally::default();
        tally.count(&row(Gathering), &to(Gathering), 2_000_000);
        tally.count(&row(Running), &EntryChanges::default(), 2_000_000);
        assert!(tally.is_empty());
    }

    #[test]
    fn a_clock_set_back_counts_zero_seconds() {
        assert_eq!(seconds(5_000_000, 4_000_000), 0.0);
        assert_eq!(seconds(0, 1_500_000), 1.5);
    }
}
