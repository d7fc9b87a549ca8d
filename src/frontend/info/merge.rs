//! Builds slotgate's INFO text from the masters' replies, by the rules of `fields.rs`, in the
//! layout Redis prints: `# Title` then `name:value` lines, sections apart by an empty line.

use std::collections::HashMap;
use std::fmt::Write;

use super::fields::{lines, Lines, Rule};
use super::keyspace::Keyspace;
use super::number::{self, bytes_to_human};
use super::own::Stats;
use super::select::{Section, Selection};

/// One master's INFO reply: its sections, each a list of `name:value` lines.
#[derive(Debug, Default)]
pub struct NodeInfo<'a> {
    sections: Vec<(&'a str, Vec<(&'a str, &'a str)>)>,
}

impl<'a> NodeInfo<'a> {
    pub fn parse(text: &'a str) -> NodeInfo<'a> {
        let mut info = NodeInfo::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(title) = line.strip_prefix("# ") {
                info.sections.push((title, Vec::new()));
            } else if let (Some((name, value)), Some(section)) =
                (line.split_once(':'), info.sections.last_mut())
            {
                section.1.push((name, value));
            }
        }
        info
    }

    fn section(&self, title: &str) -> &[(&'a str, &'a str)] {
        self.sections
            .iter()
            .find(|(t, _)| *t == title)
            .map_or(&[], |(_, lines)| lines)
    }
}

/// The INFO text for `selection`: slotgate's own values, merged ones from `nodes` (the masters
/// that answered, the first first), and after Redis' sections those the masters add themselves
/// (a module's).
pub fn render(selection: Selection, stats: &Stats, nodes: &[NodeInfo]) -> String {
    let mut sections: Vec<String> = Section::ALL
        .iter()
        .filter(|s| selection.has(**s))
        .map(|s| {
            let per_node: Vec<_> = nodes.iter().map(|n| n.section(s.title())).collect();
            section(s.title(), lines(*s), stats, &per_node)
        })
        .collect();
    let mut others: Vec<&str> = Vec::new();
    for (title, _) in nodes.iter().flat_map(|n| &n.sections) {
        if !Section::ALL.iter().any(|s| s.title() == *title) && !others.contains(title) {
            others.push(title);
        }
    }
    for title in others {
        let per_node: Vec<_> = nodes.iter().map(|n| n.section(title)).collect();
        sections.push(section(title, Lines::FirstEach, stats, &per_node));
    }
    sections.join("\r\n")
}

/// One section's lines from each master that answered, the first master's first: "first" in
/// the rules means it.
type PerNode<'n, 'a> = &'n [&'n [(&'a str, &'a str)]];

fn section(title: &str, how: Lines, stats: &Stats, nodes: PerNode) -> String {
    let mut out = format!("# {title}\r\n");
    let mut put = |name: &str, value: &str| {
        let _ = write!(out, "{name}:{value}\r\n");
    };
    match how {
        Lines::Fields { fields, open } => {
            let merged = merge_fields(fields, stats, nodes);
            merged.iter().for_each(|(name, value)| put(name, value));
            if open {
                let listed = |name: &str| fields.iter().any(|(n, _)| *n == name);
                for (name, values) in union(nodes).filter(|(n, _)| !listed(n)) {
                    put(name, values[0]);
                }
            }
        }
        Lines::FirstEach => union(nodes).for_each(|(name, values)| put(name, values[0])),
        Lines::SumEach => union(nodes).for_each(|(name, values)| put(name, &sum_each(&values))),
        Lines::MaxEach => union(nodes).for_each(|(name, values)| put(name, &max_each(&values))),
        Lines::Keyspace => {
            let mut keyspace = Keyspace::default();
            for (name, value) in nodes.iter().flat_map(|n| n.iter()) {
                if *name == "db0" {
                    keyspace.add(value);
                }
            }
            if keyspace.keys > 0 {
                put("db0", &keyspace.to_string());
            }
        }
    }
    out
}

