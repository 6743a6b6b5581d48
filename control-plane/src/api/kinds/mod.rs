//! One file per kind, each implementing the [`Kind`] strategy (as kube-apiserver's per-kind
//! strategies do), and the registry [`KINDS`] from which discovery, routing, store keys, validation,
//! tables, protobuf decoding and the OpenAPI documents are all derived.
//!
//! Adding a kind means writing its file and adding one line to [`KINDS`].

pub(crate) mod common;
pub mod info;
mod strategy;
pub(crate) mod versions;

mod cluster_role;
mod cluster_role_binding;
mod config_map;
mod daemon_set;
mod deployment;
mod endpoints;
mod event;
mod horizontal_pod_autoscaler;
mod hpa_v1;
pub(crate) mod job;
mod lease;
mod namespace;
mod node;
mod persistent_volume_claim;
mod pod;
mod replica_set;
mod role;
mod role_binding;
mod secret;
mod self_subject_access_review;
mod self_subject_review;
mod self_subject_rules_review;
mod service;
mod service_account;

use info::ResourceInfo;
pub(crate) use strategy::{Kind, NameRule};

/// Every kind the API serves, grouped by API group; the first kind of a group fixes the group's
/// place in discovery.
pub(crate) static KINDS: &[&dyn Kind] = &[
    &namespace::Namespace,
    &node::Node,
    &pod::Pod,
    &service::Service,
    &endpoints::Endpoints,
    &config_map::ConfigMap,
    &secret::Secret,
    &event::Event,
    &persistent_volume_claim::PersistentVolumeClaim,
    &service_account::ServiceAccount,
    &deployment::Deployment,
    &daemon_set::DaemonSet,
    &replica_set::ReplicaSet,
    &self_subject_review::SelfSubjectReview,
    &self_subject_access_review::SelfSubjectAccessReview,
    &self_subject_rules_review::SelfSubjectRulesReview,
    &job::Job,
    &cluster_role_binding::ClusterRoleBinding,
    &cluster_role::ClusterRole,
    &role_binding::RoleBinding,
    &role::Role,
    &lease::Lease,
    &horizontal_pod_autoscaler::HorizontalPodAutoscaler,
];

/// The registry rows of every kind, in registry order.
pub(crate) fn infos() -> impl Iterator<Item = &'static ResourceInfo> {
    KINDS.iter().map(|k| k.info())
}

/// A kind by its plural resource name (`deployments`); plural names are unique across groups.
pub(crate) fn by_resource(resource: &str) -> Option<&'static dyn Kind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.info().resource == resource)
}

/// A kind by its name (`Deployment`).
pub(crate) fn by_kind(kind: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.info().kind == kind)
}

/// The groups served under `/apis` in discovery order (the core group is served under `/api`).
pub(crate) fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in infos() {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests;
