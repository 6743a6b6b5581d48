//! Replica proposals for one resource metric, following kube's `replica_calculator.go`
//! (`GetResourceReplicas`, `GetRawResourceReplicas`, `groupPods`, `calculatePodRequests`): pods are grouped
//! into ready, unready, missing and ignored, and missing/unready ones are filled in so that they can only
//! dampen a scale, never reverse it. Values are milli-units, as kube's `MilliValue()`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use apimachinery::time::parse_rfc3339;
use serde_json::Value;

use super::super::object::{condition, deleting, name, pod_phase};
use crate::metrics::PodUsage;

/// Within this relative distance of the target nothing changes (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// CPU samples of a pod this young are trusted only once it is ready and a window has passed since.
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// A pod that turned unready within this long of its start is taken as never ready.
pub const DELAY_OF_INITIAL_READINESS_STATUS: Duration = Duration::from_secs(30);

/// One pod's sample of one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodMetric {
    /// Usage in milli-units (millicores, or thousandths of a byte).
    pub value: i64,
    /// End of the sample's window.
    pub timestamp: SystemTime,
    /// Length of the window.
    pub window: Duration,
}

/// Samples by pod name.
pub type PodMetrics = BTreeMap<String, PodMetric>;

/// kube's tolerance test.
pub fn within_tolerance(ratio: f64) -> bool {
    (1.0 - ratio).abs() <= TOLERANCE
}

/// The samples of `resource` (of one `container`, for a ContainerResource metric) out of the metrics
/// source's answer. A pod whose container was not measured has no sample (it counts as missing).
///
/// # Errors
/// A resource the source does not measure, as metrics-server answers for anything but cpu and memory.
pub fn pod_metrics(
    usage: &[PodUsage],
    resource: &str,
    container: Option<&str>,
) -> Result<PodMetrics, String> {
    let milli = |cpu_nanocores: u64, memory_bytes: u64| -> i64 {
        let m = match resource {
            // Rounded up, as `Quantity.MilliValue()` of a nano quantity.
            "cpu" => cpu_nanocores.div_ceil(1_000_000),
            _ => memory_bytes.saturating_mul(1000),
        };
        i64::try_from(m).unwrap_or(i64::MAX)
    };
    if resource != "cpu" && resource != "memory" {
        return Err("no metrics returned from resource metrics API".into());
    }
    let mut out = PodMetrics::new();
    for p in usage {
        let value = match container {
            None => milli(p.cpu_nanocores(), p.memory_bytes()),
            Some(c) => match p.containers.iter().find(|u| u.name == c) {
                Some(u) => milli(u.cpu_nanocores, u.memory_bytes),
                None => continue,
            },
        };
        out.insert(
            p.name.clone(),
            PodMetric {
                value,
                timestamp: p.timestamp,
                window: p.window,
            },
        );
    }
    Ok(out)
}

/// kube's `groupPods` result: pods by how their sample is used.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Groups {
    /// Ready pods with a sample.
    pub ready: usize,
    /// Pending pods, and (for CPU) pods whose sample may be from their start-up.
    pub unready: BTreeSet<String>,
    /// Pods without a sample.
    pub missing: BTreeSet<String>,
    /// Pods being deleted or failed: left out entirely.
    pub ignored: BTreeSet<String>,
}

fn time_at(v: Option<&Value>) -> Option<SystemTime> {
    v.and_then(Value::as_str).and_then(parse_rfc3339)
}

