//! DaemonSet controller: one pod from the template on every node the template fits (node selector, required
//! node affinity, taints), rolled to a new template node by node within maxUnavailable, or with maxSurge a
//! new pod beside the old one first. Pure [`reconcile`] plus the runner's pass over the caches.
//!
//! Pods are created with `spec.nodeName` set, as DaemonSets did before Kubernetes 1.12: the node is the
//! controller's decision, so the pod does not wait for the scheduler (whose view still counts it). They get
//! the tolerations Kubernetes gives daemon pods, so a cordoned, not-ready or unreachable node keeps its pod.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::DaemonSetUpdateStrategy;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{delete_pod, Action, Actions};
use super::context::Ctx;
use super::deployment::{int_or_string_percent, pod_template_hash};
use super::events::{EventRecord, EventType};
use super::object::{self, *};
use super::replicaset::{self, reconcile_owners};
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::scheduler::{self, Node};
use crate::store;

/// Label that ties a daemon pod to the template it was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Tolerations every daemon pod gets (Kubernetes' `AddOrUpdateDaemonPodTolerations`). Without seconds, so
/// node lifecycle never evicts a daemon pod from a node that went away for a while.
fn daemon_tolerations() -> Vec<Value> {
    let no_execute = ["not-ready", "unreachable"];
    let no_schedule = [
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
    ];
    no_execute
        .iter()
        .map(|k| (k, "NoExecute"))
        .chain(no_schedule.iter().map(|k| (k, "NoSchedule")))
        .map(|(k, effect)| {
            json!({"key": format!("node.kubernetes.io/{k}"), "operator": "Exists", "effect": effect})
        })
        .collect()
}

/// The parts of a DaemonSet's spec the controller decides on, read once per reconcile; the DaemonSet stays
/// JSON (its template is copied into pods with every field it came with). Not k8s-openapi's `DaemonSetSpec`
/// whole: its required template and selector would be parsed on every pass, and strictly (a JSON number
/// where it expects a Quantity string fails it). The update strategy is its own type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DaemonSetSpecView {
    /// i64 so that a negative value reads as 0, as the old unsigned read did.
    min_ready_seconds: Option<i64>,
    update_strategy: Option<DaemonSetUpdateStrategy>,
}

impl DaemonSetSpecView {
    /// Reads `ds.spec`; a missing spec reads as all defaults.
    ///
    /// # Errors
    /// When a field it decides on has the wrong JSON type (a float `minReadySeconds`, a `maxSurge` that is
    /// neither a string nor an i32). The old reads took such a field as unset; the caller now skips the
    /// DaemonSet instead.
    fn of(ds: &Value) -> Result<Self, serde_json::Error> {
        spec_view(ds)
    }
}

/// The template's pod spec with the daemon tolerations added (those the template already has are kept).
fn daemon_pod_spec(ds: &Value) -> Value {
    let mut spec = ds
        .pointer("/spec/template/spec")
        .cloned()
        .unwrap_or(json!({}));
    if !spec.is_object() {
        spec = json!({});
    }
    let mut tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in daemon_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    spec["tolerations"] = json!(tolerations);
    spec
}

/// A new daemon pod for `node`: the template's pod, pinned, labelled with the template hash, tolerant.
pub fn new_pod(
    ds: &Value,
    node: &str,
    hash: &str,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Value {
    let mut pod = replicaset::new_pod(ds, now, rng);
    let labels = ensure_object(&mut pod["metadata"], "labels");
    labels.insert(HASH_LABEL.into(), json!(hash));
    let mut spec = daemon_pod_spec(ds);
    spec["nodeName"] = json!(node);
    pod["spec"] = spec;
    pod
}

/// The daemon pods on one node that should run it, and what the rollout makes of them.
struct OnNode<'a> {
    name: &'a str,
    /// Active pods, oldest first.
    pods: Vec<&'a Cached>,
}

