//! HorizontalPodAutoscaler controller (`autoscaling/v2`, Resource and ContainerResource metrics), as
//! kube-controller-manager's `pkg/controller/podautoscaler`: every sync period `settle` reads the pods'
//! usage from the [`MetricsSource`](crate::metrics::MetricsSource); the next pass decides, purely, each
//! HPA's scale write, status and events ([`status::decide`]). The recommendation and scale-event history
//! lives here, in memory, as in kube: a new leader starts it afresh.
//!
//! - `spec`: the stored spec read leniently, bounded and defaulted.
//! - `replicas`: a proposal per metric (`replica_calculator.go`).
//! - `behavior`: stabilization windows and scaling policies.
//! - `status`: one sync: scale, conditions, events.

pub mod behavior;
pub mod replicas;
pub mod spec;
pub mod status;

#[cfg(test)]
mod runner_test;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::action::{Action, Actions};
use super::context::Ctx;
use super::events::{EventRecord, Recorder};
use super::object::{deleting, generation, namespace, status_update, uid};
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::metrics::PodUsage;
use crate::store;
use behavior::History;
use status::{decide, target_resource, Observed};

/// Longest a metrics read may take before the sync counts it as failed: a hung agent must not stall
/// the controller loop.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The samples of one namespace.
struct Samples {
    fetched_at: SystemTime,
    usage: Result<Vec<PodUsage>, String>,
}

/// A rescale written by a pass, confirmed (or its scale event forgotten) by the next settle.
struct Pending {
    target_key: String,
    read_at: u64,
    replicas: i32,
    at: SystemTime,
}

/// What the controller keeps per HPA.
#[derive(Default)]
struct HpaState {
    uid: String,
    history: History,
    /// `fetched_at` of the samples last decided on: each sample set is decided on once, as kube syncs.
    decided: Option<SystemTime>,
    pending: Option<Pending>,
}

/// The runner's view of the HPA controller.
#[derive(Default)]
pub struct HorizontalPodAutoscalerController {
    samples: HashMap<String, Samples>,
    hpas: HashMap<String, HpaState>,
}

fn target_key(hpa: &Value) -> Option<String> {
    let t = spec::HpaSpec::of(hpa).ok()?.target;
    let resource = target_resource(&t.kind)?;
    Some(store::key("apps", resource, namespace(hpa), &t.name))
}

impl HorizontalPodAutoscalerController {
    /// The writes of one HPA's sync.
    fn sync(
        state: &mut HpaState,
        hpa: &Cached,
        target: Option<&Cached>,
        pods: &[&Value],
        usage: &Result<Vec<PodUsage>, String>,
        now: SystemTime,
    ) -> Actions {
        let mut out = Actions::default();
        let d = decide(
            &Observed {
                hpa: &hpa.value,
                target: target.map(|t| &*t.value),
                pods,
                usage,
            },
            &mut state.history,
            now,
        );
        if let (Some(replicas), Some(t)) = (d.scale_to, target) {
            let mut object = (*t.value).clone();
            object["spec"]["replicas"] = json!(replicas);
            // As the API does on a spec change (the scale subresource included), so the workload's
            // controller sees a new generation to observe.
            object["metadata"]["generation"] = json!(generation(&t.value) + 1);
            out.push(Action::Update {
                key: t.key.clone(),
                object,
                revision: t.revision,
            });
            state.pending = Some(Pending {
                target_key: t.key.clone(),
                read_at: t.revision,
                replicas,
                at: now,
            });
        }
        out.push(status_update(&hpa.key, &hpa.value, d.status));
        for (ty, reason, message) in d.events {
            out.push(Action::Event(EventRecord::about(
                &hpa.value, ty, reason, message,
            )));
        }
        out
    }

    /// Keeps the scale event of each rescale the store took; forgets those whose batch failed, so a
    /// refused write does not count against the scaling policies, and decides again at once.
    fn confirm(&mut self, caches: &Caches) {
        for state in self.hpas.values_mut() {
            let Some(p) = state.pending.take() else {
                continue;
            };
            let written = caches
                .deployments
                .get(&p.target_key)
                .or_else(|| caches.replicasets.get(&p.target_key));
            let took = written.is_some_and(|t| {
                t.revision > p.read_at
                    && t.value.pointer("/spec/replicas").and_then(Value::as_i64)
                        == Some(i64::from(p.replicas))
            });
            if !took {
                let h = &mut state.history;
                h.scale_up.retain(|e| e.at != p.at);
                h.scale_down.retain(|e| e.at != p.at);
                state.decided = None;
            }
        }
    }
}

