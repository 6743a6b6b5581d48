//! Pods: containers, volumes and the pod itself.

use serde_json::Value;

use super::out::{conditions, s, selector_text, timestamp, Out};

pub(super) fn containers(o: &mut Out, indent: usize, spec: &Value, statuses: Option<&Value>) {
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

pub(super) fn volumes(o: &mut Out, spec: &Value) {
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
