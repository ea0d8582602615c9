//! The registry of the attempts this worker holds: which are held, which run a process
//! now (and where its supervisor files are), which the scheduler asked to abort, and
//! what the lease says of each. One lock guards all of it, so a question that spans
//! two of these facts sees them at one moment.
//!
//! The lock does not cascade a panic: a task that panicked while holding it leaves
//! the registry as it was between two of its short, non-panicking updates, so the
//! next user takes the data as it is.

use common::protocol::RunJob;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// One attempt of one entry: what the scheduler and the journal call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId {
    pub entry: i64,
    pub attempt: i32,
}

impl AttemptId {
    /// The attempt a job message asks for.
    pub fn of(job: &RunJob) -> Self {
        Self {
            entry: job.entry_id,
            attempt: job.attempt,
        }
    }
}

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.entry, self.attempt)
    }
}

impl From<AttemptId> for (i64, i32) {
    fn from(id: AttemptId) -> Self {
        (id.entry, id.attempt)
    }
}

/// What the lease says of a held attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    /// Neither settled nor lost yet.
    Open,
    /// Its exit is with the broker: the scheduler judges it, whatever the lease does.
    Settled,
    /// The lease expired before it was settled: an infra failure.
    Lost,
}

#[derive(Debug)]
struct Held {
    /// The supervisor files (see [`crate::supervise::prefix`]) of its process running now.
    running: Option<PathBuf>,
    lease: Lease,
}

#[derive(Debug, Default)]
struct State {
    held: BTreeMap<AttemptId, Held>,
    /// Attempts the scheduler asked to abort, held here or not (yet).
    aborted: HashSet<AttemptId>,
    /// Attempts lost to the lease before they were held (found in the journal at a
    /// start after too long away).
    lost_early: BTreeSet<AttemptId>,
}

/// The attempts held by this process.
#[derive(Debug, Default)]
pub struct Attempts {
    state: Mutex<State>,
    /// Told when the last held attempt is released.
    idle: Notify,
}

