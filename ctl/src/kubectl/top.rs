//! `top nodes|pods`: resource usage from `metrics.k8s.io/v1beta1` (as metrics-server serves it), printed in
//! kubectl top's columns and units. Formatting is pure ([`node_lines`], [`pod_lines`]); [`top_nodes`] and
//! [`top_pods`] fetch.

use std::cmp::Reverse;
use std::str::FromStr;

use anyhow::{bail, Result};
use apimachinery::quantity;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::rest;
use crate::table::tabwrite;

/// The metrics group's discovery document; 404 means no metrics server behind the API.
const METRICS_ROOT: &str = "/apis/metrics.k8s.io/v1beta1";

/// `--sort-by`: both sort biggest first, as kubectl does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// `cpu`.
    Cpu,
    /// `memory`.
    Memory,
}

impl FromStr for SortBy {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(SortBy::Cpu),
            "memory" => Ok(SortBy::Memory),
            _ => bail!("--sort-by accepts only cpu or memory"),
        }
    }
}

/// What `top pods` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PodOptions {
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `--containers`: one line per container.
    pub containers: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--sort-by`.
    pub sort_by: Option<SortBy>,
}

/// Usage in the units kubectl prints: millicores and bytes, both rounded up as `MilliValue`/`Value` do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

impl Usage {
    fn key(self, by: SortBy) -> i64 {
        match by {
            SortBy::Cpu => self.cpu_millis,
            SortBy::Memory => self.memory_bytes,
        }
    }
}

/// Sums `usage` maps in base units first and rounds once, as kubectl adds `Quantity`s before printing, so two
/// containers at 0.5m make 1m, not 2m.
fn sum_usage<'a>(maps: impl IntoIterator<Item = &'a Value>) -> Usage {
    let (mut cores, mut bytes) = (0.0, 0.0);
    for m in maps {
        cores += m["cpu"].as_str().and_then(quantity::parse).unwrap_or(0.0);
        bytes += m["memory"]
            .as_str()
            .and_then(quantity::parse)
            .unwrap_or(0.0);
    }
    Usage {
        cpu_millis: quantity::millis(&Value::from(cores)).unwrap_or(0),
        memory_bytes: quantity::units(&Value::from(bytes)).unwrap_or(0),
    }
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn cpu_text(m: i64) -> String {
    format!("{m}m")
}

fn memory_text(bytes: i64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// kubectl's printer: every cell ends in a tab, so the last column is padded too (trailing spaces included).
fn render(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for r in rows {
        for c in r {
            text.push_str(c);
            text.push('\t');
        }
        text.push('\n');
    }
    tabwrite(&text, 6, 3)
}

/// The `top nodes` table from a `NodeMetricsList` and the `NodeList` (for `status.allocatable`). Nodes without
/// metrics follow with `<unknown>`, as kubectl prints them.
pub fn node_lines(
    metrics: &Value,
    nodes: &Value,
    no_headers: bool,
    sort_by: Option<SortBy>,
) -> String {
    let mut rows = Vec::new();
    if !no_headers {
        rows.push(
            ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
                .map(String::from)
                .to_vec(),
        );
    }
    let mut measured: Vec<(&str, Usage)> = items(metrics)
        .iter()
        .map(|m| (name(m), sum_usage([&m["usage"]])))
        .collect();
    if let Some(by) = sort_by {
        measured.sort_by_key(|(n, u)| (Reverse(u.key(by)), n.to_string()));
    }
    let allocatable = |n: &str| {
        items(nodes)
            .iter()
            .find(|o| name(o) == n)
            .map(|o| &o["status"]["allocatable"])
    };
    let percent = |used: i64, total: Option<i64>| match total.filter(|t| *t > 0) {
        // Truncated, as kubectl's int64(float64(used) / float64(total) * 100).
        Some(t) => format!("{}%", (used as f64 / t as f64 * 100.0) as i64),
        None => "<unknown>".into(),
    };
    for (n, u) in &measured {
        let alloc = allocatable(n);
        rows.push(vec![
            n.to_string(),
            cpu_text(u.cpu_millis),
            percent(
                u.cpu_millis,
                alloc.and_then(|a| quantity::millis(&a["cpu"])),
            ),
            memory_text(u.memory_bytes),
            percent(
                u.memory_bytes,
                alloc.and_then(|a| quantity::units(&a["memory"])),
            ),
        ]);
    }
    for node in items(nodes) {
        if !measured.iter().any(|(n, _)| *n == name(node)) {
            let mut row = vec![name(node).to_string()];
            row.extend(std::iter::repeat_n("<unknown>".to_string(), 4));
            rows.push(row);
        }
    }
    render(&rows)
}

/// The `top pods` table from a `PodMetricsList`.
pub fn pod_lines(metrics: &Value, o: PodOptions) -> String {
    let mut rows = Vec::new();
    if !o.no_headers {
        let mut h = Vec::new();
        if o.all_namespaces {
            h.push("NAMESPACE");
        }
        if o.containers {
            h.push("POD");
        }
        h.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
        rows.push(h.into_iter().map(String::from).collect());
    }
    let mut pods: Vec<(&Value, Usage)> = items(metrics)
        .iter()
        .map(|p| {
            let containers = p["containers"].as_array().into_iter().flatten();
            (p, sum_usage(containers.map(|c| &c["usage"])))
        })
        .collect();
    if let Some(by) = o.sort_by {
        pods.sort_by_key(|(p, u)| (Reverse(u.key(by)), name(p).to_string()));
    }
    for (p, total) in pods {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
        let prefix = |row: &mut Vec<String>| {
            if o.all_namespaces {
                row.push(ns.to_string());
            }
        };
        if o.containers {
            for c in p["containers"].as_array().into_iter().flatten() {
                let u = sum_usage([&c["usage"]]);
                let mut row = Vec::new();
                prefix(&mut row);
                row.push(name(p).to_string());
                row.push(c["name"].as_str().unwrap_or_default().to_string());
                row.push(cpu_text(u.cpu_millis));
                row.push(memory_text(u.memory_bytes));
                rows.push(row);
            }
        } else {
            let mut row = Vec::new();
            prefix(&mut row);
            row.push(name(p).to_string());
            row.push(cpu_text(total.cpu_millis));
            row.push(memory_text(total.memory_bytes));
            rows.push(row);
        }
    }
    render(&rows)
}

/// `top nodes [NAME] [-l SELECTOR]`.
#[derive(Debug, Clone, Default)]
pub struct NodeRequest {
    /// One node, or all.
    pub name: Option<String>,
    /// `-l`.
    pub selector: Option<String>,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--sort-by`.
    pub sort_by: Option<SortBy>,
}

