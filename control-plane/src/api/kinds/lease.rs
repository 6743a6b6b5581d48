//! The Lease kind: its registry entry, table columns and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{col, created_age, name, s, Col, Row, AGE, NAME};
use super::info::{ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `Lease` strategy.
pub(crate) struct Lease;

static INFO: ResourceInfo = ResourceInfo {
    group: "coordination.k8s.io",
    version: "v1",
    resource: "leases",
    singular: "lease",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

impl Kind for Lease {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn columns(&self) -> &'static [Col] {
        LEASE_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        lease_row(object, now)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::coordination::v1::Lease>()
    }
}

const LEASE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Holder",
        "string",
        0,
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

fn lease_row(lease: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (
        vec![
            name(lease),
            Value::from(s(lease, "/spec/holderIdentity")),
            created_age(lease, now),
        ],
        None,
    )
}
