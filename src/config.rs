//! The proxy's configuration: read it, then check it, before anything binds a socket.
//!
//! Every YAML call in the crate lives in this file, so swapping the YAML crate touches nothing
//! else; [`ConfigError::Parse`] carries the parser's message as a string for the same reason.
//! Every section sets `#[serde(default)]`, so a file names only what it changes, and
//! `deny_unknown_fields`, so a misspelt key is an error rather than a setting silently ignored.
//! [`Config::validate`] runs after every way of building a config (file, defaults, CLI flags) and
//! names the offending key as a dotted path in its error.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::budget::OutputLimits;
use crate::route::ReadFrom;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Upper bound of `protocol.max_bulk_len`: Redis itself caps `proto-max-bulk-len` well below
/// this, and a u64 keeps the constant meaningful on 32-bit targets.
const MAX_BULK_LEN_CAP: u64 = 4 << 30;
/// Upper bound of `workers`: far above any machine we run on, low enough that a typo (an extra
/// zero or three) fails here instead of exhausting threads at startup.
const MAX_WORKERS: usize = 1024;

/// Why a configuration could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read; the path is kept because the OS error alone does not say which.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not valid YAML, a value of the wrong type, or an unknown key. The parser's own message is
    /// kept as text (it names the key and its line and column) so the YAML crate's error type
    /// does not leak into the public API.
    #[error("cannot parse config{}: {message}", display_origin(.path))]
    Parse {
        path: Option<PathBuf>,
        message: String,
    },
    /// Well-formed but out of range or inconsistent. `key` is a dotted path such as
    /// `backend.op_timeout_ms` so the operator can find the line to change.
    #[error("invalid config value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn display_origin(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!(" file {}", p.display()))
        .unwrap_or_default()
}

fn invalid(key: &'static str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

/// Top-level configuration. Defaults are chosen so that only `seeds` has to be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address clients connect to, as `ip:port`. An IP rather than a hostname, so that which
    /// interface is exposed never depends on name resolution.
    pub listen: String,
    /// Cluster nodes (`host:port`) asked for the slot map at startup. Any reachable node will
    /// do; more than one only guards against the first being down.
    pub seeds: Vec<String>,
    /// Address of the HTTP endpoint serving `/metrics`, `/readyz` and `/livez`, as `ip:port`;
    /// `null` turns it off for deployments that scrape nothing.
    pub metrics_listen: Option<String>,
    /// Worker threads serving clients; 0 means one per core. Each worker is a single-threaded
    /// runtime with its own backend connections, and a client stays on one worker, so a request
    /// and its reply never wake another thread. One is best for a sidecar on a small machine
    /// it shares with its app.
    pub workers: usize,
    /// Clients connected at once. One more is answered `-ERR max number of clients reached`
    /// and closed, as Redis does, so a connection storm cannot exhaust the memory and file
    /// descriptors the clients already connected and the backends need.
    pub max_clients: usize,
    /// Limits applied to each client connection.
    pub client: ClientConfig,
    /// How the proxy talks to cluster nodes.
    pub backend: BackendConfig,
    /// How and how often the slot map is re-read.
    pub topology: TopologyConfig,
    /// Limits of the RESP parser, checked before allocating, so a hostile client cannot make the
    /// proxy reserve memory it announced but never sent.
    pub protocol: ProtocolConfig,
    /// The Lua scripts slotgate remembers, to load them again where a master lost them.
    pub scripts: ScriptsConfig,
    /// Which slow requests `SLOWLOG` keeps.
    pub slowlog: SlowlogConfig,
    /// Logging.
    pub log: LogConfig,
    /// What `/livez` and `/readyz` check.
    pub health: HealthConfig,
    /// How the proxy stops on SIGTERM or Ctrl-C.
    pub shutdown: ShutdownConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6380".to_owned(),
            seeds: Vec::new(),
            metrics_listen: Some("127.0.0.1:8379".to_owned()),
            workers: 0,
            max_clients: 10_000,
            client: ClientConfig::default(),
            backend: BackendConfig::default(),
            topology: TopologyConfig::default(),
            protocol: ProtocolConfig::default(),
            scripts: ScriptsConfig::default(),
            slowlog: SlowlogConfig::default(),
            log: LogConfig::default(),
            health: HealthConfig::default(),
            shutdown: ShutdownConfig::default(),
        }
    }
}

