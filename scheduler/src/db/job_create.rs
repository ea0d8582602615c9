//! Storing new jobs and their Queued entries, inside a write transaction the caller
//! opens (job creation commits jobs in groups and may dispatch in the same
//! transaction: see `dispatch::Creator`).

use super::schema::{
    drone_sets, host_labels, host_queue_entries as hqe, hosts, job_dependencies, jobs, labels,
};
use super::{Cache, Conn, DbError};
use crate::model::{EntryStatus, TaskFlags};
use crate::on_conn;
use common::names::{DroneSetName, HostName, LabelName, Owner};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};
use std::collections::{BTreeMap, HashSet};

/// The most values bound in one statement: far under SQLite's limit on variables
/// (32766) and MySQL's on placeholders (65535), so a big job is stored in a few
/// statements rather than failing.
const CHUNK: usize = 5000;

/// A job ready to be stored: every field already validated.
pub struct NewJob {
    pub name: String,
    pub owner: Owner,
    pub priority: i32,
    pub control_file: String,
    pub hosts: Vec<HostName>,
    /// Metahost label and how many entries for it.
    pub label: Option<(LabelName, u32)>,
    pub dependencies: Vec<LabelName>,
    /// `--timeout-mins` and `--max-runtime-mins`, in microseconds.
    pub timeout_us: Option<i64>,
    pub max_runtime_us: Option<i64>,
    /// Only the drones of this set may run the job's entries.
    pub drone_set: Option<DroneSetName>,
    /// Hosts per Autoserv run (1: each entry on its own).
    pub synch_count: i32,
    /// Special tasks.
    pub tasks: TaskFlags,
    /// Mail about the job when it ends (job-end mail was configured when it was made).
    pub notify: bool,
}

impl NewJob {
    /// How many entries the job has (its hosts and its metahost count).
    pub fn entries(&self) -> usize {
        self.hosts.len() + self.label.as_ref().map_or(0, |(_, count)| *count as usize)
    }
}

/// Stores a group of jobs (each with when it was submitted) in the caller's
/// transaction, each in a savepoint: a job refused (unknown host or label, missing
/// dependency) leaves the others stored; a database failure fails them all. A job
/// alone needs no savepoint (two statements fewer on the path of an idle lab's job):
/// its refusal is the transaction's error. `last_id` is the backend's SQL for the id
/// of the last inserted row.
pub async fn insert_group(
    conn: &mut Conn<'_>,
    group: &[(NewJob, i64)],
    last_id: &str,
) -> Result<Vec<Result<i64, DbError>>, DbError> {
    if let [(job, now)] = group {
        // Alone, the job's transaction is its savepoint: a refusal rolls it back.
        return Ok(vec![Ok(insert_job(conn, job, *now, last_id).await?)]);
    }
    let mut out = Vec::with_capacity(group.len());
    for (job, now) in group {
        let stored = on_conn!(conn, |c| {
            AsyncConnection::transaction(c, async |c| {
                insert_job(&mut Conn::from(c), job, *now, last_id).await
            })
            .await
        });
        match stored {
            Err(refused @ (DbError::NotFound(_) | DbError::Invalid(_) | DbError::Forbidden(_))) => {
                out.push(Err(refused))
            }
            Err(failed) => return Err(failed),
            Ok(id) => out.push(Ok(id)),
        }
    }
    Ok(out)
}

/// The ids of what a job names, checked to exist.
struct Resolved {
    /// Named hosts, by name.
    host_ids: BTreeMap<String, i64>,
    /// Dependency and metahost labels, by name.
    label_ids: BTreeMap<String, i64>,
    drone_set_id: Option<i64>,
}

/// Stores one job and its entries; returns its id.
async fn insert_job(
    conn: &mut Conn<'_>,
    job: &NewJob,
    now: i64,
    last_id: &str,
) -> Result<i64, DbError> {
    let names: Vec<String> = job.hosts.iter().map(|h| h.as_str().to_string()).collect();
    let deps: Vec<String> = job
        .dependencies
        .iter()
        .map(|l| l.as_str().to_string())
        .collect();
    let resolved = resolve(conn, job, &names, &deps).await?;
    let dep_ids: Vec<i64> = deps.iter().map(|d| resolved.label_ids[d]).collect();
    check_dependencies(conn, &names, &deps, &dep_ids, &resolved.host_ids).await?;
    let metahost = job
        .label
        .as_ref()
        .map(|(label, count)| (label, resolved.label_ids[label.as_str()], *count));
    super::job_acl::check(conn, &job.owner, &resolved.host_ids, metahost).await?;
    let job_id = insert_job_row(conn, job, now, resolved.drone_set_id, last_id).await?;
    for dep_id in &dep_ids {
        on_conn!(conn, |c| {
            diesel::insert_into(job_dependencies::table)
                .values((
                    job_dependencies::job_id.eq(job_id),
                    job_dependencies::label_id.eq(dep_id),
                ))
                .execute(c)
                .await?
        });
    }
    let mut entries: Vec<(Option<i64>, Option<i64>, &str)> = names
        .iter()
        .map(|n| (Some(resolved.host_ids[n]), None, n.as_str()))
        .collect();
    if let Some((label, count)) = &job.label {
        for _ in 0..*count {
            // The subdirectory becomes the host's name when a host is picked.
            entries.push((None, Some(resolved.label_ids[label.as_str()]), ""));
        }
    }
    let row = |(host_id, meta_label_id, subdir): (Option<i64>, Option<i64>, &str)| {
        (
            hqe::job_id.eq(job_id),
            hqe::host_id.eq(host_id),
            hqe::meta_label_id.eq(meta_label_id),
            hqe::status.eq(EntryStatus::Queued),
            hqe::priority.eq(job.priority),
            hqe::execution_subdir.eq(subdir.to_string()),
            hqe::attempt.eq(0),
            hqe::created_on.eq(now),
            hqe::queue_deadline.eq(job.timeout_us.map(|t| now + t)),
            hqe::max_runtime_us.eq(job.max_runtime_us),
        )
    };
    match conn {
        // In-process: one prepared statement a row costs no round trip.
        Conn::Sqlite(c) => {
            for entry in entries {
                diesel::insert_into(hqe::table)
                    .values(row(entry))
                    .cached()
                    .execute(&mut **c)
                    .await?;
            }
        }
        // Over the network: many rows a statement, each under the limit on bound
        // values.
        Conn::Mysql(c) => {
            for chunk in entries.chunks(CHUNK / 10) {
                let rows: Vec<_> = chunk.iter().copied().map(row).collect();
                diesel::insert_into(hqe::table)
                    .values(rows)
                    .execute(&mut **c)
                    .await?;
            }
        }
    }
    Ok(job_id)
}

