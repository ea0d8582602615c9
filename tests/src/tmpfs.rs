//! A small filesystem of a test's own: a size-limited tmpfs mounted for the test and
//! unmounted when dropped (also when the test fails), so a test can fill a disk
//! without touching the machine's. Mounting needs root, as the tests have here and in
//! CI; elsewhere [`Tmpfs::mount`] says why it cannot and the test skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted on drop.
pub struct Tmpfs {
    dir: PathBuf,
    /// Holds the mount point; removed after the unmount.
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mb` MiB; Err says why it cannot (not root, no mount).
    pub fn mount(size_mb: u64) -> Result<Self, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        let parent = tempfile::Builder::new()
            .prefix("autotest_tmpfs_")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).map_err(|e| format!("mount point: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self {
            dir,
            _parent: parent,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `mb` MiB of zeros to `name` in it (stopping quietly when it is full).
    pub fn fill(&self, name: &str, mb: usize) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join(name);
        let mut file = std::fs::File::create(&path).expect("filler file");
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..mb {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        path
    }

    /// Free MiB, as `df` shows them.
    pub fn free_mb(&self) -> u64 {
        common::disk::free_mb(&self.dir).expect("statvfs of the tmpfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still in use (a process of a failed test): detach it now; the kernel
            // frees it once the last user goes.
            let _ = Command::new("umount").arg("--lazy").arg(&self.dir).status();
        }
    }
}
