//! The one background task that keeps the slot map current. Everything else only asks for a
//! refresh through [`RefreshTrigger`], so a burst of MOVED replies costs the cluster one query.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::codec::FramedRead;

use super::discover;
use super::topology::{NodeAddr, Topology, TopologyError};
use crate::protocol::{encode_command, Frame, Limits, ProtocolError, ReplyCodec};

/// How often the map is re-read while a node is unreachable.
const DEGRADED_POLL: Duration = Duration::from_millis(200);

/// Asks the refresher for a new slot map. Cheap and non-blocking: requests made while one is
/// pending or running fold into it (a `Notify` holds at most one permit).
#[derive(Clone, Default)]
pub struct RefreshTrigger(Arc<Notify>);

impl RefreshTrigger {
    pub fn request(&self) {
        self.0.notify_one();
    }

    async fn requested(&self) {
        self.0.notified().await
    }
}

#[derive(Clone, Debug)]
pub struct RefreshSettings {
    /// Re-read this often even when nothing asks, to notice changes no reply reveals.
    pub interval: Duration,
    /// Least time between two refreshes: the rate limit that protects the cluster.
    pub min_interval: Duration,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} timed out")]
    Timeout { addr: String },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{addr}: {source}")]
    Protocol { addr: String, source: ProtocolError },
    #[error("{addr} answered an error: {message}")]
    ErrorReply { addr: String, message: String },
    #[error("{addr}: {source}")]
    Topology { addr: String, source: TopologyError },
}

/// Sends one command on a fresh connection and reads one reply. Kept apart from the data path's
/// pooled connections so a refresh also probes whether the node accepts connections at all.
pub async fn query(addr: &str, args: &[&[u8]], s: &RefreshSettings) -> Result<Frame, QueryError> {
    let connect = tokio::time::timeout(s.connect_timeout, TcpStream::connect(addr));
    let mut stream = match connect.await {
        Err(_) => return Err(QueryError::Timeout { addr: addr.into() }),
        Ok(Err(source)) => {
            return Err(QueryError::Connect {
                addr: addr.into(),
                source,
            })
        }
        Ok(Ok(s)) => s,
    };
    let exchange = async {
        let mut buf = BytesMut::new();
        encode_command(args.iter().copied(), &mut buf);
        stream
            .write_all(&buf)
            .await
            .map_err(|_| QueryError::Closed { addr: addr.into() })?;
        let mut reader = FramedRead::new(&mut stream, ReplyCodec::new(s.limits));
        match reader.next().await {
            None => Err(QueryError::Closed { addr: addr.into() }),
            Some(Err(source)) => Err(QueryError::Protocol {
                addr: addr.into(),
                source,
            }),
            Some(Ok(reply)) => reply
                .parse(&s.limits)
                .map_err(|source| QueryError::Protocol {
                    addr: addr.into(),
                    source,
                }),
        }
    };
    match tokio::time::timeout(s.query_timeout, exchange).await {
        Err(_) => Err(QueryError::Timeout { addr: addr.into() }),
        Ok(Ok(Frame::Error(e))) => Err(QueryError::ErrorReply {
            addr: addr.into(),
            message: String::from_utf8_lossy(&e).into_owned(),
        }),
        Ok(r) => r,
    }
}

/// Reads the slot map from one node: `CLUSTER SHARDS`, or `CLUSTER SLOTS` where that is unknown.
pub async fn fetch_topology(addr: &str, s: &RefreshSettings) -> Result<Topology, QueryError> {
    let host = host_of(addr);
    let parsed = match query(addr, &[b"CLUSTER", b"SHARDS"], s).await {
        Ok(frame) => discover::from_shards(&frame, host),
        Err(QueryError::ErrorReply { .. }) => {
            let frame = query(addr, &[b"CLUSTER", b"SLOTS"], s).await?;
            discover::from_slots(&frame, host)
        }
        Err(e) => return Err(e),
    };
    parsed.map_err(|source| QueryError::Topology {
        addr: addr.into(),
        source,
    })
}

fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Asks candidates in turn and keeps the first complete map; failing that, the most complete.
async fn refresh_once(candidates: &[NodeAddr], s: &RefreshSettings) -> Option<Topology> {
    let mut best: Option<Topology> = None;
    for addr in candidates {
        match fetch_topology(addr, s).await {
            Ok(t) if t.is_complete() => return Some(t),
            Ok(t) => {
                tracing::debug!(node = %addr, covered = t.covered_slots(), "partial slot map");
                if best
                    .as_ref()
                    .is_none_or(|b| b.covered_slots() < t.covered_slots())
                {
                    best = Some(t);
                }
            }
            Err(e) => tracing::debug!(error = %e, "slot map query failed"),
        }
    }
    best
}

/// What the refresher needs from its owner: the current snapshot and a way to publish a new one.
pub trait TopologySink: Send + Sync {
    fn current(&self) -> Arc<Topology>;
    fn install(&self, next: Topology);
    fn refreshed(&self, ok: bool);
    /// Some node is unreachable: its replacement can only be found by asking, so ask often.
    fn degraded(&self) -> bool {
        false
    }
}

/// Runs until `shutdown` resolves. Polls quickly with backoff while the map is incomplete, so a
/// proxy started before its cluster becomes ready as soon as the cluster does.
pub async fn run(
    seeds: Vec<NodeAddr>,
    sink: Arc<dyn TopologySink>,
    trigger: RefreshTrigger,
    s: RefreshSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        let current = sink.current();
        let mut candidates = current.all_nodes();
        for seed in &seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let fetched = refresh_once(&candidates, &s).await;
        sink.refreshed(fetched.is_some());
        match fetched {
            Some(next) if next != *current => {
                tracing::info!(
                    shards = next.serving_shards().count(),
                    covered = next.covered_slots(),
                    "slot map changed"
                );
                sink.install(next);
            }
            Some(_) => {}
            None => tracing::warn!(
                candidates = candidates.len(),
                "no node answered the slot map query"
            ),
        }
        let wait = if sink.degraded() {
            // A dead master sends no MOVED: poll until its replica is promoted. The floor keeps
            // a fleet of proxies from flooding the cluster while it fails over.
            DEGRADED_POLL.saturating_sub(s.min_interval)
        } else if sink.current().is_complete() {
            backoff = Duration::from_millis(100);
            jitter(s.interval)
        } else {
            let w = backoff;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            w
        };
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(wait) => {}
            _ = trigger.requested() => {}
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(s.min_interval) => {}
        }
    }
}

/// Spreads periodic refreshes of many proxies over +-10% so a fleet does not query in step.
fn jitter(d: Duration) -> Duration {
    let spread = d.as_millis() as u64 / 10;
    if spread == 0 {
        return d;
    }
    d - Duration::from_millis(spread) + Duration::from_millis(fastrand::u64(0..=2 * spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:7000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7000"), "::1");
        assert_eq!(host_of("redis-a:7000"), "redis-a");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(900) && j <= Duration::from_millis(1100));
        }
    }
}
