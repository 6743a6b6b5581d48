//! `autoscaling/v1` HorizontalPodAutoscalers as conversions of the stored `autoscaling/v2` form,
//! as kube-apiserver's `pkg/apis/autoscaling/v1/conversion.go`: v1's
//! `targetCPUUtilizationPercentage` is v2's Resource cpu Utilization metric, and what v1 cannot
//! say (other metrics, behavior, current metrics, conditions) rides in the annotations Kubernetes
//! uses, so that a v1 client's read-modify-write loses none of it.
//!
//! One departure: Go writes an absent v1 quantity as `"0"`, which comes back as a target of 0; here
//! an absent quantity stays absent, so the round trip is exact.

use serde_json::{json, Map, Value};

/// Other metrics (v1 `MetricSpec` JSON).
pub(crate) const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `spec.behavior` (the Go field names of the internal type, as kube-apiserver writes it).
pub(crate) const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// `status.conditions`.
pub(crate) const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// `status.currentMetrics` (v1 `MetricStatus` JSON), all of them, the cpu one included.
pub(crate) const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

const ROUND_TRIP: [&str; 4] = [METRICS, BEHAVIOR, CONDITIONS, CURRENT_METRICS];

/// A Resource cpu Utilization metric: what v1's `targetCPUUtilizationPercentage` is in v2.
pub(crate) fn cpu_utilization(percent: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// Copies `from[fk]` to `to[tk]` when set.
fn mv(from: &Value, fk: &str, to: &mut Map<String, Value>, tk: &str) {
    if let Some(v) = from.get(fk).filter(|v| !v.is_null()) {
        to.insert(tk.into(), v.clone());
    }
}

fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/averageUtilization")
            .is_some_and(|u| !u.is_null())
}

fn bad_field(field: &str, v: &Value) -> String {
    let json_type = match v {
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Bool(_) => "bool",
        _ => "number",
    };
    format!(
        "HorizontalPodAutoscaler in version \"v1\" cannot be handled as a HorizontalPodAutoscaler: json: cannot unmarshal {json_type} into Go struct field {field} of type int32"
    )
}

fn int32_field(holder: &Value, key: &str, go_field: &str) -> Result<Option<i64>, String> {
    match holder.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Some)
            .ok_or_else(|| bad_field(go_field, v)),
    }
}

/// An annotation holding JSON, parsed; a malformed one is ignored, as Kubernetes does.
fn annotation(annotations: &Map<String, Value>, key: &str) -> Option<Value> {
    serde_json::from_str(annotations.get(key)?.as_str()?).ok()
}

// ---- v1 -> v2 ----

/// A v1 object (a request body) as v2.
///
/// # Errors
/// A v1 field of the wrong type, with kube-apiserver's decoding message.
pub(crate) fn to_v2(mut obj: Value) -> Result<Value, String> {
    let Some(o) = obj.as_object_mut() else {
        return Ok(obj);
    };
    if o.contains_key("apiVersion") {
        o.insert("apiVersion".into(), json!("autoscaling/v2"));
    }
    let mut annotations = Map::new();
    if let Some(a) = o
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        for key in ROUND_TRIP {
            if let Some(v) = a.remove(key) {
                annotations.insert(key.into(), v);
            }
        }
    }
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        spec_to_v2(spec, &annotations)?;
    }
    let current = annotation(&annotations, CURRENT_METRICS);
    let conditions = annotation(&annotations, CONDITIONS);
    if (current.is_some() || conditions.is_some()) && !o.get("status").is_some_and(Value::is_object)
    {
        o.insert("status".into(), json!({}));
    }
    if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
        let cpu = int32_field(
            &Value::Object(status.clone()),
            "currentCPUUtilizationPercentage",
            "HorizontalPodAutoscalerStatus.status.currentCPUUtilizationPercentage",
        )?;
        status.remove("currentCPUUtilizationPercentage");
        status.remove("currentMetrics");
        if let Some(cpu) = cpu {
            status.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
            );
        }
        // The annotation holds every current metric, the cpu one included.
        if let Some(Value::Array(all)) = current {
            let metrics: Vec<Value> = all.iter().map(metric_status_to_v2).collect();
            status.insert("currentMetrics".into(), Value::Array(metrics));
        }
        if let Some(c @ Value::Array(_)) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    Ok(obj)
}

