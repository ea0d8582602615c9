//! Jobs and their host-queue entries, as users create and read them.

use super::entries::{assign_in, dispatch_view_in, Candidate};
use super::schema::{
    drone_sets, entry_history, host_labels, host_queue_entries as hqe, hosts, job_dependencies,
    jobs, labels,
};
use super::{Cache, Db, DbError};
use crate::api::{self, status, EntryView, HistoryView, JobSummary, JobView, ManifestView};
use crate::dispatch::{Decision, Shared};
use crate::{with_conn, write_txn};
use common::config::ResultsHost;
use common::names::{HostName, LabelName, Owner};
use common::time::format_micros;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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
    pub drone_set: Option<common::names::DroneSetName>,
    /// Hosts per Autoserv run (1: each entry on its own).
    pub synch_count: i32,
    /// Special tasks (`api::task_flags`).
    pub tasks: i32,
}

/// Job creation with group commit: jobs submitted while a transaction is being
/// committed go into the next one together (one fsync for all of them, where each used
/// to wait for its own), each in a savepoint of its own, so a job naming an unknown
/// host is refused alone.
///
/// With the dispatcher's [`Shared`] part, the same transaction also dispatches: it
/// reads the dispatch view and records the assignments (single entries only;
/// synchronous jobs are left to the dispatcher), then the job messages are published
/// once it has committed. In an idle lab a job then costs one commit before its message
/// goes out instead of two, and no wake-up of the dispatcher in between.
#[derive(Clone)]
pub struct Creator {
    tx: tokio::sync::mpsc::UnboundedSender<Submitted>,
}

/// A job, when it was submitted, and where its id goes.
type Submitted = (
    NewJob,
    i64,
    tokio::sync::oneshot::Sender<Result<i64, DbError>>,
);

/// The most jobs stored in one transaction, and the most entries (hosts and metahost
/// counts) a group takes more jobs up to: status reports wait for the writer meanwhile.
const GROUP_MAX: usize = 64;
const GROUP_ENTRIES: usize = 1000;

fn entries_of(job: &NewJob) -> usize {
    job.hosts.len() + job.label.as_ref().map_or(0, |(_, count)| *count as usize)
}

/// What the dispatch inside a creation transaction did.
#[derive(Default)]
struct Dispatched {
    /// Assignments recorded, to publish.
    runs: Vec<(Candidate, String)>,
    /// The dispatcher has work left (more may start, or synchronous jobs wait).
    wake: bool,
}

impl Creator {
    /// Starts the task that stores jobs, dispatching them with `dispatch` when given;
    /// it ends when every handle is dropped.
    pub fn start(db: Db, dispatch: Option<Arc<Shared>>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Submitted>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut entries = entries_of(&first.0);
                let mut group = vec![first];
                while group.len() < GROUP_MAX && entries < GROUP_ENTRIES {
                    match rx.try_recv() {
                        Ok(next) => {
                            entries += entries_of(&next.0);
                            group.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let (jobs, replies): (Vec<(NewJob, i64)>, Vec<_>) = group
                    .into_iter()
                    .map(|(job, created, reply)| ((job, created), reply))
                    .unzip();
                if jobs.len() > 1 {
                    tracing::debug!(jobs = jobs.len(), "storing jobs submitted together");
                }
                let Some(shared) = &dispatch else {
                    let (results, _) = store(&db, jobs, None).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                    continue;
                };
                let (results, dispatched) = store(&db, jobs, Some(shared.clone())).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                if dispatched.wake {
                    shared.wake.notify_one();
                }
                if !dispatched.runs.is_empty() {
                    let shared = shared.clone();
                    tokio::spawn(async move { shared.publish_recorded(dispatched.runs).await });
                }
            }
        });
        Self { tx }
    }

