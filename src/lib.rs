//! slotgate: a Redis Cluster proxy. Cluster-unaware clients speak plain RESP to it as if it were
//! one Redis server; it routes every command to the master owning its hash slot.
//!
//! Data flows one way through the modules: `protocol` (bytes <-> frames) -> `command` (what the
//! request is) -> `cluster` (who owns which slot) -> `route` (split, dispatch, merge) ->
//! `backend` (pipelined node connections); `frontend` owns client connections and reply order.
#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod budget;
pub mod cli;
pub mod cluster;
pub mod command;
pub mod config;
pub mod error;
#[cfg(test)]
mod fake;
pub mod frontend;
pub mod health;
pub mod keepalive;
pub mod logging;
pub mod metrics;
pub mod order;
pub mod protocol;
mod reads;
pub mod reload;
pub mod route;
