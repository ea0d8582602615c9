//! The drone's results filesystem: the free space each heartbeat reports (and whether
//! it is below `[DRONE] min_free_mb`, when the scheduler sends the drone nothing new),
//! and when a full disk makes an attempt an infra failure rather than a test failure.
//!
//! A full disk says nothing about the test, but Autoserv cannot tell us that its
//! failure came from one: it only exits non-zero. The rule, applied once, when
//! Autoserv's exit is first seen, and journaled with it:
//! - Autoserv exited non-zero and the results filesystem then has less than
//!   [`FULL_FLOOR_MB`] free: infra failure. A test that fails on its own on a drone that
//!   is this full is retried elsewhere too; that costs a run, while the opposite error
//!   would blame the test for the drone's disk. An exit of 0 is trusted: Autoserv wrote
//!   what it needed.
//! - The results went over `[DRONE] max_results_mb` (the cap stopped the job): a test
//!   failure whatever the disk, since the job itself filled it.
//! - One of the worker's own writes between the exit and the push failed for want of
//!   space (the journal's Exited record, the parsed tests, the results manifest):
//!   infra failure, whatever the exit status: the results cannot be trusted whole.
//!
//! An infra failure sets the attempt's results aside as `<subdir>.attempt-N` (they are
//! still pushed) and the scheduler retries the entry, on another drone first, up to
//! `[SCHEDULER] max_infra_retries`.

use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Below this much free space (MiB) when Autoserv has exited non-zero, the results
/// filesystem counts as full: a few MiB are left over by block rounding and by the
/// writes that failed part way, but no test's own failure is likely to leave so little.
pub const FULL_FLOOR_MB: u64 = 16;

/// What a heartbeat says of the results filesystem: its free space in MiB (None when
/// it cannot be read) and whether the drone is low on it (see [`is_low`]; `was_low`:
/// what the last heartbeat said).
pub(crate) fn reading(results_dir: &Path, min_free_mb: u64, was_low: bool) -> (Option<u64>, bool) {
    match common::disk::free_mb(results_dir) {
        Ok(free) => (Some(free), is_low(free, min_free_mb, was_low)),
        Err(error) => {
            tracing::warn!(%error, dir = %results_dir.display(), "cannot read the results filesystem's free space");
            (None, false)
        }
    }
}

/// Whether a drone with `free_mb` free is low on space: below `min_free_mb` (0 turns
/// the check off); and one that was low stays low until it has a tenth more than
/// that (at least 1 MiB more), so a disk hovering at the floor does not take work
/// and refuse it heartbeat after heartbeat.
pub fn is_low(free_mb: u64, min_free_mb: u64, was_low: bool) -> bool {
    let floor = if was_low && min_free_mb > 0 {
        min_free_mb.saturating_add((min_free_mb / 10).max(1))
    } else {
        min_free_mb
    };
    free_mb < floor
}

/// The infra failure a full disk makes of an attempt whose Autoserv has just exited
/// with `exit_code`: the results filesystem is read now (see the module's rule).
pub(crate) fn after_exit(exit_code: i32, results_dir: &Path, capped: bool) -> Option<String> {
    if exit_code == 0 || capped {
        return None;
    }
    full_disk_verdict(exit_code, common::disk::free_mb(results_dir).ok(), capped)
}

/// The rule of [`after_exit`], given the free space then (None: unknown, never full).
pub fn full_disk_verdict(exit_code: i32, free_mb: Option<u64>, capped: bool) -> Option<String> {
    match free_mb {
        Some(free) if exit_code != 0 && !capped && free < FULL_FLOOR_MB => Some(format!(
            "the drone's results filesystem was full ({free} MiB free) when Autoserv exited with status {exit_code}: the exit says nothing about the test"
        )),
        _ => None,
    }
}

/// The first of an attempt's own writes after Autoserv's exit that failed for want of
/// space; each failure is logged here.
#[derive(Debug, Default)]
pub struct NoSpace(Mutex<Option<String>>);

impl NoSpace {
    /// Notes `result` of writing `what`; an error other than a full disk is only
    /// logged. Returns whether it was written.
    pub fn note<T>(&self, what: &str, result: &io::Result<T>) -> bool {
        let Err(error) = result else {
            return true;
        };
        tracing::error!(%error, "cannot write {what}");
        if common::disk::is_no_space(error) {
            let mut first = self.0.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| {
                format!("the drone's results filesystem is full: cannot write {what}: {error}")
            });
        }
        false
    }

    /// The infra failure it makes of the attempt, if any.
    pub fn verdict(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_exit_on_a_full_disk_is_an_infra_failure() {
        let verdict = full_disk_verdict(1, Some(0), false).unwrap();
        assert!(verdict.contains("full (0 MiB free)"), "{verdict}");
        assert!(verdict.contains("status 1"), "{verdict}");
        assert!(full_disk_verdict(137, Some(FULL_FLOOR_MB - 1), false).is_some());
    }

    #[test]
    fn a_test_failure_stays_one_with_room_on_the_disk_or_a_clean_exit() {
        assert_eq!(full_disk_verdict(1, Some(FULL_FLOOR_MB), false), None);
        assert_eq!(full_disk_verdict(1, None, false), None);
        assert_eq!(full_disk_verdict(0, Some(0), false), None);
    }

    #[test]
    fn results_over_the_cap_are_the_job_s_own_fault_whatever_the_disk() {
        assert_eq!(full_disk_verdict(1, Some(0), true), None);
    }

    #[test]
    fn low_disk_is_below_the_drone_s_floor_and_zero_turns_it_off() {
        assert!(is_low(100, 2048, false));
        assert!(!is_low(2048, 2048, false));
        assert!(!is_low(0, 0, false));
        assert!(!is_low(0, 0, true));
    }

    #[test]
    fn a_low_drone_takes_work_again_only_with_a_tenth_more_than_its_floor() {
        assert!(is_low(2048, 2048, true), "at the floor it stays low");
        assert!(is_low(2251, 2048, true));
        assert!(
            !is_low(2252, 2048, true),
            "2048 + 204 (a tenth, rounded down)"
        );
        assert!(
            !is_low(2100, 2048, false),
            "a drone not low goes low only below it"
        );
        assert!(is_low(5, 5, true), "small floors get at least 1 MiB");
        assert!(!is_low(6, 5, true));
    }

    #[test]
    fn only_a_full_disk_in_the_worker_s_own_writes_makes_an_infra_failure() {
        let seen = NoSpace::default();
        assert!(seen.note("the journal", &Ok(())));
        let other: io::Result<()> = Err(io::Error::from_raw_os_error(nix::libc::EIO));
        assert!(!seen.note("the results manifest", &other));
        assert_eq!(seen.verdict(), None);
        let full: io::Result<()> = Err(io::Error::from_raw_os_error(nix::libc::ENOSPC));
        assert!(!seen.note("the parsed tests", &full));
        let quota: io::Result<()> = Err(io::Error::from_raw_os_error(nix::libc::EDQUOT));
        seen.note("the results manifest", &quota);
        let verdict = seen.verdict().unwrap();
        assert!(
            verdict.contains("cannot write the parsed tests"),
            "{verdict}"
        );
    }
}
