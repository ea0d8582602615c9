//! The worker's local journal: one small JSON file per attempt it holds, written
//! atomically (temporary file, fsync, rename) before the delivery is acked. It is what
//! lets the worker ack a job's delivery at once instead of holding it unacked while the
//! job runs, refuse a duplicate delivery of an attempt it already has, and tell after a
//! restart what became of each job.

use common::protocol::RunJob;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    },
    /// The results are on the results host; the Finished report may not be confirmed yet.
    Pushed {
        exit_code: i32,
    },
    /// The scheduler has confirmed the Finished report. Kept as a tombstone so a late
    /// duplicate delivery of the same attempt is recognised.
    Done {
        exit_code: i32,
    },
    /// The attempt could not run at all.
    Refused {
        reason: String,
    },
}

/// One attempt held by this worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub job: RunJob,
    pub stage: Stage,
    pub updated_at: i64,
}

/// The journal directory.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, entry_id: i64, attempt: i32) -> PathBuf {
        self.dir.join(format!("entry-{entry_id}.{attempt}.json"))
    }

    /// The record of an attempt, if this worker has one.
    pub fn get(&self, entry_id: i64, attempt: i32) -> Option<Record> {
        let bytes = std::fs::read(self.path(entry_id, attempt)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a record atomically; `durable` also fsyncs the file and the directory.
    pub fn put(&self, job: &RunJob, stage: Stage, durable: bool) -> std::io::Result<()> {
        let record = Record {
            job: job.clone(),
            stage,
            updated_at: common::time::now_micros(),
        };
        let path = self.path(job.entry_id, job.attempt);
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(&record).expect("journal records serialize"))?;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if durable {
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Makes the attempt's current record durable (fsync of the file and directory).
    pub fn sync(&self, entry_id: i64, attempt: i32) -> std::io::Result<()> {
        std::fs::File::open(self.path(entry_id, attempt))?.sync_all()?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Every record, oldest first; unreadable files are reported, not fatal.
    pub fn all(&self) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
            {
                Some(record) => out.push(record),
                None => tracing::warn!(path = %path.display(), "unreadable journal record skipped"),
            }
        }
        out.sort_by_key(|r| r.updated_at);
        Ok(out)
    }
}
