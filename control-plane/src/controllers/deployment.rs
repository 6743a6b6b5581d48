//! Deployment controller: one ReplicaSet per pod template (`{deploy}-{pod-template-hash}`), rolled out by
//! RollingUpdate (maxSurge/maxUnavailable) or Recreate, with revision annotations, history cleanup and the
//! status `kubectl rollout status` reads. Pure [`reconcile`] plus the runner's pass.

use apimachinery::time::{parse_rfc3339, rfc3339};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::DeploymentStrategy;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::action::{Action, Actions};
use super::context::Ctx;
use super::events::{EventRecord, EventType};
use super::object::*;
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::store;

mod scale;

use scale::{proportional_scale, rolling_update, rs_revision, scale, spec_replicas, status_i, Rs};
pub use scale::{DESIRED_REPLICAS, MAX_REPLICAS, REVISION};

/// Label that ties a ReplicaSet and its pods to one pod template.
pub const HASH_LABEL: &str = "pod-template-hash";

/// The pod-template-hash: FNV-32a over the template's canonical JSON (plus the collision count), its
/// decimal form mapped through Kubernetes' safe alphabet (`rand.SafeEncodeString`).
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut text = String::new();
    canonical(template, &mut text);
    let mut bytes = text.into_bytes();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    let h = apimachinery::hash::fnv1a_32(&bytes);
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// JSON with object keys sorted at every level, so the hash does not depend on field order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Resolves an int-or-percent against `total`: percents round up for surge, down for unavailable.
pub(crate) fn int_or_percent(v: Option<&Value>, default: &str, total: i64, round_up: bool) -> i64 {
    let v = v.cloned().unwrap_or_else(|| json!(default));
    match &v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%') {
            Some(p) => {
                let p: i64 = p.trim().parse().unwrap_or(0);
                let x = total * p;
                if round_up {
                    (x + 99) / 100
                } else {
                    x / 100
                }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// The parts of a Deployment's spec the controller decides on, read once per reconcile; the Deployment
/// stays JSON (template and selector are copied into ReplicaSets with every field they came with). Not
/// k8s-openapi's `DeploymentSpec` whole: its required pod template would be parsed on every pass, and
/// strictly (a JSON number where it expects a Quantity string fails it). The strategy is its own type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DeploymentSpecView {
    paused: Option<bool>,
    /// i64 so that a negative value falls back to the default, as the old unsigned read did.
    progress_deadline_seconds: Option<i64>,
    revision_history_limit: Option<i64>,
    strategy: Option<DeploymentStrategy>,
}

impl DeploymentSpecView {
    /// Reads `d.spec`; a missing spec reads as all defaults.
    ///
    /// # Errors
    /// When a field it decides on has the wrong JSON type (`"paused": "yes"`, a float, a `maxSurge` that is
    /// neither a string nor an i32). The old reads took such a field as unset; the caller now skips the
    /// Deployment instead.
    fn of(d: &Value) -> Result<Self, serde_json::Error> {
        spec_view(d)
    }

    fn recreate(&self) -> bool {
        self.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
    }

    fn progress_deadline(&self) -> Duration {
        Duration::from_secs(
            self.progress_deadline_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(600),
        )
    }

    /// (maxSurge, maxUnavailable) for `replicas`, as Kubernetes' `ResolveFenceposts`: both zero means one
    /// may be unavailable, so a rollout can always progress.
    fn fenceposts(&self, replicas: i64) -> (i64, i64) {
        let ru = self
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref());
        let surge = ru.and_then(|r| r.max_surge.as_ref());
        let unavailable = ru.and_then(|r| r.max_unavailable.as_ref());
        let surge = int_or_string_percent(surge, "25%", replicas, true).max(0);
        let unavailable = int_or_string_percent(unavailable, "25%", replicas, false).max(0);
        if surge == 0 && unavailable == 0 {
            return (0, 1);
        }
        (surge, unavailable)
    }
}

/// [`int_or_percent`] over a typed strategy field, which the DaemonSet controller shares.
pub(crate) fn int_or_string_percent(
    v: Option<&IntOrString>,
    default: &str,
    total: i64,
    round_up: bool,
) -> i64 {
    let v = v.map(|v| match v {
        IntOrString::Int(i) => json!(i),
        IntOrString::String(s) => json!(s),
    });
    int_or_percent(v.as_ref(), default, total, round_up)
}

