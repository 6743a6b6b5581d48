//! Pure tests of the HPA decisions, after Kubernetes' documentation and kube's
//! `replica_calculator_test.go` / `horizontal_test.go`, and proptest safety properties.

use std::time::{Duration, SystemTime};

use apimachinery::time::{parse_rfc3339, rfc3339};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::behavior::{normalize, History, Recommendation, ScaleEvent};
use super::replicas::{resource_replicas, PodMetric, PodMetrics};
use super::spec::{Behavior, HpaSpec, Policy, PolicyKind, Rules, Select, Target};
use super::status::{decide, milli_quantity, Observed};
use crate::metrics::{ContainerUsage, PodUsage};

fn t0() -> SystemTime {
    parse_rfc3339("2026-01-01T01:00:00Z").unwrap()
}

/// A running pod with one container `c` requesting `cpu`, started `age` ago, Ready since then.
fn pod(name: &str, cpu: &str, age: Duration) -> Value {
    let start = rfc3339(t0() - age);
    json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "startTime": start,
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": start}]},
    })
}

fn old_pod(name: &str, cpu: &str) -> Value {
    pod(name, cpu, Duration::from_secs(3600))
}

fn samples(values: &[(&str, i64)]) -> PodMetrics {
    values
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                PodMetric {
                    value: *v,
                    timestamp: t0(),
                    window: Duration::from_secs(30),
                },
            )
        })
        .collect()
}

fn calc(current: i32, target: Target, pods: &[Value], metrics: &PodMetrics) -> Result<i32, String> {
    let refs: Vec<&Value> = pods.iter().collect();
    resource_replicas(current, target, "cpu", None, &refs, metrics, t0()).map(|p| p.replicas)
}

#[test]
fn within_tolerance_no_change() {
    // 52.5 % of a 50 % target: ratio 1.05.
    let pods: Vec<Value> = (0..3).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    let m = samples(&[("p0", 525), ("p1", 525), ("p2", 525)]);
    assert_eq!(calc(3, Target::Utilization(50), &pods, &m), Ok(3));
}

#[test]
fn scale_up_three_pods_at_90_percent_of_50_to_six() {
    let pods: Vec<Value> = (0..3).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    let m = samples(&[("p0", 900), ("p1", 900), ("p2", 900)]);
    assert_eq!(calc(3, Target::Utilization(50), &pods, &m), Ok(6));
}

#[test]
fn missing_metrics_count_as_full_request_on_scale_down() {
    // Without the fallback the three measured pods (10 %) would ask for 1.
    let pods: Vec<Value> = (0..4).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    let m = samples(&[("p0", 100), ("p1", 100), ("p2", 100)]);
    assert_eq!(calc(4, Target::Utilization(50), &pods, &m), Ok(3));
}

#[test]
fn missing_metrics_count_as_zero_on_scale_up() {
    // kube's TestReplicaCalcMissingMetricsScaleUp-like: measured pods at 150 % of target.
    let pods: Vec<Value> = (0..4).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    let m = samples(&[("p0", 750), ("p1", 750), ("p2", 750)]);
    // ratio 1.5 on 3; with the missing pod at 0: 56 % / 50 % = 1.12 -> ceil(4.48) = 5.
    assert_eq!(calc(4, Target::Utilization(50), &pods, &m), Ok(5));
}

#[test]
fn unready_pods_ignored_on_scale_up() {
    // kube's TestReplicaCalcScaleUpUnreadyLessScale: 3 pods, one unready, target 30 %.
    let mut pods: Vec<Value> = (0..3).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    pods[0] = pod("p0", "1000m", Duration::from_secs(10));
    pods[0]["status"]["conditions"][0]["status"] = json!("False");
    let m = samples(&[("p0", 400), ("p1", 500), ("p2", 700)]);
    assert_eq!(calc(3, Target::Utilization(30), &pods, &m), Ok(4));
}

