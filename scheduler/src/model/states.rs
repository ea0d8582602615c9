//! The states of entries, hosts, jobs and drones. Each is stored (or shown) as the
//! same text Autotest uses, so the database holds plain strings and needs no
//! migration; reading an unknown string is an error, never a guess.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

/// A stored state that no variant spells.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

/// Declares a state enum stored as text: `as_str`, `FromStr`, `Display`, serde and
/// diesel's `Text` on both backends.
macro_rules! text_state {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored and shown for this state.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;
            fn from_str(value: &str) -> Result<Self, UnknownState> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, value: value.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl<DB> ToSql<Text, DB> for $name
        where
            DB: Backend,
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB> FromSql<Text, DB> for $name
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let text = String::from_sql(bytes)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_state! {
    /// The state of a host-queue entry (one host's part of a job).
    EntryStatus, "entry status" {
        Queued => "Queued",
        /// An entry of a synchronous job holding its host until its group is complete.
        Pending => "Pending",
        /// Dispatched: published to its drone, not yet reported running.
        Starting => "Starting",
        Running => "Running",
        /// Autoserv ended; the drone is pushing the results.
        Gathering => "Gathering",
        Completed => "Completed",
        Failed => "Failed",
        Aborted => "Aborted",
    }
}

impl EntryStatus {
    /// An entry in one of these states occupies a drone slot.
    pub const fn is_on_drone(self) -> bool {
        matches!(self, Self::Starting | Self::Running)
    }

    /// An entry in one of these states is held by a drone (its host is busy).
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Gathering)
    }

    /// Nothing changes an entry in a final state.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Aborted)
    }

    /// Waiting for a drone (alone or with its synchronous group).
    pub const fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::Pending)
    }
}

text_state! {
    /// The state of a host (Autotest's names).
    HostStatus, "host status" {
        Ready => "Ready",
        Verifying => "Verifying",
        Repairing => "Repairing",
        Cleaning => "Cleaning",
        /// Out of service (and locked) until `atest host repair` passes or `host unlock`.
        RepairFailed => "Repair Failed",
        /// Held for a synchronous group that is not complete yet.
        Pending => "Pending",
        Running => "Running",
    }
}

text_state! {
    /// A job's status, summed up from its entries (see [`JobStatus::of`]).
    JobStatus, "job status" {
        Queued => "Queued",
        Running => "Running",
        Completed => "Completed",
        Failed => "Failed",
        Aborted => "Aborted",
    }
}

impl JobStatus {
    /// A job's status from its entries' statuses: Queued while every entry waits;
    /// once all are final, Aborted if any was aborted, else Failed if any failed, else
    /// Completed; Running in between.
    pub fn of(entries: impl IntoIterator<Item = EntryStatus>) -> Self {
        let mut all_waiting = true;
        let mut all_final = true;
        let (mut aborted, mut failed) = (false, false);
        for status in entries {
            all_waiting &= status.is_waiting();
            all_final &= status.is_final();
            aborted |= status == EntryStatus::Aborted;
            failed |= status == EntryStatus::Failed;
        }
        match (all_waiting, all_final) {
            (true, _) => Self::Queued,
            (false, true) if aborted => Self::Aborted,
            (false, true) if failed => Self::Failed,
            (false, true) => Self::Completed,
            (false, false) => Self::Running,
        }
    }
}

text_state! {
    /// A drone's status as operators see it.
    DroneStatus, "drone status" {
        Ok => "ok",
        /// Disabled by an operator, with nothing running.
        Disabled => "disabled",
        /// Disabled by an operator, finishing what it runs.
        Draining => "draining",
        /// No heartbeat within the lease.
        Lost => "lost",
        /// Its worker said it is shutting down.
        Stopping => "stopping",
        /// Enabled and alive, but its results filesystem is below its `[DRONE]
        /// min_free_mb`: it finishes what it runs and takes nothing new until a
        /// heartbeat says it has room again.
        LowDisk => "low-disk",
    }
}