    /// Stores the job and its Queued entries (one per named host, `count` per
    /// metahost label), or nothing if a host or label is unknown or a named host
    /// lacks a dependency. `created_on` is now, when the job is handed over.
    pub async fn create(&self, job: NewJob) -> Result<i64, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let created = common::time::now_micros();
        let stopping = || DbError::Failed("the scheduler is shutting down".into());
        self.tx
            .send((job, created, reply))
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}

/// Stores a group of jobs, one result per job in order, and dispatches with `dispatch`
/// (holding its lock for that transaction only). When the transaction fails (a
/// deadlock, a host deleted meanwhile, a failure while dispatching), each job is tried
/// again on its own, without dispatching (the dispatcher is woken instead), so one
/// job's failure stays its own and a job is never refused for the dispatch's sake; a
/// panic while storing fails the jobs it was storing, not the creator.
async fn store(
    db: &Db,
    jobs: Vec<(NewJob, i64)>,
    dispatch: Option<Arc<Shared>>,
) -> (Vec<Result<i64, DbError>>, Dispatched) {
    let jobs = Arc::new(jobs);
    let count = jobs.len();
    let fallback = Dispatched {
        runs: Vec::new(),
        wake: true,
    };
    let dispatching = dispatch.is_some();
    let stored = match dispatch {
        Some(shared) => {
            let _dispatching = shared.lock.lock().await;
            store_range(db, &jobs, 0..count, Some(shared.clone())).await
        }
        None => store_range(db, &jobs, 0..count, None).await,
    };
    match stored {
        Ok(stored) => stored,
        // A job alone and refused (unknown host or label, missing dependency) stays so.
        Err(refused @ (DbError::NotFound(_) | DbError::Invalid(_))) if count == 1 => {
            (vec![Err(refused)], fallback)
        }
        Err(error) if count == 1 && !dispatching => (vec![Err(error)], fallback),
        Err(error) => {
            tracing::warn!(%error, jobs = count, "storing jobs failed; storing them one by one without dispatching");
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                out.push(match store_range(db, &jobs, i..i + 1, None).await {
                    Ok((mut one, _)) => one.remove(0),
                    Err(error) => Err(error),
                });
            }
            (out, fallback)
        }
    }
}

async fn store_range(
    db: &Db,
    jobs: &Arc<Vec<(NewJob, i64)>>,
    range: std::ops::Range<usize>,
    dispatch: Option<Arc<Shared>>,
) -> Result<(Vec<Result<i64, DbError>>, Dispatched), DbError> {
    let (db, jobs) = (db.clone(), jobs.clone());
    tokio::spawn(async move { create_group(&db, &jobs[range], dispatch.as_deref()).await })
        .await
        .unwrap_or_else(|panic| Err(DbError::Failed(format!("storing jobs failed: {panic}"))))
}

