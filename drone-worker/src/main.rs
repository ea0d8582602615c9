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

fn main() -> std::process::ExitCode {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async_main())
}

async fn async_main() -> std::process::ExitCode {
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
        None => hostname().context("cannot read the host name; pass --name")?,
    };
    let name = DroneName::new(name)?;
    let worker = drone_worker::Worker::new(config, name)?;
    worker.run(common::shutdown::on_signal()).await
}

fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string())
}
