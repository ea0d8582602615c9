//! What `GET /metrics` of both programs shares: a registry in the Prometheus text
//! format (0.0.4, `promtool check metrics` reads it), the buckets of every latency
//! histogram, and the build's own metric. Each program keeps one registry, made at
//! start and held by what serves it; nothing here is global.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Buckets of every latency histogram, in seconds: from 10 ms to an hour.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];

/// A latency histogram with [`LATENCY_BUCKETS`] (a constructor a `Family` can hold).
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// `autotest_build_info{program, version}` = 1.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    program: String,
    version: String,
}

/// A registry holding `autotest_build_info` for `program`.
pub fn registry(program: &str) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "autotest_build",
        "The program and its version (always 1)",
        Info::new(Build {
            program: program.to_string(),
            version: crate::VERSION.to_string(),
        }),
    );
    registry
}

/// `registry` as the answer to `GET /metrics`.
pub fn respond(registry: &Registry) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn a_registry_reads_as_prometheus_text_with_help_type_and_total() {
        let mut registry = registry("tester");
        let counter = Counter::<u64>::default();
        registry.register("autotest_things", "Things done", counter.clone());
        counter.inc();
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# HELP autotest_things_total Things done.\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE autotest_things_total counter\n"),
            "{text}"
        );
        assert!(text.contains("autotest_things_total 1\n"), "{text}");
        let version = crate::VERSION;
        assert!(
            text.contains(&format!(
                "autotest_build_info{{program=\"tester\",version=\"{version}\"}} 1\n"
            )),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "not OpenMetrics: {text}");
    }

    #[test]
    fn latency_buckets_rise_from_ten_milliseconds_to_an_hour() {
        assert_eq!(LATENCY_BUCKETS[0], 0.01);
        assert_eq!(LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1], 3600.0);
        assert!(LATENCY_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
