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

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    };
    // The runtime is left to the end of the process, not shut down. A lapin connection
    // still trying to reach an unreachable broker has a thread of its own blocked on a
    // connect task of this runtime; shutting the runtime down cancels that task under
    // it, and the thread panics ("Task did not complete: task N was cancelled").
    // Everything the worker owns has stopped by now (drained, journal written,
    // connections closed), so nothing is lost by not tearing the runtime down.
    std::mem::forget(runtime);
    code
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
