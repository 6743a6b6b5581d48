//! Network: RTT, TCP/UDP request/response rates (netperf TCP_RR/UDP_RR style) and bulk TCP
//! throughput, measured by `berth-probe` between bench pods for each path a packet can take:
//!
//! | subject | server | client |
//! |---|---|---|
//! | host to host (reference) | hostNetwork pod, node B | hostNetwork pod, node A |
//! | pod to pod, one node (bridge) | pod, node A | pod, node A |
//! | pod to pod, across nodes (overlay) | pod, node B | pod, node A |
//! | via Service VIP | pod, node B, behind a ClusterIP Service | pod, node A |
//! | host-network pods | pod, node B | hostNetwork pod, node A |
//!
//! "host-network pods" is a hostNetwork client reaching a pod: host to host already covers two
//! hostNetwork pods, so the distinct case left is the host namespace entering the overlay (the path
//! of a node-level agent or a hostNetwork ingress talking to pods). On a lab a node's "host" is its
//! network namespace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::ctx::pod_name;
use super::pods::{self, num, PodOpts};
use super::report::{Comparison, Row, Stats};
use super::{BenchCtx, BenchNode};
use crate::rest;

/// The probe server's port (TCP and UDP).
const PORT: u16 = 5201;
/// Seconds of each client run.
const SECONDS: u64 = 2;
/// How long a server pod may take to print that it listens.
const SERVER_READY: Duration = Duration::from_secs(60);

/// Reference subject.
pub const HOST_TO_HOST: &str = "host to host";
/// Two pods on one node's bridge.
pub const BRIDGE: &str = "pod to pod, one node (bridge)";
/// Two pods on two nodes, through the VXLAN overlay.
pub const OVERLAY: &str = "pod to pod, across nodes (overlay)";
/// A pod through a ClusterIP to a pod on another node.
pub const SERVICE: &str = "via Service VIP";
/// A hostNetwork client to a pod on another node.
pub const HOST_NETWORK: &str = "host-network pods";

/// Client modes, in the order each client script runs them.
const MODES: [&str; 3] = ["tcp-rr", "udp-rr", "tcp-stream"];

/// A server pod: where it runs and in which network namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Server {
    /// Node name.
    pub node: String,
    /// On the node's own network (`hostNetwork: true`).
    pub host_network: bool,
}

/// One measured path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPlan {
    /// Row subject.
    pub subject: &'static str,
    /// The server it talks to.
    pub server: Server,
    /// Reached through a ClusterIP Service over the server, not its address.
    pub via_service: bool,
    /// Client node.
    pub client_node: String,
    /// Client on the node's own network.
    pub client_host_network: bool,
}

/// The paths `nodes` allow, reference first, and the ones they do not with why.
pub fn plan(nodes: &[BenchNode]) -> (Vec<PathPlan>, Vec<String>) {
    let Some(a) = nodes.first() else {
        return (Vec::new(), vec!["no Ready node".into()]);
    };
    let path = |subject, server: &BenchNode, srv_host, via_service, client_host| PathPlan {
        subject,
        server: Server {
            node: server.name.clone(),
            host_network: srv_host,
        },
        via_service,
        client_node: a.name.clone(),
        client_host_network: client_host,
    };
    let bridge = path(BRIDGE, a, false, false, false);
    match nodes.get(1) {
        Some(b) => (
            vec![
                path(HOST_TO_HOST, b, true, false, true),
                bridge,
                path(OVERLAY, b, false, false, false),
                path(SERVICE, b, false, true, false),
                path(HOST_NETWORK, b, false, false, true),
            ],
            Vec::new(),
        ),
        None => (
            vec![bridge],
            [HOST_TO_HOST, OVERLAY, SERVICE, HOST_NETWORK]
                .iter()
                .map(|s| format!("{s}: needs two Ready nodes; the cluster has one"))
                .collect(),
        ),
    }
}

/// What one path's client printed: its results (by mode) or why it failed.
pub type PathResult = (
    &'static str,
    String,
    Result<Vec<Result<Value, String>>, String>,
);

