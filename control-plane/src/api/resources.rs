//! Lookups over the registry of kinds ([`super::kinds`]): group, version, plural, kind, scope, short
//! names, verbs and subresources. Discovery, OpenAPI, routing and the store keys are all derived from it.

pub use super::kinds::info::{ResourceInfo, Subresource};
use super::kinds::infos;

/// Every kind the API serves, in registry order.
pub fn all() -> impl Iterator<Item = &'static ResourceInfo> {
    infos()
}

/// The groups served under `/apis`, in discovery order (the core group is served under `/api`).
pub fn groups() -> Vec<&'static str> {
    super::kinds::groups()
}

/// Every served version of every kind: the stored rows, then the rows of the other versions a
/// kind is served at (`autoscaling/v1` HorizontalPodAutoscalers).
pub fn served() -> impl Iterator<Item = &'static ResourceInfo> {
    super::kinds::versions::served_infos()
}

/// Looks a resource up by group, version and plural name, at any served version.
pub fn lookup(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    served().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// The stored (and preferred) row of the kind a served row belongs to.
pub fn stored(served: &'static ResourceInfo) -> &'static ResourceInfo {
    super::kinds::versions::stored_of(served)
}

/// The versions of a group, preferred first.
pub fn versions(group: &str) -> Vec<&'static str> {
    super::kinds::versions::versions_of(group)
}

/// A request's object converted from the version it was sent at to the stored version (a no-op
/// for kinds with one version).
///
/// # Errors
/// Why the object does not convert (a 400 for the client).
pub fn to_stored(
    served: &'static ResourceInfo,
    obj: serde_json::Value,
) -> Result<serde_json::Value, String> {
    super::kinds::versions::to_stored(served, obj)
}

/// A stored object as the version a request was made at.
pub fn to_served(served: &ResourceInfo, obj: serde_json::Value) -> serde_json::Value {
    super::kinds::versions::to_served(served, obj)
}

/// Looks a resource up by its kind (`Deployment`).
pub fn by_kind(kind: &str) -> Option<&'static ResourceInfo> {
    all().find(|r| r.kind == kind)
}

/// Whether a group/version pair is served.
pub fn serves(group: &str, version: &str) -> bool {
    served().any(|r| r.group == group && r.version == version)
}

/// The resources of one group/version.
pub fn of_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    served().filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kubernetes_messages() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(d.qualified(), "deployments.apps");
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.key("default", "web"), "/apps/deployments/default/web");
        let p = lookup("", "v1", "pods").unwrap();
        assert_eq!(p.qualified(), "pods");
        assert_eq!(p.api_version(), "v1");
        assert_eq!(p.key("default", "x"), "/core/pods/default/x");
        let n = lookup("", "v1", "namespaces").unwrap();
        assert_eq!(n.key("", "default"), "/core/namespaces//default");
        assert!(lookup("apps", "v1", "pods").is_none());
    }

    #[test]
    fn every_group_is_listed_and_kinds_are_unique() {
        for r in all() {
            assert!(
                r.group.is_empty() || groups().contains(&r.group),
                "{}",
                r.group
            );
            assert_eq!(by_kind(r.kind), Some(r));
        }
        assert!(serves("coordination.k8s.io", "v1"));
        assert!(serves("batch", "v1"));
        assert!(!serves("policy", "v1"));
        let j = lookup("batch", "v1", "jobs").unwrap();
        assert_eq!(j.qualified(), "jobs.batch");
        assert_eq!(j.api_version(), "batch/v1");
        assert_eq!(j.key("default", "pi"), "/batch/jobs/default/pi");
        assert!(j.namespaced && j.categories == ["all"] && j.subresource("status").is_some());
        assert!(super::super::kinds::info::ALL_VERBS
            .iter()
            .all(|v| j.supports(v)));
    }
}
