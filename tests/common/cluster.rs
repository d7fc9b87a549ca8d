//! A real Redis Cluster for integration tests, in the manner of redis-rs
//! `redis-test/src/cluster.rs`: real `redis-server --cluster-enabled` processes joined with
//! `redis-cli --cluster create`, torn down on drop.
//!
//! Real servers rather than a mock, because the proxy's hard cases (MOVED and ASK during a
//! failover, a node that hangs, nodes that briefly disagree about the slot map) are about how real
//! nodes behave, and a mock would only encode our guesses about that.
//!
//! Only std is used, so every test binary can include this file with `mod common;` without
//! adding dev-dependencies.
//!
//! Ports: each node also listens on a cluster bus port, `port + 10000`. Both are kept below 32768,
//! where Linux starts handing out ephemeral ports by default: above it, any outgoing connection on
//! the machine may be sitting on the bus port we picked, and the node then fails to start.
//! Several test binaries (and several tests in one binary) start clusters at the same time, so
//! ports are picked at random, checked, reserved within this process, and the whole start is
//! retried on new ports if a node still loses a race for its port.
//!
//! Leaks: `Drop` does not run for a cluster kept in a `static`, nor when the test process aborts
//! or is killed. A watchdog shell process per cluster therefore waits for the test process to go
//! away and then kills the nodes and removes their directory.

// Each test binary uses a different part of this module; the rest would be dead code there, and
// CI denies warnings.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const HOST: &str = "127.0.0.1";
const SLOT_COUNT: usize = 16384;
/// Redis's fixed offset from a node's client port to its cluster bus port.
const BUS_PORT_OFFSET: u16 = 10000;
/// Above the ports common services use, and low enough that `base + nodes + 10000` stays below
/// the ephemeral range (32768 and up).
const BASE_PORT_MIN: u16 = 12000;
const BASE_PORT_MAX: u16 = 21000;
/// Every attempt uses fresh ports, so this bounds how many port races we tolerate.
const START_ATTEMPTS: usize = 5;
/// `redis-cli --cluster create` waits for the nodes to join with no timeout of its own.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
const STARTUP_OK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fresh `redis-server` may take to answer with its own pid.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A node that does not answer within this is treated as unhealthy by the internal probes; a
/// SIGSTOPped node would otherwise hang them forever.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds `cli()`, so a test that talks to a stopped node fails instead of hanging.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// Far above any CLUSTER NODES or INFO reply of a test cluster.
const MAX_PROBE_REPLY: usize = 16 << 20;
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const LOG_TAIL_LINES: usize = 30;

/// A set of real `redis-server` processes formed into one Redis Cluster.
///
/// Node processes are children of the test process, so the test can kill, stop and restart them
/// to stage failures. Everything lives in one temporary directory that `Drop` (or, failing
/// that, the watchdog) removes.
pub struct RedisCluster {
    /// In creation order; `redis-cli --cluster create` decides which become masters, so ask
    /// `masters()` rather than assuming.
    pub nodes: Vec<Node>,
    dir: PathBuf,
    node_timeout_ms: u64,
    /// Kills the nodes if this process dies without running `Drop`; respawned by `restart()`
    /// because it is given the exact pids to kill.
    watchdog: Option<Child>,
}

/// One `redis-server` process of the cluster.
pub struct Node {
    /// The client port; the cluster bus is on `port + 10000`.
    pub port: u16,
    /// `None` after `kill()`: the node stays part of the cluster's membership, as a crashed node
    /// would, until `restart()`.
    pub child: Option<Child>,
    /// The cluster node id. It survives `restart()`, because the node reloads it from its
    /// `nodes.conf`; that is what lets a restarted node rejoin as the same member.
    pub id: String,
    /// Holds `nodes.conf`, `redis.log` and `stdout.log`, and outlives `kill()` so that
    /// `restart()` brings back the same node.
    pub dir: PathBuf,
    stopped: bool,
}

