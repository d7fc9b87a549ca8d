//! The frame of every chaos test: start the load and the PING prober, let the test stage its
//! fault and mark the moments, then stop everything and check the common expectations.

use std::time::Duration;

use crate::load::{Load, LoadResult, LoadSpec};
use crate::report::Marks;
use crate::setup::{slot_owners, Env};
use crate::verify::{self, Verdict};
use crate::watch::{PingStats, Pinger};

/// Load before the fault, so every thread is connected and every shard has acked writes.
const WARMUP: Duration = Duration::from_secs(1);

pub struct Run {
    load: Load,
    pinger: Pinger,
    pub marks: Marks,
}

impl Run {
    /// Starts the load with keys spread over the masters as the first node sees them, and
    /// returns after a warm-up.
    pub fn start(env: &Env, prefix: &'static str) -> Run {
        let owners = slot_owners(env.cluster.nodes[0].port);
        let load = Load::start(env.proxy.addr, &owners, LoadSpec::new(prefix));
        let pinger = Pinger::start(env.proxy.addr);
        std::thread::sleep(WARMUP);
        Run {
            load,
            pinger,
            marks: Marks::default(),
        }
    }

    /// Stops the load, prints the report and checks the expectations shared by every test; the
    /// caller adds its own to the verdict.
    pub fn finish(self, name: &'static str, env: &Env) -> Finished {
        let result = self.load.stop();
        let ping = self.pinger.stop();
        let verdict = verify::finish(
            name,
            env.cluster.dir(),
            &env.proxy,
            &result,
            &self.marks,
            &ping,
        );
        Finished {
            result,
            marks: self.marks,
            ping,
            verdict,
        }
    }
}

pub struct Finished {
    pub result: LoadResult,
    pub marks: Marks,
    pub ping: PingStats,
    pub verdict: Verdict,
}