fn spec_to_v2(
    spec: &mut Map<String, Value>,
    annotations: &Map<String, Value>,
) -> Result<(), String> {
    let cpu = int32_field(
        &Value::Object(spec.clone()),
        "targetCPUUtilizationPercentage",
        "HorizontalPodAutoscalerSpec.spec.targetCPUUtilizationPercentage",
    )?;
    spec.remove("targetCPUUtilizationPercentage");
    // Not v1 fields: a v1 body says these only through the annotations.
    spec.remove("metrics");
    spec.remove("behavior");
    let mut metrics: Vec<Value> = match annotation(annotations, METRICS) {
        Some(Value::Array(other)) => other.iter().map(metric_spec_to_v2).collect(),
        _ => vec![],
    };
    if let Some(cpu) = cpu {
        metrics.push(cpu_utilization(cpu));
    }
    if !metrics.is_empty() {
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(b) = annotation(annotations, BEHAVIOR).map(|b| go_fields_to_json(&b)) {
        if b.as_object().is_some_and(|m| !m.is_empty()) {
            spec.insert("behavior".into(), b);
        }
    }
    Ok(())
}

fn metric_spec_to_v2(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let mut target = Map::new();
    let mut src = Map::new();
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = get(key);
            mv(s, "name", &mut src, "name");
            mv(s, "container", &mut src, "container");
            let kind = if set(s, "targetAverageUtilization") {
                "Utilization"
            } else {
                "AverageValue"
            };
            target.insert("type".into(), json!(kind));
            mv(
                s,
                "targetAverageUtilization",
                &mut target,
                "averageUtilization",
            );
            mv(s, "targetAverageValue", &mut target, "averageValue");
            src.insert("target".into(), Value::Object(target));
            out.insert(key.into(), Value::Object(src));
        }
        "Pods" => {
            let s = get("pods");
            src.insert("metric".into(), identifier(s, "metricName", "selector"));
            target.insert("type".into(), json!("AverageValue"));
            mv(s, "targetAverageValue", &mut target, "averageValue");
            src.insert("target".into(), Value::Object(target));
            out.insert("pods".into(), Value::Object(src));
        }
        "Object" => {
            let s = get("object");
            mv(s, "target", &mut src, "describedObject");
            src.insert("metric".into(), identifier(s, "metricName", "selector"));
            let kind = if set(s, "averageValue") {
                "AverageValue"
            } else {
                "Value"
            };
            target.insert("type".into(), json!(kind));
            mv(s, "targetValue", &mut target, "value");
            mv(s, "averageValue", &mut target, "averageValue");
            src.insert("target".into(), Value::Object(target));
            out.insert("object".into(), Value::Object(src));
        }
        "External" => {
            let s = get("external");
            src.insert(
                "metric".into(),
                identifier(s, "metricName", "metricSelector"),
            );
            let kind = if set(s, "targetAverageValue") {
                "AverageValue"
            } else {
                "Value"
            };
            target.insert("type".into(), json!(kind));
            mv(s, "targetValue", &mut target, "value");
            mv(s, "targetAverageValue", &mut target, "averageValue");
            src.insert("target".into(), Value::Object(target));
            out.insert("external".into(), Value::Object(src));
        }
        _ => {}
    }
    Value::Object(out)
}

fn identifier(s: &Value, name: &str, selector: &str) -> Value {
    let mut id = Map::new();
    id.insert("name".into(), s.get(name).cloned().unwrap_or(json!("")));
    mv(s, selector, &mut id, "selector");
    Value::Object(id)
}

