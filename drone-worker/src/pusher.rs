//! Pushing results directories to the results host with rsync, batched: every entry
//! that finishes while an rsync is running goes into the next one, so a busy drone pays
//! one rsync start-up for many entries instead of one each. A batch that fails is
//! split so one bad entry cannot hold back the others; failures are retried with
//! backoff; the pusher deletes nothing (see [`crate::retention`]). A directory with a
//! manifest (see [`crate::manifest`]) counts as pushed only once its copy matches the
//! manifest; a copy that does not is pushed again with contents compared.

use crate::manifest::Manifest;
use crate::metrics::PushCounts;
use common::backoff::Backoff;
use common::config::ResultsHost;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where and how to push.
#[derive(Clone, Debug)]
pub struct PushTarget {
    pub drone_results: PathBuf,
    pub results_host: ResultsHost,
    pub results_dir: PathBuf,
    pub ssh_options: Vec<String>,
    pub retry_max: Duration,
}

struct Request {
    subdir: String,
    /// The directory has a manifest to check the copy against.
    verify: bool,
    /// The last copy did not match: compare contents this time.
    checksum: bool,
    /// Told whether the copy was verified against the manifest.
    done: oneshot::Sender<bool>,
    /// Told why each failed try failed (the push goes on).
    failures: Option<mpsc::UnboundedSender<String>>,
}

impl Request {
    /// A try failed: counted, and told to whoever watches.
    fn failed(&self, error: &str, counts: &PushCounts) {
        counts.failures.inc();
        if let Some(failures) = &self.failures {
            let _ = failures.send(error.to_string());
        }
    }
}

/// Handle to the pusher task.
#[derive(Clone)]
pub struct Pusher {
    tx: mpsc::UnboundedSender<Request>,
}

impl Pusher {
    /// A pusher, and the task that pushes (for the caller to run), counting in
    /// `counts`: it ends once every handle is dropped.
    pub fn new(
        target: PushTarget,
        counts: PushCounts,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, push_loop(target, counts, rx))
    }

    /// Pushes `<drone results>/<subdir>` to `<results_dir>/<subdir>`; returns once the
    /// results host has it. Retries until it succeeds.
    pub async fn push(&self, subdir: String) {
        self.push_watched(subdir, false, None).await;
    }

    /// As [`Pusher::push`], for a directory with a manifest (`verify`: the push is
    /// done only when the copy matches it), telling `failures` why each failed try
    /// failed. True once the results host's copy (not this directory itself) was
    /// checked against the manifest and matched.
    pub async fn push_watched(
        &self,
        subdir: String,
        verify: bool,
        failures: Option<mpsc::UnboundedSender<String>>,
    ) -> bool {
        let (done, wait) = oneshot::channel();
        let request = Request {
            subdir,
            verify,
            checksum: false,
            done,
            failures,
        };
        if self.tx.send(request).is_err() {
            return false;
        }
        wait.await.unwrap_or(false)
    }
}

impl PushTarget {
    fn is_noop(&self) -> bool {
        self.results_host == ResultsHost::Local && same_dir(&self.drone_results, &self.results_dir)
    }

    fn destination(&self) -> String {
        let dir = self.results_dir.to_string_lossy();
        match &self.results_host {
            ResultsHost::Local => format!("{dir}/"),
            ResultsHost::Remote(host) => format!("{host}:{dir}/"),
        }
    }

