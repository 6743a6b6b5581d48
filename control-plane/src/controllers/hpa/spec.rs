//! The HorizontalPodAutoscaler `autoscaling/v2` spec as the controller decides on it: read leniently from
//! the stored JSON, bounded to kube's int32 ranges, with the API's defaults (metrics, behavior) filled in.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::super::object::spec_view;

/// Longest stabilization window the API accepts (one hour); larger stored values are clamped to it.
const MAX_WINDOW_SECONDS: i64 = 3600;
/// Longest policy period the API accepts (30 minutes).
const MAX_PERIOD_SECONDS: i64 = 1800;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SpecView {
    scale_target_ref: Option<TargetRefView>,
    min_replicas: Option<i64>,
    max_replicas: Option<i64>,
    metrics: Option<Vec<MetricView>>,
    behavior: Option<BehaviorView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TargetRefView {
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct MetricView {
    #[serde(rename = "type")]
    type_: Option<String>,
    resource: Option<ResourceSourceView>,
    container_resource: Option<ResourceSourceView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResourceSourceView {
    name: Option<String>,
    container: Option<String>,
    target: Option<TargetView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TargetView {
    average_utilization: Option<i64>,
    /// A quantity: a string (`500m`) or, from hand-written JSON, a number.
    average_value: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct BehaviorView {
    scale_up: Option<RulesView>,
    scale_down: Option<RulesView>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RulesView {
    stabilization_window_seconds: Option<i64>,
    select_policy: Option<String>,
    policies: Option<Vec<PolicyView>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PolicyView {
    #[serde(rename = "type")]
    type_: Option<String>,
    value: Option<i64>,
    period_seconds: Option<i64>,
}

/// The Scale target: `spec.scaleTargetRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// `apiVersion` (informational: the kind picks the resource).
    pub api_version: String,
    /// `Deployment` or `ReplicaSet` (others have no Scale berth serves).
    pub kind: String,
    /// Name in the HPA's namespace.
    pub name: String,
}

/// What a resource metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Percent of the pods' requests (`averageUtilization`).
    Utilization(i32),
    /// Average per pod, in milli-units (`averageValue`, as kube's `MilliValue()`).
    AverageValue(i64),
    /// Neither target set (or one not positive): the metric is invalid.
    Invalid,
}

/// One entry of `spec.metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// `Resource` (`container == None`) or `ContainerResource`.
    Resource {
        /// `cpu` or `memory` (the only resources the metrics source measures).
        name: String,
        /// The container of a `ContainerResource` metric.
        container: Option<String>,
        /// The target.
        target: Target,
    },
    /// A source type berth cannot measure (`Pods`, `Object`, `External`) or a malformed entry.
    Unsupported(String),
}

/// `Pods` or `Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// At most `value` pods per period.
    Pods,
    /// At most `value` percent of the replicas at the period's start.
    Percent,
}

/// One scaling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// The change allowed per period.
    pub value: i32,
    /// The period, in seconds (1..=1800).
    pub period_seconds: i64,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// The rules of one direction, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Stabilization window.
    pub window: Duration,
    /// Which policy wins.
    pub select: Select,
    /// The policies.
    pub policies: Vec<Policy>,
}

impl Rules {
    /// Kubernetes' scale-up default: no window; 4 pods or 100 % per 15 s, whichever is more.
    pub fn default_up() -> Rules {
        Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
        }
    }

    /// Kubernetes' scale-down default: a 300 s window (`--horizontal-pod-autoscaler-downscale-stabilization`);
    /// 100 % per 15 s.
    pub fn default_down() -> Rules {
        Rules {
            window: Duration::from_secs(300),
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
        }
    }

    /// The longest policy period: scale events older than it never matter again.
    pub fn longest_period(&self) -> Duration {
        Duration::from_secs(
            self.policies
                .iter()
                .map(|p| p.period_seconds.max(0).unsigned_abs())
                .max()
                .unwrap_or(0),
        )
    }
}

/// Both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Scale up.
    pub up: Rules,
    /// Scale down.
    pub down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            up: Rules::default_up(),
            down: Rules::default_down(),
        }
    }
}

/// An HPA spec, bounded and defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpaSpec {
    /// The Scale target.
    pub target: TargetRef,
    /// `minReplicas` (default 1).
    pub min_replicas: i32,
    /// `maxReplicas`.
    pub max_replicas: i32,
    /// `metrics` (default: cpu at 80 % utilization, as the API defaults it).
    pub metrics: Vec<Metric>,
    /// `behavior`, each unset part defaulted.
    pub behavior: Behavior,
}

