use super::*;
use serde_json::Value;

#[test]
fn names_are_unique_and_groups_keep_discovery_order() {
    for (i, a) in infos().enumerate() {
        for b in infos().skip(i + 1) {
            assert_ne!(a.kind, b.kind);
            assert_ne!(a.resource, b.resource);
        }
        assert_eq!(by_resource(a.resource).map(|k| k.info()), Some(a));
        assert_eq!(by_kind(a.kind).map(|k| k.info()), Some(a));
    }
    // kubectl lists groups in the order discovery gives them; this is the order berth always served.
    assert_eq!(
        groups(),
        [
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "batch",
            "rbac.authorization.k8s.io",
            "coordination.k8s.io",
            "autoscaling",
        ]
    );
}

#[test]
fn every_kind_has_a_schema_named_after_its_group_version_kind() {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    for k in KINDS {
        let r = k.info();
        let schema = k.openapi_schema(&mut generator);
        let reference = schema.get("$ref").and_then(Value::as_str).unwrap_or("");
        let group = if r.group.is_empty() { "core" } else { r.group };
        let tail = format!(".{}.{}", r.version, r.kind);
        assert!(reference.ends_with(&tail), "{reference} for {}", r.kind);
        let short = group.split('.').next().unwrap_or(group);
        assert!(
            reference.contains(&format!(".{short}.")),
            "{reference} for {}",
            r.kind
        );
    }
}

#[test]
fn pod_templates_are_where_the_kinds_keep_them() {
    let pod_spec_kinds: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.pod_spec_path().is_some())
        .map(|k| k.info().kind)
        .collect();
    assert_eq!(
        pod_spec_kinds,
        ["Pod", "Deployment", "DaemonSet", "ReplicaSet", "Job"]
    );
}

#[test]
fn controllers_find_store_keys_of_owner_kinds_through_the_registry() {
    use crate::controllers::object::{key_for_kind, resource_of};
    assert_eq!(resource_of("Pod"), Some(("core", "pods", true)));
    assert_eq!(
        resource_of("Deployment"),
        Some(("apps", "deployments", true))
    );
    assert_eq!(resource_of("Node"), Some(("core", "nodes", false)));
    assert_eq!(
        resource_of("Lease"),
        Some(("coordination.k8s.io", "leases", true))
    );
    // Reviews are never stored; kinds berth does not serve are unknown.
    assert_eq!(resource_of("SelfSubjectReview"), None);
    assert_eq!(resource_of("StatefulSet"), None);
    assert_eq!(
        key_for_kind("Namespace", "ignored", "default").as_deref(),
        Some("/core/namespaces//default")
    );
    assert_eq!(
        key_for_kind("Job", "default", "pi").as_deref(),
        Some("/batch/jobs/default/pi")
    );
}
