//! `cordon`, `uncordon` and `drain NODE` (evictions through `pods/{name}/eviction`).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::rest;

/// Sets `spec.unschedulable`; returns kubectl's line (`node/a1 cordoned`, `node/a1 already cordoned`).
pub async fn set_unschedulable(session: &Session, node: &str, on: bool) -> Result<String> {
    let path = format!("/api/v1/nodes/{node}");
    let cur = rest::get(&session.client, &path).await?;
    let word = if on { "cordoned" } else { "uncordoned" };
    if cur["spec"]["unschedulable"].as_bool().unwrap_or(false) == on {
        return Ok(format!("node/{node} already {word}"));
    }
    let body = serde_json::json!({"spec": {"unschedulable": if on { Value::Bool(true) } else { Value::Null }}});
    rest::patch_merge(&session.client, &path, &body).await?;
    Ok(format!("node/{node} {word}"))
}

/// Options of `drain`.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Evict pods no controller manages (they are not recreated).
    pub force: bool,
    /// Skip DaemonSet pods instead of refusing.
    pub ignore_daemonsets: bool,
    /// Allow evicting pods with emptyDir data.
    pub delete_emptydir_data: bool,
    /// Bound on waiting for pods to go.
    pub timeout: Duration,
}

/// What drain does with one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Evict it.
    Evict,
    /// Leave it (with a warning).
    Skip(String),
    /// Refuse to drain.
    Block(String),
}

/// kubectl's drain filters: DaemonSet pods, unmanaged pods, emptyDir pods, mirror pods, finished pods.
pub fn verdict(pod: &Value, opts: &DrainOptions) -> Verdict {
    let m = &pod["metadata"];
    let id = format!(
        "{}/{}",
        m["namespace"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default()
    );
    if m["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Verdict::Skip(format!("ignoring mirror pod {id}"));
    }
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return Verdict::Evict;
    }
    let controller = m["ownerReferences"]
        .as_array()
        .and_then(|o| o.iter().find(|r| r["controller"] == true).cloned());
    match controller {
        Some(c) if c["kind"] == "DaemonSet" => {
            if opts.ignore_daemonsets {
                return Verdict::Skip(format!("ignoring DaemonSet-managed Pods: {id}"));
            }
            return Verdict::Block(format!(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {id}"
            ));
        }
        None if !opts.force => {
            return Verdict::Block(format!(
                "cannot delete Pods that declare no controller (use --force to override): {id}"
            ))
        }
        _ => {}
    }
    let has_empty_dir = pod["spec"]["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v.get("emptyDir").is_some()));
    if has_empty_dir && !opts.delete_emptydir_data {
        return Verdict::Block(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {id}"
        ));
    }
    Verdict::Evict
}

/// The Eviction body kubectl posts.
pub fn eviction(ns: &str, name: &str) -> Value {
    serde_json::json!({"kind":"Eviction","apiVersion":"policy/v1","metadata":{"name":name,"namespace":ns},"deleteOptions":{}})
}

/// `drain`: cordon, evict every evictable pod, wait until they are gone (bounded), `node/x drained`.
pub async fn drain(
    session: &Session,
    node: &str,
    opts: &DrainOptions,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(out, "{}", set_unschedulable(session, node, true).await?)?;
    let uri = rest::with_query(
        "/api/v1/pods",
        &[("fieldSelector", format!("spec.nodeName={node}"))],
    );
    let list = rest::get(&session.client, &uri).await?;
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let mut blocks = Vec::new();
    let mut evict = Vec::new();
    let mut warnings = Vec::new();
    for p in &pods {
        match verdict(p, opts) {
            Verdict::Evict => evict.push(p.clone()),
            Verdict::Skip(w) => warnings.push(w),
            Verdict::Block(b) => blocks.push(b),
        }
    }
    if !blocks.is_empty() {
        bail!(
            "unable to drain node {node:?} due to error: {}, continuing command...",
            blocks.join(", ")
        );
    }
    for w in &warnings {
        eprintln!("Warning: {w}");
    }
    let start = Instant::now();
    for p in &evict {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        writeln!(out, "evicting pod {ns}/{name}")?;
        out.flush()?;
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
        loop {
            match rest::post(&session.client, &path, &eviction(ns, name)).await {
                Ok(_) => break,
                Err(e) if crate::errors::is_not_found(&e) => break,
                // 429: a disruption budget says not now; retry within the bound.
                Err(e) if crate::errors::api_status(&e).is_some_and(|s| s.code == 429) => {
                    if start.elapsed() > opts.timeout {
                        return Err(e);
                    }
                    eprintln!("error when evicting pods/{name} -n {ns} (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    for p in &evict {
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        let uid = &p["metadata"]["uid"];
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        loop {
            match rest::get_opt(&session.client, &path).await? {
                // A new pod with the same name (a StatefulSet) also counts as gone.
                Some(cur) if cur["metadata"]["uid"] == *uid => {}
                _ => break,
            }
            if start.elapsed() > opts.timeout {
                bail!("drain did not complete within {:?}", opts.timeout);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        writeln!(out, "pod/{name} evicted")?;
        out.flush()?;
    }
    writeln!(out, "node/{node} drained")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> DrainOptions {
        DrainOptions {
            force: false,
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            timeout: Duration::from_secs(1),
        }
    }

    fn pod(owner: Option<&str>, extra: Value) -> Value {
        let mut p = json!({"metadata":{"name":"p","namespace":"default"},"spec":{},"status":{"phase":"Running"}});
        if let Some(k) = owner {
            p["metadata"]["ownerReferences"] = json!([{"kind":k,"name":"o","controller":true}]);
        }
        if !extra.is_null() {
            p["spec"] = extra;
        }
        p
    }

    #[test]
    fn drain_verdicts() {
        assert_eq!(
            verdict(&pod(Some("ReplicaSet"), Value::Null), &opts()),
            Verdict::Evict
        );
        assert!(matches!(
            verdict(&pod(None, Value::Null), &opts()),
            Verdict::Block(_)
        ));
        assert_eq!(
            verdict(
                &pod(None, Value::Null),
                &DrainOptions {
                    force: true,
                    ..opts()
                }
            ),
            Verdict::Evict
        );
        assert!(matches!(
            verdict(&pod(Some("DaemonSet"), Value::Null), &opts()),
            Verdict::Block(_)
        ));
        assert!(matches!(
            verdict(
                &pod(Some("DaemonSet"), Value::Null),
                &DrainOptions {
                    ignore_daemonsets: true,
                    ..opts()
                }
            ),
            Verdict::Skip(_)
        ));
        let ed = json!({"volumes":[{"name":"x","emptyDir":{}}]});
        assert!(matches!(
            verdict(&pod(Some("ReplicaSet"), ed.clone()), &opts()),
            Verdict::Block(_)
        ));
        assert_eq!(
            verdict(
                &pod(Some("ReplicaSet"), ed),
                &DrainOptions {
                    delete_emptydir_data: true,
                    ..opts()
                }
            ),
            Verdict::Evict
        );
    }
}
