//! The reads and writes of status intake, one trait method per statement, for each
//! backend's connection. A macro writes each impl once for both connections; it holds
//! queries only, never a rule (those are in `crate::intake`). MySQL reads the rows a
//! report is judged on `FOR UPDATE`.

pub(crate) use super::tests_store::TestWrites;
use crate::db::schema::{drones, entry_history, host_queue_entries as hqe, hosts, jobs};
use crate::db::{Cache, DbError, SqliteConn};
use crate::intake::{
    DroneSaid, EntryChanges, EntryRow, GroupSync, History, HostWrite, Member, OnDrone,
};
use crate::model::{AttemptId, EntryStatus, HostStatus, TaskFlags};
use common::names::{DroneName, HostName};
use common::protocol::ManifestSummary;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

/// Everything status intake does on a connection inside a transaction.
pub(crate) trait IntakeConn: Reads + EntryWrites + HostWrites + TestWrites {}

impl<C: Reads + EntryWrites + HostWrites + TestWrites> IntakeConn for C {}

/// An entry's row as selected: see [`EntryRow`].
type RawEntry = (
    i64,
    i32,
    EntryStatus,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i32,
    i32,
    Option<i32>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn entry_row(raw: RawEntry) -> Result<EntryRow, DbError> {
    let (id, attempt, status, drone, host_id, hostname, meta_label, aborted_on, retries) = (
        raw.0, raw.1, raw.2, raw.3, raw.4, raw.5, raw.6, raw.7, raw.8,
    );
    Ok(EntryRow {
        attempt: AttemptId::new(id, attempt),
        status,
        drone: drone.map(drone_name).transpose()?,
        host_id,
        hostname: hostname.map(host_name).transpose()?,
        metahost: meta_label.is_some(),
        abort_requested: aborted_on.is_some(),
        infra_retries: retries,
        job_tasks: TaskFlags::from_bits(raw.9),
        exit_code: raw.10,
        created_on: raw.11,
        started_on: raw.12,
        finished_on: raw.13,
        failure_kind: raw.14,
        failure_reason: raw.15,
    })
}

/// A name stored by the scheduler was validated when it came in.
fn drone_name(name: String) -> Result<DroneName, DbError> {
    DroneName::new(name).map_err(|e| DbError::Invalid(e.to_string()))
}

fn host_name(name: String) -> Result<HostName, DbError> {
    HostName::new(name).map_err(|e| DbError::Invalid(e.to_string()))
}

fn member((id, host_id, hostname, meta_label): MemberRaw) -> Result<Member, DbError> {
    Ok(Member {
        id,
        host_id,
        hostname: hostname.map(host_name).transpose()?,
        metahost: meta_label.is_some(),
    })
}

type MemberRaw = (i64, Option<i64>, Option<String>, Option<i64>);

/// The entry columns a transition sets; `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = hqe)]
struct EntrySet<'a> {
    status: Option<EntryStatus>,
    started_on: Option<Option<i64>>,
    exit_code: Option<Option<i32>>,
    finished_on: Option<Option<i64>>,
    failure_kind: Option<Option<&'a str>>,
    failure_reason: Option<Option<&'a str>>,
    infra_retries: Option<i32>,
    avoid_drone: Option<Option<&'a str>>,
    drone: Option<Option<&'a str>>,
    dispatched_on: Option<Option<i64>>,
    host_id: Option<Option<i64>>,
    execution_subdir: Option<&'a str>,
}

impl<'a> From<&'a EntryChanges> for EntrySet<'a> {
    fn from(changes: &'a EntryChanges) -> Self {
        let undispatched = changes.undispatched;
        let released = changes.host_released;
        EntrySet {
            status: changes.status,
            started_on: changes.started_on,
            exit_code: changes.exit_code,
            finished_on: changes.finished_on,
            failure_kind: changes.failure_kind,
            failure_reason: changes.failure_reason.as_ref().map(Option::as_deref),
            infra_retries: changes.infra_retries,
            avoid_drone: changes.avoid_drone.as_ref().map(|d| Some(d.as_str())),
            drone: undispatched.then_some(None),
            dispatched_on: undispatched.then_some(None),
            host_id: released.then_some(None),
            execution_subdir: released.then_some(""),
        }
    }
}

