//! How a Deployment moves its ReplicaSets: proportional scaling in the middle of a rollout and one
//! step of a RollingUpdate, on ReplicaSets as the reconcile edits them, with the annotations that record
//! the Deployment's size on each.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::controllers::action::{Action, Actions};
use crate::controllers::events::{EventRecord, EventType};
use crate::controllers::object::{annotation, name, set_annotation};

/// Revision annotation on Deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Desired replicas of the Deployment, recorded on each ReplicaSet it scales.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge, recorded on each ReplicaSet it scales.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

pub(super) fn rs_revision(rs: &Value) -> i64 {
    annotation(rs, REVISION)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub(super) fn spec_replicas(v: &Value) -> i64 {
    v.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

pub(super) fn status_i(v: &Value, f: &str) -> i64 {
    v.get("status")
        .and_then(|s| s.get(f))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// A ReplicaSet as the reconcile edits it.
pub(super) struct Rs {
    pub(super) key: String,
    pub(super) value: Value,
    pub(super) original: Arc<Value>,
    pub(super) revision: u64,
    pub(super) created: bool,
}

impl Rs {
    pub(super) fn spec(&self) -> i64 {
        spec_replicas(&self.value)
    }
    pub(super) fn changed(&self) -> bool {
        self.created || *self.original != self.value
    }
}

/// Scales `rs` to `to`, recording the Deployment's sizes on it and an event on `d`.
pub(super) fn scale(rs: &mut Rs, to: i64, d: &Value, replicas: i64, surge: i64, out: &mut Actions) {
    let from = rs.spec();
    if from == to {
        return;
    }
    rs.value["spec"]["replicas"] = json!(to);
    record_sizes(rs, replicas, surge);
    let dir = if to > from { "up" } else { "down" };
    out.push(Action::Event(EventRecord::about(
        d,
        EventType::Normal,
        "ScalingReplicaSet",
        format!("Scaled {dir} replica set {} to {to}", name(&rs.value)),
    )));
}

/// Records the Deployment's size on `rs`: what a later pass compares to tell a scaling event from a rollout.
pub(super) fn record_sizes(rs: &mut Rs, replicas: i64, surge: i64) {
    set_annotation(&mut rs.value, DESIRED_REPLICAS, &replicas.to_string());
    set_annotation(&mut rs.value, MAX_REPLICAS, &(replicas + surge).to_string());
}

/// Scaling a Deployment in the middle of a rollout spreads the change over its active ReplicaSets in
/// proportion to their sizes, as Kubernetes does. Otherwise all new replicas would land in the new
/// ReplicaSet, whose pods may never come up. Returns whether it scaled anything; the rollout then waits for
/// the next pass.
pub(super) fn proportional_scale(
    rss: &mut [Rs],
    d: &Value,
    replicas: i64,
    surge: i64,
    out: &mut Actions,
) -> bool {
    let active: Vec<usize> = (0..rss.len()).filter(|i| rss[*i].spec() > 0).collect();
    let desired =
        |r: &Rs| annotation(&r.value, DESIRED_REPLICAS).and_then(|v| v.parse::<i64>().ok());
    let scaling_event = active.iter().any(|i| desired(&rss[*i]) != Some(replicas));
    if active.len() < 2 || !scaling_event {
        return false;
    }
    let allowed = replicas + surge;
    let current: i64 = active.iter().map(|i| rss[*i].spec()).sum();
    let delta = allowed - current;
    let status_replicas = d
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(current);
    // Largest first; Kubernetes gives the rounding leftover to the first.
    let mut order = active.clone();
    order.sort_by_key(|i| {
        (
            std::cmp::Reverse(rss[*i].spec()),
            std::cmp::Reverse(rs_revision(&rss[*i].value)),
        )
    });
    let mut sizes: Vec<(usize, i64)> = Vec::new();
    let mut added = 0;
    for &i in &order {
        let spec = rss[i].spec();
        let annotated = annotation(&rss[i].value, MAX_REPLICAS)
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(status_replicas.max(1));
        let fraction = ((spec * allowed) as f64 / annotated as f64).round() as i64 - spec;
        let share = if delta > 0 {
            fraction.min(delta - added).max(0)
        } else {
            fraction.max(delta - added).min(0)
        };
        added += share;
        sizes.push((i, spec + share));
    }
    if let Some(first) = sizes.first_mut() {
        first.1 = (first.1 + delta - added).max(0);
    }
    for (i, to) in sizes {
        scale(&mut rss[i], to, d, replicas, surge, out);
        record_sizes(&mut rss[i], replicas, surge);
    }
    true
}

/// One step of a rolling update, as Kubernetes' `rolloutRolling`: scale the new ReplicaSet up within
/// maxSurge; if it did not move, scale old ones down within maxUnavailable (unhealthy replicas first).
pub(super) fn rolling_update(
    rss: &mut [Rs],
    n: usize,
    d: &Value,
    replicas: i64,
    surge: i64,
    unavailable: i64,
    out: &mut Actions,
) {
    let new_spec = rss[n].spec();
    if new_spec > replicas {
        scale(&mut rss[n], replicas, d, replicas, surge, out);
        return;
    }
    if new_spec < replicas {
        let current: i64 = rss.iter().map(Rs::spec).sum();
        let max_total = replicas + surge;
        if current < max_total {
            let up = (max_total - current).min(replicas - new_spec);
            scale(&mut rss[n], new_spec + up, d, replicas, surge, out);
            return;
        }
    }
    let olds: Vec<usize> = (0..rss.len()).filter(|i| *i != n).collect();
    let old_pods: i64 = olds.iter().map(|i| rss[*i].spec()).sum();
    if old_pods == 0 {
        return;
    }
    let all_pods: i64 = rss.iter().map(Rs::spec).sum();
    let min_available = replicas - unavailable;
    let new_unavailable = rss[n].spec() - status_i(&rss[n].value, "availableReplicas");
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    let mut cleaned = 0;
    for &i in &olds {
        if cleaned >= max_scaled_down {
            break;
        }
        let spec = rss[i].spec();
        let avail = status_i(&rss[i].value, "availableReplicas");
        if spec == 0 || spec <= avail {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(spec - avail);
        scale(&mut rss[i], spec - down, d, replicas, surge, out);
        cleaned += down;
    }
    let available: i64 = rss
        .iter()
        .map(|r| status_i(&r.value, "availableReplicas"))
        .sum();
    if available <= min_available {
        return;
    }
    let total_down = (available - min_available).min(max_scaled_down - cleaned);
    let mut done = 0;
    for &i in &olds {
        if done >= total_down {
            break;
        }
        let spec = rss[i].spec();
        if spec == 0 {
            continue;
        }
        let down = spec.min(total_down - done);
        scale(&mut rss[i], spec - down, d, replicas, surge, out);
        done += down;
    }
}