/// RTT statistics over several tcp-rr runs: sample counts add up, the mean is weighted, p50 is
/// the median of the runs' p50s and p99 the worst run's p99 (the runs' raw samples stay in the probe).
fn rtt_stats(runs: &[&Value]) -> Option<Stats> {
    let rtts: Vec<&Value> = runs
        .iter()
        .map(|r| &r["rtt_us"])
        .filter(|v| v.is_object())
        .collect();
    let n: f64 = rtts.iter().map(|r| num(r, "samples")).sum();
    if rtts.is_empty() || n.is_nan() || n <= 0.0 {
        return None;
    }
    let p50s = Stats::of(&rtts.iter().map(|r| num(r, "p50")).collect::<Vec<_>>())?;
    let fold =
        |k: &str, f: fn(f64, f64) -> f64, init: f64| rtts.iter().map(|r| num(r, k)).fold(init, f);
    Some(Stats {
        samples: n as usize,
        mean: rtts
            .iter()
            .map(|r| num(r, "mean") * num(r, "samples"))
            .sum::<f64>()
            / n,
        p50: p50s.p50,
        p99: fold("p99", f64::max, f64::MIN),
        min: fold("min", f64::min, f64::MAX),
        max: fold("max", f64::max, f64::MIN),
    })
}

/// The four network comparisons (`rtt`, `tcp-rr`, `udp-rr`, `tcp-stream`) from each path's output.
pub fn comparisons(results: &[PathResult], skipped: &[String]) -> Vec<Comparison> {
    let specs: [(&str, &str, &str, bool, &str, &str); 4] = [
        (
            "rtt",
            "Network latency: TCP round trip (1-byte request/response)",
            "µs",
            true,
            "tcp-rr",
            "",
        ),
        (
            "tcp-rr",
            "TCP request/response rate (TCP_RR, 1 byte)",
            "transactions/s",
            false,
            "tcp-rr",
            "tps",
        ),
        (
            "udp-rr",
            "UDP request/response rate (UDP_RR, 8 bytes)",
            "transactions/s",
            false,
            "udp-rr",
            "tps",
        ),
        (
            "tcp-stream",
            "Bulk TCP throughput (one stream)",
            "Mbit/s",
            false,
            "tcp-stream",
            "mbit_s",
        ),
    ];
    specs
        .iter()
        .map(|(id, title, unit, lower, mode, field)| {
            let mut c = Comparison {
                id: (*id).into(),
                title: (*title).into(),
                unit: (*unit).into(),
                lower_is_better: *lower,
                rows: Vec::new(),
                skipped: skipped.to_vec(),
            };
            for (subject, note, res) in results {
                let lines = match res {
                    Ok(lines) => lines,
                    Err(e) => {
                        c.skipped.push(format!("{subject}: {e}"));
                        continue;
                    }
                };
                let runs: Vec<&Value> = lines
                    .iter()
                    .flatten()
                    .filter(|v| v["mode"] == *mode)
                    .collect();
                let stats = if *id == "rtt" {
                    rtt_stats(&runs)
                } else {
                    Stats::of(&runs.iter().map(|r| num(r, field)).collect::<Vec<_>>())
                };
                let mut note = note.clone();
                if *mode == "udp-rr" {
                    let lost: f64 = runs
                        .iter()
                        .map(|r| num(r, "lost"))
                        .filter(|x| !x.is_nan())
                        .sum();
                    note.push_str(&format!(", {lost} lost"));
                }
                match stats {
                    Some(stats) => c.rows.push(Row {
                        subject: (*subject).into(),
                        stats,
                        note,
                    }),
                    None => {
                        let err = lines
                            .iter()
                            .find_map(|l| l.as_ref().err())
                            .map(String::as_str);
                        c.skipped.push(format!(
                            "{subject}: no {mode} result ({})",
                            err.unwrap_or("no output")
                        ));
                    }
                }
            }
            c
        })
        .collect()
}

/// The client script: `repeat` rounds of every mode against `target`.
fn client_script(probe: &str, target: &str, repeat: usize) -> String {
    let runs: Vec<Vec<String>> = MODES
        .iter()
        .map(|m| {
            vec![
                (*m).into(),
                target.into(),
                "--seconds".into(),
                SECONDS.to_string(),
            ]
        })
        .collect();
    pods::script(probe, "", &runs, repeat)
}