/// Stores a group of jobs in one transaction, each in a savepoint: a job refused
/// (unknown host or label, missing dependency) leaves the others stored; a database
/// failure fails them all. A job alone needs no savepoint (two statements fewer on the
/// path of an idle lab's job): its refusal is the transaction's error.
async fn create_group(
    db: &Db,
    group: &[(NewJob, i64)],
    dispatch: Option<&Shared>,
) -> Result<(Vec<Result<i64, DbError>>, Dispatched), DbError> {
    write_txn!(db, |conn, last_id| {
        // Reads the dispatch view in this transaction (so it sees the jobs just stored)
        // and records what can start.
        macro_rules! dispatch_here {
            ($shared:expr) => {{
                let shared: &Shared = $shared;
                let mut view =
                    dispatch_view_in!(conn, shared.drone_names(), shared.alive_since(), |free| {
                        shared.fetch(free)
                    });
                match shared.decide(&mut view).map(Decision::only_picks) {
                    None => Dispatched::default(),
                    Some(Err(_)) => Dispatched {
                        runs: Vec::new(),
                        wake: true,
                    },
                    Some(Ok((picks, more))) => {
                        let now = common::time::now_micros();
                        Dispatched {
                            runs: assign_in!(conn, picks, now),
                            wake: more,
                        }
                    }
                }
            }};
        }
        let insert = async |conn: &mut _, job: &NewJob, now: i64| -> Result<i64, DbError> {
            let names: Vec<String> = job.hosts.iter().map(|h| h.as_str().to_string()).collect();
            let deps: Vec<String> = job
                .dependencies
                .iter()
                .map(|l| l.as_str().to_string())
                .collect();
            let meta: Option<(String, u32)> = job
                .label
                .as_ref()
                .map(|(l, n)| (l.as_str().to_string(), *n));
            let found: Vec<(i64, String)> = hosts::table
                .filter(hosts::hostname.eq_any(&names))
                .select((hosts::id, hosts::hostname))
                // One statement per number of hosts: kept for the common few.
                .cached_if(names.len() <= 4)
                .load(conn)
                .await?;
            let ids: BTreeMap<String, i64> = found.into_iter().map(|(id, n)| (n, id)).collect();
            let unknown: Vec<&str> = names
                .iter()
                .filter(|n| !ids.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(DbError::NotFound(format!(
                    "unknown host: {}",
                    unknown.join(", ")
                )));
            }
            let mut wanted_labels = deps.clone();
            wanted_labels.extend(meta.iter().map(|(l, _)| l.clone()));
            let label_ids: BTreeMap<String, i64> = if wanted_labels.is_empty() {
                BTreeMap::new()
            } else {
                labels::table
                    .filter(labels::name.eq_any(&wanted_labels))
                    .select((labels::name, labels::id))
                    .load::<(String, i64)>(conn)
                    .await?
                    .into_iter()
                    .collect()
            };
            let missing = wanted_labels.iter().find(|l| !label_ids.contains_key(*l));
            if let Some(missing) = missing {
                return Err(DbError::NotFound(format!("unknown label: {missing}")));
            }
            let drone_set_id: Option<i64> = match &job.drone_set {
                None => None,
                Some(set) => Some(
                    drone_sets::table
                        .filter(drone_sets::name.eq(set.as_str()))
                        .select(drone_sets::id)
                        .first(conn)
                        .await
                        .optional()?
                        .ok_or_else(|| {
                            DbError::NotFound(format!(
                                "unknown drone set: {set} (create it with atest drone-set create)"
                            ))
                        })?,
                ),
            };
            let dep_ids: Vec<i64> = deps.iter().map(|d| label_ids[d]).collect();
            if !dep_ids.is_empty() && !ids.is_empty() {
                let host_ids: Vec<i64> = ids.values().copied().collect();
                let pairs: Vec<(i64, i64)> = host_labels::table
                    .filter(host_labels::host_id.eq_any(&host_ids))
                    .filter(host_labels::label_id.eq_any(&dep_ids))
                    .select((host_labels::host_id, host_labels::label_id))
                    .load(conn)
                    .await?;
                for name in &names {
                    for (dep, dep_id) in deps.iter().zip(&dep_ids) {
                        if !pairs.contains(&(ids[name], *dep_id)) {
                            return Err(DbError::Invalid(format!(
                                "host {name} lacks the label {dep} this job depends on"
                            )));
                        }
                    }
                }
            }
            diesel::insert_into(jobs::table)
                .values((
                    jobs::name.eq(&job.name),
                    jobs::owner.eq(job.owner.as_str()),
                    jobs::priority.eq(job.priority),
                    jobs::control_file.eq(&job.control_file),
                    jobs::created_on.eq(now),
                    jobs::drone_set_id.eq(drone_set_id),
                    jobs::synch_count.eq(job.synch_count),
                    jobs::tasks.eq(job.tasks),
                ))
                .cached()
                .execute(conn)
                .await?;
            let job_id: i64 = diesel::select(sql::<BigInt>(last_id))
                .cached()
                .get_result(conn)
                .await?;
            for dep_id in &dep_ids {
                diesel::insert_into(job_dependencies::table)
                    .values((
                        job_dependencies::job_id.eq(job_id),
                        job_dependencies::label_id.eq(dep_id),
                    ))
                    .execute(conn)
                    .await?;
            }
            let mut entries: Vec<(Option<i64>, Option<i64>, &str)> = names
                .iter()
                .map(|n| (Some(ids[n]), None, n.as_str()))
                .collect();
            if let Some((label, count)) = &meta {
                for _ in 0..*count {
                    // The subdirectory becomes the host's name when a host is picked.
                    entries.push((None, Some(label_ids[label]), ""));
                }
            }
            for (host_id, meta_label_id, subdir) in entries {
                diesel::insert_into(hqe::table)
                    .values((
                        hqe::job_id.eq(job_id),
                        hqe::host_id.eq(host_id),
                        hqe::meta_label_id.eq(meta_label_id),
                        hqe::status.eq(status::QUEUED),
                        hqe::priority.eq(job.priority),
                        hqe::execution_subdir.eq(subdir),
                        hqe::attempt.eq(0),
                        hqe::created_on.eq(now),
                        hqe::queue_deadline.eq(job.timeout_us.map(|t| now + t)),
                        hqe::max_runtime_us.eq(job.max_runtime_us),
                    ))
                    .cached()
                    .execute(conn)
                    .await?;
            }
            Ok(job_id)
        };
        if let [(job, now)] = group {
            // Alone, the job's transaction is its savepoint: a refusal rolls it back.
            let id = insert(conn, job, *now).await?;
            let dispatched = match dispatch {
                Some(shared) => dispatch_here!(shared),
                None => Dispatched::default(),
            };
            return Ok((vec![Ok(id)], dispatched));
        }
        let mut out = Vec::with_capacity(group.len());
        for (job, now) in group {
            let stored = diesel_async::AsyncConnection::transaction(conn, async |conn| {
                insert(conn, job, *now).await
            })
            .await;
            match stored {
                Err(refused @ (DbError::NotFound(_) | DbError::Invalid(_))) => {
                    out.push(Err(refused))
                }
                Err(failed) => return Err(failed),
                Ok(id) => out.push(Ok(id)),
            }
        }
        let dispatched = match dispatch {
            Some(shared) if out.iter().any(Result::is_ok) => dispatch_here!(shared),
            _ => Dispatched::default(),
        };
        Ok((out, dispatched))
    })
}

