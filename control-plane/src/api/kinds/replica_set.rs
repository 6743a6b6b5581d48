//! The ReplicaSet kind: its registry entry, validation, table columns, protobuf table, pod spec
//! location and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{
    col, containers_and_images, created_age, i, label_selector_string, name, Col, Row, AGE, NAME,
};
use super::common::errs::Errs;
use super::common::fields::T::*;
use super::common::fields::{f, p, F, LABEL_SELECTOR, OBJECT_META};
use super::common::pod_fields::POD_TEMPLATE_SPEC;
use super::common::workload::validate_workload;
use super::info::{status, ResourceInfo, ALL_VERBS, SCALE};
use super::strategy::Kind;

/// The `ReplicaSet` strategy.
pub(crate) struct ReplicaSet;

static INFO: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    resource: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
    categories: &["all"],
    verbs: ALL_VERBS,
    subresources: &[status("apps", "ReplicaSet"), SCALE],
};

impl Kind for ReplicaSet {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_workload(e, INFO.resource, object.get("spec").unwrap_or(&Value::Null));
    }

    fn columns(&self) -> &'static [Col] {
        REPLICASET_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        replicaset_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(REPLICA_SET)
    }

    fn pod_spec_path(&self) -> Option<(&'static str, &'static str)> {
        Some(("/spec/template/spec", "spec.template.spec"))
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::apps::v1::ReplicaSet>()
    }
}

const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    col(
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];

fn replicaset_row(rs: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let desired = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(rs);
    let cells = vec![
        name(rs),
        Value::from(desired),
        Value::from(i(rs, "/status/replicas")),
        Value::from(i(rs, "/status/readyReplicas")),
        created_age(rs, now),
        containers,
        images,
        Value::from(label_selector_string(rs.pointer("/spec/selector"))),
    ];
    (cells, None)
}

const REPLICA_SET_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(LABEL_SELECTOR)),
    f(3, "template", Msg(POD_TEMPLATE_SPEC)),
    f(4, "minReadySeconds", I32),
];

const REPLICA_SET: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(REPLICA_SET_SPEC)),
];
