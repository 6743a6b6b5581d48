//! Object validation with the field paths, cause reasons and message texts of the real API server
//! (`k8s.io/apimachinery/pkg/util/validation` and `pkg/apis/*/validation`), for 422 `Invalid` answers.
//! The checks live with their kinds ([`super::kinds`]); this module dispatches to them.

use serde_json::Value;

use super::kinds::common::errs::Errs;
use super::kinds::common::names::{dns1123_subdomain, validate_object_meta};
use super::kinds::{by_resource, NameRule};

pub use super::kinds::common::errs::Cause;
pub use super::kinds::common::names::{
    dns1035_label, dns1123_label, label_value, path_segment_name, qualified_name,
    DNS1035_LABEL_MSG, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};

/// The kubelet's default safe sysctls, the only ones a node agent sets.
pub use proto::SAFE_SYSCTLS;

/// Validates an object about to be created or updated. `resource` is the plural resource name
/// (`deployments`, `pods`, ...); an empty result means valid.
pub fn validate(resource: &str, object: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    let kind = by_resource(resource);
    let name_rule: NameRule = kind.map_or(dns1123_subdomain, |k| k.name_rule());
    let meta = object.get("metadata").and_then(Value::as_object);
    validate_object_meta(&mut e, meta, name_rule);
    if let Some(kind) = kind {
        kind.validate(&mut e, object);
    }
    e.0
}

/// Validates what may change in an update of the main resource (not `/status`), comparing the stored
/// object `old` with `new` after `meta::prepare_update`; run in addition to [`validate`]. An empty
/// result means the update is allowed.
pub fn validate_update(resource: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    if let Some(kind) = by_resource(resource) {
        kind.validate_update(&mut e, old, new);
    }
    e.0
}

/// The pod template of a workload object (`spec.template.spec`), or the spec of a Pod, with the
/// field path of the spec.
pub fn pod_spec_of<'a>(resource: &str, object: &'a Value) -> Option<(&'a Value, &'static str)> {
    let (pointer, field) = by_resource(resource)?.pod_spec_path()?;
    object.pointer(pointer).map(|s| (s, field))
}

#[cfg(test)]
mod tests;
