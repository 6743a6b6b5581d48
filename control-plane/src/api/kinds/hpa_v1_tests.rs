use super::*;
use proptest::prelude::*;

fn v2(spec: Value, status: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"keep": "me"}},
        "spec": spec, "status": status})
}

#[test]
fn cpu_target_and_status_are_v1_fields() {
    let obj = v2(
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
            "metrics": [cpu_utilization(50)]}),
        json!({"currentReplicas": 2, "desiredReplicas": 2,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "20m"}}}]}),
    );
    let v1 = from_v2(obj.clone());
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    assert!(v1["spec"].get("metrics").is_none());
    assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 45);
    let ann = v1["metadata"]["annotations"].as_object().unwrap();
    assert!(
        !ann.contains_key(METRICS),
        "the cpu metric is v1's own field"
    );
    // The raw value v1 cannot say is kept.
    assert!(ann[CURRENT_METRICS].as_str().unwrap().contains("20m"));
    assert_eq!(to_v2(v1).unwrap(), obj);
}

#[test]
fn what_v1_cannot_say_rides_in_annotations() {
    let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}});
    let behavior = json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}});
    let conditions = json!([{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
    let obj = v2(
        json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
            "metrics": [mem, cpu_utilization(70)], "behavior": behavior}),
        json!({"conditions": conditions}),
    );
    let v1 = from_v2(obj.clone());
    let ann = &v1["metadata"]["annotations"];
    let metrics: Value = serde_json::from_str(ann[METRICS].as_str().unwrap()).unwrap();
    assert_eq!(
        metrics,
        json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}])
    );
    let b: Value = serde_json::from_str(ann[BEHAVIOR].as_str().unwrap()).unwrap();
    assert_eq!(
        b["ScaleUp"]["Policies"][0]["PeriodSeconds"], 15,
        "the internal type's Go names"
    );
    assert!(v1["spec"].get("behavior").is_none() && v1["status"].get("conditions").is_none());
    assert_eq!(to_v2(v1).unwrap(), obj);
}

#[test]
fn v1_bodies_convert_and_bad_ones_are_refused() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}});
    let out = to_v2(v1.clone()).unwrap();
    assert_eq!(out["apiVersion"], "autoscaling/v2");
    assert_eq!(out["spec"]["metrics"], json!([cpu_utilization(50)]));
    let mut bad = v1;
    bad["spec"]["targetCPUUtilizationPercentage"] = json!("lots");
    let err = to_v2(bad).unwrap_err();
    assert!(err.contains("cannot unmarshal string into Go struct field HorizontalPodAutoscalerSpec.spec.targetCPUUtilizationPercentage of type int32"), "{err}");
    // A malformed annotation is ignored (as Kubernetes), never a failure.
    let odd = json!({"metadata": {"annotations": {METRICS: "{", BEHAVIOR: "[]"}}, "spec": {"maxReplicas": 1}});
    let out = to_v2(odd).unwrap();
    assert!(out["spec"].get("metrics").is_none() && out["spec"].get("behavior").is_none());
    assert_eq!(out["metadata"]["annotations"], json!({}));
    // Kubernetes' Go-named behavior, with nil pointers.
    let go = json!({"metadata": {}, "spec": {"maxReplicas": 1}});
    let mut go = go;
    go["metadata"]["annotations"] = json!({BEHAVIOR: r#"{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":300,"SelectPolicy":"Max","Policies":[{"Type":"Percent","Value":100,"PeriodSeconds":15}]}}"#});
    let out = to_v2(go).unwrap();
    assert_eq!(
        out["spec"]["behavior"],
        json!({"scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}})
    );
}

fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("100m")),
        Just(json!("1")),
        Just(json!("64Mi")),
        Just(json!("2k"))
    ]
}

fn selector() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(Just(json!({"matchLabels": {"app": "web"}})))
}

fn with_selector(mut metric: Value, sel: Option<Value>) -> Value {
    if let Some(s) = sel {
        metric["selector"] = s;
    }
    metric
}

