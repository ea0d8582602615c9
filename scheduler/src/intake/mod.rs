//! Status intake as rules: what a drone's report does to the entry it is about. Each
//! report is judged against the entry's current row by a pure function
//! ([`report`], [`infra_failure`], [`reclaimable`]) that returns the writes it implies
//! (a [`Transition`]); `db::intake` loads the rows, calls these and writes the result.
//! Nothing here does I/O, and time is the scheduler's `now`, passed in.

pub mod origin;
pub mod results_url;
pub mod tally;
mod transitions;

#[cfg(test)]
mod bounds_tests;
#[cfg(test)]
mod tests;

pub use tally::Tally;
pub use transitions::{
    group_sync, heartbeat_results_url, infra_failure, lost_attempts, reclaimable, report,
    unheld_reason,
};

use crate::model::{AttemptId, EntryStatus, HostStatus, TaskFlags};
use common::names::{DroneName, HostName};
use common::protocol::{ManifestSummary, StatusEvent};

/// What a heartbeat says of its drone, as the drone's row keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroneSaid {
    /// Its worker is stopping.
    pub stopping: bool,
    /// Free space of its results filesystem, in MiB (None: not said).
    pub free_mb: Option<i64>,
    /// Below its `[DRONE] min_free_mb`: no new work until a heartbeat says otherwise.
    pub low_disk: bool,
}

impl DroneSaid {
    /// From a heartbeat's fields; a free space past what the column holds is kept as
    /// the column's largest.
    pub fn of(stopping: bool, free_mb: Option<u64>, low_disk: bool) -> Self {
        Self {
            stopping,
            free_mb: free_mb.map(|mb| i64::try_from(mb).unwrap_or(i64::MAX)),
            low_disk,
        }
    }
}

/// One report as read from `autotest.status`. What the drone says of its own clock is
/// not kept: every decision uses the scheduler's.
#[derive(Debug, Clone)]
pub struct Report {
    /// The drone the report names.
    pub drone: DroneName,
    pub event: StatusEvent,
    /// Why the report does not count as that drone's (its `user_id` is not the drone's
    /// broker user: see [`origin::Senders`]); None when it does.
    pub refused: Option<String>,
    /// A heartbeat whose `results_url` does not match `[SCHEDULER] drone_results_url`:
    /// the drone keeps the URL it had.
    pub url_ignored: bool,
    /// When the drone sent it (UTC microseconds, the drone's clock): only for the
    /// report-lag metric, never for a decision.
    pub sent_at: i64,
}

/// The rules for infra failures, from `[SCHEDULER]`.
#[derive(Debug, Clone, Copy)]
pub struct InfraRules {
    /// `max_infra_retries`.
    pub max_retries: i32,
    /// An attempt dispatched this long before a heartbeat that does not list it was
    /// either taken by the drone or expired in its queue (the job message's TTL is
    /// `drone_timeout_sec`): the drone does not have it.
    pub reclaim_after_us: i64,
}

/// What applying one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The entry changed; `slot_freed` when a drone slot or a host became free.
    Changed { slot_freed: bool },
    /// From an older attempt, another drone, or out of order: recorded in the entry's
    /// history, nothing else changed.
    Stale,
    /// A heartbeat; `reclaimed` entries the drone does not hold were handed back.
    Heartbeat { reclaimed: bool },
    /// Not sent by the broker user of the drone it names: recorded in the entry's
    /// history (within a bound), nothing else changed.
    Refused,
    /// About an entry that does not exist: counted, not stored.
    UnknownEntry,
}

/// Who judges a report, and when: the reporting drone, the scheduler's clock and the
/// infra rules.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The drone the report came from.
    pub drone: &'a DroneName,
    /// The scheduler's time (UTC microseconds); a drone's clock never goes in a row.
    pub now: i64,
    pub rules: InfraRules,
}

/// An entry as intake reads it (with its job's tasks and its host's name).
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRow {
    /// The entry and its current attempt.
    pub attempt: AttemptId,
    pub status: EntryStatus,
    /// The drone the current attempt was dispatched to.
    pub drone: Option<DroneName>,
    pub host_id: Option<i64>,
    pub hostname: Option<HostName>,
    /// A metahost entry (placed on any host with its label) may move to another host.
    pub metahost: bool,
    /// An abort was recorded: the entry ends Aborted whatever its drone reports.
    pub abort_requested: bool,
    pub infra_retries: i32,
    pub job_tasks: TaskFlags,
    pub exit_code: Option<i32>,
    /// When the entry was created, with its job (UTC microseconds).
    pub created_on: i64,
    pub started_on: Option<i64>,
    pub finished_on: Option<i64>,
    pub failure_kind: Option<String>,
    pub failure_reason: Option<String>,
}

impl EntryRow {
    /// The row as it is after `changes`.
    pub fn with(&self, changes: &EntryChanges) -> EntryRow {
        let mut row = self.clone();
        if let Some(status) = changes.status {
            row.status = status;
        }
        if let Some(started_on) = changes.started_on {
            row.started_on = started_on;
        }
        if let Some(exit_code) = changes.exit_code {
            row.exit_code = exit_code;
        }
        if let Some(finished_on) = changes.finished_on {
            row.finished_on = finished_on;
        }
        if let Some(kind) = changes.failure_kind {
            row.failure_kind = kind.map(str::to_string);
        }
        if let Some(reason) = &changes.failure_reason {
            row.failure_reason = reason.clone();
        }
        if let Some(retries) = changes.infra_retries {
            row.infra_retries = retries;
        }
        row
    }
}

