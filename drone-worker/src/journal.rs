//! The worker's local journal. It is what lets the worker ack a job's delivery at once
//! instead of holding it unacked while the job runs, refuse a duplicate delivery of an
//! attempt it already has, and tell after a restart what became of each job.
//!
//! Layout, chosen so a job costs one file creation (inode churn in one directory was
//! the worker's main CPU cost when each stage rewrote its file):
//! - `entry-<id>.<attempt>.jsonl` per attempt held: the job on the first line, then
//!   one line per stage, appended; the last complete line is the current stage;
//! - `done.log`: one line `<id>.<attempt> <stage>` per finished attempt, appended,
//!   read at start into memory, so a late duplicate delivery is still recognised;
//! - `spare-<n>`: files made ahead of time (see [`crate::spare`]); a new record is
//!   written into one and renamed, so accepting a job allocates no inode. A finished
//!   record is renamed back into a spare rather than removed, so a drone in steady
//!   work neither allocates nor frees a journal inode.

use crate::attempts::AttemptId;
use crate::spare::{Kind, Spares};
use common::protocol::RunJob;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where an attempt is in its life on this drone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Stage {
    Accepted,
    Running {
        pid: u32,
    },
    Exited {
        exit_code: i32,
        /// Set when the drone's lease expired before the attempt was settled: the exit
        /// is not a test result and the results go beside the entry's directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        infra_failure: Option<String>,
    },
    /// The results are on the results host; the Finished report may not be sent yet.
    Pushed {
        exit_code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        infra_failure: Option<String>,
        /// The results host's copy was checked against the manifest (and is not this
        /// drone's own directory): the drone's copy may be removed later (see
        /// [`crate::retention`]). Absent in older records: false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        verified: bool,
    },
    /// The Finished report is confirmed by the broker: the attempt is over here.
    Done {
        exit_code: i32,
    },
    /// The attempt could not run at all.
    Refused {
        reason: String,
    },
}

impl Stage {
    fn is_final(&self) -> bool {
        matches!(self, Stage::Done { .. } | Stage::Refused { .. })
    }
}

/// One attempt held by this worker.
#[derive(Clone, Debug)]
pub struct Record {
    pub job: RunJob,
    pub stage: Stage,
}

/// What the journal directory holds (see [`Journal::size`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalSize {
    /// Attempt records (`entry-*.jsonl`): attempts not finished on this drone.
    pub records: usize,
    /// Bytes of every file in it.
    pub bytes: u64,
}

/// Attempts kept in `done.log` after it is compacted at start.
const DONE_KEPT: usize = 100_000;

/// The journal directory.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
    done: Arc<Mutex<HashSet<AttemptId>>>,
    spares: Arc<Spares>,
}