/// `top pods [NAME] [-l SELECTOR]`.
#[derive(Debug, Clone, Default)]
pub struct PodRequest {
    /// One pod, or all.
    pub name: Option<String>,
    /// `-l`.
    pub selector: Option<String>,
    /// Columns and order.
    pub options: PodOptions,
}

async fn require_metrics_api(session: &Session) -> Result<()> {
    if rest::get_opt(&session.client, METRICS_ROOT)
        .await?
        .is_none()
    {
        bail!("Metrics API not available");
    }
    Ok(())
}

/// A list, or one object wrapped as a list, so both print alike.
async fn list_or_one(
    session: &Session,
    collection: &str,
    name: Option<&str>,
    selector: Option<&str>,
) -> Result<Value> {
    match name {
        Some(n) => {
            let one = rest::get(&session.client, &format!("{collection}/{n}")).await?;
            Ok(serde_json::json!({ "items": [one] }))
        }
        None => {
            let q: Vec<(&str, String)> = selector
                .map(|s| ("labelSelector", s.to_string()))
                .into_iter()
                .collect();
            rest::get(&session.client, &rest::with_query(collection, &q)).await
        }
    }
}

/// Fetches node metrics and the nodes' allocatable resources, and renders the table.
///
/// # Errors
/// `Metrics API not available` when the server does not serve `metrics.k8s.io`, `metrics not available yet`
/// when it has no samples, or the server's error.
pub async fn top_nodes(session: &Session, r: &NodeRequest) -> Result<String> {
    require_metrics_api(session).await?;
    let (name, sel) = (r.name.as_deref(), r.selector.as_deref());
    let metrics = list_or_one(session, &format!("{METRICS_ROOT}/nodes"), name, sel).await?;
    if items(&metrics).is_empty() {
        bail!("metrics not available yet");
    }
    let nodes = list_or_one(session, "/api/v1/nodes", name, sel).await?;
    Ok(node_lines(&metrics, &nodes, r.no_headers, r.sort_by))
}

