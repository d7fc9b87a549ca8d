//! The command line: parse flags, load and validate the config, start the runtime, and turn
//! signals into a drain (SIGTERM, Ctrl-C) or a reload (SIGHUP).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use slotgate::cli::{self, Cli};
use slotgate::config::Config;
use slotgate::error::AppError;
use slotgate::logging::{LevelChange, Logging};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

/// The exit code of a config that does not load, at start-up or for `--check-config`.
const BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_config.is_some() {
        return check_config(&cli);
    }
    let config = match cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("slotgate: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let logging = Logging::init(&config.log);
    match serve(cli, config, logging) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("slotgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config FILE`: the file, then the other flags, validated as at start-up.
fn check_config(cli: &Cli) -> ExitCode {
    match cli::load_config(cli) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("slotgate: {e}");
            ExitCode::from(BAD_CONFIG)
        }
    }
}

fn serve(cli: Cli, config: Config, logging: Logging) -> Result<(), AppError> {
    // Clients are served on shard threads that `app::run` starts; this runtime only accepts them,
    // refreshes the slot map, answers metrics scrapes and handles signals.
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
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (reload_tx, reloads) = mpsc::channel(1);
        let signals = Signals::install().map_err(AppError::Runtime)?;
        tokio::spawn(signals.handle(cli, logging, shutdown_tx, reload_tx));
        let shutdown = async {
            let _ = shutdown_rx.await;
        };
        slotgate::app::run_reloadable(config, listener, metrics, shutdown, reloads).await
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

/// The signals slotgate acts on, installed before it serves so that none arriving early is lost
/// to its default action.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// SIGTERM or Ctrl-C (what orchestrators and people send) starts the drain; a second one
    /// ends it at once. SIGHUP loads the config again.
    async fn handle(
        mut self,
        cli: Cli,
        logging: Logging,
        shutdown: oneshot::Sender<()>,
        reloads: mpsc::Sender<Config>,
    ) {
        let mut shutdown = Some(shutdown);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = self.term.recv() => {}
                _ = self.hup.recv() => {
                    reload(&cli, &logging, &reloads).await;
                    continue;
                }
            }
            match shutdown.take() {
                Some(tx) => {
                    tracing::info!("shutting down: draining clients");
                    let _ = tx.send(());
                }
                None => {
                    tracing::warn!("second signal: exiting without waiting for the drain");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// Loads the config as at start-up (the file, then the flags): a config that does not load
/// changes nothing; one that does sets the log filter here and goes to the application for the
/// rest.
async fn reload(cli: &Cli, logging: &Logging, reloads: &mpsc::Sender<Config>) {
    let config = match cli::load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "config reload failed; nothing changed");
            return;
        }
    };
    // First, so the lines the reload logs come at the new level.
    match logging.set_level(&config.log.level) {
        Ok(LevelChange::Applied) => {}
        Ok(LevelChange::OverriddenByEnv) => {
            tracing::info!("log.level not applied: RUST_LOG sets the filter")
        }
        Err(e) => tracing::warn!(error = %e, "log.level not applied"),
    }
    let _ = reloads.send(config).await;
}
