//! `describe TYPE NAME`: a kubectl-like summary (metadata, kind-specific sections for Pods, Deployments,
//! DaemonSets, Services, Nodes; the other kinds' fields as YAML) followed by the object's Events.

use anyhow::Result;
use apimachinery::labels::{string_map, LabelSelector};
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::resources::{Catalog, ResourceInfo};
use crate::rest;
use crate::table::{age, tabwrite};

fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(x) if x.is_empty() => "<none>".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Collects tab-separated lines, rendered with Go-tabwriter alignment at the end.
#[derive(Default)]
struct Out(String);

impl Out {
    fn kv(&mut self, indent: usize, key: &str, value: impl AsRef<str>) {
        self.0.push_str(&format!(
            "{}{key}:\t{}\n",
            " ".repeat(indent),
            value.as_ref()
        ));
    }
    fn head(&mut self, indent: usize, key: &str) {
        self.0.push_str(&format!("{}{key}:\n", " ".repeat(indent),));
    }
    fn raw(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }
    /// A map as `k=v` lines (labels) or `k: v` (annotations), first on the key's line.
    fn map(&mut self, indent: usize, key: &str, m: &Value, sep: &str) {
        let entries: Vec<String> = m
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}{sep}{}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            self.kv(indent, key, "<none>");
            return;
        }
        self.kv(indent, key, &entries[0]);
        for e in &entries[1..] {
            self.raw(format!("{}\t{e}", " ".repeat(indent)));
        }
    }
    fn finish(self) -> String {
        tabwrite(&self.0, 0, 2)
    }
}

fn timestamp(v: &Value) -> String {
    v.as_str()
        .and_then(apimachinery::time::parse_rfc3339)
        .map(apimachinery::time::rfc3339)
        .unwrap_or_else(|| s(v))
}

fn metadata(o: &mut Out, obj: &Value, namespaced: bool) {
    let m = &obj["metadata"];
    o.kv(0, "Name", s(&m["name"]));
    if namespaced {
        o.kv(0, "Namespace", s(&m["namespace"]));
    }
    o.map(0, "Labels", &m["labels"], "=");
    o.map(0, "Annotations", &m["annotations"], ": ");
    o.kv(0, "CreationTimestamp", timestamp(&m["creationTimestamp"]));
}

/// A workload's `matchLabels`, or a Service's plain label map, in selector syntax.
fn selector_text(sel: &Value) -> String {
    let m = if sel["matchLabels"].is_object() {
        &sel["matchLabels"]
    } else {
        sel
    };
    let text = LabelSelector::from_map(&string_map(Some(m))).to_string();
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

fn conditions(o: &mut Out, conds: &Value, cols: &[(&str, &str)]) {
    let Some(list) = conds.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    o.head(0, "Conditions");
    o.raw(format!(
        "  {}",
        cols.iter().map(|c| c.0).collect::<Vec<_>>().join("\t")
    ));
    o.raw(format!(
        "  {}",
        cols.iter()
            .map(|c| "-".repeat(c.0.len()))
            .collect::<Vec<_>>()
            .join("\t")
    ));
    for c in list {
        o.raw(format!(
            "  {}",
            cols.iter()
                .map(|(_, f)| s(&c[*f]))
                .collect::<Vec<_>>()
                .join("\t")
        ));
    }
}

fn containers(o: &mut Out, indent: usize, spec: &Value, statuses: Option<&Value>) {
    let Some(cs) = spec["containers"].as_array() else {
        return;
    };
    let pad = " ".repeat(indent);
    o.raw(format!("{pad}Containers:"));
    // kubectl: a pod's containers at 2/4 spaces, a pod template's at 3/4.
    let name_pad = if indent == 0 { 2 } else { indent + 1 };
    let indent = 2;
    for c in cs {
        let name = c["name"].as_str().unwrap_or_default();
        o.raw(format!("{} {name}:", " ".repeat(name_pad - 1)));
        let st = statuses
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|x| x["name"] == name));
        if let Some(st) = st {
            o.kv(indent + 2, "Container ID", s(&st["containerID"]));
        }
        o.kv(indent + 2, "Image", s(&c["image"]));
        let ports: Vec<String> = c["ports"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p["containerPort"],
                            p["protocol"].as_str().unwrap_or("TCP")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        o.kv(
            indent + 2,
            "Port",
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(", ")
            },
        );
        for (key, field) in [("Command", "command"), ("Args", "args")] {
            if let Some(list) = c[field].as_array() {
                o.head(indent + 2, key);
                for a in list {
                    o.raw(format!(
                        "{}  {}",
                        " ".repeat(indent + 2),
                        a.as_str().unwrap_or_default()
                    ));
                }
            }
        }
        if let Some(st) = st {
            let state = &st["state"];
            if let Some((k, v)) = state.as_object().and_then(|m| m.iter().next()) {
                let word = match k.as_str() {
                    "running" => "Running",
                    "waiting" => "Waiting",
                    "terminated" => "Terminated",
                    other => other,
                };
                o.kv(indent + 2, "State", word);
                if let Some(r) = v["reason"].as_str() {
                    o.kv(indent + 4, "Reason", r);
                }
                if let Some(code) = v.get("exitCode") {
                    o.kv(indent + 4, "Exit Code", s(code));
                }
                if let Some(t) = v.get("startedAt") {
                    o.kv(indent + 4, "Started", timestamp(t));
                }
            }
            o.kv(indent + 2, "Ready", s(&st["ready"]));
            o.kv(indent + 2, "Restart Count", s(&st["restartCount"]));
        }
        let env: Vec<String> = c["env"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| format!("{}:\t{}", s(&e["name"]), s(&e["value"])))
                    .collect()
            })
            .unwrap_or_default();
        if env.is_empty() {
            o.kv(indent + 2, "Environment", "<none>");
        } else {
            o.head(indent + 2, "Environment");
            for e in env {
                o.raw(format!("{}  {e}", " ".repeat(indent + 2)));
            }
        }
        let mounts: Vec<String> = c["volumeMounts"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| format!("{} from {}", s(&m["mountPath"]), s(&m["name"])))
                    .collect()
            })
            .unwrap_or_default();
        if mounts.is_empty() {
            o.kv(indent + 2, "Mounts", "<none>");
        } else {
            o.head(indent + 2, "Mounts");
            for m in mounts {
                o.raw(format!("{}  {m}", " ".repeat(indent + 2)));
            }
        }
    }
}

