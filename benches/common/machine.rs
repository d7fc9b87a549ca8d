//! What a benchmark's numbers depend on besides the code: the commit, the machine and Redis.

use std::process::Command;

/// The short hash of HEAD, or "unknown" outside a git checkout.
pub fn git_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => "unknown".into(),
    }
}

/// Cores this process may use; 0 if the kernel does not say.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// "redis 7.2.4", from the `redis-server` on PATH that the cluster runs.
pub fn redis_version() -> String {
    let out = Command::new("redis-server").arg("--version").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let version = text.ok().and_then(|t| {
        t.split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(str::to_owned)
    });
    format!("redis {}", version.as_deref().unwrap_or("unknown"))
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg prints them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}
