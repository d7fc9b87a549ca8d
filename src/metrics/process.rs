//! The process metrics every Prometheus client exports: the prometheus crate's collector, with
//! `process_cpu_seconds_total` to the clock tick. The crate keeps that counter as an integer,
//! so it moves in whole seconds: over a minute, a proxy using a tenth of a core would show a
//! rate of 0 or 1/60 of a core, never 0.1.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;

const CPU: &str = "process_cpu_seconds_total";

pub struct Process {
    inner: ProcessCollector,
}

impl Process {
    pub fn for_self() -> Process {
        Process {
            inner: ProcessCollector::for_self(),
        }
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        if let Some(seconds) = cpu_seconds() {
            let cpu = families.iter_mut().find(|f| f.name() == CPU);
            if let Some(m) = cpu.and_then(|f| f.mut_metric().first_mut()) {
                let mut counter = prometheus::proto::Counter::default();
                counter.set_value(seconds);
                m.set_counter(counter);
            }
        }
        families
    }
}

/// User and system CPU time of this process so far.
fn cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_not_rounded_to_whole_seconds() {
        // Burn CPU until the process's time so far is not a whole number of seconds (a tick is
        // 10 ms, so at once, nearly always): rounded down, the export would then fall below it.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let before = loop {
            let t = cpu_seconds().expect("/proc/self/stat");
            if t.fract() != 0.0 || start.elapsed().as_secs() >= 5 {
                break t;
            }
            for i in 0..1_000_000 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        };
        std::hint::black_box(x);
        let families = Process::for_self().collect();
        let cpu = families
            .iter()
            .find(|f| f.name() == CPU)
            .expect("cpu family");
        let exported = cpu.get_metric()[0].get_counter().get_value();
        let after = cpu_seconds().unwrap();
        assert!(
            before <= exported && exported <= after,
            "{before} <= {exported} <= {after}"
        );
    }
}
