//! The RoleBinding kind: its registry entry, name rule, validation, immutable fields, table
//! columns, protobuf table and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{Col, Row};
use super::common::errs::Errs;
use super::common::fields::F;
use super::common::names::path_segment_name;
use super::common::rbac::{
    role_binding_row, validate_role_binding, validate_role_ref_update, ROLE_BINDING,
    ROLE_BINDING_COLUMNS,
};
use super::info::{rbac, ResourceInfo};
use super::strategy::{Kind, NameRule};

/// The `RoleBinding` strategy.
pub(crate) struct RoleBinding;

static INFO: ResourceInfo = rbac("rolebindings", "rolebinding", "RoleBinding", true);

impl Kind for RoleBinding {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn name_rule(&self) -> NameRule {
        path_segment_name
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_role_binding(e, object, true);
    }

    fn validate_update(&self, e: &mut Errs, old: &Value, new: &Value) {
        validate_role_ref_update(e, old, new);
    }

    fn columns(&self) -> &'static [Col] {
        ROLE_BINDING_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        role_binding_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(ROLE_BINDING)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::rbac::v1::RoleBinding>()
    }
}
