//! Removal of the drone's copy of results the results host has verified, once
//! `[DRONE] keep_pushed_hours` have passed (kept meanwhile so the scheduler can still
//! send readers here for the freshest logs).
//!
//! Driven only by durable records: `<journal>/pushed.log` gets a line
//! `pushed <µs> <entry id> <subdir>` when an attempt whose copy was verified against
//! its manifest is settled (its Finished report confirmed), and `removed <µs> <subdir>`
//! once the directory is gone. An attempt set aside after losing its lease
//! (`<subdir>.attempt-N`) is pushed and verified like any other and recorded the same
//! way; results never verified (no manifest, a results host that is this directory,
//! special tasks' `hosts/<host>`) are never recorded, so never removed here.
//!
//! A removal renames the directory into `<results>/.autotest-removing/` (one rename,
//! atomic), records it removed, then deletes it. A worker killed in between finds the
//! directory in `.autotest-removing/` at its next start and finishes deleting it; a
//! record whose directory is already gone is recorded removed. Nothing outside the
//! results directory is touched: each component of the path must be a real directory,
//! never a symlink, and the standard library's `remove_dir_all` removes symlinks inside
//! without following them. A directory of an entry with an attempt held is skipped
//! until that attempt is released.

use crate::fault::Fault;
use crate::Inner;
use common::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The record file in the journal directory.
pub const LOG: &str = "pushed.log";
/// Where directories being removed go, in the results directory.
pub const TRASH: &str = ".autotest-removing";
/// The longest wait between two looks at what is due.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How soon a directory skipped because its entry was held is looked at again.
const HELD_RETRY: Duration = Duration::from_secs(60);

/// A verified push still on this drone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    pub at_us: i64,
    pub entry: i64,
}

/// What `pushed.log` says is still here, by subdir: the latest push of each, minus
/// those recorded removed (lines read in order; unreadable ones are skipped).
pub fn fold(text: &str) -> BTreeMap<String, Pushed> {
    let mut kept = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.splitn(4, ' ');
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some("pushed"), Some(at), Some(entry), Some(subdir)) => {
                if let (Ok(at_us), Ok(entry)) = (at.parse(), entry.parse()) {
                    kept.insert(subdir.to_string(), Pushed { at_us, entry });
                }
            }
            (Some("removed"), Some(_), Some(first), rest) => {
                let subdir = match rest {
                    Some(rest) => format!("{first} {rest}"),
                    None => first.to_string(),
                };
                kept.remove(&subdir);
            }
            _ => {}
        }
    }
    kept
}