/// Aborts a job: see [`super::aborts::abort`].
pub async fn abort(
    db: &Db,
    id: i64,
    by: &Owner,
    reason: Option<String>,
) -> Result<Vec<(i64, i32, String)>, DbError> {
    let ids: Vec<i64> = with_conn!(db, |conn| {
        let exists: i64 = jobs::table
            .filter(jobs::id.eq(id))
            .count()
            .get_result(conn)
            .await?;
        if exists == 0 {
            return Err(DbError::NotFound(format!("no job {id}")));
        }
        hqe::table
            .filter(hqe::job_id.eq(id))
            .select(hqe::id)
            .load(conn)
            .await?
    });
    super::aborts::abort(db, &ids, by.as_str(), reason).await
}

/// Entries starting or running on `drone` with an abort recorded: the aborts to send
/// (again).
pub async fn pending_aborts(db: &Db, drone: &str) -> Result<Vec<(i64, i32)>, DbError> {
    Ok(with_conn!(db, |conn| {
        hqe::table
            .filter(hqe::drone.eq(drone))
            // Once Autoserv has exited (Gathering) there is nothing left to stop.
            .filter(hqe::status.eq_any(status::ON_DRONE))
            // A group's drone knows its lead only.
            .filter(hqe::group_lead_id.is_null())
            .filter(hqe::aborted_on.is_not_null())
            .select((hqe::id, hqe::attempt))
            .load(conn)
            .await?
    }))
}

