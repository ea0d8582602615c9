//! The drone's lease (see [`crate::supervise`]): once the broker has confirmed nothing
//! from this drone for `drone_timeout_sec`, every held attempt not settled yet (its
//! exit reported and confirmed) is lost to this drone: the scheduler retries it
//! elsewhere, so one not started does not start, one running is stopped by its
//! supervisor, and its results are set aside.

use crate::attempts::AttemptId;
use crate::runner;
use crate::Inner;
use common::protocol::RunJob;
use common::shutdown::Shutdown;
use std::sync::Arc;
use std::time::Duration;

/// Why an attempt lost to the lease is an infra failure.
pub const LEASE_LOST: &str =
    "the drone lost the broker for longer than drone_timeout_sec before the attempt was settled (its lease expired)";

impl Inner {
    /// The lease the supervisor of a process of this worker keeps.
    pub(crate) fn lease(&self) -> runner::Lease {
        runner::Lease {
            file: self.lease_file.clone(),
            secs: self.config.scheduler.drone_timeout_sec,
        }
    }

    /// Why the lease makes this attempt an infra failure, if it does.
    pub(crate) fn lease_lost(&self, id: AttemptId) -> Option<String> {
        self.attempts.is_lost(id).then(|| LEASE_LOST.to_string())
    }

    /// The exit of an attempt is with the broker: from now on the attempt is the
    /// scheduler's to judge, whatever the lease does. Returns the infra failure if the
    /// lease ran out first.
    pub(crate) fn settle(&self, id: AttemptId) -> Option<String> {
        (!self.attempts.settle(id)).then(|| LEASE_LOST.to_string())
    }

    /// Watches the lease (see the module's doc) until `shutdown`.
    pub(crate) async fn lease_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let timeout = Duration::from_secs(self.config.scheduler.drone_timeout_sec);
        let mut expired = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.wait() => return,
            }
            let silent = self.reporter.since_contact();
            if silent <= timeout {
                if expired {
                    tracing::info!("the broker is back: the lease is renewed");
                }
                expired = false;
                continue;
            }
            let newly = self.attempts.expire();
            if !expired || !newly.is_empty() {
                let attempts: Vec<String> = newly.iter().map(AttemptId::to_string).collect();
                tracing::error!(
                    silent_sec = silent.as_secs(),
                    ?attempts,
                    "the broker has confirmed nothing from this drone for longer than drone_timeout_sec: the lease expired; unsettled attempts are stopped and will be reported as infra failures"
                );
            }
            expired = true;
        }
    }
}

/// Moves the results of an attempt lost to the lease beside the entry's directory, to
/// `<subdir>.attempt-<N>`, so the retry on another drone owns the entry's directory on
/// the results host; returns the new subdir to push.
pub(crate) fn set_aside(drone_results: &std::path::Path, job: &RunJob) -> String {
    let subdir = set_aside_subdir(job);
    let from = drone_results.join(job.results_subdir());
    let to = drone_results.join(&subdir);
    if from.exists() && !to.exists() {
        if let Err(error) = std::fs::rename(&from, &to) {
            tracing::error!(%error, from = %from.display(), to = %to.display(), "cannot set the results aside");
        }
    }
    subdir
}

/// Where [`set_aside`] puts an attempt's results: `<subdir>.attempt-<N>`, its last
/// component bounded to a file name's 255 bytes (see [`aside_name`]).
pub(crate) fn set_aside_subdir(job: &RunJob) -> String {
    let name = aside_name(job.execution_subdir.as_str(), job.attempt);
    format!("{}-{}/{name}", job.job_id, job.owner)
}

/// The longest file name (Linux's NAME_MAX).
const NAME_MAX: usize = 255;

/// `<name>.attempt-<N>`; when that is longer than [`NAME_MAX`] (a host name near its
/// 253-byte limit), the start of `name` that fits, then `~` and a hash of the whole
/// name, so two long names never share a place and a restarted worker finds the same.
pub(crate) fn aside_name(name: &str, attempt: i32) -> String {
    let suffix = format!(".attempt-{attempt}");
    if name.len() + suffix.len() <= NAME_MAX {
        return format!("{name}{suffix}");
    }
    let hash = format!("~{:016x}", fnv1a(name.as_bytes()));
    let mut keep = NAME_MAX - suffix.len() - hash.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{hash}{suffix}", &name[..keep])
}

/// FNV-1a, 64 bits: stable across builds, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_aside_name_fits_in_a_file_name_and_stays_distinct() {
        assert_eq!(aside_name("host1", 2), "host1.attempt-2");
        let long_a = format!("{}a", "h".repeat(252));
        let long_b = format!("{}b", "h".repeat(252));
        let a = aside_name(&long_a, 2147483647);
        let b = aside_name(&long_b, 2147483647);
        assert!(a.len() <= NAME_MAX, "{}", a.len());
        assert!(a.ends_with(".attempt-2147483647"));
        assert_ne!(a, b);
        assert_eq!(a, aside_name(&long_a, 2147483647));
    }
}
