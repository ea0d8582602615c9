//! The scheduler's domain model: the states of entries, hosts, jobs and drones, the
//! attempt key, and a job's special tasks. The database stores and returns these
//! types; the HTTP API maps them to its wire types. Nothing here does I/O.

mod attempt;
mod results_place;
mod states;
mod tasks;

pub use attempt::AttemptId;
pub use results_place::ResultsPlace;
pub use states::{DroneStatus, EntryStatus, HostStatus, JobStatus, UnknownState};
pub use tasks::TaskFlags;
