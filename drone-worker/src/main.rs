//! `drone-worker --config FILE [--name NAME] [--print-config | --get SECTION.KEY]`: the
//! worker for one drone.

use anyhow::Context;
use clap::Parser;
use common::config::Config;
use common::names::DroneName;
use std::path::PathBuf;

/// Runs Autoserv for the jobs the scheduler sends to this drone's queue.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Path to global_config.ini.
    #[arg(long, default_value = "/etc/autotest/global_config.ini")]
    config: PathBuf,
    /// Print the resolved config (defaults, `AUTOTEST_*` environment overrides and
    /// paths applied; secrets left out) as JSON, and exit.
    #[arg(long, conflicts_with = "get")]
    print_config: bool,
    /// Print one value, SECTION.KEY, as the file and the environment give it (empty
    /// when unset), and exit.
    #[arg(long, value_name = "SECTION.KEY")]
    get: Option<String>,
    /// This drone's name, as listed in [SCHEDULER] drones (default: the host name).
    #[arg(long)]
    name: Option<String>,
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
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let name = match args.name {
        Some(name) => name,
        // The short name: `drone1` for `drone1.lab.example`.
        None => common::hostname()
            .context("cannot read the host name; pass --name")?
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let name = DroneName::new(name)?;
    let worker = drone_worker::Worker::new(config, name)?;
    worker.run(common::shutdown::on_signal()).await
}