/// Per-client limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Requests one client may have in flight before the proxy stops reading from it. Replies
    /// must go back in order, so this bounds the memory a single fast pipeliner can hold.
    pub max_pipeline: usize,
    /// Seconds a client may stay silent before it is disconnected; 0 never disconnects, matching
    /// Redis's own `timeout 0` default, because pooled clients are often idle for long stretches.
    pub idle_timeout_secs: u64,
    /// Bytes of replies a client may leave unread in slotgate before it is disconnected, as
    /// Redis' `client-output-buffer-limit` hard limit. Also bounds one reply: raise it for
    /// values bigger than this.
    pub output_buffer_hard_bytes: usize,
    /// Bytes of unread replies that, held for `output_buffer_soft_secs` without a break, also
    /// disconnect the client; 0 turns the soft limit off. Above it (or half the hard limit) the
    /// client's requests are not read until it reads its replies.
    pub output_buffer_soft_bytes: usize,
    pub output_buffer_soft_secs: u64,
    /// The same three limits for a subscribed client's unread messages (Redis' `pubsub` class:
    /// 32 MiB, 8 MiB for 60 s). A subscriber that does not keep up is disconnected; the others
    /// still get every message.
    pub pubsub_output_buffer_hard_bytes: usize,
    pub pubsub_output_buffer_soft_bytes: usize,
    pub pubsub_output_buffer_soft_secs: u64,
    /// Seconds a client connection may be idle before TCP keepalive probes check that its host
    /// is still there; 0 sends none. A client that vanished without closing (a host powered
    /// off, a NAT that forgot the flow) would otherwise keep its seat for ever when
    /// `idle_timeout_secs` is 0.
    pub tcp_keepalive_secs: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            max_pipeline: 1024,
            idle_timeout_secs: 0,
            output_buffer_hard_bytes: 256 * MIB,
            output_buffer_soft_bytes: 64 * MIB,
            output_buffer_soft_secs: 60,
            pubsub_output_buffer_hard_bytes: 32 * MIB,
            pubsub_output_buffer_soft_bytes: 8 * MIB,
            pubsub_output_buffer_soft_secs: 60,
            tcp_keepalive_secs: 300,
        }
    }
}

impl ClientConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_output_limits(
            (
                "client.output_buffer_hard_bytes",
                self.output_buffer_hard_bytes,
            ),
            (
                "client.output_buffer_soft_bytes",
                self.output_buffer_soft_bytes,
            ),
        )?;
        check_output_limits(
            (
                "client.pubsub_output_buffer_hard_bytes",
                self.pubsub_output_buffer_hard_bytes,
            ),
            (
                "client.pubsub_output_buffer_soft_bytes",
                self.pubsub_output_buffer_soft_bytes,
            ),
        )?;
        check_range(
            "client.tcp_keepalive_secs",
            self.tcp_keepalive_secs,
            0,
            MAX_KEEPALIVE_SECS,
        )
    }

    pub fn output_limits(&self) -> OutputLimits {
        OutputLimits {
            hard: self.output_buffer_hard_bytes,
            soft: self.output_buffer_soft_bytes,
            soft_for: Duration::from_secs(self.output_buffer_soft_secs),
        }
    }

    pub fn pubsub_output_limits(&self) -> OutputLimits {
        OutputLimits {
            hard: self.pubsub_output_buffer_hard_bytes,
            soft: self.pubsub_output_buffer_soft_bytes,
            soft_for: Duration::from_secs(self.pubsub_output_buffer_soft_secs),
        }
    }

    /// `None` when idle clients are never disconnected, so callers cannot mistake 0 for "at once".
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    /// `None` when no keepalive probes are sent.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        keepalive(self.tcp_keepalive_secs)
    }
}

/// Connections from the proxy to cluster nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Pipelined connections each worker (see `workers`) keeps to each node. One is best for
    /// small requests: Redis serves a node's connections on one thread anyway, and one
    /// connection carries the biggest batches, so both slotgate and Redis make the fewest socket
    /// calls. A second hides one connection's head-of-line stall behind a very large value.
    pub connections_per_node: usize,
    /// Requests that may wait for a reply on one backend connection; beyond it callers wait for
    /// room, so a slow node pushes back on clients instead of growing a queue without bound.
    pub max_inflight_per_connection: usize,
    /// Milliseconds allowed for a TCP connect to a node before it counts as down.
    pub connect_timeout_ms: u64,
    /// Milliseconds a node may leave a connection's requests without any reply before it counts
    /// as hung: its waiting requests fail as timed out (or are replayed when safe) and the
    /// connection is dropped. Without it a node that stops answering would hold every client
    /// pipelined behind it forever.
    pub op_timeout_ms: u64,
    /// First delay, in milliseconds, before reconnecting to a node; it doubles on each failure.
    /// Must be above zero, since doubling zero never backs off.
    pub reconnect_backoff_min_ms: u64,
    /// Ceiling, in milliseconds, of the reconnect delay, so a recovered node is noticed soon.
    pub reconnect_backoff_max_ms: u64,
    /// Milliseconds a request waits while its slot's master is unreachable, for that master or
    /// the replica promoted in its place, before the client gets an error. A little above a
    /// typical cluster-node-timeout (15 s), so a failover completes inside it.
    pub hold_timeout_ms: u64,
    /// Connections of one client's own that slotgate may have open to one node at once, over
    /// every worker: one per client in a WATCH or transaction, or blocked in BLPOP and the like.
    /// Past it such a command gets an error instead of another socket.
    pub max_dedicated_per_node: usize,
    /// Where read-only commands go: `master`, `prefer_replica` (a healthy replica of the slot's
    /// shard, else its master) or `replica` (replicas only; a shard without a healthy one
    /// answers an error). Replicas lag their master, so a client may not read its own last
    /// write there; transactions and blocking commands always run on the master.
    pub read_from: ReadFrom,
    /// Seconds a node connection may be idle before TCP keepalive probes check the node is
    /// still there; 0 sends none. Shorter than the client's: an idle connection to a node that
    /// died without a word would fail the next request sent on it, and keepalive replaces it
    /// before one is.
    pub tcp_keepalive_secs: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            connections_per_node: 1,
            max_inflight_per_connection: 4096,
            max_dedicated_per_node: 1024,
            connect_timeout_ms: 1000,
            op_timeout_ms: 5000,
            reconnect_backoff_min_ms: 50,
            reconnect_backoff_max_ms: 2000,
            hold_timeout_ms: 17000,
            read_from: ReadFrom::Master,
            tcp_keepalive_secs: 60,
        }
    }
}

