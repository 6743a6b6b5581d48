//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`): parsed once, for the API, the
//! scheduler and the agent alike. CPU in millicores, everything else in base units, rounded up as the API
//! server does.

use serde_json::Value;

/// Parses a quantity into its value in base units (cores, bytes), or `None` when malformed.
pub fn parse(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let mantissa: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if (exp.starts_with('e') || exp.starts_with('E')) && exp.len() > 1 => {
            let e: i32 = exp[1..].parse().ok()?;
            10f64.powi(e)
        }
        _ => return None,
    };
    Some(mantissa * factor)
}

/// A quantity from JSON (string or number) in millicores, rounded up; `None` when absent or malformed.
pub fn millis(v: &Value) -> Option<i64> {
    let base = match v {
        Value::String(s) => parse(s)?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    // The epsilon keeps `0.1` * 1000 from rounding up to 101.
    Some(bounded((base * 1000.0 - 1e-6).ceil()))
}

/// A quantity from JSON (string or number) in base units, rounded up; `None` when absent or malformed.
pub fn units(v: &Value) -> Option<i64> {
    let base = match v {
        Value::String(s) => parse(s)?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some(bounded((base - 1e-9).ceil()))
}

/// The largest amount the scheduler accounts: 2^53 (8 PiB of memory, 9 billion cores in
/// millicores). Bounding every amount keeps sums over thousands of pods far from i64 overflow,
/// where `1e30` would otherwise read as i64::MAX and two of them wrap.
pub const MAX: i64 = 1 << 53;

/// Clamps to `0..=MAX`: a negative request would free room on a node that is full, so it counts as
/// none (the API server refuses negative requests; the scheduler must not trust that).
fn bounded(v: f64) -> i64 {
    if v.is_nan() {
        return 0;
    }
    v.clamp(0.0, MAX as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_kubernetes_quantities() {
        let cases: &[(Value, Option<i64>, Option<i64>)] = &[
            (json!("100m"), Some(100), Some(1)),
            (json!("0.5"), Some(500), Some(1)),
            (json!("2"), Some(2000), Some(2)),
            (json!(1), Some(1000), Some(1)),
            (json!("128Mi"), Some(134_217_728_000), Some(134_217_728)),
            (json!("1G"), Some(1_000_000_000_000), Some(1_000_000_000)),
            (json!("1Gi"), Some(1_073_741_824_000), Some(1_073_741_824)),
            (json!("1e3"), Some(1_000_000), Some(1000)),
            (json!("1.5Ki"), Some(1_536_000), Some(1536)),
            (json!("250u"), Some(1), Some(1)),
            (json!("bogus"), None, None),
            (json!(""), None, None),
            (json!("1Zi"), None, None),
            // Fuzz finding (target `quantity`): bounded, so sums of requests cannot overflow.
            (json!("9e18"), Some(MAX), Some(MAX)),
            (json!("1e400"), Some(MAX), Some(MAX)),
            (json!(1e300), Some(MAX), Some(MAX)),
            (json!("-1"), Some(0), Some(0)),
            (json!("0e400"), Some(0), Some(0)),
        ];
        for (v, m, u) in cases {
            assert_eq!(millis(v), *m, "millis of {v}");
            assert_eq!(units(v), *u, "units of {v}");
        }
    }
}
