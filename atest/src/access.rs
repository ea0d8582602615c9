//! `atest user …`, `atest token …`, `atest acl …` and `atest whoami`: who may use the
//! lab, with which tokens, on which hosts.

use crate::output::{clean, print_json, table};
use api::{AclMembers, AclView, Client};

/// `atest user …`.
#[derive(clap::Subcommand)]
pub enum UserAction {
    /// Create a user (admins only) and print its first token, alone on stdout.
    Create {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// `atest token …`.
#[derive(clap::Subcommand)]
pub enum TokenAction {
    /// Create another token for yourself and print it, alone on stdout.
    Create,
    /// List your tokens (every user's, for an admin), without their secrets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (yours, or anyone's for an admin).
    Revoke { id: i64 },
}

/// `atest acl …`.
#[derive(clap::Subcommand)]
pub enum AclAction {
    /// Create an ACL group (admins only).
    Create {
        name: String,
        #[command(flatten)]
        members: Members,
    },
    /// Add users and hosts to an ACL group (admins only).
    Add {
        name: String,
        #[command(flatten)]
        members: Members,
    },
    /// Remove users and hosts from an ACL group (admins only).
    Remove {
        name: String,
        #[command(flatten)]
        members: Members,
    },
    /// List ACL groups with their users and hosts.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// `--users U1,U2 --hosts H1,H2`.
#[derive(clap::Args)]
pub struct Members {
    /// Users, comma-separated.
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Hosts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
}

impl From<Members> for AclMembers {
    fn from(members: Members) -> Self {
        Self {
            users: members.users,
            hosts: members.hosts,
        }
    }
}

/// Carries out one `atest user` command.
pub fn run_user(client: &Client, action: UserAction) -> Result<(), String> {
    match action {
        UserAction::Create { name, admin } => {
            let created = client
                .create_user(&name, admin)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "user {} created{}; its token (id {}) is shown once:",
                clean(&created.user.name),
                if created.user.admin { " (admin)" } else { "" },
                created.token.id
            );
            println!("{}", created.token.token);
        }
        UserAction::List { json } => {
            let users = client.users().map_err(|e| e.to_string())?;
            if json {
                print_json(&users);
            } else {
                let rows = users
                    .into_iter()
                    .map(|u| {
                        vec![
                            clean(&u.name),
                            if u.admin { "yes" } else { "no" }.into(),
                            clean(&u.acl_groups.join(",")),
                            u.created,
                        ]
                    })
                    .collect();
                table(&["USER", "ADMIN", "ACL GROUPS", "CREATED"], rows);
            }
        }
    }
    Ok(())
}

/// Carries out one `atest token` command.
pub fn run_token(client: &Client, action: TokenAction) -> Result<(), String> {
    match action {
        TokenAction::Create => {
            let created = client.create_token().map_err(|e| e.to_string())?;
            eprintln!("token {} created; it is shown once:", created.id);
            println!("{}", created.token);
        }
        TokenAction::List { json } => {
            let tokens = client.tokens().map_err(|e| e.to_string())?;
            if json {
                print_json(&tokens);
            } else {
                let rows = tokens
                    .into_iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            clean(&t.user),
                            t.created,
                            t.revoked.unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                table(&["ID", "USER", "CREATED", "REVOKED"], rows);
            }
        }
        TokenAction::Revoke { id } => {
            client.revoke_token(id).map_err(|e| e.to_string())?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// Carries out one `atest acl` command.
pub fn run_acl(client: &Client, action: AclAction) -> Result<(), String> {
    let shown = match action {
        AclAction::Create { name, members } => client.create_acl(&AclView {
            name,
            users: members.users,
            hosts: members.hosts,
        }),
        AclAction::Add { name, members } => client.acl_add(&name, &members.into()),
        AclAction::Remove { name, members } => client.acl_remove(&name, &members.into()),
        AclAction::List { json } => {
            let acls = client.acls().map_err(|e| e.to_string())?;
            if json {
                print_json(&acls);
            } else {
                table(
                    &["ACL GROUP", "USERS", "HOSTS"],
                    acls.iter().map(acl_row).collect(),
                );
            }
            return Ok(());
        }
    }
    .map_err(|e| e.to_string())?;
    table(&["ACL GROUP", "USERS", "HOSTS"], vec![acl_row(&shown)]);
    Ok(())
}

fn acl_row(acl: &AclView) -> Vec<String> {
    vec![
        clean(&acl.name),
        clean(&acl.users.join(",")),
        clean(&acl.hosts.join(",")),
    ]
}

/// `atest whoami`: the user the scheduler takes this token for.
pub fn whoami(client: &Client) -> Result<(), String> {
    let me = client.whoami().map_err(|e| e.to_string())?;
    println!(
        "{}{}",
        clean(&me.name),
        if me.admin { " (admin)" } else { "" }
    );
    Ok(())
}
