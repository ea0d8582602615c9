//! `atest label …`: create and list host labels.

use crate::output::print_json;
use api::Client;

/// `atest label …`.
#[derive(clap::Subcommand)]
pub enum LabelAction {
    /// Create a label.
    Create { name: String },
    /// List labels.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Carries out one `atest label` command.
pub fn run(client: &Client, action: LabelAction) -> Result<(), String> {
    match action {
        LabelAction::Create { name } => {
            client.create_label(&name).map_err(|e| e.to_string())?;
            println!("{name}");
        }
        LabelAction::List { json } => {
            let labels = client.labels().map_err(|e| e.to_string())?;
            if json {
                print_json(&labels);
            } else {
                for label in labels {
                    println!("{}", label.name);
                }
            }
        }
    }
    Ok(())
}