impl Node {
    /// The address as the cluster itself announces it, so it compares equal to what `MOVED`
    /// replies and `CLUSTER SLOTS` contain.
    pub fn addr(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    /// Whether the node can answer at all: spawned, not killed, not SIGSTOPped. Only such nodes
    /// are queried, since a stopped node accepts connections and then never replies.
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !self.stopped
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The end of the node's own log and of its stdout/stderr, for failure messages: startup
    /// errors such as a port already in use are only explained there.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["redis.log", "stdout.log"] {
            let path = self.dir.join(name);
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                continue;
            }
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out.push_str(&format!(
                "\n--- last {} lines of {} ---\n{}",
                tail.len(),
                path.display(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Starts the process without waiting for it, so all nodes of a cluster boot in parallel.
    fn launch(&mut self, node_timeout_ms: u64) -> Result<(), String> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        // Appending keeps the output of earlier runs of this node for post-mortems after
        // restart(); a file rather than a pipe means a leaked node never holds the test
        // runner's output open.
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .map_err(|e| format!("cannot open stdout.log in {}: {e}", self.dir.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot clone stdout.log handle: {e}"))?;
        let dir = self.dir.to_string_lossy().into_owned();
        let log = self.dir.join("redis.log").to_string_lossy().into_owned();
        let port = self.port.to_string();
        let timeout = node_timeout_ms.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", HOST, "--protected-mode", "no"])
            .args(["--daemonize", "no", "--dir", &dir, "--logfile", &log])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", &timeout])
            // No persistence: tests want speed, and nodes.conf (always written) is all that
            // restart() needs to bring a node back as the same member.
            .args(["--save", "", "--appendonly", "no"])
            // The topology changes only when a test changes it: replicas never move on their
            // own to orphaned or emptied masters.
            .args(["--cluster-allow-replica-migration", "no"])
            // A replica always attempts failover, however long its master has been gone, so a
            // slow CI machine cannot leave a shard without a master.
            .args(["--cluster-replica-validity-factor", "0"])
            // The default 5 s delay before a full sync would stall every new or restarted
            // replica, and wait_ok() waits for replicas to be in sync.
            .args(["--repl-diskless-sync-delay", "0"])
            // DEBUG SLEEP and friends are handy for staging slow or hung backends.
            .args(["--enable-debug-command", "yes"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        self.stopped = false;
        Ok(())
    }

    /// Answering on the port is not enough: during a port race another process may be the one
    /// answering. The node is ready when the server on the port reports our child's pid.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        let Some(pid) = self.pid() else {
            return Err(format!("node {} was never launched", self.port));
        };
        let pid_line = format!("process_id:{pid}");
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("unknown status ({e})")),
                None => Some("no process".to_string()),
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}) before it was ready{}",
                    self.port,
                    self.log_tail()
                ));
            }
            if let Ok(info) = query(self.port, &["INFO", "server"], PROBE_TIMEOUT) {
                if info.lines().any(|l| l.trim() == pid_line) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {} (pid {pid}) did not answer within {:?}{}",
                    self.port,
                    NODE_READY_TIMEOUT,
                    self.log_tail()
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a SIGSTOPped process.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("node {} is not running (killed?)", self.port));
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas_per_master` replicas each and waits until the
    /// cluster is settled (see `wait_ok`). A short `node_timeout_ms` (2000) keeps failover tests
    /// fast. Panics, with the nodes' logs, if no attempt succeeds.
    pub fn start(masters: usize, replicas_per_master: usize, node_timeout_ms: u64) -> RedisCluster {
        assert!(
            masters >= 3,
            "redis-cli --cluster create needs at least 3 masters, got {masters}"
        );
        check_tools();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let started = Instant::now();
            match Self::try_start(masters, replicas_per_master, node_timeout_ms) {
                Ok(cluster) => {
                    eprintln!(
                        "redis cluster of {masters} masters x {replicas_per_master} replicas on \
                         ports {:?} ready in {:.1?} ({})",
                        cluster.ports(),
                        started.elapsed(),
                        cluster.dir.display()
                    );
                    return cluster;
                }
                Err(e) => {
                    eprintln!("redis cluster start attempt {attempt}/{START_ATTEMPTS} failed: {e}");
                    failures.push(e);
                }
            }
        }
        panic!(
            "could not start a Redis Cluster of {masters} masters x {replicas_per_master} \
             replicas after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n======\n")
        );
    }

    /// One attempt on fresh ports. The cluster value exists from the first spawn on, so an
    /// early return drops it and cleans up whatever was started.
    fn try_start(
        masters: usize,
        replicas_per_master: usize,
        node_timeout_ms: u64,
    ) -> Result<RedisCluster, String> {
        let count = masters * (1 + replicas_per_master);
        let ports = reserve_ports(count);
        let dir = std::env::temp_dir().join(format!(
            "slotgate-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        // Left over from an earlier process that had the same pid; nothing of ours is in it.
        let _ = fs::remove_dir_all(&dir);
        let nodes = ports
            .iter()
            .map(|&port| Node {
                port,
                child: None,
                id: String::new(),
                dir: dir.join(port.to_string()),
                stopped: false,
            })
            .collect();
        let mut cluster = RedisCluster {
            nodes,
            dir,
            node_timeout_ms,
            watchdog: None,
        };
        for node in &mut cluster.nodes {
            node.launch(node_timeout_ms)?;
        }
        cluster.respawn_watchdog()?;
        for node in &mut cluster.nodes {
            node.wait_ready()?;
            node.id = query(node.port, &["CLUSTER", "MYID"], PROBE_TIMEOUT)?;
        }

        let mut create = Command::new("redis-cli");
        create
            .args(["--cluster", "create"])
            .args(cluster.addrs())
            .args(["--cluster-replicas", &replicas_per_master.to_string()])
            .arg("--cluster-yes");
        let out = run_with_timeout(create, CREATE_TIMEOUT)?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                cluster.logs()
            ));
        }
        // Right after create the nodes still gossip their way to one view; tests must not start
        // before they agree.
        cluster.wait_until_ok(STARTUP_OK_TIMEOUT)?;
        Ok(cluster)
    }

    /// Where the nodes keep their files; each node has a subdirectory named after its port.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The address to hand the proxy as its seed. It is the first node, whatever its role now;
    /// after `kill()`ing that node, use `addrs()`.
    pub fn seed_addr(&self) -> String {
        self.nodes[0].addr()
    }

    /// All nodes, including killed and stopped ones: the cluster still lists them as members.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(Node::addr).collect()
    }

    pub fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port} in cluster {:?}", self.ports()))
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        let ports = self.ports();
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port} in cluster {ports:?}"))
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args>` and returns its stdout, trimmed. Redis
    /// error replies come back as text (redis-cli exits 0 for them), so tests can assert on
    /// `MOVED ...` or `ERR ...`. Panics if redis-cli fails or takes longer than 30 s.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        self.try_cli(port, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `cli()` for nodes that may legitimately be down.
    pub fn try_cli(&self, port: u16, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", HOST, "-p", &port.to_string()]).args(args);
        let out = run_with_timeout(cmd, CLI_TIMEOUT)?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli -p {port} {}: {}: {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Ports of running nodes that consider themselves masters right now. Each node is asked
    /// about itself, because other nodes' views lag behind a failover.
    pub fn masters(&self) -> Vec<u16> {
        self.running_with_flag("master")
    }

    /// Ports of running nodes that consider themselves replicas right now.
    pub fn replicas(&self) -> Vec<u16> {
        self.running_with_flag("slave")
    }

    fn running_with_flag(&self, flag: &str) -> Vec<u16> {
        self.running()
            .filter(|n| self.own_line(n.port).has_flag(flag))
            .map(|n| n.port)
            .collect()
    }

    /// The master of `slot` as the first running node sees it. Views differ while the cluster
    /// is changing, so call `wait_ok` first when that matters.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        assert!(usize::from(slot) < SLOT_COUNT, "slot {slot} out of range");
        let observer = self
            .running()
            .next()
            .unwrap_or_else(|| panic!("no running node in cluster {:?}", self.ports()));
        let view = self.view(observer.port).unwrap_or_else(|e| panic!("{e}"));
        match slot_owners(&view)[usize::from(slot)] {
            0 => panic!("slot {slot} is not assigned (as seen by {})", observer.port),
            port => port,
        }
    }

    /// A running replica of `master_port` (the lowest port if there are several), by asking each
    /// node whom it replicates. Works for a killed master too, since its node id is known.
    pub fn replica_of(&self, master_port: u16) -> u16 {
        let master_id = self.node(master_port).id.clone();
        self.running()
            .find(|n| self.own_line(n.port).master_id.as_deref() == Some(master_id.as_str()))
            .map(|n| n.port)
            .unwrap_or_else(|| {
                panic!(
                    "no running replica of {master_port} ({master_id}){}",
                    self.describe()
                )
            })
    }

    /// SIGKILL, like a crash: the node gets no chance to tell the others. Its directory stays
    /// for `restart()`. Killing a dead node does nothing.
    pub fn kill(&mut self, port: u16) {
        self.node_mut(port).kill();
    }

    /// SIGSTOP: the node keeps its sockets open but never answers, the failure mode that
    /// timeouts (not connection errors) must catch.
    pub fn stop(&mut self, port: u16) {
        let node = self.node_mut(port);
        node.signal("-STOP");
        node.stopped = true;
    }

    pub fn cont(&mut self, port: u16) {
        let node = self.node_mut(port);
        node.signal("-CONT");
        node.stopped = false;
    }

    /// Starts the same node again from its directory, killing it first if it is still up. It
    /// rejoins as the same member (same id, from nodes.conf); a former master that lost its
    /// slots comes back as a replica. Returns once the node answers, not once the cluster has
    /// settled: call `wait_ok` for that.
    pub fn restart(&mut self, port: u16) {
        let node_timeout_ms = self.node_timeout_ms;
        let node = self.node_mut(port);
        node.kill();
        // The port was free while the node was down, so another test process may have taken
        // it; the error then carries the node's "address already in use" log line.
        let result = node
            .launch(node_timeout_ms)
            .and_then(|()| node.wait_ready());
        if let Err(e) = result {
            panic!("restart of node {port} failed: {e}");
        }
        if let Err(e) = self.respawn_watchdog() {
            panic!("restart of node {port}: {e}");
        }
    }

    /// Panics (with every node's view of the cluster) unless the cluster settles within
    /// `timeout`; see `check_ok` for what settled means.
    pub fn wait_ok(&self, timeout: Duration) {
        if let Err(e) = self.wait_until_ok(timeout) {
            panic!("{e}");
        }
    }

    fn wait_until_ok(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.check_ok() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "cluster not ok after {timeout:?}: {last}{}",
                    self.describe()
                ));
            }
            sleep(POLL_INTERVAL);
        }
    }

    /// `Ok` when the running nodes agree and can serve every slot. `cluster_state:ok` alone is
    /// not enough: right after create, and during the node timeout after a kill, nodes report
    /// ok while they still disagree about, or point at a dead, master. Settled means, across
    /// all running (not killed, not stopped) nodes:
    /// - each reports `cluster_state:ok`;
    /// - each knows every running node, connected and not flagged fail, pfail or handshake;
    /// - each has the same slot -> master map, covering all 16384 slots with running masters;
    /// - each agrees with every node on that node's role and master;
    /// - each replica's link to its master is up.
    pub fn check_ok(&self) -> Result<(), String> {
        let running: Vec<u16> = self.running().map(|n| n.port).collect();
        if running.is_empty() {
            return Err("no running nodes".to_string());
        }
        let mut views = Vec::with_capacity(running.len());
        for &port in &running {
            let info = query(port, &["CLUSTER", "INFO"], PROBE_TIMEOUT)?;
            let state = info_field(&info, "cluster_state").unwrap_or("missing");
            if state != "ok" {
                return Err(format!("node {port}: cluster_state:{state}"));
            }
            views.push((port, self.view(port)?));
        }

        let (first_port, first_view) = &views[0];
        let owners = slot_owners(first_view);
        for (slot, &owner) in owners.iter().enumerate() {
            if owner == 0 {
                return Err(format!(
                    "slot {slot} has no master (as seen by {first_port})"
                ));
            }
            if !running.contains(&owner) {
                return Err(format!(
                    "slot {slot} is still served by {owner}, which is not running"
                ));
            }
        }

        for (port, view) in &views {
            for &other in &running {
                let Some(line) = view.iter().find(|l| l.port == other) else {
                    return Err(format!("node {port} does not know node {other} yet"));
                };
                if let Some(bad) = ["fail", "fail?", "handshake", "noaddr"]
                    .into_iter()
                    .find(|f| line.has_flag(f))
                {
                    return Err(format!("node {port} flags node {other} as {bad}"));
                }
                if !line.connected {
                    return Err(format!("node {port} has no link to node {other}"));
                }
            }
            let theirs = slot_owners(view);
            if let Some(slot) = (0..SLOT_COUNT).find(|&s| theirs[s] != owners[s]) {
                return Err(format!(
                    "nodes disagree on slot {slot}: {first_port} says {}, {port} says {}",
                    owners[slot], theirs[slot]
                ));
            }
        }

        for (port, view) in &views {
            let own = own_line(view).ok_or_else(|| format!("node {port} has no myself line"))?;
            let own_role = own.role();
            for (other, other_view) in &views {
                let seen = other_view
                    .iter()
                    .find(|l| l.id == own.id)
                    .map(NodeLine::role);
                if seen.as_ref() != Some(&own_role) {
                    return Err(format!(
                        "node {port} is {own_role:?} but node {other} sees it as {seen:?}"
                    ));
                }
            }
            if own.has_flag("slave") {
                let info = query(*port, &["INFO", "replication"], PROBE_TIMEOUT)?;
                let link = info_field(&info, "master_link_status").unwrap_or("missing");
                if link != "up" {
                    return Err(format!("replica {port}: master_link_status:{link}"));
                }
            }
        }
        Ok(())
    }

    /// Waits until every running replica has received everything its master had when this was
    /// called. Use it before killing a master to make "no acknowledged write is lost" a fair
    /// assertion: replication is asynchronous, and a separate connection's WAIT does not cover
    /// another connection's writes.
    pub fn wait_replicas_synced(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut targets = Vec::new();
        for replica in self.running() {
            let own = self.own_line(replica.port);
            let Some(master_id) = own.master_id else {
                continue;
            };
            let Some(master) = self.nodes.iter().find(|n| n.id == master_id) else {
                continue;
            };
            if !master.is_running() {
                continue;
            }
            let info = query(master.port, &["INFO", "replication"], PROBE_TIMEOUT)
                .unwrap_or_else(|e| panic!("{e}"));
            let offset: u64 = info_field(&info, "master_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("master {} reports no master_repl_offset", master.port));
            targets.push((replica.port, offset));
        }
        for (replica, target) in targets {
            loop {
                let seen = query(replica, &["INFO", "replication"], PROBE_TIMEOUT)
                    .ok()
                    .and_then(|info| {
                        info_field(&info, "slave_repl_offset").and_then(|v| v.parse::<u64>().ok())
                    });
                if seen.is_some_and(|s| s >= target) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {replica} at offset {seen:?}, not {target}, after {timeout:?}"
                );
                sleep(Duration::from_millis(20));
            }
        }
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    fn view(&self, port: u16) -> Result<Vec<NodeLine>, String> {
        let text = query(port, &["CLUSTER", "NODES"], PROBE_TIMEOUT)?;
        parse_cluster_nodes(&text).map_err(|e| format!("node {port}: {e}"))
    }

    fn own_line(&self, port: u16) -> NodeLine {
        let view = self.view(port).unwrap_or_else(|e| panic!("{e}"));
        view.into_iter()
            .find(|l| l.has_flag("myself"))
            .unwrap_or_else(|| panic!("node {port}: CLUSTER NODES has no myself line"))
    }

    /// Every node's state and own view of the cluster, for failure messages.
    fn describe(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let state = match (&node.child, node.stopped) {
                (None, _) => "killed".to_string(),
                (Some(c), true) => format!("pid {}, SIGSTOPped", c.id()),
                (Some(c), false) => format!("pid {}", c.id()),
            };
            out.push_str(&format!("\n--- node {} ({state}) ", node.port));
            if node.is_running() {
                match query(node.port, &["CLUSTER", "NODES"], PROBE_TIMEOUT) {
                    Ok(text) => out.push_str(&format!("CLUSTER NODES:\n{}", text.trim_end())),
                    Err(e) => out.push_str(&e),
                }
            }
        }
        out
    }

    fn logs(&self) -> String {
        self.nodes.iter().map(Node::log_tail).collect()
    }

    /// The watchdog gets the pids to kill as arguments rather than looking them up later, so it
    /// can only ever kill our own nodes; hence a new one whenever a pid changes. It runs in its
    /// own process group so that a Ctrl-C on the test run does not stop it from cleaning up.
    fn respawn_watchdog(&mut self) -> Result<(), String> {
        const SCRIPT: &str = r#"dir=$1; owner=$2; shift 2
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
kill -9 "$@" 2>/dev/null
[ -n "$dir" ] && rm -rf "$dir""#;
        let pids: Vec<String> = self
            .nodes
            .iter()
            .filter_map(Node::pid)
            .map(|p| p.to_string())
            .collect();
        let new = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("slotgate-cluster-watchdog")
            .arg(&self.dir)
            .arg(std::process::id().to_string())
            .args(&pids)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the watchdog shell: {e}"))?;
        // The new one is watching before the old one goes, so there is no unguarded moment.
        if let Some(mut old) = self.watchdog.replace(new) {
            let _ = old.kill();
            let _ = old.wait();
        }
        Ok(())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let mut reserved = reserved_ports()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for node in &self.nodes {
            reserved.remove(&node.port);
        }
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: Option<String>,
    connected: bool,
    slots: Vec<(u16, u16)>,
}

