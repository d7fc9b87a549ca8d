//! The round-by-round table the bench prints.

use std::fmt::Write as _;

use crate::report::{opt_ms, RoundReport};

/// One row of the table: a figure of a round, as text.
type Cell = Box<dyn Fn(&RoundReport) -> String>;

pub fn table(rounds: &[RoundReport]) -> String {
    let metric = |r: &RoundReport, name: &str| {
        r.metrics
            .get(name)
            .map_or("?".to_owned(), |v| format!("{v:.0}"))
    };
    // Refreshes are counted by trigger too: add up every trigger's.
    let refreshes = |r: &RoundReport, outcome: &str| {
        let label = format!("outcome=\"{outcome}\"");
        let total: f64 = r
            .metrics
            .iter()
            .filter(|(k, _)| {
                k.starts_with("slotgate_topology_refreshes_total{") && k.contains(&label)
            })
            .map(|(_, v)| v)
            .sum();
        format!("{total:.0}")
    };
    let rows: Vec<(&str, Cell)> = vec![
        (
            "killed master -> promoted replica",
            Box::new(|r| format!("{} -> {}", r.victim, r.replica)),
        ),
        (
            "requests (rate)",
            Box::new(|r| {
                format!(
                    "{} ({:.0}/s)",
                    r.requests,
                    r.requests as f64 / r.load_secs.max(1e-3)
                )
            }),
        ),
        (
            "errors: killed shard / others",
            Box::new(|r| {
                let (v, o) = r.errors_victim_others();
                format!("{v} / {o}")
            }),
        ),
        (
            "window kill -> promotion",
            Box::new(|r| format!("{} ms", r.kill_to_promotion_ms())),
        ),
        (
            "window promotion -> first success",
            Box::new(|r| opt_ms(r.promotion_to_success_ms())),
        ),
        (
            "window kill -> last error",
            Box::new(|r| {
                r.kill_to_last_error_ms()
                    .map_or("no errors".into(), |v| format!("{v} ms"))
            }),
        ),
        (
            "other shards before kill p50/p99/max",
            Box::new(|r| r.baseline_others.text()),
        ),
        (
            "other shards in window: requests",
            Box::new(|r| r.window_others.count.to_string()),
        ),
        (
            "other shards in window p50/p99/max",
            Box::new(|r| r.window_others.text()),
        ),
        (
            "  same, corrected for coord. omission",
            Box::new(|r| r.window_others_corrected.text()),
        ),
        (
            "  slowest of them sent at (from kill)",
            Box::new(|r| opt_ms(r.slowest_other_sent_ms).replace("never", "-")),
        ),
        (
            "held on killed shard: requests (errors)",
            Box::new(|r| format!("{} ({})", r.held.count, r.held_errors)),
        ),
        (
            "held on killed shard p50/p99/max",
            Box::new(|r| r.held.text()),
        ),
        (
            "  same, corrected for coord. omission",
            Box::new(|r| r.held_corrected.text()),
        ),
        (
            "slotgate map refreshes ok / failed",
            Box::new(move |r| format!("{} / {}", refreshes(r, "ok"), refreshes(r, "error"))),
        ),
        (
            "slotgate backend reconnects",
            Box::new(move |r| metric(r, "slotgate_backend_reconnects_total")),
        ),
    ];
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(_, f)| rounds.iter().map(f).collect())
        .collect();
    let col_width = cells
        .iter()
        .flatten()
        .map(String::len)
        .chain(rounds.iter().map(|r| format!("round {}", r.n).len()))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = write!(out, "{:<label_width$}", "");
    for r in rounds {
        let _ = write!(out, "  {:>col_width$}", format!("round {}", r.n));
    }
    out.push('\n');
    for ((label, _), row) in rows.iter().zip(&cells) {
        let _ = write!(out, "{label:<label_width$}");
        for cell in row {
            let _ = write!(out, "  {cell:>col_width$}");
        }
        out.push('\n');
    }
    out.push_str(
        "\nwindow = [kill, first success on the killed shard]; latencies from when the client \
         sent the request;\n\"corrected\" adds the requests a stalled paced client did not send \
         (HdrHistogram record_correct).\n",
    );
    for r in rounds {
        if r.errors_before_kill > 0 {
            let _ = writeln!(
                out,
                "round {}: {} errors BEFORE the kill",
                r.n, r.errors_before_kill
            );
        }
        for s in &r.shards {
            for (text, count) in s.texts.iter().take(8) {
                let _ = writeln!(out, "round {} shard {}: {count} x {text}", r.n, s.port);
            }
        }
    }
    out
}
