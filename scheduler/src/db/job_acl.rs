//! The ACL rule for a new job: every named host shares an ACL group with the job's
//! owner, and at least `count` hosts carrying a metahost label do (the dispatcher
//! only ever gives a metahost entry such hosts). Admins are not bound by groups.

use super::acl::{self, Access};
use super::{Conn, DbError};
use common::names::{LabelName, Owner};
use std::collections::BTreeMap;

/// Refuses (`Forbidden`, naming the hosts) a job whose owner may not use a named host,
/// or may use fewer hosts carrying its metahost label than its count.
pub async fn check(
    conn: &mut Conn<'_>,
    owner: &Owner,
    host_ids: &BTreeMap<String, i64>,
    metahost: Option<(&LabelName, i64, u32)>,
) -> Result<(), DbError> {
    let access = acl::access_of(conn, owner.as_str()).await?;
    if access == Access::Any {
        return Ok(());
    }
    if !host_ids.is_empty() {
        let ids: Vec<i64> = host_ids.values().copied().collect();
        let usable = acl::usable_among(conn, &access, &ids).await?;
        let refused: Vec<&str> = host_ids
            .iter()
            .filter(|(_, id)| !usable.contains(id))
            .map(|(name, _)| name.as_str())
            .collect();
        if !refused.is_empty() {
            return Err(DbError::Forbidden(format!(
                "{owner} shares no ACL group with host {}",
                refused.join(", ")
            )));
        }
    }
    if let Some((label, label_id, count)) = metahost {
        let usable = acl::usable_with_label(conn, &access, label_id)
            .await?
            .unwrap_or(i64::MAX);
        if usable < i64::from(count) {
            return Err(DbError::Forbidden(format!(
                "{owner} may use {usable} of the hosts carrying label {label} (those sharing \
                 an ACL group with {owner}), fewer than the {count} asked for"
            )));
        }
    }
    Ok(())
}
