//! What every measurement gets: the cluster session, the bench namespace, the chosen nodes, the bench
//! image, and when berthctl runs on a lab host, the lab (so host-side references run in a node's
//! network namespace). The helpers run a pod to completion and run a command on a lab node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kube::Client;
use serde_json::{json, Value};

use crate::lab::LabState;
use crate::rest;

/// The namespace every bench object lives in; created at the start and deleted at the end.
pub const NAMESPACE: &str = "berth-bench";

/// The image berthctl builds and loads itself (busybox-static plus `berth-probe` when built).
pub const IMAGE: &str = "berth/bench:latest";

/// Where `berth-probe` sits inside [`IMAGE`].
pub const PROBE_PATH: &str = "/usr/local/bin/berth-probe";

/// A node the bench runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchNode {
    /// Kubernetes node name.
    pub name: String,
    /// Its `InternalIP` (empty when the node reports none).
    pub ip: String,
}

/// The lab berthctl runs on (the cluster is a lab on this very host), so references can be measured
/// on the host: `crun run`, host disk and CPU, host-to-host network, `/proc` of agents and containers.
#[derive(Debug, Clone)]
pub struct LabHost {
    /// Lab name (`bn`).
    pub name: String,
    /// The lab's `lab.json`, as `lab up` wrote it.
    pub state: LabState,
}

impl LabHost {
    /// The network namespace of `node` (`{lab}-a1`).
    pub fn netns(&self, node: &str) -> Option<String> {
        self.state.plan.node(node).map(|n| n.netns.clone())
    }

    /// The data dir of `node`'s process (an agent's image store and container dirs are beneath it).
    pub fn data_dir(&self, node: &str) -> Option<PathBuf> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.data_dir.clone())
    }

    /// The live PID of `node`'s agent (or server) process.
    pub fn pid(&self, node: &str) -> Option<u32> {
        self.state
            .nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.live_pid())
    }

    /// Every node's network namespace, by node name.
    pub fn netns_by_node(&self) -> BTreeMap<String, String> {
        self.state
            .plan
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.netns.clone()))
            .collect()
    }
}

/// Everything a measurement needs. Built once by `bench::run`; measurements only read it.
#[derive(Clone)]
pub struct BenchCtx {
    /// The API client (kubeconfig, like every berthctl verb).
    pub client: Client,
    /// The API server URL.
    pub server: String,
    /// The namespace to create pods in ([`NAMESPACE`]).
    pub namespace: String,
    /// Ready nodes chosen for the run: the first is where single-node measurements run; a second,
    /// distinct one is present when the cluster has it (cross-node measurements skip otherwise).
    pub nodes: Vec<BenchNode>,
    /// The bench image reference ([`IMAGE`]), loaded onto every chosen node.
    pub image: String,
    /// Path of `berth-probe` inside the image, or why it is missing (probe measurements skip with it).
    pub probe: std::result::Result<String, String>,
    /// Samples per subject (`--samples`).
    pub samples: usize,
    /// The lab, when berthctl runs on the lab's host.
    pub lab: Option<LabHost>,
}

/// How a pod run by [`BenchCtx::run_pod`] ended.
#[derive(Debug, Clone)]
pub struct PodRun {
    /// Pod name.
    pub name: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The container's output.
    pub logs: String,
    /// Wall time from the create request to the end phase.
    pub elapsed: Duration,
}

impl BenchCtx {
    /// The node single-node measurements use.
    pub fn node(&self) -> &BenchNode {
        &self.nodes[0]
    }

    /// Two distinct nodes, or why not (the reason goes in `Comparison::skipped`).
    pub fn two_nodes(&self) -> std::result::Result<(&BenchNode, &BenchNode), String> {
        match self.nodes.as_slice() {
            [a, b, ..] => Ok((a, b)),
            _ => Err("needs two Ready nodes; the cluster has one".into()),
        }
    }

