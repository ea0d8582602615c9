//! `autotest-scheduler --config FILE [--print-config | --get SECTION.KEY]`.

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
    /// Print the resolved config (defaults, `AUTOTEST_*` environment overrides and
    /// paths applied; secrets left out) as JSON, and exit.
    #[arg(long, conflicts_with = "get")]
    print_config: bool,
    /// Print one value, SECTION.KEY, as the file and the environment give it (empty
    /// when unset), and exit.
    #[arg(long, value_name = "SECTION.KEY")]
    get: Option<String>,
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
    let scheduler = scheduler::Scheduler::start(config).await?;
    scheduler.run(common::shutdown::on_signal()).await
}
