//! Host-queue entries as the dispatcher and the status consumer change them. Every
//! change is a conditional update on (id, attempt, expected status), so a decision
//! taken on a stale view, or a report from an older attempt, changes nothing.

use super::drones::DroneLoad;
use super::schema::{host_queue_entries as hqe, hosts, jobs};
use super::{Db, DbError};
use crate::api::status;
use crate::{with_conn, write_txn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

/// A queued entry with its host: what a dispatch needs to build the message.
#[derive(Debug, Clone, Queryable)]
pub struct Candidate {
    pub entry_id: i64,
    pub job_id: i64,
    pub attempt: i32,
    pub priority: i32,
    pub execution_subdir: String,
    pub host_id: i64,
    pub hostname: String,
    pub job_name: String,
    pub owner: String,
    pub control_file: String,
    /// The drone of the entry's last infra failure: avoided when another has a slot.
    pub avoid_drone: Option<String>,
    /// The job's drone set: only its drones may run the entry.
    pub drone_set_id: Option<i64>,
    /// The job's synch_count: above 1, the entry waits Pending for its group.
    pub synch_count: i32,
    /// The job's special tasks (`api::task_flags`).
    pub job_tasks: i32,
    /// Whether a job ran on the host since its last cleanup.
    pub host_dirty: bool,
}

/// A queued metahost entry, waiting for any ready host carrying `label_id`.
#[derive(Debug, Clone, Queryable)]
pub struct LabelEntry {
    pub entry_id: i64,
    pub job_id: i64,
    pub attempt: i32,
    pub priority: i32,
    pub label_id: i64,
    pub job_name: String,
    pub owner: String,
    pub control_file: String,
    pub avoid_drone: Option<String>,
    pub drone_set_id: Option<i64>,
    pub synch_count: i32,
    pub job_tasks: i32,
}

impl LabelEntry {
    /// The entry placed on a host.
    pub fn on_host(&self, host_id: i64, hostname: &str, host_dirty: bool) -> Candidate {
        Candidate {
            entry_id: self.entry_id,
            job_id: self.job_id,
            attempt: self.attempt,
            priority: self.priority,
            execution_subdir: hostname.to_string(),
            host_id,
            hostname: hostname.to_string(),
            job_name: self.job_name.clone(),
            owner: self.owner.clone(),
            control_file: self.control_file.clone(),
            avoid_drone: self.avoid_drone.clone(),
            drone_set_id: self.drone_set_id,
            synch_count: self.synch_count,
            job_tasks: self.job_tasks,
            host_dirty,
        }
    }
}

/// What a dispatch cycle decides on, read on one connection.
#[derive(Debug, Default)]
pub struct DispatchView {
    /// The configured drones with their load.
    pub loads: Vec<DroneLoad>,
    /// Queued entries for named hosts that are ready and unlocked, best first.
    pub named: Vec<Candidate>,
    /// Queued metahost entries, best first.
    pub by_label: Vec<LabelEntry>,
    /// For each label wanted by `by_label`: ready, unlocked hosts carrying it.
    pub pools: BTreeMap<i64, Vec<(i64, String, bool)>>,
    /// The labels of the hosts in `pools`.
    pub host_labels: BTreeMap<i64, Vec<i64>>,
    /// The dependency labels of the jobs in `by_label`.
    pub dependencies: BTreeMap<i64, Vec<i64>>,
    /// (job, host) pairs already used: a job's metahost entries go to distinct hosts.
    pub used: BTreeSet<(i64, i64)>,
    /// The drones of each drone set.
    pub drone_sets: BTreeMap<i64, BTreeSet<String>>,
    /// Pending entries of synchronous jobs (holding their hosts), best first.
    pub pending: Vec<Candidate>,
}

/// The body of [`dispatch_view`] on `$conn`, a connection of either backend, in a
/// transaction or not (job creation dispatches in its own: see `jobs::Creator`).
macro_rules! dispatch_view_in {
    ($conn:ident, $configured:expr, $alive_since:expr, $fetch:expr) => {{
        use super::drones::DroneLoad;
        use super::entries::{Candidate, DispatchView, LabelEntry};
        use super::schema::{
            drone_set_drones, drones, host_labels, host_queue_entries as hqe, hosts,
            job_dependencies, jobs,
        };
        use super::Cache;
        use crate::api::{host_status, status, task_flags};
        use std::collections::{BTreeMap, BTreeSet};
        let conn = &mut *$conn;
        let configured: &[String] = $configured;
        let alive_since: i64 = $alive_since;
        let fetch = $fetch;
        let mut view = DispatchView::default();
        type Loads = (
            Vec<(String, bool, i32, bool)>,
            BTreeMap<String, i64>,
            BTreeMap<String, (bool, bool)>,
        );
        let (rows, counts, flags): Loads = {
            type DroneRow = (String, bool, i32, Option<i32>, Option<i64>, bool);
            let rows: Vec<DroneRow> = drones::table
                .filter(drones::name.eq_any(configured))
                .order(drones::name.asc())
                .select((
                    drones::name,
                    drones::enabled,
                    drones::capacity,
                    drones::capacity_override,
                    drones::last_heartbeat,
                    drones::stopping,
                ))
                .cached()
                .load(conn)
                .await?;
            // The operator's flag and the worker's own (stopping) for the drone list.
            let flags: BTreeMap<String, (bool, bool)> = rows
                .iter()
                .map(|(name, enabled, _, _, _, stopping)| (name.clone(), (*enabled, *stopping)))
                .collect();
            // A capacity set at run time wins over the config's; a drone silent since
            // `alive_since` counts as lost and takes nothing new, and so does one whose
            // worker is stopping.
            let rows: Vec<(String, bool, i32, bool)> = rows
                .into_iter()
                .map(|(name, enabled, capacity, set, beat, stopping)| {
                    (
                        name,
                        enabled && !stopping,
                        set.unwrap_or(capacity),
                        beat.is_some_and(|t| t >= alive_since),
                    )
                })
                .collect();
            // One Autoserv per group: a synchronous group's lead stands for it. Counted
            // here, not with `group_lead_id IS NULL` in SQL: SQLite then picked the index
            // on group_lead_id, which every lead and lone entry shares, and walked the
            // whole queue on each cycle (at 100,000 queued, most of the scheduler's CPU).
            // The entries on drones are few (the drones' capacity, plus group members).
            let on_drones: Vec<(Option<String>, Option<i64>)> = hqe::table
                .filter(hqe::status.eq_any(status::ON_DRONE))
                .select((hqe::drone, hqe::group_lead_id))
                .cached()
                .load(conn)
                .await?;
            let mut counts: BTreeMap<String, i64> = BTreeMap::new();
            for (drone, lead) in on_drones {
                if let (Some(drone), None) = (drone, lead) {
                    *counts.entry(drone).or_default() += 1;
                }
            }
            let by_drone: BTreeMap<&str, i64> =
                counts.iter().map(|(d, n)| (d.as_str(), *n)).collect();
            let free: i64 = rows
                .iter()
                .filter(|(_, enabled, _, alive)| *enabled && *alive)
                .map(|(name, _, capacity, _)| {
                    (i64::from(*capacity) - by_drone.get(name.as_str()).copied().unwrap_or(0))
                        .max(0)
                })
                .sum();
            let limit = fetch(free);
            // Written into the statements' text (see `Cached`).
            let fetched = u32::try_from(limit).unwrap_or(u32::MAX);
            // Entries of a drone set whose drones are all full, disabled or lost cannot
            // start now: leave them out, so they never crowd out entries that can.
            let members: Vec<(i64, String)> = drone_set_drones::table
                .select((drone_set_drones::drone_set_id, drone_set_drones::drone))
                .cached()
                .load(conn)
                .await?;
            let room = |drone: &str| {
                rows.iter().any(|(name, enabled, capacity, alive)| {
                    name == drone
                        && *enabled
                        && *alive
                        && i64::from(*capacity) > by_drone.get(drone).copied().unwrap_or(0)
                })
            };
            let sets_with_room: BTreeSet<i64> = members
                .iter()
                .filter(|(_, drone)| room(drone))
                .map(|(set, _)| *set)
                .collect();
            let sets_with_room: Vec<i64> = sets_with_room.into_iter().collect();
            for (set, drone) in members {
                view.drone_sets.entry(set).or_default().insert(drone);
            }
            if limit > 0 {
                view.named = hqe::table
                    .inner_join(hosts::table)
                    .inner_join(jobs::table)
                    .filter(hqe::status.eq(status::QUEUED))
                    // A ready, unlocked host; `atest host repair` also takes one whose
                    // repair failed (locked for that reason).
                    .filter(
                        hosts::status
                            .eq(host_status::READY)
                            .and(hosts::locked.eq(false))
                            .or(jobs::tasks.eq(task_flags::REPAIR_ONLY).and(
                                hosts::status
                                    .eq_any([host_status::READY, host_status::REPAIR_FAILED]),
                            )),
                    )
                    .filter(
                        jobs::drone_set_id
                            .is_null()
                            .or(jobs::drone_set_id.eq_any(&sets_with_room)),
                    )
                    .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
                    .select((
                        hqe::id,
                        hqe::job_id,
                        hqe::attempt,
                        hqe::priority,
                        hqe::execution_subdir,
                        hosts::id,
                        hosts::hostname,
                        jobs::name,
                        jobs::owner,
                        jobs::control_file,
                        hqe::avoid_drone,
                        jobs::drone_set_id,
                        jobs::synch_count,
                        jobs::tasks,
                        hosts::dirty,
                    ))
                    .cached_limit(fetched)
                    .load::<Candidate>(conn)
                    .await?;
                view.by_label = hqe::table
                    .inner_join(jobs::table)
                    .filter(hqe::status.eq(status::QUEUED))
                    .filter(hqe::host_id.is_null())
                    .filter(hqe::meta_label_id.is_not_null())
                    .filter(
                        jobs::drone_set_id
                            .is_null()
                            .or(jobs::drone_set_id.eq_any(&sets_with_room)),
                    )
                    .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
                    .select((
                        hqe::id,
                        hqe::job_id,
                        hqe::attempt,
                        hqe::priority,
                        hqe::meta_label_id.assume_not_null(),
                        jobs::name,
                        jobs::owner,
                        jobs::control_file,
                        hqe::avoid_drone,
                        jobs::drone_set_id,
                        jobs::synch_count,
                        jobs::tasks,
                    ))
                    .cached_limit(fetched)
                    .load::<LabelEntry>(conn)
                    .await?;
            }
            if limit > 0 {
                view.pending = hqe::table
                    .inner_join(hosts::table)
                    .inner_join(jobs::table)
                    .filter(hqe::status.eq(status::PENDING))
                    .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
                    .select((
                        hqe::id,
                        hqe::job_id,
                        hqe::attempt,
                        hqe::priority,
                        hqe::execution_subdir,
                        hosts::id,
                        hosts::hostname,
                        jobs::name,
                        jobs::owner,
                        jobs::control_file,
                        hqe::avoid_drone,
                        jobs::drone_set_id,
                        jobs::synch_count,
                        jobs::tasks,
                        hosts::dirty,
                    ))
                    .cached()
                    .load::<Candidate>(conn)
                    .await?;
            }
            if !view.by_label.is_empty() {
                let wanted: BTreeSet<i64> = view.by_label.iter().map(|e| e.label_id).collect();
                for label_id in wanted {
                    let pool: Vec<(i64, String, bool)> = hosts::table
                        .inner_join(host_labels::table)
                        .filter(host_labels::label_id.eq(label_id))
                        .filter(hosts::status.eq("Ready"))
                        .filter(hosts::locked.eq(false))
                        .order(hosts::id.asc())
                        .select((hosts::id, hosts::hostname, hosts::dirty))
                        .cached_limit(fetched)
                        .load(conn)
                        .await?;
                    view.pools.insert(label_id, pool);
                }
                let pool_hosts: BTreeSet<i64> = view
                    .pools
                    .values()
                    .flatten()
                    .map(|(id, _, _)| *id)
                    .collect();
                let pairs: Vec<(i64, i64)> = host_labels::table
                    .filter(host_labels::host_id.eq_any(&pool_hosts))
                    .select((host_labels::host_id, host_labels::label_id))
                    .load(conn)
                    .await?;
                for (host_id, label_id) in pairs {
                    view.host_labels.entry(host_id).or_default().push(label_id);
                }
                let job_ids: BTreeSet<i64> = view.by_label.iter().map(|e| e.job_id).collect();
                let deps: Vec<(i64, i64)> = job_dependencies::table
                    .filter(job_dependencies::job_id.eq_any(&job_ids))
                    .select((job_dependencies::job_id, job_dependencies::label_id))
                    .load(conn)
                    .await?;
                for (job_id, label_id) in deps {
                    view.dependencies.entry(job_id).or_default().push(label_id);
                }
                let used: Vec<(i64, Option<i64>)> = hqe::table
                    .filter(hqe::job_id.eq_any(&job_ids))
                    .filter(hqe::host_id.is_not_null())
                    .select((hqe::job_id, hqe::host_id))
                    .load(conn)
                    .await?;
                view.used = used
                    .into_iter()
                    .filter_map(|(j, h)| Some((j, h?)))
                    .collect();
            }
            (rows, counts, flags)
        };
        view.loads = rows
            .into_iter()
            .map(|(name, accepting, capacity, alive)| DroneLoad {
                running: counts.get(&name).copied().unwrap_or(0),
                enabled: flags.get(&name).is_none_or(|f| f.0),
                stopping: flags.get(&name).is_some_and(|f| f.1),
                accepting,
                name,
                alive,
                capacity: i64::from(capacity),
            })
            .collect();
        view
    }};
}
pub(crate) use dispatch_view_in;

/// Reads the drones with their load, then, when there are free slots, up to
/// `fetch(free slots)` entries of each kind, best first (priority, then job age).
pub async fn dispatch_view(
    db: &Db,
    configured: &[String],
    alive_since: i64,
    fetch: impl FnOnce(i64) -> i64,
) -> Result<DispatchView, DbError> {
    Ok(with_conn!(db, |conn| dispatch_view_in!(
        conn,
        configured,
        alive_since,
        fetch
    )))
}

/// Entries left in Starting (dispatched, maybe never published), with the hosts of
/// their Autoserv run (a synchronous group's lead brings its members' hosts) and their
/// drone.
pub async fn starting(db: &Db) -> Result<Vec<(Candidate, Vec<String>, String)>, DbError> {
    type Row = (Candidate, Option<String>, Option<i64>);
    let rows: Vec<Row> = with_conn!(db, |conn| {
        hqe::table
            .inner_join(hosts::table)
            .inner_join(jobs::table)
            .filter(hqe::status.eq(status::STARTING))
            .order(hqe::id.asc())
            .select((
                (
                    hqe::id,
                    hqe::job_id,
                    hqe::attempt,
                    hqe::priority,
                    hqe::execution_subdir,
                    hosts::id,
                    hosts::hostname,
                    jobs::name,
                    jobs::owner,
                    jobs::control_file,
                    hqe::avoid_drone,
                    jobs::drone_set_id,
                    jobs::synch_count,
                    jobs::tasks,
                    hosts::dirty,
                ),
                hqe::drone,
                hqe::group_lead_id,
            ))
            .load(conn)
            .await?
    });
    let mut members: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (candidate, _, lead) in &rows {
        if let Some(lead) = lead {
            members
                .entry(*lead)
                .or_default()
                .push(candidate.hostname.clone());
        }
    }
    Ok(rows
        .into_iter()
        .filter(|(_, _, lead)| lead.is_none())
        .filter_map(|(candidate, drone, _)| {
            let mut hosts = vec![candidate.hostname.clone()];
            hosts.extend(members.remove(&candidate.entry_id).unwrap_or_default());
            Some((candidate, hosts, drone?))
        })
        .collect())
}

/// Entries of synchronous jobs take their hosts and wait Pending for their group
/// (entry Queued → Pending, host Ready → Pending); returns how many did.
pub async fn reserve(db: &Db, reservations: Vec<Candidate>) -> Result<usize, DbError> {
    write_txn!(db, |conn, _last_id| {
        let mut taken = 0;
        for candidate in &reservations {
            let host = diesel::update(
                hosts::table
                    .filter(hosts::id.eq(candidate.host_id))
                    .filter(hosts::status.eq("Ready"))
                    .filter(hosts::locked.eq(false)),
            )
            .set(hosts::status.eq(status::PENDING))
            .execute(conn)
            .await?;
            if host == 0 {
                continue;
            }
            let entry = diesel::update(
                hqe::table
                    .filter(hqe::id.eq(candidate.entry_id))
                    .filter(hqe::attempt.eq(candidate.attempt))
                    .filter(hqe::status.eq(status::QUEUED)),
            )
            .set((
                hqe::status.eq(status::PENDING),
                hqe::host_id.eq(Some(candidate.host_id)),
                hqe::execution_subdir.eq(&candidate.execution_subdir),
            ))
            .execute(conn)
            .await?;
            if entry == 0 {
                diesel::update(hosts::table.filter(hosts::id.eq(candidate.host_id)))
                    .set(hosts::status.eq("Ready"))
                    .execute(conn)
                    .await?;
                continue;
            }
            taken += 1;
        }
        Ok(taken)
    })
}

/// Starts a synchronous group: its Pending entries become Starting on `drone`, each
/// with its attempt raised by one, the others pointing at the first (the lead), all in
/// `group<N>`; their hosts become Running. Returns the members with their new attempts
/// (lead first), or nothing if one of them moved meanwhile.
pub async fn assign_group(
    db: &Db,
    members: Vec<Candidate>,
    drone: &str,
) -> Result<Option<Vec<Candidate>>, DbError> {
    let now = common::time::now_micros();
    let Some(lead_id) = <[Candidate]>::first(&members).map(|m| m.entry_id) else {
        return Ok(None);
    };
    let job_id = members[0].job_id;
    write_txn!(db, |conn, _last_id| {
        // Named by the position of the lead among the job's entries: unique within the
        // job, and the same for a retry with the same lead (whose earlier, lost attempt
        // left its results set aside).
        let before: i64 = hqe::table
            .filter(hqe::job_id.eq(job_id))
            .filter(hqe::id.lt(lead_id))
            .count()
            .get_result(conn)
            .await?;
        let subdir = format!("group{before}");
        let mut taken = Vec::with_capacity(members.len());
        for member in &members {
            let n = diesel::update(
                hqe::table
                    .filter(hqe::id.eq(member.entry_id))
                    .filter(hqe::attempt.eq(member.attempt))
                    .filter(hqe::status.eq(status::PENDING)),
            )
            .set((
                hqe::status.eq(status::STARTING),
                hqe::drone.eq(drone),
                hqe::attempt.eq(member.attempt + 1),
                hqe::dispatched_on.eq(now),
                hqe::execution_subdir.eq(&subdir),
                hqe::group_lead_id.eq((member.entry_id != lead_id).then_some(lead_id)),
            ))
            .execute(conn)
            .await?;
            if n == 0 {
                // Moved meanwhile (aborted, timed out): not this time.
                return Err(DbError::Conflict(format!(
                    "entry {} is no longer Pending",
                    member.entry_id
                )));
            }
            diesel::update(hosts::table.filter(hosts::id.eq(member.host_id)))
                .set((hosts::status.eq("Running"), hosts::dirty.eq(true)))
                .execute(conn)
                .await?;
            let mut member = member.clone();
            member.attempt += 1;
            member.execution_subdir = subdir.clone();
            taken.push(member);
        }
        Ok(Some(taken))
    })
    .or_else(|error| match error {
        DbError::Conflict(_) => Ok(None),
        other => Err(other),
    })
}

/// The body of [`assign`] on `$conn`, inside a write transaction of either backend:
/// the assignments that took.
macro_rules! assign_in {
    ($conn:ident, $assignments:expr, $now:expr) => {{
        use super::schema::{host_queue_entries as hqe, hosts};
        use super::Cache;
        use crate::api::{host_status, status, task_flags};
        let conn = &mut *$conn;
        let assignments: Vec<(Candidate, String)> = $assignments;
        let now: i64 = $now;
        let mut taken = Vec::with_capacity(assignments.len());
        for (mut candidate, drone) in assignments {
            let repair_only = candidate.job_tasks == task_flags::REPAIR_ONLY;
            let host =
                if repair_only {
                    diesel::update(hosts::table.filter(hosts::id.eq(candidate.host_id)).filter(
                        hosts::status.eq_any([host_status::READY, host_status::REPAIR_FAILED]),
                    ))
                    .set(hosts::status.eq("Running"))
                    .cached()
                    .execute(conn)
                    .await?
                } else {
                    // The job will have run on it: dirty until a cleanup passes.
                    diesel::update(
                        hosts::table
                            .filter(hosts::id.eq(candidate.host_id))
                            .filter(hosts::status.eq(host_status::READY))
                            .filter(hosts::locked.eq(false)),
                    )
                    .set((hosts::status.eq("Running"), hosts::dirty.eq(true)))
                    .cached()
                    .execute(conn)
                    .await?
                };
            if host == 0 {
                continue;
            }
            let entry = diesel::update(
                hqe::table
                    .filter(hqe::id.eq(candidate.entry_id))
                    .filter(hqe::attempt.eq(candidate.attempt))
                    .filter(hqe::status.eq(status::QUEUED)),
            )
            .set((
                hqe::status.eq(status::STARTING),
                hqe::drone.eq(&drone),
                hqe::attempt.eq(candidate.attempt + 1),
                hqe::dispatched_on.eq(now),
                // A metahost entry gets its host here.
                hqe::host_id.eq(Some(candidate.host_id)),
                hqe::execution_subdir.eq(&candidate.execution_subdir),
            ))
            .cached()
            .execute(conn)
            .await?;
            if entry == 0 {
                diesel::update(hosts::table.filter(hosts::id.eq(candidate.host_id)))
                    .set(hosts::status.eq("Ready"))
                    .cached()
                    .execute(conn)
                    .await?;
                continue;
            }
            candidate.attempt += 1;
            taken.push((candidate, drone));
        }
        taken
    }};
}
pub(crate) use assign_in;

/// Records the assignments (entry → Starting on drone, attempt + 1, host → Running)
/// in one transaction; returns those that took, with their new attempt number.
pub async fn assign(
    db: &Db,
    assignments: Vec<(Candidate, String)>,
) -> Result<Vec<(Candidate, String)>, DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| Ok(assign_in!(conn, assignments, now)))
}

/// Records that an entry left in Starting was published again just now.
pub async fn redispatched(db: &Db, entry_id: i64, attempt: i32) -> Result<(), DbError> {
    let now = common::time::now_micros();
    write_txn!(db, |conn, _last_id| {
        diesel::update(
            hqe::table
                .filter(hqe::id.eq(entry_id))
                .filter(hqe::attempt.eq(attempt))
                .filter(hqe::status.eq(status::STARTING)),
        )
        .set(hqe::dispatched_on.eq(now))
        .execute(conn)
        .await?;
        Ok(())
    })
}
