//! The one background task that keeps the slot map current. Everything else only asks for a
//! refresh through [`RefreshTrigger`], so a burst of MOVED replies costs the cluster one query.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
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
/// pending or running fold into it (a `Notify` holds at most one permit), and so do their
/// reasons (one bit each).
#[derive(Clone, Default)]
pub struct RefreshTrigger(Arc<Requests>);

#[derive(Default)]
struct Requests {
    notify: Notify,
    /// A bit per [`Trigger`] asked for since the refresher last looked.
    reasons: AtomicU8,
}

/// Why a refresh ran, for `slotgate_topology_refreshes_total{trigger}`: what asked for it, or
/// which of the refresher's own timers ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first refresh, at start.
    Startup,
    /// The periodic re-read of a complete map.
    Periodic,
    /// Polling, with backoff, while the map covers fewer than every slot.
    Incomplete,
    /// Polling while some node is unreachable, to find the replica promoted in its place.
    Degraded,
    /// A MOVED (or TRYAGAIN) reply: slots moved.
    Moved,
    /// A backend connection broke or could not be made.
    Failure,
    /// A request found no master for its slot, or no master at all.
    Unserved,
    /// A config reload changed the seeds or the refresh intervals.
    Reload,
}

impl Trigger {
    /// One of `metrics::REFRESH_TRIGGERS`.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Periodic => "periodic",
            Trigger::Incomplete => "incomplete",
            Trigger::Degraded => "degraded",
            Trigger::Moved => "moved",
            Trigger::Failure => "failure",
            Trigger::Unserved => "unserved",
            Trigger::Reload => "reload",
        }
    }

    /// The reasons a request can give, most telling first: when several fold into one refresh,
    /// it is counted under the first.
    const ASKED: [Trigger; 4] = [
        Trigger::Moved,
        Trigger::Failure,
        Trigger::Unserved,
        Trigger::Reload,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl RefreshTrigger {
    pub fn request(&self, why: Trigger) {
        self.0.reasons.fetch_or(why.bit(), Ordering::Relaxed);
        self.0.notify.notify_one();
    }

    async fn requested(&self) {
        self.0.notify.notified().await
    }

    /// Consumes a pending request, if any, and says why it was made.
    fn drain(&self) -> Option<Trigger> {
        let _ = self.0.notify.notified().now_or_never();
        let bits = self.0.reasons.swap(0, Ordering::Relaxed);
        Trigger::ASKED.into_iter().find(|t| bits & t.bit() != 0)
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

/// Sends one command on a fresh connection and reads one reply.
pub async fn query(addr: &str, args: &[&[u8]], s: &RefreshSettings) -> Result<Frame, QueryError> {
    let mut replies = query_all(addr, &[args], s).await?;
    replies
        .pop()
        .ok_or(QueryError::Closed { addr: addr.into() })?
}

/// Sends several commands in one write on a fresh connection and reads their replies in order.
/// Kept apart from the data path's pooled connections so a refresh also probes whether the node
/// accepts connections at all. An error reply is returned in place, as `QueryError::ErrorReply`.
pub async fn query_all(
    addr: &str,
    commands: &[&[&[u8]]],
    s: &RefreshSettings,
) -> Result<Vec<Result<Frame, QueryError>>, QueryError> {
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
        for args in commands {
            encode_command(args.iter().copied(), &mut buf);
        }
        stream
            .write_all(&buf)
            .await
            .map_err(|_| QueryError::Closed { addr: addr.into() })?;
        let mut reader = FramedRead::new(&mut stream, ReplyCodec::new(s.limits));
        let mut out = Vec::with_capacity(commands.len());
        for _ in commands {
            let reply = match reader.next().await {
                None => return Err(QueryError::Closed { addr: addr.into() }),
                Some(Err(source)) => {
                    return Err(QueryError::Protocol {
                        addr: addr.into(),
                        source,
                    })
                }
                Some(Ok(reply)) => reply,
            };
            out.push(match reply.parse(&s.limits) {
                Ok(Frame::Error(e)) => Err(QueryError::ErrorReply {
                    addr: addr.into(),
                    message: String::from_utf8_lossy(&e).into_owned(),
                }),
                Ok(frame) => Ok(frame),
                Err(source) => Err(QueryError::Protocol {
                    addr: addr.into(),
                    source,
                }),
            });
        }
        Ok(out)
    };
    match tokio::time::timeout(s.query_timeout, exchange).await {
        Err(_) => Err(QueryError::Timeout { addr: addr.into() }),
        Ok(r) => r,
    }
}

/// Reads the slot map from one node: `CLUSTER SHARDS` with `CLUSTER NODES` for the config epochs,
/// or `CLUSTER SLOTS` (no epochs) where `CLUSTER SHARDS` is unknown.
pub async fn fetch_topology(addr: &str, s: &RefreshSettings) -> Result<Topology, QueryError> {
    let host = host_of(addr);
    let mut replies = query_all(
        addr,
        &[&[b"CLUSTER", b"SHARDS"], &[b"CLUSTER", b"NODES"]],
        s,
    )
    .await?;
    let nodes = replies
        .pop()
        .ok_or(QueryError::Closed { addr: addr.into() })?;
    let shards = replies
        .pop()
        .ok_or(QueryError::Closed { addr: addr.into() })?;
    let parsed = match shards {
        Ok(frame) => {
            let epochs = match nodes {
                Ok(Frame::Bulk(text)) => discover::epochs(&text),
                _ => Default::default(),
            };
            discover::from_shards(&frame, host, &epochs)
        }
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

/// How many nodes one refresh asks at once: enough that one stale node cannot hide a failover,
/// few enough that a fleet of proxies does not load the cluster.
const ASK_AT_ONCE: usize = 3;

/// After the first node answers, how long the others in its batch may still take. A hung node
/// (stopped, overloaded) must not hold every refresh for a whole query timeout, and a failover
/// is usually visible on any node that answers promptly.
const STRAGGLER_GRACE: Duration = Duration::from_millis(100);

/// Asks candidates, a few at a time, until some answer, and merges their views by config epoch.
/// Returns the merged map and how many slots the answering nodes disagreed on.
async fn refresh_once(candidates: &[NodeAddr], s: &RefreshSettings) -> Option<(Topology, usize)> {
    for batch in candidates.chunks(ASK_AT_ONCE) {
        let mut pending: FuturesUnordered<_> = batch
            .iter()
            .map(|addr| async move { (addr, fetch_topology(addr, s).await) })
            .collect();
        let mut views = Vec::with_capacity(batch.len());
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = match deadline {
                None => pending.next().await,
                Some(d) => match tokio::time::timeout_at(d, pending.next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
            };
            let Some((addr, answer)) = next else {
                break;
            };
            match answer {
                Ok(view) => {
                    views.push(view);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + STRAGGLER_GRACE);
                }
                Err(e) => tracing::debug!(node = %addr, error = %e, "slot map query failed"),
            }
        }
        if !views.is_empty() {
            return Some(Topology::merge(&views));
        }
    }
    None
}

/// What the refresher needs from its owner: the current snapshot and a way to publish a new one.
pub trait TopologySink: Send + Sync {
    fn current(&self) -> Arc<Topology>;
    /// Serves `next` from now on. Called after every successful refresh, changed or not, so
    /// an unchanged map must cost nothing; `changed` says it differs from [`current`].
    ///
    /// [`current`]: TopologySink::current
    fn install(&self, next: Topology, changed: bool);
    /// A refresh started by `trigger` ended; `ok` when some node answered, out of `asked`.
    fn refreshed(&self, trigger: Trigger, ok: bool, asked: usize);
    /// Nodes disagreed about `slots` slots' owners in one refresh (resolved by config epoch).
    fn disagreed(&self, slots: usize);
    /// Some node is unreachable: its replacement can only be found by asking, so ask often.
    fn degraded(&self) -> bool {
        false
    }
}

/// What the refresher asks and how often: read afresh before every refresh, so a config reload
/// changes the seeds and the intervals without a restart (with a [`RefreshTrigger::request`],
/// so that a long wait under the old interval ends at once).
#[derive(Clone, Debug)]
pub struct RefreshPlan {
    pub seeds: Vec<NodeAddr>,
    pub settings: RefreshSettings,
}

/// Runs until `shutdown` resolves. Polls quickly with backoff while the map is incomplete, so a
/// proxy started before its cluster becomes ready as soon as the cluster does.
pub async fn run(
    plan: Arc<ArcSwap<RefreshPlan>>,
    sink: Arc<dyn TopologySink>,
    trigger: RefreshTrigger,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    // While the cluster is away this fails on every poll, several times a second.
    let quiet = crate::logging::Throttle::default();
    // Why the refresher woke, when no request says more.
    let mut woke = Trigger::Startup;
    let mut first = true;
    loop {
        let plan = plan.load_full();
        let (seeds, s) = (&plan.seeds, &plan.settings);
        let current = sink.current();
        let mut candidates = current.all_nodes();
        for seed in seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        // Requests made before this refresh starts are answered by it: fold them in.
        let asked_for = trigger.drain();
        let why = match first {
            true => Trigger::Startup,
            false => asked_for.unwrap_or(woke),
        };
        first = false;
        let fetched = refresh_once(&candidates, s).await;
        sink.refreshed(why, fetched.is_some(), candidates.len());
        let fetched = fetched.map(|(next, disagreements)| {
            if disagreements > 0 {
                sink.disagreed(disagreements);
            }
            next.keep_newer(&current)
        });
        match fetched {
            Some(next) => {
                let changed = next != *current;
                // Offered even when unchanged: `current` may be one view among several, and
                // a view that missed a move catches up here.
                sink.install(next, changed);
            }
            None => {
                if let Some(held) = quiet.admit(&()) {
                    tracing::warn!(
                        candidates = candidates.len(),
                        held,
                        "no node answered the slot map query"
                    );
                }
            }
        }
        let wait = if sink.degraded() {
            // A dead master sends no MOVED: poll until its replica is promoted. The floor keeps
            // a fleet of proxies from flooding the cluster while it fails over.
            woke = Trigger::Degraded;
            DEGRADED_POLL.saturating_sub(s.min_interval)
        } else if sink.current().is_complete() {
            woke = Trigger::Periodic;
            backoff = Duration::from_millis(100);
            jitter(s.interval)
        } else {
            woke = Trigger::Incomplete;
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

    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::cluster::Shard;

    /// A proxy whose map is complete but whose nodes are all gone: every refresh fails fast, and
    /// the test counts how many are attempted.
    struct CountingSink {
        topology: Arc<Topology>,
        refreshes: AtomicUsize,
    }

    impl TopologySink for CountingSink {
        fn current(&self) -> Arc<Topology> {
            self.topology.clone()
        }
        fn install(&self, _next: Topology, _changed: bool) {}
        fn refreshed(&self, _trigger: Trigger, _ok: bool, _asked: usize) {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        fn disagreed(&self, _slots: usize) {}
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_refresh_requests_causes_one_refresh() {
        let shard = Shard {
            master: "127.0.0.1:1".into(),
            replicas: vec![],
            epoch: 1,
        };
        let sink = Arc::new(CountingSink {
            topology: Arc::new(Topology::from_ranges([(0, 16383, shard)]).unwrap()),
            refreshes: AtomicUsize::new(0),
        });
        let settings = RefreshSettings {
            interval: Duration::from_secs(3600),
            min_interval: Duration::from_millis(100),
            connect_timeout: Duration::from_millis(50),
            query_timeout: Duration::from_millis(50),
            limits: Limits::default(),
        };
        let trigger = RefreshTrigger::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let plan = Arc::new(ArcSwap::from_pointee(RefreshPlan {
            seeds: vec![],
            settings,
        }));
        let task = tokio::spawn(run(plan, sink.clone(), trigger.clone(), async {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            sink.refreshes.load(Ordering::SeqCst),
            1,
            "the start-up refresh"
        );
        // A thousand MOVED replies arriving together.
        for _ in 0..1000 {
            trigger.request(Trigger::Moved);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            sink.refreshes.load(Ordering::SeqCst),
            2,
            "one refresh for the burst"
        );
        // Requests spread over time are rate-limited to one per min_interval.
        for _ in 0..50 {
            trigger.request(Trigger::Moved);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let n = sink.refreshes.load(Ordering::SeqCst);
        assert!(
            (3..=8).contains(&n),
            "500 ms of requests at a 100 ms limit gave {n} refreshes"
        );
        let _ = stop.send(());
        task.await.unwrap();
    }

    #[test]
    fn folded_requests_are_counted_under_the_most_telling_reason() {
        let t = RefreshTrigger::default();
        assert_eq!(t.drain(), None);
        t.request(Trigger::Unserved);
        t.request(Trigger::Moved);
        t.request(Trigger::Failure);
        assert_eq!(t.drain(), Some(Trigger::Moved));
        assert_eq!(t.drain(), None, "drained");
        t.request(Trigger::Unserved);
        assert_eq!(t.drain(), Some(Trigger::Unserved));
    }

    #[test]
    fn every_trigger_has_a_listed_label() {
        for t in [
            Trigger::Startup,
            Trigger::Periodic,
            Trigger::Incomplete,
            Trigger::Degraded,
            Trigger::Moved,
            Trigger::Failure,
            Trigger::Unserved,
        ] {
            assert!(
                crate::metrics::REFRESH_TRIGGERS.contains(&t.label()),
                "{t:?}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(900) && j <= Duration::from_millis(1100));
        }
    }
}
