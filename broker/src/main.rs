//! `runnel-broker`: parse the configuration, start the broker, stop it on SIGTERM/SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use runnel_broker::broker::Broker;
use runnel_broker::config::{help_text, Command, Config};
use runnel_broker::fsio::RealFs;
use tracing::{error, info, warn};

fn main() -> ExitCode {
    let command = match Config::from_args(std::env::args().skip(1), std::env::vars()) {
        Ok(command) => command,
        Err(err) => {
            eprintln!("runnel-broker: {err}");
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            print!("{}", help_text());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("runnel-broker {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => *config,
    };
    runnel_broker::telemetry::init();
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(error = %err, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let broker = match Broker::start(config, Arc::new(RealFs), None).await {
        Ok(broker) => broker,
        Err(err) => {
            error!(error = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string), "failed to start");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    match broker.shutdown().await {
        Ok(()) => {
            info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!(error = %err, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("failed to install signal handlers; stopping only when killed");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
