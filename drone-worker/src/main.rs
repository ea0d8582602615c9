//! `drone-worker --config FILE [--name NAME]`: the worker for one drone.

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
    let config = Config::load(&args.config)?;
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
