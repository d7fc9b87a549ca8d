//! What the JSON reports share: rounded figures, and writing the file.

use std::path::Path;

use serde::Serialize;

/// `v` to `decimals` places, so a figure reads 10.099 rather than 10.099213483146068. NaN and
/// infinities stay as they are, and serde_json writes them as `null`.
pub fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// Writes `report` as indented JSON with a final newline.
pub fn write(path: &Path, report: &impl Serialize) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