#[derive(Debug, PartialEq)]
enum Role {
    Master,
    ReplicaOf(String),
}

impl NodeLine {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn role(&self) -> Role {
        match &self.master_id {
            Some(id) => Role::ReplicaOf(id.clone()),
            None => Role::Master,
        }
    }
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`
fn parse_cluster_nodes(text: &str) -> Result<Vec<NodeLine>, String> {
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            return Err(format!("short CLUSTER NODES line: {line:?}"));
        }
        let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("bad address in CLUSTER NODES line: {line:?}"))?;
        let mut slots = Vec::new();
        // "[slot->-id]" and "[slot-<-id]" mark slots being migrated; ownership is unchanged.
        for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            match (start.parse::<u16>(), end.parse::<u16>()) {
                (Ok(start), Ok(end)) if start <= end && usize::from(end) < SLOT_COUNT => {
                    slots.push((start, end));
                }
                _ => return Err(format!("bad slot range {range:?} in: {line:?}")),
            }
        }
        lines.push(NodeLine {
            id: fields[0].to_string(),
            port,
            flags: fields[2].split(',').map(str::to_string).collect(),
            master_id: (fields[3] != "-").then(|| fields[3].to_string()),
            connected: fields[7] == "connected",
            slots,
        });
    }
    Ok(lines)
}

fn own_line(view: &[NodeLine]) -> Option<&NodeLine> {
    view.iter().find(|l| l.has_flag("myself"))
}

/// The slot map as one port per slot (0 for unassigned), so that two views compare equal however
/// their ranges happen to be written.
fn slot_owners(view: &[NodeLine]) -> Vec<u16> {
    let mut owners = vec![0; SLOT_COUNT];
    for line in view {
        for &(start, end) in &line.slots {
            for owner in &mut owners[usize::from(start)..=usize::from(end)] {
                *owner = line.port;
            }
        }
    }
    owners
}

fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// A minimal RESP client for the harness's own probes. Unlike redis-cli it has a read timeout,
/// so a SIGSTOPped node makes a probe fail instead of hanging, and it costs no process spawn per
/// poll. It handles the reply types the probes get: simple strings, errors, integers and bulk
/// strings.
fn query(port: u16, args: &[&str], timeout: Duration) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let what = || format!("{addr} {}", args.join(" "));
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{}: {e}", what()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(&request)
        .map_err(|e| format!("{}: {e}", what()))?;
    let mut header = String::new();
    reader
        .read_line(&mut header)
        .map_err(|e| format!("{}: {e}", what()))?;
    let header = header.trim_end();
    let mut chars = header.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    match kind {
        Some('+' | ':') => Ok(rest.to_string()),
        Some('-') => Err(format!("{}: {rest}", what())),
        Some('$') => {
            let len: i64 = rest
                .parse()
                .map_err(|_| format!("{}: bad bulk length {rest:?}", what()))?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(String::new());
            };
            // Whatever answers on a port we probe may not be Redis; do not let it size our
            // allocation.
            if len > MAX_PROBE_REPLY {
                return Err(format!("{}: reply of {len} bytes is too large", what()));
            }
            let mut body = vec![0; len + 2];
            reader
                .read_exact(&mut body)
                .map_err(|e| format!("{}: {e}", what()))?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        None => Err(format!("{}: connection closed without a reply", what())),
        Some(_) => Err(format!("{}: unexpected reply {header:?}", what())),
    }
}

/// Runs a command to completion or kills it at `timeout`. Output is read on threads so a chatty
/// command cannot block on a full pipe while we wait for it.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {timeout:?} (is the node SIGSTOPped?)"
                ));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for {what}: {e}"));
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Ports handed to clusters of this process. Tests in one binary run on parallel threads, and a
/// bind check alone cannot see ports another thread has picked but not yet bound.
fn reserved_ports() -> &'static Mutex<HashSet<u16>> {
    static RESERVED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    RESERVED.get_or_init(Mutex::default)
}

/// A run of `count` consecutive ports, each with its bus port free right now. Other processes
/// can still take one before our node binds it; `start()` retries for that.
fn reserve_ports(count: usize) -> Vec<u16> {
    let span = usize::from(BASE_PORT_MAX - BASE_PORT_MIN);
    assert!(
        count > 0 && count < span,
        "cannot place {count} nodes in ports {BASE_PORT_MIN}..{BASE_PORT_MAX}"
    );
    for _ in 0..200 {
        let offset = random_u64() % (span - count) as u64;
        let base = BASE_PORT_MIN + offset as u16;
        let ports: Vec<u16> = (base..base + count as u16).collect();
        let mut reserved = reserved_ports()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let free = |p: u16| {
            !reserved.contains(&p)
                && TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()
                && TcpListener::bind((Ipv4Addr::LOCALHOST, p + BUS_PORT_OFFSET)).is_ok()
        };
        if ports.iter().all(|&p| free(p)) {
            reserved.extend(&ports);
            return ports;
        }
    }
    panic!("found no {count} free consecutive ports (and bus ports) in {BASE_PORT_MIN}..{BASE_PORT_MAX}");
}

/// std has no RNG, but `RandomState` is seeded from the OS per process; the clock and pid make
/// concurrent test processes diverge even if that seeding were weak.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Fails once per process with an actionable message, instead of a confusing spawn error per
/// node. Redis 7 is required for the cluster options used above.
fn check_tools() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECK.get_or_init(|| {
        let hint = "install it with scripts/install-redis.sh (Debian/Ubuntu: apt-get install -y \
                    redis-server redis-tools)";
        let version = Command::new("redis-server")
            .arg("--version")
            .output()
            .map_err(|e| format!("redis-server not found ({e}); {hint}"))?;
        let text = String::from_utf8_lossy(&version.stdout);
        let major: Option<u32> = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok());
        match major {
            Some(m) if m >= 7 => {}
            _ => {
                return Err(format!(
                    "need redis-server 7 or newer, found {:?}",
                    text.trim()
                ))
            }
        }
        Command::new("redis-cli")
            .arg("--version")
            .output()
            .map_err(|e| format!("redis-cli not found ({e}); {hint}"))?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