/// Fetches pod metrics in `session.namespace` (or all namespaces) and renders the table; `Ok(None)` when there
/// are no pods at all (the caller prints kubectl's `No resources found ...` on stderr).
///
/// # Errors
/// As [`top_nodes`]; `metrics not available yet` when pods exist but have no samples yet.
pub async fn top_pods(session: &Session, r: &PodRequest) -> Result<Option<String>> {
    require_metrics_api(session).await?;
    let ns = (!r.options.all_namespaces).then_some(session.namespace.as_str());
    let scoped = |base: &str, plural: &str| match ns {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
        None => format!("{base}/{plural}"),
    };
    let (name, sel) = (r.name.as_deref(), r.selector.as_deref());
    let metrics = list_or_one(session, &scoped(METRICS_ROOT, "pods"), name, sel).await?;
    if items(&metrics).is_empty() {
        // New pods have no sample for a scrape interval: say so rather than claim there are none.
        let pods = list_or_one(session, &scoped("/api/v1", "pods"), None, sel).await?;
        if !items(&pods).is_empty() {
            bail!("metrics not available yet");
        }
        return Ok(None);
    }
    Ok(Some(pod_lines(&metrics, r.options)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node_metrics() -> Value {
        json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": [
            {"metadata": {"name": "a1"}, "timestamp": "2024-01-01T00:00:00Z", "window": "10s",
             "usage": {"cpu": "123456789n", "memory": "1048576Ki"}},
            {"metadata": {"name": "a2"}, "timestamp": "2024-01-01T00:00:00Z", "window": "10s",
             "usage": {"cpu": "1500000000n", "memory": "524288Ki"}},
        ]})
    }

    fn nodes() -> Value {
        json!({"items": [
            {"metadata": {"name": "a1"}, "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}},
            {"metadata": {"name": "a2"}, "status": {"allocatable": {"cpu": "4", "memory": "2097152Ki"}}},
            {"metadata": {"name": "a3"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi"}}},
        ]})
    }

    #[test]
    fn nodes_print_millicores_mebibytes_and_percent_of_allocatable() {
        let out = node_lines(&node_metrics(), &nodes(), false, None);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   ",
                "a1     124m         6%          1024Mi          25%         ",
                "a2     1500m        37%         512Mi           25%         ",
                "a3     <unknown>    <unknown>   <unknown>       <unknown>   ",
            ]
        );
    }

    #[test]
    fn nodes_sort_biggest_first_and_drop_headers() {
        let out = node_lines(&node_metrics(), &nodes(), true, Some(SortBy::Cpu));
        let first: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(first, ["a2", "a1", "a3"]);
        let out = node_lines(&node_metrics(), &nodes(), true, Some(SortBy::Memory));
        assert!(out.starts_with("a1 "), "{out}");
        assert_eq!(
            "disk".parse::<SortBy>().unwrap_err().to_string(),
            "--sort-by accepts only cpu or memory"
        );
    }

    fn pod_metrics() -> Value {
        json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "items": [
            {"metadata": {"name": "web-1", "namespace": "default"}, "timestamp": "2024-01-01T00:00:00Z",
             "window": "10s", "containers": [
                {"name": "web", "usage": {"cpu": "500000n", "memory": "2048Ki"}},
                {"name": "side", "usage": {"cpu": "500000n", "memory": "1024Ki"}}]},
            {"metadata": {"name": "db-0", "namespace": "data"}, "timestamp": "2024-01-01T00:00:00Z",
             "window": "10s", "containers": [
                {"name": "db", "usage": {"cpu": "250m", "memory": "64Mi"}}]},
        ]})
    }

    #[test]
    fn pods_sum_containers_before_rounding() {
        let out = pod_lines(&pod_metrics(), PodOptions::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME    CPU(cores)   MEMORY(bytes)   ",
                "web-1   1m           3Mi             ",
                "db-0    250m         64Mi            ",
            ]
        );
    }

    #[test]
    fn pods_all_namespaces_containers_and_sort() {
        let o = PodOptions {
            all_namespaces: true,
            containers: true,
            no_headers: false,
            sort_by: Some(SortBy::Cpu),
        };
        let out = pod_lines(&pod_metrics(), o);
        let cells: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            cells,
            [
                vec!["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
                vec!["data", "db-0", "db", "250m", "64Mi"],
                vec!["default", "web-1", "web", "1m", "2Mi"],
                vec!["default", "web-1", "side", "1m", "1Mi"],
            ]
        );
        let o = PodOptions {
            no_headers: true,
            all_namespaces: true,
            ..PodOptions::default()
        };
        let first = pod_lines(&pod_metrics(), o);
        assert!(first.starts_with("default "), "{first}");
    }
}
