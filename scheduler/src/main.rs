//! `autotest-scheduler --config FILE`.

use clap::Parser;
use common::config::Config;
use std::path::PathBuf;

/// The Autotest scheduler: dispatches jobs to drones over RabbitMQ.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Path to global_config.ini.
    #[arg(long, default_value = "/etc/autotest/global_config.ini")]
    config: PathBuf,
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
    let scheduler = scheduler::Scheduler::start(config).await?;
    scheduler.run(common::shutdown::on_signal()).await
}
