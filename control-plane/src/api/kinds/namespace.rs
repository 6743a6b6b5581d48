//! The Namespace kind: its registry entry, name rule, table columns, protobuf table and OpenAPI
//! schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{col, created_age, name, s, Col, Row, AGE, NAME};
use super::common::fields::T::*;
use super::common::fields::{f, r, F, OBJECT_META};
use super::common::names::dns1123_label;
use super::info::{status, ResourceInfo, Subresource};
use super::strategy::{Kind, NameRule};

/// The `Namespace` strategy.
pub(crate) struct Namespace;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    verbs: &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ],
    subresources: &[
        status("", "Namespace"),
        Subresource {
            name: "finalize",
            group: "",
            version: "v1",
            kind: "Namespace",
            verbs: &["update"],
        },
    ],
};

impl Kind for Namespace {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn name_rule(&self) -> NameRule {
        dns1123_label
    }

    fn columns(&self) -> &'static [Col] {
        NAMESPACE_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        namespace_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(NAMESPACE)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::Namespace>()
    }
}

const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "The status of the namespace"),
    AGE,
];

fn namespace_row(ns: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (
        vec![
            name(ns),
            Value::from(s(ns, "/status/phase")),
            created_age(ns, now),
        ],
        None,
    )
}

// core/v1
const NAMESPACE_SPEC: &[F] = &[r(1, "finalizers", Str)];

const NAMESPACE_STATUS: &[F] = &[f(1, "phase", Str)];

const NAMESPACE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(NAMESPACE_SPEC)),
    f(3, "status", Msg(NAMESPACE_STATUS)),
];
