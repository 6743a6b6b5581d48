//! What Roles and ClusterRoles, and RoleBindings and ClusterRoleBindings, share: rule and subject
//! validation (`pkg/apis/rbac/validation`), table rows and protobuf tables.

use std::time::SystemTime;

use serde_json::Value;

use super::columns::{arr, col, created_age, name, s, Col, AGE, AGE_DESC, NAME};
use super::errs::{go_quote, go_string_slice, str_list, Errs};
use super::fields::{a, OBJECT_META};
use super::fields::{f, r, F, T::*};
use super::names::{dns1123_subdomain, path_segment_name};

/// A Role's or ClusterRole's rules, as `ValidatePolicyRule`.
pub(crate) fn validate_rules(e: &mut Errs, role: &Value, namespaced: bool) {
    let Some(rules) = role.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("rules[{i}]");
        let urls = str_list(rule.get("nonResourceURLs"));
        let resources = str_list(rule.get("resources"));
        if str_list(rule.get("verbs")).is_empty() {
            e.required(
                &format!("{base}.verbs"),
                "verbs must contain at least one value",
            );
        }
        if !urls.is_empty() {
            if namespaced {
                e.invalid_raw(
                    &format!("{base}.nonResourceURLs"),
                    &go_string_slice(&urls),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !str_list(rule.get("apiGroups")).is_empty() || !resources.is_empty() {
                e.invalid_raw(
                    &format!("{base}.nonResourceURLs"),
                    &go_string_slice(&urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if rule
            .get("apiGroups")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            e.required(
                &format!("{base}.apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if resources.is_empty() {
            e.required(
                &format!("{base}.resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

/// A RoleBinding's or ClusterRoleBinding's roleRef and subjects, as `ValidateRoleBinding`.
pub(crate) fn validate_role_binding(e: &mut Errs, b: &Value, namespaced: bool) {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let get = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or("");
    let group = get("/roleRef/apiGroup");
    if group != RBAC {
        e.not_supported("roleRef.apiGroup", group, &[RBAC]);
    }
    let kind = get("/roleRef/kind");
    if namespaced {
        if kind != "Role" && kind != "ClusterRole" {
            e.not_supported("roleRef.kind", kind, &["Role", "ClusterRole"]);
        }
    } else if kind != "ClusterRole" {
        e.not_supported("roleRef.kind", kind, &["ClusterRole"]);
    }
    let name = get("/roleRef/name");
    if name.is_empty() {
        e.required("roleRef.name", "");
    } else {
        for msg in path_segment_name(name) {
            e.invalid_str("roleRef.name", name, &msg);
        }
    }
    let subjects = b.get("subjects").and_then(Value::as_array);
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let base = format!("subjects[{i}]");
        let get = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
        let name = get("name");
        if name.is_empty() {
            e.required(&format!("{base}.name"), "");
        }
        match get("kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in dns1123_subdomain(name) {
                        e.invalid_str(&format!("{base}.name"), name, &msg);
                    }
                }
                if !get("apiGroup").is_empty() {
                    e.not_supported(&format!("{base}.apiGroup"), get("apiGroup"), &[""]);
                }
                if !namespaced && get("namespace").is_empty() {
                    e.required(&format!("{base}.namespace"), "");
                }
            }
            "User" | "Group" => {
                if get("apiGroup") != RBAC {
                    e.not_supported(&format!("{base}.apiGroup"), get("apiGroup"), &[RBAC]);
                }
            }
            other => e.not_supported(
                &format!("{base}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            ),
        }
    }
}

/// A binding's roleRef may not change (`cannot change roleRef`).
pub(crate) fn validate_role_ref_update(e: &mut Errs, old: &Value, new: &Value) {
    if old.get("roleRef") == new.get("roleRef") {
        return;
    }
    let get = |p: &str| new.pointer(p).and_then(Value::as_str).unwrap_or("");
    let rendered = format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(get("/roleRef/apiGroup")),
        go_quote(get("/roleRef/kind")),
        go_quote(get("/roleRef/name"))
    );
    e.invalid_raw("roleRef", &rendered, "cannot change roleRef");
}

pub(crate) const ROLE_COLUMNS: &[Col] = &[NAME, col("Created At", "date", 0, AGE_DESC)];

pub(crate) const ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
    AGE,
    col("Users", "string", 1, "Users in the roleBinding"),
    col("Groups", "string", 1, "Groups in the roleBinding"),
    col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
];

/// ClusterRole and Role: the creation time as RFC 3339, as kubectl prints it (not an age).
pub(crate) fn role_row(role: &Value, _now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let created = s(role, "/metadata/creationTimestamp");
    (vec![name(role), Value::from(created)], None)
}

/// RoleBinding and ClusterRoleBinding: `Kind/name` of the role, age, and the subjects by kind
/// (ServiceAccounts as `namespace/name`), each list joined with ", ".
pub(crate) fn role_binding_row(b: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let role = format!("{}/{}", s(b, "/roleRef/kind"), s(b, "/roleRef/name"));
    let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
    for subject in arr(b, "/subjects") {
        let n = s(subject, "/name");
        match s(subject, "/kind") {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(format!("{}/{n}", s(subject, "/namespace"))),
            _ => {}
        }
    }
    (
        vec![
            name(b),
            Value::from(role),
            created_age(b, now),
            Value::from(users.join(", ")),
            Value::from(groups.join(", ")),
            Value::from(sas.join(", ")),
        ],
        None,
    )
}

// rbac/v1
pub(crate) const POLICY_RULE: &[F] = &[
    r(1, "verbs", Str),
    r(2, "apiGroups", Str),
    r(3, "resources", Str),
    r(4, "resourceNames", Str),
    r(5, "nonResourceURLs", Str),
];

pub(crate) const SUBJECT: &[F] = &[
    a(1, "kind", Str),
    f(2, "apiGroup", Str),
    a(3, "name", Str),
    f(4, "namespace", Str),
];

pub(crate) const ROLE_REF: &[F] = &[a(1, "apiGroup", Str), a(2, "kind", Str), a(3, "name", Str)];

pub(crate) const ROLE_BINDING: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "subjects", Msg(SUBJECT)),
    a(3, "roleRef", Msg(ROLE_REF)),
];
