//! Nodes with the pods bound to them.

use serde_json::Value;

use super::out::{conditions, s, timestamp, Out};
use crate::rest;
use crate::table::age;

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
