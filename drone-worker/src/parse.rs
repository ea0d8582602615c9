//! The tests in an entry's results, parsed after Autoserv exits and before the push
//! (Autotest's TKO parser, run on the drone as its deployment guide advises, but
//! without database credentials here: the tests travel in the final report). The
//! parse is bounded in time, memory and output (see the `tko` package); its result
//! waits in the journal directory until the Finished report is confirmed, so a worker
//! restarted in between sends the same tests.

use common::config::DroneConfig;
use common::protocol::StatusEvent;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the parse of one attempt found, as kept on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Parsed {
    pub tests: Vec<tko::TestResult>,
    pub dropped: u64,
    pub parse_error: Option<String>,
}

/// How long one parse may take.
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// The parse options `[DRONE]` gives.
fn options(config: &DroneConfig) -> tko::Options {
    tko::Options {
        parsers: config.parsers.clone(),
        junit_globs: config.junit_globs.clone(),
        max_tests: config.max_parsed_tests,
        time_limit: TIME_LIMIT,
        ..tko::Options::default()
    }
}

/// Parses `results` and keeps what it found in `out` (written whole or not at all),
/// counting in `errors` a parse that met an error or failed. Nothing is parsed when
/// `[DRONE] parsers` is `none`. An error is returned only when what was found could
/// not be kept (the caller judges a full disk); it is logged by the caller.
pub(crate) async fn parse(
    config: &DroneConfig,
    results: PathBuf,
    out: PathBuf,
    errors: &prometheus_client::metrics::counter::Counter,
) -> std::io::Result<()> {
    if config.parsers.is_empty() {
        return Ok(());
    }
    let options = options(config);
    let started = std::time::Instant::now();
    let done = tokio::task::spawn_blocking(move || {
        let found = tko::parse(&results, &options);
        let parsed = Parsed {
            parse_error: found.error_line(),
            dropped: found.dropped,
            tests: found.tests,
        };
        write(&out, &parsed).map(|()| parsed)
    })
    .await;
    if !matches!(&done, Ok(Ok(parsed)) if parsed.parse_error.is_none()) {
        errors.inc();
    }
    match done {
        Ok(Ok(parsed)) => {
            tracing::info!(
                tests = parsed.tests.len(),
                dropped = parsed.dropped,
                parse_error = parsed.parse_error.as_deref().unwrap_or(""),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "results parsed"
            );
            Ok(())
        }
        // Not reported: the tests are left out.
        Ok(Err(error)) => Err(error),
        Err(error) => {
            tracing::error!(%error, "the results parser failed; no tests will be reported");
            Ok(())
        }
    }
}

fn write(path: &Path, parsed: &Parsed) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(parsed).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

/// The `tests` events for what was parsed into `path`; none when nothing was parsed
/// or the parse found nothing to tell (no test, no error), so such a job costs no
/// report more than before.
pub(crate) fn events(path: &Path, entry_id: i64, attempt: i32) -> Vec<StatusEvent> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    match serde_json::from_slice::<Parsed>(&bytes) {
        Ok(parsed)
            if parsed.tests.is_empty() && parsed.dropped == 0 && parsed.parse_error.is_none() =>
        {
            Vec::new()
        }
        Ok(parsed) => common::test_report::parts(
            entry_id,
            attempt,
            parsed.tests,
            parsed.dropped,
            parsed.parse_error,
        ),
        Err(error) => common::test_report::parts(
            entry_id,
            attempt,
            Vec::new(),
            0,
            Some(format!(
                "the parsed tests kept on the drone are unreadable: {error}"
            )),
        ),
    }
}

/// Forgets what was parsed once it has been reported.
pub(crate) fn forget(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(%error, file = %path.display(), "cannot remove the parsed tests");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_that_found_nothing_sends_nothing_and_anything_else_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parsed.json");
        assert!(events(&path, 1, 1).is_empty(), "nothing parsed");
        write(&path, &Parsed::default()).unwrap();
        assert!(events(&path, 1, 1).is_empty(), "nothing found");
        let error = Parsed {
            parse_error: Some("status.log: not a regular file".into()),
            ..Parsed::default()
        };
        write(&path, &error).unwrap();
        assert_eq!(events(&path, 1, 1).len(), 1);
        let found = Parsed {
            tests: vec![tko::TestResult::new("t", tko::Status::Good)],
            ..Parsed::default()
        };
        write(&path, &found).unwrap();
        assert_eq!(events(&path, 1, 1).len(), 1);
    }
}
