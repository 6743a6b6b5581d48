//! The Event kind: its registry entry, table columns and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{age, col, i, name, s, Col, Row, NAME_DESC};
use super::info::{ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `Event` strategy.
pub(crate) struct Event;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

impl Kind for Event {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn columns(&self) -> &'static [Col] {
        EVENT_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        event_row(object, now)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::Event>()
    }
}

const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
    col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", 0, "The object that this event is about."),
    col("Subobject", "string", 1, "The subobject that this event is about."),
    col("Source", "string", 1, "The component reporting this event."),
    col("Message", "string", 0, "A human-readable description of the status of this operation."),
    col("First Seen", "string", 1, "The time at which the event was first recorded."),
    col("Count", "string", 1, "The number of times this event has occurred."),
    Col { name: "Name", kind: "string", format: "name", priority: 1, description: NAME_DESC },
];

fn event_row(ev: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let first_ts = s(ev, "/firstTimestamp");
    let first = if first_ts.is_empty() {
        age(s(ev, "/eventTime"), now)
    } else {
        age(first_ts, now)
    };
    let mut last = if s(ev, "/lastTimestamp").is_empty() {
        first.clone()
    } else {
        age(s(ev, "/lastTimestamp"), now)
    };
    let mut count = i(ev, "/count");
    if ev.get("series").is_some_and(Value::is_object) {
        last = age(s(ev, "/series/lastObservedTime"), now);
        count = i(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let obj_name = s(ev, "/involvedObject/name");
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let component = if s(ev, "/source/component").is_empty() {
        s(ev, "/reportingComponent")
    } else {
        s(ev, "/source/component")
    };
    let host = if s(ev, "/source/host").is_empty() {
        s(ev, "/reportingInstance")
    } else {
        s(ev, "/source/host")
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    let cells = vec![
        Value::from(last),
        Value::from(s(ev, "/type")),
        Value::from(s(ev, "/reason")),
        Value::from(target),
        Value::from(s(ev, "/involvedObject/fieldPath")),
        Value::from(source),
        Value::from(s(ev, "/message").trim()),
        Value::from(first),
        Value::from(count),
        name(ev),
    ];
    (cells, None)
}
