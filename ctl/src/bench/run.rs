//! One `berthctl bench` run: pick nodes, find the lab when berthctl runs on its host, build and load
//! the bench image, run the chosen measurements in the `berth-bench` namespace (deleted at the end,
//! also on failure and Ctrl-C), and write the report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::ctx::{BenchCtx, BenchNode, LabHost, IMAGE, NAMESPACE};
use super::report::{Environment, Report};
use super::{image, write, MEASUREMENTS};
use crate::kubeconfig::Session;
use crate::lab::{lab_dir, LabState, LABS_ROOT};
use crate::rest;

/// Flags of `berthctl bench`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the report goes.
    pub out: PathBuf,
    /// Measurements to run (empty: all registered).
    pub only: Vec<String>,
    /// The node single-node measurements use (default: the first Ready node by name).
    pub node: Option<String>,
    /// Samples per subject.
    pub samples: usize,
    /// The lab berthctl runs on (default: the lab whose API URL the kubeconfig uses, if any).
    pub lab: Option<String>,
}

/// Ready nodes with their InternalIPs, `wanted` first, then by name.
pub fn ready_nodes(list: &Value, wanted: Option<&str>) -> Vec<BenchNode> {
    let mut nodes: Vec<BenchNode> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .map(|n| BenchNode {
            name: n["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            ip: n["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["type"] == "InternalIP")
                .and_then(|a| a["address"].as_str())
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    nodes.sort_by(|a, b| {
        (Some(a.name.as_str()) != wanted, &a.name).cmp(&(Some(b.name.as_str()) != wanted, &b.name))
    });
    nodes
}

/// The lab named `name`, or the one on this host whose API URLs include `server`.
fn find_lab(name: Option<&str>, server: &str) -> Result<Option<LabHost>> {
    if let Some(name) = name {
        let state = LabState::load(&lab_dir(name, None))?
            .with_context(|| format!("no lab {name} on this host"))?;
        return Ok(Some(LabHost {
            name: name.into(),
            state,
        }));
    }
    let server = server.trim_end_matches('/');
    for e in std::fs::read_dir(LABS_ROOT).into_iter().flatten().flatten() {
        if let Ok(Some(state)) = LabState::load(&e.path()) {
            if state
                .plan
                .api_urls()
                .iter()
                .any(|u| u.trim_end_matches('/') == server)
            {
                let name = state.plan.name.clone();
                return Ok(Some(LabHost { name, state }));
            }
        }
    }
    Ok(None)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    format!(
        "{cpus} CPUs, {:.1} GiB memory",
        mem as f64 / (1 << 20) as f64
    )
}

/// Loads `tar` onto every node in `nodes`.
pub async fn load_image(ctx: &BenchCtx, tar: &[u8], nodes: &[&BenchNode]) -> Result<()> {
    for n in nodes {
        crate::kubectl::image::post_image(&ctx.client, &n.name, tar.to_vec()).await?;
    }
    Ok(())
}

async fn ensure_namespace(ctx: &BenchCtx) -> Result<()> {
    let path = format!("/api/v1/namespaces/{NAMESPACE}");
    // A namespace left terminating by an earlier run must be gone before it can be made again.
    let start = Instant::now();
    while let Some(ns) = rest::get_opt(&ctx.client, &path).await? {
        if ns["status"]["phase"] != "Terminating" {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("namespace {NAMESPACE} is still terminating from an earlier run");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rest::post(
        &ctx.client,
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": NAMESPACE,
            // Host-to-host and host-network paths need hostNetwork pods, which Pod Security
            // `baseline` (every namespace's default) refuses.
            "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
        }}),
    )
    .await
    .context("failed to create the bench namespace")?;
    Ok(())
}

/// Deletes the bench namespace (its pods with it); bounded wait so the next run finds it gone.
pub async fn cleanup(ctx: &BenchCtx) {
    let path = format!("/api/v1/namespaces/{NAMESPACE}");
    let _ = rest::delete(
        &ctx.client,
        &format!("{path}/pods"),
        &json!({"gracePeriodSeconds": 0}),
    )
    .await;
    let _ = rest::delete(&ctx.client, &path, &json!({})).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        match rest::get_opt(&ctx.client, &path).await {
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => return,
        }
    }
    eprintln!("warning: namespace {NAMESPACE} still terminating after 60s");
}

