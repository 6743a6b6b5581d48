//! The Secret kind: its registry entry, validation, table columns, protobuf table and OpenAPI
//! schema.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{col, created_age, name, Col, Row, AGE, NAME};
use super::common::config_data::validate_config_data;
use super::common::errs::Errs;
use super::common::fields::T::*;
use super::common::fields::{f, p, F, OBJECT_META};
use super::info::{ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `Secret` strategy.
pub(crate) struct Secret;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "secrets",
    singular: "secret",
    kind: "Secret",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

impl Kind for Secret {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_config_data(e, object, true);
    }

    fn columns(&self) -> &'static [Col] {
        SECRET_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        secret_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SECRET)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::Secret>()
    }
}

const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "integer", 0, "Data contains the secret data."),
    AGE,
];

fn secret_row(sec: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    for p in ["/data", "/stringData"] {
        if let Some(m) = sec.pointer(p).and_then(Value::as_object) {
            keys.extend(m.keys());
        }
    }
    let t = sec.get("type").and_then(Value::as_str).unwrap_or("Opaque");
    (
        vec![
            name(sec),
            Value::from(t),
            Value::from(keys.len()),
            created_age(sec, now),
        ],
        None,
    )
}

const SECRET: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapBytes),
    f(3, "type", Str),
    f(4, "stringData", MapStr),
    p(5, "immutable", Bool),
];
