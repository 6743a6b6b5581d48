//! CPU: the probe's fixed SHA-256 kernel timed on the lab host (reference) and in a container on the
//! same node, so the difference is what the container (cgroup, seccomp, namespaces) costs.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::pods::{self, PodOpts};
use super::report::{Comparison, Row, Stats};
use super::BenchCtx;

/// Kernel passes per sample: about half a second in a debug build of the probe, enough to dwarf
/// process start-up and timer resolution.
const ITERATIONS: u64 = 50;

/// The probe arguments for `samples` samples.
fn args(samples: usize) -> Vec<String> {
    vec![
        "cpu".into(),
        "--iterations".into(),
        ITERATIONS.to_string(),
        "--samples".into(),
        samples.to_string(),
    ]
}

/// Every `samples_ms` value of the results, and the kernel's digest (host and container must agree,
/// else they did not run the same work).
fn samples_of(results: &[Value]) -> (Vec<f64>, Option<String>) {
    let ms = results
        .iter()
        .flat_map(|r| r["samples_ms"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect();
    let digest = results
        .iter()
        .find_map(|r| r["digest"].as_str().map(String::from));
    (ms, digest)
}

/// The `cpu` comparison from the host's and the container's results (either may have failed).
pub fn comparison(
    host: Result<Vec<Value>, String>,
    container: Result<Vec<Value>, String>,
    node: &str,
) -> Comparison {
    let mut c = Comparison {
        id: "cpu".into(),
        title: format!("CPU: fixed compute kernel run time (SHA-256, {ITERATIONS} x 64 KiB)"),
        unit: "ms".into(),
        lower_is_better: true,
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    let mut digests = Vec::new();
    for (subject, res) in [("host", host), ("container", container)] {
        match res {
            Ok(results) => {
                let (ms, digest) = samples_of(&results);
                digests.extend(digest);
                match Stats::of(&ms) {
                    Some(stats) => c.rows.push(Row {
                        subject: subject.into(),
                        stats,
                        note: format!("node {node}"),
                    }),
                    None => c
                        .skipped
                        .push(format!("{subject}: probe printed no samples")),
                }
            }
            Err(e) => c.skipped.push(format!("{subject}: {e}")),
        }
    }
    digests.dedup();
    if digests.len() > 1 {
        c.skipped.push(format!(
            "kernel digests differ ({}): not the same work",
            digests.join(" vs ")
        ));
    }
    c
}

/// Runs the CPU measurement.
///
/// # Errors
/// Never for a failed subject (it is listed in `skipped`); only when the probe is missing entirely.
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let node = ctx.node().name.clone();
    let samples = ctx.samples.clamp(3, 50);
    let args = args(samples);
    let timeout = Duration::from_secs(120 + 5 * samples as u64);
    let host = if ctx.lab.is_some() {
        pods::run_on_host(ctx, &node, &args, 1, timeout)
            .await
            .map_err(|e| format!("{e:#}"))
    } else {
        Err("not a lab host (the host's CPU is measured only where berthctl runs)".to_string())
    };
    let container = match &ctx.probe {
        Ok(probe) => {
            let script = pods::script(probe, "", std::slice::from_ref(&args), 1);
            pods::run_in_pod(
                ctx,
                "bench-cpu",
                &node,
                &script,
                PodOpts::default(),
                timeout,
            )
            .await
            .map_err(|e| format!("{e:#}"))
        }
        Err(why) => Err(why.clone()),
    };
    Ok(vec![comparison(host, container, &node)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ms: &[f64], digest: &str) -> Value {
        serde_json::json!({"mode": "cpu", "iterations": 50, "samples_ms": ms, "digest": digest})
    }

    #[test]
    fn host_is_the_reference_row() {
        let c = comparison(
            Ok(vec![result(&[10.0, 12.0, 11.0], "ab")]),
            Ok(vec![result(&[13.0], "ab")]),
            "n1",
        );
        assert_eq!(c.id, "cpu");
        assert!(c.lower_is_better);
        assert_eq!(c.rows.len(), 2);
        assert_eq!(
            (
                c.rows[0].subject.as_str(),
                c.rows[0].stats.samples,
                c.rows[0].stats.p50
            ),
            ("host", 3, 11.0)
        );
        assert_eq!(c.rows[1].subject, "container");
        assert!(c.skipped.is_empty());
    }

    #[test]
    fn failures_and_mismatched_work_are_reported() {
        let c = comparison(
            Err("not a lab host".into()),
            Ok(vec![result(&[], "ab")]),
            "n1",
        );
        assert!(c.rows.is_empty());
        assert_eq!(
            c.skipped,
            vec![
                "host: not a lab host",
                "container: probe printed no samples"
            ]
        );
        let c = comparison(
            Ok(vec![result(&[1.0], "ab")]),
            Ok(vec![result(&[1.0], "cd")]),
            "n1",
        );
        assert!(c.skipped[0].contains("digests differ"), "{:?}", c.skipped);
    }

    #[test]
    fn args_name_the_kernel_size() {
        assert_eq!(args(3).join(" "), "cpu --iterations 50 --samples 3");
    }
}
