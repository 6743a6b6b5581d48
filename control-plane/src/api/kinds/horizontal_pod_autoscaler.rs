//! The HorizontalPodAutoscaler kind (`autoscaling/v2`, stored; also served as `autoscaling/v1`
//! through [`super::hpa_v1`]): registry row, validation and defaults as kube-apiserver's
//! (`pkg/apis/autoscaling/validation`, `v2/defaults.go`), table columns and OpenAPI schema.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::common::columns::{col, created_age, name, s, Col, Row, AGE, NAME};
use super::common::errs::Errs;
use super::common::names::dns1123_label;
use super::hpa_v1;
use super::info::{ResourceInfo, Subresource, ALL_VERBS, STATUS_VERBS};
use super::strategy::{AltVersion, Kind};
use apimachinery::quantity;
use apimachinery::validation::path_segment_name;

/// The `HorizontalPodAutoscaler` strategy.
pub(crate) struct HorizontalPodAutoscaler;

const fn status_at(version: &'static str) -> Subresource {
    Subresource {
        name: "status",
        group: "autoscaling",
        version,
        kind: "HorizontalPodAutoscaler",
        verbs: STATUS_VERBS,
    }
}

const ROW: ResourceInfo = ResourceInfo {
    group: "autoscaling",
    version: "v2",
    resource: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    kind: "HorizontalPodAutoscaler",
    namespaced: true,
    short_names: &["hpa"],
    categories: &["all"],
    verbs: ALL_VERBS,
    subresources: &[status_at("v2")],
};

static INFO: ResourceInfo = ROW;

static OTHER_VERSIONS: &[AltVersion] = &[AltVersion {
    info: ResourceInfo {
        version: "v1",
        subresources: &[status_at("v1")],
        ..ROW
    },
    to_stored: hpa_v1::to_v2,
    from_stored: hpa_v1::from_v2,
    schema: |g| g.subschema_for::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(),
}];

impl Kind for HorizontalPodAutoscaler {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_spec(e, object.get("spec").unwrap_or(&Value::Null));
        for key in ["currentReplicas", "desiredReplicas"] {
            if let Some(n) = object.pointer(&format!("/status/{key}")) {
                if n.as_i64().is_none_or(|n| n < 0) {
                    e.invalid(
                        &format!("status.{key}"),
                        n,
                        "must be greater than or equal to 0",
                    );
                }
            }
        }
    }

    fn apply_defaults(&self, object: &mut Value) {
        apply_defaults(object);
    }

    fn columns(&self) -> &'static [Col] {
        HPA_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        hpa_row(object, now)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>()
    }

    fn other_versions(&self) -> &'static [AltVersion] {
        OTHER_VERSIONS
    }
}

// ---- validation (pkg/apis/autoscaling/validation/validation.go) ----

/// An integer field: `None` when absent; a non-integer is reported (kube-apiserver's decoder
/// refuses it) so that no controller ever reads one.
fn int(e: &mut Errs, holder: &Value, key: &str, path: &str) -> Option<i64> {
    match holder.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
            Some(n) => Some(n),
            None => {
                e.invalid(path, v, "must be a 32-bit integer");
                None
            }
        },
    }
}

fn string<'a>(e: &mut Errs, holder: &'a Value, key: &str, path: &str) -> &'a str {
    match holder.get(key) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(v) => {
            e.invalid(path, v, "must be a string");
            ""
        }
    }
}

/// An object-valued field: `None` when absent; anything but an object is reported.
fn object<'a>(e: &mut Errs, holder: &'a Value, key: &str, path: &str) -> Option<&'a Value> {
    match holder.get(key) {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(v) => {
            e.invalid(path, v, "must be an object");
            None
        }
    }
}

fn array<'a>(e: &mut Errs, holder: &'a Value, key: &str, path: &str) -> &'a [Value] {
    match holder.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(v) => {
            e.invalid(path, v, "must be an array");
            &[]
        }
    }
}

