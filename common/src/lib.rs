//! What the scheduler and the drone worker must agree on: the wire protocol, the
//! broker's names and topology, the configuration file, validated names, tracing and
//! shutdown. Nothing here knows about the database or about running Autoserv.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod broker;
pub mod config;
pub mod disk;
pub mod metrics;
pub mod names;
pub mod protocol;
pub mod results_http;
pub mod shutdown;
pub mod telemetry;
pub mod test_report;
pub mod text;
pub mod time;
pub mod tls;

/// This machine's name as the kernel has it (for connection names and default drone
/// names).
pub fn hostname() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_string())
}

/// What [`percent_encode`] leaves as it is: RFC 3986's unreserved characters
/// (letters, digits and `-._~`); everything else becomes `%XX`.
pub const URL_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes bytes for one component of a URL (a user name, a password, a path
/// segment): see [`URL_COMPONENT`].
pub fn percent_encode(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, URL_COMPONENT).to_string()
}

/// This build's version, sent in every message's `sender_version` for operators' logs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encode_keeps_only_unreserved_characters() {
        assert_eq!(super::percent_encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(
            super::percent_encode("127.0.0.1:5 -> p@ss/w%rd é".as_bytes()),
            "127.0.0.1%3A5%20-%3E%20p%40ss%2Fw%25rd%20%C3%A9"
        );
    }
}
