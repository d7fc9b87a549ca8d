//! Connections to cluster nodes: pipelined, multiplexed across all clients, re-established with
//! backoff. Knows nothing about slots; `route` decides where a request goes.

mod batch;
mod conn;
mod dedicated;
mod error;
mod health;
mod node;
mod pool;
mod settings;

pub(crate) use conn::open;
pub use dedicated::{Dedicate, Dedicated, Purpose, Replies};
pub use error::BackendError;
pub use health::Health;
pub use node::{Lane, Node, PendingReply};
pub use pool::Pool;
pub use settings::BackendSettings;
