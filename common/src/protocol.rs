//! The wire format: versioned JSON messages between the scheduler and the drone
//! workers. Only this module knows how they are encoded; both sides decode through
//! [`decode`], which refuses oversized, unparseable and unknown-version messages with a
//! reason fit for the dead-letter queue's header.

use crate::names::{DroneName, HostName, Owner};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The schema version this build writes and reads. A message with another version is
/// dead-lettered, never guessed at.
/// 2: heartbeats carry `results_url` and `stopping`, Finished carries `manifest` (a
/// release reading version 1 refuses them, so the versions must not mix).
/// 3: a status report carries `events`, several in order, instead of one `event`.
/// 4: Finished may carry `test_failure` (results over the drone's `max_results_mb`)
/// and `test_parts`: the attempt's parsed tests travel before it in `tests` events.
/// 5: heartbeats carry `free_mb` and `low_disk` (the drone's results filesystem); a
/// release reading version 4 refuses a heartbeat with them.
pub const SCHEMA_VERSION: u32 = 5;

/// The most events a worker puts in one status report.
pub const MAX_EVENTS_PER_REPORT: usize = 64;

/// Messages larger than this are refused (control files are a few KiB).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Scheduler → drone: run Autoserv for one host-queue entry (one attempt of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJob {
    pub schema: u32,
    pub entry_id: i64,
    pub job_id: i64,
    /// Fencing token: increases on every dispatch of the entry.
    pub attempt: i32,
    pub drone: DroneName,
    pub hosts: Vec<HostName>,
    pub owner: Owner,
    /// Free text: reaches Autoserv as one argument, never a shell or a path.
    pub job_name: String,
    /// The entry's directory under `<job_id>-<owner>/`: the host's name.
    pub execution_subdir: HostName,
    pub control_file: String,
    /// Autotest's special tasks around the job on each of its hosts.
    #[serde(default, skip_serializing_if = "Tasks::is_empty")]
    pub tasks: Tasks,
    pub sender_version: String,
}

/// Special tasks (Autotest's verify, repair, cleanup) an attempt runs on its hosts, each
/// with its `[AUTOSERV] <task>_command`, in this order: cleanup, verify, the job,
/// cleanup. A verify or cleanup that fails is followed by a repair; a repair that fails
/// ends the attempt (see [`StatusEvent::RepairFailed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tasks {
    #[serde(default)]
    pub cleanup_before: bool,
    #[serde(default)]
    pub verify: bool,
    #[serde(default)]
    pub cleanup_after: bool,
    /// Only repair the hosts (`atest host repair`): no job runs.
    #[serde(default)]
    pub repair_only: bool,
}

impl Tasks {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The size of an entry's results, from the manifest the worker wrote and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSummary {
    pub files: u64,
    pub bytes: u64,
}

/// A special task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Verify,
    Repair,
    Cleanup,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Repair => "repair",
            Self::Cleanup => "cleanup",
        }
    }
}

/// Where a special task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    Started,
    Passed,
    Failed,
}

impl RunJob {
    /// `<job_id>-<owner>/<execution_subdir>`, Autotest's results path of the entry.
    pub fn results_subdir(&self) -> String {
        format!("{}-{}/{}", self.job_id, self.owner, self.execution_subdir)
    }

    /// The id used as AMQP `message_id` and in logs: `entry-<id>.<attempt>`.
    pub fn delivery_id(&self) -> String {
        format!("entry-{}.{}", self.entry_id, self.attempt)
    }
}

/// Drone → scheduler: what happened to an entry's attempt, or a heartbeat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    pub schema: u32,
    pub drone: DroneName,
    /// What happened, oldest first: one event, or the several that were waiting while
    /// the drone's previous report was on its way. Never empty.
    #[serde(deserialize_with = "non_empty")]
    pub events: Vec<StatusEvent>,
    /// Drone clock, UTC microseconds; informative only.
    pub sent_at: i64,
    pub sender_version: String,
}