fn volumes(o: &mut Out, spec: &Value) {
    let Some(vs) = spec["volumes"].as_array().filter(|v| !v.is_empty()) else {
        o.kv(0, "Volumes", "<none>");
        return;
    };
    o.head(0, "Volumes");
    for v in vs {
        o.raw(format!("  {}:", s(&v["name"])));
        if let Some(pvc) = v.get("persistentVolumeClaim") {
            o.kv(4, "Type", "PersistentVolumeClaim");
            o.kv(4, "ClaimName", s(&pvc["claimName"]));
        } else if let Some(e) = v.get("emptyDir") {
            o.kv(
                4,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            o.kv(4, "Medium", s(&e["medium"]));
        } else if let Some(h) = v.get("hostPath") {
            o.kv(4, "Type", "HostPath (bare host directory volume)");
            o.kv(4, "Path", s(&h["path"]));
        } else if let Some(c) = v.get("configMap") {
            o.kv(4, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            o.kv(4, "Name", s(&c["name"]));
        }
    }
}

/// Renders a Pod.
pub fn describe_pod(p: &Value) -> String {
    let mut o = Out::default();
    let m = &p["metadata"];
    o.kv(0, "Name", s(&m["name"]));
    o.kv(0, "Namespace", s(&m["namespace"]));
    let node = match (
        p["spec"]["nodeName"].as_str(),
        p["status"]["hostIP"].as_str(),
    ) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.to_string(),
        _ => "<none>".into(),
    };
    o.kv(0, "Node", node);
    o.kv(0, "Start Time", timestamp(&p["status"]["startTime"]));
    o.map(0, "Labels", &m["labels"], "=");
    o.map(0, "Annotations", &m["annotations"], ": ");
    let status = if m["deletionTimestamp"].is_string() {
        format!(
            "Terminating (lasts {})",
            s(&m["deletionGracePeriodSeconds"])
        )
    } else {
        s(&p["status"]["phase"])
    };
    o.kv(0, "Status", status);
    o.kv(0, "IP", s(&p["status"]["podIP"]));
    if let Some(c) = m["ownerReferences"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["controller"] == true))
    {
        o.kv(
            0,
            "Controlled By",
            format!("{}/{}", s(&c["kind"]), s(&c["name"])),
        );
    }
    containers(
        &mut o,
        0,
        &p["spec"],
        Some(&p["status"]["containerStatuses"]),
    );
    conditions(
        &mut o,
        &p["status"]["conditions"],
        &[("Type", "type"), ("Status", "status")],
    );
    volumes(&mut o, &p["spec"]);
    o.kv(
        0,
        "Node-Selectors",
        selector_text(&p["spec"]["nodeSelector"]),
    );
    o.finish()
}

