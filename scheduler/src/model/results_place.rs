//! Where a job's results are (`jobs.results_place`).

/// Where a job's results are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultsPlace {
    /// On the results host (or never written): `jobs.results_place` NULL.
    ResultsHost,
    /// Moved to `[SCHEDULER] archive_rsync`; read through `archive_host`.
    Archived,
    /// Deleted from the results host.
    Removed,
}

impl ResultsPlace {
    /// As stored (None: the results host) and shown (`results-host`).
    pub fn stored(self) -> Option<&'static str> {
        match self {
            ResultsPlace::ResultsHost => None,
            ResultsPlace::Archived => Some("archived"),
            ResultsPlace::Removed => Some("removed"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.stored().unwrap_or("results-host")
    }

    /// From `jobs.results_place`; an unknown value counts as on the results host.
    pub fn from_stored(value: Option<&str>) -> Self {
        match value {
            Some("archived") => ResultsPlace::Archived,
            Some("removed") => ResultsPlace::Removed,
            _ => ResultsPlace::ResultsHost,
        }
    }
}