fn non_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<T>::deserialize(deserializer)?;
    if items.is_empty() {
        return Err(serde::de::Error::custom(
            "a status report needs at least one event",
        ));
    }
    Ok(items)
}

/// One step of an entry's life on a drone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StatusEvent {
    /// Autoserv has been started, or handed to the drone's supervisor, which starts it
    /// at once (`pid` 0 then; the worker's journal has the pid).
    Running {
        entry_id: i64,
        attempt: i32,
        pid: u32,
    },
    /// Autoserv exited; its results are being pushed to the results host.
    Gathering {
        entry_id: i64,
        attempt: i32,
        exit_code: i32,
    },
    /// The results are on the results host: the attempt is over.
    Finished {
        entry_id: i64,
        attempt: i32,
        /// Autoserv's exit status; 128 + N when killed by signal N.
        exit_code: i32,
        /// Set when the exit says nothing about the test: the worker stopped Autoserv
        /// itself because it lost the broker for `drone_timeout_sec` (its lease). The
        /// scheduler then counts an infra failure, not a test failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        infra_failure: Option<String>,
        /// Set when the drone failed the test whatever Autoserv's exit status: its
        /// results went over `[DRONE] max_results_mb`. The reason, for the entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_failure: Option<String>,
        /// What the results directory holds, by its manifest (checked on the results
        /// host before this report).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest: Option<ManifestSummary>,
        /// How many `tests` events went before this one for the attempt (0: the
        /// results were not parsed).
        #[serde(default, skip_serializing_if = "is_zero")]
        test_parts: u32,
    },
    /// Part `part` (from 0) of `parts` of the tests parsed from the attempt's results,
    /// each part bounded in size; sent before Finished.
    Tests {
        entry_id: i64,
        attempt: i32,
        part: u32,
        parts: u32,
        tests: Vec<tko::TestResult>,
        /// Tests found past the drone's `max_parsed_tests`, counted and not sent.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        dropped: u64,
        /// What could not be parsed, one line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parse_error: Option<String>,
    },
    /// The results could not be pushed yet (results host unreachable or full); the
    /// worker keeps them and keeps trying. Sent once per attempt.
    PushFailing {
        entry_id: i64,
        attempt: i32,
        reason: String,
    },
    /// A special task on one of the entry's hosts started or ended.
    Task {
        entry_id: i64,
        attempt: i32,
        host: HostName,
        task: TaskKind,
        outcome: TaskOutcome,
    },
    /// A host failed verify or cleanup and then repair: it is out of service and the
    /// job did not run (its task results are on the results host).
    RepairFailed {
        entry_id: i64,
        attempt: i32,
        host: HostName,
        reason: String,
    },
    /// The worker could not run the attempt at all (bad results path, spawn failure).
    Refused {
        entry_id: i64,
        attempt: i32,
        reason: String,
    },
    /// The worker is alive; `running` lists the attempts it holds.
    Heartbeat {
        running: Vec<(i64, i32)>,
        /// Where the drone serves the results it holds (`GET <url>/results/...`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        results_url: Option<String>,
        /// The worker is stopping: it finishes what it holds and takes nothing new.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stopping: bool,
        /// Free space of the drone's results filesystem, in MiB (for an unprivileged
        /// user); absent when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        free_mb: Option<u64>,
        /// `free_mb` is below the drone's `[DRONE] min_free_mb`: it finishes what it
        /// holds and takes nothing new until a heartbeat says it has room again. The
        /// drone judges, as the threshold is its own config.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        low_disk: bool,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// Scheduler → drone, on the drone's control queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub schema: u32,
    pub drone: DroneName,
    pub command: ControlCommand,
    pub sender_version: String,
}

/// What the scheduler asks of a drone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ControlCommand {
    /// Stop the attempt: SIGTERM to Autoserv's process group, SIGKILL after
    /// `grace_sec`; what it left is still pushed. An attempt not started yet never starts.
    Abort {
        entry_id: i64,
        attempt: i32,
        grace_sec: u64,
    },
}

