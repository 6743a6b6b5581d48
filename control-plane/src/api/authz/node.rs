//! The Node authorizer: what a node's own identity (`system:node:<name>` in group `system:nodes`)
//! may do, judged from the pods bound to it (`plugin/pkg/auth/authorizer/node` in Kubernetes, which
//! walks a graph; here the pods are read when a decision needs them).
//!
//! A node may read and update its own Node (and `nodes/<own>/status`) and register Nodes; read the
//! pods bound to it and write their `status`; list and watch pods (as Kubernetes' `system:node`
//! role allows, for the kubelet's `spec.nodeName` field selector); read the Secrets, ConfigMaps
//! and PersistentVolumeClaims its pods use and request tokens of their ServiceAccounts; write
//! events; and keep its Lease in `kube-node-lease`. Anything else gets no opinion, so RBAC decides.

use serde_json::Value;

use super::{Attributes, UserInfo};

/// The group every node identity is in.
pub const NODES_GROUP: &str = "system:nodes";
const NODE_USER_PREFIX: &str = "system:node:";

/// The node name of a node identity (`system:node:<name>` in `system:nodes`), else `None`.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (!name.is_empty() && user.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

/// What the Node authorizer needs to know before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed on the attributes alone.
    Allow,
    /// Not the Node authorizer's business: RBAC decides (the reason is kept for the 403).
    NoOpinion(String),
    /// Allowed if the pod `namespace/name` is bound to the node.
    IfPodBound {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
    },
    /// Allowed if a pod in `namespace` bound to the node references the object.
    IfReferenced {
        /// Namespace.
        namespace: String,
        /// What kind of reference.
        kind: Reference,
        /// Object name.
        name: String,
    },
}

/// A kind of object a pod references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// A Secret (volumes, projected sources, env, envFrom, imagePullSecrets).
    Secret,
    /// A ConfigMap (volumes, projected sources, env, envFrom).
    ConfigMap,
    /// A PersistentVolumeClaim (volumes).
    PersistentVolumeClaim,
    /// A ServiceAccount (`spec.serviceAccountName`).
    ServiceAccount,
}

fn no_relationship(node: &str) -> Verdict {
    Verdict::NoOpinion(format!(
        "no relationship found between node '{node}' and this object"
    ))
}

/// The first step of a decision for node `node`: allowed, not ours, or allowed if the pods say so.
pub fn verdict(node: &str, attrs: &Attributes) -> Verdict {
    if !attrs.resource_request {
        return Verdict::NoOpinion(String::new());
    }
    let verb = attrs.verb.as_str();
    let own = attrs.name == node;
    let read = matches!(verb, "get" | "list" | "watch");
    match (
        attrs.api_group.as_str(),
        attrs.resource.as_str(),
        attrs.subresource.as_str(),
    ) {
        ("", "nodes", "") => match verb {
            // The name of a Node being registered is in the body, which admission would check.
            "create" => Verdict::Allow,
            "get" | "list" | "watch" | "update" | "patch" | "delete" if own => Verdict::Allow,
            _ => no_relationship(node),
        },
        ("", "nodes", "status") if own && matches!(verb, "get" | "update" | "patch") => {
            Verdict::Allow
        }
        ("", "pods", "") if matches!(verb, "list" | "watch") && attrs.name.is_empty() => {
            Verdict::Allow
        }
        ("", "pods", "" | "status")
            if !attrs.name.is_empty()
                && (read
                    || (attrs.subresource == "status" && matches!(verb, "update" | "patch"))) =>
        {
            Verdict::IfPodBound {
                namespace: attrs.namespace.clone(),
                name: attrs.name.clone(),
            }
        }
        ("", res @ ("secrets" | "configmaps" | "persistentvolumeclaims"), "") if read => {
            if attrs.name.is_empty() {
                return Verdict::NoOpinion(
                    "can only read individual resources of this type".into(),
                );
            }
            Verdict::IfReferenced {
                namespace: attrs.namespace.clone(),
                kind: match res {
                    "secrets" => Reference::Secret,
                    "configmaps" => Reference::ConfigMap,
                    _ => Reference::PersistentVolumeClaim,
                },
                name: attrs.name.clone(),
            }
        }
        ("", "serviceaccounts", "token") if verb == "create" => Verdict::IfReferenced {
            namespace: attrs.namespace.clone(),
            kind: Reference::ServiceAccount,
            name: attrs.name.clone(),
        },
        ("" | "events.k8s.io", "events", "") if matches!(verb, "create" | "update" | "patch") => {
            Verdict::Allow
        }
        ("coordination.k8s.io", "leases", "") if attrs.namespace == "kube-node-lease" => {
            if verb == "create" || own {
                Verdict::Allow
            } else {
                no_relationship(node)
            }
        }
        _ => Verdict::NoOpinion(String::new()),
    }
}

/// Whether `pod` is bound to `node`.
pub fn bound_to(pod: &Value, node: &str) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn arr<'a>(v: &'a Value, p: &str) -> &'a [Value] {
    v.pointer(p)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether `pod` references the object `name` of `kind` (every place the kubelet reads one from).
