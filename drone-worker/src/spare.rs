//! Files and directories made ahead of time, so that starting an attempt renames them
//! into place instead of creating them.
//!
//! Starting an attempt needs six new inodes: its journal record, the job's and the
//! entry's directories, and the control and two log files. Allocating an inode is
//! usually cheap, but not always: ext4 without a journal passes over every inode freed
//! in the last minute, so after a drone deleted many files each creation can cost
//! hundreds of microseconds. A rename allocates nothing. The worker keeps a few spares
//! of each kind and makes new ones in the background after a start took one.
//!
//! A spare is `spare-<n>` in its pool's directory; the pools are adopted again when the
//! worker restarts (a spare left half-made is finished by the next refill).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files the worker writes into an entry's results directory.
pub const CONTROL_FILE: &str = "control";
pub const STDOUT_FILE: &str = "autoserv.stdout";
pub const STDERR_FILE: &str = "autoserv.stderr";
/// The files `runner::start` writes, which a spare entry directory holds already.
pub const ENTRY_FILES: [&str; 3] = [CONTROL_FILE, STDOUT_FILE, STDERR_FILE];

/// What one pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An empty file (a journal record).
    File,
    /// A directory holding [`ENTRY`], itself holding the entry's files (see
    /// the `runner` module): the job's directory and the entry's, made together.
    EntryDir,
}

/// The entry's directory inside an [`Kind::EntryDir`] spare. A host name never starts
/// with a dot, so it cannot be mistaken for an entry.
pub const ENTRY: &str = ".entry";

/// A pool of spares of one kind in one directory.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    kind: Kind,
    want: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Complete spares.
    ready: Vec<PathBuf>,
    /// `EntryDir` spares whose [`ENTRY`] was taken (the job's directory existed).
    hollow: Vec<PathBuf>,
    next: u64,
}

impl Spares {
    /// Opens (creating) the pool in `dir`, keeping up to `want` spares, and adopts the
    /// spares a previous run left there. Makes none yet: see [`Spares::refill`].
    pub fn open(dir: &Path, kind: Kind, want: usize) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut state = State::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("spare-"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            state.next = state.next.max(n + 1);
            // Whatever state it is in, the next refill completes it.
            state.hollow.push(entry.path());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            kind,
            want: want.max(1),
            state: Mutex::new(state),
        })
    }

    /// A complete spare, if there is one. The caller renames it (or its [`ENTRY`]) away,
    /// or gives it back with [`Spares::give_back`].
    pub fn take(&self) -> Option<PathBuf> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .pop()
    }

    /// Returns a spare that could not be used: to the ready ones when it is still
    /// whole, else (someone removed it) to be made again by the next refill.
    pub fn give_back(&self, spare: PathBuf) {
        let whole = match self.kind {
            Kind::File => spare.is_file(),
            Kind::EntryDir => spare.join(ENTRY).is_dir(),
        };
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if whole {
            state.ready.push(spare);
        } else {
            state.hollow.push(spare);
        }
    }

    /// Takes `file`, a [`Kind::File`] that served its turn (a finished journal record),
    /// into the pool under a new spare name: renamed rather than removed, so the record
    /// after it allocates no inode and none is freed. On ext4 without a journal a freed
    /// inode is passed over by every allocation in its group for a minute or more, and
    /// removing a record per job made every file the drone created slower.
    pub fn recycle(&self, file: &Path) -> io::Result<()> {
        debug_assert_eq!(self.kind, Kind::File);
        let path = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.next += 1;
            self.dir.join(format!("spare-{}", state.next - 1))
        };
        std::fs::rename(file, &path)?;
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .push(path);
        Ok(())
    }

    /// Returns an `EntryDir` spare whose [`ENTRY`] was renamed away.
    pub fn give_back_hollow(&self, spare: PathBuf) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .hollow
            .push(spare);
    }

    /// Whether the pool has fewer spares than it keeps (what the tests check; a
    /// refill finds it out for itself).
    #[cfg(test)]
    pub fn wants_more(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .len()
            < self.want
    }

    /// Makes spares until the pool holds what it keeps (blocking: file system calls).
    /// Returns how many it made.
    pub fn refill(&self) -> io::Result<usize> {
        let mut made = 0;
        loop {
            let path = {
                let mut state = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if state.ready.len() >= self.want {
                    return Ok(made);
                }
                match state.hollow.pop() {
                    Some(path) => path,
                    None => {
                        state.next += 1;
                        self.dir.join(format!("spare-{}", state.next - 1))
                    }
                }
            };
            if let Err(error) = self.make(&path) {
                // Not retried under this name: something in the way (a file where a
                // directory goes) would fail every refill. A later one takes a new name.
                return Err(io::Error::new(
                    error.kind(),
                    format!("{}: {error}", path.display()),
                ));
            }
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .ready
                .push(path);
            made += 1;
        }
    }

    fn make(&self, path: &Path) -> io::Result<()> {
        match self.kind {
            Kind::File => std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map(drop),
            Kind::EntryDir => {
                let entry = path.join(ENTRY);
                std::fs::create_dir_all(&entry)?;
                for name in ENTRY_FILES {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(entry.join(name))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_fills_up_hands_out_spares_and_is_adopted_again() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let pool = Spares::open(&dir, Kind::EntryDir, 3).unwrap();
        assert!(pool.take().is_none(), "nothing made before a refill");
        assert_eq!(pool.refill().unwrap(), 3);
        let spare = pool.take().unwrap();
        for name in ENTRY_FILES {
            assert!(spare.join(ENTRY).join(name).is_file(), "{name} made ahead");
        }
        // The entry went away but its job directory existed: the spare comes back hollow
        // and the next refill completes it instead of making another.
        std::fs::rename(spare.join(ENTRY), dir.join("elsewhere")).unwrap();
        pool.give_back_hollow(spare.clone());
        assert!(pool.wants_more());
        assert_eq!(pool.refill().unwrap(), 1);
        assert!(spare.join(ENTRY).join("control").is_file());
        let spares = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_str()
                        .unwrap()
                        .starts_with("spare-")
                })
                .count()
        };
        assert_eq!(spares(&dir), 3, "no spare made beyond what the pool keeps");
        // A spare removed behind the pool's back is made again, not handed out.
        let gone = pool.take().unwrap();
        std::fs::remove_dir_all(&gone).unwrap();
        pool.give_back(gone.clone());
        assert!(pool.wants_more());
        assert_eq!(pool.refill().unwrap(), 1);
        assert!(gone.join(ENTRY).join("control").is_file());
        drop(pool);
        let again = Spares::open(&dir, Kind::EntryDir, 3).unwrap();
        assert_eq!(
            again.refill().unwrap(),
            3,
            "adopted spares are checked, not new ones made"
        );
        assert_eq!(spares(&dir), 3);
    }
}