impl DroneStatus {
    /// What a drone is, from whether it is `enabled`, `alive` (heartbeat within the
    /// lease), `stopping` and `low_disk` (its worker said so) and how many entries it
    /// is `running`. The first reason it takes no new work wins: lost (what it last
    /// said is stale), stopping (it is going away), disabled or draining (an
    /// operator's decision, whatever its disk), then low-disk, the only state it
    /// leaves by itself. The free space is shown beside the status in every case.
    pub fn of(enabled: bool, alive: bool, stopping: bool, low_disk: bool, running: i64) -> Self {
        match (enabled, alive) {
            (_, false) => Self::Lost,
            _ if stopping => Self::Stopping,
            (false, true) if running > 0 => Self::Draining,
            (false, true) => Self::Disabled,
            (true, true) if low_disk => Self::LowDisk,
            (true, true) => Self::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntryStatus::*;

    #[test]
    fn every_state_reads_back_from_its_stored_text() {
        for state in EntryStatus::ALL {
            assert_eq!(state.as_str().parse::<EntryStatus>(), Ok(*state));
        }
        for state in HostStatus::ALL {
            assert_eq!(state.as_str().parse::<HostStatus>(), Ok(*state));
        }
        assert_eq!("Repair Failed".parse(), Ok(HostStatus::RepairFailed));
    }

    #[test]
    fn an_unknown_stored_state_is_an_error_that_names_it() {
        let error = "Parsing".parse::<EntryStatus>().unwrap_err();
        assert_eq!(error.to_string(), "unknown entry status \"Parsing\"");
    }

    #[test]
    fn states_serialize_as_their_stored_text() {
        assert_eq!(
            serde_json::to_string(&HostStatus::RepairFailed).unwrap(),
            "\"Repair Failed\""
        );
        assert_eq!(
            serde_json::from_str::<EntryStatus>("\"Gathering\"").unwrap(),
            Gathering
        );
    }

    #[test]
    fn a_job_sums_up_its_entries() {
        assert_eq!(JobStatus::of([Queued, Queued]), JobStatus::Queued);
        assert_eq!(JobStatus::of([Queued, Pending]), JobStatus::Queued);
        assert_eq!(JobStatus::of([Queued, Completed]), JobStatus::Running);
        assert_eq!(JobStatus::of([Gathering]), JobStatus::Running);
        assert_eq!(JobStatus::of([Completed, Completed]), JobStatus::Completed);
        assert_eq!(JobStatus::of([Completed, Failed]), JobStatus::Failed);
        assert_eq!(JobStatus::of([Aborted, Failed]), JobStatus::Aborted);
        assert_eq!(JobStatus::of([]), JobStatus::Queued);
    }

    #[test]
    fn a_drone_without_a_heartbeat_is_lost_whatever_else() {
        use DroneStatus as D;
        assert_eq!(D::of(true, false, true, true, 3), D::Lost);
        assert_eq!(D::of(true, true, true, true, 3), D::Stopping);
        assert_eq!(D::of(false, true, false, false, 3), D::Draining);
        assert_eq!(D::of(false, true, false, false, 0), D::Disabled);
        assert_eq!(D::of(true, true, false, false, 0), D::Ok);
    }

    #[test]
    fn low_disk_shows_only_when_nothing_else_keeps_the_drone_from_work() {
        use DroneStatus as D;
        assert_eq!(D::of(true, true, false, true, 0), D::LowDisk);
        assert_eq!(D::of(true, true, false, true, 2), D::LowDisk);
        assert_eq!(D::of(true, false, false, true, 0), D::Lost);
        assert_eq!(D::of(true, true, true, true, 0), D::Stopping);
        assert_eq!(D::of(false, true, false, true, 2), D::Draining);
        assert_eq!(D::of(false, true, false, true, 0), D::Disabled);
        assert_eq!(D::LowDisk.as_str(), "low-disk");
        assert_eq!("low-disk".parse(), Ok(D::LowDisk));
    }

    #[test]
    fn slots_and_holding_follow_autotest() {
        assert!(Starting.is_on_drone() && Running.is_on_drone() && !Gathering.is_on_drone());
        assert!(Gathering.is_active() && !Queued.is_active());
        assert!(Aborted.is_final() && !Gathering.is_final());
    }
}
