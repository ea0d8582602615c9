//! `autotest-scheduler --config FILE [--print-config | --get SECTION.KEY]`, and
//! `autotest-scheduler --config FILE add-user NAME [--admin]`.

use clap::{Parser, Subcommand};
use common::config::Config;
use std::path::PathBuf;

/// The Autotest scheduler: dispatches jobs to drones over RabbitMQ.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Path to global_config.ini.
    #[arg(long, default_value = "/etc/autotest/global_config.ini", global = true)]
    config: PathBuf,
    /// Print the resolved config (defaults, `AUTOTEST_*` environment overrides and
    /// paths applied; secrets left out) as JSON, and exit.
    #[arg(long, conflicts_with = "get")]
    print_config: bool,
    /// Print one value, SECTION.KEY, as the file and the environment give it (empty
    /// when unset), and exit.
    #[arg(long, value_name = "SECTION.KEY")]
    get: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a user of the API (or give an existing one a new token) in the
    /// configured database, print the token alone on stdout, and exit.
    AddUser {
        /// The user's name (letters, digits, '-', '_', '.').
        name: String,
        /// Make the user an admin (an existing user too).
        #[arg(long)]
        admin: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    common::telemetry::init();
    let args = Args::parse();
    if let Some(name) = &args.get {
        println!("{}", common::config::value(&args.config, name)?);
        return Ok(());
    }
    let config = Config::load(&args.config)?;
    if args.print_config {
        println!("{:#}", config.to_json());
        return Ok(());
    }
    if let Some(Command::AddUser { name, admin }) = &args.command {
        return add_user(&config, name, *admin).await;
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    anyhow::ensure!(
        config.scheduler.enabled,
        "the scheduler is not enabled: [SCHEDULER] enable_scheduler is false in {} (set it to true to run it)",
        args.config.display()
    );
    let scheduler = scheduler::Scheduler::start(config).await?;
    scheduler.run(common::shutdown::on_signal()).await
}

/// `add-user`: the token alone on stdout, what happened on stderr.
async fn add_user(config: &Config, name: &str, admin: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let db = scheduler::db::Db::open(&config.database)
        .await
        .context("opening the database")?;
    let added = scheduler::auth::add_user(&db, name, admin)
        .await
        .with_context(|| format!("adding user {name}"))?;
    if added.made_admin {
        eprintln!("user {name} existed and is now an admin; a new token follows");
    } else if added.existed {
        eprintln!("user {name} existed; a new token follows (its other tokens stay valid)");
    }
    println!("{}", added.token);
    Ok(())
}