impl BackendConfig {
    /// `connect_timeout_ms` as a `Duration`, so the unit is fixed in one place.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    /// `op_timeout_ms` as a `Duration`.
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }
    /// `reconnect_backoff_min_ms` as a `Duration`.
    pub fn reconnect_backoff_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_backoff_min_ms)
    }
    /// `reconnect_backoff_max_ms` as a `Duration`.
    pub fn reconnect_backoff_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_backoff_max_ms)
    }
    /// `hold_timeout_ms` as a `Duration`.
    pub fn hold_timeout(&self) -> Duration {
        Duration::from_millis(self.hold_timeout_ms)
    }
    /// `None` when no keepalive probes are sent.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        keepalive(self.tcp_keepalive_secs)
    }
}

/// Reading the cluster's slot map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Milliseconds between periodic re-reads of the slot map. MOVED replies trigger a refresh
    /// on their own; this catches changes no request has run into yet, such as new replicas.
    pub refresh_interval_ms: u64,
    /// Least milliseconds between two refreshes, so a burst of MOVED replies during a resharding
    /// costs one `CLUSTER SLOTS` rather than thousands.
    pub min_refresh_interval_ms: u64,
    /// MOVED/ASK hops one request may follow before the client gets an error; a slot map that
    /// keeps pointing elsewhere means a cluster in flux, and looping would only add load.
    pub max_redirects: u32,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            refresh_interval_ms: 10_000,
            min_refresh_interval_ms: 100,
            max_redirects: 5,
        }
    }
}

impl TopologyConfig {
    /// `refresh_interval_ms` as a `Duration`.
    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval_ms)
    }
    /// `min_refresh_interval_ms` as a `Duration`.
    pub fn min_refresh_interval(&self) -> Duration {
        Duration::from_millis(self.min_refresh_interval_ms)
    }
}

/// RESP parser limits, in bytes or elements. The defaults match Redis's own, so anything a real
/// Redis accepts passes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Largest bulk string, in bytes (Redis's `proto-max-bulk-len` defaults to 512 MiB).
    pub max_bulk_len: usize,
    /// Most elements in one array; checked before reserving space for them.
    pub max_array_len: usize,
    /// Longest inline (telnet-style) command line, in bytes (Redis uses 64 KiB).
    pub max_inline_len: usize,
    /// Deepest nesting of arrays, maps and sets; bounds the parser's recursion.
    pub max_depth: usize,
    /// Largest whole frame, in bytes; at least `max_bulk_len`, since a frame holds its bulks.
    pub max_frame_len: usize,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * MIB,
            max_array_len: 1_048_576,
            max_inline_len: 64 * KIB,
            max_depth: 16,
            max_frame_len: 1024 * MIB,
        }
    }
}

/// The scripts clients load through slotgate (`SCRIPT LOAD`, `EVAL`), remembered so that an
/// `EVALSHA` a master answers with NOSCRIPT (a promoted replica, a restarted node) is healed by
/// loading the script there, instead of failing. Shared by all workers; the least recently used
/// script is forgotten first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptsConfig {
    /// Scripts remembered at most; 0 remembers none, so NOSCRIPT reaches clients as Redis sends
    /// it. Applications use a handful of scripts: more than this means bodies built per call.
    pub cache_max_scripts: usize,
    /// Bytes of script bodies remembered at most; a larger body is never remembered.
    pub cache_max_bytes: usize,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        Self {
            cache_max_scripts: 1024,
            cache_max_bytes: 16 * MIB,
        }
    }
}

impl ScriptsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "scripts.cache_max_scripts",
            self.cache_max_scripts,
            0,
            1_000_000,
        )?;
        check_range(
            "scripts.cache_max_bytes",
            self.cache_max_bytes,
            KIB,
            1024 * MIB,
        )
    }
}

/// Most entries `slowlog.max_len` may keep: an entry holds up to 32 arguments of 128 bytes, so
/// this bounds the log near 50 MiB.
const MAX_SLOWLOG_LEN: usize = 10_000;

/// `SLOWLOG`: requests slower than a threshold, kept as Redis keeps its slow commands, so the
/// tools that read a Redis slow log read slotgate's. The time is the client's: from the request
/// being read to its reply being written, backend round trip included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlowlogConfig {
    /// Microseconds a request must take to be logged, as Redis' `slowlog-log-slower-than`:
    /// -1 logs nothing, 0 logs every request.
    pub log_slower_than_us: i64,
    /// Entries kept, the oldest dropped first, as Redis' `slowlog-max-len`.
    pub max_len: usize,
}

impl Default for SlowlogConfig {
    fn default() -> Self {
        Self {
            log_slower_than_us: 10_000,
            max_len: 128,
        }
    }
}

impl SlowlogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_at_least("slowlog.log_slower_than_us", self.log_slower_than_us, -1)?;
        check_range("slowlog.max_len", self.max_len, 0, MAX_SLOWLOG_LEN)
    }

    /// The threshold, `None` when nothing is logged, so -1 never reads as a duration.
    pub fn slower_than(&self) -> Option<Duration> {
        u64::try_from(self.log_slower_than_us)
            .ok()
            .map(Duration::from_micros)
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: a level (`info`), or comma-separated `target=level` directives after an
    /// optional level (`warn,slotgate::route=debug`). Kept as text so it can be handed to the
    /// subscriber unchanged; checked here so a typo fails at startup, not silently.
    pub level: String,
    /// `plain` lines for people, or `json`, one object per line, for a log pipeline that
    /// would otherwise have to parse the plain text back into fields.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Time, level, target, message and fields on one line; coloured only on a terminal.
    #[default]
    Plain,
    /// One JSON object per line, the event's fields at its top level.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Plain,
        }
    }
}