/// Every job, newest first, with its summed-up status.
pub async fn list(db: &Db) -> Result<Vec<JobSummary>, DbError> {
    type Row = (i64, String, String, i32, i64);
    let (rows, states): (Vec<Row>, Vec<(i64, String)>) = with_conn!(db, |conn| {
        let rows = jobs::table
            .order(jobs::id.desc())
            .select((
                jobs::id,
                jobs::name,
                jobs::owner,
                jobs::priority,
                jobs::created_on,
            ))
            .load::<Row>(conn)
            .await?;
        let states = hqe::table
            .select((hqe::job_id, hqe::status))
            .load::<(i64, String)>(conn)
            .await?;
        (rows, states)
    });
    let mut by_job: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (job_id, s) in states {
        by_job.entry(job_id).or_default().push(s);
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, owner, priority, created_on)| {
            let entries = by_job.get(&id).map(Vec::as_slice).unwrap_or_default();
            JobSummary {
                id,
                name,
                owner,
                priority,
                status: api::job_status(entries.iter().map(String::as_str)).to_string(),
                created_on: format_micros(created_on),
            }
        })
        .collect())
}

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

/// One job with its entries.
pub async fn show(
    db: &Db,
    id: i64,
    results_host: &ResultsHost,
    results_dir: &Path,
) -> Result<JobView, DbError> {
    type JobRow = (i64, String, String, i32, i64, Option<String>, i32, i32);
    type EntryRow = (
        i64,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        i32,
        Option<i32>,
        Option<String>,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
    );
    type HistoryRow = (i64, i32, Option<String>, String, String, i64);
    #[allow(clippy::type_complexity)]
    let (job, entries, history): (
        Option<JobRow>,
        Vec<(EntryRow, (Option<String>, i32, Option<i64>, Option<i64>))>,
        Vec<HistoryRow>,
    ) = with_conn!(db, |conn| {
        let job = jobs::table
            .filter(jobs::id.eq(id))
            .left_join(drone_sets::table)
            .select((
                jobs::id,
                jobs::name,
                jobs::owner,
                jobs::priority,
                jobs::created_on,
                drone_sets::name.nullable(),
                jobs::synch_count,
                jobs::tasks,
            ))
            .get_result::<JobRow>(conn)
            .await
            .optional()?;
        let entries = hqe::table
            .left_join(hosts::table)
            .left_join(labels::table)
            .filter(hqe::job_id.eq(id))
            .order(hqe::id.asc())
            .select((
                (
                    hqe::id,
                    hosts::hostname.nullable(),
                    labels::name.nullable(),
                    hqe::status,
                    hqe::drone,
                    hqe::attempt,
                    hqe::exit_code,
                    hqe::failure_reason,
                    hqe::execution_subdir,
                    hqe::created_on,
                    hqe::started_on,
                    hqe::finished_on,
                    hqe::aborted_by,
                    hqe::aborted_on,
                ),
                (
                    hqe::failure_kind,
                    hqe::infra_retries,
                    hqe::manifest_files,
                    hqe::manifest_bytes,
                ),
            ))
            .load(conn)
            .await?;
        let ids: Vec<i64> = entries.iter().map(|(e, _): &(EntryRow, _)| e.0).collect();
        let history = entry_history::table
            .filter(entry_history::entry_id.eq_any(&ids))
            .order(entry_history::id.asc())
            .select((
                entry_history::entry_id,
                entry_history::attempt,
                entry_history::drone,
                entry_history::event,
                entry_history::detail,
                entry_history::at,
            ))
            .cached_if(ids.len() <= 4)
            .load::<HistoryRow>(conn)
            .await?;
        (job, entries, history)
    });
    let mut histories: BTreeMap<i64, Vec<HistoryView>> = BTreeMap::new();
    for (entry_id, attempt, drone, event, detail, at) in history {
        histories.entry(entry_id).or_default().push(HistoryView {
            attempt,
            drone,
            event,
            detail,
            at: format_micros(at),
        });
    }
    let (id, name, owner, priority, created_on, drone_set, synch_count, tasks) =
        job.ok_or_else(|| DbError::NotFound(format!("no job {id}")))?;
    let entries: Vec<EntryView> = entries
        .into_iter()
        .map(
            |(
                (
                    entry_id,
                    host,
                    label,
                    s,
                    drone,
                    attempt,
                    exit_code,
                    failure_reason,
                    subdir,
                    created,
                    started,
                    finished,
                    aborted_by,
                    aborted_on,
                ),
                (failure_kind, infra_retries, manifest_files, manifest_bytes),
            )| {
                let pushed = s == status::COMPLETED || (s == status::FAILED && exit_code.is_some());
                EntryView {
                    id: entry_id,
                    host,
                    label,
                    aborted_by,
                    aborted_on: aborted_on.map(format_micros),
                    results_path: pushed
                        .then(|| results_path(results_host, results_dir, id, &owner, &subdir)),
                    status: s,
                    drone,
                    attempt,
                    exit_code,
                    failure_reason,
                    failure_kind,
                    infra_retries,
                    manifest: manifest_files.zip(manifest_bytes).map(|(files, bytes)| {
                        ManifestView {
                            files: files as u64,
                            bytes: bytes as u64,
                        }
                    }),
                    history: histories.remove(&entry_id).unwrap_or_default(),
                    created_on: format_micros(created),
                    started_on: started.map(format_micros),
                    finished_on: finished.map(format_micros),
                }
            },
        )
        .collect();
    Ok(JobView {
        status: api::job_status(entries.iter().map(|e| e.status.as_str())).to_string(),
        id,
        name,
        owner,
        priority,
        created_on: format_micros(created_on),
        drone_set,
        synch_count,
        tasks: api::task_flags::names(tasks),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::DatabaseConfig;
    use diesel_async::SimpleAsyncConnection;

    fn job(name: &str, host: &HostName) -> NewJob {
        NewJob {
            name: name.to_string(),
            owner: Owner::new("tester").unwrap(),
            priority: 0,
            control_file: "job.run_test('sleeptest')\n".to_string(),
            hosts: vec![host.clone()],
            label: None,
            dependencies: Vec::new(),
            timeout_us: None,
            max_runtime_us: None,
            drone_set: None,
            synch_count: 1,
            tasks: 0,
        }
    }

    /// Runs `sql` on the test's SQLite database as it is (a trigger, a heartbeat).
    async fn execute(db: &Db, sql: &str) {
        let Db::Sqlite(pool, _) = db else {
            unreachable!("opened as SQLite")
        };
        pool.get().await.unwrap().batch_execute(sql).await.unwrap();
    }

    /// A database with one live drone of capacity 2 and one host, and the dispatcher's
    /// shared part for it (its publisher connects only when used).
    async fn lab(name: &str) -> (std::path::PathBuf, Db, Arc<Shared>, HostName) {
        let dir = std::env::temp_dir().join(format!(
            "autotest-{name}-{}-{}",
            std::process::id(),
            common::time::now_micros()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[AUTOTEST_WEB]\ndatabase: {}\n[SCHEDULER]\ndrones: drone1\nmax_processes_per_drone: 2\n",
            dir.join("autotest.db").display()
        );
        let config = common::config::Config::from_parts(
            &dir.join("global_config.ini"),
            &text,
            std::iter::empty(),
        )
        .unwrap();
        let db = Db::open(&config.database).await.unwrap();
        super::super::drones::sync_from_config(&db, &config.scheduler)
            .await
            .unwrap();
        execute(
            &db,
            &format!(
                "UPDATE drones SET last_heartbeat = {}",
                common::time::now_micros()
            ),
        )
        .await;
        let host = HostName::new("host1").unwrap();
        super::super::hosts::create(&db, &host, &[]).await.unwrap();
        let shared = Arc::new(Shared::new(
            Arc::new(config),
            Arc::new(tokio::sync::Notify::new()),
            "test",
        ));
        (dir, db, shared, host)
    }

    async fn statuses(db: &Db) -> Vec<(String, String)> {
        let mut jobs: Vec<(String, String)> = list(db)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.name, j.status))
            .collect();
        jobs.sort();
        jobs
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_is_dispatched_in_the_transaction_that_stores_it() {
        let (dir, db, shared, host) = lab("dispatch-on-create").await;
        let now = common::time::now_micros();
        let (results, dispatched) =
            store(&db, vec![(job("first", &host), now)], Some(shared.clone())).await;
        let id = *results[0].as_ref().unwrap();
        assert_eq!(dispatched.runs.len(), 1, "assigned in the same transaction");
        let (candidate, drone) = &dispatched.runs[0];
        assert_eq!((candidate.job_id, candidate.attempt), (id, 1));
        assert_eq!(drone, "drone1");
        assert!(!dispatched.wake, "nothing left for the dispatcher");
        // A job's summed-up status is Running from its dispatch on.
        assert_eq!(
            statuses(&db).await,
            vec![("first".to_string(), "Running".to_string())]
        );
        // The host is taken: a second job for it waits, and is not assigned twice.
        let (results, dispatched) =
            store(&db, vec![(job("second", &host), now)], Some(shared)).await;
        assert!(results[0].is_ok());
        assert!(dispatched.runs.is_empty());
        assert_eq!(statuses(&db).await[1].1, "Queued");
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A failure while dispatching never refuses the job: it is stored again without
    /// dispatching, and the dispatcher is woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_dispatch_fails_is_stored_all_the_same() {
        let (dir, db, shared, host) = lab("dispatch-fails").await;
        execute(
            &db,
            "CREATE TRIGGER no_start BEFORE UPDATE OF status ON host_queue_entries \
                 WHEN NEW.status = 'Starting' BEGIN SELECT RAISE(ABORT, 'cannot start'); END;",
        )
        .await;
        let now = common::time::now_micros();
        let (results, dispatched) = store(&db, vec![(job("lone", &host), now)], Some(shared)).await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(dispatched.runs.is_empty());
        assert!(dispatched.wake, "the dispatcher is told to try");
        assert_eq!(
            statuses(&db).await,
            vec![("lone".to_string(), "Queued".to_string())]
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A group whose transaction fails for one job's sake is stored again job by job:
    /// the others are stored, the one the database refuses fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_the_database_refuses_fails_alone_when_stored_with_others() {
        let dir = std::env::temp_dir().join(format!(
            "autotest-group-commit-{}-{}",
            std::process::id(),
            common::time::now_micros()
        ));
        let path = dir.join("autotest.db");
        let db = Db::open(&DatabaseConfig::Sqlite { path }).await.unwrap();
        let host = HostName::new("host1").unwrap();
        super::super::hosts::create(&db, &host, &[]).await.unwrap();
        // A failure of the database itself, not a refusal the query layer knows about
        // (unknown host or label): a trigger that aborts one job's insert.
        execute(
            &db,
            "CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.name = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned job'); END;",
        )
        .await;
        let now = common::time::now_micros();
        let group = ["first", "poison", "third"]
            .iter()
            .map(|name| (job(name, &host), now))
            .collect();
        let (results, _) = store(&db, group, None).await;
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok(), "{:?}", results[0]);
        match &results[1] {
            Err(DbError::Query(error)) => assert!(error.to_string().contains("poisoned job")),
            other => panic!("the poisoned job should fail with the database's error: {other:?}"),
        }
        assert!(results[2].is_ok(), "{:?}", results[2]);
        assert_eq!(
            statuses(&db).await,
            vec![
                ("first".to_string(), "Queued".to_string()),
                ("third".to_string(), "Queued".to_string())
            ],
            "the other jobs are stored once each, with their entries"
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
