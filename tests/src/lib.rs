//! Shared helpers for the end-to-end tests: each test builds its own world (a RabbitMQ
//! vhost, a database, temp directories), runs the real scheduler and workers against
//! it, and tears it all down, checking that nothing was left on the broker.
//!
//! `AUTOTEST_TEST_DB` picks the database (`sqlite`, the default, or `mysql`, using
//! `AUTOTEST_TEST_MYSQL_URL`, default `mysql://autotest_test:autotest_test@127.0.0.1:3306`).
//! `AUTOTEST_TEST_RABBITMQ_API` is the management API (default
//! `http://guest:guest@127.0.0.1:15672`).
#![forbid(unsafe_code)]

pub mod broker;
pub mod browser;
pub mod certs;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod smtp;
pub mod sshd;
pub mod tmpfs;
pub mod world;

pub use world::{World, WorldBuilder};

use std::path::PathBuf;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary built by `cargo build --workspace --bins` (deploy/test.sh does it first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let here = exe.parent().expect("executable directory");
    // Test binaries live in target/<profile>/deps, tools in target/<profile>.
    let dir = if here.ends_with("deps") {
        here.parent().expect("target/<profile>")
    } else {
        here
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (deploy/test.sh does)",
        path.display()
    );
    path
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Python virtual environment with avocado-framework 113 and pytest that
/// `deploy/test.sh` makes (`$AUTOTEST_TEST_VENV`, default `target/harness-venv`).
pub fn harness_venv() -> PathBuf {
    let venv = std::env::var_os("AUTOTEST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/harness-venv"));
    assert!(
        venv.join("bin/avocado").is_file() && venv.join("bin/pytest").is_file(),
        "no avocado and pytest in {}: deploy/test.sh makes it (or set AUTOTEST_TEST_VENV)",
        venv.display()
    );
    venv
}
