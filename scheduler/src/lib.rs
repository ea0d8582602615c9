//! The Autotest scheduler: stores jobs in SQL, dispatches their entries to drones over
//! RabbitMQ, records what the drones report, and serves the HTTP API `atest` uses.
#![forbid(unsafe_code)]

pub mod api;
pub mod db;