impl Controller for HorizontalPodAutoscalerController {
    const COMPONENT: &'static str = "horizontal-pod-autoscaler";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![
            caches.horizontalpodautoscalers.clone(),
            caches.deployments.clone(),
            caches.replicasets.clone(),
        ]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        let hpas = ctx.caches.horizontalpodautoscalers.list();
        let live: BTreeSet<&str> = hpas.iter().map(|h| h.key.as_str()).collect();
        self.hpas.retain(|k, _| live.contains(k.as_str()));
        let mut out = Vec::new();
        for h in &hpas {
            if deleting(&h.value) {
                continue;
            }
            let ns = namespace(&h.value);
            let Some(samples) = self.samples.get(ns) else {
                continue;
            };
            let state = self.hpas.entry(h.key.clone()).or_default();
            if state.uid != uid(&h.value) {
                // A new HPA under an old name starts with no history.
                *state = HpaState {
                    uid: uid(&h.value).to_string(),
                    ..HpaState::default()
                };
            }
            if state.decided.is_some_and(|d| d >= samples.fetched_at) {
                continue;
            }
            state.decided = Some(samples.fetched_at);
            if spec::HpaSpec::of(&h.value).is_err() {
                tracing::warn!(hpa = %h.key, "skipping horizontalpodautoscaler whose spec does not parse");
            }
            let target = target_key(&h.value).and_then(|k| {
                ctx.caches
                    .deployments
                    .get(&k)
                    .or_else(|| ctx.caches.replicasets.get(&k))
            });
            let pods = ctx
                .caches
                .pods
                .list_prefix(&store::prefix("core", "pods", Some(ns)));
            let pods: Vec<&Value> = pods.iter().map(|p| &*p.value).collect();
            let usage = &samples.usage;
            out.push(
                ctx.reconcile_isolated("HorizontalPodAutoscaler", &h.key, |_| {
                    Self::sync(state, h, target.as_ref(), &pods, usage, now)
                }),
            );
        }
        out
    }

    fn settle<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        _recorder: &'a Recorder,
    ) -> futures::future::BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            self.confirm(&ctx.caches);
            let retry = self.hpas.values().any(|s| s.decided.is_none());
            let period = ctx.config.hpa_sync_period;
            let namespaces: BTreeSet<String> = ctx
                .caches
                .horizontalpodautoscalers
                .list()
                .iter()
                .map(|h| namespace(&h.value).to_string())
                .collect();
            self.samples.retain(|ns, _| namespaces.contains(ns));
            let mut next: Option<Duration> = None;
            let mut fetched = false;
            for ns in namespaces {
                let now = ctx.now();
                if let Some(s) = self.samples.get(&ns) {
                    let due = s.fetched_at.checked_add(period).unwrap_or(s.fetched_at);
                    if let Ok(left) = due.duration_since(now) {
                        if !left.is_zero() {
                            next = Some(next.map_or(left, |n| n.min(left)));
                            continue;
                        }
                    }
                }
                let usage = match &ctx.config.metrics {
                    None => Err("no metrics source".to_string()),
                    Some(m) => match tokio::time::timeout(FETCH_TIMEOUT, m.pods(Some(&ns))).await {
                        Ok(Ok(u)) => Ok(u),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}")),
                    },
                };
                if let Err(e) = &usage {
                    tracing::debug!(namespace = %ns, error = %e, "pod metrics unavailable");
                }
                self.samples.insert(
                    ns,
                    Samples {
                        fetched_at: now,
                        usage,
                    },
                );
                fetched = true;
                next = Some(next.map_or(period, |n| n.min(period)));
            }
            // New samples are decided on right away, not at the next change; a refused rescale soon.
            if fetched {
                return Some(Duration::ZERO);
            }
            if retry {
                return Some(Duration::from_millis(100));
            }
            next
        })
    }
}
