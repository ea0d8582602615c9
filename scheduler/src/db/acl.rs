//! ACL groups (Autotest's): named sets of users and hosts. A user may run jobs on a
//! host, and lock, unlock, repair or relabel it, only when both belong to one group;
//! admins are not bound by groups. `Everyone` holds every user and host from their
//! creation.

use super::schema::{acl_group_hosts, acl_group_users, acl_groups, host_labels, hosts, users};
use super::{Cache, Conn, Db, DbError};
use crate::{on_conn, with_conn, write_txn};
use api::auth::EVERYONE;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

/// An ACL group with its members (each sorted by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRow {
    pub name: String,
    pub users: Vec<String>,
    pub hosts: Vec<String>,
}

/// Users and hosts to add to a group or remove from it, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    pub users: Vec<String>,
    pub hosts: Vec<String>,
}

/// Which hosts a user (a job's owner) may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// An admin: every host.
    Any,
    /// The hosts of these groups (a user's groups; `Everyone`'s for a job owner that
    /// is no user, such as a job stored before users existed).
    Groups(Vec<i64>),
}

/// Which hosts `user` may use: an admin any, a user those of its groups, a name that
/// is no user those of `Everyone`.
pub async fn access_of(conn: &mut Conn<'_>, user: &str) -> Result<Access, DbError> {
    let found: Option<(i64, bool)> = on_conn!(conn, |c| {
        users::table
            .filter(users::name.eq(user))
            .select((users::id, users::admin))
            .cached()
            .get_result(c)
            .await
            .optional()?
    });
    let groups: Vec<i64> = match found {
        Some((_, true)) => return Ok(Access::Any),
        Some((user_id, false)) => on_conn!(conn, |c| {
            acl_group_users::table
                .filter(acl_group_users::user_id.eq(user_id))
                .select(acl_group_users::acl_group_id)
                .cached()
                .load(c)
                .await?
        }),
        None => on_conn!(conn, |c| {
            acl_groups::table
                .filter(acl_groups::name.eq(EVERYONE))
                .select(acl_groups::id)
                .cached()
                .load(c)
                .await?
        }),
    };
    Ok(Access::Groups(groups))
}

/// Of `host_ids`, those `access` allows (one query, whatever their number).
pub async fn usable_among(
    conn: &mut Conn<'_>,
    access: &Access,
    host_ids: &[i64],
) -> Result<BTreeSet<i64>, DbError> {
    let groups = match access {
        Access::Any => return Ok(host_ids.iter().copied().collect()),
        Access::Groups(groups) if groups.is_empty() || host_ids.is_empty() => {
            return Ok(BTreeSet::new())
        }
        Access::Groups(groups) => groups,
    };
    let found: Vec<i64> = on_conn!(conn, |c| {
        acl_group_hosts::table
            .filter(acl_group_hosts::acl_group_id.eq_any(groups))
            .filter(acl_group_hosts::host_id.eq_any(host_ids))
            .select(acl_group_hosts::host_id)
            .cached_if(groups.len() <= 4 && host_ids.len() <= 4)
            .load(c)
            .await?
    });
    Ok(found.into_iter().collect())
}

/// How many hosts carrying `label_id` `access` allows (None: any number).
pub async fn usable_with_label(
    conn: &mut Conn<'_>,
    access: &Access,
    label_id: i64,
) -> Result<Option<i64>, DbError> {
    let groups = match access {
        Access::Any => return Ok(None),
        Access::Groups(groups) if groups.is_empty() => return Ok(Some(0)),
        Access::Groups(groups) => groups,
    };
    Ok(Some(on_conn!(conn, |c| {
        host_labels::table
            .filter(host_labels::label_id.eq(label_id))
            .filter(
                host_labels::host_id.eq_any(
                    acl_group_hosts::table
                        .filter(acl_group_hosts::acl_group_id.eq_any(groups))
                        .select(acl_group_hosts::host_id),
                ),
            )
            .count()
            .get_result::<i64>(c)
            .await?
    })))
}

