//! RBAC rule matching and aggregation tests.

use serde_json::json;

use super::*;

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        resource_request: true,
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
        path: String::new(),
    }
}

fn non_res(verb: &str, path: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        path: path.into(),
        ..Default::default()
    }
}

fn rule(v: Value) -> PolicyRule {
    PolicyRule::from_json(&v)
}

#[test]
fn rule_matching() {
    let pods = rule(json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}));
    let log = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}));
    let any_scale = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]}));
    let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    let named = rule(
        json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}),
    );
    let urls = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api*"]}));
    let cases: &[(&PolicyRule, Attributes, bool)] = &[
        (&pods, res("get", "", "pods", "", "default", "x"), true),
        (&pods, res("list", "", "pods", "", "", ""), true),
        (&pods, res("create", "", "pods", "", "default", ""), false),
        (&pods, res("get", "apps", "pods", "", "default", "x"), false),
        // A rule on `pods` says nothing about its subresources.
        (&pods, res("get", "", "pods", "log", "default", "x"), false),
        (&log, res("get", "", "pods", "log", "default", "x"), true),
        (&log, res("get", "", "pods", "", "default", "x"), false),
        (
            &any_scale,
            res("update", "apps", "deployments", "scale", "d", "w"),
            true,
        ),
        (
            &any_scale,
            res("update", "apps", "deployments", "", "d", "w"),
            false,
        ),
        (
            &all,
            res("deletecollection", "batch", "jobs", "", "d", ""),
            true,
        ),
        (&all, res("create", "", "pods", "exec", "d", "x"), true),
        (&all, non_res("get", "/healthz"), false),
        (&named, res("get", "", "configmaps", "", "d", "a"), true),
        (&named, res("get", "", "configmaps", "", "d", "b"), false),
        (&named, res("get", "", "configmaps", "", "d", ""), false),
        (&urls, non_res("get", "/healthz"), true),
        (&urls, non_res("get", "/healthz/ping"), false),
        (&urls, non_res("get", "/apis/apps/v1"), true),
        (&urls, non_res("post", "/api"), false),
        (&urls, res("get", "", "pods", "", "d", "x"), false),
    ];
    for (i, (r, a, want)) in cases.iter().enumerate() {
        assert_eq!(r.allows(a), *want, "case {i}: {a:?}");
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[test]
fn subjects() {
    let sa = Subject {
        kind: "ServiceAccount".into(),
        name: "viewer".into(),
        namespace: String::new(),
    };
    let u = user("system:serviceaccount:default:viewer", &[]);
    assert!(sa.applies_to(&u, "default"));
    assert!(!sa.applies_to(&u, "other"));
    assert!(!sa.applies_to(&u, ""));
    let g = Subject {
        kind: "Group".into(),
        name: "system:serviceaccounts:default".into(),
        namespace: String::new(),
    };
    let sa_user = user(
        "system:serviceaccount:default:x",
        &["system:serviceaccounts", "system:serviceaccounts:default"],
    );
    assert!(g.applies_to(&sa_user, ""));
    let alice = Subject {
        kind: "User".into(),
        name: "alice".into(),
        namespace: String::new(),
    };
    assert!(alice.applies_to(&user("alice", &[]), ""));
    assert!(!alice.applies_to(&user("bob", &["alice"]), ""));
}

fn snapshot() -> Snapshot {
    let roles = [
        json!({"metadata": {"name": "pod-reader", "namespace": "dev"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
    ];
    let cluster_roles = [
        json!({"metadata": {"name": "secret-reader"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}),
        json!({"metadata": {"name": "node-reader"},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]},
                      {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]}),
    ];
    let role_bindings = [
        json!({"metadata": {"name": "read-pods", "namespace": "dev"},
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": GROUP}]}),
        // A ClusterRole bound in one namespace grants it there only.
        json!({"metadata": {"name": "read-secrets", "namespace": "dev"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "secret-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}]}),
        // Non-resource rules do not apply through a RoleBinding.
        json!({"metadata": {"name": "nodes", "namespace": "dev"},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "node-reader"},
            "subjects": [{"kind": "User", "name": "carol", "apiGroup": GROUP}]}),
        // A Role of another namespace is not found.
        json!({"metadata": {"name": "read-pods", "namespace": "prod"},
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "alice", "apiGroup": GROUP}]}),
    ];
    let cluster_role_bindings = [json!({"metadata": {"name": "ops"},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "node-reader"},
        "subjects": [{"kind": "Group", "name": "ops", "apiGroup": GROUP}]})];
    Snapshot::build(
        &roles,
        &cluster_roles,
        &role_bindings,
        &cluster_role_bindings,
    )
}

#[test]
fn cluster_roles_aggregate_transitively() {
    let sel = |to: &str| json!({"clusterRoleSelectors": [{"matchLabels": {format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"}}]});
    let label = |to: &str| json!({format!("rbac.authorization.k8s.io/aggregate-to-{to}"): "true"});
    let roles = [
        json!({"metadata": {"name": "admin"}, "aggregationRule": sel("admin"), "rules": []}),
        json!({"metadata": {"name": "edit", "labels": label("admin")}, "aggregationRule": sel("edit"),
            "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]}),
        json!({"metadata": {"name": "view", "labels": label("edit")}, "aggregationRule": sel("view"),
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        json!({"metadata": {"name": "widgets-view", "labels": label("view")},
            "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}),
    ];
    let binding = |role: &str| {
        json!({"metadata": {"name": role},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": role, "apiGroup": GROUP}]})
    };
    let bindings = [binding("admin"), binding("edit"), binding("view")];
    let s = Snapshot::build(&[], &roles, &[], &bindings);
    let widgets = res("get", "example.com", "widgets", "", "", "w");
    let create = res("create", "", "pods", "", "", "");
    for (u, a, want) in [
        ("view", &widgets, true),
        ("edit", &widgets, true),
        ("admin", &widgets, true),
        ("admin", &create, true),
        ("view", &create, false),
    ] {
        assert_eq!(s.allowed_by(&user(u, &[]), a).is_some(), want, "{u} {a:?}");
    }
}

#[test]
fn bindings_are_scoped() {
    let s = snapshot();
    let bot = user("system:serviceaccount:dev:bot", &["system:serviceaccounts"]);
    let cases: &[(UserInfo, Attributes, bool)] = &[
        (
            user("alice", &[]),
            res("get", "", "pods", "", "dev", "p"),
            true,
        ),
        (
            user("alice", &[]),
            res("get", "", "pods", "", "prod", "p"),
            false,
        ),
        (
            user("alice", &[]),
            res("list", "", "pods", "", "", ""),
            false,
        ),
        (
            user("bob", &[]),
            res("get", "", "pods", "", "dev", "p"),
            false,
        ),
        (bot.clone(), res("get", "", "secrets", "", "dev", "s"), true),
        (
            bot.clone(),
            res("get", "", "secrets", "", "default", "s"),
            false,
        ),
        (bot, res("get", "", "secrets", "", "", ""), false),
        (
            user("carol", &[]),
            res("list", "", "nodes", "", "", ""),
            false,
        ),
        (user("carol", &[]), non_res("get", "/metrics"), false),
        (
            user("dave", &["ops"]),
            res("list", "", "nodes", "", "", ""),
            true,
        ),
        (user("dave", &["ops"]), non_res("get", "/metrics"), true),
        (
            user("x", &[MASTERS]),
            res("delete", "", "nodes", "", "", "n1"),
            true,
        ),
        (user("x", &[MASTERS]), non_res("get", "/anything"), true),
    ];
    for (i, (u, a, want)) in cases.iter().enumerate() {
        assert_eq!(s.allowed_by(u, a).is_some(), *want, "case {i}: {u:?} {a:?}");
    }
    assert_eq!(
        s.allowed_by(&user("alice", &[]), &res("get", "", "pods", "", "dev", "p")),
        Some("RBAC: allowed by RoleBinding \"read-pods/dev\" of Role \"pod-reader\" to User \"alice\"".into())
    );
    assert_eq!(
        s.allowed_by(&user("dave", &["ops"]), &non_res("get", "/metrics")),
        Some("RBAC: allowed by ClusterRoleBinding \"ops\" of ClusterRole \"node-reader\" to Group \"ops\"".into())
    );
    let rules = s.rules_for(&user("alice", &[]), "dev");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources, ["pods"]);
    assert!(s.rules_for(&user("carol", &[]), "dev")[0]
        .non_resource_urls
        .is_empty());
}
