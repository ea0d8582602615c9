//! What a dispatch cycle decides on: the configured drones with their load, and the
//! queued entries that could start now, read on one connection (in a transaction or
//! not: job creation reads it in the transaction that stores its jobs).

use super::schema::{
    drone_set_drones, drones, host_labels, host_queue_entries as hqe, hosts, job_dependencies, jobs,
};
use super::{Cache, Conn, Db, DbError};
use crate::model::{AttemptId, EntryStatus, HostStatus, TaskFlags};
use crate::{on_conn, with_conn};
use common::names::{DroneName, HostName, Owner};
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
    /// The host's name, or `group<N>` for a synchronous group (a valid host name).
    pub execution_subdir: HostName,
    pub host_id: i64,
    pub hostname: HostName,
    pub job_name: String,
    pub owner: Owner,
    pub control_file: String,
    /// The drone of the entry's last infra failure: avoided when another has a slot.
    pub avoid_drone: Option<DroneName>,
    /// The job's drone set: only its drones may run the entry.
    pub drone_set_id: Option<i64>,
    /// The job's synch_count: above 1, the entry waits Pending for its group.
    pub synch_count: i32,
    /// The job's special tasks.
    pub job_tasks: TaskFlags,
    /// Whether a job ran on the host since its last cleanup.
    pub host_dirty: bool,
}

impl Candidate {
    /// The entry's current attempt.
    pub fn attempt_id(&self) -> AttemptId {
        AttemptId::new(self.entry_id, self.attempt)
    }
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
    pub owner: Owner,
    pub control_file: String,
    pub avoid_drone: Option<DroneName>,
    pub drone_set_id: Option<i64>,
    pub synch_count: i32,
    pub job_tasks: TaskFlags,
}

impl LabelEntry {
    /// The entry placed on a host.
    pub fn on_host(&self, host: &PoolHost) -> Candidate {
        Candidate {
            entry_id: self.entry_id,
            job_id: self.job_id,
            attempt: self.attempt,
            priority: self.priority,
            execution_subdir: host.hostname.clone(),
            host_id: host.id,
            hostname: host.hostname.clone(),
            job_name: self.job_name.clone(),
            owner: self.owner.clone(),
            control_file: self.control_file.clone(),
            avoid_drone: self.avoid_drone.clone(),
            drone_set_id: self.drone_set_id,
            synch_count: self.synch_count,
            job_tasks: self.job_tasks,
            host_dirty: host.dirty,
        }
    }
}

/// A ready, unlocked host a metahost entry may take.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct PoolHost {
    pub id: i64,
    pub hostname: HostName,
    /// Whether a job ran on it since its last cleanup.
    pub dirty: bool,
}

/// A drone as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct DroneLoad {
    pub name: DroneName,
    /// The operator's flag (`atest drone enable/disable`).
    pub enabled: bool,
    /// Its worker said it is stopping (draining before an exit or an upgrade).
    pub stopping: bool,
    /// Its last heartbeat said its results filesystem is below its `[DRONE]
    /// min_free_mb`: it finishes what it runs and takes nothing new.
    pub low_disk: bool,
    /// Takes new work: enabled, its worker not stopping, and room on its disk.
    pub accepting: bool,
    /// Heard from within `[SCHEDULER] drone_timeout_sec`.
    pub alive: bool,
    pub capacity: i64,
    pub running: i64,
}

