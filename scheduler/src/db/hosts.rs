//! Hosts and labels.

use super::schema::{host_labels, hosts, labels};
use super::{Db, DbError};
use crate::api::HostView;
use crate::{with_conn, write_txn};
use common::names::{HostName, LabelName};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// Creates a host with its labels (creating labels that do not exist yet).
pub async fn create(
    db: &Db,
    name: &HostName,
    labels_wanted: &[LabelName],
) -> Result<HostView, DbError> {
    let now = common::time::now_micros();
    let host_name = name.as_str().to_string();
    let wanted: Vec<String> = labels_wanted
        .iter()
        .map(|l| l.as_str().to_string())
        .collect();
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
                hosts::status.eq("Ready"),
                hosts::locked.eq(false),
                hosts::created_on.eq(now),
            ))
            .execute(conn)
            .await?;
        let host_id: i64 = diesel::select(sql::<BigInt>(last_id))
            .get_result(conn)
            .await?;
        for label in &wanted {
            let found: Option<i64> = labels::table
                .filter(labels::name.eq(label))
                .select(labels::id)
                .first(conn)
                .await
                .optional()?;
            let label_id = match found {
                Some(id) => id,
                None => {
                    diesel::insert_into(labels::table)
                        .values(labels::name.eq(label))
                        .execute(conn)
                        .await?;
                    diesel::select(sql::<BigInt>(last_id))
                        .get_result(conn)
                        .await?
                }
            };
            diesel::insert_into(host_labels::table)
                .values((
                    host_labels::host_id.eq(host_id),
                    host_labels::label_id.eq(label_id),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    })?;
    let mut labels_sorted = wanted;
    labels_sorted.sort();
    labels_sorted.dedup();
    Ok(HostView {
        name: host_name,
        labels: labels_sorted,
        status: "Ready".into(),
        locked: false,
        lock_reason: None,
    })
}

/// Every host with its labels, by name.
pub async fn list(db: &Db) -> Result<Vec<HostView>, DbError> {
    type Row = (i64, String, String, bool, Option<String>);
    let (rows, pairs): (Vec<Row>, Vec<(i64, String)>) = with_conn!(db, |conn| {
        let rows = hosts::table
            .order(hosts::hostname.asc())
            .select((
                hosts::id,
                hosts::hostname,
                hosts::status,
                hosts::locked,
                hosts::lock_reason,
            ))
            .load::<Row>(conn)
            .await?;
        let pairs = host_labels::table
            .inner_join(labels::table)
            .select((host_labels::host_id, labels::name))
            .order(labels::name.asc())
            .load::<(i64, String)>(conn)
            .await?;
        (rows, pairs)
    });
    let mut by_host: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (host_id, label) in pairs {
        by_host.entry(host_id).or_default().push(label);
    }
    Ok(rows
        .into_iter()
        .map(|(id, name, status, locked, lock_reason)| HostView {
            name,
            labels: by_host.remove(&id).unwrap_or_default(),
            status,
            locked,
            lock_reason,
        })
        .collect())
}