impl Journal {
    /// Opens (creating) `dir` and loads the finished attempts; keeps `spares` record
    /// files made ahead (made by [`Journal::refill`]).
    pub fn open(dir: &Path, spares: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("done.log");
        let mut lines: Vec<String> = match std::fs::File::open(&log) {
            Ok(file) => std::io::BufReader::new(file)
                .lines()
                .collect::<Result<_, _>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if lines.len() > 2 * DONE_KEPT {
            lines.drain(..lines.len() - DONE_KEPT);
            let tmp = dir.join("done.log.tmp");
            std::fs::write(&tmp, lines.join("\n") + "\n")?;
            std::fs::rename(&tmp, &log)?;
        }
        let done = lines
            .iter()
            .filter_map(|line| {
                let (entry, attempt) = line.split_whitespace().next()?.split_once('.')?;
                Some(AttemptId {
                    entry: entry.parse().ok()?,
                    attempt: attempt.parse().ok()?,
                })
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            done: Arc::new(Mutex::new(done)),
            spares: Arc::new(Spares::open(dir, Kind::File, spares)?),
        })
    }

    /// Makes record files ahead until the journal keeps enough (blocking).
    pub fn refill(&self) -> std::io::Result<usize> {
        self.spares.refill()
    }

    /// Whether a record file made ahead was used and not replaced yet.
    #[cfg(test)]
    pub fn wants_spares(&self) -> bool {
        self.spares.wants_more()
    }

    /// Writes a new record into a spare file and renames it into place; false when
    /// there was no spare or it could not be used (the caller creates the file).
    fn put_new_in_spare(&self, path: &Path, text: &str) -> bool {
        let Some(spare) = self.spares.take() else {
            return false;
        };
        // Written over from the start and then cut to length, not truncated first: a
        // recycled record keeps its data block, where truncating would free it (and,
        // on a filesystem mounted with `discard`, trim it) only to allocate another.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(false)
            .open(&spare)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.set_len(text.len() as u64)
            })
            // A rename, never two names for one file: a spare that was also a record
            // would be truncated by the next job written into it.
            .and_then(|()| std::fs::rename(&spare, path));
        match written {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, spare = %spare.display(), "spare journal record not used");
                self.spares.give_back(spare);
                false
            }
        }
    }

    fn path(&self, id: AttemptId) -> PathBuf {
        self.dir.join(format!("entry-{id}.jsonl"))
    }

    /// Whether this worker has, or had, the attempt.
    /// Where the tests parsed from `id`'s results wait until its Finished report is
    /// confirmed.
    pub fn parsed_path(&self, id: AttemptId) -> PathBuf {
        self.dir
            .join("parsed")
            .join(format!("{}.{}.json", id.entry, id.attempt))
    }

    pub fn knows(&self, id: AttemptId) -> bool {
        self.done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&id)
            || self.path(id).exists()
    }

    /// Records a stage: `Accepted` creates the attempt's file; later stages are
    /// appended; a final stage moves the attempt to `done.log`.
    pub fn put(&self, job: &RunJob, stage: Stage) -> std::io::Result<()> {
        let path = self.path(AttemptId::of(job));
        let stage_line = serde_json::to_string(&stage).map_err(std::io::Error::other)? + "\n";
        if stage == Stage::Accepted {
            let job_line = serde_json::to_string(job).map_err(std::io::Error::other)? + "\n";
            let text = job_line + &stage_line;
            if self.put_new_in_spare(&path, &text) {
                return Ok(());
            }
            return std::fs::File::create(&path)?.write_all(text.as_bytes());
        }
        if stage.is_final() {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("done.log"))?;
            let tag = match &stage {
                Stage::Done { exit_code } => format!("done {exit_code}"),
                _ => "refused".to_string(),
            };
            log.write_all(format!("{} {tag}\n", AttemptId::of(job)).as_bytes())?;
            self.done
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(AttemptId::of(job));
            // The record becomes the next one's spare (see [`Spares::recycle`]).
            return match self.spares.recycle(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
        file.write_all(stage_line.as_bytes())
    }

    /// Makes the attempt's record durable (fsync of the file and the directory).
    pub fn sync(&self, id: AttemptId) -> std::io::Result<()> {
        std::fs::File::open(self.path(id))?.sync_all()?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// How many attempt records the directory holds, and the bytes of its files (and
    /// of the parsed tests waiting in `parsed/`); blocking.
    pub fn size(&self) -> std::io::Result<JournalSize> {
        let mut size = JournalSize::default();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_file() {
                size.bytes += metadata.len();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("entry-") && name.ends_with(".jsonl") {
                    size.records += 1;
                }
            }
        }
        match std::fs::read_dir(self.dir.join("parsed")) {
            Ok(parsed) => {
                for entry in parsed {
                    let metadata = entry?.metadata()?;
                    if metadata.is_file() {
                        size.bytes += metadata.len();
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(size)
    }

    /// The attempts not finished yet, oldest first; unreadable files are reported.
    pub fn unfinished(&self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            match read_record(&path) {
                Some(record) if !record.stage.is_final() => out.push(record),
                Some(_) => {}
                None => tracing::warn!(path = %path.display(), "unreadable journal record skipped"),
            }
        }
        out.sort_by_key(|r| (r.job.entry_id, r.job.attempt));
        Ok(out)
    }
}

fn read_record(path: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let job: RunJob = serde_json::from_str(lines.next()?).ok()?;
    // A line cut short by a crash does not parse: the last complete one counts.
    let stage = lines
        .rev()
        .find_map(|l| serde_json::from_str::<Stage>(l).ok())?;
    Some(Record { job, stage })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(entry: i64, attempt: i32) -> AttemptId {
        AttemptId { entry, attempt }
    }
    use common::names::{DroneName, HostName, Owner};

    fn job(entry_id: i64) -> RunJob {
        RunJob {
            schema: 1,
            entry_id,
            job_id: 1,
            attempt: 1,
            drone: DroneName::new("d").unwrap(),
            hosts: vec![HostName::new("h").unwrap()],
            owner: Owner::new("o").unwrap(),
            job_name: "n".into(),
            execution_subdir: HostName::new("h").unwrap(),
            control_file: "c".into(),
            tasks: Default::default(),
            sender_version: "0".into(),
        }
    }

    #[test]
    fn remembers_stages_and_finished_attempts_across_reopening() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let journal = Journal::open(&dir, 1).unwrap();
        assert_eq!(journal.refill().unwrap(), 1);
        journal.put(&job(1), Stage::Accepted).unwrap();
        assert!(
            journal.wants_spares(),
            "the first record was written into the spare"
        );
        assert!(!dir.join("spare-0").exists());
        // One name only: a spare that stayed linked to a record would be truncated
        // by the next job written into it.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(journal.path(id(1, 1))).unwrap().nlink(),
            1
        );
        journal.put(&job(1), Stage::Running { pid: 42 }).unwrap();
        journal.put(&job(2), Stage::Accepted).unwrap();
        journal.put(&job(2), Stage::Done { exit_code: 0 }).unwrap();
        // A torn last line (crash mid-append) is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal.path(id(1, 1)))
            .unwrap()
            .write_all(b"{\"state\":\"exi")
            .unwrap();
        let reopened = Journal::open(&dir, 1).unwrap();
        assert!(reopened.knows(id(1, 1)) && reopened.knows(id(2, 1)) && !reopened.knows(id(3, 1)));
        let unfinished = reopened.unfinished().unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].stage, Stage::Running { pid: 42 });
    }

    #[test]
    fn a_finished_record_becomes_the_next_ones_file() {
        use std::os::unix::fs::MetadataExt;
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let journal = Journal::open(&dir, 1).unwrap();
        journal.put(&job(7), Stage::Accepted).unwrap();
        let inode = std::fs::metadata(journal.path(id(7, 1))).unwrap().ino();
        journal.put(&job(7), Stage::Running { pid: 4242 }).unwrap();
        journal.put(&job(7), Stage::Done { exit_code: 0 }).unwrap();
        assert!(
            !journal.path(id(7, 1)).exists(),
            "a finished record leaves its name"
        );
        assert!(journal.knows(id(7, 1)), "and is remembered in done.log");
        let kept: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.metadata().unwrap().ino() == inode)
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert_eq!(kept.len(), 1, "the record's file is kept, not removed");
        assert!(kept[0].starts_with("spare-"), "as a spare: {kept:?}");
        journal.put(&job(8), Stage::Accepted).unwrap();
        assert_eq!(
            std::fs::metadata(journal.path(id(8, 1))).unwrap().ino(),
            inode,
            "the next record reuses the finished one's inode instead of a new one"
        );
        let text = std::fs::read_to_string(journal.path(id(8, 1))).unwrap();
        assert!(
            !text.contains("\"entry_id\":7") && !text.contains("4242"),
            "nothing of the old, longer record is left: {text}"
        );
        assert_eq!(text.lines().count(), 2, "the job and its stage: {text}");
        assert_eq!(
            read_record(&journal.path(id(8, 1))).unwrap().job.entry_id,
            8
        );
    }

    #[test]
    fn its_size_counts_unfinished_records_and_every_files_bytes() {
        let temp = tempfile::tempdir().unwrap();
        let journal = Journal::open(temp.path(), 0).unwrap();
        assert_eq!(journal.size().unwrap(), JournalSize::default());
        journal.put(&job(1), Stage::Accepted).unwrap();
        journal.put(&job(2), Stage::Accepted).unwrap();
        journal.put(&job(2), Stage::Done { exit_code: 0 }).unwrap();
        let parsed = journal.parsed_path(id(1, 1));
        std::fs::create_dir_all(parsed.parent().unwrap()).unwrap();
        std::fs::write(&parsed, b"{}").unwrap();
        let size = journal.size().unwrap();
        assert_eq!(size.records, 1, "entry 2 is finished");
        let on_disk: u64 = std::fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        assert_eq!(size.bytes, on_disk + 2);
    }
}
