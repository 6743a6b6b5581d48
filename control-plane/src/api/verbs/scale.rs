//! The `scale` subresource: the `autoscaling/v1 Scale` view of a Deployment or ReplicaSet, and
//! writing `spec.replicas` back from one. Pure.

use serde_json::{json, Value};

use crate::api::meta;
use crate::api::status::{ApiError, Result};

/// The `autoscaling/v1 Scale` view of a Deployment or ReplicaSet.
pub fn scale_of(obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            metadata[k] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

/// A label selector object rendered in the string syntax (`app=web,tier in (a,b)`).
pub fn selector_string(sel: Option<&Value>) -> String {
    sel.map(apimachinery::labels::format_selector)
        .unwrap_or_default()
}

/// `cur` with `spec.replicas` taken from a Scale.
///
/// # Errors
/// 422 when the replicas are not a non-negative integer.
pub fn with_replicas(cur: &Value, scale: &Value) -> Result<Value> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError {
            message: format!(
                "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
                meta::name_of(cur)
            ),
            details: Some(json!({"name": meta::name_of(cur), "group": "autoscaling", "kind": "Scale",
                "causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                    "message": format!("Invalid value: {replicas}: must be greater than or equal to 0")}]})),
            ..ApiError::new(422, "Invalid", "")
        });
    }
    let mut out = cur.clone();
    out["spec"]["replicas"] = replicas;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_strings() {
        let sel = json!({"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_string(Some(&sel)),
            "app=web,env in (a,b),tier=fe,!x"
        );
        assert_eq!(selector_string(None), "");
    }

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "4", "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(s["metadata"]["resourceVersion"], "4");
        assert!(s["metadata"].get("labels").is_none());
        let scaled = with_replicas(&d, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert_eq!(
            with_replicas(&d, &json!({"spec": {"replicas": -1}}))
                .unwrap_err()
                .code,
            422
        );
    }
}