/// Runs the bench; returns the report (also written to `opts.out`) and prints the Markdown.
///
/// # Errors
/// No Ready node, an unknown `--only` name, no busybox for the image, or the image cannot be loaded.
pub async fn run(session: &Session, opts: &Options) -> Result<Report> {
    for o in &opts.only {
        if !MEASUREMENTS.iter().any(|(id, _)| id == o) {
            let ids: Vec<&str> = MEASUREMENTS.iter().map(|(id, _)| *id).collect();
            bail!(
                "unknown measurement {o:?} (this build has: {})",
                ids.join(", ")
            );
        }
    }
    let client = session.client.clone();
    let list = rest::get(&client, "/api/v1/nodes").await?;
    let mut nodes = ready_nodes(&list, opts.node.as_deref());
    if let Some(n) = &opts.node {
        if nodes.first().map(|b| &b.name) != Some(n) {
            bail!("node {n:?} is not a Ready node of the cluster");
        }
    }
    if nodes.is_empty() {
        bail!("the cluster has no Ready node");
    }
    nodes.truncate(2);
    let lab = find_lab(opts.lab.as_deref(), &session.server)?;
    let info = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["metadata"]["name"] == nodes[0].name.as_str())
        .map(|n| n["status"]["nodeInfo"].clone())
        .unwrap_or_default();
    let server_version = rest::get(&client, "/version")
        .await
        .ok()
        .and_then(|v| v["gitVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let environment = Environment {
        cluster: session.server.clone(),
        nodes: nodes.iter().map(|n| n.name.clone()).collect(),
        kernel: info["kernelVersion"]
            .as_str()
            .unwrap_or("unknown")
            .to_string(),
        build: format!(
            "berthctl {} {profile}, server {server_version}",
            env!("CARGO_PKG_VERSION")
        ),
        machine: if lab.is_some() {
            machine()
        } else {
            String::new()
        },
        started: apimachinery::time::rfc3339(std::time::SystemTime::now()),
    };
    let (inputs, probe_missing) = image::host_inputs()?;
    let built = image::build(IMAGE, &inputs)?;
    let ctx = BenchCtx {
        client,
        server: session.server.clone(),
        namespace: NAMESPACE.into(),
        nodes,
        image: IMAGE.into(),
        probe: match probe_missing {
            None => Ok(super::PROBE_PATH.into()),
            Some(why) => Err(why),
        },
        samples: opts.samples.max(1),
        lab,
    };
    let all: Vec<&BenchNode> = ctx.nodes.iter().collect();
    load_image(&ctx, &built.tar, &all)
        .await
        .context("failed to load the bench image")?;
    let mut report = Report {
        environment,
        comparisons: vec![],
    };
    let measured = async {
        ensure_namespace(&ctx).await?;
        for (id, measure) in MEASUREMENTS {
            if !opts.only.is_empty() && !opts.only.iter().any(|o| o == id) {
                continue;
            }
            eprintln!("bench: {id} ...");
            match measure(&ctx).await {
                Ok(cs) => report.comparisons.extend(cs),
                Err(e) => eprintln!("warning: {id} failed: {e:#}"),
            }
        }
        anyhow::Ok(())
    };
    let outcome = tokio::select! {
        r = measured => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    cleanup(&ctx).await;
    outcome?;
    write::write_all(&opts.out, &report)?;
    print!("{}", write::markdown(&report));
    eprintln!("bench: report written to {}", opts.out.display());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_nodes_first_the_wanted_one() {
        let list = json!({"items": [
            {"metadata": {"name": "a2"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
             "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
            {"metadata": {"name": "a1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "a3"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        ]});
        let names = |v: Vec<BenchNode>| v.into_iter().map(|n| n.name).collect::<Vec<_>>();
        assert_eq!(names(ready_nodes(&list, None)), ["a1", "a2"]);
        let nodes = ready_nodes(&list, Some("a2"));
        assert_eq!(
            nodes[0],
            BenchNode {
                name: "a2".into(),
                ip: "10.0.0.2".into()
            }
        );
    }
}
