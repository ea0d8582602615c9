//! What the scheduler and the drone worker must agree on: the wire protocol, the
//! broker's names and topology, the configuration file, validated names, tracing and
//! shutdown. Nothing here knows about the database or about running Autoserv.
#![forbid(unsafe_code)]

pub mod broker;
pub mod config;
pub mod names;
pub mod protocol;
pub mod results_http;
pub mod shutdown;
pub mod telemetry;
pub mod time;

/// This machine's name as the kernel has it (for connection names and default drone
/// names).
pub fn hostname() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_string())
}

/// This build's version, sent in every message's `sender_version` for operators' logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
