//! `atest host …`: add, list, label, lock, unlock and repair hosts under test.

use crate::output::{print_json, table};
use crate::user::current_user;
use api::{ChangeLabels, Client, CreateHost, HostQuery};

/// `atest host …`.
#[derive(clap::Subcommand)]
pub enum HostAction {
    /// Add a host.
    Create {
        name: String,
        /// A label for the host (repeat for several); created if new.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// List hosts by name, a page at a time.
    List {
        /// At most this many hosts (at most 1000).
        #[arg(long, default_value_t = api::DEFAULT_LIMIT)]
        limit: u32,
        /// Continue after an earlier list: the cursor it printed.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Add or remove labels of a host.
    Label {
        name: String,
        #[arg(long = "add")]
        add: Vec<String>,
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// Lock a host: it gets no new work; what runs on it finishes.
    Lock {
        name: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Unlock a host (a host whose repair failed goes back in service as it is).
    Unlock { name: String },
    /// Run Autoserv's repair on a host (even one whose repair failed); prints the
    /// repair job's id. A repair that passes puts the host back in service.
    Repair { name: String },
}

/// Carries out one `atest host` command.
pub fn run(client: &Client, action: HostAction) -> Result<(), String> {
    let e = |e: api::ClientError| e.to_string();
    match action {
        HostAction::Create { name, labels } => {
            let host = client
                .create_host(&CreateHost { name, labels })
                .map_err(e)?;
            println!("{}", host.name);
        }
        HostAction::List {
            limit,
            cursor,
            json,
        } => list(
            client,
            HostQuery {
                limit: Some(limit),
                cursor,
            },
            json,
        )?,
        HostAction::Label { name, add, remove } => {
            client
                .change_labels(&name, &ChangeLabels { add, remove })
                .map_err(e)?;
            println!("{name}");
        }
        HostAction::Lock { name, reason } => {
            client.lock_host(&name, reason).map_err(e)?;
            println!("{name} locked");
        }
        HostAction::Unlock { name } => {
            client.unlock_host(&name).map_err(e)?;
            println!("{name} unlocked");
        }
        HostAction::Repair { name } => {
            let by = current_user(client)?;
            let id = client.repair_host(&name, &by).map_err(e)?;
            println!("{id}");
        }
    }
    Ok(())
}

fn list(client: &Client, query: HostQuery, json: bool) -> Result<(), String> {
    let limit = query.limit;
    let page = client.hosts_page(&query).map_err(|e| e.to_string())?;
    if json {
        print_json(&page);
        return Ok(());
    }
    table(
        &["HOST", "STATUS", "LOCKED", "LABELS"],
        page.hosts
            .into_iter()
            .map(|h| vec![h.name, h.status, h.locked.to_string(), h.labels.join(",")])
            .collect(),
    );
    if let Some(cursor) = page.next {
        let limit = match limit {
            Some(n) if n != api::DEFAULT_LIMIT => format!(" --limit {n}"),
            _ => String::new(),
        };
        eprintln!(
            "more hosts: atest host list{limit} --cursor {}",
            crate::output::escape(&cursor)
        );
    }
    Ok(())
}