fn validate_spec(e: &mut Errs, spec: &Value) {
    let min = int(e, spec, "minReplicas", "spec.minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        // HPAScaleToZero is an alpha gate, off as in kube-apiserver's defaults.
        e.invalid(
            "spec.minReplicas",
            &Value::from(m),
            "must be greater than or equal to 1",
        );
    }
    let max = int(e, spec, "maxReplicas", "spec.maxReplicas").unwrap_or(0);
    if max < 1 {
        e.invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than 0",
        );
    }
    if min.is_some_and(|m| max < m) {
        e.invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than or equal to `minReplicas`",
        );
    }
    let target = object(e, spec, "scaleTargetRef", "spec.scaleTargetRef");
    cross_version_ref(e, target.unwrap_or(&Value::Null), "spec.scaleTargetRef");
    for (i, m) in array(e, spec, "metrics", "spec.metrics").iter().enumerate() {
        metric_spec(e, m, &format!("spec.metrics[{i}]"));
    }
    if let Some(b) = object(e, spec, "behavior", "spec.behavior") {
        for dir in ["scaleUp", "scaleDown"] {
            let path = format!("spec.behavior.{dir}");
            if let Some(rules) = object(e, b, dir, &path) {
                scaling_rules(e, rules, &path);
            }
        }
    }
}

fn cross_version_ref(e: &mut Errs, r: &Value, path: &str) {
    for key in ["kind", "name"] {
        let p = format!("{path}.{key}");
        let v = string(e, r, key, &p);
        if v.is_empty() {
            if !r.get(key).is_some_and(|x| !x.is_null() && !x.is_string()) {
                e.required(&p, "");
            }
        } else {
            for msg in path_segment_name(v) {
                e.invalid_str(&p, v, &msg);
            }
        }
    }
}

const SELECT_POLICIES: &[&str] = &["Disabled", "Max", "Min"];
const POLICY_TYPES: &[&str] = &["Percent", "Pods"];
const METRIC_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn scaling_rules(e: &mut Errs, rules: &Value, path: &str) {
    let window_path = format!("{path}.stabilizationWindowSeconds");
    if let Some(w) = int(e, rules, "stabilizationWindowSeconds", &window_path) {
        if w < 0 {
            e.invalid(
                &window_path,
                &Value::from(w),
                "must be greater than or equal to zero",
            );
        }
        if w > 3600 {
            e.invalid(
                &window_path,
                &Value::from(w),
                "must be less than or equal to 3600",
            );
        }
    }
    let select_path = format!("{path}.selectPolicy");
    if rules.get("selectPolicy").is_some_and(|v| !v.is_null()) {
        let p = string(e, rules, "selectPolicy", &select_path);
        if !SELECT_POLICIES.contains(&p) {
            e.not_supported(&select_path, p, SELECT_POLICIES);
        }
    }
    let policies_path = format!("{path}.policies");
    let policies = array(e, rules, "policies", &policies_path);
    if policies.is_empty() {
        e.required(&policies_path, "must specify at least one Policy");
    }
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{policies_path}[{i}]");
        let t = string(e, p, "type", &format!("{at}.type"));
        if !POLICY_TYPES.contains(&t) {
            e.not_supported(&format!("{at}.type"), t, POLICY_TYPES);
        }
        let value = int(e, p, "value", &format!("{at}.value")).unwrap_or(0);
        if value <= 0 {
            e.invalid(
                &format!("{at}.value"),
                &Value::from(value),
                "must be greater than zero",
            );
        }
        let period_path = format!("{at}.periodSeconds");
        let period = int(e, p, "periodSeconds", &period_path).unwrap_or(0);
        if period <= 0 {
            e.invalid(
                &period_path,
                &Value::from(period),
                "must be greater than zero",
            );
        }
        if period > 1800 {
            e.invalid(
                &period_path,
                &Value::from(period),
                "must be less than or equal to 1800",
            );
        }
    }
}

