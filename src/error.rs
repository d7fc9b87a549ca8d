//! Errors that stop the proxy from starting or running. Per-request failures are
//! [`crate::route::RouteError`] and [`crate::backend::BackendError`]: they become error replies,
//! never process exits.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
