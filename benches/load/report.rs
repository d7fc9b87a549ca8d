//! Per-target totals over the rounds, and the table on stdout.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::common::proc::Ticks;
use crate::resp::Target;
use crate::run::{IdleTally, Sample, Tally};
use crate::workload::Workload;

pub const MIB: f64 = 1024.0;

/// One target's totals over every round of a workload.
pub struct Side {
    pub tally: Tally,
    pub secs: f64,
    pub round_rps: Vec<f64>,
    pub client_ticks: Option<Ticks>,
    /// The proxy's CPU (slotgate or the baseline); `None` on the direct side, which never reads it.
    pub proxy_ticks: Option<Ticks>,
    /// All Redis nodes' CPU, on both sides.
    pub cluster_ticks: Option<Ticks>,
    /// Highest VmRSS seen at the end of a round.
    pub rss_kib: Option<u64>,
    /// VmHWM after the last round: the peak over the process's life so far, not this workload's.
    pub hwm_kib: Option<u64>,
    pub backend_conns: Option<f64>,
    pub idle: IdleTally,
}

impl Side {
    fn new() -> Side {
        Side {
            tally: Tally::new(),
            secs: 0.0,
            round_rps: Vec::new(),
            client_ticks: Some(Ticks::default()),
            proxy_ticks: Some(Ticks::default()),
            cluster_ticks: Some(Ticks::default()),
            rss_kib: None,
            hwm_kib: None,
            backend_conns: None,
            idle: IdleTally::default(),
        }
    }

    fn add(&mut self, s: Sample) {
        self.tally.merge(&s.tally);
        self.secs += s.secs;
        self.round_rps.push(s.tally.requests as f64 / s.secs);
        let sum = |a: Option<Ticks>, b: Option<Ticks>| Some(a?.plus(b?));
        self.client_ticks = sum(self.client_ticks, s.client_ticks);
        self.proxy_ticks = sum(self.proxy_ticks, s.proxy_ticks);
        self.cluster_ticks = sum(self.cluster_ticks, s.cluster_ticks);
        if let Some(f) = s.footprint {
            self.rss_kib = self.rss_kib.max(f.rss_kib);
            self.hwm_kib = f.hwm_kib.or(self.hwm_kib);
            self.backend_conns = f.backend_conns.or(self.backend_conns);
        }
        self.idle.pings += s.idle.pings;
        self.idle.errors += s.idle.errors;
        if self.idle.first_error.is_none() {
            self.idle.first_error = s.idle.first_error;
        }
    }