/// The source field of each metric type, in the order kube-apiserver checks them.
const SOURCES: &[(&str, &str)] = &[
    ("Object", "object"),
    ("External", "external"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("ContainerResource", "containerResource"),
];

fn metric_spec(e: &mut Errs, m: &Value, path: &str) {
    let t = string(e, m, "type", &format!("{path}.type"));
    if t.is_empty() {
        e.required(&format!("{path}.type"), "must specify a metric source type");
    }
    if !METRIC_TYPES.contains(&t) {
        e.not_supported(&format!("{path}.type"), t, METRIC_TYPES);
    }
    let mut present = Vec::new();
    for (_, field) in SOURCES {
        let p = format!("{path}.{field}");
        let Some(src) = object(e, m, field, &p) else {
            continue;
        };
        present.push(*field);
        // Only the first source present is validated, as kube-apiserver does.
        if present.len() == 1 {
            match *field {
                "object" => object_source(e, src, &p),
                "external" => external_source(e, src, &p),
                "pods" => pods_source(e, src, &p),
                "resource" => resource_source(e, src, &p, false),
                _ => resource_source(e, src, &p, true),
            }
        }
    }
    let expected = SOURCES.iter().find(|(ty, _)| *ty == t).map(|(_, f)| *f);
    match expected {
        Some(f) if !present.contains(&f) => e.required(
            &format!("{path}.{f}"),
            "must populate information for the given metric source",
        ),
        Some(_) => {}
        // kube-apiserver's switch reports an unknown type a second time.
        None => e.not_supported(&format!("{path}.type"), t, METRIC_TYPES),
    }
    if present.len() != 1 {
        for f in present.iter().filter(|f| Some(**f) != expected) {
            e.forbidden(
                &format!("{path}.{f}"),
                "must populate the given metric source only",
            );
        }
    }
}

fn target_of<'a>(e: &mut Errs, src: &'a Value, path: &str) -> &'a Value {
    let target = object(e, src, "target", &format!("{path}.target")).unwrap_or(&Value::Null);
    metric_target(e, target, &format!("{path}.target"));
    target
}

fn metric_target(e: &mut Errs, t: &Value, path: &str) {
    let ty = string(e, t, "type", &format!("{path}.type"));
    if ty.is_empty() {
        e.required(&format!("{path}.type"), "must specify a metric target type");
    }
    if !["Utilization", "Value", "AverageValue"].contains(&ty) {
        e.invalid_str(
            &format!("{path}.type"),
            ty,
            "must be either Utilization, Value, or AverageValue",
        );
    }
    for key in ["value", "averageValue"] {
        positive_quantity(e, t, key, &format!("{path}.{key}"));
    }
    let util_path = format!("{path}.averageUtilization");
    if let Some(u) = int(e, t, "averageUtilization", &util_path).filter(|u| *u < 1) {
        e.invalid(&util_path, &Value::from(u), "must be greater than 0");
    }
}

fn positive_quantity(e: &mut Errs, holder: &Value, key: &str, path: &str) {
    let Some(v) = holder.get(key).filter(|v| !v.is_null()) else {
        return;
    };
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            e.invalid(path, other, "must be a quantity");
            return;
        }
    };
    match quantity::parse(&text) {
        None => e.invalid_str(
            path,
            &text,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        Some(q) if q <= 0.0 => e.invalid_raw(path, &text, "must be positive"),
        Some(_) => {}
    }
}

fn set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn identifier(e: &mut Errs, src: &Value, path: &str) {
    let metric = object(e, src, "metric", &format!("{path}.metric")).unwrap_or(&Value::Null);
    let p = format!("{path}.metric.name");
    let name = string(e, metric, "name", &p);
    if name.is_empty() {
        e.required(&p, "must specify a metric name");
    } else {
        for msg in path_segment_name(name) {
            e.invalid_str(&p, name, &msg);
        }
    }
}

