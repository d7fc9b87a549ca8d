//! The command line: parse flags, load and validate the config, start the runtime.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use slotgate::cli::{self, Cli};
use slotgate::error::AppError;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slotgate: {e}");
            return ExitCode::from(2);
        }
    };
    let _logging = slotgate::logging::Logging::init(&config.log);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("slotgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: slotgate::config::Config) -> Result<(), AppError> {
    // Clients are served on shard threads that `app::run` starts; this runtime only accepts them,
    // refreshes the slot map and answers metrics scrapes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    rt.block_on(async {
        let listener = bind(&config.listen).await?;
        let metrics = match &config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        slotgate::app::run(config, listener, metrics, shutdown_signal()).await
    })
}

async fn bind(addr: &str) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// Ctrl-C or SIGTERM (what orchestrators send) both stop accepting and exit.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
