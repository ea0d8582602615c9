//! `atest drone …` and `atest drone-set …`: the drones' load and switches, and the
//! sets of drones a job may be limited to.

use crate::output::{opt, print_json, table};
use api::Client;

/// `atest drone …`.
#[derive(clap::Subcommand)]
pub enum DroneAction {
    /// List drones with their load.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Let the drone take new work.
    Enable { name: String },
    /// Send the drone no new work; what runs on it finishes.
    Disable { name: String },
    /// Change how many entries the drone runs at once (kept across restarts).
    SetCapacity { name: String, capacity: i32 },
}

/// `atest drone-set …`.
#[derive(clap::Subcommand)]
pub enum DroneSetAction {
    /// Create a drone set.
    Create {
        name: String,
        /// Its drones (names from [SCHEDULER] drones).
        #[arg(long, value_delimiter = ',', required = true)]
        drones: Vec<String>,
    },
    /// List drone sets.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Carries out one `atest drone` command.
pub fn run(client: &Client, action: DroneAction) -> Result<(), String> {
    let e = |e: api::ClientError| e.to_string();
    match action {
        DroneAction::List { json } => list(client, json)?,
        DroneAction::Enable { name } => {
            client.enable_drone(&name).map_err(e)?;
            println!("drone {name} enabled");
        }
        DroneAction::Disable { name } => {
            client.disable_drone(&name).map_err(e)?;
            println!("drone {name} disabled: it gets no new work; running entries finish");
        }
        DroneAction::SetCapacity { name, capacity } => {
            client.set_capacity(&name, capacity).map_err(e)?;
            println!("drone {name} capacity {capacity}");
        }
    }
    Ok(())
}

fn list(client: &Client, json: bool) -> Result<(), String> {
    let drones = client.drones().map_err(|e| e.to_string())?;
    if json {
        print_json(&drones);
        return Ok(());
    }
    table(
        &[
            "DRONE",
            "STATUS",
            "ENABLED",
            "RUNNING",
            "QUEUED",
            "CAPACITY",
            "FREE MB",
            "LAST HEARTBEAT",
        ],
        drones
            .into_iter()
            .map(|d| {
                vec![
                    d.name,
                    d.status,
                    d.enabled.to_string(),
                    d.running.to_string(),
                    opt(&d.queued),
                    d.capacity.to_string(),
                    opt(&d.free_mb),
                    opt(&d.last_heartbeat),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// Carries out one `atest drone-set` command.
pub fn run_set(client: &Client, action: DroneSetAction) -> Result<(), String> {
    match action {
        DroneSetAction::Create { name, drones } => {
            client
                .create_drone_set(&name, drones)
                .map_err(|e| e.to_string())?;
            println!("{name}");
        }
        DroneSetAction::List { json } => {
            let sets = client.drone_sets().map_err(|e| e.to_string())?;
            if json {
                print_json(&sets);
            } else {
                table(
                    &["DRONE SET", "DRONES"],
                    sets.into_iter()
                        .map(|s| vec![s.name, s.drones.join(",")])
                        .collect(),
                );
            }
        }
    }
    Ok(())
}
