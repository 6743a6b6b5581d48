//! What the probe measurements (disk, cpu, network) share: running `berth-probe` in a pod or on the
//! lab host, and reading its one-JSON-line-per-run output back.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::ctx::pod_name;
use super::BenchCtx;

/// The results a subject's probe runs printed: each log line that is a JSON object, in order. An
/// `{"error": ...}` line becomes an `Err` so the caller can name the failure in `skipped`.
pub fn probe_lines(logs: &str) -> Vec<Result<Value, String>> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .map(|v| match v.get("error").and_then(Value::as_str) {
            Some(e) => Err(e.to_string()),
            None => Ok(v),
        })
        .collect()
}

/// The successful results of `logs`, or the first error (or "no output") when there is none.
pub fn probe_results(logs: &str) -> Result<Vec<Value>, String> {
    let lines = probe_lines(logs);
    let ok: Vec<Value> = lines
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    if !ok.is_empty() {
        return Ok(ok);
    }
    Err(lines
        .into_iter()
        .find_map(Result::err)
        .unwrap_or_else(|| "probe printed no result".into()))
}

/// A `sh -c` script that runs the probe `repeat` times with `args` (each a full argv tail), so one
/// pod yields several samples without paying pod start-up for each.
pub fn script(probe: &str, prelude: &str, runs: &[Vec<String>], repeat: usize) -> String {
    let mut s = String::from(prelude);
    for _ in 0..repeat.max(1) {
        for args in runs {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(probe);
            for a in args {
                s.push(' ');
                s.push_str(a);
            }
        }
    }
    s
}

/// Runs `script` under `sh -c` in a bench pod on `node` (optionally with an emptyDir at `/scratch`
/// or on the host network), waits at most `timeout`, deletes the pod, and returns the probe results.
pub async fn run_in_pod(
    ctx: &BenchCtx,
    prefix: &str,
    node: &str,
    script: &str,
    opts: PodOpts,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let name = pod_name(prefix, 0);
    let spec = pod_with(ctx.pod_spec(&name, node, &["sh", "-c", script]), opts);
    let run = ctx.run_pod(&spec, timeout).await?;
    probe_results(&run.logs).map_err(|e| anyhow::anyhow!("{name} on {node} ({}): {e}", run.phase))
}

/// Pod shape options on top of [`BenchCtx::pod_spec`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodOpts {
    /// `hostNetwork: true`: the pod shares its node's network namespace.
    pub host_network: bool,
    /// An emptyDir volume mounted at `/scratch`.
    pub scratch: bool,
}

/// `pod` with `opts` applied.
pub fn pod_with(mut pod: Value, opts: PodOpts) -> Value {
    if opts.host_network {
        pod["spec"]["hostNetwork"] = Value::Bool(true);
    }
    if opts.scratch {
        pod["spec"]["volumes"] = serde_json::json!([{"name": "scratch", "emptyDir": {}}]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            serde_json::json!([{"name": "scratch", "mountPath": "/scratch"}]);
    }
    pod
}

/// The `berth-probe` beside the running berthctl (both come from the same build), for host runs.
///
/// # Errors
/// When it is not there (the reason goes in `skipped`).
pub fn host_probe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("host: no path to berthctl: {e}"))?;
    let p = exe.with_file_name("berth-probe");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "host: {} missing (cargo build -p probe)",
            p.display()
        ))
    }
}

/// Runs the host probe on the lab host in `node`'s network namespace with `args`, `repeat` times.
///
/// # Errors
/// When not on a lab host, or a run fails.
pub async fn run_on_host(
    ctx: &BenchCtx,
    node: &str,
    args: &[String],
    repeat: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let probe = host_probe().map_err(anyhow::Error::msg)?;
    let probe = probe.to_str().context("probe path is not UTF-8")?;
    let mut out = Vec::new();
    for _ in 0..repeat.max(1) {
        let mut argv = vec![probe];
        argv.extend(args.iter().map(String::as_str));
        // exec fails on a non-zero exit; the probe's error line is on stdout, so try it as a result too.
        let stdout = ctx.exec(node, &argv, timeout).await?;
        match probe_results(&stdout) {
            Ok(v) => out.extend(v),
            Err(e) => bail!("host probe on {node}: {e}"),
        }
    }
    Ok(out)
}

/// The number at `key` of a probe result (`NaN` when absent, which `Stats::of` drops).
pub fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_split_results_from_errors_and_noise() {
        let logs = "starting\n{\"mode\":\"cpu\",\"samples_ms\":[1]}\n{\"error\":\"boom\"}\n[1]\n";
        let lines = probe_lines(logs);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].as_ref().unwrap()["mode"], "cpu");
        assert_eq!(lines[1], Err("boom".to_string()));
        assert_eq!(probe_results(logs).unwrap().len(), 1);
        assert_eq!(probe_results("{\"error\":\"x\"}"), Err("x".to_string()));
        assert_eq!(
            probe_results(""),
            Err("probe printed no result".to_string())
        );
    }

    #[test]
    fn scripts_repeat_runs_after_the_prelude() {
        let runs = vec![vec!["cpu".to_string()], vec!["disk".into(), "/x".into()]];
        assert_eq!(
            script("p", "mkdir -p /x", &runs, 2),
            "mkdir -p /x; p cpu; p disk /x; p cpu; p disk /x"
        );
        assert_eq!(script("p", "", &runs[..1], 0), "p cpu");
    }

    #[test]
    fn pod_options_add_host_network_and_scratch() {
        let pod = serde_json::json!({"spec": {"containers": [{"name": "c"}]}});
        let p = pod_with(
            pod.clone(),
            PodOpts {
                host_network: true,
                scratch: true,
            },
        );
        assert_eq!(p["spec"]["hostNetwork"], true);
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            "/scratch"
        );
        assert_eq!(pod_with(pod.clone(), PodOpts::default()), pod);
    }
}
