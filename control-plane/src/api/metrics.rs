//! `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics, shaped exactly as metrics-server serves them
//! (`kubectl top` parses them), from the server's [`MetricsSource`]. Like metrics-server, the
//! objects listed are the Nodes and Pods in the store (their labels answer `labelSelector`); usage
//! the agents did not report leaves an object out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::Response;
use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use super::route::{MetricsTarget, Query, METRICS_GROUP_VERSION};
use super::state::ApiState;
use super::status::{json_response, ApiError, Result};
use super::watch::Selectors;
use super::{discovery, table};
use crate::metrics::{MetricsError, NodeUsage, PodUsage};
use crate::store::{self, Consistency};

/// Serves one `metrics.k8s.io/v1beta1` request: GET (and HEAD) only.
///
/// # Errors
/// 405 for other methods; 400 for a bad selector; 404 `podmetrics.metrics.k8s.io "x" not found`
/// (or `nodemetrics`) for an object without usage; 503 when usage cannot be read at all.
pub async fn serve(
    state: &Arc<ApiState>,
    target: MetricsTarget,
    req: Request<Body>,
) -> Result<Response> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{} is not supported on {METRICS_GROUP_VERSION}: its resources are read-only",
                req.method()
            ),
        ));
    }
    let query = Query::parse(req.uri().query());
    let selectors = Selectors::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
    let wants_table = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    drop(req);
    let now = SystemTime::now();
    let body = match target {
        MetricsTarget::Discovery => discovery::metrics_resource_list(),
        MetricsTarget::Nodes { name } => {
            let nodes = objects(state, "nodes", None, name.as_deref(), &selectors).await?;
            let usage: HashMap<String, NodeUsage> = state
                .metrics
                .nodes()
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|u| (u.name.clone(), u))
                .collect();
            let items: Vec<Value> = nodes
                .iter()
                .filter_map(|n| Some(node_metrics(usage.get(name_of(n))?, n, now)))
                .collect();
            one_or_list(items, name, "nodemetrics", "NodeMetricsList")?
        }
        MetricsTarget::Pods { namespace, name } => {
            let ns = namespace.as_deref();
            let pods = objects(state, "pods", ns, name.as_deref(), &selectors).await?;
            let usage: HashMap<(String, String), PodUsage> = state
                .metrics
                .pods(ns)
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|u| ((u.namespace.clone(), u.name.clone()), u))
                .collect();
            let items: Vec<Value> = pods
                .iter()
                .filter_map(|p| {
                    let key = (
                        str_at(p, "/metadata/namespace").to_string(),
                        name_of(p).to_string(),
                    );
                    Some(pod_metrics(usage.get(&key)?, p, now))
                })
                .collect();
            one_or_list(items, name, "podmetrics", "PodMetricsList")?
        }
    };
    if wants_table && body.get("items").is_some() {
        let include = table::IncludeObject::from_query(query.get("includeObject"));
        return Ok(json_response(
            StatusCode::OK,
            &metrics_table(&body, include),
        ));
    }
    Ok(json_response(StatusCode::OK, &body))
}

fn unavailable(e: MetricsError) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!("unable to fetch metrics: {e}"),
    )
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

/// The Nodes or Pods (`resource`) the request covers, from this member's store.
async fn objects(
    state: &ApiState,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    selectors: &Selectors,
) -> Result<Vec<Value>> {
    let found = match name {
        Some(name) => state
            .store
            .get(
                &store::key("", resource, namespace.unwrap_or(""), name),
                Consistency::Local,
            )
            .await
            .map_err(ApiError::from_store)?
            .into_iter()
            .collect(),
        None => {
            state
                .store
                .list(&store::prefix("", resource, namespace), Consistency::Local)
                .await
                .map_err(ApiError::from_store)?
                .0
        }
    };
    Ok(found
        .into_iter()
        .map(|o| o.value)
        .filter(|v| selectors.matches(v))
        .collect())
}

/// The object a name asks for (404 in metrics-server's words without it), or the list.
fn one_or_list(
    mut items: Vec<Value>,
    name: Option<String>,
    resource: &str,
    list_kind: &str,
) -> Result<Value> {
    match name {
        Some(name) if items.is_empty() => Err(ApiError {
            details: Some(json!({"name": name, "group": "metrics.k8s.io", "kind": resource})),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{resource}.metrics.k8s.io \"{name}\" not found"),
            )
        }),
        Some(_) => Ok(items.swap_remove(0)),
        None => Ok(
            json!({"kind": list_kind, "apiVersion": METRICS_GROUP_VERSION,
            "metadata": {}, "items": items}),
        ),
    }
}

/// metrics-server's metadata: the object's name, namespace and labels, created now.
fn metadata(obj: &Value, now: SystemTime) -> Value {
    let mut meta = json!({"name": name_of(obj),
        "creationTimestamp": apimachinery::time::rfc3339(now)});
    let ns = str_at(obj, "/metadata/namespace");
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    if let Some(labels) = obj.pointer("/metadata/labels").filter(|l| l.is_object()) {
        meta["labels"] = labels.clone();
    }
    meta
}

