//! Summary statistics of latency samples, with the same rank rule as `ctl`'s `report::Stats::of`
//! (nearest rank, rounded) so the probe's p99 and the report's p99 mean the same thing.

use crate::json::Obj;

/// Summary of samples in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub samples: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// The value at quantile `q` (0..=1) of an ascending slice; `None` when it is empty.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = (q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

/// Summary of nanosecond samples, reported in microseconds. Sorts `ns` in place.
pub fn summarize_ns(ns: &mut [u64]) -> Option<Summary> {
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    let us = |v: u64| v as f64 / 1000.0;
    let sum: u128 = ns.iter().map(|&v| u128::from(v)).sum();
    Some(Summary {
        samples: ns.len(),
        mean: sum as f64 / ns.len() as f64 / 1000.0,
        p50: us(quantile(ns, 0.5)?),
        p90: us(quantile(ns, 0.9)?),
        p99: us(quantile(ns, 0.99)?),
        min: us(ns[0]),
        max: us(ns[ns.len() - 1]),
    })
}

impl Summary {
    /// The summary as a JSON object.
    pub fn to_json(self) -> String {
        Obj::new()
            .num("samples", self.samples as f64)
            .num("mean", self.mean)
            .num("p50", self.p50)
            .num("p90", self.p90)
            .num("p99", self.p99)
            .num("min", self.min)
            .num("max", self.max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_rounded_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), Some(501)); // round(0.5 * 999) = 500 -> 501
        assert_eq!(quantile(&v, 0.99), Some(990));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&v, 1.0), Some(1000));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
    }

    #[test]
    fn summary_in_microseconds() {
        let mut ns = vec![3000, 1000, 2000];
        let s = summarize_ns(&mut ns).unwrap();
        assert_eq!((s.samples, s.min, s.p50, s.max), (3, 1.0, 2.0, 3.0));
        assert!((s.mean - 2.0).abs() < 1e-9);
        assert!(s.p50 <= s.p99);
        assert_eq!(summarize_ns(&mut []), None);
        assert_eq!(
            s.to_json(),
            r#"{"samples":3,"mean":2,"p50":2,"p90":3,"p99":3,"min":1,"max":3}"#
        );
    }
}
