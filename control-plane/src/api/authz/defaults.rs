//! The default ClusterRoles and ClusterRoleBindings every cluster starts with (Kubernetes'
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy`, trimmed to the kinds berth serves and with
//! the `admin`/`edit`/`view` aggregations written out).

use serde_json::{json, Value};

use super::rbac::GROUP;

/// The ClusterRole (and its binding to every authenticated user) that may read `/berth/v1/members`
/// and open `/berth/v1/watch` (whose handler then checks each resource it merges).
pub const MEMBERS_VIEWER: &str = "system:berth-members-viewer";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn meta(name: &str, aggregate_to: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    if let Some(a) = aggregate_to {
        labels[format!("rbac.authorization.k8s.io/aggregate-to-{a}")] = json!("true");
    }
    json!({
        "name": name,
        "labels": labels,
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, None),
        "rules": rules,
    })
}

fn binding_to_groups(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": GROUP, "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name, None),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// `view`: read most namespaced objects, not Secrets (nor roles and bindings).
fn view_rules() -> Vec<Value> {
    vec![
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
        // Kubernetes' system:aggregated-metrics-reader, which aggregates into view, edit and admin:
        // whoever may read pods may run `kubectl top`.
        rule(&["metrics.k8s.io"], &["nodes", "pods"], READ),
    ]
}

/// `edit`: `view` plus writing those objects, Secrets, exec/attach/port-forward, tokens and leases.
fn edit_rules() -> Vec<Value> {
    let mut rules = vec![
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
        rule(&["coordination.k8s.io"], &["leases"], ALL),
    ];
    rules.extend(view_rules());
    rules
}

/// `admin`: `edit` plus Roles and RoleBindings in the namespace.
fn admin_rules() -> Vec<Value> {
    let mut rules = vec![
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"],
        ),
        rule(&[GROUP], &["rolebindings", "roles"], ALL),
    ];
    rules.extend(edit_rules());
    rules
}

/// Every default ClusterRole.
pub fn cluster_roles() -> Vec<Value> {
    // admin, edit and view also take in the ClusterRoles labelled to aggregate into them.
    let aggregating = |name: &str, label_as: Option<&str>, rules: Vec<Value>| {
        let mut role = cluster_role(name, rules);
        role["metadata"] = meta(name, label_as);
        role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {
            format!("rbac.authorization.k8s.io/aggregate-to-{name}"): "true"}}]});
        role
    };
    vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        aggregating("admin", None, admin_rules()),
        aggregating("edit", Some("admin"), edit_rules()),
        aggregating("view", Some("edit"), view_rules()),
        cluster_role(
            "system:discovery",
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        // The control-plane members (names, addresses, leader) the web view shows, for every
        // authenticated user as discovery is (which already tells the API address). A role of its
        // own, not a rule in `view`: a nonResourceURLs rule in `view` would make binding `view` in a
        // namespace an escalation for everyone who does not hold it cluster-wide. The merged watch's
        // path grants nothing by itself: its handler checks list and watch on every resource named.
        cluster_role(
            MEMBERS_VIEWER,
            vec![url_rule(
                &[
                    super::super::members::PATH,
                    super::super::route::MULTIWATCH_PATH,
                ],
                &["get"],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            // `/ui/*`: the web view's static assets, public as kube-dashboard's login page (they hold no
            // data); a browser presenting a client certificate is authenticated and needs this too.
            vec![url_rule(
                &[
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/version/",
                    "/ui",
                    "/ui/*",
                ],
                &["get"],
            )],
        ),
    ]
}

/// Every default ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding_to_groups("cluster-admin", "cluster-admin", &[super::rbac::MASTERS]),
        binding_to_groups(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding_to_groups(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding_to_groups(MEMBERS_VIEWER, MEMBERS_VIEWER, &["system:authenticated"]),
        binding_to_groups(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::rbac::Snapshot;
    use super::super::{Attributes, UserInfo};
    use super::*;

    #[test]
    fn view_edit_and_admin_may_read_metrics() {
        let binding = |role: &str| {
            json!({"metadata": {"name": role, "namespace": "default"},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": role, "apiGroup": GROUP}]})
        };
        let bindings: Vec<Value> = ["view", "edit", "admin"].map(binding).into();
        let s = Snapshot::build(&[], &cluster_roles(), &bindings, &cluster_role_bindings());
        let attrs = |verb: &str, resource: &str| Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: "metrics.k8s.io".into(),
            resource: resource.into(),
            namespace: "default".into(),
            ..Default::default()
        };
        let user = |name: &str| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        };
        for who in ["view", "edit", "admin"] {
            for verb in ["get", "list", "watch"] {
                assert!(
                    s.allowed_by(&user(who), &attrs(verb, "pods")).is_some(),
                    "{who} {verb}"
                );
            }
            assert!(s.allowed_by(&user(who), &attrs("create", "pods")).is_none());
        }
        assert!(s
            .allowed_by(&user("nobody"), &attrs("list", "pods"))
            .is_none());
    }

    #[test]
    fn authenticated_users_may_read_the_members_and_everyone_the_ui_assets() {
        let crb = |role: &str| {
            json!({"metadata": {"name": role},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": role, "apiGroup": GROUP}]})
        };
        let mut crbs = cluster_role_bindings();
        crbs.extend(["view", "edit", "admin"].map(crb));
        let s = Snapshot::build(&[], &cluster_roles(), &[], &crbs);
        let get = |path: &str| Attributes {
            verb: "get".into(),
            path: path.into(),
            ..Default::default()
        };
        let user = |name: &str, group: &str| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec![group.into()],
        };
        let members = super::super::super::members::PATH;
        for who in ["view", "edit", "admin"] {
            let u = user(who, "system:authenticated");
            assert!(s.allowed_by(&u, &get(members)).is_some(), "{who}");
        }
        let nobody = user("nobody", "system:authenticated");
        assert!(s.allowed_by(&nobody, &get(members)).is_some());
        let multiwatch = super::super::super::route::MULTIWATCH_PATH;
        assert!(s.allowed_by(&nobody, &get(multiwatch)).is_some());
        let anonymous = user("system:anonymous", "system:unauthenticated");
        assert!(s.allowed_by(&anonymous, &get(members)).is_none());
        assert!(s.allowed_by(&anonymous, &get(multiwatch)).is_none());
        assert!(s.allowed_by(&nobody, &get("/berth/v1/other")).is_none());
        for who in [nobody, anonymous] {
            for path in ["/ui", "/ui/", "/ui/app.js"] {
                assert!(
                    s.allowed_by(&who, &get(path)).is_some(),
                    "{} {path}",
                    who.name
                );
            }
        }
    }
}
