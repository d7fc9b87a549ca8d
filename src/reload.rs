//! Which config keys a running proxy can take a new value of (on SIGHUP), and which need a
//! restart. One table says it for every key; a unit test checks the table names every key the
//! config has, so a new key cannot be added without deciding.
//!
//! A key is applied at once only where a new value is read per use and nothing already running
//! depends on the old one: the client limit and client settings (for clients that connect from
//! then on), the seeds and refresh intervals (read before every refresh), the probes' rules, the
//! drain timeout, the slow log's threshold and length, and the log filter. Keys that shape what exists (sockets, threads, the backend
//! connections and what they were opened with, parser limits, the script cache) keep their value
//! until a restart, and a reload names them.

use serde_json::Value;

use crate::config::Config;

/// When a new value of a key takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    /// On reload.
    Reload,
    /// On restart; a reload leaves the running value and says so.
    Restart,
}

use Takes::{Reload, Restart};

/// Every key of [`Config`], as a dotted path.
const KEYS: &[(&str, Takes)] = &[
    ("listen", Restart),
    ("seeds", Reload),
    ("metrics_listen", Restart),
    ("workers", Restart),
    ("max_clients", Reload),
    ("client.max_pipeline", Reload),
    ("client.idle_timeout_secs", Reload),
    ("client.output_buffer_hard_bytes", Reload),
    ("client.output_buffer_soft_bytes", Reload),
    ("client.output_buffer_soft_secs", Reload),
    ("client.pubsub_output_buffer_hard_bytes", Reload),
    ("client.pubsub_output_buffer_soft_bytes", Reload),
    ("client.pubsub_output_buffer_soft_secs", Reload),
    ("client.tcp_keepalive_secs", Reload),
    // Backend connections are opened with these and shared by every client: a new value would
    // apply to some connections and not others.
    ("backend.connections_per_node", Restart),
    ("backend.max_inflight_per_connection", Restart),
    ("backend.max_dedicated_per_node", Restart),
    ("backend.connect_timeout_ms", Restart),
    ("backend.op_timeout_ms", Restart),
    ("backend.reconnect_backoff_min_ms", Restart),
    ("backend.reconnect_backoff_max_ms", Restart),
    ("backend.hold_timeout_ms", Restart),
    ("backend.read_from", Restart),
    ("backend.tcp_keepalive_secs", Restart),
    ("topology.refresh_interval_ms", Reload),
    ("topology.min_refresh_interval_ms", Reload),
    ("topology.max_redirects", Restart),
    // The client's parser and the backends' share these limits.
    ("protocol.max_bulk_len", Restart),
    ("protocol.max_array_len", Restart),
    ("protocol.max_inline_len", Restart),
    ("protocol.max_depth", Restart),
    ("protocol.max_frame_len", Restart),
    ("scripts.cache_max_scripts", Restart),
    ("scripts.cache_max_bytes", Restart),
    ("slowlog.log_slower_than_us", Reload),
    ("slowlog.max_len", Reload),
    ("log.level", Reload),
    // The subscriber's output layer is built once.
    ("log.format", Restart),
    ("health.worker_stall_timeout_ms", Reload),
    ("health.ready_requires_full_coverage", Reload),
    ("shutdown.drain_timeout_ms", Reload),
];

/// The keys whose value a reload changes, by when the change takes effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub applied: Vec<&'static str>,
    pub need_restart: Vec<&'static str>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.need_restart.is_empty()
    }
}

/// The keys whose values differ between `running` and `loaded`.
pub fn changes(running: &Config, loaded: &Config) -> Changes {
    let (old, new) = (as_value(running), as_value(loaded));
    let mut changes = Changes::default();
    for &(key, takes) in KEYS {
        if at(&old, key) != at(&new, key) {
            match takes {
                Reload => changes.applied.push(key),
                Restart => changes.need_restart.push(key),
            }
        }
    }
    changes
}

/// The config the proxy runs after reloading `loaded`: its values, but the running ones of
/// every key that needs a restart. The next reload is compared with this, so a restart-only
/// change is reported until the proxy is restarted.
pub fn in_force(running: &Config, loaded: &Config) -> Config {
    let old = as_value(running);
    let mut new = as_value(loaded);
    for &(key, takes) in KEYS {
        if takes == Restart {
            if let (Some(slot), Some(value)) = (at_mut(&mut new, key), at(&old, key)) {
                *slot = value.clone();
            }
        }
    }
    // Both are a `Config`'s own values, so this cannot fail; if it did, nothing would change.
    serde_json::from_value(new).unwrap_or_else(|_| running.clone())
}

fn as_value(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

fn pointer(key: &str) -> String {
    format!("/{}", key.replace('.', "/"))
}

fn at<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.pointer(&pointer(key))
}

fn at_mut<'v>(value: &'v mut Value, key: &str) -> Option<&'v mut Value> {
    value.pointer_mut(&pointer(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of the config is in the table, and nothing else is.
    #[test]
    fn the_table_names_every_key() {
        fn leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        leaves(v, &format!("{prefix}{k}."), out);
                    }
                }
                _ => out.push(prefix.trim_end_matches('.').to_owned()),
            }
        }
        let mut expected = Vec::new();
        leaves(&as_value(&Config::minimal()), "", &mut expected);
        let mut listed: Vec<String> = KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn no_change_is_empty() {
        assert!(changes(&Config::minimal(), &Config::minimal()).is_empty());
    }

    #[test]
    fn changes_are_sorted_by_when_they_apply() {
        let old = Config::minimal();
        let mut new = Config::minimal();
        new.max_clients = 5;
        new.client.max_pipeline = 7;
        new.seeds.push("10.0.0.1:7000".to_owned());
        new.listen = "127.0.0.1:6400".to_owned();
        new.backend.op_timeout_ms = 1;
        new.log.level = "debug".to_owned();
        let c = changes(&old, &new);
        assert_eq!(
            c.applied,
            ["seeds", "max_clients", "client.max_pipeline", "log.level"]
        );
        assert_eq!(c.need_restart, ["listen", "backend.op_timeout_ms"]);
    }

    #[test]
    fn what_needs_a_restart_keeps_its_running_value() {
        let old = Config::minimal();
        let mut new = Config::minimal();
        new.max_clients = 5;
        new.workers = 3;
        new.backend.read_from = crate::route::ReadFrom::Replica;
        let running = in_force(&old, &new);
        assert_eq!(running.max_clients, 5);
        assert_eq!(running.workers, old.workers);
        assert_eq!(running.backend.read_from, old.backend.read_from);
        // Reported again by the next reload of the same file.
        assert_eq!(
            changes(&running, &new).need_restart,
            ["workers", "backend.read_from"]
        );
        assert!(changes(&running, &new).applied.is_empty());
    }
}