#[test]
fn ignored_and_pending_pods() {
    let mut pods: Vec<Value> = (0..3).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    pods[1]["metadata"]["deletionTimestamp"] = json!(rfc3339(t0()));
    pods[2]["status"]["phase"] = json!("Failed");
    let m = samples(&[("p0", 1000), ("p1", 5000), ("p2", 5000)]);
    // Only p0 counts: 100 % of a 50 % target.
    assert_eq!(calc(1, Target::Utilization(50), &pods, &m), Ok(2));
}

#[test]
fn missing_request_invalidates_metric() {
    let mut pods = vec![old_pod("p0", "1000m")];
    pods[0]["spec"]["containers"][0]["resources"] = json!({});
    let m = samples(&[("p0", 100)]);
    assert_eq!(
        calc(1, Target::Utilization(50), &pods, &m),
        Err("missing request for cpu in container c of Pod p0".into())
    );
}

#[test]
fn average_value_target() {
    let pods: Vec<Value> = (0..3).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
    let m = samples(&[("p0", 1000), ("p1", 1000), ("p2", 1000)]);
    assert_eq!(calc(3, Target::AverageValue(500), &pods, &m), Ok(6));
    let m = samples(&[("p0", 100), ("p1", 100), ("p2", 100)]);
    assert_eq!(calc(3, Target::AverageValue(500), &pods, &m), Ok(1));
}

fn up(policies: Vec<Policy>, select: Select) -> Behavior {
    Behavior {
        up: Rules {
            window: Duration::ZERO,
            select,
            policies,
        },
        down: Rules::default_down(),
    }
}

fn pods_policy(value: i32, period_seconds: i64) -> Policy {
    Policy {
        kind: PolicyKind::Pods,
        value,
        period_seconds,
    }
}

fn percent_policy(value: i32, period_seconds: i64) -> Policy {
    Policy {
        kind: PolicyKind::Percent,
        value,
        period_seconds,
    }
}

#[test]
fn stabilization_window_keeps_the_highest_recent_recommendation() {
    let b = Behavior::default();
    let mut h = History::default();
    h.recommendations.push(Recommendation {
        replicas: 5,
        at: t0() - Duration::from_secs(100),
    });
    let (d, able, _) = normalize(&mut h, &b, 1, 10, 5, 2, t0());
    assert_eq!(d, 5);
    assert_eq!(able.0, "ScaleDownStabilized");
    let mut h = History::default();
    h.recommendations.push(Recommendation {
        replicas: 5,
        at: t0() - Duration::from_secs(301),
    });
    let (d, able, _) = normalize(&mut h, &b, 1, 10, 5, 2, t0());
    assert_eq!(d, 2);
    assert_eq!(able.0, "ReadyForNewScale");
}

#[test]
fn pods_policy_limits_one_to_ten_to_five() {
    let b = up(vec![pods_policy(4, 60)], Select::Max);
    let (d, _, (limited, why)) = normalize(&mut History::default(), &b, 1, 20, 1, 10, t0());
    assert_eq!((d, limited, why.0), (5, true, "ScaleUpLimit"));
}

#[test]
fn percent_policy_doubles() {
    let b = up(vec![percent_policy(100, 60)], Select::Max);
    let (d, _, _) = normalize(&mut History::default(), &b, 1, 20, 3, 10, t0());
    assert_eq!(d, 6);
}

#[test]
fn select_policy_min_and_max() {
    let ps = vec![pods_policy(4, 60), percent_policy(100, 60)];
    let (d, _, _) = normalize(
        &mut History::default(),
        &up(ps.clone(), Select::Max),
        1,
        100,
        10,
        30,
        t0(),
    );
    assert_eq!(d, 20);
    let (d, _, _) = normalize(
        &mut History::default(),
        &up(ps, Select::Min),
        1,
        100,
        10,
        30,
        t0(),
    );
    assert_eq!(d, 14);
}

#[test]
fn select_policy_disabled_never_scales_up() {
    let b = up(vec![pods_policy(4, 60)], Select::Disabled);
    let (d, _, (limited, why)) = normalize(&mut History::default(), &b, 1, 20, 3, 10, t0());
    assert_eq!((d, limited, why.0), (3, true, "ScaleUpLimit"));
}