/// The listed fields in order, each by its rule; a field no rule can give a value (no master
/// answered, or none has it) is left out.
fn merge_fields(
    fields: &'static [(&'static str, Rule)],
    stats: &Stats,
    nodes: PerNode,
) -> Vec<(&'static str, String)> {
    let by_name: Vec<HashMap<&str, &str>> =
        nodes.iter().map(|n| n.iter().copied().collect()).collect();
    let mut merged: Vec<(&'static str, String)> = Vec::with_capacity(fields.len());
    for &(name, rule) in fields {
        let values: Vec<&str> = by_name
            .iter()
            .filter_map(|n| n.get(name).copied())
            .collect();
        let earlier = |field: &str| -> Option<f64> {
            merged
                .iter()
                .find(|(n, _)| *n == field)
                .and_then(|(_, v)| v.parse().ok())
        };
        let value = match rule {
            Rule::Own(own) => Some(own.value(stats)),
            Rule::Fixed(value) => Some(value.to_owned()),
            Rule::First => values.first().map(|v| (*v).to_owned()),
            Rule::Sum => number::sum(&values),
            Rule::Max => number::max(&values).map(str::to_owned),
            Rule::Limit => match values.iter().any(|v| number::is_zero(v)) {
                true => Some("0".to_owned()),
                false => number::sum(&values),
            },
            Rule::Worst => values
                .iter()
                .find(|v| **v != "ok")
                .or(values.first())
                .map(|v| (*v).to_owned()),
            Rule::Human(of) => earlier(of).map(|n| bytes_to_human(n as u64)),
            Rule::Ratio(a, b) => number::ratio(earlier(a), earlier(b)).map(|r| format!("{r:.2}")),
            Rule::Percent(a, b) => {
                number::ratio(earlier(a), earlier(b)).map(|r| format!("{:.2}%", r * 100.0))
            }
            Rule::DatasetPercent => {
                // Redis divides by at least 1 byte.
                let used = earlier("used_memory").zip(earlier("used_memory_startup"));
                let net = used.map(|(used, startup)| (used - startup).max(1.0));
                number::ratio(earlier("used_memory_dataset"), net)
                    .map(|r| format!("{:.2}%", r * 100.0))
            }
        };
        if let Some(value) = value {
            merged.push((name, value));
        }
    }
    merged
}

/// Every line name the masters print, in the order they first appear, with each master's
/// value (never empty).
fn union<'a>(nodes: PerNode<'_, 'a>) -> impl Iterator<Item = (&'a str, Vec<&'a str>)> {
    let mut names: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
    for &(name, value) in nodes.iter().flat_map(|n| n.iter()) {
        match names.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => names.push((name, vec![value])),
        }
    }
    names.into_iter()
}

/// `a=1,b=2` from every master, each sub-field summed; `usec_per_call` is computed again from
/// the summed `usec` and `calls`, as Redis computes it (`%.2f`).
fn sum_each(values: &[&str]) -> String {
    let merged = each(values, |v| number::sum(v).unwrap_or_default());
    let get = |key: &str| {
        merged
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<f64>().ok())
    };
    let per_call = match (get("usec"), get("calls")) {
        (Some(usec), Some(calls)) if calls > 0.0 => format!("{:.2}", usec / calls),
        _ => "0.00".to_owned(),
    };
    let parts: Vec<String> = merged
        .iter()
        .map(|(k, v)| match *k {
            "usec_per_call" => format!("{k}={per_call}"),
            _ => format!("{k}={v}"),
        })
        .collect();
    parts.join(",")
}

/// `p50=1.0,p99=2.0` from every master, each sub-field the largest.
fn max_each(values: &[&str]) -> String {
    let merged = each(values, |v| number::max(v).unwrap_or_default().to_owned());
    let parts: Vec<String> = merged.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// Groups the sub-fields of `k=v,k=v` values by key, in first-seen order, and merges each.
fn each<'a>(values: &[&'a str], merge: impl Fn(&[&'a str]) -> String) -> Vec<(&'a str, String)> {
    let mut keys: Vec<(&'a str, Vec<&'a str>)> = Vec::new();
    for (k, v) in values
        .iter()
        .flat_map(|line| line.split(','))
        .filter_map(|kv| kv.split_once('='))
    {
        match keys.iter_mut().find(|(key, _)| *key == k) {
            Some((_, vs)) => vs.push(v),
            None => keys.push((k, vec![v])),
        }
    }
    keys.into_iter().map(|(k, vs)| (k, merge(&vs))).collect()
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