/// Starts a probe server pod and waits until it listens; returns its pod name and address.
async fn start_server(
    ctx: &BenchCtx,
    probe: &str,
    srv: &Server,
    label: &str,
) -> Result<(String, String)> {
    let name = pod_name("bench-srv", 0);
    let args = [
        probe,
        "serve",
        "--port",
        &PORT.to_string(),
        "--max-seconds",
        "900",
    ];
    let mut spec = pods::pod_with(
        ctx.pod_spec(&name, &srv.node, &args),
        PodOpts {
            host_network: srv.host_network,
            ..PodOpts::default()
        },
    );
    spec["metadata"]["labels"]["bench-server"] = json!(label);
    let pod = ctx.start_pod(&spec, SERVER_READY).await?;
    let start = Instant::now();
    // The probe prints its line once bound, so that line is the readiness check.
    while !ctx
        .logs(&name)
        .await
        .unwrap_or_default()
        .contains("\"listening\":true")
    {
        if start.elapsed() > SERVER_READY {
            ctx.delete_pod(&name).await;
            anyhow::bail!(
                "server {name} on {} did not listen in {}s",
                srv.node,
                SERVER_READY.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pod = ctx
        .wait_pod(&name, SERVER_READY, |p| p["status"]["podIP"].is_string())
        .await
        .unwrap_or(pod);
    let ip = pod["status"]["podIP"].as_str().map(String::from);
    let ip = match (ip, srv.host_network) {
        (Some(ip), _) => ip,
        (None, true) => ctx
            .nodes
            .iter()
            .find(|n| n.name == srv.node)
            .map(|n| n.ip.clone())
            .unwrap_or_default(),
        (None, false) => String::new(),
    };
    if ip.is_empty() {
        ctx.delete_pod(&name).await;
        anyhow::bail!("server {name} has no address");
    }
    Ok((name, ip))
}

/// Creates a ClusterIP Service (TCP and UDP on [`PORT`]) over the pods labelled `label`; returns its
/// name and VIP.
async fn create_service(ctx: &BenchCtx, label: &str) -> Result<(String, String)> {
    let name = pod_name("bench-svc", 0);
    let path = format!(
        "/api/v1/namespaces/{}/services",
        rest::encode(&ctx.namespace)
    );
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ctx.namespace},
        "spec": {"selector": {"bench-server": label}, "ports": [
            {"name": "tcp", "port": PORT, "targetPort": PORT, "protocol": "TCP"},
            {"name": "udp", "port": PORT, "targetPort": PORT, "protocol": "UDP"}]},
    });
    let created = rest::post(&ctx.client, &path, &svc)
        .await
        .context("failed to create the bench service")?;
    let vip = created["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((name, vip))
}

async fn delete_service(ctx: &BenchCtx, name: &str) {
    let path = format!(
        "/api/v1/namespaces/{}/services/{}",
        rest::encode(&ctx.namespace),
        rest::encode(name)
    );
    let _ = rest::delete(
        &ctx.client,
        &path,
        &json!({"kind": "DeleteOptions", "apiVersion": "v1"}),
    )
    .await;
}

/// Runs the network measurement: servers first, then one client pod per path, then cleanup.
///
/// # Errors
/// Never for a failed path (it is listed in `skipped`).
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let (paths, mut skipped) = plan(&ctx.nodes);
    let probe = match &ctx.probe {
        Ok(p) => p.clone(),
        Err(why) => {
            skipped.push(why.clone());
            return Ok(comparisons(&[], &skipped));
        }
    };
    let repeat = ctx.samples.clamp(1, 3);
    let client_timeout =
        Duration::from_secs(90 + repeat as u64 * MODES.len() as u64 * (SECONDS + 25));

    let mut servers: BTreeMap<Server, Result<(String, String), String>> = BTreeMap::new();
    let mut service: Option<Result<(String, String), String>> = None;
    let mut results: Vec<PathResult> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let label = format!("s{}-{}", p.server.node, u8::from(p.server.host_network));
        if !servers.contains_key(&p.server) {
            let started = start_server(ctx, &probe, &p.server, &label)
                .await
                .map_err(|e| format!("{e:#}"));
            servers.insert(p.server.clone(), started);
        }
        let server = servers[&p.server].clone();
        let target = match server {
            Err(e) => Err(e),
            Ok((_, ip)) if !p.via_service => Ok(ip),
            Ok(_) => {
                let svc = service.get_or_insert(
                    create_service(ctx, &label)
                        .await
                        .map_err(|e| format!("{e:#}")),
                );
                svc.clone().map(|(_, vip)| vip)
            }
        };
        let res = match target {
            Err(e) => Err(e),
            Ok(ip) => {
                let script = client_script(&probe, &format!("{ip}:{PORT}"), repeat);
                let spec = pods::pod_with(
                    ctx.pod_spec(
                        &pod_name("bench-cli", i),
                        &p.client_node,
                        &["sh", "-c", &script],
                    ),
                    PodOpts {
                        host_network: p.client_host_network,
                        ..PodOpts::default()
                    },
                );
                ctx.run_pod(&spec, client_timeout)
                    .await
                    .map(|run| pods::probe_lines(&run.logs))
                    .map_err(|e| format!("{e:#}"))
            }
        };
        let note = format!("{} -> {}", p.client_node, p.server.node);
        results.push((p.subject, note, res));
    }

    if let Some(Ok((name, _))) = &service {
        delete_service(ctx, name).await;
    }
    for (name, _) in servers.values().flatten() {
        ctx.delete_pod(name).await;
    }
    Ok(comparisons(&results, &skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> BenchNode {
        BenchNode {
            name: n.into(),
            ip: format!("10.0.0.{}", n.len()),
        }
    }

    #[test]
    fn plan_two_nodes_covers_every_path_reference_first() {
        let (paths, skipped) = plan(&[node("a"), node("bb")]);
        assert!(skipped.is_empty());
        let subjects: Vec<&str> = paths.iter().map(|p| p.subject).collect();
        assert_eq!(
            subjects,
            [HOST_TO_HOST, BRIDGE, OVERLAY, SERVICE, HOST_NETWORK]
        );
        assert!(paths.iter().all(|p| p.client_node == "a"));
        assert!(
            paths[0].server.host_network
                && paths[0].client_host_network
                && paths[0].server.node == "bb"
        );
        assert_eq!(
            paths[1].server,
            Server {
                node: "a".into(),
                host_network: false
            }
        );
        // Overlay, Service and host-network share one server pod on node B.
        assert!(paths[2].server == paths[3].server && paths[3].server == paths[4].server);
        assert!(paths[3].via_service && !paths[2].via_service);
        assert!(paths[4].client_host_network && !paths[4].server.host_network);
    }

    #[test]
    fn plan_one_node_skips_cross_node_paths() {
        let (paths, skipped) = plan(&[node("a")]);
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].subject, BRIDGE);
        assert_eq!(skipped.len(), 4);
        assert!(skipped[0].starts_with(HOST_TO_HOST));
        assert_eq!(plan(&[]).0.len(), 0);
    }

    fn rr(mode: &str, tps: f64, p50: f64, p99: f64) -> Result<Value, String> {
        Ok(
            json!({"mode": mode, "tps": tps, "transactions": 100, "lost": 1,
            "rtt_us": {"samples": 100, "mean": p50, "p50": p50, "p90": p99, "p99": p99, "min": 1.0, "max": p99 + 1.0}}),
        )
    }

    #[test]
    fn comparisons_from_probe_output() {
        let lines = vec![
            rr("tcp-rr", 1000.0, 20.0, 40.0),
            rr("udp-rr", 1200.0, 18.0, 30.0),
            Ok(json!({"mode": "tcp-stream", "mbit_s": 900.0})),
            rr("tcp-rr", 1100.0, 22.0, 60.0),
            Err("connect refused".to_string()),
        ];
        let results: Vec<PathResult> = vec![
            (HOST_TO_HOST, "a -> b".into(), Ok(lines)),
            (
                OVERLAY,
                "a -> b".into(),
                Ok(vec![Err("no udp answer".into())]),
            ),
            (
                SERVICE,
                "a -> b".into(),
                Err("server did not listen".into()),
            ),
        ];
        let cs = comparisons(&results, &["x: needs two".to_string()]);
        let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["rtt", "tcp-rr", "udp-rr", "tcp-stream"]);
        let rtt = &cs[0];
        assert!(rtt.lower_is_better && rtt.unit == "µs");
        let s = &rtt.rows[0].stats;
        assert_eq!((s.samples, s.p99, s.min, s.max), (200, 60.0, 1.0, 61.0));
        assert!((s.mean - 21.0).abs() < 1e-9 && s.p50 >= 20.0 && s.p50 <= 22.0);
        assert_eq!(cs[1].rows[0].stats.samples, 2);
        assert_eq!(cs[2].rows[0].note, "a -> b, 1 lost");
        assert_eq!(cs[3].rows[0].stats.p50, 900.0);
        assert_eq!(
            cs[2].skipped,
            [
                "x: needs two",
                "pod to pod, across nodes (overlay): no udp-rr result (no udp answer)",
                "via Service VIP: server did not listen"
            ]
        );
    }

    #[test]
    fn client_script_runs_every_mode_per_round() {
        let s = client_script("/p", "10.0.0.2:5201", 2);
        assert_eq!(s.matches("/p tcp-rr 10.0.0.2:5201 --seconds 2").count(), 2);
        assert_eq!(s.matches("udp-rr").count(), 2);
        assert_eq!(s.matches("tcp-stream").count(), 2);
    }
}
