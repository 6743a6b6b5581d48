//! One file per kind, each implementing the [`Kind`] strategy (as kube-apiserver's per-kind
//! strategies do), and the registry [`KINDS`] from which discovery, routing, store keys, validation,
//! tables, protobuf decoding and the OpenAPI documents are all derived.
//!
//! Adding a kind means writing its file and adding one line to [`KINDS`].

use std::time::SystemTime;

use common::errs::Errs;
use common::fields::F;
use common::names::dns1123_subdomain;
use info::ResourceInfo;
use serde_json::Value;

pub(crate) mod common;
pub mod info;

mod cluster_role;
mod cluster_role_binding;
mod config_map;
mod daemon_set;
mod deployment;
mod endpoints;
mod event;
mod job;
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

use common::columns::{generic_row, Col, Row, GENERIC_COLUMNS};

/// Checks a `metadata.name` (or a masked `generateName`); returns the violation messages.
pub(crate) type NameRule = fn(&str) -> Vec<String>;

/// Everything the API server knows about one kind. Every method but [`Kind::info`] and
/// [`Kind::openapi_schema`] has the behaviour of a kind with nothing special about it.
pub(crate) trait Kind: Sync {
    /// The registry row: names, scope, verbs and subresources.
    fn info(&self) -> &'static ResourceInfo;

    /// How `metadata.name` is checked (DNS-1123 subdomain unless the kind says otherwise).
    fn name_rule(&self) -> NameRule {
        dns1123_subdomain
    }

    /// Kind-specific validation of an object about to be created or updated, after the metadata.
    fn validate(&self, _e: &mut Errs, _object: &Value) {}

    /// What may not change in an update of the main resource (immutable fields).
    fn validate_update(&self, _e: &mut Errs, _old: &Value, _new: &Value) {}

    /// The Table columns kubectl prints for the kind.
    fn columns(&self) -> &'static [Col] {
        GENERIC_COLUMNS
    }

    /// One Table row, with ages computed against `now`.
    fn row(&self, object: &Value, now: SystemTime) -> Row {
        generic_row(object, now)
    }

    /// The protobuf field table of the kind, when kubectl may send it as protobuf.
    fn protobuf_fields(&self) -> Option<&'static [F]> {
        None
    }

    /// The JSON pointer of the pod spec the kind carries and its field path (`spec`, or
    /// `spec.template.spec`), for Pod Security and patches.
    fn pod_spec_path(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// The kind's OpenAPI schema (a `$ref` into the generator's definitions).
    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

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
