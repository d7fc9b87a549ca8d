//! The command line: `scripts/bench-failover.sh` passes its arguments through.

use std::time::Duration;

pub const USAGE: &str = "usage: scripts/bench-failover.sh [--rounds N] [--node-timeout-ms MS] \
[--clients N] [--rate R] [--warmup-secs S] [--after-secs S] [--hold-timeout-ms MS]
  --rounds N            rounds, each on a fresh cluster, killing masters in turn (default 1)
  --node-timeout-ms MS  cluster-node-timeout of the Redis nodes (default 2000)
  --clients N           client connections, pipeline 1, pinned to the masters in turn (default 30)
  --rate R              total requests per second over all clients; 0 = as fast as they can
                        (default 3000)
  --warmup-secs S       load before the kill (default 3)
  --after-secs S        load after the promotion is seen (default 3)
  --hold-timeout-ms MS  slotgate's backend.hold_timeout_ms (default 17000, slotgate's default)";

pub struct Options {
    pub rounds: usize,
    pub node_timeout_ms: u64,
    pub clients: usize,
    pub rate: f64,
    pub warmup: Duration,
    pub after: Duration,
    pub hold_timeout_ms: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            rounds: 1,
            node_timeout_ms: 2000,
            clients: 30,
            rate: 3000.0,
            warmup: Duration::from_secs(3),
            after: Duration::from_secs(3),
            hold_timeout_ms: 17_000,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value")).cloned();
            match arg.as_str() {
                "--bench" => {}
                "--rounds" => o.rounds = int(&value(arg)?, arg, 1, 100)? as usize,
                "--node-timeout-ms" => o.node_timeout_ms = int(&value(arg)?, arg, 100, 60_000)?,
                "--clients" => o.clients = int(&value(arg)?, arg, 3, 1000)? as usize,
                "--rate" => o.rate = float(&value(arg)?, arg, 0.0, 1e6)?,
                "--warmup-secs" => o.warmup = secs(&value(arg)?, arg, 1.0)?,
                "--after-secs" => o.after = secs(&value(arg)?, arg, 0.5)?,
                "--hold-timeout-ms" => o.hold_timeout_ms = int(&value(arg)?, arg, 1, 600_000)?,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(o)
    }

    /// Time between two requests of one client; `None` runs each client flat out.
    pub fn period(&self) -> Option<Duration> {
        (self.rate > 0.0).then(|| Duration::from_secs_f64(self.clients as f64 / self.rate))
    }

    /// Above the hold timeout and slotgate's default 5 s op timeout, so a client-side timeout
    /// means slotgate kept a request longer than it may, not that the client was impatient.
    pub fn client_read_timeout(&self) -> Duration {
        Duration::from_millis(self.hold_timeout_ms + 10_000)
    }
}

fn int(v: &str, name: &str, min: u64, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(format!("{name} takes {min} to {max}"))
}

fn float(v: &str, name: &str, min: f64, max: f64) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or(format!("{name} takes {min} to {max}"))
}

fn secs(v: &str, name: &str, min: f64) -> Result<Duration, String> {
    float(v, name, min, 600.0).map(Duration::from_secs_f64)
}
