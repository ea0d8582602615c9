//! What one dispatch cycle starts, decided from the dispatch view with no I/O: which
//! entries go to which drones, which synchronous groups start, which entries take
//! their hosts and wait for their group.

use crate::db::assign::Assignment;
use crate::db::dispatch_view::{Candidate, DispatchView, LabelEntry, PoolHost};
use common::names::DroneName;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// How many queued entries of each kind a cycle reads when `free` slots are free: more
/// than it can start, since some wait for busy hosts. A power of two: the number is
/// written into the statement's text, so each value is a prepared statement of its own.
pub fn fetch_size(free: i64, max_start: i64) -> i64 {
    if free <= 0 {
        return 0;
    }
    let wanted = free.min(max_start).max(1) * 4 + 16;
    u64::try_from(wanted).map_or(i64::MAX, |w| {
        i64::try_from(w.next_power_of_two()).unwrap_or(i64::MAX)
    })
}

/// A drone that can take work, as a cycle fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub drone: DroneName,
    /// Autoserv runs on it, counting those this cycle gave it.
    pub running: i64,
    pub capacity: i64,
}

impl Slot {
    fn has_room(&self) -> bool {
        self.running < self.capacity
    }
}

/// A synchronous group to start as one Autoserv run.
#[derive(Debug, Clone)]
pub struct GroupStart {
    /// Its Pending members, lead first.
    pub members: Vec<Candidate>,
    pub drone: DroneName,
}

/// What a cycle decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Single entries, each on its drone.
    pub picks: Vec<Assignment>,
    /// Synchronous groups complete now.
    pub groups: Vec<GroupStart>,
    /// Entries of synchronous jobs that take their host and wait Pending.
    pub reservations: Vec<Candidate>,
}

impl Plan {
    /// Autoserv runs planned.
    fn runs(&self) -> i64 {
        (self.picks.len() + self.groups.len()) as i64
    }
}

/// What a cycle decided, with what it needs to know whether more may start.
pub struct Decision {
    pub(super) plan: Plan,
    limit: i64,
    total_free: i64,
    fetched_all: bool,
}

impl Decision {
    /// Single entries to start, when that is all there is to do: synchronous jobs
    /// (groups, reservations) are left to the dispatcher.
    pub fn only_picks(self) -> Result<(Vec<Assignment>, bool), Self> {
        if self.plan.groups.is_empty() && self.plan.reservations.is_empty() {
            let more = self.more(self.plan.picks.len() as i64);
            Ok((self.plan.picks, more))
        } else {
            Err(self)
        }
    }

    /// Whether more may start once `picked` runs have.
    pub(super) fn more(&self, picked: i64) -> bool {
        (picked == self.limit && self.limit < self.total_free) || self.fetched_all
    }
}

/// Decides what to start from `view`, at most `max_start` runs: None when no drone
/// has a free slot.
pub fn decide(view: &mut DispatchView, max_start: i64) -> Option<Decision> {
    let mut slots: Vec<Slot> = std::mem::take(&mut view.loads)
        .into_iter()
        .filter(|d| d.accepting && d.alive && d.running < d.capacity)
        .map(|d| Slot {
            drone: d.name,
            running: d.running,
            capacity: d.capacity,
        })
        .collect();
    let total_free: i64 = slots.iter().map(|s| s.capacity - s.running).sum();
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

/// Whether a drone may run entries of a job limited to drone set `set` (none: any).
fn allowed_in(
    sets: &BTreeMap<i64, BTreeSet<String>>,
    set: Option<i64>,
) -> impl Fn(&str) -> bool + '_ {
    let members = set.map(|set| sets.get(&set));
    move |name: &str| match members {
        None => true,
        Some(members) => members.is_some_and(|m| m.contains(name)),
    }
}

/// The least-loaded drone with a free slot among those `allowed`, preferring any drone
/// to `avoid` (the drone of the entry's last infra failure).
fn pick_slot<'a>(
    slots: &'a mut [Slot],
    allowed: impl Fn(&str) -> bool,
    avoid: Option<&str>,
) -> Option<&'a mut Slot> {
    slots
        .iter_mut()
        .filter(|slot| slot.has_room() && allowed(slot.drone.as_str()))
        .min_by(|a, b| {
            (Some(a.drone.as_str()) == avoid)
                .cmp(&(Some(b.drone.as_str()) == avoid))
                .then((a.running * b.capacity).cmp(&(b.running * a.capacity)))
                .then(a.drone.cmp(&b.drone))
        })
}

/// A queued entry in the order a cycle considers them.
enum Item<'a> {
    Named(&'a Candidate),
    Label(&'a LabelEntry),
}

impl Item<'_> {
    /// The job's drone set, and whether the job is synchronous.
    fn job_rules(&self) -> (Option<i64>, bool) {
        match self {
            Item::Named(c) => (c.drone_set_id, c.synch_count > 1),
            Item::Label(e) => (e.drone_set_id, e.synch_count > 1),
        }
    }
}

