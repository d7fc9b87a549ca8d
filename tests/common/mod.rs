//! Helpers shared by the integration tests. Every test binary compiles its own copy through
//! `mod common;` (tests/e2e/main.rs through `#[path]`); this directory is not a test target.
pub mod cluster;
// Not every binary starts a proxy (harness_selftest doesn't), and CI denies dead-code warnings.
#[allow(dead_code)]
pub mod proxy;
