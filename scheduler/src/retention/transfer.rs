//! Moving a job's results directory off the results host: rsync to the archive, an
//! rsync dry run comparing checksums to verify the copy, then the local directory
//! renamed into `<results_dir>/.autotest-removing/` and deleted (a kill in between is
//! finished by [`sweep`] at the next start). Every argument is its own argv element.

use super::rules::differs;
use common::config::ArchiveRsync;
use std::path::{Path, PathBuf};

/// Where directories being removed go, in the results directory.
pub const TRASH: &str = ".autotest-removing";

/// Copies `<results_dir>/<tag>` to the archive and checks the copy; an error says why
/// it is not there (nothing is removed then).
pub async fn archive(
    results_dir: &Path,
    tag: &str,
    archive: &ArchiveRsync,
    ssh_options: &[String],
) -> Result<(), String> {
    if let ArchiveRsync::Local(path) = archive {
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    rsync(results_dir, tag, archive, ssh_options, &[]).await?;
    let listing = rsync(
        results_dir,
        tag,
        archive,
        ssh_options,
        &["--checksum", "--dry-run", "--out-format=%i %n"],
    )
    .await?;
    let differing: Vec<&str> = listing.lines().filter(|l| differs(l)).collect();
    if differing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the archive's copy differs from the results host's in {} file(s), first {}",
            differing.len(),
            differing[0]
        ))
    }
}

/// Runs rsync of `<results_dir>/./<tag>` to the archive with `extra` options: its
/// stdout, or why it failed.
async fn rsync(
    results_dir: &Path,
    tag: &str,
    archive: &ArchiveRsync,
    ssh_options: &[String],
    extra: &[&str],
) -> Result<String, String> {
    let mut command = tokio::process::Command::new("rsync");
    command.args([
        "-a",
        "--no-devices",
        "--no-specials",
        "--relative",
        "--mkpath",
    ]);
    command.args(extra);
    if let ArchiveRsync::Remote { .. } = archive {
        let mut ssh = vec!["ssh".to_string(), "-oBatchMode=yes".to_string()];
        ssh.extend(ssh_options.iter().cloned());
        let quoted: Vec<String> = ssh
            .iter()
            .map(|a| shlex::try_quote(a).map_or_else(|_| a.replace('\0', ""), |q| q.into_owned()))
            .collect();
        command.arg("-e").arg(quoted.join(" "));
    }
    command
        .arg("--")
        .arg(results_dir.join(".").join(tag))
        .arg(archive.destination());
    command.kill_on_drop(true);
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run rsync: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rsync to {} exited with {}: {}",
            archive.as_text(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether `<results_dir>/<tag>` is a real directory (not a symlink); false when absent.
pub fn present(results_dir: &Path, tag: &str) -> Result<bool, String> {
    let path = results_dir.join(tag);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(format!(
            "{} is not a directory (a symlink or a file): left alone",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Removes `<results_dir>/<tag>`: renamed into [`TRASH`], then deleted
/// (`remove_dir_all` removes symlinks inside without following them); blocking.
pub fn remove(results_dir: &Path, tag: &str) -> Result<(), String> {
    if !present(results_dir, tag)? {
        return Ok(());
    }
    let trash = results_dir.join(TRASH);
    std::fs::create_dir_all(&trash)
        .map_err(|e| format!("cannot create {}: {e}", trash.display()))?;
    let to: PathBuf = trash.join(format!("{tag}-{}", common::time::now_micros()));
    let from = results_dir.join(tag);
    std::fs::rename(&from, &to).map_err(|e| format!("cannot move {} away: {e}", from.display()))?;
    std::fs::remove_dir_all(&to).map_err(|e| format!("cannot delete {}: {e}", to.display()))
}

/// Deletes what a removal interrupted at the last stop left in [`TRASH`]; blocking.
pub fn sweep(results_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(results_dir.join(TRASH)) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let removed = match entry.file_type() {
            Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(entry.path()),
            _ => std::fs::remove_file(entry.path()),
        };
        match removed {
            Ok(()) => swept += 1,
            Err(error) => {
                tracing::warn!(%error, path = %entry.path().display(), "cannot finish removing")
            }
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_archive_is_verified_and_the_local_copy_removed_without_following_links() {
        let temp = tempfile::tempdir().unwrap();
        let (results, archived, outside) = (
            temp.path().join("results"),
            temp.path().join("archive"),
            temp.path().join("outside"),
        );
        std::fs::create_dir_all(results.join("7-ann/host1/debug")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        std::fs::write(results.join("7-ann/host1/debug/log"), b"hello").unwrap();
        std::os::unix::fs::symlink(&outside, results.join("7-ann/host1/out")).unwrap();
        let dest = ArchiveRsync::Local(archived.clone());
        archive(&results, "7-ann", &dest, &[]).await.unwrap();
        assert_eq!(
            std::fs::read(archived.join("7-ann/host1/debug/log")).unwrap(),
            b"hello"
        );
        remove(&results, "7-ann").unwrap();
        assert!(!results.join("7-ann").exists());
        assert!(outside.join("keep").exists(), "the link was not followed");
        assert_eq!(sweep(&results), 0);
        // A job directory that is a symlink is refused.
        std::os::unix::fs::symlink(&outside, results.join("8-ann")).unwrap();
        assert!(remove(&results, "8-ann").is_err());
        assert!(outside.join("keep").exists());
    }
}