fn object_source(e: &mut Errs, src: &Value, path: &str) {
    let described = object(
        e,
        src,
        "describedObject",
        &format!("{path}.describedObject"),
    );
    cross_version_ref(
        e,
        described.unwrap_or(&Value::Null),
        &format!("{path}.describedObject"),
    );
    identifier(e, src, path);
    let t = target_of(e, src, path);
    if !set(t, "value") && !set(t, "averageValue") {
        e.required(
            &format!("{path}.target.averageValue"),
            "must set either a target value or averageValue",
        );
    }
}

fn external_source(e: &mut Errs, src: &Value, path: &str) {
    identifier(e, src, path);
    let t = target_of(e, src, path);
    if !set(t, "value") && !set(t, "averageValue") {
        e.required(
            &format!("{path}.target.averageValue"),
            "must set either a target value for metric or a per-pod target",
        );
    }
    if set(t, "value") && set(t, "averageValue") {
        e.forbidden(
            &format!("{path}.target.value"),
            "may not set both a target value for metric and a per-pod target",
        );
    }
}

fn pods_source(e: &mut Errs, src: &Value, path: &str) {
    identifier(e, src, path);
    let t = target_of(e, src, path);
    if !set(t, "averageValue") {
        e.required(
            &format!("{path}.target.averageValue"),
            "must specify a positive target averageValue",
        );
    }
}