/// Reads of the entries a report is judged on.
pub(crate) trait Reads {
    /// The entry with its job's tasks and its host's name.
    async fn entry(&mut self, id: i64) -> Result<Option<EntryRow>, DbError>;
    /// The other entries of the synchronous group `lead` leads.
    async fn members(&mut self, lead: i64) -> Result<Vec<Member>, DbError>;
    /// The entries `drone` holds by the database (Starting or Running, group leads
    /// and single entries).
    async fn on_drone(&mut self, drone: &DroneName) -> Result<Vec<OnDrone>, DbError>;
    /// The entries in Gathering on `drone` with an abort recorded.
    async fn aborted_gathering(&mut self, drone: &DroneName) -> Result<Vec<AttemptId>, DbError>;
}

/// Writes to entries and their history.
pub(crate) trait EntryWrites {
    /// Updates the entry where it is still as `row` says; false when it no longer is.
    async fn update_entry(
        &mut self,
        row: &EntryRow,
        changes: &EntryChanges,
    ) -> Result<bool, DbError>;
    /// Stores a results manifest on an entry and its group.
    async fn store_manifest(
        &mut self,
        entry: i64,
        manifest: ManifestSummary,
    ) -> Result<(), DbError>;
    /// The members of a group take their lead's state.
    async fn sync_group(&mut self, group: &GroupSync) -> Result<(), DbError>;
    /// A row of the entry's history, at `now`.
    async fn record(&mut self, history: &History, now: i64) -> Result<(), DbError>;
    /// How many rows of `event` the entry's history holds.
    async fn history_count(&mut self, entry: i64, event: &str) -> Result<i64, DbError>;
}

/// Writes to hosts and drones.
pub(crate) trait HostWrites {
    async fn write_host(&mut self, write: &HostWrite) -> Result<(), DbError>;
    /// A heartbeat's fields on its drone's row; `results_url` None leaves the row's
    /// URL as it is (the heartbeat's was ignored).
    async fn drone_heard(
        &mut self,
        drone: &DroneName,
        results_url: Option<Option<&str>>,
        said: &DroneSaid,
    ) -> Result<(), DbError>;
    /// The drone was heard from at `now` (the scheduler's clock).
    async fn alive(&mut self, drone: &str, now: i64) -> Result<(), DbError>;
}

/// [`Reads`] for one backend's connection; `$lock` is the locking read it has.
macro_rules! reads {
    ($conn:ty $(, $lock:ident)?) => {
        impl Reads for $conn {
            async fn entry(&mut self, id: i64) -> Result<Option<EntryRow>, DbError> {
                let raw: Option<RawEntry> = hqe::table
                    .inner_join(jobs::table)
                    .left_join(hosts::table)
                    .filter(hqe::id.eq(id))
                    .select((
                        hqe::id,
                        hqe::attempt,
                        hqe::status,
                        hqe::drone,
                        hqe::host_id,
                        hosts::hostname.nullable(),
                        hqe::meta_label_id,
                        hqe::aborted_on,
                        hqe::infra_retries,
                        jobs::tasks,
                        hqe::exit_code,
                        hqe::created_on,
                        hqe::started_on,
                        hqe::finished_on,
                        hqe::failure_kind,
                        hqe::failure_reason,
                    ))
                    $(.$lock())?
                    .cached()
                    .get_result(self)
                    .await
                    .optional()?;
                raw.map(entry_row).transpose()
            }

            async fn members(&mut self, lead: i64) -> Result<Vec<Member>, DbError> {
                let raw: Vec<MemberRaw> = hqe::table
                    .left_join(hosts::table)
                    .filter(hqe::group_lead_id.eq(lead))
                    .select((
                        hqe::id,
                        hqe::host_id,
                        hosts::hostname.nullable(),
                        hqe::meta_label_id,
                    ))
                    $(.$lock())?
                    .cached()
                    .load(self)
                    .await?;
                raw.into_iter().map(member).collect()
            }

            async fn on_drone(&mut self, drone: &DroneName) -> Result<Vec<OnDrone>, DbError> {
                let raw: Vec<(i64, i32, EntryStatus, Option<i64>)> = hqe::table
                    .filter(hqe::drone.eq(drone.as_str()))
                    .filter(hqe::status.eq_any([EntryStatus::Starting, EntryStatus::Running]))
                    .filter(hqe::group_lead_id.is_null())
                    .select((hqe::id, hqe::attempt, hqe::status, hqe::dispatched_on))
                    .cached()
                    .load(self)
                    .await?;
                Ok(raw
                    .into_iter()
                    .map(|(id, attempt, status, dispatched_on)| OnDrone {
                        attempt: AttemptId::new(id, attempt),
                        status,
                        dispatched_on,
                    })
                    .collect())
            }

            async fn aborted_gathering(
                &mut self,
                drone: &DroneName,
            ) -> Result<Vec<AttemptId>, DbError> {
                let raw: Vec<(i64, i32)> = hqe::table
                    .filter(hqe::drone.eq(drone.as_str()))
                    .filter(hqe::status.eq(EntryStatus::Gathering))
                    .filter(hqe::aborted_on.is_not_null())
                    .filter(hqe::group_lead_id.is_null())
                    .select((hqe::id, hqe::attempt))
                    .load(self)
                    .await?;
                Ok(raw
                    .into_iter()
                    .map(|(id, attempt)| AttemptId::new(id, attempt))
                    .collect())
            }
        }
    };
}

