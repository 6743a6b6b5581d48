//! The RBAC authorizer's pure core: rules and bindings parsed from the stored objects into a
//! [`Snapshot`], and the decision over it (`plugin/pkg/auth/authorizer/rbac` in Kubernetes).

use std::collections::HashMap;

use serde_json::Value;

use super::{Attributes, UserInfo};

/// The group of the RBAC kinds.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// One `rbac.authorization.k8s.io/v1 PolicyRule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRule {
    /// Verbs (`get`, `*`).
    pub verbs: Vec<String>,
    /// API groups (`""` = core, `*`).
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*`, `*/scale`).
    pub resources: Vec<String>,
    /// Object names; empty = any.
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`, `/api*`, `*`).
    pub non_resource_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    /// Parses one rule object.
    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v.get("verbs")),
            api_groups: strings(v.get("apiGroups")),
            resources: strings(v.get("resources")),
            resource_names: strings(v.get("resourceNames")),
            non_resource_urls: strings(v.get("nonResourceURLs")),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn list_from(obj: &Value) -> Vec<PolicyRule> {
        obj.get("rules")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// The rule as JSON (empty lists left out, as Kubernetes' `omitempty`; `verbs` always).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("verbs".into(), self.verbs.clone().into());
        for (k, v) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), v.clone().into());
            }
        }
        Value::Object(m)
    }

    /// Whether the rule allows `attrs` (`RuleAllows`).
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !verb_matches(self, &attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return non_resource_url_matches(self, &attrs.path);
        }
        let combined = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        api_group_matches(self, &attrs.api_group)
            && resource_matches(self, &combined, &attrs.subresource)
            && resource_name_matches(self, &attrs.name)
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

/// `*` matches everything; `pods` matches only the resource itself (not `pods/log`); `*/scale`
/// matches the `scale` subresource of anything.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/").is_some_and(|s| s == subresource))
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// `rbac.authorization.k8s.io/v1 Subject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (ServiceAccounts).
    pub namespace: String,
}

impl Subject {
    /// Whether the subject names `user`; `binding_ns` is the RoleBinding's namespace, the default
    /// of a ServiceAccount subject's (`appliesToUser`).
    pub fn applies_to(&self, user: &UserInfo, binding_ns: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_ns
                } else {
                    &self.namespace
                };
                !ns.is_empty() && user.name == service_account_user(ns, &self.name)
            }
            _ => false,
        }
    }
}

/// `system:serviceaccount:<ns>:<name>`: the user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The groups of a ServiceAccount user: `system:serviceaccounts`, `system:serviceaccounts:<ns>`,
/// `system:authenticated`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The binding's name.
    pub name: String,
    /// Its namespace; empty for a ClusterRoleBinding.
    pub namespace: String,
    /// `Role` or `ClusterRole`.
    pub role_kind: String,
    /// The role's name.
    pub role_name: String,
    /// Who it binds.
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// Parses a binding object.
    pub fn from_json(v: &Value) -> Binding {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Binding {
            name: s("/metadata/name"),
            namespace: s("/metadata/namespace"),
            role_kind: s("/roleRef/kind"),
            role_name: s("/roleRef/name"),
            subjects: v
                .get("subjects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| Subject {
                            kind: x.get("kind").and_then(Value::as_str).unwrap_or("").into(),
                            name: x.get("name").and_then(Value::as_str).unwrap_or("").into(),
                            namespace: x
                                .get("namespace")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .into(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn applies_to(&self, user: &UserInfo) -> Option<&Subject> {
        self.subjects
            .iter()
            .find(|s| s.applies_to(user, &self.namespace))
    }
}

/// The superuser group: always allowed, as kube-apiserver's `system:masters`.
pub const MASTERS: &str = "system:masters";

/// Every RBAC object, parsed: what the authorizer decides over.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    role_bindings: Vec<Binding>,
    cluster_role_bindings: Vec<Binding>,
}

/// Why an RBAC decision allowed a request (kube-apiserver's reason text).
fn allowed_reason(b: &Binding, s: &Subject) -> String {
    let subject = match s.kind.as_str() {
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                &b.namespace
            } else {
                &s.namespace
            };
            format!("ServiceAccount \"{}/{}\"", ns, s.name)
        }
        k => format!("{k} \"{}\"", s.name),
    };
    if b.namespace.is_empty() {
        format!(
            "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to {subject}",
            b.name, b.role_name
        )
    } else {
        format!(
            "RBAC: allowed by RoleBinding \"{}/{}\" of {} \"{}\" to {subject}",
            b.name, b.namespace, b.role_kind, b.role_name
        )
    }
}