#[test]
fn scale_events_within_the_period_count_against_the_policy() {
    let b = up(vec![pods_policy(4, 60)], Select::Max);
    let mut h = History::default();
    h.scale_up.push(ScaleEvent {
        change: 4,
        at: t0() - Duration::from_secs(30),
    });
    // 1 -> 5 happened 30 s ago: the period started at 1, so 5 is all it allows.
    let (d, _, _) = normalize(&mut h, &b, 1, 20, 5, 10, t0());
    assert_eq!(d, 5);
    let mut h = History::default();
    h.scale_up.push(ScaleEvent {
        change: 4,
        at: t0() - Duration::from_secs(61),
    });
    let (d, _, _) = normalize(&mut h, &b, 1, 20, 5, 10, t0());
    assert_eq!(d, 9);
}

#[test]
fn min_max_clamping_reasons() {
    let b = Behavior::default();
    let (d, _, (limited, why)) = normalize(&mut History::default(), &b, 1, 4, 3, 6, t0());
    assert_eq!((d, limited, why.0), (4, true, "TooManyReplicas"));
    let b = Behavior {
        up: Rules::default_up(),
        down: Rules {
            window: Duration::ZERO,
            ..Rules::default_down()
        },
    };
    let (d, _, (limited, why)) = normalize(&mut History::default(), &b, 2, 10, 3, 1, t0());
    assert_eq!((d, limited, why.0), (2, true, "TooFewReplicas"));
    let (d, _, (limited, why)) = normalize(&mut History::default(), &b, 1, 10, 3, 3, t0());
    assert_eq!((d, limited, why.0), (3, false, "DesiredWithinRange"));
}

#[test]
fn quantities_format_as_kube() {
    assert_eq!(milli_quantity(250), "250m");
    assert_eq!(milli_quantity(2000), "2");
    assert_eq!(milli_quantity(64_000_000), "64k");
    assert_eq!(milli_quantity(0), "0");
}

fn hpa(spec: Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "uid": "hpa-uid", "generation": 2, "resourceVersion": "5"},
        "spec": spec,
    })
}

fn cpu_hpa(min: i64, max: i64) -> Value {
    hpa(json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": min, "maxReplicas": max,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
    }))
}

fn deployment(replicas: i64) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}}})
}

fn usage(pods: &[(&str, u64)]) -> Result<Vec<PodUsage>, String> {
    Ok(pods
        .iter()
        .map(|(n, millicores)| PodUsage {
            namespace: "default".into(),
            name: n.to_string(),
            timestamp: t0(),
            window: Duration::from_secs(30),
            containers: vec![ContainerUsage {
                name: "c".into(),
                cpu_nanocores: millicores * 1_000_000,
                memory_bytes: 1 << 20,
            }],
        })
        .collect())
}

fn cond<'a>(status: &'a Value, ty: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == ty)
        .unwrap_or_else(|| panic!("no {ty} in {status}"))
}

fn run_decide(
    h: &Value,
    target: Option<&Value>,
    pods: &[Value],
    u: &Result<Vec<PodUsage>, String>,
    hist: &mut History,
) -> super::status::Decision {
    let refs: Vec<&Value> = pods.iter().collect();
    decide(
        &Observed {
            hpa: h,
            target,
            pods: &refs,
            usage: u,
        },
        hist,
        t0(),
    )
}

