//! Deployments and DaemonSets.

use serde_json::Value;

use super::out::{conditions, metadata, s, selector_text, Out};
use super::pod::containers;

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
    let rev = d["metadata"]["annotations"][crate::kubectl::rollout::REVISION_ANNOTATION].as_str();
    let (new, old): (Vec<&Value>, Vec<&Value>) = owned_rs.iter().partition(|r| {
        r["metadata"]["annotations"][crate::kubectl::rollout::REVISION_ANNOTATION].as_str() == rev
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
