//! From a classified request to a reply: choose the master, split and merge multi-key commands,
//! follow the cluster's redirections.

mod cursor;
mod error;
mod fast;
mod follow;
mod keyspace;
#[cfg(test)]
mod keyspace_tests;
// Public so benches/hotpath.rs can measure splitting and merging without a cluster.
pub mod merge;
mod read_from;
mod redirect;
mod router;
#[cfg(test)]
mod router_tests;
mod routers;
mod script_cache;
mod script_merge;
mod scripts;
pub mod split;
pub mod status;
mod table;
mod transaction;
mod wait;

pub use error::RouteError;
pub use fast::{Started, Unsettled};
pub use read_from::ReadFrom;
pub use router::{RouteSettings, Router};
pub use routers::Routers;
pub use script_cache::{ScriptCache, ScriptLimits};
pub use transaction::{Reservation, Reserved};