/// The rules of every ClusterRole, with those of aggregated ClusterRoles (an `aggregationRule`'s
/// `clusterRoleSelectors`) added as kube-controller-manager's aggregation controller would write
/// them, transitively: a role labelled `aggregate-to-view` extends `view`, `edit` and `admin`.
fn aggregate(roles: Vec<&Value>) -> HashMap<String, Vec<PolicyRule>> {
    use apimachinery::labels::LabelSelector;
    let name = |r: &Value| {
        r.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let own: HashMap<String, Vec<PolicyRule>> = roles
        .iter()
        .map(|r| (name(r), PolicyRule::list_from(r)))
        .collect();
    // Which roles each aggregating role selects (never itself).
    let selects: HashMap<String, Vec<String>> = roles
        .iter()
        .filter_map(|r| {
            let selectors = r
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)?;
            let selectors: Vec<LabelSelector> = selectors
                .iter()
                .filter_map(|s| LabelSelector::from_label_selector_json(s).ok())
                .collect();
            let me = name(r);
            let picked = roles
                .iter()
                .filter(|o| name(o) != me)
                .filter(|o| {
                    let labels = o.pointer("/metadata/labels").and_then(Value::as_object);
                    selectors.iter().any(|s| s.matches(labels))
                })
                .map(|o| name(o))
                .collect();
            Some((me, picked))
        })
        .collect();
    own.keys()
        .map(|n| {
            let mut rules: Vec<PolicyRule> = Vec::new();
            let mut seen = vec![n.clone()];
            let mut queue = vec![n.clone()];
            while let Some(r) = queue.pop() {
                for rule in own.get(&r).into_iter().flatten() {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
                for next in selects.get(&r).into_iter().flatten() {
                    if !seen.contains(next) {
                        seen.push(next.clone());
                        queue.push(next.clone());
                    }
                }
            }
            (n.clone(), rules)
        })
        .collect()
}

impl Snapshot {
    /// Builds a snapshot from the four kinds' stored objects.
    pub fn build<'a>(
        roles: impl IntoIterator<Item = &'a Value>,
        cluster_roles: impl IntoIterator<Item = &'a Value>,
        role_bindings: impl IntoIterator<Item = &'a Value>,
        cluster_role_bindings: impl IntoIterator<Item = &'a Value>,
    ) -> Snapshot {
        let meta = |v: &Value, f: &str| {
            v.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Snapshot {
            roles: roles
                .into_iter()
                .map(|r| {
                    (
                        (meta(r, "namespace"), meta(r, "name")),
                        PolicyRule::list_from(r),
                    )
                })
                .collect(),
            cluster_roles: aggregate(cluster_roles.into_iter().collect()),
            role_bindings: role_bindings.into_iter().map(Binding::from_json).collect(),
            cluster_role_bindings: cluster_role_bindings
                .into_iter()
                .map(Binding::from_json)
                .collect(),
        }
    }

    fn role_rules(&self, b: &Binding) -> &[PolicyRule] {
        let rules = match b.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&b.role_name),
            "Role" if !b.namespace.is_empty() => {
                self.roles.get(&(b.namespace.clone(), b.role_name.clone()))
            }
            _ => None,
        };
        rules.map_or(&[], Vec::as_slice)
    }

    /// Every binding that applies to a request in `namespace` (`""` = cluster scope): all
    /// ClusterRoleBindings, then the RoleBindings of that namespace.
    fn bindings_for<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        self.cluster_role_bindings.iter().chain(
            self.role_bindings
                .iter()
                .filter(move |b| !namespace.is_empty() && b.namespace == namespace),
        )
    }

    /// Decides `attrs` for `user`: why it is allowed, or `None` when no rule allows it (RBAC has
    /// no explicit deny).
    pub fn allowed_by(&self, user: &UserInfo, attrs: &Attributes) -> Option<String> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Some(format!("allowed as a member of {MASTERS}"));
        }
        // A non-resource request is matched only by cluster-wide bindings (namespace "").
        let namespace = if attrs.resource_request {
            attrs.namespace.as_str()
        } else {
            ""
        };
        for b in self.bindings_for(namespace) {
            let Some(subject) = b.applies_to(user) else {
                continue;
            };
            if self.role_rules(b).iter().any(|r| r.allows(attrs)) {
                return Some(allowed_reason(b, subject));
            }
        }
        None
    }

    /// The rules that apply to `user` in `namespace` (`SelfSubjectRulesReview`): the rules of every
    /// ClusterRoleBinding and of the namespace's RoleBindings that name the user.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return vec![
                PolicyRule {
                    verbs: vec!["*".into()],
                    api_groups: vec!["*".into()],
                    resources: vec!["*".into()],
                    ..Default::default()
                },
                PolicyRule {
                    verbs: vec!["*".into()],
                    non_resource_urls: vec!["*".into()],
                    ..Default::default()
                },
            ];
        }
        let mut out: Vec<PolicyRule> = Vec::new();
        for b in self.bindings_for(namespace) {
            if b.applies_to(user).is_none() {
                continue;
            }
            for r in self.role_rules(b) {
                // Non-resource rules only count from cluster-wide bindings.
                if !b.namespace.is_empty() && !r.non_resource_urls.is_empty() {
                    continue;
                }
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