/// [`EntryWrites`] for one backend's connection.
macro_rules! entry_writes {
    ($conn:ty) => {
        impl EntryWrites for $conn {
            async fn update_entry(
                &mut self,
                row: &EntryRow,
                changes: &EntryChanges,
            ) -> Result<bool, DbError> {
                let updated = diesel::update(
                    hqe::table
                        .filter(hqe::id.eq(row.attempt.entry))
                        .filter(hqe::attempt.eq(row.attempt.attempt))
                        .filter(hqe::drone.eq(row.drone.as_ref().map(DroneName::as_str)))
                        .filter(hqe::status.eq(row.status)),
                )
                .set(EntrySet::from(changes))
                .cached()
                .execute(self)
                .await?;
                Ok(updated > 0)
            }

            async fn store_manifest(
                &mut self,
                entry: i64,
                manifest: ManifestSummary,
            ) -> Result<(), DbError> {
                diesel::update(
                    hqe::table.filter(hqe::id.eq(entry).or(hqe::group_lead_id.eq(entry))),
                )
                .set((
                    hqe::manifest_files.eq(manifest.files as i64),
                    hqe::manifest_bytes.eq(manifest.bytes as i64),
                ))
                .cached()
                .execute(self)
                .await?;
                Ok(())
            }

            async fn sync_group(&mut self, group: &GroupSync) -> Result<(), DbError> {
                let lead = &group.lead;
                diesel::update(hqe::table.filter(hqe::id.eq_any(&group.members)))
                    .set((
                        hqe::status.eq(lead.status),
                        hqe::exit_code.eq(lead.exit_code),
                        hqe::started_on.eq(lead.started_on),
                        hqe::finished_on.eq(lead.finished_on),
                        hqe::failure_kind.eq(&lead.failure_kind),
                        hqe::failure_reason.eq(&lead.failure_reason),
                        hqe::infra_retries.eq(lead.infra_retries),
                    ))
                    .execute(self)
                    .await?;
                if group.dissolve {
                    diesel::update(hqe::table.filter(hqe::id.eq_any(&group.members)))
                        .set((
                            hqe::drone.eq(None::<String>),
                            hqe::group_lead_id.eq(None::<i64>),
                            hqe::dispatched_on.eq(None::<i64>),
                        ))
                        .execute(self)
                        .await?;
                    diesel::update(hqe::table.filter(hqe::id.eq_any(&group.release_hosts)))
                        .set((hqe::host_id.eq(None::<i64>), hqe::execution_subdir.eq("")))
                        .execute(self)
                        .await?;
                }
                if !group.free_hosts.is_empty() {
                    diesel::update(
                        hosts::table
                            .filter(hosts::id.eq_any(&group.free_hosts))
                            .filter(hosts::status.ne(HostStatus::RepairFailed)),
                    )
                    .set(hosts::status.eq(HostStatus::Ready))
                    .execute(self)
                    .await?;
                }
                Ok(())
            }

            async fn record(&mut self, history: &History, now: i64) -> Result<(), DbError> {
                diesel::insert_into(entry_history::table)
                    .values((
                        entry_history::entry_id.eq(history.attempt.entry),
                        entry_history::attempt.eq(history.attempt.attempt),
                        entry_history::drone.eq(Some(history.drone.as_str())),
                        entry_history::event.eq(history.event),
                        entry_history::detail.eq(common::text::reason(&history.detail).as_ref()),
                        entry_history::at.eq(now),
                    ))
                    .cached()
                    .execute(self)
                    .await?;
                Ok(())
            }

            async fn history_count(&mut self, entry: i64, event: &str) -> Result<i64, DbError> {
                Ok(entry_history::table
                    .filter(entry_history::entry_id.eq(entry))
                    .filter(entry_history::event.eq(event))
                    .count()
                    .get_result(self)
                    .await?)
            }
        }
    };
}