fn metric_status_to_v2(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let mut current = Map::new();
    let mut src = Map::new();
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    let key = match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = get(key);
            mv(s, "name", &mut src, "name");
            mv(s, "container", &mut src, "container");
            mv(
                s,
                "currentAverageUtilization",
                &mut current,
                "averageUtilization",
            );
            mv(s, "currentAverageValue", &mut current, "averageValue");
            key
        }
        "Pods" => {
            let s = get("pods");
            src.insert("metric".into(), identifier(s, "metricName", "selector"));
            mv(s, "currentAverageValue", &mut current, "averageValue");
            "pods"
        }
        "Object" => {
            let s = get("object");
            mv(s, "target", &mut src, "describedObject");
            src.insert("metric".into(), identifier(s, "metricName", "selector"));
            mv(s, "currentValue", &mut current, "value");
            mv(s, "averageValue", &mut current, "averageValue");
            "object"
        }
        "External" => {
            let s = get("external");
            src.insert(
                "metric".into(),
                identifier(s, "metricName", "metricSelector"),
            );
            mv(s, "currentValue", &mut current, "value");
            mv(s, "currentAverageValue", &mut current, "averageValue");
            "external"
        }
        _ => return Value::Object(out),
    };
    src.insert("current".into(), Value::Object(current));
    out.insert(key.into(), Value::Object(src));
    Value::Object(out)
}

// ---- v2 -> v1 ----

/// A stored v2 object as v1.
pub(crate) fn from_v2(mut obj: Value) -> Value {
    let Some(o) = obj.as_object_mut() else {
        return obj;
    };
    o.insert("apiVersion".into(), json!("autoscaling/v1"));
    let mut keep: Vec<(&str, String)> = Vec::new();
    if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = match spec.remove("metrics") {
            Some(Value::Array(m)) => m,
            _ => vec![],
        };
        if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m)) {
            spec.insert(
                "targetCPUUtilizationPercentage".into(),
                cpu["resource"]["target"]["averageUtilization"].clone(),
            );
        }
        let other: Vec<Value> = metrics
            .iter()
            .filter(|m| !is_cpu_utilization(m))
            .map(metric_spec_to_v1)
            .collect();
        if !other.is_empty() {
            keep.push((METRICS, Value::Array(other).to_string()));
        }
        if let Some(b) = spec.remove("behavior").filter(|b| !b.is_null()) {
            keep.push((BEHAVIOR, json_to_go_fields(&b).to_string()));
        }
    }
    if let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) {
        let current = match status.remove("currentMetrics") {
            Some(Value::Array(m)) => m,
            _ => vec![],
        };
        let cpu = current.iter().find_map(|m| {
            (m.get("type").and_then(Value::as_str) == Some("Resource")
                && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu"))
            .then(|| m.pointer("/resource/current/averageUtilization"))
            .flatten()
            .filter(|u| !u.is_null())
        });
        if let Some(cpu) = cpu {
            status.insert("currentCPUUtilizationPercentage".into(), cpu.clone());
        }
        if !current.is_empty() {
            let v1: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
            keep.push((CURRENT_METRICS, Value::Array(v1).to_string()));
        }
        if let Some(Value::Array(c)) = status.remove("conditions") {
            if !c.is_empty() {
                keep.push((CONDITIONS, Value::Array(c).to_string()));
            }
        }
    }
    if !keep.is_empty() {
        let meta = o.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let a = meta.entry("annotations").or_insert_with(|| json!({}));
            if !a.is_object() {
                *a = json!({});
            }
            for (k, v) in keep {
                a[k] = json!(v);
            }
        }
    }
    obj
}

