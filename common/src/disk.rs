//! Free space of a filesystem, and whether a failed write was for want of it. The
//! worker reports its results filesystem's free space in heartbeats; the scheduler
//! shows its database's and results directory's.

use std::io;
use std::path::Path;

/// One MiB, the unit free space is reported in.
pub const MIB: u64 = 1024 * 1024;

/// The bytes an unprivileged user may still write on the filesystem holding `path`
/// (what `df` shows as available: blocks reserved for root do not count).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    // u64 already where the tests run; not on every target.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (
        u64::from(stat.blocks_available()),
        u64::from(stat.fragment_size()),
    );
    Ok(blocks.saturating_mul(size))
}

/// [`free_bytes`] in whole MiB.
pub fn free_mb(path: &Path) -> io::Result<u64> {
    free_bytes(path).map(|bytes| bytes / MIB)
}

/// Whether `error` says the filesystem (or the user's quota on it) is full.
pub fn is_no_space(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    ) || error.kind() == io::ErrorKind::StorageFull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert_eq!(
            free_mb(dir.path()).unwrap(),
            free_bytes(dir.path()).unwrap() / MIB
        );
        let missing = free_bytes(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn no_space_and_quota_errors_are_told_from_others() {
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_no_space(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_no_space(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_no_space(&io::Error::other("no space left")));
    }
}