/// The probes' rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Milliseconds a worker thread may go without running before `/livez` fails. Each worker
    /// records every 250 ms that it runs; one blocked (a deadlock, a blocking call, a runaway
    /// computation) hangs its clients while the main thread still answers probes. Well above
    /// any pause a healthy worker makes, since failing liveness restarts the process.
    pub worker_stall_timeout_ms: u64,
    /// Whether `/readyz` also requires every one of the 16384 slots to have a master. Off by
    /// default: every proxy of a tier sees the same cluster, so one shard without a master
    /// would take them all out of their Service at once, and clients would lose the healthy
    /// shards' keys as well. Turn it on for a proxy that should step aside whenever the cluster
    /// is incomplete, say when another route to the data exists.
    pub ready_requires_full_coverage: bool,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            worker_stall_timeout_ms: 10_000,
            ready_requires_full_coverage: false,
        }
    }
}

/// What SIGTERM and Ctrl-C do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Milliseconds the requests in flight get to finish after SIGTERM, while `/readyz` fails
    /// and no client is accepted; then the clients left are closed and the process exits. Long
    /// enough for a blocking command with a short timeout; 0 closes every client at once.
    pub drain_timeout_ms: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout_ms: 10_000,
        }
    }
}

impl ShutdownConfig {
    /// `drain_timeout_ms` as a `Duration`.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

impl Config {
    /// The smallest config that validates: defaults plus one seed.
    #[cfg(test)]
    pub(crate) fn minimal() -> Config {
        Config {
            seeds: vec!["127.0.0.1:7000".to_owned()],
            ..Config::default()
        }
    }

    /// Parses and validates: the only way the proxy should build a config from text.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        Self::parse_unvalidated(yaml, None)?.validate()
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_unvalidated(path)?.validate()
    }

    /// Reads and parses without validating, for callers (the CLI) that still have values to
    /// override; they must call [`Config::validate`] afterwards.
    pub fn load_unvalidated(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_unvalidated(&text, Some(path))
    }

    /// An empty (or comments-only) document yields the defaults, so a fresh file with
    /// everything commented out behaves like no file.
    ///
    /// The parser's message says where (line and column) and what; the key it was reading, as a
    /// dotted path, is put in front, since a type error alone ("invalid u64") does not name it.
    fn parse_unvalidated(yaml: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut options = serde_saphyr::Options::default();
        // One line, so the message reads as well in a log line as on a terminal.
        options.with_snippet = false;
        let mut key = None;
        serde_saphyr::with_deserializer_from_str_with_options(yaml, options, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                key = Some(e.path().to_string());
                e.into_inner()
            })
        })
        .map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_owned),
            message: match key.as_deref() {
                // The document itself, or a place the path tracker could not name.
                None | Some(".") | Some("?") => e.to_string(),
                Some(key) => format!("{key}: {e}"),
            },
        })
    }

    /// Checks every range and cross-field rule, returning the config unchanged when it passes.
    /// Taking `self` lets callers chain `Config::default().validate()?` and keeps "validated"
    /// a step every construction path goes through.
    pub fn validate(self) -> Result<Self, ConfigError> {
        check_socket_addr("listen", &self.listen)?;
        if self.seeds.is_empty() {
            return Err(invalid(
                "seeds",
                "at least one cluster node (host:port) is required",
            ));
        }
        for seed in &self.seeds {
            check_host_port(seed).map_err(|why| invalid("seeds", format!("{seed:?}: {why}")))?;
        }
        if let Some(addr) = &self.metrics_listen {
            check_socket_addr("metrics_listen", addr)?;
        }
        check_range("workers", self.workers, 0, MAX_WORKERS)?;
        check_at_least("max_clients", self.max_clients, 1)?;

        check_range("client.max_pipeline", self.client.max_pipeline, 1, 65_536)?;
        self.client.validate()?;
        self.backend.validate()?;
        self.topology.validate()?;
        self.protocol.validate()?;
        self.scripts.validate()?;
        self.slowlog.validate()?;
        check_log_filter(&self.log.level).map_err(|why| invalid("log.level", why))?;
        check_range(
            "health.worker_stall_timeout_ms",
            self.health.worker_stall_timeout_ms,
            1000,
            3_600_000,
        )?;
        check_range(
            "shutdown.drain_timeout_ms",
            self.shutdown.drain_timeout_ms,
            0,
            3_600_000,
        )?;
        Ok(self)
    }
}