/// Another entry of a synchronous group, led by the entry its drone reports about.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: i64,
    pub host_id: Option<i64>,
    pub hostname: Option<HostName>,
    pub metahost: bool,
}

/// An entry a drone holds by the database (Starting or Running, not a group member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDrone {
    pub attempt: AttemptId,
    pub status: EntryStatus,
    pub dispatched_on: Option<i64>,
}

/// Columns of the entry a transition sets; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryChanges {
    pub status: Option<EntryStatus>,
    pub started_on: Option<Option<i64>>,
    pub exit_code: Option<Option<i32>>,
    pub finished_on: Option<Option<i64>>,
    pub failure_kind: Option<Option<&'static str>>,
    pub failure_reason: Option<Option<String>>,
    pub infra_retries: Option<i32>,
    /// The drone a retry should avoid.
    pub avoid_drone: Option<DroneName>,
    /// Back to the queue: no drone, no dispatch time.
    pub undispatched: bool,
    /// A metahost entry gives its host up (it may be placed on another).
    pub host_released: bool,
}

/// A change to a host.
#[derive(Debug, Clone, PartialEq)]
pub enum HostWrite {
    /// Back to Ready, unless it is out of service (Repair Failed).
    Free(i64),
    /// Back to Repair Failed if it is still locked for a failed repair.
    KeepOutOfService(i64),
    /// A special task started on it, or it went back to the job that holds it.
    Status(HostName, HostStatus),
    /// A cleanup passed: no job ran on it since.
    Cleaned(HostName),
    /// A repair passed: unlocked if it was locked for a failed repair.
    Repaired(HostName),
    /// Its repair failed: Repair Failed, and locked with `repair failed: <reason>`.
    OutOfService(HostName, String),
}

/// A row for `entry_history`.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub attempt: AttemptId,
    pub drone: DroneName,
    pub event: &'static str,
    pub detail: String,
}

/// The rest of a synchronous group follows its lead.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSync {
    pub members: Vec<i64>,
    /// The lead's state, copied to every member.
    pub lead: EntryRow,
    /// The lead went back to the queue: the group dissolves and its entries wait alone.
    pub dissolve: bool,
    /// Metahost members that give their host up (when the group dissolves).
    pub release_hosts: Vec<i64>,
    /// Members' hosts freed (when the lead ended or went back to the queue).
    pub free_hosts: Vec<i64>,
}

/// Why and how an attempt failed for the infrastructure's sake, for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct InfraNote {
    pub reason: String,
    pub outcome: String,
}

/// Everything one report implies. The entry update is written only where the entry is
/// still at the row's attempt, drone and status.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub applied: Applied,
    /// The entry as read, when a change to it is guarded by it.
    pub row: Option<EntryRow>,
    pub entry: EntryChanges,
    /// Stored on the entry and its group.
    pub manifest: Option<ManifestSummary>,
    /// In order.
    pub hosts: Vec<HostWrite>,
    pub group: Option<GroupSync>,
    pub history: Option<History>,
    pub infra: Option<InfraNote>,
    /// Parsed tests to keep or store.
    pub tests: Option<TestsWrite>,
}

/// What a report does with an attempt's parsed tests.
#[derive(Debug, Clone, PartialEq)]
pub enum TestsWrite {
    /// A part arrived before the attempt ended: kept until it does.
    Part {
        attempt: AttemptId,
        part: u32,
        /// `{"tests", "dropped", "parse_error"}` as the drone sent them.
        body: String,
    },
    /// The attempt ended: its kept parts become its tests; `parts` were announced.
    Store {
        attempt: AttemptId,
        host_id: Option<i64>,
        parts: u32,
    },
}

impl Transition {
    /// A transition of `row` that changes nothing yet.
    fn of(row: &EntryRow, slot_freed: bool) -> Self {
        Transition {
            applied: Applied::Changed { slot_freed },
            row: Some(row.clone()),
            entry: EntryChanges::default(),
            manifest: None,
            hosts: Vec::new(),
            group: None,
            history: None,
            infra: None,
            tests: None,
        }
    }

    /// A report that does not apply to the entry as it is: only its history says so.
    fn stale(history: History) -> Self {
        Transition {
            history: Some(history),
            ..Self::nothing(Applied::Stale)
        }
    }

    /// No write at all.
    fn nothing(applied: Applied) -> Self {
        Transition {
            applied,
            row: None,
            entry: EntryChanges::default(),
            manifest: None,
            hosts: Vec::new(),
            group: None,
            history: None,
            infra: None,
            tests: None,
        }
    }

    /// Whether the report changed the entry.
    pub fn changed(&self) -> bool {
        !matches!(
            self.applied,
            Applied::Stale | Applied::Refused | Applied::UnknownEntry
        )
    }
}

/// The attempt a report is about; None for a heartbeat.
pub fn event_attempt(event: &StatusEvent) -> Option<AttemptId> {
    match event {
        StatusEvent::Running {
            entry_id, attempt, ..
        }
        | StatusEvent::Gathering {
            entry_id, attempt, ..
        }
        | StatusEvent::Finished {
            entry_id, attempt, ..
        }
        | StatusEvent::Refused {
            entry_id, attempt, ..
        }
        | StatusEvent::Task {
            entry_id, attempt, ..
        }
        | StatusEvent::PushFailing {
            entry_id, attempt, ..
        }
        | StatusEvent::RepairFailed {
            entry_id, attempt, ..
        }
        | StatusEvent::Tests {
            entry_id, attempt, ..
        } => Some(AttemptId::new(*entry_id, *attempt)),
        StatusEvent::Heartbeat { .. } => None,
    }
}
