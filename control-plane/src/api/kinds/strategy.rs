//! The [`Kind`] strategy every kind implements, as kube-apiserver's per-kind `RESTStrategy`: what is
//! special about a kind, with defaults for a kind with nothing special about it.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{generic_row, Col, Row, GENERIC_COLUMNS};
use super::common::errs::Errs;
use super::common::fields::F;
use super::common::names::dns1123_subdomain;
use super::info::ResourceInfo;

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

    /// The defaults Kubernetes applies to the kind on every write (`SetDefaults_<Kind>`), after
    /// `meta`'s; must be idempotent.
    fn apply_defaults(&self, _object: &mut Value) {}

    /// Versions the kind is also served at besides [`Kind::info`]'s, which is the stored and
    /// preferred one (`autoscaling/v1` beside `autoscaling/v2`). Requests at one of these versions
    /// are converted to the stored version on the way in and back on the way out, in one place
    /// (`resources::to_stored` / `to_served`).
    fn other_versions(&self) -> &'static [AltVersion] {
        &[]
    }
}

/// A further version a kind is served at, with its conversions from and to the stored version
/// (kube-apiserver's conversion functions, e.g. `pkg/apis/autoscaling/v1/conversion.go`).
pub(crate) struct AltVersion {
    /// The registry row as served at this version: the stored row with another `version`.
    pub(crate) info: ResourceInfo,
    /// A request body at this version, as the stored version; an error is a 400 for the client.
    pub(crate) to_stored: fn(Value) -> Result<Value, String>,
    /// A stored object as this version. Total: a stored object always converts.
    pub(crate) from_stored: fn(Value) -> Value,
    /// The version's OpenAPI schema, for `kubectl explain` at this version.
    pub(crate) schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}
