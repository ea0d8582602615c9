//! The scheduler's own filesystems: where its SQLite database is, and the results
//! directory when this machine is the results host (`results_host` localhost). Their
//! free space is read at each scrape of `/metrics` and each view of `/drones`; MySQL's
//! disk is the database server's, not looked at.

use common::config::{Config, DatabaseConfig, ResultsHost};
use std::path::PathBuf;

/// One of the scheduler's filesystems and its free space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnDisk {
    /// `database` or `results`.
    pub filesystem: &'static str,
    /// The directory looked at (its nearest existing parent is read while it is not
    /// made yet).
    pub path: PathBuf,
    /// Bytes an unprivileged user may still write; None when it could not be read.
    pub free_bytes: Option<u64>,
}

/// The directories to look at: the SQLite file's, and the local results directory.
pub fn watched(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut dirs = Vec::new();
    if let DatabaseConfig::Sqlite { path } = &config.database {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        dirs.push(("database", dir));
    }
    if config.scheduler.results_host == ResultsHost::Local {
        dirs.push(("results", config.scheduler.results_dir.clone()));
    }
    dirs
}

/// The free space of each directory [`watched`] names (read off the async threads:
/// a hung filesystem must not stall the scheduler).
pub async fn read(config: &Config) -> Vec<OwnDisk> {
    let dirs = watched(config);
    tokio::task::spawn_blocking(move || {
        dirs.into_iter()
            .map(|(filesystem, path)| {
                // A results directory not made yet will be made on its parent's.
                let existing = path.ancestors().find(|p| p.exists()).unwrap_or(&path);
                let free_bytes = match common::disk::free_bytes(existing) {
                    Ok(free) => Some(free),
                    Err(error) => {
                        tracing::debug!(%error, path = %path.display(), "cannot read free space");
                        None
                    }
                };
                OwnDisk {
                    filesystem,
                    path,
                    free_bytes,
                }
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let path = std::path::Path::new("/etc/autotest/global_config.ini");
        Config::from_parts(path, text, std::iter::empty()).unwrap()
    }

    #[test]
    fn sqlite_and_a_local_results_host_are_watched_mysql_and_a_remote_one_not() {
        let local = config(
            "[AUTOTEST_WEB]\ndb_type: sqlite\ndatabase: /var/lib/autotest/db.sqlite\n[SCHEDULER]\nresults_host: localhost\nresults_dir: /srv/results\n",
        );
        assert_eq!(
            watched(&local),
            [
                ("database", PathBuf::from("/var/lib/autotest")),
                ("results", PathBuf::from("/srv/results"))
            ]
        );
        let remote = config(
            "[AUTOTEST_WEB]\ndb_type: mysql\nhost: db\ndatabase: autotest\nuser: a\npassword: b\n[SCHEDULER]\nresults_host: results.lab\n",
        );
        assert!(watched(&remote).is_empty());
    }
}
