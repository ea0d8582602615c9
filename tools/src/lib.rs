//! The tools that run the real programs under load and under faults: `bench` and
//! `scale_bench` (behind `deploy/bench.sh`), `chaos` (behind `deploy/chaos.sh`) and
//! `broker_floor`. They use the end-to-end tests' helpers (`autotest_tests`) for the
//! broker, the sshd and the built binaries.
#![forbid(unsafe_code)]

pub mod bench;
pub mod benchkit;
pub mod chaos;
pub mod floor;
pub mod lab;
pub mod lists_bench;
pub mod options;
pub mod pages_bench;
pub mod retry;
pub mod scale;
pub mod system;