    pub fn rps(&self) -> f64 {
        if self.secs > 0.0 {
            self.tally.requests as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn quantile_us(&self, q: f64) -> f64 {
        self.tally.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// CPU µs per request, i.e. CPU seconds per million requests.
    pub fn cpu_us(
        &self,
        ticks: Option<Ticks>,
        part: fn(Ticks) -> u64,
        clk_tck: u64,
    ) -> Option<f64> {
        let ticks = part(ticks?);
        (self.tally.requests > 0)
            .then(|| ticks as f64 / clk_tck as f64 * 1e6 / self.tally.requests as f64)
    }

    pub fn errors(&self) -> u64 {
        self.tally.errors + self.idle.errors
    }

    pub fn first_error(&self) -> Option<&str> {
        self.tally
            .first_error
            .as_deref()
            .or(self.idle.first_error.as_deref())
    }
}

/// `a`'s throughput over `b`'s; 0 when `b` served nothing.
fn rps_ratio(a: &Side, b: &Side) -> f64 {
    let d = b.rps();
    if d > 0.0 {
        a.rps() / d
    } else {
        0.0
    }
}

/// Per-round ratios of `a` over `b`, sorted. A wide spread says the machine, not slotgate, moved
/// the total; the median then resists one round that a burst of other work hit on one side only.
fn round_ratios(a: &Side, b: &Side) -> Vec<f64> {
    let mut ratios: Vec<f64> = (b.round_rps.iter())
        .zip(&a.round_rps)
        .filter(|&(d, _)| *d > 0.0)
        .map(|(d, s)| s / d)
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// The median of sorted figures.
fn median(sorted: &[f64]) -> Option<f64> {
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2.0),
    }
}

pub struct Row {
    pub w: Arc<Workload>,
    pub direct: Side,
    pub slotgate: Side,
    /// The older binary of an A/B run; `None` until a baseline run is added, so without one
    /// nothing else changes.
    pub baseline: Option<Side>,
}

impl Row {
    pub fn new(w: Arc<Workload>) -> Row {
        Row {
            w,
            direct: Side::new(),
            slotgate: Side::new(),
            baseline: None,
        }
    }

    pub fn add(&mut self, target: &Target, s: Sample) {
        let side = match target {
            Target::Direct(_) => &mut self.direct,
            Target::Slotgate(_) => &mut self.slotgate,
            Target::Baseline(_) => self.baseline.get_or_insert_with(Side::new),
        };
        side.add(s);
    }

    /// Each target's side by name, the baseline last if there is one.
    fn sides(&self) -> impl Iterator<Item = (&'static str, &Side)> {
        [("direct", &self.direct), ("slotgate", &self.slotgate)]
            .into_iter()
            .chain(self.baseline.as_ref().map(|b| ("baseline", b)))
    }

    /// slotgate over direct.
    pub fn ratio(&self) -> f64 {
        rps_ratio(&self.slotgate, &self.direct)
    }

    pub fn median_ratio(&self) -> Option<f64> {
        median(&round_ratios(&self.slotgate, &self.direct))
    }

    /// slotgate over the baseline, in an A/B run.
    pub fn baseline_ratio(&self) -> Option<f64> {
        (self.baseline.as_ref()).map(|b| rps_ratio(&self.slotgate, b))
    }

    pub fn median_baseline_ratio(&self) -> Option<f64> {
        (self.baseline.as_ref()).and_then(|b| median(&round_ratios(&self.slotgate, b)))
    }

    /// "ok" or "MISS" per goal, for the lines under the table.
    fn verdicts(&self, clk_tck: u64) -> String {
        let g = self.w.goal;
        let mark = |ok: bool| if ok { "ok" } else { "MISS" };
        let ratio = self.ratio();
        let mut out = match g.min_ratio {
            Some(min) => format!("ratio {ratio:.3} >= {min:.2} {}", mark(ratio >= min)),
            None => format!("ratio {ratio:.3} (no goal)"),
        };
        let rounds = round_ratios(&self.slotgate, &self.direct);
        if let ([lo, .., hi], Some(median)) = (&rounds[..], self.median_ratio()) {
            let _ = write!(out, " (rounds {lo:.2}-{hi:.2}, median {median:.2})");
        }
        if let (Some(max), Some(cpu)) = (
            g.max_cpu_us,
            self.slotgate
                .cpu_us(self.slotgate.proxy_ticks, Ticks::total, clk_tck),
        ) {
            let _ = write!(out, "; CPU {cpu:.2} <= {max} µs/req {}", mark(cpu <= max));
        }
        if let Some(rss) = self.slotgate.rss_kib {
            let rss = rss as f64 / MIB;
            let _ = write!(
                out,
                "; RSS {rss:.1} < {} MiB {}",
                g.max_rss_mib,
                mark(rss < g.max_rss_mib)
            );
        }
        out
    }
}

/// One line per workload of some process's CPU per request, direct / slotgate.
fn cpu_section(
    out: &mut String,
    rows: &[Row],
    title: &str,
    ticks: fn(&Side) -> Option<Ticks>,
    clk_tck: u64,
) {
    let _ = writeln!(out, "\n{title}");
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<13} {} / {}",
            r.w.name,
            cpu_total_user(&r.direct, ticks(&r.direct), clk_tck),
            cpu_total_user(&r.slotgate, ticks(&r.slotgate), clk_tck)
        );
    }
}

/// "total (user)" CPU µs per request, for the sections under the table.
fn cpu_total_user(side: &Side, ticks: Option<Ticks>, clk_tck: u64) -> String {
    let total = side.cpu_us(ticks, Ticks::total, clk_tck);
    let user = side.cpu_us(ticks, |t| t.user, clk_tck);
    format!("{} ({})", opt(total, 2), opt(user, 2))
}

fn lat(side: &Side) -> String {
    let f = |q| fmt_us(side.quantile_us(q));
    format!("{}/{}/{}", f(0.5), f(0.99), f(0.999))
}