impl DroneLoad {
    /// Slots this drone can fill now: none unless it accepts work and is alive.
    pub fn free(&self) -> i64 {
        if self.accepting && self.alive {
            (self.capacity - self.running).max(0)
        } else {
            0
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
    pub pools: BTreeMap<i64, Vec<PoolHost>>,
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
    /// The hosts each owner of a metahost entry may use (ACL groups); an owner not
    /// here is an admin and may use any (see `may_use`).
    pub acl: BTreeMap<Owner, BTreeSet<i64>>,
}

/// A configured drone's row, as dispatch reads it.
#[derive(Queryable)]
struct DroneSettings {
    name: DroneName,
    enabled: bool,
    capacity: i32,
    capacity_override: Option<i32>,
    last_heartbeat: Option<i64>,
    stopping: bool,
    low_disk: bool,
}

/// Reads the drones with their load, then, when there are free slots, up to
/// `fetch(free slots)` entries of each kind, best first (priority, then job age).
pub async fn dispatch_view(
    db: &Db,
    configured: &[String],
    alive_since: i64,
    fetch: impl FnOnce(i64) -> i64,
) -> Result<DispatchView, DbError> {
    Ok(with_conn!(db, |conn| {
        view_in(&mut Conn::from(conn), configured, alive_since, fetch).await?
    }))
}

/// The configured drones with their current load.
pub async fn loads(
    db: &Db,
    configured: &[String],
    alive_since: i64,
) -> Result<Vec<DroneLoad>, DbError> {
    Ok(dispatch_view(db, configured, alive_since, |_| 0)
        .await?
        .loads)
}

/// [`dispatch_view`] on a connection of either backend.
pub async fn view_in(
    conn: &mut Conn<'_>,
    configured: &[String],
    alive_since: i64,
    fetch: impl FnOnce(i64) -> i64,
) -> Result<DispatchView, DbError> {
    let loads = read_loads(conn, configured, alive_since).await?;
    let limit = fetch(loads.iter().map(DroneLoad::free).sum());
    // Written into the statements' text (see `Cached`).
    let fetched = u32::try_from(limit).unwrap_or(u32::MAX);
    // Entries of a drone set whose drones are all full, disabled or lost cannot start
    // now: leave them out, so they never crowd out entries that can.
    let members: Vec<(i64, String)> = on_conn!(conn, |c| {
        drone_set_drones::table
            .select((drone_set_drones::drone_set_id, drone_set_drones::drone))
            .cached()
            .load(c)
            .await?
    });
    let sets_with_room = sets_with_room(&members, &loads);
    let mut view = DispatchView {
        loads,
        ..DispatchView::default()
    };
    for (set, drone) in members {
        view.drone_sets.entry(set).or_default().insert(drone);
    }
    if limit > 0 {
        view.named = read_named(conn, &sets_with_room, fetched).await?;
        view.by_label = read_by_label(conn, &sets_with_room, fetched).await?;
        view.pending = read_pending(conn).await?;
    }
    if !view.by_label.is_empty() {
        read_label_pools(conn, &mut view, fetched).await?;
    }
    Ok(view)
}

/// The configured drones, by name, each with the entries it runs.
async fn read_loads(
    conn: &mut Conn<'_>,
    configured: &[String],
    alive_since: i64,
) -> Result<Vec<DroneLoad>, DbError> {
    let rows: Vec<DroneSettings> = on_conn!(conn, |c| {
        drones::table
            .filter(drones::name.eq_any(configured))
            .order(drones::name.asc())
            .select((
                drones::name,
                drones::enabled,
                drones::capacity,
                drones::capacity_override,
                drones::last_heartbeat,
                drones::stopping,
                drones::low_disk,
            ))
            .cached()
            .load(c)
            .await?
    });
    // Counted here, not with `group_lead_id IS NULL` in SQL: SQLite then picked the
    // index on group_lead_id, which every lead and lone entry shares, and walked the
    // whole queue on each cycle (at 100,000 queued, most of the scheduler's CPU). The
    // entries on drones are few (the drones' capacity, plus group members).
    let on_drones: Vec<(Option<String>, Option<i64>)> = on_conn!(conn, |c| {
        hqe::table
            .filter(hqe::status.eq_any([EntryStatus::Starting, EntryStatus::Running]))
            .select((hqe::drone, hqe::group_lead_id))
            .cached()
            .load(c)
            .await?
    });
    let running = running_by_drone(on_drones);
    Ok(rows
        .into_iter()
        .map(|row| load_of(row, &running, alive_since))
        .collect())
}

/// Autoservs per drone: one per group, whose lead stands for it.
fn running_by_drone(on_drones: Vec<(Option<String>, Option<i64>)>) -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for (drone, lead) in on_drones {
        if let (Some(drone), None) = (drone, lead) {
            *counts.entry(drone).or_default() += 1;
        }
    }
    counts
}

/// A drone's load: a capacity set at run time wins over the config's; a drone silent
/// since `alive_since` counts as lost and takes nothing new, and so does one whose
/// worker is stopping or whose disk is low.
fn load_of(row: DroneSettings, running: &BTreeMap<String, i64>, alive_since: i64) -> DroneLoad {
    DroneLoad {
        running: running.get(row.name.as_str()).copied().unwrap_or(0),
        enabled: row.enabled,
        stopping: row.stopping,
        low_disk: row.low_disk,
        accepting: row.enabled && !row.stopping && !row.low_disk,
        alive: row.last_heartbeat.is_some_and(|t| t >= alive_since),
        capacity: i64::from(row.capacity_override.unwrap_or(row.capacity)),
        name: row.name,
    }
}

/// The drone sets with at least one drone that can take an entry now.
fn sets_with_room(members: &[(i64, String)], loads: &[DroneLoad]) -> Vec<i64> {
    let room = |drone: &str| {
        loads
            .iter()
            .any(|load| load.name.as_str() == drone && load.free() > 0)
    };
    let sets: BTreeSet<i64> = members
        .iter()
        .filter(|(_, drone)| room(drone))
        .map(|(set, _)| *set)
        .collect();
    sets.into_iter().collect()
}

/// Queued entries for named hosts that can start: the host ready and unlocked (`atest
/// host repair` also takes one whose repair failed), the job's drone set with room.
async fn read_named(
    conn: &mut Conn<'_>,
    sets_with_room: &[i64],
    fetched: u32,
) -> Result<Vec<Candidate>, DbError> {
    let repair_only = TaskFlags::REPAIR_ONLY;
    Ok(on_conn!(conn, |c| {
        hqe::table
            .inner_join(hosts::table)
            .inner_join(jobs::table)
            .filter(hqe::status.eq(EntryStatus::Queued))
            .filter(
                hosts::status
                    .eq(HostStatus::Ready)
                    .and(hosts::locked.eq(false))
                    .or(jobs::tasks
                        .eq(repair_only)
                        .and(hosts::status.eq_any([HostStatus::Ready, HostStatus::RepairFailed]))),
            )
            .filter(
                jobs::drone_set_id
                    .is_null()
                    .or(jobs::drone_set_id.eq_any(sets_with_room)),
            )
            .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
            .select(candidate_columns())
            .cached_limit(fetched)
            .load::<Candidate>(c)
            .await?
    }))
}

/// The columns of a [`Candidate`], from entries joined to their hosts and jobs.
#[allow(clippy::type_complexity)]
pub(super) fn candidate_columns() -> (
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
) {
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
    )
}