/// The ids of the job's hosts, labels and drone set; refused if one is unknown.
async fn resolve(
    conn: &mut Conn<'_>,
    job: &NewJob,
    names: &[String],
    deps: &[String],
) -> Result<Resolved, DbError> {
    let mut host_ids: BTreeMap<String, i64> = BTreeMap::new();
    for chunk in names.chunks(CHUNK) {
        let found: Vec<(i64, String)> = on_conn!(conn, |c| {
            hosts::table
                .filter(hosts::hostname.eq_any(chunk))
                .select((hosts::id, hosts::hostname))
                // One statement per number of hosts: kept for the common few.
                .cached_if(chunk.len() <= 4)
                .load(c)
                .await?
        });
        host_ids.extend(found.into_iter().map(|(id, n)| (n, id)));
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !host_ids.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(DbError::NotFound(format!(
            "unknown host: {}",
            unknown.join(", ")
        )));
    }
    let mut wanted_labels = deps.to_vec();
    wanted_labels.extend(job.label.iter().map(|(l, _)| l.as_str().to_string()));
    let label_ids: BTreeMap<String, i64> = if wanted_labels.is_empty() {
        BTreeMap::new()
    } else {
        on_conn!(conn, |c| {
            labels::table
                .filter(labels::name.eq_any(&wanted_labels))
                .select((labels::name, labels::id))
                .load::<(String, i64)>(c)
                .await?
                .into_iter()
                .collect()
        })
    };
    let missing = wanted_labels.iter().find(|l| !label_ids.contains_key(*l));
    if let Some(missing) = missing {
        return Err(DbError::NotFound(format!("unknown label: {missing}")));
    }
    let drone_set_id = match &job.drone_set {
        None => None,
        Some(set) => Some(drone_set_id(conn, set).await?),
    };
    Ok(Resolved {
        host_ids,
        label_ids,
        drone_set_id,
    })
}

async fn drone_set_id(conn: &mut Conn<'_>, set: &DroneSetName) -> Result<i64, DbError> {
    let found: Option<i64> = on_conn!(conn, |c| {
        drone_sets::table
            .filter(drone_sets::name.eq(set.as_str()))
            .select(drone_sets::id)
            .first(c)
            .await
            .optional()?
    });
    found.ok_or_else(|| {
        DbError::NotFound(format!(
            "unknown drone set: {set} (create it with atest drone-set create)"
        ))
    })
}

/// Refuses the job if a named host lacks a label the job depends on.
async fn check_dependencies(
    conn: &mut Conn<'_>,
    names: &[String],
    deps: &[String],
    dep_ids: &[i64],
    host_ids: &BTreeMap<String, i64>,
) -> Result<(), DbError> {
    if dep_ids.is_empty() || host_ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = host_ids.values().copied().collect();
    let mut pairs: HashSet<(i64, i64)> = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let found: Vec<(i64, i64)> = on_conn!(conn, |c| {
            host_labels::table
                .filter(host_labels::host_id.eq_any(chunk))
                .filter(host_labels::label_id.eq_any(dep_ids))
                .select((host_labels::host_id, host_labels::label_id))
                .load(c)
                .await?
        });
        pairs.extend(found);
    }
    for name in names {
        for (dep, dep_id) in deps.iter().zip(dep_ids) {
            if !pairs.contains(&(host_ids[name], *dep_id)) {
                return Err(DbError::Invalid(format!(
                    "host {name} lacks the label {dep} this job depends on"
                )));
            }
        }
    }
    Ok(())
}

/// Inserts the job's row; returns its id.
async fn insert_job_row(
    conn: &mut Conn<'_>,
    job: &NewJob,
    now: i64,
    drone_set_id: Option<i64>,
    last_id: &str,
) -> Result<i64, DbError> {
    Ok(on_conn!(conn, |c| {
        diesel::insert_into(jobs::table)
            .values((
                jobs::name.eq(&job.name),
                jobs::owner.eq(job.owner.as_str()),
                jobs::priority.eq(job.priority),
                jobs::control_file.eq(&job.control_file),
                jobs::created_on.eq(now),
                jobs::drone_set_id.eq(drone_set_id),
                jobs::synch_count.eq(job.synch_count),
                jobs::tasks.eq(job.tasks.bits()),
                jobs::notify.eq(job.notify.then_some("pending")),
            ))
            .cached()
            .execute(c)
            .await?;
        diesel::select(sql::<BigInt>(last_id))
            .cached()
            .get_result(c)
            .await?
    }))
}
