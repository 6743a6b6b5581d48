//! The ConfigMap kind: its registry entry, validation, table columns, protobuf table and OpenAPI
//! schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{col, created_age, map_len, name, Col, Row, AGE, NAME};
use super::common::config_data::validate_config_data;
use super::common::errs::Errs;
use super::common::fields::T::*;
use super::common::fields::{f, p, F, OBJECT_META};
use super::info::{ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `ConfigMap` strategy.
pub(crate) struct ConfigMap;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    short_names: &["cm"],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

impl Kind for ConfigMap {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_config_data(e, object, false);
    }

    fn columns(&self) -> &'static [Col] {
        CONFIGMAP_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        configmap_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(CONFIG_MAP)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::ConfigMap>()
    }
}

const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Data",
        "integer",
        0,
        "Data contains the configuration data.",
    ),
    AGE,
];

fn configmap_row(cm: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let n = map_len(cm, "/data") + map_len(cm, "/binaryData");
    (vec![name(cm), Value::from(n), created_age(cm, now)], None)
}

const CONFIG_MAP: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", MapStr),
    f(3, "binaryData", MapBytes),
    p(4, "immutable", Bool),
];
