//! From a classified request to a reply: choose the master, split and merge multi-key commands,
//! follow the cluster's redirections.

mod error;
mod merge;
mod redirect;
mod router;
mod split;
mod table;

pub use error::RouteError;
pub use router::Router;
