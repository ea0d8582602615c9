//! What a job leaves behind, read as test results: Autotest's status log (versions 1
//! and 0) with its keyval files, avocado's `results.json` and JUnit XML, all into one
//! model ([`TestResult`]). Every parser is bounded in what it reads and keeps, and a
//! broken input is an error or a cut result, never a panic.
#![forbid(unsafe_code)]

pub mod avocado;
pub mod dir;
pub mod glob;
pub mod junit;
pub mod keyval;
pub mod model;
pub mod status_log;

pub use dir::{parse, Options, Parsed, Parser};
pub use model::{Iteration, Status, TestResult};