#[test]
fn decide_scales_up_with_kube_status_and_event() {
    let h = cpu_hpa(1, 10);
    let d = deployment(1);
    let pods = vec![old_pod("p0", "100m")];
    let mut hist = History::default();
    let out = run_decide(&h, Some(&d), &pods, &usage(&[("p0", 200)]), &mut hist);
    assert_eq!(out.scale_to, Some(4));
    assert_eq!(out.status["currentReplicas"], 1);
    assert_eq!(out.status["desiredReplicas"], 4);
    assert_eq!(out.status["observedGeneration"], 2);
    assert_eq!(out.status["lastScaleTime"], rfc3339(t0()));
    assert_eq!(
        out.status["currentMetrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 200, "averageValue": "200m"}}}])
    );
    assert_eq!(
        cond(&out.status, "AbleToScale")["reason"],
        "SucceededRescale"
    );
    assert_eq!(
        cond(&out.status, "ScalingActive")["reason"],
        "ValidMetricFound"
    );
    assert_eq!(
        cond(&out.status, "ScalingActive")["message"],
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
    );
    assert_eq!(
        cond(&out.status, "ScalingLimited")["reason"],
        "DesiredWithinRange"
    );
    assert!(out.events.iter().any(|e| e.1 == "SuccessfulRescale"
        && e.2 == "New size: 4; reason: cpu resource utilization (percentage of request) above target"));
    assert_eq!(hist.scale_up.len(), 1);
}

#[test]
fn decide_target_at_zero_disables_scaling() {
    let out = run_decide(
        &cpu_hpa(1, 10),
        Some(&deployment(0)),
        &[],
        &usage(&[]),
        &mut History::default(),
    );
    assert_eq!(out.scale_to, None);
    assert_eq!(out.status["desiredReplicas"], 0);
    let c = cond(&out.status, "ScalingActive");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("ScalingDisabled"))
    );
}

#[test]
fn decide_without_metrics_source() {
    let pods = vec![old_pod("p0", "100m")];
    let out = run_decide(
        &cpu_hpa(1, 10),
        Some(&deployment(1)),
        &pods,
        &Err("no metrics source".into()),
        &mut History::default(),
    );
    assert_eq!(out.scale_to, None);
    let c = cond(&out.status, "ScalingActive");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "FailedGetResourceMetric");
    assert_eq!(
        c["message"],
        "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics source"
    );
    let reasons: Vec<&str> = out.events.iter().map(|e| e.1).collect();
    assert_eq!(
        reasons,
        ["FailedGetResourceMetric", "FailedComputeMetricsReplicas"]
    );
}

#[test]
fn decide_missing_target_is_failed_get_scale() {
    let out = run_decide(
        &cpu_hpa(1, 10),
        None,
        &[],
        &usage(&[]),
        &mut History::default(),
    );
    let c = cond(&out.status, "AbleToScale");
    assert_eq!(c["reason"], "FailedGetScale");
    assert_eq!(
        c["message"],
        "the HPA controller was unable to get the target's current scale: deployments.apps \"web\" not found"
    );
    assert_eq!(out.events[0].1, "FailedGetScale");
}

#[test]
fn decide_one_failing_metric_of_two_still_scales_up() {
    let mut h = cpu_hpa(1, 10);
    h["spec"]["metrics"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Pods", "pods": {}}));
    let pods = vec![old_pod("p0", "100m")];
    let out = run_decide(
        &h,
        Some(&deployment(1)),
        &pods,
        &usage(&[("p0", 200)]),
        &mut History::default(),
    );
    assert_eq!(out.scale_to, Some(4));
    // ...but not down: an invalid metric might be the one asking for more.
    let out = run_decide(
        &h,
        Some(&deployment(4)),
        &pods,
        &usage(&[("p0", 10)]),
        &mut History::default(),
    );
    assert_eq!(out.scale_to, None);
    assert_eq!(
        cond(&out.status, "ScalingActive")["reason"],
        "InvalidMetricSourceType"
    );
}

#[test]
fn malformed_hpas_never_panic() {
    let bad = [
        json!({"scaleTargetRef": "web", "maxReplicas": 3}),
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": "3"}),
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 1e30}),
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 5, "maxReplicas": 2}),
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}}),
        json!("spec"),
    ];
    for spec in bad {
        let out = run_decide(
            &hpa(spec.clone()),
            Some(&deployment(1)),
            &[],
            &usage(&[]),
            &mut History::default(),
        );
        assert_eq!(out.scale_to, None, "{spec}");
        assert_eq!(
            cond(&out.status, "ScalingActive")["reason"],
            "InvalidSpec",
            "{spec}"
        );
    }
    // Huge but well-typed numbers are clamped to kube's int32, and odd behavior values bounded.
    let h = hpa(json!({
        "scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 9_223_372_036_854_775_807i64,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 9_223_372_036_854_775_807i64}}}],
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 9_223_372_036_854_775_807i64,
                                  "policies": [{"type": "Percent", "value": 9_223_372_036_854_775_807i64, "periodSeconds": -4}]}},
    }));
    let spec = HpaSpec::of(&h).unwrap();
    assert_eq!(spec.max_replicas, i32::MAX);
    let pods = vec![old_pod("p0", "100m")];
    let _ = run_decide(
        &h,
        Some(&deployment(1)),
        &pods,
        &usage(&[("p0", u64::MAX / 1_000_000)]),
        &mut History::default(),
    );
    let _ = run_decide(
        &h,
        Some(&deployment(i64::from(i32::MAX))),
        &pods,
        &usage(&[("p0", 1)]),
        &mut History::default(),
    );
}

