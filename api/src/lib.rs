//! The HTTP API of the Autotest scheduler as seen from outside: the request and
//! response bodies (the documents `atest … --json` prints) and a blocking client.
//! It depends on nothing of the scheduler, so a client builds without diesel, SQLite,
//! lapin or axum.
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod lists;
pub mod test_results;
pub mod tls;

pub use auth::{
    AclMembers, AclView, CreateUser, TokenCreated, TokenView, UserCreated, UserView, WhoAmI,
};
pub use client::{Client, ClientError};
pub use lists::{HostPage, HostQuery, JobPage, JobQuery, TestPage, DEFAULT_LIMIT, MAX_LIMIT};
pub use test_results::{EntryTest, IterationView, TestDetail, TestQuery, TestView};
pub use tls::CaFileError;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The states in which a job or an entry no longer changes.
pub const FINAL_STATES: [&str; 3] = ["Completed", "Failed", "Aborted"];

/// The state of a job whose entries all completed (and of a completed entry).
pub const COMPLETED: &str = "Completed";

/// Whether a job or entry in `status` has finished (one of [`FINAL_STATES`]).
pub fn is_final(status: &str) -> bool {
    FINAL_STATES.contains(&status)
}

/// `POST /api/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateHost {
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A host under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostView {
    pub name: String,
    pub labels: Vec<String>,
    /// Ready, Pending (held by an entry of a synchronous job waiting for its group),
    /// Running (Autotest's host states).
    pub status: String,
    pub locked: bool,
    pub lock_reason: Option<String>,
    /// The user who locked it (null when unlocked, or locked by the scheduler after a
    /// failed repair).
    #[serde(default)]
    pub locked_by: Option<String>,
}

/// `POST /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateJob {
    pub name: String,
    /// The control file's contents.
    pub control_file: String,
    /// Named hosts: one entry each.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Metahost: `count` entries, each on any ready host carrying this label.
    #[serde(default)]
    pub label: Option<String>,
    /// How many metahost entries (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// Only hosts carrying every one of these labels qualify.
    #[serde(default)]
    pub dependencies: Vec<String>,
    pub owner: String,
    #[serde(default)]
    pub priority: i32,
    /// Abort entries still not started this many minutes after creation.
    #[serde(default)]
    pub timeout_mins: Option<u32>,
    /// Abort entries still running this many minutes after they started.
    #[serde(default)]
    pub max_runtime_mins: Option<u32>,
    /// `timeout_mins` in seconds, for finer control (API only; wins if both given).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// `max_runtime_mins` in seconds, for finer control (API only; wins if both given).
    #[serde(default)]
    pub max_runtime_secs: Option<u32>,
    /// Run only on the drones of this drone set (default: `[SCHEDULER]
    /// default_drone_set_name`, else any drone).
    #[serde(default)]
    pub drone_set: Option<String>,
    /// Autotest's synch_count: entries wait Pending until this many have a host, then
    /// one Autoserv runs for all of them (default 1: each entry runs on its own).
    #[serde(default)]
    pub synch_count: Option<u32>,
    /// Verify each host before the job (repairing it if verify fails).
    #[serde(default)]
    pub run_verify: bool,
    /// `never` (default), `if-dirty` or `always`: clean the host up before the job.
    #[serde(default)]
    pub reboot_before: Option<String>,
    /// `never` (default), `if-dirty` or `always`: clean the host up after the job.
    #[serde(default)]
    pub reboot_after: Option<String>,
}

impl CreateJob {
    /// A job of one entry per named host, with every option at its default.
    pub fn new(
        name: impl Into<String>,
        control_file: impl Into<String>,
        hosts: Vec<String>,
        owner: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            control_file: control_file.into(),
            hosts,
            label: None,
            count: None,
            dependencies: vec![],
            owner: owner.into(),
            priority: 0,
            timeout_mins: None,
            max_runtime_mins: None,
            timeout_secs: None,
            max_runtime_secs: None,
            drone_set: None,
            synch_count: None,
            run_verify: false,
            reboot_before: None,
            reboot_after: None,
        }
    }
}

/// `POST /api/jobs` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobCreated {
    pub id: i64,
}

/// One line of `GET /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub priority: i32,
    /// Sums up the entries: Queued while every entry waits; once all are final,
    /// Aborted if any was aborted, else Failed if any failed, else Completed; Running
    /// in between.
    pub status: String,
    pub created_on: String,
}

/// `GET /api/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub priority: i32,
    pub status: String,
    pub created_on: String,
    /// The drone set the job's entries are limited to; null for any drone.
    pub drone_set: Option<String>,
    /// How many hosts each Autoserv run of the job takes (1 unless synchronous).
    pub synch_count: i32,
    /// Special tasks around each run: `verify`, `cleanup-before`,
    /// `cleanup-before-if-dirty`, `cleanup-after`, `repair-only`.
    pub tasks: Vec<String>,
    pub entries: Vec<EntryView>,
    /// Where the job's results are: `results-host`, `archived` (read through the
    /// archive host) or `removed`.
    #[serde(default)]
    pub results_place: String,
    /// When they were archived or removed (RFC 3339); null on the results host.
    #[serde(default)]
    pub results_place_on: Option<String>,
}

/// `POST /api/jobs/{id}/archive` and `/purge`: where the job's results are now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultsMoved {
    pub id: i64,
    /// `archived` or `removed`.
    pub results_place: String,
}

