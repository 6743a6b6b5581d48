//! The ClusterRole kind: its registry entry, name rule, validation, table columns, protobuf table
//! and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{Col, Row};
use super::common::errs::Errs;
use super::common::fields::T::*;
use super::common::fields::{f, p, r, F, LABEL_SELECTOR, OBJECT_META};
use super::common::names::path_segment_name;
use super::common::rbac::{role_row, validate_rules, POLICY_RULE, ROLE_COLUMNS};
use super::info::{rbac, ResourceInfo};
use super::strategy::{Kind, NameRule};

/// The `ClusterRole` strategy.
pub(crate) struct ClusterRole;

static INFO: ResourceInfo = rbac("clusterroles", "clusterrole", "ClusterRole", false);

impl Kind for ClusterRole {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn name_rule(&self) -> NameRule {
        path_segment_name
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_rules(e, object, false);
    }

    fn columns(&self) -> &'static [Col] {
        ROLE_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        role_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(CLUSTER_ROLE)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::rbac::v1::ClusterRole>()
    }
}

const AGGREGATION_RULE: &[F] = &[r(1, "clusterRoleSelectors", Msg(LABEL_SELECTOR))];

const CLUSTER_ROLE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "rules", Msg(POLICY_RULE)),
    p(3, "aggregationRule", Msg(AGGREGATION_RULE)),
];
