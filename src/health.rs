//! What `/livez` and `/readyz` answer: whether every thread of the proxy still runs, and whether
//! this proxy can serve clients now.
//!
//! Liveness is about this process only, and restarts it when it fails, so it must not depend on
//! the cluster. Readiness decides whether a load balancer sends clients here; it fails while
//! draining, before a slot map is loaded and while no master of it can be reached, but by
//! default not when only some slots have no master: every proxy of a tier sees the same cluster,
//! so a rule on coverage would take all of them out of their Service at once, and clients would
//! lose the keys of the healthy shards too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::HealthConfig;
use crate::metrics::http::HealthSource;
use crate::route::Routers;

/// How often each worker thread's runtime records that it runs.
pub const BEAT: Duration = Duration::from_millis(250);

/// When each worker thread's runtime last ran its heartbeat task. A worker blocked in a long
/// computation, a blocking call or a deadlock stops beating while the main thread, which serves
/// `/livez`, carries on: without this, the probe would pass while that worker's clients hang.
pub struct Heartbeats {
    epoch: Instant,
    /// Milliseconds after `epoch` of each worker's last beat.
    last: Vec<AtomicU64>,
}

impl Heartbeats {
    pub fn new(workers: usize) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            epoch: Instant::now(),
            last: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Beats for `worker` every [`BEAT`] until dropped; spawned on that worker's runtime, so it
    /// runs only when the runtime's thread is free to run it.
    pub async fn beat(self: Arc<Self>, worker: usize) {
        let mut tick = tokio::time::interval(BEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(last) = self.last.get(worker) {
                last.store(self.now_ms(), Ordering::Relaxed);
            }
        }
    }

    /// The worker silent the longest, and for how long, if that is longer than `limit`.
    pub fn stalled(&self, limit: Duration) -> Option<(usize, Duration)> {
        let now = self.now_ms();
        self.last
            .iter()
            .enumerate()
            .map(|(i, last)| {
                let silent = now.saturating_sub(last.load(Ordering::Relaxed));
                (i, Duration::from_millis(silent))
            })
            .max_by_key(|&(_, silent)| silent)
            .filter(|&(_, silent)| silent > limit)
    }
}

/// The health rules a reload may change.
struct Rules {
    worker_stall_timeout_ms: AtomicU64,
    ready_requires_full_coverage: AtomicBool,
}

/// The application's answer to the probes.
pub struct Probes {
    routers: Arc<Routers>,
    heartbeats: Arc<Heartbeats>,
    rules: Rules,
    /// Set once at shutdown: the proxy takes no new clients.
    draining: AtomicBool,
}

impl Probes {
    pub fn new(
        routers: Arc<Routers>,
        heartbeats: Arc<Heartbeats>,
        config: &HealthConfig,
    ) -> Probes {
        let probes = Probes {
            routers,
            heartbeats,
            rules: Rules {
                worker_stall_timeout_ms: AtomicU64::new(0),
                ready_requires_full_coverage: AtomicBool::new(false),
            },
            draining: AtomicBool::new(false),
        };
        probes.configure(config);
        probes
    }

    /// Applies reloaded rules; the next probe uses them.
    pub fn configure(&self, config: &HealthConfig) {
        let r = &self.rules;
        r.worker_stall_timeout_ms
            .store(config.worker_stall_timeout_ms, Ordering::Relaxed);
        r.ready_requires_full_coverage
            .store(config.ready_requires_full_coverage, Ordering::Relaxed);
    }

    /// From now on `/readyz` fails: the proxy is shutting down.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

impl HealthSource for Probes {
    fn ready(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining".to_owned());
        }
        if !self.routers.has_slot_map() {
            return Err("no slot map yet".to_owned());
        }
        if !self.routers.reaches_a_master() {
            return Err("no master of the slot map is reachable".to_owned());
        }
        let full = self
            .rules
            .ready_requires_full_coverage
            .load(Ordering::Relaxed);
        if full && !self.routers.is_ready() {
            return Err("some slots have no master".to_owned());
        }
        Ok(())
    }

    fn status_json(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&self.routers.status()).ok()
    }

    fn live(&self) -> Result<(), String> {
        let limit =
            Duration::from_millis(self.rules.worker_stall_timeout_ms.load(Ordering::Relaxed));
        match self.heartbeats.stalled(limit) {
            Some((worker, silent)) => Err(format!(
                "worker {worker} has not run for {:.1} s",
                silent.as_secs_f64()
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Shard, Topology};
    use crate::fake::{always, fake_node, router};
    use crate::metrics::Metrics;

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_stops_beating_is_stalled() {
        let beats = Heartbeats::new(2);
        let limit = Duration::from_secs(2);
        let zero = tokio::spawn(beats.clone().beat(0));
        let one = tokio::spawn(beats.clone().beat(1));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(beats.stalled(limit), None);
        one.abort();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(beats.stalled(limit), None, "within the limit");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (worker, silent) = beats.stalled(limit).expect("worker 1 is stalled");
        assert_eq!(worker, 1);
        assert!(
            silent > limit && silent <= Duration::from_secs(3) + BEAT,
            "{silent:?}"
        );
        zero.abort();
    }

    fn probes(routers: Arc<Routers>, full_coverage: bool) -> Probes {
        let config = HealthConfig {
            ready_requires_full_coverage: full_coverage,
            ..HealthConfig::default()
        };
        Probes::new(routers, Heartbeats::new(1), &config)
    }

    async fn wait_ready(probes: &Probes) -> Result<(), String> {
        for _ in 0..200 {
            if probes.ready().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probes.ready()
    }

    #[tokio::test]
    async fn ready_once_a_master_of_the_map_is_reachable_and_until_draining() {
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(router(metrics.clone()));
        let routers = Arc::new(Routers::new(vec![router.clone()], metrics));
        let lenient = probes(routers.clone(), false);
        let strict = probes(routers, true);
        assert_eq!(lenient.ready(), Err("no slot map yet".to_owned()));

        // Half the slots, at a node that answers, and the other half at one that does not.
        let (up, _) = fake_node(always("+OK\r\n")).await;
        let shard = |master: &str| Shard {
            master: master.into(),
            replicas: Vec::new(),
            epoch: 1,
        };
        let half = Topology::from_ranges([(0, 8191, shard(&up))]).unwrap();
        router.install(&half);
        assert_eq!(wait_ready(&lenient).await, Ok(()));
        assert_eq!(strict.ready(), Err("some slots have no master".to_owned()));
        // A reload turns the coverage rule off.
        strict.configure(&HealthConfig::default());
        assert_eq!(strict.ready(), Ok(()));

        // No master reachable: not ready, whatever the coverage.
        let down = Topology::from_ranges([(0, 16383, shard("127.0.0.1:1"))]).unwrap();
        router.install(&down);
        assert_eq!(
            lenient.ready(),
            Err("no master of the slot map is reachable".to_owned())
        );

        router.install(&half);
        assert_eq!(wait_ready(&lenient).await, Ok(()));
        lenient.drain();
        assert_eq!(lenient.ready(), Err("draining".to_owned()));
        assert_eq!(lenient.live(), Ok(()), "draining is no reason to restart");
    }
}
