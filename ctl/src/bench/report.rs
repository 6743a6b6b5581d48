//! What `berthctl bench` measures, as data: each measurement is a [`Comparison`] of subjects side by
//! side (a berth pod against `crun run`, overlayfs against a volume against the host, ...), and the
//! [`Report`] of a run names the cluster, node, kernel and build so results from different machines
//! are never mixed up. Writers (Markdown, JSON, SVG) read only these types.

use serde::{Deserialize, Serialize};

/// Summary statistics of one subject's samples, in the comparison's unit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub samples: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile (the maximum below 100 samples).
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Stats {
    /// Statistics of `samples` (NaNs dropped); `None` when nothing is left.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        Some(Stats {
            samples: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: rank(0.5),
            p99: rank(0.99),
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// One subject of a comparison: what was measured and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What ran (`berth pod, warm image`, `crun run`, `pod to pod across nodes (VXLAN)`).
    pub subject: String,
    /// The numbers.
    pub stats: Stats,
    /// Anything a reader needs to trust the row (node names, image, sizes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// One measured metric with its subjects side by side. The first row is the reference the others
/// are compared to (ratios in the Markdown table are against it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Stable identifier (`startup`, `image-size`, `memory`, `disk-seq-read`, `cpu`, `rtt`, `tcp-rr`, ...).
    pub id: String,
    /// Title for people (`Instance start-up time`).
    pub title: String,
    /// Unit of every number (`ms`, `MiB`, `MiB/s`, `µs`, `transactions/s`, `Mbit/s`, `s`).
    pub unit: String,
    /// Whether a smaller number is better (times, sizes) or a larger one (throughput).
    pub lower_is_better: bool,
    /// The subjects, reference first.
    pub rows: Vec<Row>,
    /// Subjects that could not be measured here, with why (`crun run: not a lab host`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// Where and when a run happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// The API server URL the run used.
    pub cluster: String,
    /// Nodes the measurements ran on.
    pub nodes: Vec<String>,
    /// Kernel release of the node(s), as `uname -r` prints it.
    pub kernel: String,
    /// berth's version and build profile (`0.1.0 debug`), and the server's reported version.
    pub build: String,
    /// CPUs and memory of the machine berthctl ran on, when it is a lab host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine: String,
    /// RFC 3339 time the run started.
    pub started: String,
}

/// A whole `berthctl bench` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Where it ran.
    pub environment: Environment,
    /// Every measurement, in the order they ran.
    pub comparisons: Vec<Comparison>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_samples() {
        let s = Stats::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.samples, s.min, s.p50, s.max), (3, 1.0, 2.0, 3.0));
        assert!((s.mean - 2.0).abs() < 1e-9);
        assert_eq!(Stats::of(&[]), None);
        let many: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(Stats::of(&many).unwrap().p99, 990.0);
    }
}
