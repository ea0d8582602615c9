//! The manifest of an entry's results: the path, size and SHA-256 of every file, written
//! into the results directory (as [`FILE_NAME`]) before it is pushed, so the copy on
//! the results host can be checked against it, by the worker after each push and by
//! anyone later (`jq -r '.files[] | "\(.sha256)  \(.path)"' | sha256sum -c`).
//!
//! Files the push leaves on the drone (the supervisor's `.autoserv-*` bookkeeping) and
//! the manifest itself are not listed; neither are symlinks (rsync copies them as
//! links) nor names that are not UTF-8 (they could not be named in JSON faithfully).
//! Devices, FIFOs and sockets are not results: they are not pushed, and the manifest
//! lists them under `skipped` with their kind.

use common::protocol::ManifestSummary;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// The manifest's name in the results directory.
pub const FILE_NAME: &str = ".autotest-manifest.json";

/// What the results directory held when Autoserv was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
    /// What the results directory held that is not pushed (devices, FIFOs, sockets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// Something in the results directory that is not a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    /// `fifo`, `socket`, `block device` or `character device`.
    pub kind: String,
}

/// One file, its path relative to the results directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    /// Lists `dir` (recursively) and writes the manifest into it.
    pub fn write(dir: &Path) -> std::io::Result<Self> {
        let mut manifest = Self {
            files: Vec::new(),
            skipped: Vec::new(),
        };
        walk(dir, "", &mut manifest)?;
        manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
        manifest.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let temporary = dir.join(format!("{FILE_NAME}.tmp"));
        let text = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, dir.join(FILE_NAME))?;
        Ok(manifest)
    }

    /// The manifest written into `dir`.
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join(FILE_NAME))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn summary(&self) -> ManifestSummary {
        ManifestSummary {
            files: self.files.len() as u64,
            bytes: self.files.iter().map(|f| f.size).sum(),
        }
    }

    /// Checks a copy of the directory: what in it does not match, one line per file
    /// (empty when every file is there with its size and checksum).
    pub fn check(&self, copy: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for file in &self.files {
            let path = copy.join(&file.path);
            match std::fs::symlink_metadata(&path) {
                Err(_) => problems.push(format!("{}: missing", file.path)),
                Ok(meta) if !meta.is_file() => {
                    problems.push(format!("{}: not a regular file", file.path))
                }
                Ok(meta) if meta.len() != file.size => problems.push(format!(
                    "{}: {} bytes, {} expected",
                    file.path,
                    meta.len(),
                    file.size
                )),
                Ok(_) => match sha256(&path) {
                    Ok(sum) if sum == file.sha256 => {}
                    Ok(_) => problems.push(format!("{}: content differs", file.path)),
                    Err(e) => problems.push(format!("{}: unreadable: {e}", file.path)),
                },
            }
        }
        problems
    }
}

fn walk(dir: &Path, relative: &str, manifest: &mut Manifest) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for entry in std::fs::read_dir(dir.join(relative))? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            tracing::warn!(name = ?entry.file_name(), "a results file name that is not UTF-8 is left out of the manifest");
            continue;
        };
        if relative.is_empty() && (name == FILE_NAME || name.starts_with(FILE_NAME)) {
            continue;
        }
        if name.starts_with(".autoserv-") {
            continue;
        }
        let path = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(dir, &path, manifest)?;
        } else if kind.is_file() {
            let full = dir.join(&path);
            manifest.files.push(FileEntry {
                size: std::fs::metadata(&full)?.len(),
                sha256: sha256(&full)?,
                path,
            });
        } else if !kind.is_symlink() {
            let kind = if kind.is_fifo() {
                "fifo"
            } else if kind.is_socket() {
                "socket"
            } else if kind.is_block_device() {
                "block device"
            } else if kind.is_char_device() {
                "character device"
            } else {
                "special file"
            };
            tracing::info!(%path, kind, "not a result: left out of the push");
            manifest.skipped.push(Skipped {
                path,
                kind: kind.to_string(),
            });
        }
    }
    Ok(())
}

fn sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_checked_file_by_file() {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        let (dir, copy) = (root.join("drone"), root.join("copy"));
        std::fs::create_dir_all(dir.join("sysinfo")).unwrap();
        std::fs::write(dir.join("status"), "GOOD\n").unwrap();
        std::fs::write(dir.join("sysinfo/dmesg"), "boot\n").unwrap();
        std::fs::write(dir.join(".autoserv-exit"), "0").unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(dir.join("sysinfo/fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
        let manifest = Manifest::write(&dir).unwrap();
        assert_eq!(
            manifest.skipped,
            [Skipped {
                path: "sysinfo/fifo".into(),
                kind: "fifo".into()
            }]
        );
        assert_eq!(Manifest::read(&dir).unwrap(), manifest);
        let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["status", "sysinfo/dmesg"]);
        assert_eq!(
            manifest.summary(),
            ManifestSummary {
                files: 2,
                bytes: 10
            }
        );
        // `printf 'GOOD\n' | sha256sum`
        assert_eq!(
            manifest.files[0].sha256,
            "d43cf775e7609f1274a4cd97b7649be036b01a6e22d6a04038ecd51811652cf7"
        );

        std::fs::create_dir_all(copy.join("sysinfo")).unwrap();
        std::fs::write(copy.join("status"), "GOOD\n").unwrap();
        std::fs::write(copy.join("sysinfo/dmesg"), "boot\n").unwrap();
        assert!(manifest.check(&copy).is_empty());
        // Same size, other bytes: what a quick check by size and time would miss.
        std::fs::write(copy.join("status"), "BAD!\n").unwrap();
        std::fs::remove_file(copy.join("sysinfo/dmesg")).unwrap();
        assert_eq!(
            manifest.check(&copy),
            ["status: content differs", "sysinfo/dmesg: missing"]
        );
    }
}
