//! `stack deploy|ls|services|ps|rm`: Docker Swarm's stack verbs over the objects [`crate::compose`] makes (a
//! service is a Deployment, or a DaemonSet in global mode). Output follows the `docker stack` commands
//! (`Creating service demo_web`, `ID NAME MODE REPLICAS IMAGE PORTS`, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use crate::compose::{Stack, SERVICE_LABEL, STACK_LABEL};
use crate::kubeconfig::Session;
use crate::kubectl::apply::{apply_document, Outcome};
use crate::kubectl::delete::delete_body;
use crate::manifest::Document;
use crate::resources::Catalog;
use crate::table::{age, align};
use crate::{errors, rest};

fn selector(stack: &str) -> String {
    format!("{STACK_LABEL}={stack}")
}

/// `{stack}_{service}`, the name Swarm gives a stack's service.
fn swarm_name(stack: &str, service: &str) -> String {
    format!("{stack}_{service}")
}

async fn list(session: &Session, path: &str, stack: &str) -> Result<Vec<Value>> {
    let uri = rest::with_query(path, &[("labelSelector", selector(stack))]);
    items(session, &uri).await
}

/// The items of a list. A collection answers 404 when the server does not serve its type (a server older than
/// DaemonSets): then there is nothing of that type.
async fn items(session: &Session, uri: &str) -> Result<Vec<Value>> {
    match rest::get_opt(&session.client, uri).await? {
        Some(v) => Ok(v["items"].as_array().cloned().unwrap_or_default()),
        None => Ok(Vec::new()),
    }
}

