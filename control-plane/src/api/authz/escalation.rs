//! Privilege-escalation prevention on RBAC writes (`pkg/registry/rbac/validation` in Kubernetes): a
//! user may write a Role or ClusterRole only with rules they hold themselves (or with the `escalate`
//! verb on it), and bind a role only when they hold its rules (or the `bind` verb on it).

use serde_json::Value;

use super::rbac::{PolicyRule, GROUP};
use super::{Attributes, Authorizer, UserInfo};

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

fn resource_covers(owner: &[String], servant: &str) -> bool {
    if has(owner, "*") || has(owner, servant) {
        return true;
    }
    servant
        .split_once('/')
        .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
}

fn url_covers(owner: &str, servant: &str) -> bool {
    owner == "*"
        || owner == servant
        || owner
            .strip_suffix('*')
            .is_some_and(|p| servant.starts_with(p.trim_end_matches('*')))
}

/// Whether one owner rule covers one atomic servant rule (one verb, group, resource, name; or one
/// verb and URL).
fn covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let verb = &atom.verbs[0];
    if !(has(&owner.verbs, "*") || has(&owner.verbs, verb)) {
        return false;
    }
    if let Some(url) = atom.non_resource_urls.first() {
        return owner.non_resource_urls.iter().any(|o| url_covers(o, url));
    }
    let group = &atom.api_groups[0];
    let resource = &atom.resources[0];
    (has(&owner.api_groups, "*") || has(&owner.api_groups, group))
        && resource_covers(&owner.resources, resource)
        && (owner.resource_names.is_empty()
            || atom
                .resource_names
                .first()
                .is_some_and(|n| has(&owner.resource_names, n)))
}

/// A rule split into rules of one verb, group, resource and name each (`BreakdownRule`).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for url in &rule.non_resource_urls {
            out.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Default::default()
            });
        }
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let names: Vec<Vec<String>> = if rule.resource_names.is_empty() {
                    vec![vec![]]
                } else {
                    rule.resource_names
                        .iter()
                        .map(|n| vec![n.clone()])
                        .collect()
                };
                for resource_names in names {
                    out.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names,
                        ..Default::default()
                    });
                }
            }
        }
    }
    out
}

/// The atomic rules of `servant` that no rule of `owner` covers (`Covers`).
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    servant
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !owner.iter().any(|o| covers(o, atom)))
        .collect()
}

fn quoted(list: &[String]) -> String {
    let q: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", q.join(" "))
}

/// A rule as Kubernetes' `CompactString` prints it: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
pub fn compact(rule: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (name, list) in [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("ResourceNames", &rule.resource_names),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("Verbs", &rule.verbs),
    ] {
        if !list.is_empty() {
            parts.push(format!("{name}:{}", quoted(list)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn escalation_message(user: &UserInfo, missing: &[PolicyRule]) -> String {
    let lines: Vec<String> = missing.iter().map(compact).collect();
    format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        serde_json::to_string(&user.name).unwrap_or_default(),
        quoted(&user.groups),
        lines.join("\n")
    )
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Checks a write of `obj` (a Role, ClusterRole, RoleBinding or ClusterRoleBinding, by plural
/// `resource`) by `user`. `role_rules` looks up the rules of a binding's role: `(kind, namespace,
/// name)` → `None` when it does not exist.
///
/// # Errors
/// The text after `<resource> "<name>" is forbidden: ` of kube-apiserver's 403.
pub async fn check(
    authz: &Authorizer,
    user: &UserInfo,
    resource: &str,
    obj: &Value,
    role_rules: Option<Vec<PolicyRule>>,
) -> Result<(), String> {
    let namespace = s(obj, "/metadata/namespace");
    let allowed = |verb: &str, res: &str, name: &str| Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: GROUP.into(),
        resource: res.into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: name.into(),
        path: String::new(),
    };
    let servant = match resource {
        "roles" | "clusterroles" => {
            let a = allowed("escalate", resource, s(obj, "/metadata/name"));
            if authz.decide(user, &a).await.is_ok() {
                return Ok(());
            }
            PolicyRule::list_from(obj)
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = s(obj, "/roleRef/kind");
            let role_resource = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let a = allowed("bind", role_resource, s(obj, "/roleRef/name"));
            if authz.decide(user, &a).await.is_ok() {
                return Ok(());
            }
            match role_rules {
                Some(r) => r,
                None => {
                    let qualified = format!("{role_resource}.{GROUP}");
                    return Err(format!(
                        "{qualified} \"{}\" not found",
                        s(obj, "/roleRef/name")
                    ));
                }
            }
        }
        _ => return Ok(()),
    };
    let owner = authz
        .rules_for(user, namespace)
        .await
        .map_err(|e| format!("could not read RBAC rules: {e}"))?;
    let missing = uncovered(&owner, &servant);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(escalation_message(user, &missing))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    #[test]
    fn coverage() {
        let owner = [
            rule(
                json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]}),
            ),
            rule(json!({"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments"]})),
            rule(
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}),
            ),
            rule(json!({"verbs": ["get"], "nonResourceURLs": ["/api*", "/healthz"]})),
        ];
        let cases = [
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
                vec![],
            ),
            (
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods/status", "nodes/status"]}),
                vec![],
            ),
            (
                json!({"verbs": ["delete", "patch"], "apiGroups": ["apps"], "resources": ["deployments"]}),
                vec![],
            ),
            (
                json!({"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods"]}),
                vec![r#"{APIGroups:[""], Resources:["pods"], Verbs:["create"]}"#],
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}),
                vec![],
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}),
                vec![r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#],
            ),
            (
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["*"]}),
                vec![r#"{APIGroups:[""], Resources:["*"], Verbs:["get"]}"#],
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["/apis/apps", "/healthz"]}),
                vec![],
            ),
            (
                json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}),
                vec![r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#],
            ),
        ];
        for (servant, want) in cases {
            let got: Vec<String> = uncovered(&owner, &[rule(servant.clone())])
                .iter()
                .map(compact)
                .collect();
            assert_eq!(got, want, "{servant}");
        }
    }
}