fn metric_spec_to_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let mut dst = Map::new();
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    let null = Value::Null;
    let key = match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = get(key);
            let t = s.get("target").unwrap_or(&null);
            mv(s, "name", &mut dst, "name");
            mv(s, "container", &mut dst, "container");
            mv(
                t,
                "averageUtilization",
                &mut dst,
                "targetAverageUtilization",
            );
            mv(t, "averageValue", &mut dst, "targetAverageValue");
            key
        }
        "Pods" => {
            let s = get("pods");
            let t = s.get("target").unwrap_or(&null);
            metric_to_v1(s, &mut dst, "selector");
            mv(t, "averageValue", &mut dst, "targetAverageValue");
            "pods"
        }
        "Object" => {
            let s = get("object");
            let t = s.get("target").unwrap_or(&null);
            mv(s, "describedObject", &mut dst, "target");
            metric_to_v1(s, &mut dst, "selector");
            mv(t, "value", &mut dst, "targetValue");
            mv(t, "averageValue", &mut dst, "averageValue");
            "object"
        }
        "External" => {
            let s = get("external");
            let t = s.get("target").unwrap_or(&null);
            metric_to_v1(s, &mut dst, "metricSelector");
            mv(t, "value", &mut dst, "targetValue");
            mv(t, "averageValue", &mut dst, "targetAverageValue");
            "external"
        }
        _ => return Value::Object(out),
    };
    out.insert(key.into(), Value::Object(dst));
    Value::Object(out)
}

fn metric_to_v1(s: &Value, dst: &mut Map<String, Value>, selector: &str) {
    let null = Value::Null;
    let id = s.get("metric").unwrap_or(&null);
    mv(id, "name", dst, "metricName");
    mv(id, "selector", dst, selector);
}

fn metric_status_to_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let mut dst = Map::new();
    let get = |k: &str| m.get(k).unwrap_or(&Value::Null);
    let null = Value::Null;
    let key = match ty {
        "Resource" | "ContainerResource" => {
            let key = if ty == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = get(key);
            let c = s.get("current").unwrap_or(&null);
            mv(s, "name", &mut dst, "name");
            mv(s, "container", &mut dst, "container");
            mv(
                c,
                "averageUtilization",
                &mut dst,
                "currentAverageUtilization",
            );
            mv(c, "averageValue", &mut dst, "currentAverageValue");
            key
        }
        "Pods" => {
            let s = get("pods");
            metric_to_v1(s, &mut dst, "selector");
            mv(
                s.get("current").unwrap_or(&null),
                "averageValue",
                &mut dst,
                "currentAverageValue",
            );
            "pods"
        }
        "Object" => {
            let s = get("object");
            let c = s.get("current").unwrap_or(&null);
            mv(s, "describedObject", &mut dst, "target");
            metric_to_v1(s, &mut dst, "selector");
            mv(c, "value", &mut dst, "currentValue");
            mv(c, "averageValue", &mut dst, "averageValue");
            "object"
        }
        "External" => {
            let s = get("external");
            let c = s.get("current").unwrap_or(&null);
            metric_to_v1(s, &mut dst, "metricSelector");
            mv(c, "value", &mut dst, "currentValue");
            mv(c, "averageValue", &mut dst, "currentAverageValue");
            "external"
        }
        _ => return Value::Object(out),
    };
    out.insert(key.into(), Value::Object(dst));
    Value::Object(out)
}

// ---- the behavior annotation: Go field names of the internal type ----

const BEHAVIOR_FIELDS: &[&str] = &[
    "scaleUp",
    "scaleDown",
    "stabilizationWindowSeconds",
    "selectPolicy",
    "policies",
    "type",
    "value",
    "periodSeconds",
    "tolerance",
];

/// `{"scaleUp": ...}` as `{"ScaleUp": ...}`: kube-apiserver marshals the internal type, which has
/// no JSON tags, so older and newer servers read the same annotation.
fn json_to_go_fields(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut c = k.chars();
                    let go = c
                        .next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default();
                    (go, json_to_go_fields(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(json_to_go_fields).collect()),
        other => other.clone(),
    }
}

/// The annotation back as API JSON; keys match case-insensitively, as Go's decoder does, and
/// `null`s (Go's nil pointers) are dropped.
fn go_fields_to_json(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let name = BEHAVIOR_FIELDS
                        .iter()
                        .find(|f| f.eq_ignore_ascii_case(k))
                        .map_or_else(|| k.clone(), |f| (*f).to_string());
                    (name, go_fields_to_json(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(go_fields_to_json).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[path = "hpa_v1_tests.rs"]
mod tests;