fn resource_source(e: &mut Errs, src: &Value, path: &str, container: bool) {
    let name_path = format!("{path}.name");
    if string(e, src, "name", &name_path).is_empty() {
        e.required(&name_path, "must specify a resource name");
    }
    if container {
        let p = format!("{path}.container");
        let c = string(e, src, "container", &p);
        if c.is_empty() {
            e.required(&p, "must specify a container");
        } else {
            for msg in dns1123_label(c) {
                e.invalid_str(&p, c, &msg);
            }
        }
    }
    let t = target_of(e, src, path);
    if !set(t, "averageUtilization") && !set(t, "averageValue") {
        e.required(
            &format!("{path}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        );
    }
    if set(t, "averageUtilization") && set(t, "averageValue") {
        e.forbidden(
            &format!("{path}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        );
    }
}

// ---- defaults (pkg/apis/autoscaling/v2/defaults.go) ----

/// `SetDefaults_HorizontalPodAutoscaler`: minReplicas 1, a CPU 80% metric when none is given,
/// and the missing parts of a given `behavior` from the default scale-up and scale-down rules.
pub(crate) fn apply_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("minReplicas").is_none_or(Value::is_null) {
        spec.insert("minReplicas".into(), json!(1));
    }
    if spec
        .get("metrics")
        .is_none_or(|m| m.is_null() || m.as_array().is_some_and(Vec::is_empty))
    {
        spec.insert("metrics".into(), json!([hpa_v1::cpu_utilization(80)]));
    }
    if let Some(b) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
        fill_rules(b, "scaleUp", default_scale_up());
        fill_rules(b, "scaleDown", default_scale_down());
    }
}

fn default_scale_up() -> Value {
    json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

fn default_scale_down() -> Value {
    json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

/// `copyHPAScalingRules`: every field the client set wins over the default's.
fn fill_rules(behavior: &mut Map<String, Value>, key: &str, mut rules: Value) {
    if let Some(given) = behavior.get(key).and_then(Value::as_object) {
        for (k, v) in given {
            if !v.is_null() {
                rules[k] = v.clone();
            }
        }
    } else if behavior.get(key).is_some_and(|v| !v.is_null()) {
        // Not an object: left for validation to refuse.
        return;
    }
    behavior.insert(key.into(), rules);
}

// ---- table (printHorizontalPodAutoscaler) ----

const HPA_COLUMNS: &[Col] = &[
    NAME,
    col("Reference", "string", 0, "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
    col("Targets", "string", 0, "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
    col("MinPods", "string", 0, "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down. It defaults to 1 pod."),
    col("MaxPods", "integer", 0, "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
    col("Replicas", "integer", 0, "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
    AGE,
];

fn hpa_row(o: &Value, now: SystemTime) -> Row {
    let reference = format!(
        "{}/{}",
        s(o, "/spec/scaleTargetRef/kind"),
        s(o, "/spec/scaleTargetRef/name")
    );
    let min = o
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or_else(|| "<unset>".to_string(), |m| m.to_string());
    let int_at = |p: &str| o.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let specs = o.pointer("/spec/metrics").and_then(Value::as_array);
    let statuses = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array);
    let cells = vec![
        name(o),
        Value::from(reference),
        Value::from(format_metrics(
            specs.map_or(&[], Vec::as_slice),
            statuses.map_or(&[], Vec::as_slice),
        )),
        Value::from(min),
        Value::from(int_at("/spec/maxReplicas")),
        Value::from(int_at("/status/currentReplicas")),
        created_age(o, now),
    ];
    (cells, None)
}

/// A quantity as printed (`resource.Quantity.String()` of the stored canonical text).
fn q(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `formatHPAMetrics` of kube 1.32: the current value (from the status at the same index) over
/// the target, `cpu: ` before resource metrics, at most two then `+ N more...`.
pub(crate) fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let status = |i: usize, source: &str, field: &str| -> Option<&Value> {
        statuses
            .get(i)?
            .get(source)
            .filter(|s| !s.is_null())?
            .pointer(&format!("/current/{field}"))
    };
    let source_status = |i: usize, source: &str| {
        statuses
            .get(i)
            .and_then(|s| s.get(source))
            .is_some_and(|s| !s.is_null())
    };
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let ty = spec.get("type").and_then(Value::as_str).unwrap_or("");
        let entry = match ty {
            "External" | "Object" => {
                let source = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = spec.pointer(&format!("/{source}/target"));
                let avg = target
                    .and_then(|t| t.get("averageValue"))
                    .filter(|v| !v.is_null());
                if let Some(avg) = avg {
                    let current = status(i, source, "averageValue")
                        .map_or_else(|| "<unknown>".to_string(), |v| q(Some(v)));
                    format!("{current}/{} (avg)", q(Some(avg)))
                } else {
                    let current = if source_status(i, source) {
                        q(status(i, source, "value"))
                    } else {
                        "<unknown>".into()
                    };
                    format!("{current}/{}", q(target.and_then(|t| t.get("value"))))
                }
            }
            "Pods" => {
                let current = if source_status(i, "pods") {
                    q(status(i, "pods", "averageValue"))
                } else {
                    "<unknown>".into()
                };
                format!("{current}/{}", q(spec.pointer("/pods/target/averageValue")))
            }
            "Resource" | "ContainerResource" => {
                let source = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let src = spec.get(source).unwrap_or(&Value::Null);
                let rname = src.get("name").and_then(Value::as_str).unwrap_or("");
                let target = src.get("target").unwrap_or(&Value::Null);
                if let Some(avg) = target.get("averageValue").filter(|v| !v.is_null()) {
                    let current = if source_status(i, source) {
                        q(status(i, source, "averageValue"))
                    } else {
                        "<unknown>".into()
                    };
                    format!("{rname}: {current}/{}", q(Some(avg)))
                } else {
                    let current = status(i, source, "averageUtilization")
                        .and_then(Value::as_i64)
                        .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
                    let target = target
                        .get("averageUtilization")
                        .and_then(Value::as_i64)
                        .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                    format!("{rname}: {current}/{target}")
                }
            }
            _ => "<unknown type>".into(),
        };
        list.push(entry);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        return format!("{} + {} more...", list.join(", "), count - 2);
    }
    list.join(", ")
}

#[cfg(test)]
#[path = "horizontal_pod_autoscaler_tests.rs"]
mod tests;