impl BackendConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let b = self;
        check_range(
            "backend.connections_per_node",
            b.connections_per_node,
            1,
            64,
        )?;
        check_range(
            "backend.max_inflight_per_connection",
            b.max_inflight_per_connection,
            1,
            1_000_000,
        )?;
        check_range(
            "backend.max_dedicated_per_node",
            b.max_dedicated_per_node,
            1,
            100_000,
        )?;
        check_at_least("backend.connect_timeout_ms", b.connect_timeout_ms, 1)?;
        check_at_least("backend.op_timeout_ms", b.op_timeout_ms, 1)?;
        check_at_least("backend.hold_timeout_ms", b.hold_timeout_ms, 1)?;
        check_at_least(
            "backend.reconnect_backoff_min_ms",
            b.reconnect_backoff_min_ms,
            1,
        )?;
        if b.reconnect_backoff_max_ms < b.reconnect_backoff_min_ms {
            return Err(invalid(
                "backend.reconnect_backoff_max_ms",
                format!(
                    "{} is below backend.reconnect_backoff_min_ms ({})",
                    b.reconnect_backoff_max_ms, b.reconnect_backoff_min_ms
                ),
            ));
        }
        check_range(
            "backend.tcp_keepalive_secs",
            b.tcp_keepalive_secs,
            0,
            MAX_KEEPALIVE_SECS,
        )
    }
}

impl TopologyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let t = self;
        check_at_least("topology.refresh_interval_ms", t.refresh_interval_ms, 1)?;
        if t.min_refresh_interval_ms > t.refresh_interval_ms {
            return Err(invalid(
                "topology.min_refresh_interval_ms",
                format!(
                    "{} is above topology.refresh_interval_ms ({})",
                    t.min_refresh_interval_ms, t.refresh_interval_ms
                ),
            ));
        }
        check_range("topology.max_redirects", t.max_redirects, 1, 16)
    }
}

impl ProtocolConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let p = self;
        check_range(
            "protocol.max_bulk_len",
            p.max_bulk_len as u64,
            1,
            MAX_BULK_LEN_CAP,
        )?;
        check_at_least("protocol.max_array_len", p.max_array_len, 1)?;
        check_at_least("protocol.max_inline_len", p.max_inline_len, 1)?;
        check_range("protocol.max_depth", p.max_depth, 1, 128)?;
        if p.max_frame_len < p.max_bulk_len {
            return Err(invalid(
                "protocol.max_frame_len",
                format!(
                    "{} is below protocol.max_bulk_len ({})",
                    p.max_frame_len, p.max_bulk_len
                ),
            ));
        }
        Ok(())
    }
}

/// Longest idle time before the first keepalive probe that Linux accepts (`TCP_KEEPIDLE`).
const MAX_KEEPALIVE_SECS: u64 = 32_767;

/// Keepalive seconds as the socket wants them: 0 is off.
fn keepalive(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A hard limit of at least 64 KiB, and a soft one no higher than it.
fn check_output_limits(
    (hard_key, hard): (&'static str, usize),
    (soft_key, soft): (&'static str, usize),
) -> Result<(), ConfigError> {
    check_at_least(hard_key, hard, 64 * KIB)?;
    if soft > hard {
        return Err(invalid(
            soft_key,
            format!("{soft} is above {hard_key} ({hard})"),
        ));
    }
    Ok(())
}

fn check_at_least<T>(key: &'static str, value: T, min: T) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display,
{
    if value < min {
        return Err(invalid(key, format!("{value} is below the minimum {min}")));
    }
    Ok(())
}

fn check_range<T>(key: &'static str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + fmt::Display,
{
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("{value} is outside the allowed range {min}..={max}"),
        ));
    }
    Ok(())
}

/// Listen addresses must be literal `ip:port`: the socket we bind should not depend on DNS.
fn check_socket_addr(key: &'static str, addr: &str) -> Result<(), ConfigError> {
    addr.parse::<SocketAddr>().map(drop).map_err(|_| {
        invalid(
            key,
            format!(
                "{addr:?} is not an ip:port socket address (e.g. 127.0.0.1:6380 or [::1]:6380)"
            ),
        )
    })
}

/// Seeds may be hostnames (Kubernetes services, compose names), so only the shape is checked
/// here; resolution happens at connect time, where a failure is retried rather than fatal.
fn check_host_port(s: &str) -> Result<(), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| "expected host:port".to_owned())?;
    // `u16::from_str` accepts a leading '+', which no one means in an address.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => {}
        _ => return Err(format!("port {port} is outside 1..=65535")),
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("{inner:?} is not an IPv6 address"));
    }
    if host.contains(':') {
        return Err("an IPv6 address must be written in brackets, e.g. [::1]:7000".to_owned());
    }
    check_hostname(host)
}