/// Whether `user` may manage host `host` (lock, unlock, repair, labels): it shares a
/// group with it. Admins may manage every host; callers check that first.
pub async fn shares_group(db: &Db, user: &str, host: &str) -> Result<bool, DbError> {
    Ok(with_conn!(db, |conn| {
        let host_id: Option<i64> = hosts::table
            .filter(hosts::hostname.eq(host))
            .select(hosts::id)
            .get_result(conn)
            .await
            .optional()?;
        let Some(host_id) = host_id else {
            return Err(DbError::NotFound(format!("unknown host: {host}")));
        };
        let mut conn = Conn::from(conn);
        let access = access_of(&mut conn, user).await?;
        usable_among(&mut conn, &access, &[host_id])
            .await?
            .contains(&host_id)
    }))
}

/// The hosts `user` may use, by name.
pub async fn usable_hosts(db: &Db, user: &str) -> Result<Vec<String>, DbError> {
    Ok(with_conn!(db, |conn| {
        let mut conn = Conn::from(conn);
        let access = access_of(&mut conn, user).await?;
        let mut names: Vec<String> = match access {
            Access::Any => on_conn!(&mut conn, |c| {
                hosts::table.select(hosts::hostname).load(c).await?
            }),
            Access::Groups(groups) => on_conn!(&mut conn, |c| {
                hosts::table
                    .filter(
                        hosts::id.eq_any(
                            acl_group_hosts::table
                                .filter(acl_group_hosts::acl_group_id.eq_any(&groups))
                                .select(acl_group_hosts::host_id),
                        ),
                    )
                    .select(hosts::hostname)
                    .load(c)
                    .await?
            }),
        };
        names.sort();
        names
    }))
}

/// Puts a new host or user in `Everyone` (inside the transaction that creates it).
pub async fn join_everyone(
    conn: &mut Conn<'_>,
    host_id: Option<i64>,
    user_id: Option<i64>,
) -> Result<(), DbError> {
    let everyone: Option<i64> = on_conn!(conn, |c| {
        acl_groups::table
            .filter(acl_groups::name.eq(EVERYONE))
            .select(acl_groups::id)
            .cached()
            .get_result(c)
            .await
            .optional()?
    });
    let Some(group) = everyone else {
        return Ok(());
    };
    if let Some(host_id) = host_id {
        add_host(conn, group, host_id).await?;
    }
    if let Some(user_id) = user_id {
        add_user(conn, group, user_id).await?;
    }
    Ok(())
}

/// Puts host `host_id` in group `group`.
async fn add_host(conn: &mut Conn<'_>, group: i64, host_id: i64) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        diesel::insert_into(acl_group_hosts::table)
            .values((
                acl_group_hosts::acl_group_id.eq(group),
                acl_group_hosts::host_id.eq(host_id),
            ))
            .cached()
            .execute(c)
            .await?
    });
    Ok(())
}

/// Puts user `user_id` in group `group`.
async fn add_user(conn: &mut Conn<'_>, group: i64, user_id: i64) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        diesel::insert_into(acl_group_users::table)
            .values((
                acl_group_users::acl_group_id.eq(group),
                acl_group_users::user_id.eq(user_id),
            ))
            .cached()
            .execute(c)
            .await?
    });
    Ok(())
}

