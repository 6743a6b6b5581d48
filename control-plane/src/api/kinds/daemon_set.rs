//! The DaemonSet kind: its registry entry, validation, table columns, pod spec location and OpenAPI
//! schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{
    col, containers_and_images, created_age, i, label_selector_string, name, Col, Row, AGE, NAME,
};
use super::common::errs::Errs;
use super::common::workload::validate_workload;
use super::info::{status, ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `DaemonSet` strategy.
pub(crate) struct DaemonSet;

static INFO: ResourceInfo = ResourceInfo {
    group: "apps",
    version: "v1",
    resource: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    namespaced: true,
    short_names: &["ds"],
    categories: &["all"],
    verbs: ALL_VERBS,
    subresources: &[status("apps", "DaemonSet")],
};

impl Kind for DaemonSet {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_workload(e, INFO.resource, object.get("spec").unwrap_or(&Value::Null));
    }

    fn columns(&self) -> &'static [Col] {
        DAEMONSET_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        daemonset_row(object, now)
    }

    fn pod_spec_path(&self) -> Option<(&'static str, &'static str)> {
        Some(("/spec/template/spec", "spec.template.spec"))
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::apps::v1::DaemonSet>()
    }
}

const DAEMONSET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
    col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
    col("Ready", "integer", 0, "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
    col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
    col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
    col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
    AGE,
    col("Containers", "string", 1, "Names of each container in the template."),
    col("Images", "string", 1, "Images referenced by each container in the template."),
    col("Selector", "string", 1, "A label query over pods that are managed by the daemon set. Must match in order to be controlled."),
];

fn daemonset_row(ds: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let (containers, images) = containers_and_images(ds);
    // kubectl prints the node selector as `k=v,k=v` in key order, `<none>` when empty.
    let node_selector = ds
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map_or_else(
            || "<none>".to_string(),
            |m| {
                let mut kv: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                kv.sort();
                kv.join(",")
            },
        );
    let cells = vec![
        name(ds),
        Value::from(i(ds, "/status/desiredNumberScheduled")),
        Value::from(i(ds, "/status/currentNumberScheduled")),
        Value::from(i(ds, "/status/numberReady")),
        Value::from(i(ds, "/status/updatedNumberScheduled")),
        Value::from(i(ds, "/status/numberAvailable")),
        Value::from(node_selector),
        created_age(ds, now),
        containers,
        images,
        Value::from(label_selector_string(ds.pointer("/spec/selector"))),
    ];
    (cells, None)
}