/// Queued metahost entries whose job's drone set has room.
async fn read_by_label(
    conn: &mut Conn<'_>,
    sets_with_room: &[i64],
    fetched: u32,
) -> Result<Vec<LabelEntry>, DbError> {
    Ok(on_conn!(conn, |c| {
        hqe::table
            .inner_join(jobs::table)
            .filter(hqe::status.eq(EntryStatus::Queued))
            .filter(hqe::host_id.is_null())
            .filter(hqe::meta_label_id.is_not_null())
            .filter(
                jobs::drone_set_id
                    .is_null()
                    .or(jobs::drone_set_id.eq_any(sets_with_room)),
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
            .load::<LabelEntry>(c)
            .await?
    }))
}

/// Pending entries of synchronous jobs, best first.
async fn read_pending(conn: &mut Conn<'_>) -> Result<Vec<Candidate>, DbError> {
    Ok(on_conn!(conn, |c| {
        hqe::table
            .inner_join(hosts::table)
            .inner_join(jobs::table)
            .filter(hqe::status.eq(EntryStatus::Pending))
            .order((hqe::priority.desc(), hqe::job_id.asc(), hqe::id.asc()))
            .select(candidate_columns())
            .cached()
            .load::<Candidate>(c)
            .await?
    }))
}

/// For the metahost entries in `view`: the ready hosts of each label they want, those
/// hosts' labels, their jobs' dependencies and the hosts their jobs used already.
async fn read_label_pools(
    conn: &mut Conn<'_>,
    view: &mut DispatchView,
    fetched: u32,
) -> Result<(), DbError> {
    let wanted: BTreeSet<i64> = view.by_label.iter().map(|e| e.label_id).collect();
    for label_id in wanted {
        let pool: Vec<PoolHost> = on_conn!(conn, |c| {
            hosts::table
                .inner_join(host_labels::table)
                .filter(host_labels::label_id.eq(label_id))
                .filter(hosts::status.eq(HostStatus::Ready))
                .filter(hosts::locked.eq(false))
                .order(hosts::id.asc())
                .select((hosts::id, hosts::hostname, hosts::dirty))
                .cached_limit(fetched)
                .load(c)
                .await?
        });
        view.pools.insert(label_id, pool);
    }
    super::dispatch_acl::read(conn, view).await?;
    let pool_hosts: BTreeSet<i64> = view.pools.values().flatten().map(|h| h.id).collect();
    let pairs: Vec<(i64, i64)> = on_conn!(conn, |c| {
        host_labels::table
            .filter(host_labels::host_id.eq_any(&pool_hosts))
            .select((host_labels::host_id, host_labels::label_id))
            .load(c)
            .await?
    });
    for (host_id, label_id) in pairs {
        view.host_labels.entry(host_id).or_default().push(label_id);
    }
    let job_ids: BTreeSet<i64> = view.by_label.iter().map(|e| e.job_id).collect();
    let deps: Vec<(i64, i64)> = on_conn!(conn, |c| {
        job_dependencies::table
            .filter(job_dependencies::job_id.eq_any(&job_ids))
            .select((job_dependencies::job_id, job_dependencies::label_id))
            .load(c)
            .await?
    });
    for (job_id, label_id) in deps {
        view.dependencies.entry(job_id).or_default().push(label_id);
    }
    let used: Vec<(i64, Option<i64>)> = on_conn!(conn, |c| {
        hqe::table
            .filter(hqe::job_id.eq_any(&job_ids))
            .filter(hqe::host_id.is_not_null())
            .select((hqe::job_id, hqe::host_id))
            .load(c)
            .await?
    });
    view.used = used
        .into_iter()
        .filter_map(|(job, host)| Some((job, host?)))
        .collect();
    Ok(())
}

#[cfg(test)]
#[path = "dispatch_view_tests.rs"]
mod tests;