pub fn references(pod: &Value, kind: Reference, name: &str) -> bool {
    let is = |v: Option<&str>| v == Some(name);
    if kind == Reference::ServiceAccount {
        let sa = str_at(pod, "/spec/serviceAccountName")
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        return sa == name;
    }
    if kind == Reference::Secret
        && arr(pod, "/spec/imagePullSecrets")
            .iter()
            .any(|s| is(str_at(s, "/name")))
    {
        return true;
    }
    for vol in arr(pod, "/spec/volumes") {
        let hit = match kind {
            Reference::Secret => is(str_at(vol, "/secret/secretName")),
            Reference::ConfigMap => is(str_at(vol, "/configMap/name")),
            Reference::PersistentVolumeClaim => is(str_at(vol, "/persistentVolumeClaim/claimName")),
            Reference::ServiceAccount => false,
        };
        let projected = arr(vol, "/projected/sources").iter().any(|s| match kind {
            Reference::Secret => is(str_at(s, "/secret/name")),
            Reference::ConfigMap => is(str_at(s, "/configMap/name")),
            _ => false,
        });
        if hit || projected {
            return true;
        }
    }
    let (key_ref, from_ref) = match kind {
        Reference::Secret => ("/valueFrom/secretKeyRef/name", "/secretRef/name"),
        Reference::ConfigMap => ("/valueFrom/configMapKeyRef/name", "/configMapRef/name"),
        _ => return false,
    };
    [
        "/spec/containers",
        "/spec/initContainers",
        "/spec/ephemeralContainers",
    ]
    .iter()
    .flat_map(|p| arr(pod, p))
    .any(|c| {
        arr(c, "/env").iter().any(|e| is(str_at(e, key_ref)))
            || arr(c, "/envFrom").iter().any(|e| is(str_at(e, from_ref)))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
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

    #[test]
    fn node_identities() {
        let u = |n: &str, g: &[&str]| UserInfo {
            name: n.into(),
            uid: String::new(),
            groups: g.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(node_name(&u("system:node:n1", &[NODES_GROUP])), Some("n1"));
        assert_eq!(node_name(&u("system:node:n1", &[])), None);
        assert_eq!(node_name(&u("system:node:", &[NODES_GROUP])), None);
        assert_eq!(node_name(&u("alice", &[NODES_GROUP])), None);
    }

    #[test]
    fn verdicts() {
        use Verdict::*;
        let pod_bound = |n: &str| IfPodBound {
            namespace: "default".into(),
            name: n.into(),
        };
        let secret = IfReferenced {
            namespace: "default".into(),
            kind: Reference::Secret,
            name: "s".into(),
        };
        let cases: Vec<(Attributes, Verdict)> = vec![
            (attrs("get", "", "nodes", "", "", "n1"), Allow),
            (attrs("watch", "", "nodes", "", "", "n1"), Allow),
            (attrs("patch", "", "nodes", "status", "", "n1"), Allow),
            (
                attrs("update", "", "nodes", "status", "", "n2"),
                NoOpinion(String::new()),
            ),
            (
                attrs("get", "", "nodes", "", "", "n2"),
                no_relationship("n1"),
            ),
            (
                attrs("list", "", "nodes", "", "", ""),
                no_relationship("n1"),
            ),
            (attrs("create", "", "nodes", "", "", ""), Allow),
            (attrs("get", "", "pods", "", "default", "p"), pod_bound("p")),
            (
                attrs("patch", "", "pods", "status", "default", "p"),
                pod_bound("p"),
            ),
            (
                attrs("update", "", "pods", "", "default", "p"),
                NoOpinion(String::new()),
            ),
            (
                attrs("delete", "", "pods", "", "default", "p"),
                NoOpinion(String::new()),
            ),
            (attrs("list", "", "pods", "", "", ""), Allow),
            (attrs("get", "", "secrets", "", "default", "s"), secret),
            (
                attrs("list", "", "secrets", "", "default", ""),
                NoOpinion("can only read individual resources of this type".into()),
            ),
            (
                attrs("update", "", "secrets", "", "default", "s"),
                NoOpinion(String::new()),
            ),
            (attrs("create", "", "events", "", "default", ""), Allow),
            (
                attrs(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "n1",
                ),
                Allow,
            ),
            (
                attrs(
                    "update",
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "n2",
                ),
                no_relationship("n1"),
            ),
            (
                attrs("create", "apps", "deployments", "", "default", ""),
                NoOpinion(String::new()),
            ),
        ];
        for (a, want) in cases {
            assert_eq!(verdict("n1", &a), want, "{a:?}");
        }
        let nr = Attributes {
            verb: "get".into(),
            path: "/healthz".into(),
            ..Default::default()
        };
        assert_eq!(verdict("n1", &nr), NoOpinion(String::new()));
    }

    #[test]
    fn pod_references() {
        let pod = json!({"spec": {
            "nodeName": "n1",
            "serviceAccountName": "runner",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
            ],
            "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "init-cm"}}]}],
            "containers": [{"name": "c",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                        {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "from-secret"}}]}],
        }});
        use Reference::*;
        let cases = [
            (Secret, "pull", true),
            (Secret, "vol-secret", true),
            (Secret, "proj-secret", true),
            (Secret, "env-secret", true),
            (Secret, "from-secret", true),
            (Secret, "vol-cm", false),
            (Secret, "other", false),
            (ConfigMap, "vol-cm", true),
            (ConfigMap, "proj-cm", true),
            (ConfigMap, "env-cm", true),
            (ConfigMap, "init-cm", true),
            (ConfigMap, "pull", false),
            (PersistentVolumeClaim, "data", true),
            (PersistentVolumeClaim, "vol-secret", false),
            (ServiceAccount, "runner", true),
            (ServiceAccount, "default", false),
        ];
        for (kind, name, want) in cases {
            assert_eq!(references(&pod, kind, name), want, "{kind:?} {name}");
        }
        assert!(references(&json!({"spec": {}}), ServiceAccount, "default"));
        assert!(bound_to(&pod, "n1"));
        assert!(!bound_to(&pod, "n2"));
    }
}