/// The ids of `members`, refused (nothing changed) when one is unknown.
async fn resolve(conn: &mut Conn<'_>, members: &Members) -> Result<(Vec<i64>, Vec<i64>), DbError> {
    let users: Vec<(i64, String)> = on_conn!(conn, |c| {
        users::table
            .filter(users::name.eq_any(&members.users))
            .select((users::id, users::name))
            .load(c)
            .await?
    });
    let hosts: Vec<(i64, String)> = on_conn!(conn, |c| {
        hosts::table
            .filter(hosts::hostname.eq_any(&members.hosts))
            .select((hosts::id, hosts::hostname))
            .load(c)
            .await?
    });
    let missing = |wanted: &[String], found: &[(i64, String)]| -> Vec<String> {
        let found: BTreeSet<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
        let mut missing: Vec<String> = wanted
            .iter()
            .filter(|w| !found.contains(w.as_str()))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    };
    let (no_users, no_hosts) = (
        missing(&members.users, &users),
        missing(&members.hosts, &hosts),
    );
    let mut unknown = Vec::new();
    if !no_users.is_empty() {
        unknown.push(format!("unknown user: {}", no_users.join(", ")));
    }
    if !no_hosts.is_empty() {
        unknown.push(format!("unknown host: {}", no_hosts.join(", ")));
    }
    if !unknown.is_empty() {
        return Err(DbError::NotFound(unknown.join("; ")));
    }
    Ok((
        users.into_iter().map(|(id, _)| id).collect(),
        hosts.into_iter().map(|(id, _)| id).collect(),
    ))
}

async fn group_id(conn: &mut Conn<'_>, name: &str) -> Result<i64, DbError> {
    let found: Option<i64> = on_conn!(conn, |c| {
        acl_groups::table
            .filter(acl_groups::name.eq(name))
            .select(acl_groups::id)
            .get_result(c)
            .await
            .optional()?
    });
    found.ok_or_else(|| DbError::NotFound(format!("unknown ACL group: {name}")))
}

/// Adds members to group `group` (those in it already stay as they are).
async fn insert_members(
    conn: &mut Conn<'_>,
    group: i64,
    user_ids: &[i64],
    host_ids: &[i64],
) -> Result<(), DbError> {
    let (had_users, had_hosts): (Vec<i64>, Vec<i64>) = on_conn!(conn, |c| {
        let users = acl_group_users::table
            .filter(acl_group_users::acl_group_id.eq(group))
            .select(acl_group_users::user_id)
            .load(c)
            .await?;
        let hosts = acl_group_hosts::table
            .filter(acl_group_hosts::acl_group_id.eq(group))
            .select(acl_group_hosts::host_id)
            .load(c)
            .await?;
        (users, hosts)
    });
    let new_users: BTreeSet<i64> = user_ids
        .iter()
        .copied()
        .filter(|u| !had_users.contains(u))
        .collect();
    let new_hosts: BTreeSet<i64> = host_ids
        .iter()
        .copied()
        .filter(|h| !had_hosts.contains(h))
        .collect();
    for user_id in new_users {
        add_user(conn, group, user_id).await?;
    }
    for host_id in new_hosts {
        add_host(conn, group, host_id).await?;
    }
    Ok(())
}

/// `atest acl create NAME --users .. --hosts ..`: refused when the group exists or a
/// member is unknown.
pub async fn create(
    db: &Db,
    name: &str,
    description: Option<&str>,
    members: &Members,
) -> Result<AclRow, DbError> {
    write_txn!(db, |conn, last_id| {
        let exists: i64 = acl_groups::table
            .filter(acl_groups::name.eq(name))
            .count()
            .get_result(conn)
            .await?;
        if exists > 0 {
            return Err(DbError::Conflict(format!(
                "ACL group {name} exists already"
            )));
        }
        let mut conn = Conn::from(conn);
        let (user_ids, host_ids) = resolve(&mut conn, members).await?;
        let group: i64 = on_conn!(&mut conn, |c| {
            diesel::insert_into(acl_groups::table)
                .values((
                    acl_groups::name.eq(name),
                    acl_groups::description.eq(description),
                ))
                .execute(c)
                .await?;
            diesel::select(sql::<BigInt>(last_id)).get_result(c).await?
        });
        insert_members(&mut conn, group, &user_ids, &host_ids).await?;
        Ok(())
    })?;
    shown(db, name).await
}