impl OnNode<'_> {
    fn updated<'p>(&'p self, hash: &'p str) -> impl Iterator<Item = &'p Cached> + 'p {
        self.pods
            .iter()
            .copied()
            .filter(move |p| labels(&p.value).get(HASH_LABEL).map(String::as_str) == Some(hash))
    }

    fn old<'p>(&'p self, hash: &'p str) -> impl Iterator<Item = &'p Cached> + 'p {
        self.pods
            .iter()
            .copied()
            .filter(move |p| labels(&p.value).get(HASH_LABEL).map(String::as_str) != Some(hash))
    }

    fn available(&self, min_ready: Duration, now: SystemTime) -> bool {
        self.pods
            .iter()
            .any(|p| pod_available(&p.value, min_ready, now))
    }
}

/// Reconciles one DaemonSet (`ds`, stored at `ds_key`) against the nodes and the pods it controls.
pub fn reconcile(
    ds_key: &str,
    ds: &Value,
    nodes: &[Node],
    pods: &[Cached],
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Actions {
    let mut out = Actions::default();
    if deleting(ds) {
        return out;
    }
    let spec = match DaemonSetSpecView::of(ds) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(daemonset = %ds_key, error = %e, "skipping daemonset whose spec does not parse");
            return out;
        }
    };
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = pod_template_hash(&template, None);
    let min_ready = Duration::from_secs(
        spec.min_ready_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let probe = scheduler::Pod::from_json(&json!({"spec": daemon_pod_spec(ds)}));
    let eligible: BTreeMap<&str, &Node> = nodes
        .iter()
        .filter(|n| n.untolerated(&probe).is_none() && n.selected_by(&probe))
        .map(|n| (n.name.as_str(), n))
        .collect();
    let known: std::collections::HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();

    let mut by_node: BTreeMap<&str, Vec<&Cached>> = BTreeMap::new();
    let mut terminating: std::collections::HashSet<&str> = Default::default();
    let mut misscheduled = 0;
    for p in pods {
        if pod_terminal(&p.value) {
            // A failed daemon pod is replaced by a new one on the same node, as Kubernetes does.
            out.push(Action::Delete {
                key: p.key.clone(),
                revision: Some(p.revision),
            });
            continue;
        }
        if deleting(&p.value) {
            terminating.extend(pod_node(&p.value));
            continue;
        }
        match pod_node(&p.value) {
            Some(n) if eligible.contains_key(n) => by_node.entry(n).or_default().push(p),
            Some(n) if known.contains(n) => {
                misscheduled += 1;
                out.push(delete_pod(&p.key, &p.value, p.revision, now));
            }
            // No node, or one that is gone: nobody would finish a graceful deletion.
            _ => out.push(Action::Delete {
                key: p.key.clone(),
                revision: Some(p.revision),
            }),
        }
    }
    let nodes_state: Vec<OnNode> = eligible
        .keys()
        .map(|n| {
            let mut pods = by_node.remove(n).unwrap_or_default();
            pods.sort_by_key(|p| {
                (
                    meta_str(&p.value, "creationTimestamp").to_string(),
                    p.key.clone(),
                )
            });
            OnNode { name: n, pods }
        })
        .collect();

    let desired = nodes_state.len() as i64;
    let strategy = spec.update_strategy.unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("OnDelete");
    let ru = strategy.rolling_update.unwrap_or_default();
    let surge = int_or_string_percent(ru.max_surge.as_ref(), "0", desired, true).max(0);
    let mut max_unavailable =
        int_or_string_percent(ru.max_unavailable.as_ref(), "1", desired, false).max(0);
    if surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    let unavailable_now = nodes_state
        .iter()
        .filter(|n| !n.available(min_ready, now))
        .count() as i64;
    let mut unavailable_budget = max_unavailable - unavailable_now;
    let mut surge_budget = surge
        - nodes_state
            .iter()
            .filter(|n| n.updated(&hash).next().is_some() && n.old(&hash).next().is_some())
            .count() as i64;

    let ns = namespace(ds);
    let create = |node: &str, out: &mut Actions, rng: &mut dyn RngCore| {
        let pod = new_pod(ds, node, &hash, now, rng);
        let pname = object::name(&pod).to_string();
        out.push(Action::Create {
            key: store::key("core", "pods", ns, &pname),
            object: pod,
        });
        out.push(Action::Event(EventRecord::about(
            ds,
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {pname}"),
        )));
    };
    let delete = |p: &Cached, out: &mut Actions| {
        out.push(delete_pod(&p.key, &p.value, p.revision, now));
        out.push(Action::Event(EventRecord::about(
            ds,
            EventType::Normal,
            "SuccessfulDelete",
            format!("Deleted pod: {}", object::name(&p.value)),
        )));
    };
    for n in &nodes_state {
        if n.pods.is_empty() {
            // Without surge the replacement waits for the old pod to be gone: both would want the same
            // host ports and node-local state. Its deletion triggers the next pass.
            if surge == 0 && terminating.contains(n.name) {
                continue;
            }
            create(n.name, &mut out, rng);
            continue;
        }
        let updated: Vec<&Cached> = n.updated(&hash).collect();
        let old: Vec<&Cached> = n.old(&hash).collect();
        // More than one pod of a kind on a node: keep one (the first available, else the oldest).
        let (keep_new, keep_old) = (
            keep_index(&updated, min_ready, now),
            keep_index(&old, min_ready, now),
        );
        for (group, keep) in [(&updated, keep_new), (&old, keep_old)] {
            for (i, p) in group.iter().enumerate() {
                if i != keep {
                    delete(p, &mut out);
                }
            }
        }
        let (Some(old), true) = (old.get(keep_old), rolling) else {
            continue;
        };
        let old_available = pod_available(&old.value, min_ready, now);
        match updated.get(keep_new) {
            // Surge in progress: the old pod goes once the new one is available.
            Some(new) => {
                if pod_available(&new.value, min_ready, now) {
                    delete(old, &mut out);
                }
            }
            // An old pod that is not available costs nothing to replace.
            None if !old_available => delete(old, &mut out),
            None if surge > 0 => {
                if surge_budget > 0 {
                    surge_budget -= 1;
                    create(n.name, &mut out, rng);
                }
            }
            None => {
                if unavailable_budget > 0 {
                    unavailable_budget -= 1;
                    delete(old, &mut out);
                }
            }
        }
    }

    let count = |f: &dyn Fn(&OnNode) -> bool| nodes_state.iter().filter(|n| f(n)).count() as i64;
    let current = count(&|n| !n.pods.is_empty());
    let ready = count(&|n| n.pods.iter().any(|p| pod_ready(&p.value)));
    let available = count(&|n| n.available(min_ready, now));
    let updated = count(&|n| n.updated(&hash).next().is_some());
    if available < ready {
        out.requeue(min_ready.max(Duration::from_secs(1)));
    }
    let mut status = status_of(ds);
    status["desiredNumberScheduled"] = json!(desired);
    status["currentNumberScheduled"] = json!(current);
    status["numberMisscheduled"] = json!(misscheduled);
    status["numberReady"] = json!(ready);
    status["updatedNumberScheduled"] = json!(updated);
    status["numberAvailable"] = json!(available);
    status["numberUnavailable"] = json!(desired - available);
    status["observedGeneration"] = json!(generation(ds));
    omit_zero_counts(
        &mut status,
        &[
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
        ],
    );
    out.push(status_update(ds_key, ds, status));
    out
}

/// Index of the pod kept among duplicates: the first available one, else the oldest.
fn keep_index(group: &[&Cached], min_ready: Duration, now: SystemTime) -> usize {
    group
        .iter()
        .position(|p| pod_available(&p.value, min_ready, now))
        .unwrap_or(0)
}

/// The runner's view of the DaemonSet controller.
pub struct DaemonSetController;

impl Controller for DaemonSetController {
    const COMPONENT: &'static str = "daemonset-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![
            caches.daemonsets.clone(),
            caches.pods.clone(),
            caches.nodes.clone(),
        ]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        let nodes: Vec<Node> = ctx
            .caches
            .nodes
            .list()
            .iter()
            .filter(|n| !deleting(&n.value) && !malformed_status(&n.value))
            .filter_map(|n| Node::from_json(&n.value))
            .collect();
        reconcile_owners(ctx, "DaemonSet", &ctx.caches.daemonsets, |ds, pods, rng| {
            reconcile(&ds.key, &ds.value, &nodes, pods, now, rng)
        })
    }
}

#[cfg(test)]
mod tests;