/// (maxSurge, maxUnavailable) for `replicas`, as Kubernetes' `ResolveFenceposts`: both zero means one
/// may be unavailable, so a rollout can always progress. A spec that does not parse gets the defaults.
pub fn resolve_fenceposts(d: &Value, replicas: i64) -> (i64, i64) {
    DeploymentSpecView::of(d)
        .unwrap_or_default()
        .fenceposts(replicas)
}

fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove(HASH_LABEL);
    }
    t
}

/// The reason of a rollout that made no progress for `progressDeadlineSeconds`.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

fn touch_condition(status: &mut Map<String, Value>, ty: &str, now: &str) {
    if let Some(c) = status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .and_then(|cs| cs.iter_mut().find(|c| c["type"] == ty))
    {
        c["lastUpdateTime"] = json!(now);
    }
}

/// Reconciles one Deployment against the ReplicaSets it controls. `live_pods` counts, per ReplicaSet uid,
/// its pods that are not terminal (terminating ones included): Recreate waits for them to be gone.
pub fn reconcile(
    key: &str,
    d: &Value,
    replica_sets: &[Cached],
    live_pods: &HashMap<String, usize>,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Actions {
    let mut out = Actions::default();
    if deleting(d) {
        return out;
    }
    let spec = match DeploymentSpecView::of(d) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(deployment = %key, error = %e, "skipping deployment whose spec does not parse");
            return out;
        }
    };
    let replicas = spec_replicas(d).max(0);
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let collision = d.pointer("/status/collisionCount").and_then(Value::as_i64);
    let paused = spec.paused.unwrap_or(false);
    let recreate = spec.recreate();
    let (surge, unavailable) = if recreate {
        (0, 0)
    } else {
        spec.fenceposts(replicas)
    };
    let mut rss: Vec<Rs> = replica_sets
        .iter()
        .filter(|c| !deleting(&c.value))
        .map(|c| Rs {
            key: c.key.clone(),
            value: (*c.value).clone(),
            original: c.value.clone(),
            revision: c.revision,
            created: false,
        })
        .collect();
    rss.sort_by(|a, b| {
        (meta_str(&a.value, "creationTimestamp"), name(&a.value))
            .cmp(&(meta_str(&b.value, "creationTimestamp"), name(&b.value)))
    });
    let mut new_idx = rss.iter().position(|rs| {
        rs.value
            .pointer("/spec/template")
            .is_some_and(|t| without_hash(t) == template)
    });
    let max_old_revision = rss
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| rs_revision(&rs.value))
        .max()
        .unwrap_or(0);
    let mut d_new = d.clone();
    let mut created_name = None;

    let old_active = |rss: &[Rs], new_idx: Option<usize>| {
        rss.iter()
            .enumerate()
            .any(|(i, rs)| Some(i) != new_idx && rs.spec() > 0)
    };
    let old_pods_live = |rss: &[Rs], new_idx: Option<usize>| {
        rss.iter().enumerate().any(|(i, rs)| {
            Some(i) != new_idx && live_pods.get(uid(&rs.value)).copied().unwrap_or(0) > 0
        })
    };

    // The new ReplicaSet: create it, or make its revision the newest (rollout undo re-uses an old one).
    if !paused {
        match new_idx {
            None => {
                let hash = pod_template_hash(&template, collision);
                let rs_name = format!("{}-{hash}", name(d));
                if rss.iter().any(|rs| name(&rs.value) == rs_name) {
                    // Same name, other template: a hash collision. Kubernetes bumps collisionCount.
                    let status = ensure_object(&mut d_new, "status");
                    status.insert("collisionCount".into(), json!(collision.unwrap_or(0) + 1));
                } else if !(recreate && (old_active(&rss, None) || old_pods_live(&rss, None))) {
                    let initial = if recreate {
                        replicas
                    } else {
                        let current: i64 = rss.iter().map(Rs::spec).sum();
                        (replicas + surge - current).clamp(0, replicas)
                    };
                    let rs = new_replica_set(
                        d,
                        &template,
                        &hash,
                        max_old_revision + 1,
                        initial,
                        surge,
                        now,
                        rng,
                    );
                    out.push(Action::Event(EventRecord::about(
                        d,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {rs_name} to {initial}"),
                    )));
                    created_name = Some(rs_name.clone());
                    rss.push(Rs {
                        key: store::key("apps", "replicasets", namespace(d), &rs_name),
                        original: Arc::new(Value::Null),
                        value: rs,
                        revision: 0,
                        created: true,
                    });
                    new_idx = Some(rss.len() - 1);
                }
            }
            Some(i) => {
                if rs_revision(&rss[i].value) <= max_old_revision {
                    set_annotation(
                        &mut rss[i].value,
                        REVISION,
                        &(max_old_revision + 1).to_string(),
                    );
                }
            }
        }
    }

    if paused {
        // A paused Deployment only follows scaling of a settled ReplicaSet; no rollout progresses.
        if let Some(i) = new_idx {
            if !old_active(&rss, new_idx) {
                scale(&mut rss[i], replicas, d, replicas, surge, &mut out);
            }
        }
    } else if recreate {
        let olds: Vec<usize> = (0..rss.len()).filter(|i| Some(*i) != new_idx).collect();
        if old_active(&rss, new_idx) {
            for i in olds {
                scale(&mut rss[i], 0, d, replicas, surge, &mut out);
            }
        } else if !old_pods_live(&rss, new_idx) {
            if let Some(i) = new_idx.filter(|_| created_name.is_none()) {
                scale(&mut rss[i], replicas, d, replicas, surge, &mut out);
            }
        }
    } else if let Some(n) = new_idx.filter(|_| created_name.is_none()) {
        if !proportional_scale(&mut rss, d, replicas, surge, &mut out) {
            rolling_update(&mut rss, n, d, replicas, surge, unavailable, &mut out);
        }
    }

    // Status, conditions and the Deployment's revision annotation.
    let new_rs = new_idx.map(|i| &rss[i]);
    let sum = |f: &dyn Fn(&Rs) -> i64| rss.iter().map(f).sum::<i64>();
    let total_spec = sum(&|r| r.spec());
    let available = sum(&|r| status_i(&r.value, "availableReplicas"));
    let status_replicas = sum(&|r| status_i(&r.value, "replicas"));
    let updated = new_rs.map_or(0, |r| status_i(&r.value, "replicas"));
    if let Some(r) = new_rs {
        if let Some(rev) = annotation(&r.value, REVISION).map(str::to_string) {
            set_annotation(&mut d_new, REVISION, &rev);
        }
    }
    let now_s = rfc3339(now);
    let status = ensure_object(&mut d_new, "status");
    status.insert("observedGeneration".into(), json!(generation(d)));
    status.insert("replicas".into(), json!(status_replicas));
    status.insert("updatedReplicas".into(), json!(updated));
    let ready = sum(&|r| status_i(&r.value, "readyReplicas"));
    status.insert("readyReplicas".into(), json!(ready));
    status.insert("availableReplicas".into(), json!(available));
    status.insert(
        "unavailableReplicas".into(),
        json!((total_spec - available).max(0)),
    );
    let min_available = replicas - if recreate { 0 } else { unavailable };
    if available >= min_available {
        set_condition(
            status,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &now_s,
            true,
        );
    } else {
        set_condition(
            status,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &now_s,
            true,
        );
    }
    let new_name = new_rs
        .map(|r| name(&r.value).to_string())
        .unwrap_or_default();
    let complete = new_rs.is_some()
        && updated == replicas
        && status_replicas == replicas
        && available >= replicas
        && new_rs.is_some_and(|r| r.spec() == replicas);
    if paused {
        set_condition(
            status,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &now_s,
            true,
        );
    } else if complete {
        set_condition(
            status,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            &now_s,
            true,
        );
    } else if let Some(c) = &created_name {
        set_condition(
            status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{c}\""),
            &now_s,
            true,
        );
    } else if new_rs.is_some() {
        // progressDeadlineSeconds: the rollout fails (Progressing=False, ProgressDeadlineExceeded) once no
        // step has been made for that long; any later step makes it progress again. A step is what
        // Kubernetes counts: a ReplicaSet scaled, or more updated, ready or available replicas, or fewer old.
        let before = |f: &str| {
            d.pointer(&format!("/status/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let progressed = rss.iter().any(Rs::changed)
            || updated > before("updatedReplicas")
            || ready > before("readyReplicas")
            || available > before("availableReplicas")
            || status_replicas - updated < before("replicas") - before("updatedReplicas");
        let last = condition(d, "Progressing");
        let deadline = spec.progress_deadline();
        let idle = last
            .and_then(|c| c.get("lastUpdateTime"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .and_then(|t| now.duration_since(t).ok());
        let exceeded = last.is_some_and(|c| c["reason"] == PROGRESS_DEADLINE_EXCEEDED);
        match idle {
            Some(idle) if !progressed && !exceeded && idle >= deadline => {
                set_condition(
                    status,
                    "Progressing",
                    "False",
                    PROGRESS_DEADLINE_EXCEEDED,
                    &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                    &now_s,
                    true,
                );
            }
            Some(idle) if !progressed => {
                if !exceeded {
                    out.requeue(deadline.saturating_sub(idle));
                }
            }
            _ => {
                set_condition(
                    status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{new_name}\" is progressing."),
                    &now_s,
                    true,
                );
                // set_condition keeps an identical condition as it is; a step still counts from now.
                touch_condition(status, "Progressing", &now_s);
                out.requeue(deadline);
            }
        }
    }

    // History: old ReplicaSets at zero beyond revisionHistoryLimit go, oldest revision first.
    let mut deletes = Vec::new();
    if complete && !paused {
        let limit = spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut idle: Vec<&Rs> = rss
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                Some(*i) != new_idx
                    && !r.changed()
                    && r.spec() == 0
                    && status_i(&r.value, "replicas") == 0
            })
            .map(|(_, r)| r)
            .collect();
        idle.sort_by_key(|r| rs_revision(&r.value));
        if idle.len() > limit {
            for r in &idle[..idle.len() - limit] {
                deletes.push(Action::Delete {
                    key: r.key.clone(),
                    revision: Some(r.revision),
                });
            }
        }
    }

    for rs in &rss {
        if rs.created {
            out.push(Action::Create {
                key: rs.key.clone(),
                object: rs.value.clone(),
            });
        } else if rs.changed() {
            out.push(Action::Update {
                key: rs.key.clone(),
                object: rs.value.clone(),
                revision: rs.revision,
            });
        }
    }
    for a in deletes {
        out.push(a);
    }
    if d_new != *d {
        out.push(Action::Update {
            key: key.to_string(),
            object: d_new,
            revision: revision(d),
        });
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn new_replica_set(
    d: &Value,
    template: &Value,
    hash: &str,
    revision: i64,
    replicas: i64,
    surge: i64,
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Value {
    let mut template = template.clone();
    let tmeta = ensure_object(&mut template, "metadata");
    let tlabels = tmeta.entry("labels").or_insert_with(|| json!({}));
    if !tlabels.is_object() {
        *tlabels = json!({});
    }
    tlabels[HASH_LABEL] = json!(hash);
    let labels = tlabels.clone();
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    let ml = ensure_object(&mut selector, "matchLabels");
    ml.insert(HASH_LABEL.into(), json!(hash));
    let mut annotations = Map::new();
    annotations.insert(REVISION.into(), json!(revision.to_string()));
    annotations.insert(DESIRED_REPLICAS.into(), json!(spec_replicas(d).to_string()));
    annotations.insert(
        MAX_REPLICAS.into(),
        json!((spec_replicas(d) + surge).to_string()),
    );
    let mut spec = json!({
        "replicas": replicas,
        "selector": selector,
        "template": template,
    });
    if let Some(m) = d.pointer("/spec/minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", name(d)),
            "namespace": namespace(d),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [controller_ref(d)],
        },
        "spec": spec,
        "status": {"replicas": 0},
    });
    stamp_new(&mut rs, now, rng);
    rs
}

/// The runner's view of the Deployment controller.
pub struct DeploymentController;

impl Controller for DeploymentController {
    const COMPONENT: &'static str = "deployment-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![
            caches.deployments.clone(),
            caches.replicasets.clone(),
            caches.pods.clone(),
        ]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        let mut by_owner: HashMap<String, Vec<Cached>> = HashMap::new();
        for rs in ctx.caches.replicasets.list() {
            if let Some(u) = controller_uid(&rs.value) {
                by_owner.entry(u.to_string()).or_default().push(rs.clone());
            }
        }
        let mut live: HashMap<String, usize> = HashMap::new();
        for p in ctx.caches.pods.list() {
            if !pod_terminal(&p.value) {
                if let Some(u) = controller_uid(&p.value) {
                    *live.entry(u.to_string()).or_default() += 1;
                }
            }
        }
        ctx.caches
            .deployments
            .list()
            .into_iter()
            .map(|d| {
                let rss = by_owner.remove(uid(&d.value)).unwrap_or_default();
                ctx.reconcile_isolated("Deployment", &d.key, |rng| {
                    reconcile(&d.key, &d.value, &rss, &live, now, rng)
                })
            })
            .filter(|a| !a.is_empty() || a.requeue_after.is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests;
