//! Numbers in INFO text: summed and compared as the masters wrote them, and printed the way
//! Redis prints them, so a tool parsing slotgate's INFO sees the formats it knows.

/// The sum of `values`, in the format of the first: integers stay integers, `0.00` keeps two
/// decimals. `None` when there is nothing to add up or a value is not a number (then no sum
/// means anything).
pub fn sum(values: &[&str]) -> Option<String> {
    let first = values.first()?;
    if let Ok(ints) = values
        .iter()
        .map(|v| v.parse::<i128>())
        .collect::<Result<Vec<_>, _>>()
    {
        return Some(ints.iter().sum::<i128>().to_string());
    }
    let floats = values
        .iter()
        .map(|v| v.parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(format!(
        "{:.*}",
        decimals(first),
        floats.iter().sum::<f64>()
    ))
}

/// The largest of `values` as written; values that are not numbers lose to any number.
pub fn max<'a>(values: &[&'a str]) -> Option<&'a str> {
    values.iter().copied().max_by(|a, b| {
        let (a, b) = (a.parse::<f64>().ok(), b.parse::<f64>().ok());
        a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
    })
}

pub fn is_zero(value: &str) -> bool {
    value.parse::<f64>() == Ok(0.0)
}

/// `a / b`, when both are known and `b` is not 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

fn decimals(value: &str) -> usize {
    value.split_once('.').map_or(0, |(_, frac)| frac.len())
}

/// Redis' `bytesToHuman`: `895.07K`, `6.44M`, `0B`.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(u32, char); 5] = [(1, 'K'), (2, 'M'), (3, 'G'), (4, 'T'), (5, 'P')];
    if n < 1024 {
        return format!("{n}B");
    }
    for (power, unit) in UNITS {
        let next = 1024u128.pow(power + 1);
        if u128::from(n) < next {
            return format!("{:.2}{unit}", n as f64 / 1024f64.powi(power as i32));
        }
    }
    // Redis' own fallback for the exabytes it hopes never to see.
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs read from redis-server 7.0.15's INFO memory.
    #[test]
    fn human_bytes_as_redis_prints_them() {
        for (n, human) in [
            (0, "0B"),
            (200, "200B"),
            (1023, "1023B"),
            (1024, "1.00K"),
            (32768, "32.00K"),
            (66560, "65.00K"),
            (916552, "895.07K"),
            (6754304, "6.44M"),
            (25276203008, "23.54G"),
            (3 << 40, "3.00T"),
            (5 << 50, "5.00P"),
            (u64::MAX, "18446744073709551615B"),
        ] {
            assert_eq!(bytes_to_human(n), human, "{n}");
        }
    }

    #[test]
    fn sums_keep_the_masters_format() {
        assert_eq!(sum(&["1", "2", "3"]).as_deref(), Some("6"));
        assert_eq!(sum(&["-1", "2"]).as_deref(), Some("1"));
        assert_eq!(sum(&["0.50", "1.25"]).as_deref(), Some("1.75"));
        assert_eq!(sum(&["1.5", "2"]).as_deref(), Some("3.5"));
        assert_eq!(sum(&["ok", "1"]), None);
        assert_eq!(sum(&[]), None);
    }

    #[test]
    fn max_compares_numbers_not_text() {
        assert_eq!(max(&["9.1", "10.03", "2"]), Some("10.03"));
        assert_eq!(max(&["x", "1"]), Some("1"));
        assert_eq!(max(&[]), None);
    }

    #[test]
    fn ratio_needs_both_and_a_divisor() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }
}
