//! What the host pages read beside [`super::hosts::list`]: each host's ACL groups and
//! current entry, and one host's last entries with their test counts.

use super::schema::{acl_group_hosts, acl_groups, host_queue_entries as hqe, hosts, jobs, tests};
use super::{Db, DbError};
use crate::model::EntryStatus;
use crate::with_conn;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// An entry as a host page shows it.
#[derive(Debug, Clone)]
pub struct HostEntry {
    pub entry_id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub owner: String,
    pub status: EntryStatus,
    pub drone: Option<String>,
    pub execution_subdir: String,
    pub exit_code: Option<i32>,
    pub started_on: Option<i64>,
    pub finished_on: Option<i64>,
    /// Tests of its final attempt that passed and failed.
    pub tests_passed: i64,
    pub tests_failed: i64,
}

/// What the host list adds to each host, by host name.
#[derive(Debug, Clone, Default)]
pub struct HostExtras {
    pub groups: Vec<String>,
    /// The entry holding the host now (Starting, Running or Gathering).
    pub current: Option<HostEntry>,
}

type EntryColumns = (
    i64,
    i64,
    String,
    String,
    EntryStatus,
    Option<String>,
    String,
    Option<i32>,
    Option<i64>,
    Option<i64>,
);

macro_rules! entry_columns {
    () => {
        (
            hqe::id,
            hqe::job_id,
            jobs::name,
            jobs::owner,
            hqe::status,
            hqe::drone,
            hqe::execution_subdir,
            hqe::exit_code,
            hqe::started_on,
            hqe::finished_on,
        )
    };
}

fn host_entry(columns: EntryColumns) -> HostEntry {
    let (
        entry_id,
        job_id,
        job_name,
        owner,
        status,
        drone,
        execution_subdir,
        exit_code,
        started_on,
        finished_on,
    ) = columns;
    HostEntry {
        entry_id,
        job_id,
        job_name,
        owner,
        status,
        drone,
        execution_subdir,
        exit_code,
        started_on,
        finished_on,
        tests_passed: 0,
        tests_failed: 0,
    }
}

const ACTIVE: [EntryStatus; 3] = [
    EntryStatus::Starting,
    EntryStatus::Running,
    EntryStatus::Gathering,
];

/// Every host's ACL groups and current entry, by host name.
pub async fn extras(db: &Db) -> Result<BTreeMap<String, HostExtras>, DbError> {
    type Read = (Vec<(String, String)>, Vec<(String, EntryColumns)>);
    let (groups, current): Read = with_conn!(db, |conn| {
        let groups = acl_group_hosts::table
            .inner_join(acl_groups::table.on(acl_groups::id.eq(acl_group_hosts::acl_group_id)))
            .inner_join(hosts::table.on(hosts::id.eq(acl_group_hosts::host_id)))
            .order(acl_groups::name.asc())
            .select((hosts::hostname, acl_groups::name))
            .load(conn)
            .await?;
        let current = hqe::table
            .inner_join(jobs::table)
            .inner_join(hosts::table)
            .filter(hqe::status.eq_any(ACTIVE))
            .select((hosts::hostname, entry_columns!()))
            .load(conn)
            .await?;
        (groups, current)
    });
    let mut extras: BTreeMap<String, HostExtras> = BTreeMap::new();
    for (host, group) in groups {
        extras.entry(host).or_default().groups.push(group);
    }
    for (host, columns) in current {
        extras.entry(host).or_default().current = Some(host_entry(columns));
    }
    Ok(extras)
}

/// The last `limit` entries that ran or wait on host `name`, newest first, with their
/// test counts.
pub async fn last_entries(db: &Db, name: &str, limit: i64) -> Result<Vec<HostEntry>, DbError> {
    let name = name.to_string();
    type Read = (Vec<EntryColumns>, Vec<(i64, String, i64)>);
    let (rows, counts): Read = with_conn!(db, |conn| {
        let rows: Vec<EntryColumns> = hqe::table
            .inner_join(jobs::table)
            .inner_join(hosts::table)
            .filter(hosts::hostname.eq(&name))
            .order(hqe::id.desc())
            .limit(limit)
            .select(entry_columns!())
            .load(conn)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let counts = tests::table
            .inner_join(hqe::table.on(hqe::id.eq(tests::entry_id)))
            .filter(tests::entry_id.eq_any(&ids))
            .filter(tests::attempt.eq(hqe::attempt))
            .group_by((tests::entry_id, tests::status))
            .select((tests::entry_id, tests::status, count_star()))
            .load(conn)
            .await?;
        (rows, counts)
    });
    let mut by_entry: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (entry, status, count) in counts {
        let c = by_entry.entry(entry).or_default();
        match status.as_str() {
            "GOOD" => c.0 += count,
            "FAIL" | "ERROR" | "ABORT" | "ALERT" => c.1 += count,
            _ => {}
        }
    }
    Ok(rows
        .into_iter()
        .map(|columns| {
            let mut entry = host_entry(columns);
            let (passed, failed) = by_entry.get(&entry.entry_id).copied().unwrap_or_default();
            entry.tests_passed = passed;
            entry.tests_failed = failed;
            entry
        })
        .collect())
}

/// Where a running entry's logs are: its status, its drone's results URL, and its
/// results path (`<job>-<owner>/<subdir>`). None when there is no such entry.
#[derive(Debug, Clone)]
pub struct LiveEntry {
    pub status: EntryStatus,
    pub drone: Option<String>,
    pub results_url: Option<String>,
    pub path: String,
}

/// The entry `entry_id` as the live log needs it.
pub async fn live_entry(db: &Db, entry_id: i64) -> Result<Option<LiveEntry>, DbError> {
    use super::schema::drones;
    type Row = (
        EntryStatus,
        Option<String>,
        i64,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = with_conn!(db, |conn| {
        hqe::table
            .inner_join(jobs::table)
            .left_join(drones::table.on(hqe::drone.eq(drones::name.nullable())))
            .filter(hqe::id.eq(entry_id))
            .select((
                hqe::status,
                hqe::drone,
                hqe::job_id,
                jobs::owner,
                hqe::execution_subdir,
                drones::results_url.nullable(),
            ))
            .get_result(conn)
            .await
            .optional()?
    });
    Ok(row.map(
        |(status, drone, job, owner, subdir, results_url)| LiveEntry {
            status,
            drone,
            results_url,
            path: format!("{job}-{owner}/{subdir}"),
        },
    ))
}

/// Where each drone serves its results (from its heartbeats), by drone name.
pub async fn drone_results_urls(db: &Db) -> Result<BTreeMap<String, String>, DbError> {
    use super::schema::drones;
    let rows: Vec<(String, Option<String>)> = with_conn!(db, |conn| {
        drones::table
            .select((drones::name, drones::results_url))
            .load(conn)
            .await?
    });
    Ok(rows
        .into_iter()
        .filter_map(|(name, url)| Some((name, url?)))
        .collect())
}
