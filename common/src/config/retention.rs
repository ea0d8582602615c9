//! How long results are kept where: `[DRONE] keep_pushed_hours` (a drone's copy of
//! results the results host has and has verified), and on the results host
//! `[SCHEDULER] archive_after_days`, `delete_after_days`, `archive_rsync`,
//! `archive_ssh_options` and `retention_pass_sec`.

use super::raw::{positive, Raw};
use super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

/// Where finished jobs' results are moved to (`[SCHEDULER] archive_rsync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveRsync {
    /// A directory on this machine.
    Local(PathBuf),
    /// `[user@]host:/path`, over SSH.
    Remote { host: String, path: PathBuf },
}

impl ArchiveRsync {
    /// rsync's destination for the archive's top directory (ending in `/`).
    pub fn destination(&self) -> String {
        match self {
            ArchiveRsync::Local(path) => format!("{}/", path.display()),
            ArchiveRsync::Remote { host, path } => format!("{host}:{}/", path.display()),
        }
    }

    /// As the key is written.
    pub fn as_text(&self) -> String {
        match self {
            ArchiveRsync::Local(path) => path.display().to_string(),
            ArchiveRsync::Remote { host, path } => format!("{host}:{}", path.display()),
        }
    }
}

/// Retention of results on drones and on the results host.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// `[DRONE] keep_pushed_hours` (default 24; 0 removes at once): how long a drone
    /// keeps an entry's results after the results host's copy was verified.
    pub keep_pushed: Duration,
    /// `[SCHEDULER] archive_after_days`: a finished job's results move to the archive
    /// this long after the job ended; None (absent or blank): never.
    pub archive_after: Option<Duration>,
    /// `[SCHEDULER] delete_after_days`: a finished job's results are removed from the
    /// results host this long after the job ended; None (absent or blank): never.
    pub delete_after: Option<Duration>,
    /// `[SCHEDULER] archive_rsync`: where archived results go (`[user@]host:/path` or
    /// an absolute local path); None: results cannot be archived.
    pub archive_rsync: Option<ArchiveRsync>,
    /// `[SCHEDULER] archive_ssh_options`: extra options for `ssh` to the archive.
    pub archive_ssh_options: Vec<String>,
    /// `[SCHEDULER] retention_pass_sec` (default 3600): the longest wait between two
    /// passes over finished jobs.
    pub pass: Duration,
}

/// A number of hours or days (fractions allowed) as a duration; `allow_zero` lets 0 be
/// given.
fn span(v: &str, unit_secs: f64, allow_zero: bool) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(n) if n.is_finite() && (n > 0.0 || (allow_zero && n == 0.0)) => {
            Duration::try_from_secs_f64(n * unit_secs)
                .map_err(|_| format!("expected a number, got {v:?}"))
        }
        _ if allow_zero => Err(format!("expected a number (0 or more), got {v:?}")),
        _ => Err(format!("expected a positive number, got {v:?}")),
    }
}

/// `[user@]host:/path` or `/path`.
pub(super) fn archive_rsync(v: &str) -> Result<ArchiveRsync, String> {
    if v.starts_with('/') {
        return Ok(ArchiveRsync::Local(PathBuf::from(v)));
    }
    let usage = || format!("expected [user@]host:/path or an absolute local path, got {v:?}");
    let (host, path) = v.split_once(':').ok_or_else(usage)?;
    if !path.starts_with('/') {
        return Err(usage());
    }
    let (user, name) = match host.split_once('@') {
        Some((user, name)) => (Some(user), name),
        None => (None, host),
    };
    let user_ok = |u: &str| {
        !u.is_empty()
            && !u.starts_with('-')
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if user.is_some_and(|u| !user_ok(u)) {
        return Err(usage());
    }
    crate::names::HostName::new(name).map_err(|e| format!("{e} in {v:?}"))?;
    Ok(ArchiveRsync::Remote {
        host: host.to_string(),
        path: PathBuf::from(path),
    })
}

pub(super) fn retention(raw: &mut Raw) -> Result<RetentionConfig, ConfigError> {
    let (sched, drone) = ("SCHEDULER", "DRONE");
    let day = 86_400.0;
    let archive_rsync = raw.parsed(sched, "archive_rsync", None, |v| archive_rsync(v).map(Some))?;
    let has_archive = archive_rsync.is_some();
    Ok(RetentionConfig {
        keep_pushed: raw.parsed(
            drone,
            "keep_pushed_hours",
            Duration::from_secs(86_400),
            |v| span(v, 3600.0, true),
        )?,
        archive_after: raw.parsed(sched, "archive_after_days", None, |v| {
            if !has_archive {
                return Err(
                    "archive_after_days needs [SCHEDULER] archive_rsync, where archived results go"
                        .into(),
                );
            }
            span(v, day, false).map(Some)
        })?,
        delete_after: raw.parsed(sched, "delete_after_days", None, |v| {
            span(v, day, false).map(Some)
        })?,
        archive_rsync,
        archive_ssh_options: raw.parsed(sched, "archive_ssh_options", Vec::new(), |v| {
            shlex::split(v).ok_or_else(|| "unbalanced quotes".to_string())
        })?,
        pass: raw.parsed(
            sched,
            "retention_pass_sec",
            Duration::from_secs(3600),
            |v| positive(v).map(|n| Duration::from_secs(u64::from(n))),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_take_fractions_and_refuse_what_is_not_a_duration() {
        assert_eq!(span("24", 3600.0, true), Ok(Duration::from_secs(86_400)));
        assert_eq!(span("0", 3600.0, true), Ok(Duration::ZERO));
        assert_eq!(
            span("0.5", 86_400.0, false),
            Ok(Duration::from_secs(43_200))
        );
        for bad in ["-1", "x", "NaN", "inf", ""] {
            assert!(span(bad, 3600.0, true).is_err(), "{bad}");
        }
        assert!(
            span("0", 86_400.0, false).is_err(),
            "0 days is not a period"
        );
    }

    #[test]
    fn an_archive_is_a_local_path_or_an_ssh_destination() {
        assert_eq!(
            archive_rsync("/srv/archive"),
            Ok(ArchiveRsync::Local("/srv/archive".into()))
        );
        let remote = archive_rsync("backup@arch1.lab:/srv/a").unwrap();
        assert_eq!(
            remote,
            ArchiveRsync::Remote {
                host: "backup@arch1.lab".into(),
                path: "/srv/a".into()
            }
        );
        assert_eq!(remote.destination(), "backup@arch1.lab:/srv/a/");
        for bad in [
            "relative/path",
            "arch1:relative",
            "-oProxyCommand=x:/a",
            "-u@arch1:/a",
            "a b:/x",
            "arch1",
        ] {
            assert!(archive_rsync(bad).is_err(), "{bad}");
        }
    }
}
