//! `atest`: the command-line client of the scheduler's HTTP API.
#![forbid(unsafe_code)]

mod access;
mod drones;
mod hosts;
mod job_list;
mod jobs;
mod labels;
mod output;
mod tests_cmd;
mod token;
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
    /// The API token to send (else `$ATEST_TOKEN`, else the file
    /// `~/.config/autotest/token`).
    #[arg(long, global = true, env = "ATEST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificates (PEM) to trust for an https:// scheduler (a lab's own CA), in
    /// place of the public roots.
    #[arg(long, global = true, env = "ATEST_CA_FILE", value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
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
    /// Users (admins create them; each gets a token).
    User {
        #[command(subcommand)]
        action: access::UserAction,
    },
    /// Your API tokens.
    Token {
        #[command(subcommand)]
        action: access::TokenAction,
    },
    /// ACL groups: which users may run jobs on which hosts.
    Acl {
        #[command(subcommand)]
        action: access::AclAction,
    },
    /// Tests parsed from the results of jobs.
    Test {
        #[command(subcommand)]
        action: tests_cmd::TestAction,
    },
    /// The user the scheduler takes your token for.
    Whoami,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // A scheduler whose certificate the client cannot check: say how to trust it.
            let hint = if message.contains("invalid peer certificate") {
                " (trust the lab's CA with --ca-file FILE or $ATEST_CA_FILE)"
            } else {
                ""
            };
            eprintln!("atest: {}{hint}", output::escape(&message));
            ExitCode::FAILURE
        }
    }
}

/// Carries out one command; the error is the one-line message for stderr.
fn run(args: Args) -> Result<(), String> {
    let mut client = Client::new(&args.server).with_token(token::resolve(args.token)?);
    if let Some(ca_file) = &args.ca_file {
        client = client.with_ca_file(ca_file).map_err(|e| e.to_string())?;
    }
    match args.command {
        Command::Host { action } => hosts::run(&client, action),
        Command::Job { action } => jobs::run(&client, action),
        Command::Drone { action } => drones::run(&client, action),
        Command::Label { action } => labels::run(&client, action),
        Command::DroneSet { action } => drones::run_set(&client, action),
        Command::User { action } => access::run_user(&client, action),
        Command::Token { action } => access::run_token(&client, action),
        Command::Acl { action } => access::run_acl(&client, action),
        Command::Test { action } => tests_cmd::run(&client, action),
        Command::Whoami => access::whoami(&client),
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
    fn acl_members_are_comma_separated_lists() {
        let args = Args::try_parse_from([
            "atest", "acl", "create", "lab-a", "--users", "ann,bob", "--hosts", "h1",
        ])
        .expect("parses");
        let Command::Acl {
            action: access::AclAction::Create { name, members },
        } = args.command
        else {
            panic!("not acl create");
        };
        let members: api::AclMembers = members.into();
        assert_eq!(name, "lab-a");
        assert_eq!(members.users, ["ann", "bob"]);
        assert_eq!(members.hosts, ["h1"]);
    }

    #[test]
    fn server_comes_from_the_flag_before_the_default() {
        let args = Args::try_parse_from(["atest", "--server", "http://h:1", "drone", "list"])
            .expect("parses");
        assert_eq!(args.server, "http://h:1");
    }
}
