//! The dispatcher: woken by events (a new job, a finished entry, a freed slot), never
//! by a timer. One cycle records a batch of assignments in one transaction, then
//! publishes their job messages with confirms; a dispatch whose publish is not
//! confirmed stays Starting with its attempt and is published again (the worker's
//! journal ignores a second delivery of the same attempt).

use crate::db::entries::{self, Candidate, DispatchView, LabelEntry};
use crate::db::{Db, DbError};
use common::broker::{self, BrokerError, Publisher};
use common::config::Config;
use common::names::{DroneName, HostName, Owner};
use common::protocol::{self, RunJob, SCHEMA_VERSION};
use common::shutdown::Shutdown;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many queued entries of each kind a cycle reads when `free` slots are free: more
/// than it can start, since some wait for busy hosts. A power of two: the number is
/// written into the statement's text, so each value is a prepared statement of its own.
fn fetch_size(free: i64, max_start: i64) -> i64 {
    if free <= 0 {
        return 0;
    }
    let wanted = free.min(max_start).max(1) * 4 + 16;
    u64::try_from(wanted).map_or(i64::MAX, |w| {
        i64::try_from(w.next_power_of_two()).unwrap_or(i64::MAX)
    })
}

/// What a cycle found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing more can start now: wait for the next event.
    Idle,
    /// More may start at once: run another cycle.
    More,
}

/// Why a cycle failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{failed} of {total} dispatches could not be published: {first}")]
    Publish {
        failed: usize,
        total: usize,
        first: BrokerError,
    },
}

/// Dispatches queued entries to drones.
pub struct Dispatcher {
    db: Db,
    shared: Arc<Shared>,
}

/// What the dispatcher shares with job creation, which dispatches the jobs it stores in
/// their own transaction when it can (see `jobs::Creator`): one commit on the path of
/// a job in an idle lab instead of two, and no wake-up in between.
pub struct Shared {
    config: Arc<Config>,
    publisher: Publisher,
    /// Wakes the dispatcher.
    pub wake: Arc<Notify>,
    /// Held from reading the dispatch view to recording its assignments: two dispatches
    /// at once would both count the same free slots.
    pub lock: tokio::sync::Mutex<()>,
    /// A publish by job creation was not confirmed: the dispatcher publishes the entries
    /// left in Starting again.
    republish: AtomicBool,
    drone_names: Vec<String>,
    max_start: i64,
}

impl Shared {
    pub fn new(config: Arc<Config>, wake: Arc<Notify>, connection_name: &str) -> Self {
        let publisher = Publisher::new(&config.broker, connection_name);
        let drone_names = config
            .scheduler
            .drones
            .iter()
            .map(|d| d.to_string())
            .collect();
        let max_start = i64::from(config.scheduler.max_jobs_started_per_cycle);
        Self {
            config,
            publisher,
            wake,
            lock: tokio::sync::Mutex::new(()),
            republish: AtomicBool::new(false),
            drone_names,
            max_start,
        }
    }

    /// The configured drones, by name.
    pub fn drone_names(&self) -> &[String] {
        &self.drone_names
    }

    /// Drones heard from since then (UTC microseconds) count as alive.
    pub fn alive_since(&self) -> i64 {
        let timeout =
            i64::try_from(self.config.scheduler.drone_timeout_sec).unwrap_or(i64::MAX / 2);
        common::time::now_micros() - timeout * 1_000_000
    }

    /// Queued entries of each kind to read with `free` slots free.
    pub fn fetch(&self, free: i64) -> i64 {
        fetch_size(free, self.max_start)
    }

    /// Decides what to start from `view`: None when no slot is free.
    pub fn decide(&self, view: &mut DispatchView) -> Option<Decision> {
        decide(view, self.max_start)
    }

    /// Publishes the job messages of runs recorded by job creation. One not confirmed
    /// stays Starting: the dispatcher is told to publish it again.
    pub async fn publish_recorded(&self, runs: Vec<(Candidate, String)>) {
        for (candidate, drone) in runs {
            let hosts = vec![candidate.hostname.clone()];
            if let Err(error) = self.publish(&candidate, &hosts, &drone).await {
                tracing::warn!(%error, entry.id = candidate.entry_id, "publish not confirmed; the entry stays Starting and is published again");
                self.republish.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
        }
    }
}

/// What a cycle decided, with what it needs to know whether more may start.
pub struct Decision {
    plan: Plan,
    limit: i64,
    total_free: i64,
    fetched_all: bool,
}

impl Decision {
    /// Single entries to start, when that is all there is to do: synchronous jobs
    /// (groups, reservations) are left to the dispatcher.
    pub fn only_picks(self) -> Result<(Vec<(Candidate, String)>, bool), Self> {
        if self.plan.groups.is_empty() && self.plan.reservations.is_empty() {
            let more = self.more(self.plan.picks.len() as i64);
            Ok((self.plan.picks, more))
        } else {
            Err(self)
        }
    }

