//! Pieces of hand-written JSON, to keep serde_json out of the dependencies.

use std::fmt::Write as _;

/// A JSON string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A number with at most three decimals and no trailing zeros; `null` if not finite.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        "null".into()
    }
}

/// [`num`], or `null` for `None`.
pub fn onum(v: Option<f64>) -> String {
    v.map_or_else(|| "null".into(), num)
}