/// Renders a Deployment, with its ReplicaSets split into old and new.
pub fn describe_deployment(d: &Value, owned_rs: &[Value]) -> String {
    let mut o = Out::default();
    metadata(&mut o, d, true);
    let spec = &d["spec"];
    let st = &d["status"];
    o.kv(0, "Selector", selector_text(&spec["selector"]));
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let unavailable = st["unavailableReplicas"]
        .as_i64()
        .unwrap_or_else(|| (n(&st["replicas"]) - n(&st["availableReplicas"])).max(0));
    o.kv(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {unavailable} unavailable",
            spec["replicas"].as_i64().unwrap_or(1),
            n(&st["updatedReplicas"]),
            n(&st["replicas"]),
            n(&st["availableReplicas"]),
        ),
    );
    let strategy = spec["strategy"]["type"].as_str().unwrap_or("RollingUpdate");
    o.kv(0, "StrategyType", strategy);
    o.kv(
        0,
        "MinReadySeconds",
        n(&spec["minReadySeconds"]).to_string(),
    );
    if strategy == "RollingUpdate" {
        let ru = &spec["strategy"]["rollingUpdate"];
        let pick = |v: &Value| if v.is_null() { "25%".to_string() } else { s(v) };
        o.kv(
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                pick(&ru["maxUnavailable"]),
                pick(&ru["maxSurge"])
            ),
        );
    }
    o.head(0, "Pod Template");
    o.map(2, "Labels", &spec["template"]["metadata"]["labels"], "=");
    if spec["template"]["metadata"]["annotations"].is_object() {
        o.map(
            2,
            "Annotations",
            &spec["template"]["metadata"]["annotations"],
            ": ",
        );
    }
    containers(&mut o, 2, &spec["template"]["spec"], None);
    conditions(
        &mut o,
        &st["conditions"],
        &[("Type", "type"), ("Status", "status"), ("Reason", "reason")],
    );
    let rev = d["metadata"]["annotations"][super::rollout::REVISION_ANNOTATION].as_str();
    let (new, old): (Vec<&Value>, Vec<&Value>) = owned_rs.iter().partition(|r| {
        r["metadata"]["annotations"][super::rollout::REVISION_ANNOTATION].as_str() == rev
            && rev.is_some()
    });
    let rs_line = |v: &[&Value]| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.iter()
                .map(|r| {
                    format!(
                        "{} ({}/{} replicas created)",
                        s(&r["metadata"]["name"]),
                        n(&r["status"]["replicas"]),
                        n(&r["spec"]["replicas"])
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let old: Vec<&Value> = old
        .into_iter()
        .filter(|r| n(&r["spec"]["replicas"]) > 0 || n(&r["status"]["replicas"]) > 0)
        .collect();
    o.kv(0, "OldReplicaSets", rs_line(&old));
    o.kv(0, "NewReplicaSet", rs_line(&new));
    o.finish()
}

/// Renders a DaemonSet like kubectl, with the phases of the pods it controls.
pub fn describe_daemon_set(ds: &Value, owned_pods: &[Value]) -> String {
    let mut o = Out::default();
    let m = &ds["metadata"];
    let spec = &ds["spec"];
    let st = &ds["status"];
    o.kv(0, "Name", s(&m["name"]));
    o.kv(0, "Namespace", s(&m["namespace"]));
    o.kv(0, "Selector", selector_text(&spec["selector"]));
    o.kv(
        0,
        "Node-Selector",
        selector_text(&spec["template"]["spec"]["nodeSelector"]),
    );
    o.map(0, "Labels", &m["labels"], "=");
    o.map(0, "Annotations", &m["annotations"], ": ");
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    // kubectl writes these without a tab: they stay out of the aligned columns.
    for (label, field) in [
        (
            "Desired Number of Nodes Scheduled",
            "desiredNumberScheduled",
        ),
        (
            "Current Number of Nodes Scheduled",
            "currentNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Up-to-date Pods",
            "updatedNumberScheduled",
        ),
        (
            "Number of Nodes Scheduled with Available Pods",
            "numberAvailable",
        ),
        ("Number of Nodes Misscheduled", "numberMisscheduled"),
    ] {
        o.raw(format!("{label}: {}", n(&st[field])));
    }
    let phase = |p: &str| {
        owned_pods
            .iter()
            .filter(|pod| pod["status"]["phase"].as_str().unwrap_or("Pending") == p)
            .count()
    };
    o.kv(
        0,
        "Pods Status",
        format!(
            "{} Running / {} Waiting / {} Succeeded / {} Failed",
            phase("Running"),
            phase("Pending"),
            phase("Succeeded"),
            phase("Failed")
        ),
    );
    o.head(0, "Pod Template");
    o.map(2, "Labels", &spec["template"]["metadata"]["labels"], "=");
    if spec["template"]["metadata"]["annotations"].is_object() {
        o.map(
            2,
            "Annotations",
            &spec["template"]["metadata"]["annotations"],
            ": ",
        );
    }
    containers(&mut o, 2, &spec["template"]["spec"], None);
    o.finish()
}

/// Renders a Service with its Endpoints.
pub fn describe_service(svc: &Value, endpoints: Option<&Value>) -> String {
    let mut o = Out::default();
    metadata(&mut o, svc, true);
    let spec = &svc["spec"];
    o.kv(0, "Selector", selector_text(&spec["selector"]));
    o.kv(0, "Type", spec["type"].as_str().unwrap_or("ClusterIP"));
    o.kv(0, "IP", s(&spec["clusterIP"]));
    let eps: Vec<String> = endpoints
        .and_then(|e| e["subsets"].as_array())
        .map(|subs| {
            subs.iter()
                .flat_map(|sub| {
                    let ports: Vec<String> = sub["ports"]
                        .as_array()
                        .map(|p| p.iter().map(|p| p["port"].to_string()).collect())
                        .unwrap_or_default();
                    sub["addresses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .flat_map(move |a| {
                            let ip = s(&a["ip"]);
                            let ports = ports.clone();
                            if ports.is_empty() {
                                vec![ip]
                            } else {
                                ports.into_iter().map(|p| format!("{ip}:{p}")).collect()
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    for p in spec["ports"].as_array().cloned().unwrap_or_default() {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        o.kv(0, "Port", format!("{name}  {}/{proto}", p["port"]));
        o.kv(
            0,
            "TargetPort",
            format!(
                "{}/{proto}",
                s(if p["targetPort"].is_null() {
                    &p["port"]
                } else {
                    &p["targetPort"]
                })
            ),
        );
        if !p["nodePort"].is_null() {
            o.kv(0, "NodePort", format!("{name}  {}/{proto}", p["nodePort"]));
        }
        o.kv(
            0,
            "Endpoints",
            if eps.is_empty() {
                "<none>".into()
            } else {
                eps.join(",")
            },
        );
    }
    o.kv(
        0,
        "Session Affinity",
        spec["sessionAffinity"].as_str().unwrap_or("None"),
    );
    o.finish()
}

/// Renders a Node, with the pods bound to it.
pub fn describe_node(node: &Value, pods: &[Value]) -> String {
    let mut o = Out::default();
    let m = &node["metadata"];
    o.kv(0, "Name", s(&m["name"]));
    let roles: Vec<String> = m["labels"]
        .as_object()
        .map(|l| {
            l.keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    o.kv(
        0,
        "Roles",
        if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
    );
    o.map(0, "Labels", &m["labels"], "=");
    o.map(0, "Annotations", &m["annotations"], ": ");
    o.kv(0, "CreationTimestamp", timestamp(&m["creationTimestamp"]));
    let taints: Vec<String> = node["spec"]["taints"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| match t["value"].as_str() {
                    Some(v) => format!("{}={v}:{}", s(&t["key"]), s(&t["effect"])),
                    None => format!("{}:{}", s(&t["key"]), s(&t["effect"])),
                })
                .collect()
        })
        .unwrap_or_default();
    o.kv(
        0,
        "Taints",
        if taints.is_empty() {
            "<none>".into()
        } else {
            taints.join(", ")
        },
    );
    o.kv(
        0,
        "Unschedulable",
        node["spec"]["unschedulable"]
            .as_bool()
            .unwrap_or(false)
            .to_string(),
    );
    conditions(
        &mut o,
        &node["status"]["conditions"],
        &[
            ("Type", "type"),
            ("Status", "status"),
            ("LastHeartbeatTime", "lastHeartbeatTime"),
            ("Reason", "reason"),
            ("Message", "message"),
        ],
    );
    o.head(0, "Addresses");
    for a in node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        o.kv(2, &s(&a["type"]), s(&a["address"]));
    }
    for (title, field) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        o.head(0, title);
        for (k, v) in node["status"][field]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            o.kv(2, &k, s(&v));
        }
    }
    o.kv(0, "PodCIDR", s(&node["spec"]["podCIDR"]));
    o.raw(format!("Non-terminated Pods:\t({} in total)", pods.len()));
    if !pods.is_empty() {
        o.raw("  Namespace\tName\tAge");
        o.raw("  ---------\t----\t---");
        let now = rest::now_secs();
        for p in pods {
            o.raw(format!(
                "  {}\t{}\t{}",
                s(&p["metadata"]["namespace"]),
                s(&p["metadata"]["name"]),
                age(p, now)
            ));
        }
    }
    o.finish()
}

/// Renders any other object: metadata, then its other top-level fields as YAML.
pub fn describe_generic(obj: &Value, namespaced: bool) -> String {
    let mut o = Out::default();
    metadata(&mut o, obj, namespaced);
    let mut text = o.finish();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let mut title = k.clone();
            if let Some(f) = title.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            text.push_str(&format!("{title}:\n"));
            let yaml = serde_yaml::to_string(v).unwrap_or_default();
            for l in yaml.lines() {
                text.push_str(&format!("  {l}\n"));
            }
        }
    }
    text
}

/// Renders the Events section like kubectl (`Events:  <none>` when there are none).
pub fn events_section(events: &[Value], now: i64) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut evs = events.to_vec();
    let when = |e: &Value| -> String {
        e["lastTimestamp"]
            .as_str()
            .or(e["eventTime"].as_str())
            .or(e["firstTimestamp"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    evs.sort_by_key(|e| when(e));
    let mut t =
        String::from("  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n");
    for e in &evs {
        let at = serde_json::json!({"metadata": {"creationTimestamp": when(e)}});
        let mut a = age(&at, now);
        let count = e["count"].as_i64().unwrap_or(1);
        if count > 1 {
            if let Some(first) = e["firstTimestamp"].as_str() {
                let f = serde_json::json!({"metadata": {"creationTimestamp": first}});
                a = format!("{a} (x{count} over {})", age(&f, now));
            }
        }
        let from = e["source"]["component"]
            .as_str()
            .or(e["reportingComponent"].as_str())
            .unwrap_or_default();
        t.push_str(&format!(
            "  {}\t{}\t{a}\t{from}\t{}\n",
            s(&e["type"]),
            s(&e["reason"]),
            e["message"].as_str().unwrap_or_default().trim()
        ));
    }
    format!("Events:\n{}", tabwrite(&t, 0, 2))
}

async fn list(session: &Session, path: &str, query: &[(&str, String)]) -> Vec<Value> {
    rest::get(&session.client, &rest::with_query(path, query))
        .await
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// `describe TYPE NAME`.
pub async fn describe(
    session: &Session,
    catalog: &Catalog,
    kind: &str,
    name: &str,
) -> Result<String> {
    let info: &ResourceInfo = catalog.resolve(kind)?;
    let ns = info.namespaced.then_some(session.namespace.as_str());
    let obj = rest::get(&session.client, &info.object_path(ns, name)).await?;
    let mut text = match (info.ar.group.as_str(), info.ar.kind.as_str()) {
        ("", "Pod") => describe_pod(&obj),
        ("apps", "Deployment") => {
            let uid = obj["metadata"]["uid"].clone();
            let sel = selector_text(&obj["spec"]["selector"]);
            let rs_info = catalog.resolve("replicasets.apps")?;
            let rs: Vec<Value> = list(
                session,
                &rs_info.collection_path(ns),
                &[("labelSelector", sel)],
            )
            .await
            .into_iter()
            .filter(|r| {
                r["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid))
            })
            .collect();
            describe_deployment(&obj, &rs)
        }
        ("apps", "DaemonSet") => {
            let uid = obj["metadata"]["uid"].clone();
            let sel = selector_text(&obj["spec"]["selector"]);
            let pods: Vec<Value> = list(
                session,
                &format!("/api/v1/namespaces/{}/pods", session.namespace),
                &[("labelSelector", sel)],
            )
            .await
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid && o["controller"] == true))
            })
            .collect();
            describe_daemon_set(&obj, &pods)
        }
        ("", "Service") => {
            let ep = rest::get_opt(
                &session.client,
                &format!("/api/v1/namespaces/{}/endpoints/{name}", session.namespace),
            )
            .await
            .ok()
            .flatten();
            describe_service(&obj, ep.as_ref())
        }
        ("", "Node") => {
            let pods = list(
                session,
                "/api/v1/pods",
                &[("fieldSelector", format!("spec.nodeName={name}"))],
            )
            .await;
            describe_node(&obj, &pods)
        }
        _ => describe_generic(&obj, info.namespaced),
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let ev_path = match ns {
        Some(ns) => format!("/api/v1/namespaces/{ns}/events"),
        None => "/api/v1/events".into(),
    };
    let events = list(
        session,
        &ev_path,
        &[("fieldSelector", format!("involvedObject.uid={uid}"))],
    )
    .await;
    text.push_str(&events_section(&events, rest::now_secs()));
    Ok(text)
}

#[cfg(test)]
mod tests;
