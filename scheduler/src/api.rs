//! The HTTP API as the scheduler serves it: the request and response bodies come from
//! the `api` package (shared with `atest`); what is the scheduler's own stays here.

pub use ::api::{
    AbortJob, ChangeLabels, CreateHost, CreateJob, DroneSetView, DroneView, EntryView, ErrorBody,
    HistoryView, HostView, JobCreated, JobSummary, JobView, LabelView, LockHost, ManifestView,
    SetCapacity,
};

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
