//! `authorization.k8s.io/v1` `SelfSubjectAccessReview` (`kubectl auth can-i`) and
//! `SelfSubjectRulesReview` (`kubectl auth can-i --list`): the caller asks about itself.

use serde_json::{json, Value};

use super::{node, Attributes, Authorizer, UserInfo};
use crate::api::resources::ResourceInfo;
use crate::api::status::{ApiError, Result};

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The attributes a `SelfSubjectAccessReview` spec asks about.
///
/// # Errors
/// 422 when the spec has neither or both of `resourceAttributes` and `nonResourceAttributes`.
pub fn access_attributes(info: &ResourceInfo, review: &Value) -> Result<Attributes> {
    let res = review
        .pointer("/spec/resourceAttributes")
        .filter(|v| v.is_object());
    let non = review
        .pointer("/spec/nonResourceAttributes")
        .filter(|v| v.is_object());
    let invalid = |reason: &str, field: &str, message: &str| {
        ApiError::invalid(info, "", &[(reason.into(), field.into(), message.into())])
    };
    match (res, non) {
        (Some(_), Some(_)) => Err(invalid(
            "FieldValueInvalid",
            "spec.nonResourceAttributes",
            "Invalid value: \"null\": cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            "FieldValueRequired",
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        (Some(r), None) => Ok(Attributes {
            verb: s(r, "/verb").into(),
            resource_request: true,
            api_group: s(r, "/group").into(),
            resource: s(r, "/resource").into(),
            subresource: s(r, "/subresource").into(),
            namespace: s(r, "/namespace").into(),
            name: s(r, "/name").into(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: s(n, "/verb").into(),
            path: s(n, "/path").into(),
            ..Default::default()
        }),
    }
}

/// The review answered: the request's spec with `status.allowed` (and `denied: false`, `reason`).
pub fn access_answer(review: &Value, decision: &std::result::Result<String, String>) -> Value {
    let mut status = json!({"allowed": decision.is_ok()});
    let reason = match decision {
        Ok(r) | Err(r) => r,
    };
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": status,
    })
}

/// `POST selfsubjectaccessreviews`: may `user` do what the spec asks?
///
/// # Errors
/// 422 for a malformed spec.
pub async fn access(
    authz: &Authorizer,
    info: &ResourceInfo,
    user: &UserInfo,
    review: &Value,
) -> Result<Value> {
    let attrs = access_attributes(info, review)?;
    let decision = authz.decide(user, &attrs).await;
    Ok(access_answer(review, &decision))
}

/// `POST selfsubjectrulesreviews`: what may `user` do in `spec.namespace`?
///
/// # Errors
/// 500 when the RBAC objects cannot be read.
pub async fn rules(authz: &Authorizer, user: &UserInfo, review: &Value) -> Result<Value> {
    let namespace = s(review, "/spec/namespace");
    let rules = authz
        .rules_for(user, namespace)
        .await
        .map_err(ApiError::from_store)?;
    let (non_resource, resource): (Vec<_>, Vec<_>) = rules
        .into_iter()
        .partition(|r| !r.non_resource_urls.is_empty());
    let resource_rules: Vec<Value> = resource
        .iter()
        .map(|r| {
            let mut v = json!({"verbs": r.verbs});
            for (k, l) in [
                ("apiGroups", &r.api_groups),
                ("resources", &r.resources),
                ("resourceNames", &r.resource_names),
            ] {
                if !l.is_empty() {
                    v[k] = json!(l);
                }
            }
            v
        })
        .collect();
    let non_resource_rules: Vec<Value> = non_resource
        .iter()
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if node::node_name(user).is_some() {
        // What the Node authorizer allows depends on the objects, not on rules it could list.
        status["incomplete"] = json!(true);
        status["evaluationError"] = json!("node authorizer does not support user rule resolution");
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": status,
    }))
}

/// `POST selfsubjectreviews` (`kubectl auth whoami`): the caller's own user info.
pub fn whoami(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    })
}