/// The stack's Deployments, DaemonSets and Services.
async fn workloads_and_services(session: &Session, stack: &str) -> Result<[Vec<Value>; 3]> {
    let deps = format!("/apis/apps/v1/namespaces/{stack}/deployments");
    let dss = format!("/apis/apps/v1/namespaces/{stack}/daemonsets");
    let svcs = format!("/api/v1/namespaces/{stack}/services");
    Ok([
        list(session, &deps, stack).await?,
        list(session, &dss, stack).await?,
        list(session, &svcs, stack).await?,
    ])
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// Applies every object of the stack; with `prune`, removes the stack's services the files no longer define.
pub async fn deploy(
    session: &Session,
    catalog: &Catalog,
    stack: &Stack,
    prune: bool,
    out: &mut dyn Write,
) -> Result<()> {
    for w in &stack.warnings {
        eprintln!("{w}");
    }
    // What the files define, as (resource, name): what `--prune` keeps.
    let mut defined = BTreeSet::new();
    let autoscaled: BTreeSet<&str> = stack
        .objects
        .iter()
        .filter(|o| o["kind"] == "HorizontalPodAutoscaler")
        .filter_map(|o| o["spec"]["scaleTargetRef"]["name"].as_str())
        .collect();
    for o in &stack.objects {
        let mut doc = Document {
            source: format!("stack {}", stack.name),
            object: o.clone(),
        };
        match doc.kind() {
            "Service" => replace_if_headless_changes(session, &stack.name, &doc.object).await?,
            "Deployment" if autoscaled.contains(doc.name()) => {
                remove_other_mode(session, &stack.name, "daemonsets", doc.name()).await?;
                keep_live_replicas(session, &stack.name, &mut doc.object).await?;
            }
            "Deployment" => {
                remove_other_mode(session, &stack.name, "daemonsets", doc.name()).await?;
                remove_stack_hpa(session, &stack.name, doc.name()).await?;
            }
            "DaemonSet" => {
                remove_other_mode(session, &stack.name, "deployments", doc.name()).await?
            }
            _ => {}
        }
        let (info, outcome) = apply_document(session, catalog, &doc, true).await?;
        defined.insert((info.ar.plural.clone(), doc.name().to_string()));
        let name = swarm_name(&stack.name, doc.name());
        match (doc.kind(), outcome) {
            ("Namespace", Outcome::Created) => writeln!(out, "Creating namespace {}", stack.name)?,
            ("PersistentVolumeClaim", Outcome::Created) => writeln!(out, "Creating volume {name}")?,
            ("ConfigMap", Outcome::Created) => writeln!(out, "Creating config {name}")?,
            ("Secret", Outcome::Created) => writeln!(out, "Creating secret {name}")?,
            ("Deployment" | "DaemonSet", Outcome::Created) => {
                writeln!(out, "Creating service {name}")?
            }
            ("Deployment" | "DaemonSet", _) => writeln!(out, "Updating service {name}")?,
            _ => {}
        }
        out.flush()?;
    }
    if prune {
        remove(session, &stack.name, Some(&defined), out).await?;
    }
    Ok(())
}

/// The autoscaler owns an autoscaled service's replica count: a redeploy must not reset what it chose. Leaving
/// `spec.replicas` out of the apply would not do, since server-side apply resets a field its manager stops
/// sending; so the apply sends the live value. (An autoscaler's write between this read and the apply is
/// undone once, and it scales again on its next sync.)
async fn keep_live_replicas(session: &Session, stack: &str, deployment: &mut Value) -> Result<()> {
    let path = format!(
        "/apis/apps/v1/namespaces/{stack}/deployments/{}",
        name_of(deployment)
    );
    if let Some(live) = rest::get_opt(&session.client, &path).await? {
        if let Some(n) = live["spec"]["replicas"].as_i64() {
            deployment["spec"]["replicas"] = json!(n);
        }
    }
    Ok(())
}

/// A service that no longer has `x-berth-autoscale` must stop being scaled: its stack's autoscaler goes (one
/// the user made in the namespace, without the stack label, stays).
async fn remove_stack_hpa(session: &Session, stack: &str, name: &str) -> Result<()> {
    let path = format!("/{HPA_PREFIX}/namespaces/{stack}/horizontalpodautoscalers/{name}");
    // A server without the HPA kind answers 404 here too: then there is nothing to remove.
    if let Some(h) = rest::get_opt(&session.client, &path).await? {
        if h["metadata"]["labels"][STACK_LABEL] == stack {
            delete_ignoring_absent(session, &path).await?;
        }
    }
    Ok(())
}

/// A Service cannot turn headless or back in place (its cluster IP is immutable), but a Compose service gains
/// and loses ports freely; Swarm just reconfigures. So the old Service goes first, and the apply recreates it.
async fn replace_if_headless_changes(session: &Session, stack: &str, new: &Value) -> Result<()> {
    let path = format!("/api/v1/namespaces/{stack}/services/{}", name_of(new));
    let Some(old) = rest::get_opt(&session.client, &path).await? else {
        return Ok(());
    };
    let headless = |s: &Value| s["spec"]["clusterIP"] == "None";
    if headless(&old) != headless(new) {
        delete_ignoring_absent(session, &path).await?;
    }
    Ok(())
}

/// A service that switches between replicated and global mode changes kind (Deployment or DaemonSet), and the
/// object of the old kind would keep running its pods beside the new one: it goes before the apply creates the
/// new one, so host ports are free again. `other` is the plural of the kind the service no longer is.
async fn remove_other_mode(session: &Session, stack: &str, other: &str, name: &str) -> Result<()> {
    delete_ignoring_absent(
        session,
        &format!("/apis/apps/v1/namespaces/{stack}/{other}/{name}"),
    )
    .await
}

/// Where the stack's HorizontalPodAutoscalers live.
const HPA_PREFIX: &str = "apis/autoscaling/v2";

/// What a stack owns besides its namespace and volumes, in the order `stack rm` removes it, with Swarm's word
/// for it when it prints one. Autoscalers go first, so none scales a Deployment that is being removed.
const OWNED: [(&str, &str, Option<&str>); 6] = [
    (HPA_PREFIX, "horizontalpodautoscalers", None),
    ("apis/apps/v1", "deployments", Some("service")),
    ("apis/apps/v1", "daemonsets", Some("service")),
    ("api/v1", "services", None),
    ("api/v1", "secrets", Some("secret")),
    ("api/v1", "configmaps", Some("config")),
];

/// Deletes the stack's objects (all, or those whose `(resource, name)` is not in `keep`). Volumes stay, as in
/// Swarm. Returns how many objects went.
async fn remove(
    session: &Session,
    stack: &str,
    keep: Option<&BTreeSet<(String, String)>>,
    out: &mut dyn Write,
) -> Result<usize> {
    let mut removed = 0;
    for (prefix, resource, word) in OWNED {
        let collection = format!("/{prefix}/namespaces/{stack}/{resource}");
        for o in list(session, &collection, stack).await? {
            let name = name_of(&o);
            if keep.is_some_and(|k| k.contains(&(resource.to_string(), name.to_string()))) {
                continue;
            }
            if let Some(w) = word {
                writeln!(out, "Removing {w} {}", swarm_name(stack, name))?;
            }
            delete_ignoring_absent(session, &format!("{collection}/{name}")).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

async fn delete_ignoring_absent(session: &Session, path: &str) -> Result<()> {
    match rest::delete(&session.client, path, &delete_body(None)).await {
        Err(e) if !errors::is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
}

/// `stack rm`: returns false when the stack had nothing to remove.
pub async fn rm(session: &Session, stack: &str, out: &mut dyn Write) -> Result<bool> {
    Ok(remove(session, stack, None, out).await? > 0)
}

/// `stack ls`: stacks with their service counts.
pub async fn ls(session: &Session) -> Result<Vec<String>> {
    // By (stack, service): a service caught between modes has both kinds for a moment but is one service.
    let mut services = BTreeSet::new();
    for resource in ["deployments", "daemonsets"] {
        let uri = rest::with_query(
            &format!("/apis/apps/v1/{resource}"),
            &[("labelSelector", STACK_LABEL.to_string())],
        );
        for w in items(session, &uri).await? {
            if let Some(s) = w["metadata"]["labels"][STACK_LABEL].as_str() {
                services.insert((s.to_string(), name_of(&w).to_string()));
            }
        }
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (s, _) in services {
        *counts.entry(s).or_default() += 1;
    }
    Ok(ls_lines(&counts))
}

/// The `stack ls` table.
pub fn ls_lines(counts: &BTreeMap<String, usize>) -> Vec<String> {
    let mut grid = vec![vec!["NAME".to_string(), "SERVICES".to_string()]];
    grid.extend(counts.iter().map(|(s, n)| vec![s.clone(), n.to_string()]));
    align(&grid)
}

/// `stack services STACK`.
pub async fn services(session: &Session, stack: &str) -> Result<Vec<String>> {
    let [deps, dss, svcs] = workloads_and_services(session, stack).await?;
    Ok(services_lines(stack, &deps, &dss, &svcs))
}

/// The `stack services` table from the stack's Deployments (replicated services), DaemonSets (global ones)
/// and Services. List items carry no `kind`, hence the two lists.
pub fn services_lines(
    stack: &str,
    deps: &[Value],
    daemon_sets: &[Value],
    svcs: &[Value],
) -> Vec<String> {
    let mut grid = vec![["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
        .map(String::from)
        .to_vec()];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    // Swarm shows running/desired tasks: for a global service, one desired task per eligible node.
    let replicated = deps.iter().map(|d| {
        let st = &d["status"];
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        (
            d,
            "replicated",
            format!("{}/{want}", n(&st["readyReplicas"])),
        )
    });
    let global = daemon_sets.iter().map(|d| {
        let st = &d["status"];
        let counts = format!(
            "{}/{}",
            n(&st["numberReady"]),
            n(&st["desiredNumberScheduled"])
        );
        (d, "global", counts)
    });
    let mut rows: Vec<_> = replicated.chain(global).collect();
    rows.sort_by_key(|(d, mode, _)| (name_of(d), *mode));
    for (d, mode, replicas) in rows {
        let name = name_of(d);
        let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default();
        let ports = svcs
            .iter()
            .find(|s| name_of(s) == name)
            .map(published_ports)
            .unwrap_or_default();
        grid.push(vec![
            short_id(d),
            swarm_name(stack, name),
            mode.into(),
            replicas,
            image.into(),
            ports,
        ]);
    }
    align(&grid)
}

/// `*:30080->80/tcp` for each node port of a Service.
fn published_ports(svc: &Value) -> String {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let node_port = p["nodePort"].as_i64()?;
            let target = p["targetPort"].as_i64().or(p["port"].as_i64())?;
            let proto = p["protocol"].as_str().unwrap_or("TCP").to_lowercase();
            Some(format!("*:{node_port}->{target}/{proto}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first 12 hex digits of the UID, like a Swarm ID.
fn short_id(o: &Value) -> String {
    o["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect()
}

/// `stack ps STACK`.
pub async fn ps(session: &Session, stack: &str) -> Result<Vec<String>> {
    let pods = list(session, &format!("/api/v1/namespaces/{stack}/pods"), stack).await?;
    Ok(ps_lines(stack, &pods, rest::now_secs()))
}

/// The `stack ps` table: one line per pod (Swarm's task).
pub fn ps_lines(stack: &str, pods: &[Value], now: i64) -> Vec<String> {
    let mut grid = vec![[
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
    ]
    .map(String::from)
    .to_vec()];
    let mut pods: Vec<&Value> = pods.iter().collect();
    pods.sort_by_key(|p| (p["metadata"]["labels"][SERVICE_LABEL].as_str(), name_of(p)));
    for p in pods {
        let desired = if p["metadata"]["deletionTimestamp"].is_string() {
            "Shutdown"
        } else {
            "Running"
        };
        let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
        let since = p["status"]["startTime"]
            .as_str()
            .map(|t| json!({"metadata": {"creationTimestamp": t}}))
            .unwrap_or_else(|| p.clone());
        // Swarm shows why a task is not running: a container's waiting reason, or why it has no node.
        let unscheduled = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            .and_then(|c| c["message"].as_str());
        let error = p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["state"]["waiting"]["reason"].as_str())
            .or(unscheduled)
            .unwrap_or_default();
        grid.push(vec![
            short_id(p),
            swarm_name(stack, name_of(p)),
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .into(),
            p["spec"]["nodeName"].as_str().unwrap_or_default().into(),
            desired.into(),
            format!("{phase} {} ago", age(&since, now)),
            error.into(),
        ]);
    }
    align(&grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_docker_stack() {
        let counts = BTreeMap::from([("demo".to_string(), 2), ("other".to_string(), 1)]);
        assert_eq!(
            ls_lines(&counts),
            ["NAME    SERVICES", "demo    2", "other   1"]
        );
        let dep = json!({
            "metadata": {"name": "web", "uid": "0a1b2c3d-4e5f-6789-abcd-ef0123456789"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "berth/busybox:latest"}]}}},
            "status": {"readyReplicas": 2},
        });
        let svc = json!({
            "metadata": {"name": "web"},
            "spec": {"ports": [
                {"port": 80, "targetPort": 80, "nodePort": 30080, "protocol": "TCP"},
                {"port": 53, "targetPort": 53, "protocol": "UDP"},
            ]},
        });
        let ds = json!({
            "metadata": {"name": "agent", "uid": "99887766-5544-3322-1100-aabbccddeeff"},
            "spec": {"template": {"spec": {"containers": [{"image": "berth/agent:1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2},
        });
        let lines = services_lines("demo", &[dep], &[ds], &[svc]);
        assert_eq!(
            lines[0],
            "ID             NAME         MODE         REPLICAS   IMAGE                  PORTS"
        );
        assert_eq!(
            lines[1],
            "998877665544   demo_agent   global       2/3        berth/agent:1"
        );
        assert_eq!(
            lines[2],
            "0a1b2c3d4e5f   demo_web     replicated   2/3        berth/busybox:latest   *:30080->80/tcp"
        );
        let pod = json!({
            "metadata": {"name": "web-abc", "uid": "ffeeddcc-0000", "labels": {SERVICE_LABEL: "web"}},
            "spec": {"nodeName": "a1", "containers": [{"image": "img"}]},
            "status": {"phase": "Running", "startTime": "1970-01-01T00:00:00Z",
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
        });
        let pending = json!({
            "metadata": {"name": "web-def", "uid": "aa", "labels": {SERVICE_LABEL: "web"}},
            "spec": {"containers": [{"image": "img"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "message": "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."}]},
        });
        let lines = ps_lines("demo", &[pod, pending], 120);
        assert!(
            lines[2].ends_with("2 node(s) didn't have free ports for the requested pod ports."),
            "{lines:?}"
        );
        assert!(lines[0].starts_with("ID "), "{lines:?}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "ffeeddcc0000",
                "demo_web-abc",
                "img",
                "a1",
                "Running",
                "Running",
                "2m",
                "ago",
                "CrashLoopBackOff"
            ]
        );
    }
}