fn fmt_us(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

pub fn table(rows: &[Row], clk_tck: u64) -> String {
    let mut out = String::new();
    main_table(&mut out, rows, clk_tck);
    if rows.iter().any(|r| r.baseline.is_some()) {
        baseline_table(&mut out, rows, clk_tck);
    }
    let _ = writeln!(out, "\ngoals for slotgate:");
    for r in rows {
        let _ = writeln!(out, "  {:<13} {}", r.w.name, r.verdicts(clk_tck));
    }
    cpu_section(
        &mut out,
        rows,
        "bench client CPU µs/req, total (user), direct / slotgate: a client that costs the same \
         on both targets does not bias the ratio",
        |s| s.client_ticks,
        clk_tck,
    );
    cpu_section(
        &mut out,
        rows,
        "redis CPU µs/req, all nodes, total (user), direct / slotgate: a yardstick for slotgate's \
         CPU, since a node answering clients directly pays the same per-request socket costs that \
         slotgate pays on its client side; through slotgate it should be lower, as slotgate \
         batches many clients onto few connections",
        |s| s.cluster_ticks,
        clk_tck,
    );
    for r in rows {
        for (name, side) in r.sides() {
            if let Some(e) = side.first_error() {
                let _ = writeln!(
                    out,
                    "ERRORS {} {name}: {} (first: {e})",
                    r.w.name,
                    side.errors()
                );
            }
        }
    }
    out
}

/// Direct against slotgate, one line per workload.
fn main_table(out: &mut String, rows: &[Row], clk_tck: u64) {
    let _ = writeln!(
        out,
        "{:<13} {:>5} {:>4} {:>10} {:>10} {:>5}  {:>19} {:>19} {:>7} {:>6} {:>7} {:>7} {:>7} {:>6}",
        "workload",
        "conns",
        "pipe",
        "direct/s",
        "slotgate/s",
        "ratio",
        "direct p50/99/99.9",
        "sg p50/99/99.9 µs",
        "sg CPU",
        "(user)",
        "sg RSS",
        "sg HWM",
        "backend",
        "errors"
    );
    let _ = writeln!(
        out,
        "{:<13} {:>5} {:>4} {:>10} {:>10} {:>5}  {:>19} {:>19} {:>7} {:>6} {:>7} {:>7} {:>7} {:>6}",
        "", "", "", "", "", "", "µs", "", "µs/req", "", "MiB", "MiB", "conns", ""
    );
    for r in rows {
        let sg = &r.slotgate;
        let conns = if r.w.idle > 0 {
            format!("{}+{}", r.w.clients, r.w.idle)
        } else {
            r.w.clients.to_string()
        };
        let _ = writeln!(
            out,
            "{:<13} {:>5} {:>4} {:>10.0} {:>10.0} {:>5.2}  {:>19} {:>19} {:>7} {:>6} {:>7} {:>7} {:>7} {:>6}",
            r.w.name,
            conns,
            r.w.pipeline,
            r.direct.rps(),
            sg.rps(),
            r.ratio(),
            lat(&r.direct),
            lat(sg),
            opt(sg.cpu_us(sg.proxy_ticks, Ticks::total, clk_tck), 2),
            opt(sg.cpu_us(sg.proxy_ticks, |t| t.user, clk_tck), 2),
            opt(sg.rss_kib.map(|k| k as f64 / MIB), 1),
            opt(sg.hwm_kib.map(|k| k as f64 / MIB), 1),
            opt(sg.backend_conns, 0),
            r.direct.errors() + sg.errors(),
        );
    }
}

/// A column of the A/B table: heading, unit, and its cell from slotgate's and the baseline's
/// sides.
type Column = (
    &'static str,
    &'static str,
    Box<dyn Fn(&Side, &Side) -> String>,
);

/// What the A/B table shows: the figures a change is judged by, for both binaries side by side.
fn baseline_columns(clk_tck: u64) -> Vec<Column> {
    let rps = |s: &Side| format!("{:.0}", s.rps());
    let p99 = |s: &Side| fmt_us(s.quantile_us(0.99));
    let cpu = move |s: &Side| opt(s.cpu_us(s.proxy_ticks, Ticks::total, clk_tck), 2);
    let rss = |s: &Side| opt(s.rss_kib.map(|k| k as f64 / MIB), 1);
    vec![
        ("slotgate/s", "", Box::new(move |sg, _| rps(sg))),
        ("baseline/s", "", Box::new(move |_, b| rps(b))),
        (
            "ratio",
            "sg/base",
            Box::new(|sg, b| format!("{:.2}", rps_ratio(sg, b))),
        ),
        (
            "median",
            "round",
            Box::new(|sg, b| opt(median(&round_ratios(sg, b)), 2)),
        ),
        (
            "rounds",
            "range",
            Box::new(|sg, b| range(&round_ratios(sg, b))),
        ),
        ("sg p99", "µs", Box::new(move |sg, _| p99(sg))),
        ("base p99", "µs", Box::new(move |_, b| p99(b))),
        ("sg CPU", "µs/req", Box::new(move |sg, _| cpu(sg))),
        ("base CPU", "µs/req", Box::new(move |_, b| cpu(b))),
        ("sg RSS", "MiB", Box::new(move |sg, _| rss(sg))),
        ("base RSS", "MiB", Box::new(move |_, b| rss(b))),
        (
            "errors",
            "baseline",
            Box::new(|_, b| b.errors().to_string()),
        ),
    ]
}

/// slotgate against the baseline binary of an A/B run, one line per workload.
fn baseline_table(out: &mut String, rows: &[Row], clk_tck: u64) {
    let cols = baseline_columns(clk_tck);
    let _ = writeln!(
        out,
        "\nA/B: slotgate against the baseline binary (SLOTGATE_BENCH_BASELINE), same config and \
         flags, in the same rounds"
    );
    let mut line = |name: &str, cells: Vec<String>| {
        let _ = write!(out, "{name:<13}");
        for cell in cells {
            let _ = write!(out, " {cell:>10}");
        }
        out.push('\n');
    };
    line("workload", cols.iter().map(|c| c.0.to_owned()).collect());
    line("", cols.iter().map(|c| c.1.to_owned()).collect());
    for r in rows {
        if let Some(b) = &r.baseline {
            line(
                r.w.name,
                cols.iter().map(|c| (c.2)(&r.slotgate, b)).collect(),
            );
        }
    }
}

/// The lowest and highest of sorted per-round ratios; `-` for fewer than two rounds.
fn range(sorted: &[f64]) -> String {
    match sorted {
        [lo, .., hi] => format!("{lo:.2}-{hi:.2}"),
        _ => "-".into(),
    }
}
