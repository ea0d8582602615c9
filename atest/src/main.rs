//! `atest`: the command-line client of the scheduler's HTTP API.
#![forbid(unsafe_code)]

mod acl;
mod drones;
mod hosts;
mod jobs;
mod labels;
mod output;
mod user;

use api::Client;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Submit and follow Autotest jobs")]
struct Args {
    /// The scheduler's URL.
    #[arg(
        long,
        global = true,
        env = "ATEST_SERVER",
        default_value = "http://127.0.0.1:13467"
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hosts under test.
    Host {
        #[command(subcommand)]
        action: hosts::HostAction,
    },
    /// Jobs.
    Job {
        #[command(subcommand)]
        action: jobs::JobAction,
    },
    /// Drones.
    Drone {
        #[command(subcommand)]
        action: drones::DroneAction,
    },
    /// Host labels.
    Label {
        #[command(subcommand)]
        action: labels::LabelAction,
    },
    /// Drone sets: the drones a job may run on.
    #[command(name = "drone-set")]
    DroneSet {
        #[command(subcommand)]
        action: drones::DroneSetAction,
    },
    /// ACL groups: which users may run jobs on which hosts.
    Acl {
        #[command(subcommand)]
        action: acl::AclAction,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atest: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out one command; the error is the one-line message for stderr.
fn run(args: Args) -> Result<(), String> {
    // The token of the caller, sent as `Authorization: Bearer TOKEN`.
    let client = Client::new(&args.server).with_token(std::env::var("ATEST_TOKEN").ok());
    match args.command {
        Command::Host { action } => hosts::run(&client, action),
        Command::Job { action } => jobs::run(&client, action),
        Command::Drone { action } => drones::run(&client, action),
        Command::Label { action } => labels::run(&client, action),
        Command::DroneSet { action } => drones::run_set(&client, action),
        Command::Acl { action } => acl::run(&client, action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn job_create_takes_hosts_or_a_label() {
        let parsed = Args::try_parse_from([
            "atest",
            "job",
            "create",
            "--name",
            "n",
            "--control-file",
            "c",
            "--label",
            "x",
        ]);
        assert!(parsed.is_ok());
        let missing = Args::try_parse_from([
            "atest",
            "job",
            "create",
            "--name",
            "n",
            "--control-file",
            "c",
        ]);
        assert!(missing.is_err());
    }

    #[test]
    fn server_comes_from_the_flag_before_the_default() {
        let args = Args::try_parse_from(["atest", "--server", "http://h:1", "drone", "list"])
            .expect("parses");
        assert_eq!(args.server, "http://h:1");
    }
}
