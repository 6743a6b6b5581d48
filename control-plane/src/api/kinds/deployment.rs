//! The Deployment kind: its registry entry, validation, table columns, protobuf table, pod spec
//! location and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{
    col, containers_and_images, created_age, i, label_selector_string, name, Col, Row, AGE, NAME,
};
use super::common::errs::Errs;
use super::common::fields::T::*;
use super::common::fields::{a, f, p, F, LABEL_SELECTOR, OBJECT_META};
use super::common::pod_fields::POD_TEMPLATE_SPEC;
use super::common::workload::validate_workload;
use super::info::{status, ResourceInfo, ALL_VERBS, SCALE};
use super::strategy::Kind;

/// The `Deployment` strategy.
pub(crate) struct Deployment;

static INFO: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    resource: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
    categories: &["all"],
    verbs: ALL_VERBS,
    subresources: &[status("apps", "Deployment"), SCALE],
};

impl Kind for Deployment {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_workload(e, INFO.resource, object.get("spec").unwrap_or(&Value::Null));
    }

    fn columns(&self) -> &'static [Col] {
        DEPLOYMENT_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        deployment_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(DEPLOYMENT)
    }

    fn pod_spec_path(&self) -> Option<(&'static str, &'static str)> {
        Some(("/spec/template/spec", "spec.template.spec"))
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::apps::v1::Deployment>()
    }
}

const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    col("Up-to-date", "integer", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

fn deployment_row(d: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(d);
    let cells = vec![
        name(d),
        Value::from(format!("{}/{desired}", i(d, "/status/readyReplicas"))),
        Value::from(i(d, "/status/updatedReplicas")),
        Value::from(i(d, "/status/availableReplicas")),
        created_age(d, now),
        containers,
        images,
        Value::from(label_selector_string(d.pointer("/spec/selector"))),
    ];
    (cells, None)
}

// apps/v1
const ROLLING_UPDATE_DEPLOYMENT: &[F] = &[
    p(1, "maxUnavailable", IntOrString),
    p(2, "maxSurge", IntOrString),
];

const DEPLOYMENT_STRATEGY: &[F] = &[
    f(1, "type", Str),
    p(2, "rollingUpdate", Msg(ROLLING_UPDATE_DEPLOYMENT)),
];

const DEPLOYMENT_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(LABEL_SELECTOR)),
    a(3, "template", Msg(POD_TEMPLATE_SPEC)),
    f(4, "strategy", Msg(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", I32),
    p(6, "revisionHistoryLimit", I32),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", I32),
];

const DEPLOYMENT: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(DEPLOYMENT_SPEC)),
];