#[test]
fn unchanged_status_keeps_transition_times() {
    let mut h = cpu_hpa(1, 10);
    let pods = vec![old_pod("p0", "100m")];
    let mut hist = History::default();
    let first = run_decide(
        &h,
        Some(&deployment(1)),
        &pods,
        &usage(&[("p0", 50)]),
        &mut hist,
    );
    assert_eq!(first.scale_to, None);
    h["status"] = first.status.clone();
    let refs: Vec<&Value> = pods.iter().collect();
    let later = decide(
        &Observed {
            hpa: &h,
            target: Some(&deployment(1)),
            pods: &refs,
            usage: &usage(&[("p0", 50)]),
        },
        &mut hist,
        t0() + Duration::from_secs(30),
    );
    assert_eq!(later.status, first.status);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn desired_stays_within_min_and_max(
        current in 1i32..40,
        min in 1i32..8,
        extra in 0i32..40,
        load in proptest::collection::vec(0u64..5000, 40),
    ) {
        let max = min + extra;
        let h = cpu_hpa(i64::from(min), i64::from(max));
        let pods: Vec<Value> = (0..current).map(|i| old_pod(&format!("p{i}"), "100m")).collect();
        let names: Vec<String> = (0..current).map(|i| format!("p{i}")).collect();
        let u: Vec<(&str, u64)> = names.iter().zip(&load).map(|(n, l)| (n.as_str(), *l)).collect();
        let out = run_decide(&h, Some(&deployment(i64::from(current))), &pods, &usage(&u), &mut History::default());
        let desired = out.status["desiredReplicas"].as_i64().unwrap() as i32;
        prop_assert!(desired >= min && desired <= max, "{desired} not in [{min}, {max}]");
    }

    #[test]
    fn usage_at_target_never_changes_the_count(current in 1i32..50, target in 1i64..200) {
        let mut h = cpu_hpa(1, 100);
        h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = json!(target);
        let pods: Vec<Value> = (0..current).map(|i| old_pod(&format!("p{i}"), "1000m")).collect();
        let names: Vec<String> = (0..current).map(|i| format!("p{i}")).collect();
        let u: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), target as u64 * 10)).collect();
        let out = run_decide(&h, Some(&deployment(i64::from(current))), &pods, &usage(&u), &mut History::default());
        prop_assert_eq!(out.scale_to, None);
        prop_assert_eq!(out.status["desiredReplicas"].as_i64(), Some(i64::from(current)));
    }

    #[test]
    fn no_scale_down_within_the_window_after_a_higher_recommendation(
        current in 1i32..50,
        higher in 0i32..50,
        lower in 0i32..50,
        after in 0u64..300,
    ) {
        let b = Behavior::default();
        let mut hist = History::default();
        normalize(&mut hist, &b, 0, 1000, current, current + higher, t0());
        let (d, _, _) = normalize(&mut hist, &b, 0, 1000, current, lower, t0() + Duration::from_secs(after));
        prop_assert!(d >= current, "scaled down to {d} from {current} within the window");
    }
}