/// Which of `kept` are due for removal at `now_us` when kept `keep` after their push,
/// oldest first, and when the next of the others is due.
pub fn due(
    kept: &BTreeMap<String, Pushed>,
    keep: Duration,
    now_us: i64,
) -> (Vec<(String, Pushed)>, Option<i64>) {
    let keep_us = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
    let mut ready: Vec<(String, Pushed)> = Vec::new();
    let mut next: Option<i64> = None;
    for (subdir, pushed) in kept {
        let at = pushed.at_us.saturating_add(keep_us);
        if at <= now_us {
            ready.push((subdir.clone(), *pushed));
        } else {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    ready.sort_by_key(|(_, p)| p.at_us);
    (ready, next)
}

/// Whether `subdir` may name a directory to remove: `<job>-<owner>/<name>`, two plain
/// components, neither hidden.
pub fn removable_name(subdir: &str) -> bool {
    let parts: Vec<Component> = Path::new(subdir).components().collect();
    parts.len() == 2
        && parts.iter().all(|c| match c {
            Component::Normal(name) => !name.to_string_lossy().starts_with('.'),
            _ => false,
        })
        && !subdir.contains('\n')
}

/// What became of one removal.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    /// Renamed away and deleted.
    Removed,
    /// Nothing there any more.
    Gone,
}

/// The drone's records of verified pushes and the removal of what is due.
pub struct Retention {
    log: PathBuf,
    root: PathBuf,
    keep: Duration,
    kept: Mutex<BTreeMap<String, Pushed>>,
    wake: Notify,
}

impl Retention {
    /// Reads (and compacts) `<journal_dir>/pushed.log`; `root` is the drone's results
    /// directory.
    pub fn open(journal_dir: &Path, root: &Path, keep: Duration) -> std::io::Result<Self> {
        let log = journal_dir.join(LOG);
        let text = match std::fs::read_to_string(&log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let kept = fold(&text);
        let compact: String = kept
            .iter()
            .map(|(subdir, p)| format!("pushed {} {} {subdir}\n", p.at_us, p.entry))
            .collect();
        if compact != text {
            let tmp = journal_dir.join(format!("{LOG}.tmp"));
            std::fs::write(&tmp, compact)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &log)?;
        }
        Ok(Self {
            log,
            root: root.to_path_buf(),
            keep,
            kept: Mutex::new(kept),
            wake: Notify::new(),
        })
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pushed>> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        file.write_all(line.as_bytes())?;
        file.sync_data()
    }

    /// Records that the results host has a verified copy of `subdir` (of `entry`),
    /// durably; blocking.
    pub fn record(&self, entry: i64, subdir: &str) -> std::io::Result<()> {
        if !removable_name(subdir) {
            return Ok(());
        }
        let at_us = common::time::now_micros();
        self.append(&format!("pushed {at_us} {entry} {subdir}\n"))?;
        self.kept()
            .insert(subdir.to_string(), Pushed { at_us, entry });
        self.wake.notify_one();
        Ok(())
    }

    /// Wakes the removal loop (an attempt was released).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Deletes what a removal interrupted by a kill left in [`TRASH`]; blocking.
    pub fn sweep(&self) -> usize {
        let trash = self.root.join(TRASH);
        let Ok(entries) = std::fs::read_dir(&trash) else {
            return 0;
        };
        let mut swept = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            match removed {
                Ok(()) => swept += 1,
                Err(error) => {
                    tracing::warn!(%error, path = %path.display(), "cannot finish removing")
                }
            }
        }
        if swept > 0 {
            tracing::info!(
                directories = swept,
                "finished removing results a removal interrupted at the last stop left"
            );
        }
        swept
    }

    /// Removes `<root>/<subdir>` (see the module's doc); blocking.
    fn remove(&self, subdir: &str, fault: &Fault) -> std::io::Result<Removal> {
        let mut path = self.root.clone();
        for part in Path::new(subdir).components() {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(std::io::Error::other(format!(
                        "{} is not a directory (a symlink or a file): left alone",
                        path.display()
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Removal::Gone),
                Err(e) => return Err(e),
            }
        }
        let trash = self.root.join(TRASH);
        std::fs::create_dir_all(&trash)?;
        let to = trash.join(format!(
            "{}-{}",
            common::time::now_micros(),
            subdir.replace('/', "_")
        ));
        std::fs::rename(&path, &to)?;
        fault.exit_at("removing");
        self.append(&format!(
            "removed {} {subdir}\n",
            common::time::now_micros()
        ))?;
        std::fs::remove_dir_all(&to)?;
        // The job's directory goes with its last entry (fails harmlessly otherwise).
        if let Some(parent) = path.parent().filter(|p| *p != self.root) {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(Removal::Removed)
    }

    /// Records how a removal went; whether it failed (None: nothing was there to
    /// remove).
    fn after(
        &self,
        subdir: &str,
        removed: Result<std::io::Result<Removal>, tokio::task::JoinError>,
    ) -> Option<bool> {
        match removed {
            Ok(Ok(Removal::Removed)) => {
                self.kept().remove(subdir);
                tracing::info!(results = %subdir, "removed the drone's copy of results verified on the results host");
                Some(false)
            }
            Ok(Ok(Removal::Gone)) => {
                self.kept().remove(subdir);
                let line = format!("removed {} {subdir}\n", common::time::now_micros());
                if let Err(error) = self.append(&line) {
                    tracing::warn!(%error, "cannot record a removal");
                }
                tracing::info!(results = %subdir, "results to remove were already gone");
                None
            }
            Ok(Err(error)) => {
                // Not tried again until the next start: a directory that cannot be
                // removed now is unlikely to become removable by itself.
                self.kept().remove(subdir);
                tracing::error!(%error, results = %subdir, "cannot remove pushed results; left on the drone");
                Some(true)
            }
            Err(error) => {
                tracing::error!(%error, results = %subdir, "the removal failed");
                Some(true)
            }
        }
    }
}

impl Inner {
    /// Removes what is due (see the module's doc) until `shutdown`: first what a
    /// removal interrupted at the last stop left, then each record as it comes due.
    pub(crate) async fn removal_loop(self: Arc<Self>, mut shutdown: Shutdown) {
        let inner = self.clone();
        let _ = tokio::task::spawn_blocking(move || inner.retention.sweep()).await;
        loop {
            let wait = self.removal_step().await;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.retention.wake.notified() => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Removes what is due and not held, one directory at a time, pausing as long as
    /// each removal took; returns how long to wait before the next look.
    pub(crate) async fn removal_step(self: &Arc<Self>) -> Duration {
        let retention = &self.retention;
        let now = common::time::now_micros();
        let (ready, next) = due(&retention.kept(), retention.keep, now);
        let mut wait = next.map_or(MAX_WAIT, |at| {
            Duration::from_micros(u64::try_from(at - now).unwrap_or(0))
        });
        for (subdir, pushed) in ready {
            if self.attempts.holds_entry(pushed.entry) {
                wait = wait.min(HELD_RETRY);
                continue;
            }
            let started = std::time::Instant::now();
            let (inner, name) = (self.clone(), subdir.clone());
            let removed =
                tokio::task::spawn_blocking(move || inner.retention.remove(&name, &inner.fault))
                    .await;
            if let Some(failed) = retention.after(&subdir, removed) {
                let metrics = &self.metrics;
                let counter = if failed {
                    &metrics.removal_failures
                } else {
                    &metrics.removals
                };
                counter.inc();
            }
            tokio::time::sleep(started.elapsed().max(Duration::from_millis(1))).await;
        }
        wait.min(MAX_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_US: i64 = 3_600_000_000;

    #[test]
    fn the_log_keeps_the_latest_push_of_each_directory_until_it_is_removed() {
        let text = "pushed 10 1 5-ann/host1\n\
                    pushed 20 2 5-ann/host2\n\
                    pushed 30 1 5-ann/host1\n\
                    removed 40 5-ann/host2\n\
                    pushed 50 3 6-bob/host one\n\
                    pushed x 3 6-bob/bad\n\
                    garbage\n\
                    pushed 60 4 7-cy/h";
        let kept = fold(text);
        assert_eq!(
            kept.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "5-ann/host1".into(),
                    Pushed {
                        at_us: 30,
                        entry: 1
                    }
                ),
                (
                    "6-bob/host one".into(),
                    Pushed {
                        at_us: 50,
                        entry: 3
                    }
                ),
                (
                    "7-cy/h".into(),
                    Pushed {
                        at_us: 60,
                        entry: 4
                    }
                ),
            ]
        );
        assert!(fold("pushed 1 1 a/b\nremoved 2 a/b\n").is_empty());
    }

    #[test]
    fn a_push_is_due_once_kept_for_the_period_and_the_next_is_known() {
        let kept: BTreeMap<String, Pushed> = [
            ("1-a/h".to_string(), Pushed { at_us: 0, entry: 1 }),
            (
                "2-a/h".to_string(),
                Pushed {
                    at_us: HOUR_US,
                    entry: 2,
                },
            ),
            (
                "3-a/h".to_string(),
                Pushed {
                    at_us: 5 * HOUR_US,
                    entry: 3,
                },
            ),
        ]
        .into();
        let keep = Duration::from_secs(2 * 3600);
        let (ready, next) = due(&kept, keep, 3 * HOUR_US);
        let names: Vec<&str> = ready.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["1-a/h", "2-a/h"], "oldest first");
        assert_eq!(next, Some(7 * HOUR_US));
        let (ready, next) = due(&kept, keep, HOUR_US);
        assert!(ready.is_empty());
        assert_eq!(next, Some(2 * HOUR_US));
        let (ready, _) = due(&kept, Duration::ZERO, 0);
        assert_eq!(ready.len(), 1, "kept 0 hours: due at once");
        assert_eq!(due(&BTreeMap::new(), keep, 0), (Vec::new(), None));
    }

    #[test]
    fn only_an_entrys_directory_under_a_job_may_be_removed() {
        for ok in ["5-ann/host1", "5-ann/host1.attempt-2", "5-ann/group0"] {
            assert!(removable_name(ok), "{ok}");
        }
        for bad in [
            "5-ann",
            "/etc/x",
            "../x/y",
            "5-ann/../x",
            "hosts/../../x",
            ".journal/d",
            "5-ann/.autoserv-1",
            "5-ann/host1/deeper",
            "",
        ] {
            assert!(!removable_name(bad), "{bad}");
        }
    }

    fn retention(root: &Path) -> Retention {
        Retention::open(&root.join(".journal"), root, Duration::ZERO).unwrap()
    }

    #[test]
    fn a_removal_never_follows_a_symlink_out_of_the_results_directory() {
        let temp = tempfile::tempdir().unwrap();
        let (root, outside) = (temp.path().join("results"), temp.path().join("outside"));
        std::fs::create_dir_all(root.join(".journal")).unwrap();
        std::fs::create_dir_all(outside.join("host1")).unwrap();
        std::fs::write(outside.join("host1/keep"), b"x").unwrap();
        // The job's directory is a symlink out: nothing is removed through it.
        std::os::unix::fs::symlink(&outside, root.join("5-ann")).unwrap();
        let retention = retention(&root);
        let error = retention.remove("5-ann/host1", &Fault::default());
        assert!(error.is_err(), "{error:?}");
        assert!(outside.join("host1/keep").exists());
        // A symlink inside an entry is removed, not followed.
        std::fs::create_dir_all(root.join("6-ann/host1")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("6-ann/host1/link")).unwrap();
        assert_eq!(
            retention.remove("6-ann/host1", &Fault::default()).unwrap(),
            Removal::Removed
        );
        assert!(
            !root.join("6-ann").exists(),
            "the emptied job directory goes too"
        );
        assert!(outside.join("host1/keep").exists());
        assert_eq!(
            retention.remove("6-ann/host1", &Fault::default()).unwrap(),
            Removal::Gone
        );
    }

    #[test]
    fn records_survive_a_restart_and_a_removal_left_half_done_is_finished() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        std::fs::create_dir_all(root.join(".journal")).unwrap();
        let first = retention(&root);
        first.record(1, "5-ann/host1").unwrap();
        first.record(2, "5-ann/host2").unwrap();
        first.record(3, "../escape").unwrap();
        let log = root.join(".journal").join(LOG);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"removed 9 5-ann/host2\n")
            .unwrap();
        // What a kill between the rename and the delete leaves.
        std::fs::create_dir_all(root.join(TRASH).join("1-5-ann_host9/a/b")).unwrap();
        let second = retention(&root);
        assert_eq!(
            second.kept().keys().collect::<Vec<_>>(),
            ["5-ann/host1"],
            "the escaping name was never recorded"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap().lines().count(),
            1,
            "compacted at start"
        );
        assert_eq!(second.sweep(), 1);
        assert_eq!(std::fs::read_dir(root.join(TRASH)).unwrap().count(), 0);
    }
}
