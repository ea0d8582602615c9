//! The HTTP API's wire types made from the model's rows: states as their text, times
//! in RFC 3339, results paths as users see them.

use crate::api::{
    DroneSetView, DroneView, EntryView, HistoryView, HostView, JobSummary, JobView, ManifestView,
};
use crate::db::drone_sets::DroneSetRow;
use crate::db::drones::DroneRow;
use crate::db::hosts::HostRow;
use crate::db::jobs::{EntryRow, HistoryRow, JobRow, JobSummaryRow};
use common::config::ResultsHost;
use common::time::format_micros;
use std::path::Path;

/// Where the results of an entry are on the results host, as shown to users.
pub fn results_path(
    results_host: &ResultsHost,
    results_dir: &Path,
    job_id: i64,
    owner: &str,
    subdir: &str,
) -> String {
    let path = results_dir.join(format!("{job_id}-{owner}")).join(subdir);
    match results_host {
        ResultsHost::Local => path.display().to_string(),
        ResultsHost::Remote(host) => format!("{host}:{}", path.display()),
    }
}

/// `GET /api/hosts` and `POST /api/hosts`.
pub fn host_view(row: HostRow) -> HostView {
    HostView {
        name: row.name.into(),
        labels: row.labels.into_iter().map(String::from).collect(),
        status: row.status.to_string(),
        locked: row.locked,
        lock_reason: row.lock_reason,
        locked_by: row.locked_by,
    }
}

/// One line of `GET /api/jobs`.
pub fn job_summary(row: JobSummaryRow) -> JobSummary {
    JobSummary {
        id: row.id,
        name: row.name,
        owner: row.owner.into(),
        priority: row.priority,
        status: row.status.to_string(),
        created_on: format_micros(row.created_on),
    }
}

/// `GET /api/jobs/{id}`: results paths on `results_host` under `results_dir`.
pub fn job_view(row: JobRow, results_host: &ResultsHost, results_dir: &Path) -> JobView {
    let status = row.status().to_string();
    let (id, owner) = (row.id, row.owner.clone());
    let results = |entry: &EntryRow| {
        entry.results_pushed().then(|| {
            results_path(
                results_host,
                results_dir,
                id,
                owner.as_str(),
                &entry.execution_subdir,
            )
        })
    };
    JobView {
        results_place: "results-host".into(),
        results_place_on: None,
        entries: row
            .entries
            .into_iter()
            .map(|entry| {
                let results_path = results(&entry);
                entry_view(entry, results_path)
            })
            .collect(),
        status,
        id: row.id,
        name: row.name,
        owner: row.owner.into(),
        priority: row.priority,
        created_on: format_micros(row.created_on),
        drone_set: row.drone_set,
        synch_count: row.synch_count,
        tasks: row.tasks.names(),
    }
}

fn entry_view(entry: EntryRow, results_path: Option<String>) -> EntryView {
    EntryView {
        id: entry.id,
        host: entry.host.map(String::from),
        label: entry.label.map(String::from),
        status: entry.status.to_string(),
        drone: entry.drone.map(String::from),
        attempt: entry.attempt,
        exit_code: entry.exit_code,
        results_path,
        failure_reason: entry.failure_reason,
        failure_kind: entry.failure_kind,
        infra_retries: entry.infra_retries,
        manifest: entry.manifest.map(|(files, bytes)| ManifestView {
            files: files as u64,
            bytes: bytes as u64,
        }),
        history: entry.history.into_iter().map(history_view).collect(),
        created_on: format_micros(entry.created_on),
        started_on: entry.started_on.map(format_micros),
        finished_on: entry.finished_on.map(format_micros),
        aborted_by: entry.aborted_by,
        aborted_on: entry.aborted_on.map(format_micros),
        tests: Vec::new(),
        test_counts: Default::default(),
        parse_error: None,
        tests_dropped: None,
        queue_deadline: entry.queue_deadline.map(format_micros),
        max_runtime_secs: entry.max_runtime_us.map(|us| us / 1_000_000),
    }
}

/// Puts each entry's parsed tests, their counts per status and the parse's outcome
/// in the job's view.
pub fn with_tests(
    view: &mut crate::api::JobView,
    mut tests: std::collections::BTreeMap<i64, crate::db::test_results::EntryTests>,
) {
    for entry in &mut view.entries {
        let Some(found) = tests.remove(&entry.id) else {
            continue;
        };
        for test in &found.tests {
            *entry.test_counts.entry(test.status.clone()).or_default() += 1;
        }
        entry.tests = found.tests.into_iter().map(entry_test).collect();
        entry.parse_error = found.parse_error;
        entry.tests_dropped = found.dropped;
    }
}