/// A valid v2 metric other than a cpu Utilization one, with the target type that names the field
/// it sets (the only form a v1 round trip can restore: v1 has no target types).
fn other_metric() -> impl Strategy<Value = Value> {
    prop_oneof![
        (prop_oneof![Just("memory"), Just("cpu")], quantity()).prop_map(|(n, q)| json!({"type": "Resource", "resource": {"name": n, "target": {"type": "AverageValue", "averageValue": q}}})),
        (1..200i64, quantity(), any::<bool>()).prop_map(|(u, q, util)| {
            let target = if util { json!({"type": "Utilization", "averageUtilization": u}) } else { json!({"type": "AverageValue", "averageValue": q}) };
            json!({"type": "ContainerResource", "containerResource": {"name": "memory", "container": "app", "target": target}})
        }),
        (quantity(), selector()).prop_map(|(q, s)| json!({"type": "Pods", "pods": {"metric": with_selector(json!({"name": "qps"}), s), "target": {"type": "AverageValue", "averageValue": q}}})),
        (quantity(), selector(), any::<bool>()).prop_map(|(q, s, avg)| {
            let target = if avg { json!({"type": "AverageValue", "averageValue": q}) } else { json!({"type": "Value", "value": q}) };
            json!({"type": "Object", "object": {"describedObject": {"apiVersion": "v1", "kind": "Service", "name": "s"}, "metric": with_selector(json!({"name": "rps"}), s), "target": target}})
        }),
        (quantity(), selector(), any::<bool>()).prop_map(|(q, s, avg)| {
            let target = if avg { json!({"type": "AverageValue", "averageValue": q}) } else { json!({"type": "Value", "value": q}) };
            json!({"type": "External", "external": {"metric": with_selector(json!({"name": "queue"}), s), "target": target}})
        }),
    ]
}

/// The status of a spec metric, as the controller writes it.
fn status_of(m: &Value, u: i64) -> Value {
    let ty = m["type"].as_str().unwrap();
    let key = match ty {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        _ => "external",
    };
    let mut src = m[key].clone();
    let src = src.as_object_mut().unwrap();
    src.remove("target");
    src.insert(
        "current".into(),
        match ty {
            "Resource" | "ContainerResource" => {
                json!({"averageUtilization": u, "averageValue": "5m"})
            }
            "Pods" => json!({"averageValue": "5"}),
            _ => json!({"value": "7", "averageValue": "3"}),
        },
    );
    json!({"type": ty, key: src})
}

prop_compose! {
    fn v2_hpa()(others in proptest::collection::vec(other_metric(), 0..4),
                cpu in proptest::option::of(1..200i64),
                min in proptest::option::of(1..5i64),
                with_status in any::<bool>(),
                behavior in proptest::option::of((0..3600i64, prop_oneof![Just("Max"), Just("Min"), Just("Disabled")], 1..1800i64)),
                conditions in any::<bool>()) -> Value {
        let mut metrics = others;
        // Kubernetes puts v1's cpu target after the other metrics; a v2 object written in that
        // order comes back identical.
        if let Some(c) = cpu { metrics.push(cpu_utilization(c)); }
        let mut spec = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 10});
        if let Some(m) = min { spec["minReplicas"] = json!(m); }
        if !metrics.is_empty() { spec["metrics"] = json!(metrics); }
        if let Some((w, p, s)) = behavior {
            spec["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": w, "selectPolicy": p, "policies": [{"type": "Percent", "value": 10, "periodSeconds": s}]}});
        }
        let mut status = json!({"currentReplicas": 1, "desiredReplicas": 2});
        if with_status && !metrics.is_empty() {
            status["currentMetrics"] = json!(metrics.iter().map(|m| status_of(m, 33)).collect::<Vec<_>>());
        }
        if conditions {
            status["conditions"] = json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics"}]);
        }
        v2(spec, status)
    }
}

proptest! {
    #[test]
    fn v2_to_v1_to_v2_loses_nothing(obj in v2_hpa()) {
        let v1 = from_v2(obj.clone());
        prop_assert_eq!(&v1["apiVersion"], "autoscaling/v1");
        prop_assert!(v1["spec"].get("metrics").is_none() && v1["spec"].get("behavior").is_none());
        prop_assert_eq!(to_v2(v1).unwrap(), obj);
    }

    #[test]
    fn v1_to_v2_to_v1_loses_nothing(obj in v2_hpa()) {
        // Any v1 object a client holds is one the server produced.
        let v1 = from_v2(obj);
        prop_assert_eq!(from_v2(to_v2(v1.clone()).unwrap()), v1);
    }
}
