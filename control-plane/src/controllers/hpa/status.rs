//! One HPA sync as kube's `reconcileAutoscaler`: the target's scale, a proposal per metric, the
//! behavior's normalization, and the status (conditions with kube's reasons and messages) and events.
//! Pure: the caches' objects, the namespace's samples, the history and `now` in; a [`Decision`] out.

use std::time::SystemTime;

use apimachinery::labels::{format_selector, LabelSelector};
use apimachinery::time::rfc3339;
use serde_json::{json, Map, Value};

use super::super::events::EventType;
use super::super::object::{generation, labels, namespace, set_condition, status_of};
use super::behavior::{normalize, History};
use super::replicas::{pod_metrics, resource_replicas, Proposal};
use super::spec::{HpaSpec, Metric, Target, TargetRef};
use crate::metrics::PodUsage;

/// What one sync observed.
pub struct Observed<'a> {
    /// The HPA.
    pub hpa: &'a Value,
    /// The target object (Deployment or ReplicaSet) if the cache has it.
    pub target: Option<&'a Value>,
    /// Every pod of the HPA's namespace.
    pub pods: &'a [&'a Value],
    /// The namespace's samples, or why there are none.
    pub usage: &'a Result<Vec<PodUsage>, String>,
}

/// What a sync decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// New `spec.replicas` of the target, when it rescales.
    pub scale_to: Option<i32>,
    /// The HPA's new status.
    pub status: Value,
    /// Events about the HPA: type, reason, message.
    pub events: Vec<(EventType, &'static str, String)>,
}

/// The `resource` group of a target kind, and its resource (`deployments.apps`).
pub fn target_resource(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" => Some("deployments"),
        "ReplicaSet" => Some("replicasets"),
        _ => None,
    }
}

/// The Scale of a target: (spec.replicas, selector).
///
/// # Errors
/// kube's `FailedGetScale` cause.
fn scale_of(r: &TargetRef, target: Option<&Value>) -> Result<(i32, Value), String> {
    let Some(resource) = target_resource(&r.kind) else {
        let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        return Err(format!(
            "no matches for kind \"{}\" in group \"{group}\"",
            r.kind
        ));
    };
    let Some(t) = target else {
        return Err(format!("{resource}.apps \"{}\" not found", r.name));
    };
    let replicas = match t.pointer("/spec/replicas") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_i64()
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                format!(
                    "{resource}.apps \"{}\" has an invalid spec.replicas",
                    r.name
                )
            })? as i32,
    };
    Ok((
        replicas,
        t.pointer("/spec/selector").cloned().unwrap_or(Value::Null),
    ))
}

struct Sync<'a> {
    status: Map<String, Value>,
    events: Vec<(EventType, &'static str, String)>,
    now: String,
    hpa: &'a Value,
}

impl Sync<'_> {
    fn condition(&mut self, ty: &str, value: bool, reason: &str, message: &str) {
        let v = if value { "True" } else { "False" };
        set_condition(&mut self.status, ty, v, reason, message, &self.now, false);
    }

    fn event(&mut self, ty: EventType, reason: &'static str, message: String) {
        self.events.push((ty, reason, message));
    }

    fn finish(mut self, scale_to: Option<i32>) -> Decision {
        self.status
            .insert("observedGeneration".into(), json!(generation(self.hpa)));
        Decision {
            scale_to,
            status: Value::Object(self.status),
            events: self.events,
        }
    }

    fn set_current(&mut self, current: i32, metrics: Vec<Value>) {
        self.status.insert("currentReplicas".into(), json!(current));
        if metrics.is_empty() {
            self.status.remove("currentMetrics");
        } else {
            self.status.insert("currentMetrics".into(), json!(metrics));
        }
    }
}

/// kube's `format` of a `resource.NewMilliQuantity(v, DecimalSI)`: `250m`, `2`, `64k`.
pub fn milli_quantity(v: i64) -> String {
    if v % 1000 != 0 {
        return format!("{v}m");
    }
    let mut n = v / 1000;
    let mut suffix = 0;
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    while n != 0 && n % 1000 == 0 && suffix < SUFFIXES.len() - 1 {
        n /= 1000;
        suffix += 1;
    }
    format!("{n}{}", SUFFIXES[suffix])
}

