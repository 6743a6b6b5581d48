//! The autoscaling scenario of `manifests/hpa.yaml` on a lab, shared by the end-to-end test (which checks
//! what happened) and `hpa-bench` (which reports how long it took): the web Deployment starts at one
//! replica, real CPU load from the manifest's load-generator Job scales it out, the Service spreads
//! requests over the new replicas, and the replicas come back down once the load is gone.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{wait_for, Lab};

const POLL: Duration = Duration::from_millis(200);

/// What one run of the scenario saw.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// From creating the load Job to the first change of the Deployment's `spec.replicas`.
    pub first_scale_out: Duration,
    /// From creating the load Job to the first new replica Ready.
    pub first_new_ready: Duration,
    /// From creating the load Job to every replica of the scaled-out Deployment Ready.
    pub all_ready: Duration,
    /// The most replicas the HPA asked for while the load ran.
    pub peak_replicas: i64,
    /// From deleting the load Job to the Deployment back at `minReplicas`.
    pub scale_in: Duration,
    /// Pods that answered requests through the Service while scaled out.
    pub answered_by: BTreeSet<String>,
    /// `kubectl top pods` while the load ran.
    pub top_pods: String,
    /// `kubectl get hpa` while the load ran.
    pub get_hpa: String,
}

/// The documents of a multi-document YAML file, as JSON.
fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn apply(lab: &Lab, docs: &[Value]) -> Result<String> {
    let file = tempfile::NamedTempFile::new()?;
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs});
    std::fs::write(file.path(), serde_json::to_string(&list)?)?;
    lab.berthctl(&["apply", "-f", file.path().to_str().context("temp path")?])
}

fn replicas(lab: &Lab, deployment: &str) -> Result<i64> {
    lab.get_json(&format!(
        "/apis/apps/v1/namespaces/default/deployments/{deployment}"
    ))?["spec"]["replicas"]
        .as_i64()
        .context("deployment without spec.replicas")
}

fn name_of(doc: &Value) -> Result<String> {
    doc["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .context("object without a name")
}

/// Runs the scenario on `lab` (which has the busybox image loaded). Fails when the cluster does not
/// scale out to at least `min_peak` replicas within `limit`, or does not come back.
pub fn run(lab: &Lab, manifest: &Path, min_peak: i64, limit: Duration) -> Result<Outcome> {
    let docs = documents(manifest)?;
    let (load, app): (Vec<Value>, Vec<Value>) = docs.into_iter().partition(|d| d["kind"] == "Job");
    let job = load.first().context("the manifest has no load Job")?;
    let job_name = name_of(job)?;
    let hpa = app
        .iter()
        .find(|d| d["kind"] == "HorizontalPodAutoscaler")
        .context("the manifest has no HPA")?;
    let hpa_name = name_of(hpa)?;
    let deployment = hpa["spec"]["scaleTargetRef"]["name"]
        .as_str()
        .context("HPA without a target")?
        .to_string();
    let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
    let label = app
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .and_then(|d| d["spec"]["selector"]["matchLabels"]["app"].as_str())
        .context("the Deployment selects no app label")?
        .to_string();

    apply(lab, &app)?;
    wait_for(
        "the web Deployment at minReplicas, Ready",
        Duration::from_secs(120),
        POLL,
        || {
            let pods = lab.live_pods_of(&label)?;
            Ok((pods.len() as i64 == min && pods.iter().all(crate::pod_ready)).then_some(()))
        },
    )?;
    // Metrics flow before the load starts: the HPA has read a utilization.
    wait_for(
        "the HPA to report a current CPU utilization",
        Duration::from_secs(60),
        POLL,
        || {
            let h = lab.get_json(&format!(
                "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/{hpa_name}"
            ))?;
            Ok(h["status"]["currentMetrics"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
                .then_some(()))
        },
    )?;
    let before: BTreeSet<String> = lab
        .live_pods_of(&label)?
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();

    let start = Instant::now();
    apply(lab, &load)?;
    let first_scale_out = wait_for("the first scale-out", limit, POLL, || {
        Ok((replicas(lab, &deployment)? > min).then(|| start.elapsed()))
    })?;
    let first_new_ready = wait_for("the first new replica Ready", limit, POLL, || {
        let pods = lab.live_pods_of(&label)?;
        let new_ready = pods.iter().any(|p| {
            crate::pod_ready(p)
                && p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| !before.contains(n))
        });
        Ok(new_ready.then(|| start.elapsed()))
    })?;
    let (all_ready, peak_replicas) = wait_for(
        &format!("at least {min_peak} replicas, all Ready"),
        limit,
        POLL,
        || {
            let want = replicas(lab, &deployment)?;
            let pods = lab.live_pods_of(&label)?;
            let done =
                want >= min_peak && pods.len() as i64 == want && pods.iter().all(crate::pod_ready);
            Ok(done.then(|| (start.elapsed(), want)))
        },
    )?;
    let top_pods = lab
        .kubectl(&["top", "pods"])
        .unwrap_or_else(|e| format!("{e:#}"));
    let get_hpa = lab
        .kubectl(&["get", "hpa"])
        .unwrap_or_else(|e| format!("{e:#}"));

    // Requests through the Service name from inside a replica reach several replicas.
    let pods = lab.live_pods_of(&label)?;
    let exec_pod = name_of(pods.first().context("no web pod")?)?;
    let mut answered_by = BTreeSet::new();
    for _ in 0..30 {
        if answered_by.len() >= 3 {
            break;
        }
        let url = format!("http://{deployment}.default.svc.cluster.local/");
        if let Ok(out) = lab.kubectl(&["exec", &exec_pod, "--", "wget", "-qO-", &url]) {
            if let Some(who) = out.split_whitespace().last() {
                answered_by.insert(who.to_string());
            }
        } else {
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    let stop = Instant::now();
    lab.berthctl(&["delete", "job", &job_name])?;
    let scale_in = wait_for(
        "the scale-in back to minReplicas after the load",
        limit + Duration::from_secs(60),
        POLL,
        || Ok((replicas(lab, &deployment)? == min).then(|| stop.elapsed())),
    )?;
    wait_for(
        "the scaled-in replicas gone",
        Duration::from_secs(60),
        POLL,
        || Ok((lab.live_pods_of(&label)?.len() as i64 == min).then_some(())),
    )?;
    if peak_replicas < min_peak {
        bail!("peaked at {peak_replicas} replicas, wanted {min_peak}");
    }
    Ok(Outcome {
        first_scale_out,
        first_new_ready,
        all_ready,
        peak_replicas,
        scale_in,
        answered_by,
        top_pods,
        get_hpa,
    })
}

/// Removes what [`run`] applied, so a bench can run the scenario again on the same lab.
pub fn clean(lab: &Lab, manifest: &Path) -> Result<()> {
    for d in documents(manifest)? {
        let kind = d["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
        let name = name_of(&d)?;
        let _ = lab.berthctl(&["delete", &kind, &name]);
    }
    Ok(())
}
