//! ACL groups in a dispatch cycle: which hosts the owners of the queued metahost
//! entries may use, read once per cycle (a fixed number of statements, whatever the
//! number of entries), and those hosts added to the label pools so that an owner
//! confined to a few hosts finds them even when other hosts fill the pool's limit.

use super::dispatch_view::{DispatchView, PoolHost};
use super::schema::{acl_group_hosts, acl_group_users, acl_groups, host_labels, hosts, users};
use super::{Conn, DbError};
use crate::model::HostStatus;
use crate::on_conn;
use api::auth::EVERYONE;
use common::names::{HostName, Owner};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::{BTreeMap, BTreeSet};

impl DispatchView {
    /// Whether the owner of a metahost entry may be given host `host_id`: an owner
    /// absent from `acl` (an admin) may use any host.
    pub fn may_use(&self, owner: &Owner, host_id: i64) -> bool {
        self.acl
            .get(owner)
            .is_none_or(|usable| usable.contains(&host_id))
    }
}

/// A ready host carrying a wanted label, with who may use it.
type Usable = (String, i64, i64, HostName, bool);

/// Fills `view.acl` for the owners of `view.by_label` (admins left out: they may use
/// any host) and adds the ready hosts each may use to the pools of the labels wanted.
/// An owner that is no user (a job stored before users existed) may use `Everyone`'s
/// hosts.
pub(super) async fn read(conn: &mut Conn<'_>, view: &mut DispatchView) -> Result<(), DbError> {
    let owners: BTreeSet<String> = view.by_label.iter().map(|e| e.owner.to_string()).collect();
    let wanted: BTreeSet<i64> = view.by_label.iter().map(|e| e.label_id).collect();
    let known: Vec<(String, bool)> = on_conn!(conn, |c| {
        users::table
            .filter(users::name.eq_any(&owners))
            .select((users::name, users::admin))
            .load(c)
            .await?
    });
    let members: Vec<&str> = known
        .iter()
        .filter(|(_, admin)| !admin)
        .map(|(name, _)| name.as_str())
        .collect();
    let strangers: Vec<&str> = owners
        .iter()
        .map(String::as_str)
        .filter(|o| !known.iter().any(|(name, _)| name == o))
        .collect();
    let mut usable: Vec<Usable> = Vec::new();
    if !members.is_empty() {
        usable = on_conn!(conn, |c| {
            acl_group_users::table
                .inner_join(users::table.on(users::id.eq(acl_group_users::user_id)))
                .inner_join(
                    acl_group_hosts::table
                        .on(acl_group_hosts::acl_group_id.eq(acl_group_users::acl_group_id)),
                )
                .inner_join(hosts::table.on(hosts::id.eq(acl_group_hosts::host_id)))
                .inner_join(host_labels::table.on(host_labels::host_id.eq(hosts::id)))
                .filter(users::name.eq_any(&members))
                .filter(host_labels::label_id.eq_any(&wanted))
                .filter(hosts::status.eq(HostStatus::Ready))
                .filter(hosts::locked.eq(false))
                .select((
                    users::name,
                    host_labels::label_id,
                    hosts::id,
                    hosts::hostname,
                    hosts::dirty,
                ))
                .distinct()
                .load(c)
                .await?
        });
    }
    if !strangers.is_empty() {
        let everyone: Vec<(i64, i64, HostName, bool)> = on_conn!(conn, |c| {
            acl_groups::table
                .inner_join(
                    acl_group_hosts::table.on(acl_group_hosts::acl_group_id.eq(acl_groups::id)),
                )
                .inner_join(hosts::table.on(hosts::id.eq(acl_group_hosts::host_id)))
                .inner_join(host_labels::table.on(host_labels::host_id.eq(hosts::id)))
                .filter(acl_groups::name.eq(EVERYONE))
                .filter(host_labels::label_id.eq_any(&wanted))
                .filter(hosts::status.eq(HostStatus::Ready))
                .filter(hosts::locked.eq(false))
                .select((
                    host_labels::label_id,
                    hosts::id,
                    hosts::hostname,
                    hosts::dirty,
                ))
                .load(c)
                .await?
        });
        for stranger in &strangers {
            usable.extend(everyone.iter().map(|(label, id, name, dirty)| {
                (stranger.to_string(), *label, *id, name.clone(), *dirty)
            }));
        }
    }
    let confined: Vec<&str> = members.iter().chain(&strangers).copied().collect();
    apply(view, &confined, usable);
    Ok(())
}