/// Named and metahost entries together, in Autotest's order: priority, then named
/// hosts before metahost labels, then job age, then entry.
fn queue_order<'a>(named: &'a [Candidate], by_label: &'a [LabelEntry]) -> Vec<Item<'a>> {
    let mut items: Vec<(std::cmp::Reverse<i32>, u8, i64, i64, Item)> = named
        .iter()
        .map(|c| {
            let key = (std::cmp::Reverse(c.priority), 0, c.job_id, c.entry_id);
            (key.0, key.1, key.2, key.3, Item::Named(c))
        })
        .chain(by_label.iter().map(|e| {
            let key = (std::cmp::Reverse(e.priority), 1, e.job_id, e.entry_id);
            (key.0, key.1, key.2, key.3, Item::Label(e))
        }))
        .collect();
    items.sort_by_key(|(p, kind, job, id, _)| (*p, *kind, *job, *id));
    items.into_iter().map(|(_, _, _, _, item)| item).collect()
}

/// Decides a cycle, in Autotest's order (priority, then named hosts before metahost
/// labels, then job age), at most one entry per host, at most `limit` Autoserv runs:
/// - a synchronous job with `synch_count` entries Pending starts them as one run;
/// - a metahost entry takes a ready host carrying its label and all its job's
///   dependencies, not used by its job yet, that its job's owner may use (ACL groups);
/// - an entry of a synchronous job takes its host and waits Pending;
/// - any other entry goes to the least-loaded drone with a free slot, within its job's
///   drone set.
fn plan(view: &mut DispatchView, slots: &mut [Slot], limit: i64) -> Plan {
    let mut out = Plan::default();
    // Complete synchronous groups first: their hosts are held while they wait.
    let pending = std::mem::take(&mut view.pending);
    start_groups(&mut out, pending, &view.drone_sets, slots, limit);
    let mut hosts_taken = HashSet::new();
    for item in queue_order(&view.named, &view.by_label) {
        if out.runs() >= limit || out.reservations.len() as i64 >= limit {
            break;
        }
        // The drones this entry may use: its job's drone set, or all. An entry of a
        // synchronous job needs no slot yet: it only takes its host.
        let (drone_set, synch) = item.job_rules();
        let allowed = allowed_in(&view.drone_sets, drone_set);
        if !synch
            && !slots
                .iter()
                .any(|s| s.has_room() && allowed(s.drone.as_str()))
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
                let Some(host) = host_for(view, e, &hosts_taken) else {
                    continue;
                };
                let candidate = e.on_host(host);
                hosts_taken.insert(candidate.host_id);
                view.used.insert((e.job_id, candidate.host_id));
                candidate
            }
        };
        if synch {
            out.reservations.push(candidate);
            continue;
        }
        let Some(slot) = pick_slot(
            slots,
            allowed,
            candidate.avoid_drone.as_ref().map(DroneName::as_str),
        ) else {
            continue;
        };
        slot.running += 1;
        out.picks.push(Assignment {
            candidate,
            drone: slot.drone.clone(),
        });
    }
    out
}

/// Starts each synchronous job's complete groups of Pending entries, as long as a
/// drone of its set has a slot and fewer than `limit` runs are planned.
fn start_groups(
    out: &mut Plan,
    pending: Vec<Candidate>,
    sets: &BTreeMap<i64, BTreeSet<String>>,
    slots: &mut [Slot],
    limit: i64,
) {
    let mut by_job: Vec<(i64, Vec<Candidate>)> = Vec::new();
    for c in pending {
        match by_job.last_mut() {
            Some((job, members)) if *job == c.job_id => members.push(c),
            _ => by_job.push((c.job_id, vec![c])),
        }
    }
    for (_, mut members) in by_job {
        let size = usize::try_from(members[0].synch_count.max(1)).unwrap_or(1);
        while members.len() >= size && out.runs() < limit {
            let allowed = allowed_in(sets, members[0].drone_set_id);
            let Some(slot) = pick_slot(
                slots,
                allowed,
                members[0].avoid_drone.as_ref().map(DroneName::as_str),
            ) else {
                break;
            };
            slot.running += 1;
            out.groups.push(GroupStart {
                members: members.drain(..size).collect(),
                drone: slot.drone.clone(),
            });
        }
    }
}

/// A ready host for metahost entry `entry`: carrying its label and all its job's
/// dependencies, not taken this cycle, not used by its job yet, sharing an ACL group
/// with its job's owner.
fn host_for<'a>(
    view: &'a DispatchView,
    entry: &LabelEntry,
    hosts_taken: &HashSet<i64>,
) -> Option<&'a PoolHost> {
    let deps = view
        .dependencies
        .get(&entry.job_id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pool = view
        .pools
        .get(&entry.label_id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    pool.iter().find(|host| {
        !hosts_taken.contains(&host.id)
            && !view.used.contains(&(entry.job_id, host.id))
            && view.may_use(&entry.owner, host.id)
            && deps.iter().all(|d| {
                view.host_labels
                    .get(&host.id)
                    .is_some_and(|labels| labels.contains(d))
            })
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