/// One metric's proposal, its name for messages, and its `currentMetrics` entry.
fn compute_metric(
    metric: &Metric,
    current: i32,
    pods: &[&Value],
    usage: &Result<Vec<PodUsage>, String>,
    now: SystemTime,
) -> Result<(Proposal, String, Value), (&'static str, String)> {
    let (name, container, target) = match metric {
        Metric::Resource {
            name,
            container,
            target,
        } => (name, container, target),
        Metric::Unsupported(ty) => {
            return Err((
                "InvalidMetricSourceType",
                format!("unknown metric source type \"{ty}\""),
            ))
        }
    };
    let reason = if container.is_some() {
        "FailedGetContainerResourceMetric"
    } else {
        "FailedGetResourceMetric"
    };
    let what = match target {
        Target::AverageValue(_) => "usage",
        _ => "utilization",
    };
    let fail = |e: String| (reason, format!("failed to get {name} {what}: {e}"));
    let samples = usage
        .as_ref()
        .map_err(|e| e.clone())
        .and_then(|u| pod_metrics(u, name, container.as_deref()))
        .map_err(|e| fail(format!("unable to get metrics for resource {name}: {e}")))?;
    let mut samples = samples;
    samples.retain(|p, _| pods.iter().any(|pod| super::super::object::name(pod) == p));
    if samples.is_empty() && !matches!(target, Target::Invalid) {
        return Err(fail(format!(
            "unable to get metrics for resource {name}: no metrics returned from resource metrics API"
        )));
    }
    let p = resource_replicas(
        current,
        *target,
        name,
        container.as_deref(),
        pods,
        &samples,
        now,
    )
    .map_err(fail)?;
    let container_word = if container.is_some() {
        " container"
    } else {
        ""
    };
    let metric_name = match target {
        Target::AverageValue(_) => format!("{name}{container_word} resource"),
        _ => format!("{name}{container_word} resource utilization (percentage of request)"),
    };
    let mut current_value = json!({"averageValue": milli_quantity(p.average)});
    if let Some(u) = p.utilization {
        current_value["averageUtilization"] = json!(u);
    }
    let status = match container {
        None => json!({"type": "Resource", "resource": {"name": name, "current": current_value}}),
        Some(c) => json!({"type": "ContainerResource",
                          "containerResource": {"name": name, "container": c, "current": current_value}}),
    };
    Ok((p, metric_name, status))
}