/// kube's `groupPods`.
pub fn group_pods(
    pods: &[&Value],
    metrics: &PodMetrics,
    resource: &str,
    now: SystemTime,
) -> Groups {
    let mut g = Groups::default();
    for pod in pods {
        let n = name(pod).to_string();
        if deleting(pod) || pod_phase(pod) == "Failed" {
            g.ignored.insert(n);
            continue;
        }
        if pod_phase(pod) == "Pending" {
            g.unready.insert(n);
            continue;
        }
        let Some(metric) = metrics.get(&n) else {
            g.missing.insert(n);
            continue;
        };
        if resource == "cpu" {
            let ready = condition(pod, "Ready");
            let start = time_at(pod.pointer("/status/startTime"));
            let unready = match (ready, start) {
                (Some(c), Some(start)) => {
                    let status_false = c.get("status").and_then(Value::as_str) == Some("False");
                    let transition = time_at(c.get("lastTransitionTime")).unwrap_or(start);
                    if start
                        .checked_add(CPU_INITIALIZATION_PERIOD)
                        .is_some_and(|t| t > now)
                    {
                        // Still starting: the sample must be one whole window after it became ready.
                        status_false
                            || transition
                                .checked_add(metric.window)
                                .is_some_and(|t| metric.timestamp < t)
                    } else {
                        // Long started: only a pod that has never been ready is discounted.
                        status_false
                            && start
                                .checked_add(DELAY_OF_INITIAL_READINESS_STATUS)
                                .is_some_and(|t| t > transition)
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(n);
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// kube's `calculatePodRequests`: each pod's request of `resource` (of `container` only, if given),
/// counting sidecars (init containers with `restartPolicy: Always`).
///
/// # Errors
/// A selected container without a request: utilization of it has no meaning.
pub fn pod_requests(
    pods: &[&Value],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let mut sum: i64 = 0;
        let regular = pod.pointer("/spec/containers").and_then(Value::as_array);
        let sidecars = pod
            .pointer("/spec/initContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.get("restartPolicy").and_then(Value::as_str) == Some("Always"));
        for c in regular.into_iter().flatten().chain(sidecars) {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
            if container.is_some_and(|want| want != cname) {
                continue;
            }
            let request = c
                .pointer("/resources/requests")
                .and_then(|r| r.get(resource))
                .and_then(apimachinery::quantity::millis);
            match request {
                Some(r) => sum = sum.saturating_add(r),
                None => {
                    return Err(format!(
                        "missing request for {resource} in container {cname} of Pod {}",
                        name(pod)
                    ))
                }
            }
        }
        out.insert(name(pod).to_string(), sum);
    }
    Ok(out)
}

/// kube's `GetResourceUtilizationRatio`: (usage ratio, utilization percent, average raw usage).
///
/// # Errors
/// No sample belongs to a pod with a request.
pub fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut usage, mut requested, mut n) = (0i128, 0i128, 0i128);
    for (pod, m) in metrics {
        // A sample of a pod not in the request set is extraneous (kube checks missing requests elsewhere).
        let Some(r) = requests.get(pod) else { continue };
        usage += i128::from(m.value);
        requested += i128::from(*r);
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (usage * 100 / requested).clamp(0, i128::from(i32::MAX)) as i32;
    let raw = (usage / n).clamp(0, i128::from(i64::MAX)) as i64;
    Ok((f64::from(utilization) / f64::from(target), utilization, raw))
}

/// kube's `GetMetricUsageRatio`: (usage ratio, average usage).
fn usage_ratio(metrics: &PodMetrics, target: i64) -> (f64, i64) {
    let total: i128 = metrics.values().map(|m| i128::from(m.value)).sum();
    let avg = (total / metrics.len().max(1) as i128).clamp(0, i128::from(i64::MAX)) as i64;
    (avg as f64 / target as f64, avg)
}

/// A metric's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// Replicas it asks for.
    pub replicas: i32,
    /// Current utilization percent (utilization targets only).
    pub utilization: Option<i32>,
    /// Current average value, milli-units.
    pub average: i64,
}

/// How a proposal is reached from a ratio; shared by both target kinds.
enum Kind<'a> {
    Utilization(i32, &'a BTreeMap<String, i64>),
    Average(i64),
}

impl Kind<'_> {
    fn ratio(&self, metrics: &PodMetrics) -> Result<f64, String> {
        match self {
            Kind::Utilization(t, req) => utilization_ratio(metrics, req, *t).map(|r| r.0),
            Kind::Average(t) => Ok(usage_ratio(metrics, *t).0),
        }
    }

    /// What a missing pod is taken to use on a scale down: all of its request (or the target, above 100 %).
    fn fallback(&self, pod: &str) -> i64 {
        match self {
            Kind::Utilization(t, req) => {
                let r = req.get(pod).copied().unwrap_or(0);
                (i128::from(r) * i128::from((*t).max(100)) / 100).clamp(0, i128::from(i64::MAX))
                    as i64
            }
            Kind::Average(t) => *t,
        }
    }
}

fn ceil_replicas(ratio: f64, n: usize) -> i32 {
    // `as` saturates, so an absurd ratio cannot wrap.
    (ratio * n as f64).ceil() as i32
}

/// The shared second half of kube's calculations: fill in missing and unready pods, recompute, and
/// refuse a change of direction. `None` when no sample matches a pod with a request.
fn propose(
    current: i32,
    mut metrics: PodMetrics,
    groups: &Groups,
    kind: &Kind<'_>,
    now: SystemTime,
) -> Option<i32> {
    let ratio = kind.ratio(&metrics).ok()?;
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if within_tolerance(ratio) {
            return Some(current);
        }
        return Some(ceil_replicas(ratio, groups.ready));
    }
    let filled = |value: i64| PodMetric {
        value,
        timestamp: now,
        window: Duration::ZERO,
    };
    if ratio < 1.0 {
        for p in &groups.missing {
            metrics.insert(p.clone(), filled(kind.fallback(p)));
        }
    } else if ratio > 1.0 {
        for p in &groups.missing {
            metrics.insert(p.clone(), filled(0));
        }
    }
    if scale_up_with_unready {
        for p in &groups.unready {
            metrics.insert(p.clone(), filled(0));
        }
    }
    let new_ratio = kind.ratio(&metrics).ok()?;
    if within_tolerance(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let replicas = ceil_replicas(new_ratio, metrics.len());
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Some(current);
    }
    Some(replicas)
}

/// kube's `GetResourceReplicas` (`target` = Utilization) and `GetRawResourceReplicas` (AverageValue)
/// over the pods the target's selector matches and their samples.
///
/// # Errors
/// kube's messages: no pods, no usable samples, a missing request.
pub fn resource_replicas(
    current: i32,
    target: super::spec::Target,
    resource: &str,
    container: Option<&str>,
    pods: &[&Value],
    metrics: &PodMetrics,
    now: SystemTime,
) -> Result<Proposal, String> {
    use super::spec::Target;
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let groups = group_pods(pods, metrics, resource, now);
    let mut kept = metrics.clone();
    kept.retain(|p, _| !groups.ignored.contains(p) && !groups.unready.contains(p));
    let requests;
    let (kind, utilization, average) = match target {
        Target::Utilization(t) => {
            requests = pod_requests(pods, container, resource)?;
            if kept.is_empty() {
                return Err("did not receive metrics for targeted pods (pods might be unready)".into());
            }
            let (_, util, raw) = utilization_ratio(&kept, &requests, t)?;
            (Kind::Utilization(t, &requests), Some(util), raw)
        }
        Target::AverageValue(t) => {
            if kept.is_empty() {
                return Err("did not receive metrics for targeted pods (pods might be unready)".into());
            }
            (Kind::Average(t), None, usage_ratio(&kept, t).1)
        }
        Target::Invalid => {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into())
        }
    };
    let replicas = propose(current, kept, &groups, &kind, now)
        .ok_or("no metrics returned matched known pods")?;
    Ok(Proposal {
        replicas: replicas.max(0),
        utilization,
        average,
    })
}
