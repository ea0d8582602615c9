//! The HTTP API's request and response bodies, from the `api` package (shared with
//! `atest`); `api_map` turns the model's rows into them.

pub use ::api::{
    AbortJob, ChangeLabels, CreateHost, CreateJob, DroneSetView, DroneView, EntryView, ErrorBody,
    HistoryView, HostPage, HostView, JobCreated, JobPage, JobQuery, JobSummary, JobView, LabelView,
    LockHost, ManifestView, ResultsMoved, SetCapacity,
};
