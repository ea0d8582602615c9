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
        name: row.name,
        labels: row.labels,
        status: row.status.to_string(),
        locked: row.locked,
        lock_reason: row.lock_reason,
    }
}

/// One line of `GET /api/jobs`.
pub fn job_summary(row: JobSummaryRow) -> JobSummary {
    JobSummary {
        id: row.id,
        name: row.name,
        owner: row.owner,
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
                &owner,
                &entry.execution_subdir,
            )
        })
    };
    JobView {
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
        owner: row.owner,
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
        host: entry.host,
        label: entry.label,
        status: entry.status.to_string(),
        drone: entry.drone,
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
        name: row.name,
        enabled: row.enabled,
        running: row.running,
        status: row.status.to_string(),
        capacity: i32::try_from(row.capacity).unwrap_or(i32::MAX),
        queued,
        last_heartbeat: row.last_heartbeat.map(format_micros),
    }
}

/// `GET /api/drone-sets` and `POST /api/drone-sets`.
pub fn drone_set_view(row: DroneSetRow) -> DroneSetView {
    DroneSetView {
        name: row.name,
        drones: row.drones,
    }
}
