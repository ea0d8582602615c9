//! `atest acl …`: ACL groups, which decide who may run jobs on which hosts.

use crate::output::{print_json, table};
use api::auth::{AclMembers, AclView};
use api::Client;

/// Users and hosts named on the command line (comma-separated lists).
#[derive(clap::Args)]
pub struct MemberArgs {
    /// Users, comma-separated.
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Hosts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
}

impl MemberArgs {
    fn members(self) -> AclMembers {
        AclMembers {
            users: self.users,
            hosts: self.hosts,
        }
    }
}

/// `atest acl …`.
#[derive(clap::Subcommand)]
pub enum AclAction {
    /// Create an ACL group (admins only).
    Create {
        name: String,
        #[command(flatten)]
        members: MemberArgs,
    },
    /// Add users and hosts to a group (admins only).
    Add {
        name: String,
        #[command(flatten)]
        members: MemberArgs,
    },
    /// Remove users and hosts from a group (admins only).
    Remove {
        name: String,
        #[command(flatten)]
        members: MemberArgs,
    },
    /// List the groups with their users and hosts.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn show(group: &AclView) {
    println!(
        "{}: users {}; hosts {}",
        group.name,
        group.users.join(","),
        group.hosts.join(",")
    );
}

/// Carries out one `atest acl` command.
pub fn run(client: &Client, action: AclAction) -> Result<(), String> {
    let group = match action {
        AclAction::Create { name, members } => {
            let members = members.members();
            let body = AclView {
                name,
                users: members.users,
                hosts: members.hosts,
            };
            client.create_acl(&body)
        }
        AclAction::Add { name, members } => client.acl_add(&name, &members.members()),
        AclAction::Remove { name, members } => client.acl_remove(&name, &members.members()),
        AclAction::List { json } => {
            let groups = client.acls().map_err(|e| e.to_string())?;
            if json {
                print_json(&groups);
            } else {
                let rows = groups
                    .into_iter()
                    .map(|g| vec![g.name, g.users.join(","), g.hosts.join(",")])
                    .collect();
                table(&["NAME", "USERS", "HOSTS"], rows);
            }
            return Ok(());
        }
    };
    show(&group.map_err(|e| e.to_string())?);
    Ok(())
}