fn entry_test(row: crate::db::test_results::TestRow) -> api::EntryTest {
    api::EntryTest {
        id: row.id,
        name: row.name,
        subdir: row.subdir,
        status: row.status,
        reason: row.reason,
        started: row.started.map(format_micros),
        finished: row.finished.map(format_micros),
    }
}

/// One test of a list.
pub fn test_view(
    row: crate::db::test_results::TestRow,
    attributes: std::collections::BTreeMap<String, String>,
) -> api::TestView {
    api::TestView {
        id: row.id,
        job_id: row.job_id,
        entry_id: row.entry_id,
        attempt: row.attempt,
        host: row.host,
        name: row.name,
        subdir: row.subdir,
        status: row.status,
        reason: row.reason,
        started: row.started.map(format_micros),
        finished: row.finished.map(format_micros),
        attributes,
    }
}

/// One test with its iterations and the URL of its results on this scheduler.
pub fn test_detail(row: crate::db::test_results::TestDetailRow) -> api::TestDetail {
    let results = row.test.subdir.as_ref().map(|subdir| {
        format!(
            "/results/{}-{}/{}/{}/",
            row.test.job_id,
            row.owner,
            row.execution_subdir,
            subdir.trim_matches('/')
        )
    });
    api::TestDetail {
        test: test_view(row.test, row.attributes),
        iterations: row
            .iterations
            .into_iter()
            .map(|(index, (attributes, perf))| api::IterationView {
                index,
                attributes,
                perf,
            })
            .collect(),
        results,
    }
}

fn history_view(row: HistoryRow) -> HistoryView {
    HistoryView {
        attempt: row.attempt,
        drone: row.drone,
        event: row.event,
        detail: row.detail,
        at: format_micros(row.at),
    }
}

/// One line of `GET /api/drones`, with `queued` as the broker said (if it could).
pub fn drone_view(row: DroneRow, queued: Option<u32>) -> DroneView {
    DroneView {
        name: row.name.into(),
        enabled: row.enabled,
        running: row.running,
        status: row.status.to_string(),
        capacity: i32::try_from(row.capacity).unwrap_or(i32::MAX),
        queued,
        last_heartbeat: row.last_heartbeat.map(format_micros),
        free_mb: row.free_mb,
    }
}

/// `GET /api/drone-sets` and `POST /api/drone-sets`.
pub fn drone_set_view(row: DroneSetRow) -> DroneSetView {
    DroneSetView {
        name: row.name,
        drones: row.drones,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryStatus, TaskFlags};
    use common::names::{HostName, Owner};

    fn entry(id: i64, status: EntryStatus, exit_code: Option<i32>) -> EntryRow {
        EntryRow {
            id,
            host: Some(HostName::new("host1").unwrap()),
            label: None,
            status,
            drone: None,
            attempt: 1,
            exit_code,
            failure_reason: None,
            execution_subdir: "host1".into(),
            created_on: 0,
            started_on: None,
            finished_on: None,
            aborted_by: None,
            aborted_on: None,
            failure_kind: None,
            infra_retries: 0,
            manifest: Some((3, 1024)),
            queue_deadline: None,
            max_runtime_us: None,
            history: Vec::new(),
        }
    }

    #[test]
    fn results_on_a_remote_host_read_as_host_colon_path() {
        let remote = ResultsHost::Remote("results1".into());
        let path = results_path(&remote, Path::new("/results"), 7, "alice", "host1");
        assert_eq!(path, "results1:/results/7-alice/host1");
        let local = results_path(&ResultsHost::Local, Path::new("/r"), 7, "alice", "group0");
        assert_eq!(local, "/r/7-alice/group0");
    }

    #[test]
    fn only_entries_whose_results_were_pushed_show_a_results_path() {
        let job = JobRow {
            id: 7,
            name: "job".into(),
            owner: Owner::new("alice").unwrap(),
            priority: 0,
            created_on: 0,
            drone_set: None,
            synch_count: 1,
            tasks: TaskFlags::VERIFY,
            entries: vec![
                entry(1, EntryStatus::Completed, Some(0)),
                entry(2, EntryStatus::Failed, Some(1)),
                entry(3, EntryStatus::Failed, None),
                entry(4, EntryStatus::Running, None),
            ],
        };
        let view = job_view(job, &ResultsHost::Local, Path::new("/r"));
        let shown: Vec<bool> = view
            .entries
            .iter()
            .map(|e| e.results_path.is_some())
            .collect();
        assert_eq!(shown, [true, true, false, false]);
        assert_eq!(view.status, "Running");
        assert_eq!(view.tasks, ["verify"]);
        assert_eq!(
            view.entries[0].manifest,
            Some(ManifestView {
                files: 3,
                bytes: 1024
            })
        );
    }
}
