//! slotgate as a child process, started from the release binary with the flags an operator would
//! use, and what can be observed of it from outside.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::metrics::{http_get, metric_sum};
use super::proc::{cpu_ticks, status_kib, Ticks};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Free ports are picked by binding port 0 and letting go, so another process can take one
/// before slotgate binds it; a new pair is tried then.
const START_ATTEMPTS: usize = 3;

/// The binary cargo built for the bench, in the bench profile, which is the release profile:
/// target/release/slotgate, the one scripts/bench-*.sh built.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_slotgate"))
}

/// Where the bench writes its JSON and logs: the target directory `bin` was built in.
pub fn target_dir(bin: &Path) -> PathBuf {
    bin.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// How to start slotgate.
pub struct Launch<'a> {
    pub bin: &'a Path,
    /// One `--seed` each, in this order.
    pub seeds: &'a [String],
    pub config: Option<&'a Path>,
    /// Takes slotgate's stdout and stderr.
    pub log: &'a Path,
    /// A directory the watchdog removes when the bench dies without cleaning up after itself.
    pub scratch: Option<&'a Path>,
}

/// Copyable so measurements can move to a blocking thread while the process itself stays put.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    pub pid: u32,
    pub metrics: SocketAddr,
}

/// What slotgate looks like at the end of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Footprint {
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
    pub backend_conns: Option<f64>,
}

impl Probe {
    pub fn cpu_ticks(&self) -> Option<Ticks> {
        cpu_ticks(self.pid)
    }

    /// Blocking: reads /proc and scrapes /metrics.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            rss_kib: status_kib(self.pid, "VmRSS"),
            hwm_kib: status_kib(self.pid, "VmHWM"),
            backend_conns: http_get(self.metrics, "/metrics")
                .ok()
                .and_then(|(_, body)| metric_sum(&body, "slotgate_backend_connections")),
        }
    }
}

/// The running process, killed on drop.
pub struct Slotgate {
    child: Child,
    /// Kills slotgate if the bench dies without running `Drop` (Ctrl-C, SIGKILL).
    watchdog: Option<Child>,
    pub addr: SocketAddr,
    pub probe: Probe,
}

impl Slotgate {
    /// Starts slotgate on free loopback ports and waits for `/readyz`.
    pub fn start(launch: &Launch) -> Result<Slotgate, String> {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Slotgate::try_start(launch) {
                Ok(sg) => return Ok(sg),
                Err(e) => failures.push(e),
            }
        }
        Err(failures.join("\n"))
    }

    fn try_start(launch: &Launch) -> Result<Slotgate, String> {
        let Launch { bin, log, .. } = *launch;
        let (listen, metrics) = free_port_pair()?;
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        if let Some(config) = launch.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--listen", &listen.to_string()]);
        cmd.args(["--metrics-listen", &metrics.to_string()]);
        for seed in launch.seeds {
            cmd.args(["--seed", seed]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let pid = child.id();
        let mut sg = Slotgate {
            child,
            watchdog: None,
            addr: listen,
            probe: Probe { pid, metrics },
        };
        sg.watchdog = Some(watchdog(pid, launch.scratch)?);
        sg.wait_ready(log)?;
        Ok(sg)
    }

    fn wait_ready(&mut self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("slotgate exited ({status}){}", log_tail(log)));
            }
            if matches!(http_get(self.probe.metrics, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "slotgate not ready after {READY_TIMEOUT:?}{}",
                    log_tail(log)
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Slotgate {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Given the exact pid, so it can only ever kill our own child; in its own process group so a
/// Ctrl-C on the bench does not stop it first.
fn watchdog(pid: u32, scratch: Option<&Path>) -> Result<Child, String> {
    const SCRIPT: &str = r#"owner=$1; pid=$2; dir=$3
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -9 "$pid" 2>/dev/null
[ -n "$dir" ] && rm -rf "$dir""#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("slotgate-bench-watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .arg(scratch.unwrap_or(Path::new("")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog shell: {e}"))
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    format!("\n--- {}:\n{}", log.display(), tail.join("\n"))
}

fn free_port_pair() -> Result<(SocketAddr, SocketAddr), String> {
    // Both held at once, so the kernel cannot hand out the same port twice.
    let a = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let b = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok((
        a.local_addr().map_err(|e| e.to_string())?,
        b.local_addr().map_err(|e| e.to_string())?,
    ))
}