/// kube's counts are int32: a stored value outside it is clamped rather than trusted or wrapped.
fn count(v: i64) -> i32 {
    v.clamp(0, i64::from(i32::MAX)) as i32
}

fn rules(view: Option<RulesView>, default: Rules) -> Rules {
    let Some(view) = view else {
        return default;
    };
    let window = view
        .stabilization_window_seconds
        .map(|s| Duration::from_secs(s.clamp(0, MAX_WINDOW_SECONDS).unsigned_abs()))
        .unwrap_or(default.window);
    let select = match view.select_policy.as_deref() {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        _ => Select::Max,
    };
    let policies = match view.policies {
        None => default.policies,
        Some(ps) => ps
            .into_iter()
            .filter_map(|p| {
                let kind = match p.type_.as_deref() {
                    Some("Pods") => PolicyKind::Pods,
                    Some("Percent") => PolicyKind::Percent,
                    _ => return None,
                };
                Some(Policy {
                    kind,
                    value: count(p.value.unwrap_or(0)),
                    period_seconds: p.period_seconds.unwrap_or(15).clamp(1, MAX_PERIOD_SECONDS),
                })
            })
            .collect(),
    };
    Rules {
        window,
        select,
        policies,
    }
}

fn target(view: Option<TargetView>) -> Target {
    let Some(t) = view else {
        return Target::Invalid;
    };
    // As kube: an averageValue wins over an averageUtilization.
    if let Some(v) = t.average_value.filter(|v| !v.is_null()) {
        return match apimachinery::quantity::millis(&v) {
            Some(m) if m > 0 => Target::AverageValue(m),
            _ => Target::Invalid,
        };
    }
    match t.average_utilization {
        Some(u) if u > 0 => Target::Utilization(count(u)),
        _ => Target::Invalid,
    }
}

fn metric(m: MetricView) -> Metric {
    let ty = m.type_.unwrap_or_default();
    let (source, container) = match ty.as_str() {
        "Resource" => (m.resource, false),
        "ContainerResource" => (m.container_resource, true),
        _ => return Metric::Unsupported(ty),
    };
    let Some(source) = source else {
        return Metric::Unsupported(ty);
    };
    Metric::Resource {
        name: source.name.unwrap_or_default(),
        container: if container {
            Some(source.container.unwrap_or_default())
        } else {
            None
        },
        target: target(source.target),
    }
}

impl HpaSpec {
    /// Reads `hpa.spec`.
    ///
    /// # Errors
    /// A field of the wrong JSON type, a missing target or `maxReplicas`, or `maxReplicas < minReplicas`:
    /// the caller skips the HPA and reports why in its status.
    pub fn of(hpa: &Value) -> Result<HpaSpec, String> {
        let view: SpecView = spec_view(hpa).map_err(|e| e.to_string())?;
        let t = view
            .scale_target_ref
            .ok_or("spec.scaleTargetRef is required")?;
        let target = TargetRef {
            api_version: t.api_version.unwrap_or_default(),
            kind: t.kind.ok_or("spec.scaleTargetRef.kind is required")?,
            name: t.name.ok_or("spec.scaleTargetRef.name is required")?,
        };
        let max_replicas = count(view.max_replicas.ok_or("spec.maxReplicas is required")?);
        let min_replicas = count(view.min_replicas.unwrap_or(1));
        if max_replicas < min_replicas || max_replicas < 1 {
            return Err(format!(
                "spec.maxReplicas ({max_replicas}) must be at least 1 and not below spec.minReplicas ({min_replicas})"
            ));
        }
        let metrics = match view.metrics {
            Some(ms) if !ms.is_empty() => ms.into_iter().map(metric).collect(),
            _ => vec![Metric::Resource {
                name: "cpu".into(),
                container: None,
                target: Target::Utilization(80),
            }],
        };
        let behavior = match view.behavior {
            None => Behavior::default(),
            Some(b) => Behavior {
                up: rules(b.scale_up, Rules::default_up()),
                down: rules(b.scale_down, Rules::default_down()),
            },
        };
        Ok(HpaSpec {
            target,
            min_replicas,
            max_replicas,
            metrics,
            behavior,
        })
    }
}