    /// A one-container pod of the bench image pinned to `node`: `restartPolicy: Never`, the image
    /// never pulled (it was loaded), running `args` (argv, no shell). Add to the JSON as needed.
    pub fn pod_spec(&self, name: &str, node: &str, args: &[&str]) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {"app": "berth-bench"}},
            "spec": {
                "nodeName": node,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "c",
                    "image": self.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": args,
                }],
            },
        })
    }

    /// `/api/v1/namespaces/{ns}/pods[/{name}]`.
    pub fn pod_path(&self, name: Option<&str>) -> String {
        let base = format!("/api/v1/namespaces/{}/pods", rest::encode(&self.namespace));
        match name {
            Some(n) => format!("{base}/{}", rest::encode(n)),
            None => base,
        }
    }

    /// Creates `pod`; returns the created object.
    ///
    /// # Errors
    /// When the API server refuses it.
    pub async fn create_pod(&self, pod: &Value) -> Result<Value> {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        rest::post(&self.client, &self.pod_path(None), pod)
            .await
            .with_context(|| format!("failed to create pod {name}"))
    }

    /// Polls `name` until `done(pod)` holds, at most `timeout`. Returns the pod.
    ///
    /// # Errors
    /// On timeout (with the last phase) or when the pod disappears.
    pub async fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let pod = rest::get(&self.client, &self.pod_path(Some(name))).await?;
            if done(&pod) {
                return Ok(pod);
            }
            if start.elapsed() > timeout {
                bail!(
                    "pod {name} still {} after {}s",
                    pod["status"]["phase"].as_str().unwrap_or("Pending"),
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates `pod`, waits (at most `timeout`) until it is `Running`; returns the pod.
    ///
    /// # Errors
    /// When it cannot be created, ends, or is not running in time.
    pub async fn start_pod(&self, pod: &Value, timeout: Duration) -> Result<Value> {
        self.create_pod(pod).await?;
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let p = self
            .wait_pod(name, timeout, |p| {
                matches!(
                    p["status"]["phase"].as_str(),
                    Some("Running" | "Succeeded" | "Failed")
                )
            })
            .await?;
        if p["status"]["phase"] != "Running" {
            bail!("pod {name} ended before it was seen running");
        }
        Ok(p)
    }

    /// Creates `pod`, waits (at most `timeout`) for it to end, reads its logs and deletes it.
    ///
    /// # Errors
    /// When it cannot be created or does not end in time (it is deleted either way).
    pub async fn run_pod(&self, pod: &Value, timeout: Duration) -> Result<PodRun> {
        let name = pod["metadata"]["name"]
            .as_str()
            .context("pod without a name")?
            .to_string();
        let start = Instant::now();
        let res = async {
            self.create_pod(pod).await?;
            let p = self
                .wait_pod(&name, timeout, |p| {
                    matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                })
                .await?;
            let elapsed = start.elapsed();
            let logs = self.logs(&name).await.unwrap_or_default();
            Ok(PodRun {
                name: name.clone(),
                phase: p["status"]["phase"].as_str().unwrap_or("").to_string(),
                logs,
                elapsed,
            })
        }
        .await;
        self.delete_pod(&name).await;
        res
    }

    /// The logs of `name`'s container.
    ///
    /// # Errors
    /// When the API server or the agent cannot serve them.
    pub async fn logs(&self, name: &str) -> Result<String> {
        rest::get_text(&self.client, &format!("{}/log", self.pod_path(Some(name)))).await
    }

    /// Deletes `name` at once (grace 0); errors are ignored (it may be gone).
    pub async fn delete_pod(&self, name: &str) {
        let _ = rest::delete(
            &self.client,
            &self.pod_path(Some(name)),
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}),
        )
        .await;
    }

    /// Runs `argv` on the lab host inside `node`'s network namespace (`nsenter --net`, the host's
    /// mounts and cgroups, as the agent itself runs), at most `timeout`; returns stdout.
    ///
    /// # Errors
    /// When not on a lab host, the node is not in the lab, or the command fails or times out.
    pub async fn exec(&self, node: &str, argv: &[&str], timeout: Duration) -> Result<String> {
        let lab = self.lab.as_ref().context("not a lab host")?;
        let netns = lab
            .netns(node)
            .with_context(|| format!("lab {} has no node {node}", lab.name))?;
        let mut cmd = tokio::process::Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{netns}"))
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| anyhow::anyhow!("`{}` timed out on {node}", argv.join(" ")))?
            .with_context(|| format!("failed to run {} on {node}", argv[0]))?;
        if !out.status.success() {
            bail!(
                "`{}` failed on {node}: {}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A pod name unique within a run: `{prefix}-{n}-{random}` (a rerun after a crash cannot collide).
pub fn pod_name(prefix: &str, n: usize) -> String {
    // No rand dependency for six hex digits: the clock's nanoseconds and the PID differ per run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{n}-{:06x}",
        (nanos ^ std::process::id()) & 0xff_ffff
    )
}
