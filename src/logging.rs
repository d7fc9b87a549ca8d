//! Logging: the subscriber, set up once from the config; a handle that changes its filter when
//! the config is reloaded; and [`Throttle`], which keeps a warning that repeats (a node that
//! flaps, a cluster that does not answer) to one line per key and interval.

use std::collections::HashMap;
use std::hash::Hash;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Why the log filter could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `log.level` is checked when the config is validated, so this means a filter the
    /// validation let through and tracing-subscriber did not.
    #[error("log filter {filter:?}: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The subscriber the handle belonged to is gone.
    #[error("cannot change the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// What happened to `log.level` on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    Applied,
    /// `RUST_LOG` set the filter at start-up, and it wins over the file, then as now.
    OverriddenByEnv,
}

/// The installed subscriber's filter, kept to change it on a reload.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` chose the filter: the file's `log.level` does not apply.
    from_env: bool,
}

impl Logging {
    /// Installs the process' subscriber. `RUST_LOG`, when set and valid, wins over `log.level`.
    /// Colours only when standard output is a terminal: a file or the journal would get the
    /// escape sequences as text.
    pub fn init(config: &LogConfig) -> Logging {
        let (filter, from_env) = match EnvFilter::try_from_default_env() {
            Ok(f) => (f, true),
            Err(_) => (EnvFilter::new(&config.level), false),
        };
        let (filter, handle) = reload::Layer::new(filter);
        let ansi = std::io::stdout().is_terminal();
        let output = match config.format {
            LogFormat::Plain => fmt::layer().with_ansi(ansi).boxed(),
            LogFormat::Json => fmt::layer()
                .json()
                .flatten_event(true)
                .with_ansi(false)
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(output)
            .init();
        Logging {
            filter: handle,
            from_env,
        }
    }

    /// Replaces the filter with `level` (a validated `log.level`), unless `RUST_LOG` chose it.
    pub fn set_level(&self, level: &str) -> Result<LevelChange, LoggingError> {
        if self.from_env {
            return Ok(LevelChange::OverriddenByEnv);
        }
        let filter = EnvFilter::try_new(level).map_err(|source| LoggingError::Filter {
            filter: level.to_owned(),
            source,
        })?;
        self.filter.reload(filter)?;
        Ok(LevelChange::Applied)
    }
}

/// Keys a [`Throttle`] remembers before it forgets those whose interval is over, so keys that
/// come and go (nodes replaced over months) cannot grow it without bound.
const MAX_KEYS: usize = 1024;

/// Lets a repeated warning through once per key and interval and counts the ones it holds back,
/// so a node that flaps for an hour costs a line every interval instead of thousands, and the
/// line still says how often it happened. Consulted on rare events only (a connection lost, a
/// failed refresh), never per request, so a mutex is fine.
///
/// A count held back is reported with the next line let through for that key; a caller whose
/// line states a lasting condition (a node unreachable) should ask again while the condition
/// lasts, so that the log catches up with it within an interval.
pub struct Throttle<K> {
    every: Duration,
    seen: Mutex<HashMap<K, Window>>,
}

struct Window {
    opened: Instant,
    held: u64,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// How long a key stays quiet after a line for it was let through.
    pub const INTERVAL: Duration = Duration::from_secs(10);

    pub fn new(every: Duration) -> Throttle<K> {
        Throttle {
            every,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(held)` when this occurrence should be logged, `held` being how many for `key` were
    /// held back since the last one logged; `None` when it is to be held back.
    pub fn admit(&self, key: &K) -> Option<u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = seen.get_mut(key) {
            if now.duration_since(w.opened) < self.every {
                w.held += 1;
                return None;
            }
            w.opened = now;
            return Some(std::mem::take(&mut w.held));
        }
        if seen.len() >= MAX_KEYS {
            seen.retain(|_, w| now.duration_since(w.opened) < self.every);
        }
        seen.insert(
            key.clone(),
            Window {
                opened: now,
                held: 0,
            },
        );
        Some(0)
    }
}

impl<K: Hash + Eq + Clone> Default for Throttle<K> {
    fn default() -> Self {
        Throttle::new(Self::INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_key_and_interval_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.admit(&"a"), Some(0));
        assert_eq!(t.admit(&"a"), None);
        assert_eq!(t.admit(&"a"), None);
        // Another key has its own interval.
        assert_eq!(t.admit(&"b"), Some(0));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(t.admit(&"a"), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(t.admit(&"a"), Some(3));
        assert_eq!(t.admit(&"a"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(t.admit(&"a"), Some(1));
        assert_eq!(t.admit(&"b"), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn keys_whose_interval_is_over_are_forgotten_when_full() {
        let t = Throttle::new(Duration::from_secs(1));
        for k in 0..MAX_KEYS {
            assert_eq!(t.admit(&k), Some(0));
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(t.admit(&MAX_KEYS), Some(0));
        assert_eq!(t.seen.lock().unwrap().len(), 1);
    }
}
