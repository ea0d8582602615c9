//! Hosts and labels.

use super::schema::{host_labels, hosts, labels};
use super::{Conn, Db, DbError};
use crate::model::HostStatus;
use crate::{on_conn, with_conn, write_txn};
use common::names::{HostName, LabelName};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// A host under test, with its labels (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRow {
    pub name: HostName,
    pub labels: Vec<LabelName>,
    pub status: HostStatus,
    pub locked: bool,
    pub lock_reason: Option<String>,
    /// The user who locked it; None when unlocked or locked by the scheduler (a
    /// failed repair).
    pub locked_by: Option<String>,
}

/// Gives the host `host_id` the label `label_id` (inside a write transaction).
async fn link_label(conn: &mut Conn<'_>, host_id: i64, label_id: i64) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        diesel::insert_into(host_labels::table)
            .values((
                host_labels::host_id.eq(host_id),
                host_labels::label_id.eq(label_id),
            ))
            .execute(c)
            .await?
    });
    Ok(())
}

/// The id of a label, created if missing (inside a write transaction; `last_id` is
/// the backend's SQL for the id of the last inserted row).
async fn ensure_label(conn: &mut Conn<'_>, last_id: &str, label: &str) -> Result<i64, DbError> {
    let found: Option<i64> = on_conn!(conn, |c| {
        labels::table
            .filter(labels::name.eq(label))
            .select(labels::id)
            .first(c)
            .await
            .optional()?
    });
    if let Some(id) = found {
        return Ok(id);
    }
    Ok(on_conn!(conn, |c| {
        diesel::insert_into(labels::table)
            .values(labels::name.eq(label))
            .execute(c)
            .await?;
        diesel::select(sql::<BigInt>(last_id))
            .get_result::<i64>(c)
            .await?
    }))
}

/// Creates a host with its labels (creating labels that do not exist yet).
pub async fn create(
    db: &Db,
    name: &HostName,
    labels_wanted: &[LabelName],
) -> Result<HostRow, DbError> {
    let now = common::time::now_micros();
    let host_name = name.as_str().to_string();
    // Sorted, as every listing shows them; a label given twice is one label.
    let mut wanted: Vec<LabelName> = labels_wanted.to_vec();
    wanted.sort();
    wanted.dedup();
    write_txn!(db, |conn, last_id| {
        let exists: i64 = hosts::table
            .filter(hosts::hostname.eq(&host_name))
            .count()
            .get_result(conn)
            .await?;
        if exists > 0 {
            return Err(DbError::Conflict(format!(
                "host {host_name} already exists"
            )));
        }
        diesel::insert_into(hosts::table)
            .values((
                hosts::hostname.eq(&host_name),
                hosts::status.eq(HostStatus::Ready),
                hosts::locked.eq(false),
                hosts::created_on.eq(now),
            ))
            .execute(conn)
            .await?;
        let host_id: i64 = diesel::select(sql::<BigInt>(last_id))
            .get_result(conn)
            .await?;
        let mut conn = Conn::from(conn);
        super::acl::join_everyone(&mut conn, Some(host_id), None).await?;
        for label in &wanted {
            let label_id = ensure_label(&mut conn, last_id, label.as_str()).await?;
            link_label(&mut conn, host_id, label_id).await?;
        }
        Ok(())
    })?;
    Ok(HostRow {
        name: name.clone(),
        labels: wanted,
        status: HostStatus::Ready,
        locked: false,
        lock_reason: None,
        locked_by: None,
    })
}

/// Every host with its labels, by name.
pub async fn list(db: &Db) -> Result<Vec<HostRow>, DbError> {
    Ok(page(db, None, None).await?.0)
}

/// Hosts with their labels, by name: those after `after`, at most `limit` (all when
/// None); and whether more follow.
pub async fn page(
    db: &Db,
    after: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<HostRow>, bool), DbError> {
    type Row = (
        i64,
        HostName,
        HostStatus,
        bool,
        Option<String>,
        Option<String>,
    );
    let after = after.map(str::to_string);
    let (mut rows, pairs): (Vec<Row>, Vec<(i64, LabelName)>) = with_conn!(db, |conn| {
        let mut query = hosts::table
            .order(hosts::hostname.asc())
            .select((
                hosts::id,
                hosts::hostname,
                hosts::status,
                hosts::locked,
                hosts::lock_reason,
                hosts::locked_by,
            ))
            .into_boxed();
        if let Some(after) = &after {
            query = query.filter(hosts::hostname.gt(after.clone()));
        }
        if let Some(limit) = limit {
            query = query.limit(limit + 1);
        }
        let rows = query.load::<Row>(conn).await?;
        let mut pairs = host_labels::table
            .inner_join(labels::table)
            .select((host_labels::host_id, labels::name))
            .order(labels::name.asc())
            .into_boxed();
        if limit.is_some() {
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            pairs = pairs.filter(host_labels::host_id.eq_any(ids));
        }
        let pairs = pairs.load::<(i64, LabelName)>(conn).await?;
        (rows, pairs)
    });
    let more = limit.is_some_and(|limit| rows.len() as i64 > limit);
    if let Some(limit) = limit {
        rows.truncate(limit as usize);
    }
    let mut by_host: BTreeMap<i64, Vec<LabelName>> = BTreeMap::new();
    for (host_id, label) in pairs {
        by_host.entry(host_id).or_default().push(label);
    }
    let hosts = rows
        .into_iter()
        .map(
            |(id, name, status, locked, lock_reason, locked_by)| HostRow {
                name,
                labels: by_host.remove(&id).unwrap_or_default(),
                status,
                locked,
                lock_reason,
                locked_by,
            },
        )
        .collect();
    Ok((hosts, more))
}