/// One sync of one HPA. `history` is the HPA's in-memory history, updated in place.
pub fn decide(obs: &Observed<'_>, history: &mut History, now: SystemTime) -> Decision {
    let old = status_of(obs.hpa);
    let mut status = Map::new();
    for k in [
        "conditions",
        "lastScaleTime",
        "desiredReplicas",
        "currentReplicas",
        "currentMetrics",
    ] {
        if let Some(v) = old.get(k) {
            status.insert(k.into(), v.clone());
        }
    }
    let mut s = Sync {
        status,
        events: Vec::new(),
        now: rfc3339(now),
        hpa: obs.hpa,
    };
    let spec = match HpaSpec::of(obs.hpa) {
        Ok(spec) => spec,
        Err(e) => {
            s.condition(
                "ScalingActive",
                false,
                "InvalidSpec",
                &format!("the HPA spec could not be read: {e}"),
            );
            return s.finish(None);
        }
    };
    let (current, selector) = match scale_of(&spec.target, obs.target) {
        Ok(scale) => scale,
        Err(e) => {
            s.event(EventType::Warning, "FailedGetScale", e.clone());
            s.condition(
                "AbleToScale",
                false,
                "FailedGetScale",
                &format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            return s.finish(None);
        }
    };
    s.condition(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    history.record_initial(current, now);
    let (min, max) = (spec.min_replicas, spec.max_replicas);
    let mut metric_statuses = Vec::new();
    let (desired, reason) = if current == 0 && min != 0 {
        s.condition(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let selected = match select_pods(&mut s, &selector, obs) {
            Some(pods) => pods,
            None => {
                s.set_current(current, Vec::new());
                return s.finish(None);
            }
        };
        let mut best: Option<(i32, String)> = None;
        let mut invalid: Vec<(&'static str, String)> = Vec::new();
        for m in &spec.metrics {
            match compute_metric(m, current, &selected, obs.usage, now) {
                Ok((p, name, st)) => {
                    metric_statuses.push(st);
                    if best.as_ref().is_none_or(|(r, _)| p.replicas > *r) {
                        best = Some((p.replicas, name));
                    }
                }
                Err((reason, e)) => {
                    s.event(EventType::Warning, reason, e.clone());
                    invalid.push((reason, e));
                }
            }
        }
        let proposal = best.as_ref().map_or(0, |b| b.0);
        if let Some((reason, first)) = invalid.first() {
            // As kube: the valid metrics are trusted for a scale up only.
            if invalid.len() >= spec.metrics.len() || proposal < current {
                s.condition(
                    "ScalingActive",
                    false,
                    reason,
                    &format!("the HPA was unable to compute the replica count: {first}"),
                );
                s.set_current(current, metric_statuses);
                s.event(
                    EventType::Warning,
                    "FailedComputeMetricsReplicas",
                    format!(
                        "invalid metrics ({} invalid out of {}), first error is: {first}",
                        invalid.len(),
                        spec.metrics.len()
                    ),
                );
                return s.finish(None);
            }
        }
        let metric = best.map(|b| b.1).unwrap_or_default();
        s.condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        let reason = if proposal > current {
            format!("{metric} above target")
        } else if proposal < current {
            "All metrics below target".to_string()
        } else {
            String::new()
        };
        let (desired, able, (limited, why)) =
            normalize(history, &spec.behavior, min, max, current, proposal, now);
        s.condition("AbleToScale", true, able.0, able.1);
        s.condition("ScalingLimited", limited, why.0, why.1);
        (desired, reason)
    };
    let rescale = desired != current;
    let desired = if rescale {
        s.condition(
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
        );
        s.event(
            EventType::Normal,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        );
        history.record_scale(&spec.behavior, current, desired, now);
        s.status.insert("lastScaleTime".into(), json!(s.now));
        desired
    } else {
        current
    };
    s.set_current(current, metric_statuses);
    s.status.insert("desiredReplicas".into(), json!(desired));
    s.finish(rescale.then_some(desired))
}

/// The pods of the HPA's namespace the Scale's selector matches, or `None` (with kube's condition and
/// event) when the target has no usable selector.
fn select_pods<'a>(
    s: &mut Sync<'_>,
    selector: &Value,
    obs: &Observed<'a>,
) -> Option<Vec<&'a Value>> {
    if format_selector(selector).is_empty() {
        s.event(
            EventType::Warning,
            "SelectorRequired",
            "selector is required".into(),
        );
        s.condition(
            "ScalingActive",
            false,
            "InvalidSelector",
            "the HPA target's scale is missing a selector",
        );
        s.event(
            EventType::Warning,
            "FailedComputeMetricsReplicas",
            "selector is required".into(),
        );
        return None;
    }
    let parsed = match LabelSelector::from_label_selector_json(selector) {
        Ok(p) => p,
        Err(e) => {
            let msg = format!(
                "couldn't convert selector into a corresponding internal selector object: {e}"
            );
            s.event(EventType::Warning, "InvalidSelector", msg.clone());
            s.condition("ScalingActive", false, "InvalidSelector", &msg);
            s.event(EventType::Warning, "FailedComputeMetricsReplicas", msg);
            return None;
        }
    };
    let ns = namespace(obs.hpa);
    Some(
        obs.pods
            .iter()
            .copied()
            .filter(|p| namespace(p) == ns && parsed.matches_labels(&labels(p)))
            .collect(),
    )
}
