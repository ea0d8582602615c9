//! Counts over the whole database that `/metrics` reports at each scrape: one grouped
//! query each, answered from an index (`hqe_dispatch` starts with the status).

use super::schema::host_queue_entries as hqe;
use super::{Db, DbError};
use crate::model::EntryStatus;
use crate::with_conn;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// How many entries are in each status; a status no entry is in is left out.
pub async fn entries_by_status(db: &Db) -> Result<Vec<(EntryStatus, i64)>, DbError> {
    Ok(with_conn!(db, |conn| {
        hqe::table
            .group_by(hqe::status)
            .select((hqe::status, diesel::dsl::count_star()))
            .load::<(EntryStatus, i64)>(conn)
            .await?
    }))
}