    /// One rsync for all of `subdirs`; `checksum` compares contents, not only sizes
    /// and times. Returns the bytes of the files it copied.
    async fn rsync(&self, subdirs: &[&str], checksum: bool) -> Result<u64, String> {
        if self.results_host == ResultsHost::Local {
            tokio::fs::create_dir_all(&self.results_dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", self.results_dir.display()))?;
        }
        let extra: &[&str] = if checksum {
            &["--stats", "--no-human-readable", "--checksum"]
        } else {
            &["--stats", "--no-human-readable"]
        };
        let stats = self.run_rsync(subdirs, extra).await?;
        Ok(transferred_bytes(&stats))
    }

    /// Runs rsync for `subdirs` with `extra` options: its stdout, or why it failed.
    async fn run_rsync(&self, subdirs: &[&str], extra: &[&str]) -> Result<String, String> {
        let output = self
            .rsync_command(subdirs, extra)
            .output()
            .await
            .map_err(|e| format!("cannot run rsync: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "rsync exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn rsync_command(&self, subdirs: &[&str], extra: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("rsync");
        // The supervisor's bookkeeping files stay on the drone. Results are data:
        // devices, FIFOs and sockets are skipped, symlinks copied as links (never
        // followed), sparse files kept sparse.
        command.args([
            "-a",
            "--no-devices",
            "--no-specials",
            "--sparse",
            "--relative",
            "--mkpath",
            "--exclude=.autoserv-*",
        ]);
        command.args(extra);
        if let ResultsHost::Remote(_) = self.results_host {
            let mut ssh = vec!["ssh".to_string(), "-oBatchMode=yes".to_string()];
            ssh.extend(self.ssh_options.iter().cloned());
            let ssh: Vec<String> = ssh.iter().map(|a| shell_quote(a)).collect();
            command.arg("-e").arg(ssh.join(" "));
        }
        command.arg("--");
        for subdir in subdirs {
            command.arg(self.drone_results.join(".").join(subdir));
        }
        command.arg(self.destination());
        command.kill_on_drop(true);
        command
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// rsync's `-e` is split by rsync itself on spaces with shell-like quoting.
fn shell_quote(arg: &str) -> String {
    // Only a NUL byte cannot be quoted, and no argument can carry one anyway.
    shlex::try_quote(arg).map_or_else(|_| arg.replace('\0', ""), |quoted| quoted.into_owned())
}

/// The bytes of files an rsync copied, from its `--stats`: its "Total transferred
/// file size" (0 when it says nothing of it).
fn transferred_bytes(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|line| line.strip_prefix("Total transferred file size:"))
        .map(|rest| {
            rest.trim()
                .trim_end_matches("bytes")
                .trim()
                .replace(',', "")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn push_loop(
    target: PushTarget,
    counts: PushCounts,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let mut pending: Vec<Request> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(200), target.retry_max);
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(request) => pending.push(request),
                None => return,
            }
        }
        while let Ok(request) = rx.try_recv() {
            pending.push(request);
        }
        if target.is_noop() {
            for request in pending.drain(..) {
                counts.pushes.inc();
                // The results host's directory is this one: nothing was checked.
                let _ = request.done.send(false);
            }
            continue;
        }
        pending = target
            .push_batch(std::mem::take(&mut pending), &counts)
            .await;
        if pending.is_empty() {
            backoff.reset();
        } else {
            backoff.wait().await;
        }
    }
}

impl PushTarget {
    /// One push of `batch`, checked against the manifests; returns what is still to
    /// do. A batch whose rsync fails is split so one bad entry cannot hold back the
    /// others.
    async fn push_batch(&self, batch: Vec<Request>, counts: &PushCounts) -> Vec<Request> {
        let checksum = batch.iter().any(|r| r.checksum);
        let subdirs: Vec<&str> = batch.iter().map(|r| r.subdir.as_str()).collect();
        let mut failed = Vec::new();
        let copied = match self.rsync(&subdirs, checksum).await {
            Ok(bytes) => {
                counts.bytes.inc_by(bytes);
                batch
            }
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, entries = batch.len(), "batched push failed, pushing entries one by one");
                let mut copied = Vec::new();
                for request in batch {
                    match self
                        .rsync(&[request.subdir.as_str()], request.checksum)
                        .await
                    {
                        Ok(bytes) => {
                            counts.bytes.inc_by(bytes);
                            copied.push(request)
                        }
                        Err(error) => {
                            tracing::warn!(%error, results = %request.subdir, "push failed, will retry");
                            request.failed(&error, counts);
                            failed.push(request);
                        }
                    }
                }
                copied
            }
            Err(error) => {
                tracing::warn!(%error, results = %batch[0].subdir, "push failed, will retry");
                for request in &batch {
                    request.failed(&error, counts);
                }
                return batch;
            }
        };
        let (mismatches, checked) = self.check(&copied).await;
        for mut request in copied {
            match mismatches.get(&request.subdir) {
                None => {
                    tracing::debug!(results = %request.subdir, "results pushed");
                    counts.pushes.inc();
                    let verified = checked.contains(&request.subdir);
                    let _ = request.done.send(verified);
                }
                Some(problem) => {
                    let error = format!("the copy on the results host does not match the manifest ({problem}); pushing again, comparing contents");
                    tracing::warn!(results = %request.subdir, %error);
                    request.failed(&error, counts);
                    // rsync's quick check (size and time) passed these files over.
                    request.checksum = true;
                    // A process of the job that outlived it may have changed the
                    // drone's files since: the manifest follows what is pushed now.
                    let dir = self.drone_results.join(&request.subdir);
                    if let Ok(Err(error)) =
                        tokio::task::spawn_blocking(move || Manifest::write(&dir)).await
                    {
                        tracing::warn!(%error, results = %request.subdir, "cannot rewrite the manifest");
                    }
                    failed.push(request);
                }
            }
        }
        failed
    }

    /// Checks the pushed copies of the requests that carry a manifest: what is wrong
    /// with each copy that does not match. A local results directory is checked
    /// against the manifest's SHA-256 sums; a remote one by rsync comparing checksums
    /// of both sides (the drone's key may run nothing but rsync there). Also returns
    /// which were checked (had a readable manifest).
    async fn check(&self, copied: &[Request]) -> (HashMap<String, String>, HashSet<String>) {
        let checked: Vec<(String, Manifest)> = copied
            .iter()
            .filter(|r| r.verify)
            .filter_map(|r| {
                Manifest::read(&self.drone_results.join(&r.subdir))
                    .map_err(|error| tracing::warn!(%error, results = %r.subdir, "no manifest to check the copy against"))
                    .ok()
                    .map(|m| (r.subdir.clone(), m))
            })
            .collect();
        let names: HashSet<String> = checked.iter().map(|(s, _)| s.clone()).collect();
        if checked.is_empty() {
            return (HashMap::new(), names);
        }
        let mismatches = match &self.results_host {
            ResultsHost::Local => {
                let results_dir = self.results_dir.clone();
                let subdirs: Vec<String> = checked.iter().map(|(s, _)| s.clone()).collect();
                let checks = tokio::task::spawn_blocking(move || {
                    checked
                        .into_iter()
                        .filter_map(|(subdir, manifest)| {
                            let problems = manifest.check(&results_dir.join(&subdir));
                            (!problems.is_empty()).then(|| (subdir, describe(&problems)))
                        })
                        .collect()
                })
                .await;
                // A check that failed is no match: pushed again, compared.
                checks.unwrap_or_else(|error| {
                    subdirs
                        .into_iter()
                        .map(|s| (s, format!("cannot check the copy: {error}")))
                        .collect()
                })
            }
            ResultsHost::Remote(_) => {
                let subdirs: Vec<&str> = checked.iter().map(|(s, _)| s.as_str()).collect();
                match self.differences(&subdirs).await {
                    Ok(differing) => subdirs
                        .iter()
                        .filter_map(|subdir| {
                            let prefix = format!("{subdir}/");
                            let problems: Vec<String> = differing
                                .iter()
                                .filter(|path| path.starts_with(&prefix))
                                .map(|path| format!("{}: differs", &path[prefix.len()..]))
                                .collect();
                            (!problems.is_empty())
                                .then(|| (subdir.to_string(), describe(&problems)))
                        })
                        .collect(),
                    Err(error) => subdirs
                        .iter()
                        .map(|s| (s.to_string(), format!("cannot compare: {error}")))
                        .collect(),
                }
            }
        };
        (mismatches, names)
    }

    /// The files (paths relative to the drone's results directory) whose contents
    /// differ on the results host, by an rsync dry run comparing checksums.
    async fn differences(&self, subdirs: &[&str]) -> Result<Vec<String>, String> {
        let listing = self
            .run_rsync(subdirs, &["--checksum", "--dry-run", "--out-format=%i %n"])
            .await?;
        Ok(listing
            .lines()
            // `<f...` and `>f...`: a file that would be sent; attribute-only changes
            // (`.f..t...`) leave the contents alone.
            .filter(|line| line.starts_with('<') || line.starts_with('>'))
            .filter_map(|line| line.split_once(' ').map(|(_, path)| path.to_string()))
            .collect())
    }
}

/// The first problems of a copy, for a log line and `job show`.
fn describe(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    if more > 0 {
        format!(
            "{} file(s): {}, and {more} more",
            problems.len(),
            shown.join("; ")
        )
    } else {
        format!("{} file(s): {}", problems.len(), shown.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::transferred_bytes;

    #[test]
    fn the_bytes_copied_come_from_rsyncs_stats() {
        let stats = "\nNumber of files: 2 (reg: 1, dir: 1)\nTotal file size: 123456 bytes\nTotal transferred file size: 1234 bytes\nLiteral data: 1234 bytes\n";
        assert_eq!(transferred_bytes(stats), 1234);
        // Digits grouped, as rsync prints them unless told otherwise.
        assert_eq!(
            transferred_bytes("Total transferred file size: 1,234,567 bytes\n"),
            1_234_567
        );
        assert_eq!(transferred_bytes("sent 10 bytes  received 2 bytes\n"), 0);
    }
}