impl Attempts {
    fn state(&self) -> MutexGuard<'_, State> {
        // See the module's doc: the data stays consistent across a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `id`; false if it was held already.
    pub fn hold(&self, id: AttemptId) -> bool {
        let mut state = self.state();
        let lease = if state.lost_early.remove(&id) {
            Lease::Lost
        } else {
            Lease::Open
        };
        match state.held.entry(id) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Held {
                    running: None,
                    lease,
                });
                true
            }
        }
    }

    /// Whether `id` is held.
    pub fn holds(&self, id: AttemptId) -> bool {
        self.state().held.contains_key(&id)
    }

    /// Whether any attempt of `entry` is held.
    pub fn holds_entry(&self, entry: i64) -> bool {
        let from = AttemptId {
            entry,
            attempt: i32::MIN,
        };
        self.state()
            .held
            .range(from..)
            .next()
            .is_some_and(|(id, _)| id.entry == entry)
    }

    /// The attempts held, in order.
    pub fn held(&self) -> Vec<AttemptId> {
        self.state().held.keys().copied().collect()
    }

    /// How many attempts are held.
    pub fn count(&self) -> usize {
        self.state().held.len()
    }

    /// Lets `id` go: it is over on this drone.
    pub fn release(&self, id: AttemptId) {
        let mut state = self.state();
        state.held.remove(&id);
        state.lost_early.remove(&id);
        if state.held.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Completes once no attempt is held.
    pub async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.state().held.is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// A process of `id` runs now, with its supervisor files at `prefix`.
    pub fn set_running(&self, id: AttemptId, prefix: PathBuf) {
        if let Some(held) = self.state().held.get_mut(&id) {
            held.running = Some(prefix);
        }
    }

    /// No process of `id` runs any more.
    pub fn clear_running(&self, id: AttemptId) {
        if let Some(held) = self.state().held.get_mut(&id) {
            held.running = None;
        }
    }

    /// How many held attempts run a process now.
    pub fn running_count(&self) -> usize {
        self.state()
            .held
            .values()
            .filter(|held| held.running.is_some())
            .count()
    }

    /// The supervisor files of the process of `id` running now, if one is.
    pub fn running(&self, id: AttemptId) -> Option<PathBuf> {
        self.state().held.get(&id)?.running.clone()
    }

    /// Notes that the scheduler asked to abort `id`; returns the supervisor files of
    /// its process running now, if one is.
    pub fn abort(&self, id: AttemptId) -> Option<PathBuf> {
        let mut state = self.state();
        state.aborted.insert(id);
        state.held.get(&id)?.running.clone()
    }

    /// Whether the scheduler asked to abort `id`.
    pub fn is_aborted(&self, id: AttemptId) -> bool {
        self.state().aborted.contains(&id)
    }

    /// Whether the lease expired before `id` was settled.
    pub fn is_lost(&self, id: AttemptId) -> bool {
        let state = self.state();
        match state.held.get(&id) {
            Some(held) => held.lease == Lease::Lost,
            None => state.lost_early.contains(&id),
        }
    }

    /// Marks `id` (found in the journal, not held yet) lost to the lease.
    pub fn lose_early(&self, id: AttemptId) {
        self.state().lost_early.insert(id);
    }

    /// The exit of `id` is with the broker; false if the lease was lost first.
    pub fn settle(&self, id: AttemptId) -> bool {
        match self.state().held.get_mut(&id) {
            Some(held) if held.lease == Lease::Lost => false,
            Some(held) => {
                held.lease = Lease::Settled;
                true
            }
            None => true,
        }
    }

    /// The lease expired: every held attempt not settled yet is lost. Returns those
    /// lost now (not before).
    pub fn expire(&self) -> Vec<AttemptId> {
        let mut state = self.state();
        let mut newly = Vec::new();
        for (id, held) in state.held.iter_mut() {
            if held.lease == Lease::Open {
                held.lease = Lease::Lost;
                newly.push(*id);
            }
        }
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: AttemptId = AttemptId {
        entry: 7,
        attempt: 2,
    };

    #[test]
    fn an_attempt_id_reads_as_entry_dot_attempt() {
        assert_eq!(A.to_string(), "7.2");
    }

    #[test]
    fn an_attempt_is_held_once_until_released() {
        let attempts = Attempts::default();
        assert!(attempts.hold(A));
        assert!(!attempts.hold(A));
        assert_eq!(attempts.held(), [A]);
        attempts.release(A);
        assert_eq!(attempts.count(), 0);
    }

    #[test]
    fn an_abort_is_remembered_for_an_attempt_not_held_yet() {
        let attempts = Attempts::default();
        assert_eq!(attempts.abort(A), None);
        attempts.hold(A);
        assert!(attempts.is_aborted(A));
    }

    #[test]
    fn a_settled_attempt_is_not_lost_when_the_lease_expires() {
        let attempts = Attempts::default();
        let b = AttemptId {
            entry: 8,
            attempt: 1,
        };
        attempts.hold(A);
        attempts.hold(b);
        assert!(attempts.settle(A));
        assert_eq!(attempts.expire(), [b]);
        assert_eq!(attempts.expire(), []);
        assert!(!attempts.is_lost(A));
        assert!(attempts.is_lost(b));
        assert!(!attempts.settle(b));
    }

    #[test]
    fn an_attempt_lost_before_it_was_held_is_lost_once_held() {
        let attempts = Attempts::default();
        attempts.lose_early(A);
        assert!(attempts.is_lost(A));
        attempts.hold(A);
        assert!(attempts.is_lost(A));
        attempts.release(A);
        assert!(!attempts.is_lost(A));
    }

    #[test]
    fn a_panic_while_the_registry_is_locked_does_not_poison_it() {
        let attempts = std::sync::Arc::new(Attempts::default());
        attempts.hold(A);
        let inside = attempts.clone();
        let _ = std::thread::spawn(move || {
            let _guard = inside.state();
            panic!("a task failed with the registry locked");
        })
        .join();
        assert!(attempts.holds(A));
        attempts.release(A);
        assert_eq!(attempts.count(), 0);
    }
}
