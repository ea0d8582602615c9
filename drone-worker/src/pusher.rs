//! Pushing results directories to the results host with rsync, batched: every entry
//! that finishes while an rsync is running goes into the next one, so a busy drone pays
//! one rsync start-up for many entries instead of one each. A batch that fails is
//! split so one bad entry cannot hold back the others; failures are retried with
//! backoff and nothing is deleted on the drone.

use common::config::ResultsHost;
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
    done: oneshot::Sender<()>,
    /// Told why each failed try failed (the push goes on).
    failures: Option<mpsc::UnboundedSender<String>>,
}

impl Request {
    fn failed(&self, error: &str) {
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
    /// Starts the pusher task.
    pub fn start(target: PushTarget) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(push_loop(target, rx));
        Self { tx }
    }

    /// Pushes `<drone results>/<subdir>` to `<results_dir>/<subdir>`; returns once the
    /// results host has it. Retries until it succeeds.
    pub async fn push(&self, subdir: String) {
        self.push_watched(subdir, None).await
    }

    /// As [`Pusher::push`], telling `failures` why each failed try failed.
    pub async fn push_watched(
        &self,
        subdir: String,
        failures: Option<mpsc::UnboundedSender<String>>,
    ) {
        let (done, wait) = oneshot::channel();
        let request = Request {
            subdir,
            done,
            failures,
        };
        if self.tx.send(request).is_err() {
            return;
        }
        let _ = wait.await;
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

    /// One rsync for all of `subdirs`.
    async fn rsync(&self, subdirs: &[&str]) -> Result<(), String> {
        if self.results_host == ResultsHost::Local {
            tokio::fs::create_dir_all(&self.results_dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", self.results_dir.display()))?;
        }
        let mut command = tokio::process::Command::new("rsync");
        // The supervisor's bookkeeping files stay on the drone.
        command.args(["-a", "--relative", "--mkpath", "--exclude=.autoserv-*"]);
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
        let output = command
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run rsync: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "rsync exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
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
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./:@,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

async fn push_loop(target: PushTarget, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut pending: Vec<Request> = Vec::new();
    let mut backoff = Duration::from_millis(200);
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
                let _ = request.done.send(());
            }
            continue;
        }
        let subdirs: Vec<&str> = pending.iter().map(|r| r.subdir.as_str()).collect();
        match target.rsync(&subdirs).await {
            Ok(()) => {
                tracing::debug!(entries = pending.len(), "results pushed");
                for request in pending.drain(..) {
                    let _ = request.done.send(());
                }
                backoff = Duration::from_millis(200);
            }
            Err(error) if pending.len() > 1 => {
                tracing::warn!(%error, entries = pending.len(), "batched push failed, pushing entries one by one");
                let mut failed = Vec::new();
                for request in pending.drain(..) {
                    match target.rsync(&[request.subdir.as_str()]).await {
                        Ok(()) => {
                            let _ = request.done.send(());
                        }
                        Err(error) => {
                            tracing::warn!(%error, results = %request.subdir, "push failed, will retry");
                            request.failed(&error);
                            failed.push(request);
                        }
                    }
                }
                pending = failed;
                if !pending.is_empty() {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(target.retry_max);
                }
            }
            Err(error) => {
                tracing::warn!(%error, results = %pending[0].subdir, retry_in = ?backoff, "push failed, will retry");
                for request in &pending {
                    request.failed(&error);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(target.retry_max);
            }
        }
    }
}
