//! The HTTP API's request and response bodies, shared by the server and `atest`.
//! These are also the documents `atest … --json` prints (see the README).

use serde::{Deserialize, Serialize};

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

/// The special tasks of a job, as stored in `jobs.tasks`.
pub mod task_flags {
    pub const VERIFY: i32 = 1;
    pub const CLEANUP_BEFORE: i32 = 2;
    pub const CLEANUP_BEFORE_IF_DIRTY: i32 = 4;
    pub const CLEANUP_AFTER: i32 = 8;
    /// `atest host repair`: the job only repairs its host.
    pub const REPAIR_ONLY: i32 = 32;

    /// The flags' names, as `job show --json` lists them.
    pub fn names(flags: i32) -> Vec<String> {
        [
            (VERIFY, "verify"),
            (CLEANUP_BEFORE, "cleanup-before"),
            (CLEANUP_BEFORE_IF_DIRTY, "cleanup-before-if-dirty"),
            (CLEANUP_AFTER, "cleanup-after"),
            (REPAIR_ONLY, "repair-only"),
        ]
        .iter()
        .filter(|(flag, _)| flags & flag != 0)
        .map(|(_, name)| name.to_string())
        .collect()
    }

    /// The flags for `--run-verify`, `--reboot-before` and `--reboot-after`
    /// (`never`, `if-dirty`, `always`; after the job, `if-dirty` is `always`, since
    /// the job has just made the host dirty).
    pub fn from_options(
        run_verify: bool,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<i32, String> {
        let parse = |option: &str, value: Option<&str>| match value.unwrap_or("never") {
            "never" => Ok(0),
            "if-dirty" => Ok(1),
            "always" => Ok(2),
            other => Err(format!(
                "{option} must be never, if-dirty or always, not {other:?}"
            )),
        };
        let mut flags = if run_verify { VERIFY } else { 0 };
        flags |= match parse("--reboot-before", before)? {
            1 => CLEANUP_BEFORE_IF_DIRTY,
            2 => CLEANUP_BEFORE,
            _ => 0,
        };
        if parse("--reboot-after", after)? > 0 {
            flags |= CLEANUP_AFTER;
        }
        Ok(flags)
    }

    /// What an attempt of a job with `flags` runs on a host that is `dirty` or not.
    pub fn tasks(flags: i32, dirty: bool) -> common::protocol::Tasks {
        common::protocol::Tasks {
            cleanup_before: flags & CLEANUP_BEFORE != 0
                || (flags & CLEANUP_BEFORE_IF_DIRTY != 0 && dirty),
            verify: flags & VERIFY != 0,
            cleanup_after: flags & CLEANUP_AFTER != 0,
            repair_only: flags & REPAIR_ONLY != 0,
        }
    }
}

/// Host states besides Ready, Pending and Running.
pub mod host_status {
    pub const READY: &str = "Ready";
    pub const VERIFYING: &str = "Verifying";
    pub const REPAIRING: &str = "Repairing";
    pub const CLEANING: &str = "Cleaning";
    /// Out of service (and locked) until `atest host repair` passes or `host unlock`.
    pub const REPAIR_FAILED: &str = "Repair Failed";
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
    /// Sums up the entries: see [`job_status`].
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
    /// `infra-failure` or `stale-report`.
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
    /// finishes what it holds, as before an upgrade); `lost` (no heartbeat within `[SCHEDULER] drone_timeout_sec`: no
    /// new work until it is heard from again, and its running entries are retried
    /// elsewhere as infra failures).
    pub status: String,
    /// The capacity in force: set at run time, else the config's.
    pub capacity: i32,
    /// Job messages waiting in the drone's RabbitMQ queue (null if the broker could
    /// not be asked).
    pub queued: Option<u32>,
    pub last_heartbeat: Option<String>,
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

/// Entry states.
pub mod status {
    pub const QUEUED: &str = "Queued";
    /// An entry of a synchronous job holding its host until its group is complete.
    pub const PENDING: &str = "Pending";
    pub const STARTING: &str = "Starting";
    pub const RUNNING: &str = "Running";
    pub const GATHERING: &str = "Gathering";
    pub const COMPLETED: &str = "Completed";
    pub const FAILED: &str = "Failed";
    pub const ABORTED: &str = "Aborted";
    /// States in which an entry occupies a drone slot.
    pub const ON_DRONE: [&str; 2] = [STARTING, RUNNING];
    /// States in which an entry is held by a drone (its host is busy).
    pub const ACTIVE: [&str; 3] = [STARTING, RUNNING, GATHERING];
    pub const FINAL: [&str; 3] = [COMPLETED, FAILED, ABORTED];
}

/// A job's status from its entries' statuses: Queued while every entry is queued;
/// once all are final, Aborted if any was aborted, else Failed if any failed, else
/// Completed; Running in between.
pub fn job_status<'a>(entries: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut all_queued = true;
    let mut all_final = true;
    let (mut aborted, mut failed, mut any) = (false, false, false);
    for s in entries {
        any = true;
        all_queued &= s == status::QUEUED || s == status::PENDING;
        all_final &= status::FINAL.contains(&s);
        aborted |= s == status::ABORTED;
        failed |= s == status::FAILED;
    }
    if !any || all_queued {
        status::QUEUED
    } else if all_final {
        if aborted {
            status::ABORTED
        } else if failed {
            status::FAILED
        } else {
            status::COMPLETED
        }
    } else {
        status::RUNNING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_status_sums_up_entries() {
        assert_eq!(job_status(["Queued", "Queued"]), "Queued");
        assert_eq!(job_status(["Queued", "Completed"]), "Running");
        assert_eq!(job_status(["Gathering"]), "Running");
        assert_eq!(job_status(["Completed", "Completed"]), "Completed");
        assert_eq!(job_status(["Completed", "Failed"]), "Failed");
        assert_eq!(job_status(["Aborted", "Failed"]), "Aborted");
    }
}