/// Why a message could not be read: goes into the dead-letter header `x-autotest-reason`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("message is not JSON: {0}")]
    NotJson(String),
    #[error("message has no numeric \"schema\" field")]
    NoSchema,
    #[error("message has schema version {found}, this build reads version {SCHEMA_VERSION} (sender version {sender})")]
    UnknownVersion { found: u64, sender: String },
    #[error("message does not match schema {SCHEMA_VERSION}: {0}")]
    Invalid(String),
}

/// Encodes a message (infallible for our types).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("protocol types always serialize")
}

/// Decodes a message, checking its size and schema version first.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_u64())
        .ok_or(DecodeError::NoSchema)?;
    if schema != u64::from(SCHEMA_VERSION) {
        let sender = value
            .get("sender_version")
            .and_then(|s| s.as_str())
            .unwrap_or("unknown")
            .to_string();
        return Err(DecodeError::UnknownVersion {
            found: schema,
            sender,
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_job() -> RunJob {
        RunJob {
            schema: SCHEMA_VERSION,
            entry_id: 7,
            job_id: 3,
            attempt: 1,
            drone: DroneName::new("drone1").unwrap(),
            hosts: vec![HostName::new("host1").unwrap()],
            owner: Owner::new("alice").unwrap(),
            job_name: "a \"name\" $(rm -rf /)".into(),
            execution_subdir: HostName::new("host1").unwrap(),
            control_file: "job.run()".into(),
            tasks: Default::default(),
            sender_version: crate::VERSION.into(),
        }
    }

    #[test]
    fn round_trips() {
        let job = run_job();
        assert_eq!(decode::<RunJob>(&encode(&job)).unwrap(), job);
        assert_eq!(job.results_subdir(), "3-alice/host1");
    }

    #[test]
    fn a_status_report_carries_its_events_in_order() {
        let report = StatusReport {
            schema: SCHEMA_VERSION,
            drone: DroneName::new("drone1").unwrap(),
            events: vec![
                StatusEvent::Running {
                    entry_id: 7,
                    attempt: 1,
                    pid: 42,
                },
                StatusEvent::Gathering {
                    entry_id: 7,
                    attempt: 1,
                    exit_code: 0,
                },
            ],
            sent_at: 1,
            sender_version: crate::VERSION.into(),
        };
        assert_eq!(decode::<StatusReport>(&encode(&report)).unwrap(), report);
        let mut empty = serde_json::to_value(&report).unwrap();
        empty["events"] = serde_json::json!([]);
        let error = decode::<StatusReport>(&serde_json::to_vec(&empty).unwrap()).unwrap_err();
        assert!(error.to_string().contains("at least one event"), "{error}");
        // The single `event` of schema 2 is not read as schema 3.
        let mut old = serde_json::to_value(&report).unwrap();
        old.as_object_mut().unwrap().remove("events");
        old["event"] = serde_json::to_value(&report.events[0]).unwrap();
        assert!(matches!(
            decode::<StatusReport>(&serde_json::to_vec(&old).unwrap()),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(
            decode::<RunJob>(b"{nope"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(decode::<RunJob>(b"{}"), Err(DecodeError::NoSchema));
        let mut v = serde_json::to_value(run_job()).unwrap();
        v["schema"] = 99.into();
        assert!(matches!(
            decode::<RunJob>(&serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::UnknownVersion { found: 99, .. })
        ));
        let mut v = serde_json::to_value(run_job()).unwrap();
        v.as_object_mut().unwrap().remove("hosts");
        assert!(matches!(
            decode::<RunJob>(&serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::Invalid(_))
        ));
        let mut v = serde_json::to_value(run_job()).unwrap();
        v["execution_subdir"] = "../../etc".into();
        assert!(matches!(
            decode::<RunJob>(&serde_json::to_vec(&v).unwrap()),
            Err(DecodeError::Invalid(_))
        ));
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            decode::<RunJob>(&big),
            Err(DecodeError::TooLarge(_))
        ));
    }
}
