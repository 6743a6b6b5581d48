//! Validation shared by the replicated workloads (Deployments, ReplicaSets, DaemonSets): counts,
//! selector against template labels, and the pod template.

use serde_json::{Map, Value};

use super::errs::{int_field, nonnegative, Errs};
use super::names::{selector_selects_template, validate_labels};
use super::pod_spec::validate_pod_spec;

pub(crate) fn validate_workload(e: &mut Errs, resource: &str, spec: &Value) {
    nonnegative(e, spec, "replicas", "spec");
    nonnegative(e, spec, "minReadySeconds", "spec");
    nonnegative(e, spec, "revisionHistoryLimit", "spec");
    if resource == "deployments" {
        if let Some(p) = int_field(spec, "progressDeadlineSeconds") {
            if p <= 0 {
                e.invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(p),
                    "must be greater than 0",
                );
            } else if p <= int_field(spec, "minReadySeconds").unwrap_or(0) {
                e.invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(p),
                    "must be greater than minReadySeconds",
                );
            }
        }
        if let Some(t) = spec.pointer("/strategy/type").and_then(Value::as_str) {
            if !["Recreate", "RollingUpdate"].contains(&t) {
                e.not_supported("spec.strategy.type", t, &["Recreate", "RollingUpdate"]);
            }
        }
    }
    let template_labels = spec.pointer("/template/metadata/labels");
    let selector = spec.get("selector").filter(|s| !s.is_null());
    // ReplicationControllers use a plain map selector that defaults to the template labels.
    if resource == "replicationcontrollers" {
        if let Some(Value::Object(sel)) = selector {
            validate_labels(e, selector, "spec.selector");
            let labels = template_labels.and_then(Value::as_object);
            if !sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                e.invalid(
                    "spec.template.metadata.labels",
                    template_labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    } else {
        match selector {
            None => e.required("spec.selector", ""),
            Some(sel) => {
                let empty = sel
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && sel
                        .get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty);
                if empty {
                    let kind = match resource {
                        "deployments" => "deployment",
                        "replicasets" => "replicaset",
                        "statefulsets" => "statefulset",
                        _ => "daemonset",
                    };
                    e.invalid_raw(
                        "spec.selector",
                        // Go's %#v of the dereferenced *metav1.LabelSelector.
                        "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}",
                        &format!("empty selector is invalid for {kind}"),
                    );
                } else {
                    selector_selects_template(e, sel, template_labels);
                }
            }
        }
    }
    let Some(template) = spec.get("template").filter(|t| !t.is_null()) else {
        e.required("spec.template", "");
        return;
    };
    validate_labels(e, template_labels, "spec.template.metadata.labels");
    let Some(pod_spec) = template.get("spec") else {
        e.required("spec.template.spec.containers", "");
        return;
    };
    let restart: &[&str] = if resource == "statefulsets"
        || resource == "daemonsets"
        || resource == "deployments"
        || resource == "replicasets"
        || resource == "replicationcontrollers"
    {
        &["Always"]
    } else {
        &["Always", "OnFailure", "Never"]
    };
    validate_pod_spec(e, pod_spec, "spec.template.spec", Some(restart));
}
