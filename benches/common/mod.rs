//! What the load and failover benchmarks share: the entry point's `--bench` guard, slotgate as
//! a child process, what /proc and its /metrics say, the machine they ran on, and JSON helpers.
//!
//! Each bench includes this with `#[path = "common/mod.rs"] mod common;` (cargo takes only the
//! files directly in benches/ as targets) and uses only part of it, hence the `allow`.
#![allow(dead_code)]

pub mod json;
pub mod machine;
pub mod metrics;
pub mod proc;
pub mod slotgate;

use std::process::ExitCode;

/// The `main` of a bench that starts a real cluster. Under `cargo test --all-targets` there is no
/// `--bench` argument, and it only prints how to run it: no test run should pay for minutes of
/// Redis nodes. Bad arguments exit with 2 and the usage, a failed run with 1.
pub fn main<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(&[String]) -> Result<O, String>,
    bench: impl FnOnce(&O) -> Result<(), String>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("{name} benchmark: run with scripts/bench-{name}.sh");
        return ExitCode::SUCCESS;
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{name}: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    match bench(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name} benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}