/// Records in `view` the hosts each confined owner may use (none, when it has no row)
/// and adds them to the pools, which stay ordered by host id.
fn apply(view: &mut DispatchView, confined: &[&str], usable: Vec<Usable>) {
    let mut by_name: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut added: BTreeMap<i64, Vec<PoolHost>> = BTreeMap::new();
    for (owner, label_id, id, hostname, dirty) in usable {
        by_name.entry(owner).or_default().insert(id);
        added.entry(label_id).or_default().push(PoolHost {
            id,
            hostname,
            dirty,
        });
    }
    for (label_id, hosts) in added {
        let pool = view.pools.entry(label_id).or_default();
        let present: BTreeSet<i64> = pool.iter().map(|h| h.id).collect();
        let mut new: Vec<PoolHost> = hosts
            .into_iter()
            .filter(|h| !present.contains(&h.id))
            .collect();
        new.sort_by_key(|h| h.id);
        new.dedup_by_key(|h| h.id);
        pool.extend(new);
        pool.sort_by_key(|h| h.id);
    }
    // Keyed by the entries' own owners: every confined owner gets a set, so none
    // is taken for an admin.
    let mut acl = BTreeMap::new();
    for entry in &view.by_label {
        if confined.contains(&entry.owner.as_str()) && !acl.contains_key(&entry.owner) {
            let usable = by_name
                .get(entry.owner.as_str())
                .cloned()
                .unwrap_or_default();
            acl.insert(entry.owner.clone(), usable);
        }
    }
    view.acl = acl;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::dispatch_view::LabelEntry;
    use crate::model::TaskFlags;

    fn entry(owner: &str) -> LabelEntry {
        LabelEntry {
            entry_id: 1,
            job_id: 1,
            attempt: 0,
            priority: 0,
            label_id: 10,
            job_name: "job".into(),
            owner: Owner::new(owner).unwrap(),
            control_file: String::new(),
            avoid_drone: None,
            drone_set_id: None,
            synch_count: 1,
            job_tasks: TaskFlags::none(),
        }
    }

    fn usable(owner: &str, id: i64) -> Usable {
        let name = HostName::new(format!("host{id}")).unwrap();
        (owner.to_string(), 10, id, name, false)
    }

    #[test]
    fn hosts_an_owner_may_use_join_the_pool_in_id_order() {
        let mut view = DispatchView {
            by_label: vec![entry("alice"), entry("bob"), entry("root")],
            ..DispatchView::default()
        };
        // The pool's limit kept hosts 1 and 2; alice may use 2 and 9, which the
        // limit left out.
        let host = |id: i64| PoolHost {
            id,
            hostname: HostName::new(format!("host{id}")).unwrap(),
            dirty: false,
        };
        view.pools.insert(10, vec![host(1), host(2)]);
        apply(
            &mut view,
            &["alice", "bob"],
            vec![usable("alice", 9), usable("alice", 2)],
        );
        let pool: Vec<i64> = view.pools[&10].iter().map(|h| h.id).collect();
        assert_eq!(pool, [1, 2, 9]);
        let alice = Owner::new("alice").unwrap();
        assert!(view.may_use(&alice, 9) && view.may_use(&alice, 2));
        assert!(!view.may_use(&alice, 1));
        // bob shares a group with no ready host: none, not any.
        assert!(!view.may_use(&Owner::new("bob").unwrap(), 1));
        // root is not confined (an admin).
        assert!(view.may_use(&Owner::new("root").unwrap(), 1));
    }
}