    /// Whether more may start once `picked` runs have.
    fn more(&self, picked: i64) -> bool {
        (picked == self.limit && self.limit < self.total_free) || self.fetched_all
    }
}

fn decide(view: &mut DispatchView, max_start: i64) -> Option<Decision> {
    let mut slots: Vec<(String, i64, i64)> = std::mem::take(&mut view.loads)
        .into_iter()
        .filter(|d| d.accepting && d.alive && d.running < d.capacity)
        .map(|d| (d.name, d.running, d.capacity))
        .collect();
    let total_free: i64 = slots.iter().map(|(_, r, c)| c - r).sum();
    if total_free == 0 {
        return None;
    }
    let limit = total_free.min(max_start);
    let fetch = fetch_size(total_free, max_start);
    let fetched_all = view.named.len() as i64 == fetch || view.by_label.len() as i64 == fetch;
    let plan = plan(view, &mut slots, limit);
    Some(Decision {
        plan,
        limit,
        total_free,
        fetched_all,
    })
}

impl Dispatcher {
    pub fn new(db: Db, shared: Arc<Shared>) -> Self {
        Self { db, shared }
    }

    /// Runs cycles whenever woken, until shutdown.
    pub async fn run(self, mut shutdown: Shutdown) {
        // Entries left in Starting by a previous run, and dispatches whose publish was
        // not confirmed, are published again with the same attempt.
        let mut republish = true;
        let mut backoff = Duration::from_millis(100);
        loop {
            let woken = self.shared.wake.notified();
            republish |= self.shared.republish.swap(false, Ordering::Relaxed);
            if republish {
                republish = !self.republish_starting().await;
            }
            let cycle = self.cycle().await;
            if matches!(cycle, Err(DispatchError::Publish { .. })) {
                republish = true;
            }
            match cycle {
                Ok(Progress::More) => continue,
                Ok(Progress::Idle) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::error!(%error, retry_in = ?backoff, "dispatch cycle failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Entries in Starting may never have been published (a previous run stopped, or a
    /// publish was not confirmed): publish them again with the same attempt; a worker
    /// that has it already ignores the copy. An unconfirmed publish may still have
    /// reached the queue, so the entry is never given a new attempt for it: that could
    /// run two attempts at once. Returns whether all went out.
    async fn republish_starting(&self) -> bool {
        match entries::starting(&self.db).await {
            Ok(list) if !list.is_empty() => {
                tracing::info!(
                    entries = list.len(),
                    "republishing entries left in Starting"
                );
                for (candidate, hosts, drone) in list {
                    // A fresh message, a fresh clock for reconciling with heartbeats.
                    let touched =
                        entries::redispatched(&self.db, candidate.entry_id, candidate.attempt)
                            .await;
                    if let Err(error) = touched {
                        tracing::error!(%error, "cannot record the republish");
                        continue;
                    }
                    if let Err(error) = self.shared.publish(&candidate, &hosts, &drone).await {
                        tracing::warn!(%error, entry.id = candidate.entry_id, "republish failed; will try again");
                        return false;
                    }
                }
                true
            }
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, "cannot read entries left in Starting");
                false
            }
        }
    }

    /// One dispatch cycle.
    pub async fn cycle(&self) -> Result<Progress, DispatchError> {
        let began = std::time::Instant::now();
        let shared = &self.shared;
        // Released once the assignments are recorded, before publishing.
        let dispatching = shared.lock.lock().await;
        let mut view = entries::dispatch_view(
            &self.db,
            shared.drone_names(),
            shared.alive_since(),
            |free| shared.fetch(free),
        )
        .await?;
        let Some(mut decision) = shared.decide(&mut view) else {
            return Ok(Progress::Idle);
        };
        let Plan {
            picks,
            groups,
            reservations,
        } = std::mem::take(&mut decision.plan);
        let reserved = if reservations.is_empty() {
            0
        } else {
            entries::reserve(&self.db, reservations).await?
        };
        if picks.is_empty() && groups.is_empty() {
            // Entries that went Pending may complete a group: look again.
            return Ok(if reserved > 0 {
                Progress::More
            } else {
                Progress::Idle
            });
        }
        let picked = (picks.len() + groups.len()) as i64;
        let planned = began.elapsed();
        // Each run: the lead entry, the hosts of its Autoserv, the drone.
        let mut runs: Vec<(Candidate, Vec<String>, String)> = Vec::new();
        if !picks.is_empty() {
            for (candidate, drone) in entries::assign(&self.db, picks).await? {
                let hosts = vec![candidate.hostname.clone()];
                runs.push((candidate, hosts, drone));
            }
        }
        for (members, drone) in groups {
            if let Some(members) = entries::assign_group(&self.db, members, &drone).await? {
                let hosts = members.iter().map(|m| m.hostname.clone()).collect();
                runs.push((members[0].clone(), hosts, drone));
            }
        }
        drop(dispatching);
        let recorded = began.elapsed();
        let results = futures_util::future::join_all(
            runs.iter()
                .map(|(candidate, hosts, drone)| shared.publish(candidate, hosts, drone)),
        )
        .await;
        let total = runs.len();
        let mut failures = Vec::new();
        for ((candidate, _, _), result) in runs.iter().zip(results) {
            if let Err(error) = result {
                tracing::warn!(%error, entry.id = candidate.entry_id, "publish not confirmed; the entry stays Starting and is published again");
                failures.push(error);
            }
        }
        let failed = failures.len();
        if let Some(first) = failures.into_iter().next() {
            return Err(DispatchError::Publish {
                failed,
                total,
                first,
            });
        }
        tracing::debug!(
            dispatched = total,
            planned_us = planned.as_micros() as u64,
            recorded_us = recorded.as_micros() as u64,
            published_us = began.elapsed().as_micros() as u64,
            "dispatch cycle"
        );
        Ok(if decision.more(picked) {
            Progress::More
        } else {
            Progress::Idle
        })
    }
}

impl Shared {
    async fn publish(
        &self,
        candidate: &Candidate,
        hosts: &[String],
        drone: &str,
    ) -> Result<(), BrokerError> {
        let message = match build_message(candidate, hosts, drone) {
            Ok(message) => message,
            Err(error) => {
                // Names were validated on the way in; this means the database was edited.
                tracing::error!(%error, entry.id = candidate.entry_id, "entry has an invalid name in the database");
                return Err(BrokerError::Unroutable {
                    exchange: broker::JOBS_EXCHANGE.into(),
                    routing_key: drone.into(),
                    reply: error.to_string(),
                });
            }
        };
        // A job message not taken within drone_timeout_sec expires: by then the entry
        // may have been given to another drone (see `lost`), and a drone coming back
        // must not find the old attempt waiting.
        let ttl_ms = self.config.scheduler.drone_timeout_sec.saturating_mul(1000);
        let properties =
            broker::json_properties(&message.delivery_id(), "autotest.run", "autotest-scheduler")
                .with_expiration(ttl_ms.to_string().into());
        self.publisher
            .publish(
                broker::JOBS_EXCHANGE,
                drone,
                &protocol::encode(&message),
                properties,
            )
            .await?;
        tracing::info!(entry.id = candidate.entry_id, job.id = candidate.job_id, attempt = candidate.attempt, drone.name = drone, hosts = %hosts.join(","), "dispatched");
        Ok(())
    }
}

/// What a cycle decided.
#[derive(Debug, Default)]
struct Plan {
    /// Single entries, each on its drone.
    picks: Vec<(Candidate, String)>,
    /// Synchronous groups complete now: their Pending members (lead first), one drone.
    groups: Vec<(Vec<Candidate>, String)>,
    /// Entries of synchronous jobs that take their host and wait Pending.
    reservations: Vec<Candidate>,
}

/// The least-loaded drone with a free slot among those `allowed`, preferring any drone
/// to `avoid` (the drone of the entry's last infra failure).
fn pick_slot<'a>(
    slots: &'a mut [(String, i64, i64)],
    allowed: impl Fn(&str) -> bool,
    avoid: Option<&str>,
) -> Option<&'a mut (String, i64, i64)> {
    slots
        .iter_mut()
        .filter(|(name, running, capacity)| running < capacity && allowed(name))
        .min_by(|a, b| {
            (Some(a.0.as_str()) == avoid)
                .cmp(&(Some(b.0.as_str()) == avoid))
                .then((a.1 * b.2).cmp(&(b.1 * a.2)))
                .then(a.0.cmp(&b.0))
        })
}

/// Decides a cycle, in Autotest's order (priority, then named hosts before metahost
/// labels, then job age), at most one entry per host, at most `limit` Autoserv runs:
/// - a synchronous job with `synch_count` entries Pending starts them as one run;
/// - a metahost entry takes a ready host carrying its label and all its job's
///   dependencies, not used by its job yet;
/// - an entry of a synchronous job takes its host and waits Pending;
/// - any other entry goes to the least-loaded drone with a free slot, within its job's
///   drone set.
fn plan(view: &mut DispatchView, slots: &mut [(String, i64, i64)], limit: i64) -> Plan {
    enum Item<'a> {
        Named(&'a Candidate),
        Label(&'a LabelEntry),
    }
    let mut out = Plan::default();
    let sets = view.drone_sets.clone();
    let allowed_in = |set: Option<i64>| {
        let members = set.map(|s| sets.get(&s).cloned().unwrap_or_default());
        move |name: &str| members.as_ref().is_none_or(|m| m.contains(name))
    };
    let full = |slots: &[(String, i64, i64)]| slots.iter().all(|(_, r, c)| r >= c);

    // Complete synchronous groups first: their hosts are held while they wait.
    let mut pending: Vec<(i64, Vec<Candidate>)> = Vec::new();
    for c in std::mem::take(&mut view.pending) {
        match pending.last_mut() {
            Some((job, members)) if *job == c.job_id => members.push(c),
            _ => pending.push((c.job_id, vec![c])),
        }
    }
    for (_, mut members) in pending {
        let size = usize::try_from(members[0].synch_count.max(1)).unwrap_or(1);
        while members.len() >= size && (out.picks.len() + out.groups.len()) < limit as usize {
            let allowed = allowed_in(members[0].drone_set_id);
            let Some(slot) = pick_slot(slots, allowed, members[0].avoid_drone.as_deref()) else {
                break;
            };
            slot.1 += 1;
            let group: Vec<Candidate> = members.drain(..size).collect();
            out.groups.push((group, slot.0.clone()));
        }
    }

    let mut items: Vec<(std::cmp::Reverse<i32>, u8, i64, i64, Item)> = view
        .named
        .iter()
        .map(|c| {
            (
                std::cmp::Reverse(c.priority),
                0,
                c.job_id,
                c.entry_id,
                Item::Named(c),
            )
        })
        .chain(view.by_label.iter().map(|e| {
            (
                std::cmp::Reverse(e.priority),
                1,
                e.job_id,
                e.entry_id,
                Item::Label(e),
            )
        }))
        .collect();
    items.sort_by_key(|(p, kind, job, id, _)| (*p, *kind, *job, *id));
    let mut hosts_taken = HashSet::new();
    for (_, _, _, _, item) in items {
        if (out.picks.len() + out.groups.len()) as i64 >= limit
            || out.reservations.len() as i64 >= limit
        {
            break;
        }
        let (drone_set, synch) = match &item {
            Item::Named(c) => (c.drone_set_id, c.synch_count > 1),
            Item::Label(e) => (e.drone_set_id, e.synch_count > 1),
        };
        // The drones this entry may use: its job's drone set, or all. An entry of a
        // synchronous job needs no slot yet: it only takes its host.
        let allowed = allowed_in(drone_set);
        if !synch
            && (full(slots)
                || !slots
                    .iter()
                    .any(|(name, running, capacity)| running < capacity && allowed(name)))
        {
            continue;
        }
        let candidate = match item {
            Item::Named(c) => {
                if !hosts_taken.insert(c.host_id) {
                    continue; // one entry per host at a time
                }
                c.clone()
            }
            Item::Label(e) => {
                let deps = view
                    .dependencies
                    .get(&e.job_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let pool = view
                    .pools
                    .get(&e.label_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let found = pool.iter().find(|(host_id, _, _)| {
                    !hosts_taken.contains(host_id)
                        && !view.used.contains(&(e.job_id, *host_id))
                        && deps.iter().all(|d| {
                            view.host_labels
                                .get(host_id)
                                .is_some_and(|labels| labels.contains(d))
                        })
                });
                let Some((host_id, hostname, dirty)) = found else {
                    continue;
                };
                hosts_taken.insert(*host_id);
                view.used.insert((e.job_id, *host_id));
                e.on_host(*host_id, hostname, *dirty)
            }
        };
        if synch {
            out.reservations.push(candidate);
            continue;
        }
        let Some(slot) = pick_slot(slots, allowed, candidate.avoid_drone.as_deref()) else {
            continue;
        };
        slot.1 += 1;
        out.picks.push((candidate, slot.0.clone()));
    }
    out
}

fn build_message(
    candidate: &Candidate,
    hosts: &[String],
    drone: &str,
) -> Result<RunJob, common::names::InvalidName> {
    Ok(RunJob {
        schema: SCHEMA_VERSION,
        entry_id: candidate.entry_id,
        job_id: candidate.job_id,
        attempt: candidate.attempt,
        drone: DroneName::new(drone)?,
        hosts: hosts
            .iter()
            .map(|h| HostName::new(h.clone()))
            .collect::<Result<_, _>>()?,
        owner: Owner::new(candidate.owner.clone())?,
        job_name: candidate.job_name.clone(),
        execution_subdir: HostName::new(candidate.execution_subdir.clone())?,
        control_file: candidate.control_file.clone(),
        tasks: crate::api::task_flags::tasks(candidate.job_tasks, candidate.host_dirty),
        sender_version: common::VERSION.to_string(),
    })
}