/// `atest label create`: refuses a label that exists.
pub async fn create_label(db: &Db, name: &LabelName) -> Result<(), DbError> {
    let name = name.as_str().to_string();
    write_txn!(db, |conn, _last_id| {
        let exists: i64 = labels::table
            .filter(labels::name.eq(&name))
            .count()
            .get_result(conn)
            .await?;
        if exists > 0 {
            return Err(DbError::Conflict(format!("label {name} already exists")));
        }
        diesel::insert_into(labels::table)
            .values(labels::name.eq(&name))
            .execute(conn)
            .await?;
        Ok(())
    })
}

/// Every label, by name.
pub async fn list_labels(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(with_conn!(db, |conn| {
        labels::table
            .order(labels::name.asc())
            .select(labels::name)
            .load(conn)
            .await?
    }))
}

async fn host_id_of(db: &Db, name: &str) -> Result<i64, DbError> {
    let found: Option<i64> = with_conn!(db, |conn| {
        hosts::table
            .filter(hosts::hostname.eq(name))
            .select(hosts::id)
            .first(conn)
            .await
            .optional()?
    });
    found.ok_or_else(|| DbError::NotFound(format!("unknown host: {name}")))
}

/// `atest host label HOST --add L --remove L`: labels to add are created if missing.
pub async fn change_labels(
    db: &Db,
    name: &HostName,
    add: &[LabelName],
    remove: &[LabelName],
) -> Result<(), DbError> {
    let host_id = host_id_of(db, name.as_str()).await?;
    let add: Vec<String> = add.iter().map(|l| l.as_str().to_string()).collect();
    let remove: Vec<String> = remove.iter().map(|l| l.as_str().to_string()).collect();
    write_txn!(db, |conn, last_id| {
        let mut labelled = Conn::from(&mut *conn);
        for label in &add {
            let label_id = ensure_label(&mut labelled, last_id, label).await?;
            let has: i64 = on_conn!(&mut labelled, |c| {
                host_labels::table
                    .filter(host_labels::host_id.eq(host_id))
                    .filter(host_labels::label_id.eq(label_id))
                    .count()
                    .get_result(c)
                    .await?
            });
            if has == 0 {
                link_label(&mut labelled, host_id, label_id).await?;
            }
        }
        let remove_ids: Vec<i64> = labels::table
            .filter(labels::name.eq_any(&remove))
            .select(labels::id)
            .load(conn)
            .await?;
        diesel::delete(
            host_labels::table
                .filter(host_labels::host_id.eq(host_id))
                .filter(host_labels::label_id.eq_any(&remove_ids)),
        )
        .execute(conn)
        .await?;
        Ok(())
    })
}

/// `atest host lock|unlock`: a locked host gets no new work; what runs on it finishes.
pub async fn set_locked(
    db: &Db,
    name: &HostName,
    locked: bool,
    reason: Option<String>,
    by: &str,
) -> Result<(), DbError> {
    let host_id = host_id_of(db, name.as_str()).await?;
    let by = locked.then(|| by.to_string());
    // Stored free text is bounded: a longer reason is cut and marked.
    let reason = if locked {
        reason.map(|r| common::text::reason(&r).into_owned())
    } else {
        None
    };
    write_txn!(db, |conn, _last_id| {
        diesel::update(hosts::table.filter(hosts::id.eq(host_id)))
            .set((
                hosts::locked.eq(locked),
                hosts::lock_reason.eq(&reason),
                hosts::locked_by.eq(&by),
            ))
            .execute(conn)
            .await?;
        if !locked {
            // Unlocking a host whose repair failed puts it back in service as it is.
            diesel::update(
                hosts::table
                    .filter(hosts::id.eq(host_id))
                    .filter(hosts::status.eq(HostStatus::RepairFailed)),
            )
            .set(hosts::status.eq(HostStatus::Ready))
            .execute(conn)
            .await?;
        }
        Ok(())
    })
}
