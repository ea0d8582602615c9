//! Waiting for an Autoserv this worker did not start or no longer hears from: the
//! supervisor's files say how it ended.

use std::path::Path;
use std::time::Duration;

/// Waits for an attempt whose supervisor this worker does not hear from (started
/// before a restart, or the supervisor is gone): Autoserv's exit status as the
/// supervisor recorded it, or -1 when both were killed before it could.
///
/// Autoserv's end and the supervisor's record of it are two steps: between them
/// Autoserv is a zombie or gone while `PREFIX.exit` is not written yet. So a gone
/// Autoserv without a status is given [`RECORD_GRACE`] for the supervisor to write
/// it before the end is taken as unknown (which fails the attempt or the task).
pub async fn wait_recovered(prefix: &Path) -> i32 {
    wait_recovered_within(prefix, RECORD_GRACE).await
}

/// How long a supervisor may take from Autoserv's end to its `PREFIX.exit` (it
/// reaps, then writes; a loaded machine can delay both).
pub const RECORD_GRACE: Duration = Duration::from_secs(10);

async fn wait_recovered_within(prefix: &Path, grace: Duration) -> i32 {
    let mut gone_since: Option<std::time::Instant> = None;
    loop {
        if let Some(code) = crate::supervise::recorded_exit(prefix) {
            return code;
        }
        if crate::supervise::recorded_pid(prefix).is_some_and(crate::supervise::is_alive) {
            gone_since = None;
        } else {
            let since = *gone_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= grace {
                tracing::warn!(
                    grace_secs = grace.as_secs_f64(),
                    "Autoserv is gone and its supervisor recorded no exit status"
                );
                return -1;
            }
        }
        tokio::time::sleep(Duration::from_millis(if gone_since.is_some() {
            50
        } else {
            200
        }))
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid of a process that has ended and been reaped.
    fn gone_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[tokio::test]
    async fn an_exit_recorded_after_autoserv_is_gone_is_waited_for_not_taken_as_unknown() {
        let temp = tempfile::tempdir().unwrap();
        let prefix = crate::supervise::prefix(temp.path(), 1);
        std::fs::write(crate::supervise::pid_file(&prefix), gone_pid().to_string()).unwrap();
        // The supervisor reaped Autoserv and writes its status a moment later.
        let exit = crate::supervise::exit_file(&prefix);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(exit, "3").unwrap();
        });
        assert_eq!(
            wait_recovered_within(&prefix, Duration::from_secs(30)).await,
            3,
            "the recorded status, not -1"
        );
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn an_autoserv_gone_without_a_status_past_the_grace_is_unknown() {
        let temp = tempfile::tempdir().unwrap();
        let prefix = crate::supervise::prefix(temp.path(), 1);
        std::fs::write(crate::supervise::pid_file(&prefix), gone_pid().to_string()).unwrap();
        assert_eq!(
            wait_recovered_within(&prefix, Duration::from_millis(100)).await,
            -1
        );
    }
}
