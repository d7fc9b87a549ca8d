//! slotgate as a child process, the way it is deployed, and what the kernel and its /metrics say
//! about it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// Far above any /metrics page; bounds what a confused peer can make us buffer.
const MAX_HTTP_BODY: u64 = 1 << 20;
/// Free ports are picked by binding port 0, so another process can take one before slotgate
/// binds it; a new pair is tried then.
const START_ATTEMPTS: usize = 3;

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

/// CPU time of every thread of a process, in clock ticks. Kept apart because on loopback the
/// kernel side is large (a `write` also runs the receiver's TCP stack), and only the user side
/// is slotgate's own code.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ticks {
    pub user: u64,
    pub system: u64,
}

impl Ticks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    pub fn since(self, earlier: Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn plus(self, other: Ticks) -> Ticks {
        Ticks {
            user: self.user + other.user,
            system: self.system + other.system,
        }
    }
}

impl Probe {
    pub fn cpu_ticks(&self) -> Option<Ticks> {
        cpu_ticks(&format!("/proc/{}/stat", self.pid))
    }

    /// Blocking: reads /proc and scrapes /metrics.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            rss_kib: self.status_kib("VmRSS"),
            hwm_kib: self.status_kib("VmHWM"),
            backend_conns: http_get(self.metrics, "/metrics")
                .ok()
                .and_then(|(_, body)| metric_sum(&body, "slotgate_backend_connections")),
        }
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// The bench's own CPU, to show whether the client, not the target, was the bottleneck.
pub fn self_cpu_ticks() -> Option<Ticks> {
    cpu_ticks("/proc/self/stat")
}

fn cpu_ticks(path: &str) -> Option<Ticks> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses; the fields after its last ')' do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state field (3).
    Some(Ticks {
        user: fields.get(11)?.parse().ok()?,
        system: fields.get(12)?.parse().ok()?,
    })
}

/// Ticks per second of /proc's CPU times; 100 on every Linux we run on, hence the fallback.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

pub struct Slotgate {
    child: Child,
    /// Kills slotgate if the bench dies without running `Drop` (Ctrl-C, SIGKILL).
    watchdog: Option<Child>,
    pub addr: SocketAddr,
    pub probe: Probe,
    log: PathBuf,
}

impl Slotgate {
    /// Starts the release binary with nothing but flags and waits for `/readyz`.
    pub fn start(bin: &Path, seed: &str, log: &Path) -> Result<Slotgate, String> {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Slotgate::try_start(bin, seed, log) {
                Ok(sg) => return Ok(sg),
                Err(e) => failures.push(e),
            }
        }
        Err(failures.join("\n"))
    }

    fn try_start(bin: &Path, seed: &str, log: &Path) -> Result<Slotgate, String> {
        let (listen, metrics) = free_port_pair()?;
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(["--listen", &listen.to_string(), "--seed", seed])
            .args(["--metrics-listen", &metrics.to_string()])
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
            log: log.to_path_buf(),
        };
        sg.watchdog = Some(watchdog(pid)?);
        sg.wait_ready()?;
        Ok(sg)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("slotgate exited ({status}){}", self.log_tail()));
            }
            if matches!(http_get(self.probe.metrics, "/readyz"), Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "slotgate not ready after {READY_TIMEOUT:?}{}",
                    self.log_tail()
                ));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        format!("\n--- {}:\n{}", self.log.display(), tail.join("\n"))
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
fn watchdog(pid: u32) -> Result<Child, String> {
    const SCRIPT: &str = r#"owner=$1; pid=$2
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -9 "$pid" 2>/dev/null"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("slotgate-bench-watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog shell: {e}"))
}

fn free_port_pair() -> Result<(SocketAddr, SocketAddr), String> {
    // Both held at once, so the kernel cannot hand out the same port twice.
    let a = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let b = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let pair = (
        a.local_addr().map_err(|e| e.to_string())?,
        b.local_addr().map_err(|e| e.to_string())?,
    );
    Ok(pair)
}

/// Status code and body of `GET path`.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(MAX_HTTP_BODY)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP status line")?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// Sum over every label set of one Prometheus family; `None` if the family is absent.
fn metric_sum(body: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with([' ', '{']) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}
