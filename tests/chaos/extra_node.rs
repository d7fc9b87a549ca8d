//! One more, empty, `redis-server` in cluster mode, for tests that grow the cluster; the harness
//! only starts whole clusters. Started with the harness's flags (tests/common/cluster.rs,
//! `Node::launch`), killed on drop, and guarded by a watchdog shell in case this process dies
//! without running `Drop`.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;

use crate::setup::{self, node_cmd, text};

/// The harness puts client ports in 12000..21000 and bus ports 10000 above, in 22000..31000.
/// These ports and their bus ports (31100..31900) stay clear of both, and of the ephemeral range
/// (32768 and up).
const PORT_MIN: u16 = 21100;
const PORT_MAX: u16 = 21900;
const BUS_PORT_OFFSET: u16 = 10000;
const ATTEMPTS: usize = 5;

pub struct ExtraNode {
    pub port: u16,
    child: Child,
    watchdog: Child,
    dir: PathBuf,
}

impl ExtraNode {
    /// Starts the node on a free port and waits until it answers with its own pid.
    pub fn start(node_timeout_ms: u64) -> ExtraNode {
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let Some(port) = free_port() else {
                failures.push("no free port".to_owned());
                continue;
            };
            match ExtraNode::try_start(port, node_timeout_ms) {
                Ok(node) => return node,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "could not start an extra redis-server:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(port: u16, node_timeout_ms: u64) -> Result<ExtraNode, String> {
        let dir = std::env::temp_dir().join(format!(
            "slotgate-chaos-extra-{}-{port}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let log = dir.join("redis.log").to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .args(["--dir", &dir.to_string_lossy(), "--logfile", &log])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &node_timeout_ms.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--cluster-allow-replica-migration", "no"])
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--enable-debug-command", "yes"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        let watchdog = spawn_watchdog(child.id(), &dir)?;
        let mut node = ExtraNode {
            port,
            child,
            watchdog,
            dir,
        };
        node.wait_ready()?;
        Ok(node)
    }

    /// Ready when the server on the port reports our child's pid: during a port race someone
    /// else may be answering.
    fn wait_ready(&mut self) -> Result<(), String> {
        let pid_line = format!("process_id:{}", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!(
                    "redis-server on {} exited ({status}):\n{log}",
                    self.port
                ));
            }
            if let Ok(info) = node_cmd(self.port, &["INFO", "server"]) {
                if text(&info).lines().any(|l| l.trim() == pid_line) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("redis-server on {} never answered", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `calls` of one command in `INFO commandstats`, e.g. `set`.
    pub fn command_calls(&self, command: &str) -> u64 {
        setup::command_calls(self.port, command)
    }

    pub fn dbsize(&self) -> i64 {
        match node_cmd(self.port, &["DBSIZE"]) {
            Ok(Value::Int(n)) => n,
            other => panic!("DBSIZE on {}: {other:?}", self.port),
        }
    }
}

impl Drop for ExtraNode {
    fn drop(&mut self) {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Kills the node and removes its directory once this process is gone, however it went. It
/// gets the exact pid, so it can only ever kill our node; its own process group keeps a Ctrl-C
/// on the test run from stopping it.
fn spawn_watchdog(pid: u32, dir: &std::path::Path) -> Result<Child, String> {
    const SCRIPT: &str = r#"dir=$1; owner=$2; node=$3
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -9 "$node" 2>/dev/null
rm -rf "$dir""#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("slotgate-chaos-watchdog")
        .arg(dir)
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the watchdog shell: {e}"))
}

/// A port whose bus port is free too, right now.
fn free_port() -> Option<u16> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let span = u32::from(PORT_MAX - PORT_MIN);
    (0..200u32).find_map(|i| {
        let port = PORT_MIN + ((seed.wrapping_add(i.wrapping_mul(7919))) % span) as u16;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        (free(port) && free(port + BUS_PORT_OFFSET)).then_some(port)
    })
}