fn usage(cpu_nanocores: u64, memory_bytes: u64) -> Value {
    json!({"cpu": cpu_quantity(cpu_nanocores), "memory": memory_quantity(memory_bytes)})
}

/// A NodeMetrics object of `node` (the Node object).
pub fn node_metrics(u: &NodeUsage, node: &Value, now: SystemTime) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": METRICS_GROUP_VERSION,
        "metadata": metadata(node, now),
        "timestamp": apimachinery::time::rfc3339(u.timestamp),
        "window": go_duration(u.window),
        "usage": usage(u.cpu_nanocores, u.memory_bytes),
    })
}

/// A PodMetrics object of `pod` (the Pod object).
pub fn pod_metrics(u: &PodUsage, pod: &Value, now: SystemTime) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": usage(c.cpu_nanocores, c.memory_bytes)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": METRICS_GROUP_VERSION,
        "metadata": metadata(pod, now),
        "timestamp": apimachinery::time::rfc3339(u.timestamp),
        "window": go_duration(u.window),
        "containers": containers,
    })
}

/// `kubectl get nodemetrics|podmetrics`: NAME, CPU, MEMORY, WINDOW (a pod's CPU and memory are its
/// containers' sums, in the same units).
fn metrics_table(list: &Value, include: table::IncludeObject) -> Value {
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let (cpu, mem) = match o.get("containers").and_then(Value::as_array) {
                Some(cs) => cs.iter().fold((0u64, 0u64), |(c, m), x| {
                    (
                        c.saturating_add(parse_cpu(str_at(x, "/usage/cpu"))),
                        m.saturating_add(parse_memory(str_at(x, "/usage/memory"))),
                    )
                }),
                None => (
                    parse_cpu(str_at(o, "/usage/cpu")),
                    parse_memory(str_at(o, "/usage/memory")),
                ),
            };
            let cells = json!([
                name_of(o),
                cpu_quantity(cpu),
                memory_quantity(mem),
                str_at(o, "/window")
            ]);
            let mut row = json!({"cells": cells});
            match include {
                table::IncludeObject::None => {}
                table::IncludeObject::Metadata => {
                    row["object"] = json!({"kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
                }
                table::IncludeObject::Object => row["object"] = o.clone(),
            }
            row
        })
        .collect();
    let column = |name: &str, desc: &str| {
        json!({"name": name, "type": "string", "format": if name == "Name" { "name" } else { "" },
            "description": desc, "priority": 0})
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            column("Name", "Name of the object"),
            column("CPU", "CPU use over the window"),
            column("Memory", "Working set"),
            column("Window", "Length of the window the CPU rate is taken over"),
        ],
        "rows": rows,
    })
}

/// Decimal SI suffixes by power of 1000, from nano up.
const DECIMAL: [&str; 10] = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"];

/// `n` billionths in canonical decimal SI, as `resource.Quantity` prints (`123456n`, `250m`, `2`).
fn decimal_nanos(mut n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut i = 0;
    while n.is_multiple_of(1000) && i + 1 < DECIMAL.len() {
        n /= 1000;
        i += 1;
    }
    format!("{n}{}", DECIMAL[i])
}

/// CPU as metrics-server prints it: nanocores in canonical form (`123456n`; `250m` when exact).
pub fn cpu_quantity(nanocores: u64) -> String {
    decimal_nanos(nanocores)
}

/// Memory as metrics-server prints it: a binary-SI quantity in canonical form (`1234Ki`, `5Mi`;
/// bytes that are no multiple of 1024 print as a plain number, and under 1024 in decimal SI).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes < 1024 {
        return match bytes.checked_mul(1_000_000_000) {
            Some(n) => decimal_nanos(n),
            None => bytes.to_string(),
        };
    }
    const BINARY: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let (mut n, mut i) = (bytes, 0);
    while n.is_multiple_of(1024) && i + 1 < BINARY.len() {
        n /= 1024;
        i += 1;
    }
    format!("{n}{}", BINARY[i])
}

/// Inverse of [`cpu_quantity`] for the Table's sums; anything else counts 0.
fn parse_cpu(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (digits, suffix) = q.split_at(split);
    let Ok(n) = digits.parse::<u64>() else {
        return 0;
    };
    DECIMAL
        .iter()
        .position(|s| *s == suffix)
        .map_or(0, |i| n.saturating_mul(1000u64.saturating_pow(i as u32)))
}

/// Inverse of [`memory_quantity`] for the Table's sums; anything else counts 0.
fn parse_memory(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (digits, suffix) = q.split_at(split);
    let Ok(n) = digits.parse::<u64>() else {
        return 0;
    };
    match ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        .iter()
        .position(|s| *s == suffix)
    {
        Some(i) => n.saturating_mul(1024u64.saturating_pow(i as u32)),
        None => parse_cpu(q) / 1_000_000_000,
    }
}

/// A duration as Go's `time.Duration.String()` prints it (`metav1.Duration`): `2s`, `1.5s`,
/// `500ms`, `1m30s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |value: u128, unit: u128| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let s = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests;