/// One host-queue entry of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryView {
    pub id: i64,
    /// The host; null for a metahost entry not given a host yet.
    pub host: Option<String>,
    /// The metahost label the entry was created for (null for a named host).
    pub label: Option<String>,
    /// Queued, Pending, Starting, Running, Gathering, Completed, Failed, Aborted.
    pub status: String,
    pub drone: Option<String>,
    /// How many times the entry has been dispatched (the fencing token).
    pub attempt: i32,
    pub exit_code: Option<i32>,
    /// Where the results are on the results host (`[host:]path`), once they are there.
    pub results_path: Option<String>,
    pub failure_reason: Option<String>,
    /// Why a failed entry failed: `test` (Autoserv exited non-zero) or `infra` (its
    /// drone was lost or could not start Autoserv, and no infra retries were left).
    /// Also set on a queued or running entry that is being retried after an infra failure.
    pub failure_kind: Option<String>,
    /// Infra failures retried so far (at most `[SCHEDULER] max_infra_retries`).
    pub infra_retries: i32,
    /// The entry's results by the manifest its drone wrote and checked on the results
    /// host: how many files, how many bytes (null until they are there).
    pub manifest: Option<ManifestView>,
    /// Infra failures and stale reports (from an older attempt), oldest first.
    pub history: Vec<HistoryView>,
    pub created_on: String,
    pub started_on: Option<String>,
    pub finished_on: Option<String>,
    /// Who aborted the entry (null unless aborted).
    pub aborted_by: Option<String>,
    /// When the abort was recorded.
    pub aborted_on: Option<String>,
    /// The tests parsed from the results of the entry's current attempt.
    #[serde(default)]
    pub tests: Vec<EntryTest>,
    /// How many of those tests ended in each status.
    #[serde(default)]
    pub test_counts: BTreeMap<String, u64>,
    /// What the drone could not parse in the results (one line).
    #[serde(default)]
    pub parse_error: Option<String>,
    /// Tests found past the drone's `max_parsed_tests`, counted and not stored.
    #[serde(default)]
    pub tests_dropped: Option<i64>,
    /// When the entry is aborted if it has not started by then (the job's
    /// `--timeout-mins`, or `[AUTOTEST_WEB] job_timeout_default`); null: never.
    #[serde(default)]
    pub queue_deadline: Option<String>,
    /// The longest the entry may run once started, in seconds (`--max-runtime-mins`,
    /// or `[AUTOTEST_WEB] job_max_runtime_hrs_default`); null: no limit.
    #[serde(default)]
    pub max_runtime_secs: Option<i64>,
}

/// The size of an entry's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestView {
    pub files: u64,
    pub bytes: u64,
}

/// One event in an entry's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryView {
    pub attempt: i32,
    pub drone: Option<String>,
    /// `infra-failure`, `stale-report` (from an older attempt or another drone) or
    /// `refused-report` (not sent by the broker user of the drone it names).
    pub event: String,
    /// The reason, or the stale report as the drone sent it (JSON).
    pub detail: String,
    pub at: String,
}

/// `POST /api/jobs/{id}/abort`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AbortJob {
    /// The user aborting.
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One line of `GET /api/drones`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DroneView {
    pub name: String,
    pub enabled: bool,
    /// Entries Starting or Running on the drone now.
    pub running: i64,
    /// `ok`; `disabled` (no new work, by an operator); `draining` (disabled, entries
    /// still running); `stopping` (its worker is stopping: it takes nothing new and
    /// finishes what it holds, as before an upgrade); `low-disk` (its results
    /// filesystem is below its `[DRONE] min_free_mb`: no new work until a heartbeat says
    /// it has room again; what it runs finishes); `lost` (no heartbeat within `[SCHEDULER] drone_timeout_sec`: no
    /// new work until it is heard from again, and its running entries are retried
    /// elsewhere as infra failures).
    pub status: String,
    /// The capacity in force: set at run time, else the config's.
    pub capacity: i32,
    /// Job messages waiting in the drone's RabbitMQ queue (null if the broker could
    /// not be asked).
    pub queued: Option<u32>,
    pub last_heartbeat: Option<String>,
    /// Free space of the drone's results filesystem in MiB, by its last heartbeat
    /// (null until one said).
    #[serde(default)]
    pub free_mb: Option<i64>,
}

/// `POST /api/drone-sets`, and one line of `GET /api/drone-sets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DroneSetView {
    pub name: String,
    /// Its drones, by name.
    pub drones: Vec<String>,
}

/// `POST /api/drones/{name}/capacity`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetCapacity {
    pub capacity: i32,
}

/// `POST /api/hosts/{name}/lock`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockHost {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/hosts/{name}/labels`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangeLabels {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /api/labels`, and one line of `GET /api/labels`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelView {
    pub name: String,
}

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_body_with_only_the_required_fields_takes_every_default() {
        let body: CreateJob = serde_json::from_value(serde_json::json!({
            "name": "n", "control_file": "c", "owner": "o", "hosts": ["h1"]
        }))
        .expect("body");
        let defaults = CreateJob::new("n", "c", vec!["h1".into()], "o");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    #[test]
    fn completed_failed_and_aborted_are_final_and_nothing_else_is() {
        for status in ["Completed", "Failed", "Aborted"] {
            assert!(is_final(status), "{status}");
        }
        for status in ["Queued", "Pending", "Starting", "Running", "Gathering"] {
            assert!(!is_final(status), "{status}");
        }
    }
}
