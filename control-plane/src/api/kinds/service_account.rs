//! The ServiceAccount kind: its registry entry, table columns, protobuf table and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{arr, col, created_age, name, Col, Row, AGE, NAME};
use super::common::fields::T::*;
use super::common::fields::{f, p, r, F, LOCAL_OBJECT_REFERENCE, OBJECT_META, OBJECT_REFERENCE};
use super::info::{ResourceInfo, Subresource, ALL_VERBS};
use super::strategy::Kind;

/// The `ServiceAccount` strategy.
pub(crate) struct ServiceAccount;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    namespaced: true,
    short_names: &["sa"],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[Subresource {
        name: "token",
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenRequest",
        verbs: &["create"],
    }],
};

impl Kind for ServiceAccount {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn columns(&self) -> &'static [Col] {
        SERVICE_ACCOUNT_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        service_account_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SERVICE_ACCOUNT)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::ServiceAccount>()
    }
}

const SERVICE_ACCOUNT_COLUMNS: &[Col] = &[
    NAME,
    col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

fn service_account_row(sa: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let secrets = arr(sa, "/secrets").len();
    (
        vec![name(sa), Value::from(secrets), created_age(sa, now)],
        None,
    )
}

const SERVICE_ACCOUNT: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "secrets", Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    p(4, "automountServiceAccountToken", Bool),
];
