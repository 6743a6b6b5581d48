//! NodeLifecycle controller: a node whose Ready heartbeat is older than the grace period becomes
//! `Ready=Unknown` and gets the `node.kubernetes.io/unreachable:NoExecute` taint; once the taint is older
//! than the eviction timeout (or a pod's own `tolerationSeconds` for it) its pods are deleted at once so their
//! ReplicaSets replace them elsewhere.

use apimachinery::time::{parse_rfc3339, rfc3339};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::action::{Action, Actions};
use super::context::Ctx;
use super::events::{EventRecord, EventType};
use super::object::*;
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::scheduler::{Taint, TaintEffect, Toleration};

/// Taint of a node whose agent stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node whose agent reports `Ready=False`.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// Timing of the controller.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Heartbeats older than this make the node `Unknown`.
    pub grace: Duration,
    /// Pods go this long after the node was tainted.
    pub eviction: Duration,
    /// When this controller started: a heartbeat is never judged older than this (a new leader gives
    /// every node a full grace period instead of trusting timestamps it did not observe).
    pub started: SystemTime,
}

fn ready_status(node: &Value) -> &str {
    condition(node, "Ready")
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
}

/// Reconciles one node and the pods bound to it.
pub fn reconcile(key: &str, node: &Value, pods: &[Cached], now: SystemTime, t: Timing) -> Actions {
    let mut out = Actions::default();
    let now_s = rfc3339(now);
    let mut n = node.clone();
    let heartbeat = condition(node, "Ready")
        .and_then(|c| c.get("lastHeartbeatTime"))
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .or_else(|| parse_rfc3339(meta_str(node, "creationTimestamp")))
        .unwrap_or(t.started)
        .max(t.started);
    let deadline = heartbeat + t.grace;
    if now >= deadline {
        if ready_status(node) != "Unknown" {
            let status = ensure_object(&mut n, "status");
            let hb = condition(node, "Ready")
                .and_then(|c| c.get("lastHeartbeatTime"))
                .cloned();
            set_condition(
                status,
                "Ready",
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                &now_s,
                false,
            );
            if let Some(hb) = hb {
                if let Some(c) = status
                    .get_mut("conditions")
                    .and_then(Value::as_array_mut)
                    .and_then(|a| a.iter_mut().find(|c| c["type"] == "Ready"))
                {
                    c["lastHeartbeatTime"] = hb;
                }
            }
            out.push(Action::Event(EventRecord::about(
                node,
                EventType::Normal,
                "NodeNotReady",
                format!("Node {} status is now: NodeNotReady", name(node)),
            )));
        }
    } else {
        out.requeue(deadline.duration_since(now).unwrap_or_default() + Duration::from_millis(100));
    }
    // Taints follow the Ready condition as it stands after the update above.
    let wanted = match ready_status(&n) {
        "True" => None,
        "False" => Some(NOT_READY),
        _ => Some(UNREACHABLE),
    };
    let taints: Vec<Value> = n
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_ours = |t: &Value| {
        let k = t.get("key").and_then(Value::as_str).unwrap_or("");
        (k == UNREACHABLE || k == NOT_READY)
            && t.get("effect").and_then(Value::as_str) == Some("NoExecute")
    };
    let mut new_taints: Vec<Value> = taints
        .iter()
        .filter(|t| !is_ours(t) || t.get("key").and_then(Value::as_str) == wanted)
        .cloned()
        .collect();
    if let Some(w) = wanted {
        if !new_taints.iter().any(is_ours) {
            new_taints.push(json!({"key": w, "effect": "NoExecute", "timeAdded": now_s}));
        }
    }
    if new_taints != taints {
        let spec = ensure_object(&mut n, "spec");
        if new_taints.is_empty() {
            spec.remove("taints");
        } else {
            spec.insert("taints".into(), json!(new_taints));
        }
    }
    if n != *node {
        out.push(Action::Update {
            key: key.to_string(),
            object: n.clone(),
            revision: revision(node),
        });
    }
    // Eviction, once the NoExecute taint is old enough.
    if let Some(taint) = new_taints.iter().find(|t| is_ours(t)) {
        let added = taint
            .get("timeAdded")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(now);
        let taint = Taint {
            key: taint["key"].as_str().unwrap_or_default().to_string(),
            value: String::new(),
            effect: TaintEffect::NoExecute,
        };
        let mut next: Option<SystemTime> = None;
        for p in pods {
            // As Kubernetes' taint manager: the shortest tolerationSeconds among the matching tolerations, or
            // for good when none has one. Pods with no matching toleration get the cluster's eviction timeout,
            // which stands in for the default tolerations Kubernetes' admission adds.
            let tolerations: Vec<&Value> = p
                .value
                .pointer("/spec/tolerations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|tol| Toleration::from_json(tol).tolerates(&taint))
                .collect();
            let stay = if tolerations.is_empty() {
                Some(t.eviction)
            } else {
                tolerations
                    .iter()
                    .filter_map(|tol| tol["tolerationSeconds"].as_i64())
                    .min()
                    .map(|s| Duration::from_secs(s.max(0) as u64))
            };
            let Some(stay) = stay else { continue };
            // A toleration past the end of time tolerates for ever (checked: it must not panic the
            // leader's controllers, #13).
            let Some(evict_at) = added.checked_add(stay) else {
                continue;
            };
            if now < evict_at {
                next = Some(next.map_or(evict_at, |n| n.min(evict_at)));
                continue;
            }
            out.push(Action::Delete {
                key: p.key.clone(),
                revision: None,
            });
            out.push(Action::Event(EventRecord::about(
                &p.value,
                EventType::Normal,
                "TaintManagerEviction",
                format!(
                    "Marking for deletion Pod {}/{}",
                    namespace(&p.value),
                    name(&p.value)
                ),
            )));
        }
        if let Some(at) = next {
            out.requeue(at.duration_since(now).unwrap_or_default() + Duration::from_millis(100));
        }
    }
    out
}

/// The runner's view of the NodeLifecycle controller.
#[derive(Default)]
pub struct NodeLifecycleController;

impl Controller for NodeLifecycleController {
    const COMPONENT: &'static str = "node-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![caches.nodes.clone()]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        let timing = Timing {
            grace: ctx.config.node_monitor_grace_period,
            eviction: ctx.config.pod_eviction_timeout,
            started: ctx.started,
        };
        let mut by_node: HashMap<String, Vec<Cached>> = HashMap::new();
        for p in ctx.caches.pods.list() {
            if let Some(n) = pod_node(&p.value) {
                by_node.entry(n.to_string()).or_default().push(p.clone());
            }
        }
        let nodes = ctx.caches.nodes.list();
        let names: HashSet<&str> = nodes.iter().map(|n| name(&n.value)).collect();
        let mut out: Vec<Actions> = nodes
            .iter()
            .filter(|n| {
                let bad = malformed_status(&n.value);
                if bad {
                    tracing::warn!(node = %name(&n.value), "skipping node whose status is not an object");
                }
                !bad
            })
            .map(|n| {
                let pods = by_node
                    .get(name(&n.value))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                ctx.reconcile_isolated("Node", &n.key, |_| {
                    reconcile(&n.key, &n.value, pods, now, timing)
                })
            })
            .filter(|a| !a.is_empty() || a.requeue_after.is_some())
            .collect();
        // Pods bound to a node that no longer exists are gone with it (Kubernetes' pod GC).
        let mut orphans = Actions::default();
        for (node, pods) in &by_node {
            if names.contains(node.as_str()) {
                continue;
            }
            for p in pods {
                let created = parse_rfc3339(meta_str(&p.value, "creationTimestamp")).unwrap_or(now);
                if created + timing.grace <= now && ctx.started + timing.grace <= now {
                    orphans.push(Action::Delete {
                        key: p.key.clone(),
                        revision: None,
                    });
                } else {
                    orphans.requeue(timing.grace);
                }
            }
        }
        if !orphans.is_empty() || orphans.requeue_after.is_some() {
            out.push(orphans);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn node(heartbeat: u64, status: &str, taints: Value) -> Value {
        json!({
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": "n1", "uid": "nu", "resourceVersion": "9", "creationTimestamp": rfc3339(at(0))},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": rfc3339(at(heartbeat))}]},
        })
    }

    fn pods() -> Vec<Cached> {
        vec![Cached {
            key: "/core/pods/default/p".into(),
            value: Arc::new(
                json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}}),
            ),
            revision: 3,
        }]
    }

    fn timing() -> Timing {
        Timing {
            grace: Duration::from_secs(10),
            eviction: Duration::from_secs(5),
            started: at(0),
        }
    }

    fn updated(a: &Actions) -> Option<&Value> {
        a.actions.iter().find_map(|x| match x {
            Action::Update { object, .. } => Some(object),
            _ => None,
        })
    }

    fn deleted(a: &Actions) -> usize {
        a.actions
            .iter()
            .filter(|x| matches!(x, Action::Delete { .. }))
            .count()
    }

    #[test]
    fn table() {
        let unreachable =
            json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(at(20))}]);
        // (name, node, now, want Ready status after, want taint key, pods deleted)
        type Case<'a> = (&'a str, Value, u64, &'a str, Option<&'a str>, usize);
        let cases: Vec<Case> = vec![
            (
                "fresh heartbeat",
                node(15, "True", json!([])),
                20,
                "True",
                None,
                0,
            ),
            (
                "stale heartbeat",
                node(5, "True", json!([])),
                20,
                "Unknown",
                Some(UNREACHABLE),
                0,
            ),
            (
                "not yet evicting",
                node(5, "Unknown", unreachable.clone()),
                24,
                "Unknown",
                Some(UNREACHABLE),
                0,
            ),
            (
                "evicts after timeout",
                node(5, "Unknown", unreachable.clone()),
                25,
                "Unknown",
                Some(UNREACHABLE),
                1,
            ),
            (
                "agent says not ready",
                node(19, "False", json!([])),
                20,
                "False",
                Some(NOT_READY),
                0,
            ),
            (
                "recovered node loses the taint",
                node(30, "True", unreachable.clone()),
                31,
                "True",
                None,
                0,
            ),
        ];
        for (name, n, now, want_status, want_taint, want_deleted) in cases {
            let a = reconcile("/core/nodes//n1", &n, &pods(), at(now), timing());
            let after = updated(&a).cloned().unwrap_or(n.clone());
            assert_eq!(ready_status(&after), want_status, "{name}");
            let taint = after.pointer("/spec/taints/0/key").and_then(Value::as_str);
            assert_eq!(taint, want_taint, "{name}");
            assert_eq!(deleted(&a), want_deleted, "{name}");
        }
    }

    #[test]
    fn new_leader_gives_a_full_grace_period() {
        let t = Timing {
            started: at(100),
            ..timing()
        };
        let a = reconcile(
            "/core/nodes//n1",
            &node(5, "True", json!([])),
            &pods(),
            at(105),
            t,
        );
        assert!(a.is_empty());
        assert_eq!(a.requeue_after, Some(Duration::from_millis(5100)));
    }

    #[test]
    fn tolerating_pods_stay() {
        let n = node(
            5,
            "Unknown",
            json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(at(20))}]),
        );
        let mut p = pods();
        Arc::make_mut(&mut p[0].value)["spec"]["tolerations"] =
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
        let a = reconcile("/core/nodes//n1", &n, &p, at(30), timing());
        assert_eq!(deleted(&a), 0);
    }

    #[test]
    fn toleration_seconds_set_each_pods_own_eviction_time() {
        // Taint added at 20 s; the cluster timeout is 5 s. Pod 0 tolerates 30 s (the shortest of its two
        // matching tolerations), pod 1 has none and goes at 25 s.
        let n = node(
            5,
            "Unknown",
            json!([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(at(20))}]),
        );
        let mut p = pods();
        p.push(Cached {
            key: "/core/pods/default/q".into(),
            value: Arc::new(
                json!({"metadata": {"name": "q", "namespace": "default"}, "spec": {"nodeName": "n1"}}),
            ),
            revision: 4,
        });
        Arc::make_mut(&mut p[0].value)["spec"]["tolerations"] = json!([
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
            {"operator": "Exists", "tolerationSeconds": 30},
            {"key": "other", "operator": "Exists", "effect": "NoExecute"},
        ]);
        let a = reconcile("/core/nodes//n1", &n, &p, at(26), timing());
        assert_eq!(deleted(&a), 1, "the pod without a toleration");
        assert_eq!(a.requeue_after, Some(Duration::from_millis(24_100)));
        let a = reconcile("/core/nodes//n1", &n, &p, at(50), timing());
        assert_eq!(deleted(&a), 2, "the tolerating pod's 30 s are up too");
        assert_eq!(a.requeue_after, None);
        // tolerationSeconds of i64::MAX: the pod stays, nothing overflows.
        Arc::make_mut(&mut p[0].value)["spec"]["tolerations"] =
            json!([{"operator": "Exists", "tolerationSeconds": i64::MAX}]);
        let a = reconcile("/core/nodes//n1", &n, &p, at(50), timing());
        assert_eq!(deleted(&a), 1, "only the pod without a toleration");
    }
}
