//! Tracing set-up: `RUST_LOG` filters (default `info`), `AUTOTEST_LOG_FORMAT=json` for
//! JSON lines. Logs go to stderr so stdout stays for program output.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber for a binary.
pub fn init() {
    // lapin logs every channel the broker closes as an error, including the refusals
    // a least-privilege drone user expects (it may not declare the shared topology);
    // each of them also comes back to the caller, which logs what matters.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=warn,lapin::channel=off,amq_protocol=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("AUTOTEST_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// For tests: captured by the test harness, `RUST_LOG` still applies; safe to call twice.
pub fn init_for_test() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