/// RFC 1123 hostnames (which covers dotted IPv4), plus `_`, which container runtimes allow in
/// service names and resolvers accept in practice.
fn check_hostname(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host is empty".to_owned());
    }
    if host.len() > 253 {
        return Err("host is longer than 253 characters".to_owned());
    }
    for label in host.strip_suffix('.').unwrap_or(host).split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("{host:?} is not a valid hostname or IP address"));
        }
    }
    Ok(())
}

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A strict subset of tracing-subscriber's `EnvFilter` syntax: comma-separated directives, each
/// a level or `target=level`. Span and field filters (`[span{field}]`) are refused rather than
/// half-parsed; a bare word that is not a level is refused too, although `EnvFilter` would read
/// it as a target, because here it is far more likely a misspelt level.
fn check_log_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("empty; use a level such as \"info\"".to_owned());
    }
    for directive in filter.split(',') {
        let directive = directive.trim();
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "directive {directive:?}: {level:?} is not one of {}",
                LOG_LEVELS.join(", ")
            ));
        }
        if let Some(target) = target {
            let ok = !target.is_empty()
                && target
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'));
            if !ok {
                return Err(format!(
                    "directive {directive:?}: {target:?} is not a module path"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `yaml` with a valid seed prepended (unless it sets seeds itself) and returns the
    /// key the validation error names.
    fn rejected_key(yaml: &str) -> &'static str {
        let text = if yaml.contains("seeds:") {
            yaml.to_owned()
        } else {
            format!("seeds: [\"127.0.0.1:7000\"]\n{yaml}")
        };
        match Config::from_yaml_str(&text) {
            Err(ConfigError::Invalid { key, reason }) => {
                let shown = ConfigError::Invalid {
                    key,
                    reason: reason.clone(),
                }
                .to_string();
                assert!(shown.contains(key), "message {shown:?} does not name {key}");
                key
            }
            other => panic!("expected a validation error for {yaml:?}, got {other:?}"),
        }
    }

    /// One `#[test]` per rejected value, so a failure names the exact case.
    macro_rules! rejects {
        ($($name:ident: $yaml:expr => $key:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(rejected_key($yaml), $key);
            }
        )*};
    }

    rejects! {
        rejects_listen_not_an_address: "listen: nonsense" => "listen";
        rejects_listen_hostname: "listen: localhost:6380" => "listen";
        rejects_listen_without_port: "listen: 127.0.0.1" => "listen";
        rejects_no_seeds: "seeds: []" => "seeds";
        rejects_seed_without_port: "seeds: [\"127.0.0.1\"]" => "seeds";
        rejects_seed_port_zero: "seeds: [\"127.0.0.1:0\"]" => "seeds";
        rejects_seed_port_too_large: "seeds: [\"127.0.0.1:65536\"]" => "seeds";
        rejects_seed_port_with_sign: "seeds: [\"127.0.0.1:+7000\"]" => "seeds";
        rejects_seed_port_empty: "seeds: [\"127.0.0.1:\"]" => "seeds";
        rejects_seed_empty_host: "seeds: [\":7000\"]" => "seeds";
        rejects_seed_host_with_space: "seeds: [\"redis node:7000\"]" => "seeds";
        rejects_seed_host_leading_hyphen: "seeds: [\"-redis:7000\"]" => "seeds";
        rejects_seed_host_empty_label: "seeds: [\"redis..local:7000\"]" => "seeds";
        rejects_seed_ipv6_without_brackets: "seeds: [\"::1:7000\"]" => "seeds";
        rejects_seed_bad_ipv6_in_brackets: "seeds: [\"[::zz]:7000\"]" => "seeds";
        rejects_second_seed_invalid: "seeds: [\"127.0.0.1:7000\", \"127.0.0.1\"]" => "seeds";
        rejects_metrics_listen_not_an_address: "metrics_listen: \"metrics:8379\"" => "metrics_listen";
        rejects_workers_too_many: "workers: 1025" => "workers";
        rejects_max_clients_zero: "max_clients: 0" => "max_clients";
        rejects_slowlog_threshold_below_minus_one:
            "slowlog: {log_slower_than_us: -2}" => "slowlog.log_slower_than_us";
        rejects_slowlog_max_len_too_large:
            "slowlog: {max_len: 10001}" => "slowlog.max_len";
        rejects_max_pipeline_zero: "client: {max_pipeline: 0}" => "client.max_pipeline";
        rejects_max_pipeline_too_large: "client: {max_pipeline: 65537}" => "client.max_pipeline";
        rejects_tiny_output_buffer:
            "client: {output_buffer_hard_bytes: 100}" => "client.output_buffer_hard_bytes";
        rejects_soft_pubsub_buffer_above_hard:
            "client: {pubsub_output_buffer_hard_bytes: 1048576, pubsub_output_buffer_soft_bytes: 2097152}"
                => "client.pubsub_output_buffer_soft_bytes";
        rejects_soft_output_buffer_above_hard:
            "client: {output_buffer_hard_bytes: 1048576, output_buffer_soft_bytes: 2097152}"
                => "client.output_buffer_soft_bytes";
        rejects_client_keepalive_too_long:
            "client: {tcp_keepalive_secs: 32768}" => "client.tcp_keepalive_secs";
        rejects_backend_keepalive_too_long:
            "backend: {tcp_keepalive_secs: 32768}" => "backend.tcp_keepalive_secs";
        rejects_connections_per_node_zero:
            "backend: {connections_per_node: 0}" => "backend.connections_per_node";
        rejects_connections_per_node_too_large:
            "backend: {connections_per_node: 65}" => "backend.connections_per_node";
        rejects_max_inflight_zero:
            "backend: {max_inflight_per_connection: 0}" => "backend.max_inflight_per_connection";
        rejects_max_inflight_too_large:
            "backend: {max_inflight_per_connection: 1000001}"
                => "backend.max_inflight_per_connection";
        rejects_max_dedicated_zero:
            "backend: {max_dedicated_per_node: 0}" => "backend.max_dedicated_per_node";
        rejects_max_dedicated_too_large:
            "backend: {max_dedicated_per_node: 100001}" => "backend.max_dedicated_per_node";
        rejects_connect_timeout_zero:
            "backend: {connect_timeout_ms: 0}" => "backend.connect_timeout_ms";
        rejects_op_timeout_zero: "backend: {op_timeout_ms: 0}" => "backend.op_timeout_ms";
        rejects_hold_timeout_zero: "backend: {hold_timeout_ms: 0}" => "backend.hold_timeout_ms";
        rejects_backoff_min_zero:
            "backend: {reconnect_backoff_min_ms: 0}" => "backend.reconnect_backoff_min_ms";
        rejects_backoff_max_below_min:
            "backend: {reconnect_backoff_min_ms: 500, reconnect_backoff_max_ms: 499}"
                => "backend.reconnect_backoff_max_ms";
        rejects_refresh_interval_zero:
            "topology: {refresh_interval_ms: 0, min_refresh_interval_ms: 0}"
                => "topology.refresh_interval_ms";
        rejects_min_refresh_above_refresh:
            "topology: {refresh_interval_ms: 1000, min_refresh_interval_ms: 1001}"
                => "topology.min_refresh_interval_ms";
        rejects_max_redirects_zero: "topology: {max_redirects: 0}" => "topology.max_redirects";
        rejects_max_redirects_too_large:
            "topology: {max_redirects: 17}" => "topology.max_redirects";
        rejects_max_bulk_len_zero: "protocol: {max_bulk_len: 0}" => "protocol.max_bulk_len";
        rejects_max_bulk_len_above_4gib:
            "protocol: {max_bulk_len: 4294967297, max_frame_len: 8589934592}"
                => "protocol.max_bulk_len";
        rejects_max_array_len_zero: "protocol: {max_array_len: 0}" => "protocol.max_array_len";
        rejects_max_inline_len_zero: "protocol: {max_inline_len: 0}" => "protocol.max_inline_len";
        rejects_max_depth_zero: "protocol: {max_depth: 0}" => "protocol.max_depth";
        rejects_max_depth_too_large: "protocol: {max_depth: 129}" => "protocol.max_depth";
        rejects_max_frame_len_below_bulk:
            "protocol: {max_bulk_len: 1024, max_frame_len: 1023}" => "protocol.max_frame_len";
        rejects_script_cache_too_many:
            "scripts: {cache_max_scripts: 1000001}" => "scripts.cache_max_scripts";
        rejects_script_cache_bytes_tiny:
            "scripts: {cache_max_bytes: 1023}" => "scripts.cache_max_bytes";
        rejects_script_cache_bytes_above_1gib:
            "scripts: {cache_max_bytes: 1073741825}" => "scripts.cache_max_bytes";
        rejects_log_level_empty: "log: {level: \"\"}" => "log.level";
        rejects_log_level_unknown: "log: {level: verbose}" => "log.level";
        rejects_log_target_level_unknown: "log: {level: \"slotgate=loud\"}" => "log.level";
        rejects_log_target_empty: "log: {level: \"=debug\"}" => "log.level";
        rejects_log_target_not_a_path: "log: {level: \"slot gate=debug\"}" => "log.level";
        rejects_log_empty_directive: "log: {level: \"info,\"}" => "log.level";
        rejects_log_span_filter: "log: {level: \"[conn]=debug\"}" => "log.level";
        rejects_worker_stall_timeout_below_a_second:
            "health: {worker_stall_timeout_ms: 999}" => "health.worker_stall_timeout_ms";
        rejects_worker_stall_timeout_above_an_hour:
            "health: {worker_stall_timeout_ms: 3600001}" => "health.worker_stall_timeout_ms";
        rejects_drain_timeout_above_an_hour:
            "shutdown: {drain_timeout_ms: 3600001}" => "shutdown.drain_timeout_ms";
    }

    #[test]
    fn defaults_with_a_seed_validate() {
        assert_eq!(Config::minimal().validate().unwrap(), Config::minimal());
    }

    #[test]
    fn defaults_alone_need_a_seed() {
        let err = Config::default().validate().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "seeds", .. }));
    }

    #[test]
    fn accepts_edge_values() {
        let yaml = r#"
seeds: ["redis-0.redis.svc.cluster.local:6379", "[::1]:7000", "my_node:1", "10.0.0.1:65535"]
listen: "[::]:6380"
metrics_listen: null
workers: 1024
client: {max_pipeline: 65536}
backend: {connections_per_node: 64, max_inflight_per_connection: 1000000,
          reconnect_backoff_min_ms: 7, reconnect_backoff_max_ms: 7}
topology: {refresh_interval_ms: 1, min_refresh_interval_ms: 0, max_redirects: 16}
protocol: {max_bulk_len: 4294967296, max_frame_len: 4294967296, max_depth: 128}
log: {level: "WARN,slotgate::route=debug, hyper=off"}
"#;
        let config = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.seeds.len(), 4);
        assert_eq!(
            config.backend.reconnect_backoff_max(),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn accepts_every_plain_level() {
        for level in ["trace", "debug", "info", "warn", "error", "off"] {
            let config = Config {
                log: LogConfig {
                    level: level.to_owned(),
                    ..LogConfig::default()
                },
                ..Config::minimal()
            };
            assert!(config.validate().is_ok(), "{level}");
        }
    }

    #[test]
    fn slowlog_threshold_minus_one_is_off_and_zero_is_everything() {
        let mut c = SlowlogConfig::default();
        assert_eq!(c.slower_than(), Some(Duration::from_millis(10)));
        c.log_slower_than_us = -1;
        assert_eq!(c.slower_than(), None);
        c.log_slower_than_us = 0;
        assert_eq!(c.slower_than(), Some(Duration::ZERO));
    }

    #[test]
    fn duration_accessors_use_the_right_unit() {
        let c = Config::default();
        assert_eq!(c.backend.connect_timeout(), Duration::from_secs(1));
        assert_eq!(c.backend.op_timeout(), Duration::from_secs(5));
        assert_eq!(c.backend.reconnect_backoff_min(), Duration::from_millis(50));
        assert_eq!(c.backend.reconnect_backoff_max(), Duration::from_secs(2));
        assert_eq!(c.topology.refresh_interval(), Duration::from_secs(10));
        assert_eq!(
            c.topology.min_refresh_interval(),
            Duration::from_millis(100)
        );
        assert_eq!(c.client.idle_timeout(), None);
        let client = ClientConfig {
            idle_timeout_secs: 30,
            ..ClientConfig::default()
        };
        assert_eq!(client.idle_timeout(), Some(Duration::from_secs(30)));
    }

    fn parse_message(yaml: &str) -> String {
        match Config::from_yaml_str(yaml) {
            Err(e @ ConfigError::Parse { .. }) => e.to_string(),
            other => panic!("expected a parse error for {yaml:?}, got {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_top_level_key_by_name() {
        let msg = parse_message("seeds: [\"127.0.0.1:7000\"]\nlisten_addr: 127.0.0.1:6380\n");
        assert!(msg.contains("unknown field `listen_addr`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn rejects_unknown_section_key_by_name() {
        let msg = parse_message("seeds: [\"127.0.0.1:7000\"]\nbackend:\n  op_timeout: 5\n");
        assert!(msg.contains("backend"), "{msg}");
        assert!(msg.contains("unknown field `op_timeout`"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let msg = parse_message("seeds: [\"127.0.0.1:7000\"]\nbackend:\n  op_timeout_ms: -1\n");
        assert!(msg.contains("backend.op_timeout_ms"), "{msg}");
    }

    #[test]
    fn out_of_type_range_names_the_key() {
        let msg = parse_message("topology: {max_redirects: 4294967296}");
        assert!(msg.contains("topology.max_redirects"), "{msg}");
    }

    #[test]
    fn read_from_takes_three_words() {
        let msg = parse_message("backend: {read_from: nearest}");
        assert!(msg.contains("backend.read_from"), "{msg}");
        let yaml = "seeds: [\"127.0.0.1:7000\"]\nbackend: {read_from: prefer_replica}";
        let config = Config::from_yaml_str(yaml).unwrap();
        assert_eq!(config.backend.read_from, ReadFrom::PreferReplica);
    }

    #[test]
    fn duplicate_key_is_a_parse_error_naming_it() {
        let msg = parse_message("seeds: [\"127.0.0.1:7000\"]\nworkers: 1\nworkers: 2\n");
        assert!(msg.contains("workers"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn log_format_is_plain_or_json() {
        let msg = parse_message("log: {format: xml}");
        assert!(msg.contains("log.format"), "{msg}");
        let yaml = "seeds: [\"127.0.0.1:7000\"]\nlog: {format: json}";
        assert_eq!(
            Config::from_yaml_str(yaml).unwrap().log.format,
            LogFormat::Json
        );
    }

    #[test]
    fn seeds_as_a_scalar_is_a_parse_error() {
        let msg = parse_message("seeds: 127.0.0.1:7000");
        assert!(msg.contains("seeds"), "{msg}");
    }

    #[test]
    fn top_level_list_is_a_parse_error() {
        parse_message("- 127.0.0.1:7000");
    }

    #[test]
    fn empty_document_means_defaults() {
        for text in ["", "\n", "# everything commented out\n"] {
            let err = Config::from_yaml_str(text).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { key: "seeds", .. }),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load("/nonexistent/slotgate.yaml").unwrap_err();
        assert!(matches!(err, ConfigError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/slotgate.yaml"));
    }

    const SHIPPED: &str = include_str!("../config/slotgate.yaml");

    #[test]
    fn shipped_file_is_the_defaults_plus_an_example_seed() {
        let mut config = Config::from_yaml_str(SHIPPED).unwrap();
        assert_eq!(config.seeds, ["127.0.0.1:7000"]);
        config.seeds = Config::default().seeds;
        assert_eq!(config, Config::default());
    }

    /// Equality with the defaults would also hold for a file that omits keys, so check that the
    /// shipped file spells out every key the struct has, and nothing else.
    #[test]
    fn shipped_file_lists_every_key() {
        fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
            if let serde_json::Value::Object(map) = value {
                for (k, v) in map {
                    let name = format!("{prefix}{k}");
                    keys(v, &format!("{name}."), out);
                    out.push(name);
                }
            }
        }
        let mut shipped = Vec::new();
        let file: serde_json::Value = serde_saphyr::from_str(SHIPPED).unwrap();
        keys(&file, "", &mut shipped);
        let mut expected = Vec::new();
        keys(
            &serde_json::to_value(Config::default()).unwrap(),
            "",
            &mut expected,
        );
        shipped.sort();
        expected.sort();
        assert_eq!(shipped, expected);
    }

    #[test]
    fn load_reads_a_file() {
        let path =
            std::env::temp_dir().join(format!("slotgate-config-{}.yaml", std::process::id()));
        std::fs::write(&path, "seeds: [\"127.0.0.1:7000\"]\nbogus: 1\n").unwrap();
        let err = Config::load(&path).unwrap_err();
        std::fs::write(&path, "seeds: [\"127.0.0.1:7000\"]\nworkers: 3\n").unwrap();
        let ok = Config::load(&path);
        std::fs::remove_file(&path).unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("unknown field `bogus`"), "{msg}");
        assert_eq!(ok.unwrap().workers, 3);
    }
}