/// [`HostWrites`] for one backend's connection.
macro_rules! host_writes {
    ($conn:ty) => {
        impl HostWrites for $conn {
            async fn write_host(&mut self, write: &HostWrite) -> Result<(), DbError> {
                let repair_lock = hosts::lock_reason.like("repair failed%");
                match write {
                    HostWrite::Free(id) => {
                        diesel::update(
                            hosts::table
                                .filter(hosts::id.eq(*id))
                                .filter(hosts::status.ne(HostStatus::RepairFailed)),
                        )
                        .set(hosts::status.eq(HostStatus::Ready))
                        .cached()
                        .execute(self)
                        .await?
                    }
                    HostWrite::KeepOutOfService(id) => {
                        diesel::update(hosts::table.filter(hosts::id.eq(*id)).filter(repair_lock))
                            .set(hosts::status.eq(HostStatus::RepairFailed))
                            .cached()
                            .execute(self)
                            .await?
                    }
                    HostWrite::Status(name, status) => {
                        diesel::update(hosts::table.filter(hosts::hostname.eq(name.as_str())))
                            .set(hosts::status.eq(*status))
                            .cached()
                            .execute(self)
                            .await?
                    }
                    HostWrite::Cleaned(name) => {
                        diesel::update(hosts::table.filter(hosts::hostname.eq(name.as_str())))
                            .set(hosts::dirty.eq(false))
                            .cached()
                            .execute(self)
                            .await?
                    }
                    HostWrite::Repaired(name) => {
                        diesel::update(
                            hosts::table
                                .filter(hosts::hostname.eq(name.as_str()))
                                .filter(repair_lock),
                        )
                        .set((
                            hosts::locked.eq(false),
                            hosts::lock_reason.eq(None::<String>),
                        ))
                        .cached()
                        .execute(self)
                        .await?
                    }
                    HostWrite::OutOfService(name, reason) => {
                        diesel::update(hosts::table.filter(hosts::hostname.eq(name.as_str())))
                            .set((
                                hosts::status.eq(HostStatus::RepairFailed),
                                hosts::locked.eq(true),
                                hosts::locked_by.eq(None::<&str>),
                                hosts::lock_reason
                                    .eq(common::text::reason(&format!("repair failed: {reason}"))
                                        .as_ref()),
                            ))
                            .execute(self)
                            .await?
                    }
                };
                Ok(())
            }

            async fn drone_heard(
                &mut self,
                drone: &DroneName,
                results_url: Option<Option<&str>>,
                said: &DroneSaid,
            ) -> Result<(), DbError> {
                let row = drones::table.filter(drones::name.eq(drone.as_str()));
                let state = (
                    drones::stopping.eq(said.stopping),
                    drones::free_mb.eq(said.free_mb),
                    drones::low_disk.eq(said.low_disk),
                );
                match results_url {
                    Some(url) => {
                        diesel::update(row)
                            .set((drones::results_url.eq(url), state))
                            .cached()
                            .execute(self)
                            .await?
                    }
                    None => {
                        diesel::update(row)
                            .set(state)
                            .cached()
                            .execute(self)
                            .await?
                    }
                };
                Ok(())
            }

            async fn alive(&mut self, drone: &str, now: i64) -> Result<(), DbError> {
                diesel::update(drones::table.filter(drones::name.eq(drone)))
                    .set(drones::last_heartbeat.eq(now))
                    .cached()
                    .execute(self)
                    .await?;
                Ok(())
            }
        }
    };
}

reads!(SqliteConn);
reads!(AsyncMysqlConnection, for_update);
entry_writes!(SqliteConn);
entry_writes!(AsyncMysqlConnection);
host_writes!(SqliteConn);
host_writes!(AsyncMysqlConnection);
