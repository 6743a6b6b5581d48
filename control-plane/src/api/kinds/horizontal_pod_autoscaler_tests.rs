use super::*;
use crate::api::kinds::common::errs::Cause;

fn hpa(spec: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn base() -> Value {
    json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}]})
}

fn errors(spec: Value) -> Vec<String> {
    let mut e = Errs::default();
    HorizontalPodAutoscaler.validate(&mut e, &hpa(spec));
    e.0.iter().map(Cause::to_line).collect()
}

fn with(path: &str, v: Value) -> Value {
    let mut s = base();
    let (parent, key) = path.rsplit_once('/').unwrap();
    s.pointer_mut(parent).unwrap_or_else(|| panic!("{path}"))[key] = v;
    s
}

#[test]
fn validation_as_kube_apiserver() {
    assert_eq!(errors(base()), Vec::<String>::new());
    let cases: Vec<(Value, &[&str])> = vec![
        (with("/maxReplicas", json!(0)), &["spec.maxReplicas: Invalid value: 0: must be greater than 0", "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"]),
        (with("/minReplicas", json!(0)), &["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]),
        (with("/minReplicas", json!(11)), &["spec.maxReplicas: Invalid value: 10: must be greater than or equal to `minReplicas`"]),
        (with("/maxReplicas", json!("x")), &["spec.maxReplicas: Invalid value: \"x\": must be a 32-bit integer", "spec.maxReplicas: Invalid value: 0: must be greater than 0", "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"]),
        (with("/scaleTargetRef", json!({})), &["spec.scaleTargetRef.kind: Required value", "spec.scaleTargetRef.name: Required value"]),
        (with("/scaleTargetRef/name", json!("a/b")), &["spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'"]),
        (with("/metrics/0/resource/target/averageUtilization", json!(0)), &["spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"]),
        (with("/metrics/0/resource/name", json!("")), &["spec.metrics[0].resource.name: Required value: must specify a resource name"]),
        (with("/metrics/0/resource/target", json!({"type": "Bogus", "averageValue": "0"})), &[
            "spec.metrics[0].resource.target.type: Invalid value: \"Bogus\": must be either Utilization, Value, or AverageValue",
            "spec.metrics[0].resource.target.averageValue: Invalid value: 0: must be positive"]),
        (with("/metrics/0/resource/target/averageValue", json!("100m")), &["spec.metrics[0].resource.target.averageValue: Forbidden: may not set both a target raw value and a target utilization"]),
        (with("/metrics/0/type", json!("Pods")), &["spec.metrics[0].pods: Required value: must populate information for the given metric source"]),
        (with("/metrics/0/pods", json!({"metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "1"}})), &["spec.metrics[0].pods: Forbidden: must populate the given metric source only"]),
        (with("/metrics/0/type", json!("Nope")), &[
            "spec.metrics[0].type: Unsupported value: \"Nope\": supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\"",
            "spec.metrics[0].type: Unsupported value: \"Nope\": supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""]),
        (with("/metrics", json!([{"type": "Pods", "pods": {"metric": {"name": ""}, "target": {"type": "AverageValue"}}}])), &[
            "spec.metrics[0].pods.metric.name: Required value: must specify a metric name",
            "spec.metrics[0].pods.target.averageValue: Required value: must specify a positive target averageValue"]),
        (with("/metrics", json!([{"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "1", "averageValue": "2"}}}])), &[
            "spec.metrics[0].external.target.value: Forbidden: may not set both a target value for metric and a per-pod target"]),
        (with("/metrics", json!([{"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "rps"}, "target": {"type": "Value"}}}])), &[
            "spec.metrics[0].object.target.averageValue: Required value: must set either a target value or averageValue"]),
        (with("/metrics", json!([{"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "", "target": {"type": "Utilization", "averageUtilization": 5}}}])), &[
            "spec.metrics[0].containerResource.container: Required value: must specify a container"]),
    ];
    for (spec, want) in cases {
        assert_eq!(errors(spec.clone()), want.to_vec(), "{spec}");
    }
}

#[test]
fn behavior_validation() {
    let mut s = base();
    s["behavior"] = json!({"scaleUp": {"stabilizationWindowSeconds": 3601, "selectPolicy": "Fast",
        "policies": [{"type": "Pods", "value": 0, "periodSeconds": 1801}, {"type": "Nodes", "value": 1, "periodSeconds": 0}]},
        "scaleDown": {"stabilizationWindowSeconds": -1, "policies": []}});
    assert_eq!(
        errors(s),
        [
            "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 3601: must be less than or equal to 3600",
            "spec.behavior.scaleUp.selectPolicy: Unsupported value: \"Fast\": supported values: \"Disabled\", \"Max\", \"Min\"",
            "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero",
            "spec.behavior.scaleUp.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
            "spec.behavior.scaleUp.policies[1].type: Unsupported value: \"Nodes\": supported values: \"Percent\", \"Pods\"",
            "spec.behavior.scaleUp.policies[1].periodSeconds: Invalid value: 0: must be greater than zero",
            "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: -1: must be greater than or equal to zero",
            "spec.behavior.scaleDown.policies: Required value: must specify at least one Policy",
        ]
    );
}

#[test]
fn defaults_as_kube_v2() {
    let mut o =
        hpa(json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}));
    apply_defaults(&mut o);
    assert_eq!(o["spec"]["minReplicas"], 1);
    assert_eq!(o["spec"]["metrics"], json!([hpa_v1::cpu_utilization(80)]));
    assert!(
        o["spec"].get("behavior").is_none(),
        "no behavior unless given"
    );
    o["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
    apply_defaults(&mut o);
    assert_eq!(
        o["spec"]["behavior"],
        json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15}]}})
    );
    let again = o.clone();
    apply_defaults(&mut o);
    assert_eq!(o, again, "idempotent");
    let mut odd = hpa(json!("not an object"));
    apply_defaults(&mut odd);
    assert_eq!(odd["spec"], "not an object");
}

#[test]
fn targets_column_as_kube_1_32() {
    let cpu = hpa_v1::cpu_utilization(50);
    assert_eq!(format_metrics(&[], &[]), "<none>");
    assert_eq!(
        format_metrics(std::slice::from_ref(&cpu), &[]),
        "cpu: <unknown>/50%"
    );
    let cur = json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "20m"}}});
    assert_eq!(
        format_metrics(std::slice::from_ref(&cpu), &[cur]),
        "cpu: 45%/50%"
    );
    let mem = json!({"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}});
    let mem_cur = json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "10Mi"}}});
    assert_eq!(
        format_metrics(std::slice::from_ref(&mem), &[mem_cur]),
        "memory: 10Mi/100Mi"
    );
    let pods = json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}});
    let ext = json!({"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "AverageValue", "averageValue": "30"}}});
    assert_eq!(
        format_metrics(&[cpu, mem, pods, ext], &[]),
        "cpu: <unknown>/50%, memory: <unknown>/100Mi + 2 more..."
    );
}

#[test]
fn row_has_kubectl_columns() {
    let mut o = hpa(base());
    o["status"] = json!({"currentReplicas": 2});
    let (cells, _) = hpa_row(&o, SystemTime::now());
    assert_eq!(
        cells[..6],
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: <unknown>/50%"),
            json!("1"),
            json!(10),
            json!(2)
        ]
    );
    assert_eq!(HPA_COLUMNS.len(), cells.len());
}