/// `atest acl add NAME --users .. --hosts ..`.
pub async fn add(db: &Db, name: &str, members: &Members) -> Result<AclRow, DbError> {
    write_txn!(db, |conn, _last_id| {
        let mut conn = Conn::from(conn);
        let group = group_id(&mut conn, name).await?;
        let (user_ids, host_ids) = resolve(&mut conn, members).await?;
        insert_members(&mut conn, group, &user_ids, &host_ids).await
    })?;
    shown(db, name).await
}

/// `atest acl remove NAME --users .. --hosts ..`: members not in the group are left
/// as they are; unknown names are refused.
pub async fn remove(db: &Db, name: &str, members: &Members) -> Result<AclRow, DbError> {
    write_txn!(db, |conn, _last_id| {
        let mut conn = Conn::from(conn);
        let group = group_id(&mut conn, name).await?;
        let (user_ids, host_ids) = resolve(&mut conn, members).await?;
        on_conn!(&mut conn, |c| {
            diesel::delete(
                acl_group_users::table
                    .filter(acl_group_users::acl_group_id.eq(group))
                    .filter(acl_group_users::user_id.eq_any(&user_ids)),
            )
            .execute(c)
            .await?;
            diesel::delete(
                acl_group_hosts::table
                    .filter(acl_group_hosts::acl_group_id.eq(group))
                    .filter(acl_group_hosts::host_id.eq_any(&host_ids)),
            )
            .execute(c)
            .await?
        });
        Ok(())
    })?;
    shown(db, name).await
}

async fn shown(db: &Db, name: &str) -> Result<AclRow, DbError> {
    list(db)
        .await?
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| DbError::NotFound(format!("unknown ACL group: {name}")))
}

/// Every ACL group with its users and hosts, by name.
pub async fn list(db: &Db) -> Result<Vec<AclRow>, DbError> {
    type Pairs = Vec<(i64, String)>;
    let (groups, users, hosts): (Pairs, Pairs, Pairs) = with_conn!(db, |conn| {
        let groups = acl_groups::table
            .select((acl_groups::id, acl_groups::name))
            .load(conn)
            .await?;
        let users = acl_group_users::table
            .inner_join(users::table.on(users::id.eq(acl_group_users::user_id)))
            .select((acl_group_users::acl_group_id, users::name))
            .load(conn)
            .await?;
        let hosts = acl_group_hosts::table
            .inner_join(hosts::table.on(hosts::id.eq(acl_group_hosts::host_id)))
            .select((acl_group_hosts::acl_group_id, hosts::hostname))
            .load(conn)
            .await?;
        (groups, users, hosts)
    });
    let mut by_id: BTreeMap<i64, AclRow> = groups
        .into_iter()
        .map(|(id, name)| {
            let row = AclRow {
                name,
                users: vec![],
                hosts: vec![],
            };
            (id, row)
        })
        .collect();
    for (group, user) in users {
        by_id.entry(group).and_modify(|g| g.users.push(user));
    }
    for (group, host) in hosts {
        by_id.entry(group).and_modify(|g| g.hosts.push(host));
    }
    let mut rows: Vec<AclRow> = by_id.into_values().collect();
    for row in &mut rows {
        row.users.sort();
        row.hosts.sort();
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// The groups of each user that belongs to one, by user name (groups sorted).
pub async fn groups_by_user(db: &Db) -> Result<BTreeMap<String, Vec<String>>, DbError> {
    let pairs: Vec<(String, String)> = with_conn!(db, |conn| {
        acl_group_users::table
            .inner_join(users::table.on(users::id.eq(acl_group_users::user_id)))
            .inner_join(acl_groups::table.on(acl_groups::id.eq(acl_group_users::acl_group_id)))
            .select((users::name, acl_groups::name))
            .load(conn)
            .await?
    });
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (user, group) in pairs {
        out.entry(user).or_default().push(group);
    }
    out.values_mut().for_each(|groups| groups.sort());
    Ok(out)
}
