//! `[DRONE] max_results_mb`: the most one entry's results may take on the drone's disk.
//! While Autoserv runs, the worker looks at the size of its results directory (each
//! file counts for the larger of its length and the blocks it takes: a sparse file
//! costs little disk but is still read whole to be checked and pushed) every few
//! seconds, less often when the directory is large enough for a look to take long;
//! past the cap it kills the attempt (its cgroup and process group). Once Autoserv has
//! exited, results still over the cap lose their largest files until they fit, and
//! the entry ends Failed (`test`) with the reason, kept in `PREFIX.cap` beside the
//! supervisor's files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The shortest time between two looks at a running attempt's results.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Where the reason an attempt went over the cap is kept.
pub fn reason_file(prefix: &Path) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".cap");
    PathBuf::from(name)
}

/// Why the attempt's results were cut, if they were.
pub fn exceeded(prefix: &Path) -> Option<String> {
    std::fs::read_to_string(reason_file(prefix)).ok()
}

/// The reason an entry ends with when its results go over `cap_mb`.
pub fn reason(cap_mb: u64) -> String {
    format!(
        "results exceed max_results_mb={cap_mb}: the job was stopped and its largest files removed"
    )
}

/// What one file or directory counts for: the larger of its length and its blocks.
fn weight(meta: &std::fs::Metadata) -> u64 {
    let blocks = meta.blocks() * 512;
    if meta.is_file() {
        blocks.max(meta.len())
    } else {
        blocks
    }
}

/// The size of `dir` and everything under it, in bytes (see [`weight`]); symlinks are
/// not followed. What cannot be read counts for nothing.
pub fn allocated(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            continue;
        };
        total += weight(&meta);
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&next) {
                pending.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// Removes the largest regular files under `dir` (the supervisor's `.autoserv-*`
/// files left alone) until it takes at most `cap` bytes; the bytes freed.
pub fn trim(dir: &Path, cap: u64) -> u64 {
    let mut total = allocated(dir);
    if total <= cap {
        return 0;
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let own = entry
                .file_name()
                .to_string_lossy()
                .starts_with(".autoserv-");
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && !own {
                files.push((weight(&meta), entry.path()));
            }
        }
    }
    files.sort_by_key(|file| std::cmp::Reverse(file.0));
    let mut freed = 0;
    for (size, path) in files {
        if total <= cap {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::warn!(path = %path.display(), size, "removed: the results are over max_results_mb");
            total = total.saturating_sub(size);
            freed += size;
        }
    }
    freed
}

/// Once Autoserv has exited: if the results in `dir` are over `cap_mb` (or the watch
/// already found them so), cuts them to fit and records the reason at `prefix`. The
/// reason, if any.
pub fn enforce(dir: &Path, prefix: &Path, cap_mb: u64) -> Option<String> {
    let cap = cap_mb.saturating_mul(1024 * 1024);
    let over = exceeded(prefix).is_some() || allocated(dir) > cap;
    if !over {
        return None;
    }
    trim(dir, cap);
    let reason = reason(cap_mb);
    if let Err(error) = std::fs::write(reason_file(prefix), &reason) {
        tracing::error!(%error, "cannot record that the results went over the cap");
    }
    Some(reason)
}

/// Looks at `dir` while Autoserv runs; returns once its results went over `cap_mb`,
/// after recording the reason at `prefix` and calling `stop`. Never returns otherwise
/// (the caller drops it when Autoserv exits).
pub async fn watch(dir: PathBuf, prefix: PathBuf, cap_mb: u64, stop: impl FnOnce()) {
    let cap = cap_mb.saturating_mul(1024 * 1024);
    let mut pause = LOOK_EVERY;
    loop {
        tokio::time::sleep(pause).await;
        let look = dir.clone();
        let started = Instant::now();
        let Ok(size) = tokio::task::spawn_blocking(move || allocated(&look)).await else {
            continue;
        };
        // A look costs at most a twentieth of the time.
        pause = LOOK_EVERY.max(started.elapsed() * 20);
        if size > cap {
            tracing::warn!(
                size,
                cap,
                "the results are over max_results_mb: stopping the attempt"
            );
            let _ = std::fs::write(reason_file(&prefix), reason(cap_mb));
            stop();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_over_the_cap_lose_their_largest_files_until_they_fit() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("1-alice/host1");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("status.log"), "GOOD\n").unwrap();
        std::fs::write(dir.join("sub/big"), vec![1u8; 3 << 20]).unwrap();
        std::fs::write(dir.join("medium"), vec![1u8; 512 << 10]).unwrap();
        std::fs::write(dir.join(".autoserv-1.pid"), "42").unwrap();
        let prefix = dir.join(".autoserv-1");
        assert!(allocated(&dir) < 4 << 20, "{}", allocated(&dir));
        assert_eq!(enforce(&dir, &prefix, 4), None, "under the cap: untouched");
        assert!(dir.join("sub/big").exists());
        // A sparse file counts for its length: it is read whole to be pushed.
        let sparse = std::fs::File::create(dir.join("sparse")).unwrap();
        sparse.set_len(8 << 20).unwrap();
        assert!(allocated(&dir) > 8 << 20);

        let reason = enforce(&dir, &prefix, 1).expect("over the cap");
        assert!(
            reason.starts_with("results exceed max_results_mb=1"),
            "{reason}"
        );
        assert_eq!(exceeded(&prefix), Some(reason));
        assert!(!dir.join("sparse").exists() && !dir.join("sub/big").exists());
        assert!(dir.join("medium").exists(), "what fits stays");
        assert!(dir.join("status.log").exists() && dir.join(".autoserv-1.pid").exists());
        assert!(allocated(&dir) <= 1 << 20);
    }
}
