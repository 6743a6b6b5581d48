//! `meta.k8s.io/v1` Table responses (`Accept: ...;as=Table`) with kubectl's column sets and cell
//! formats (`pkg/printers/internalversion/printers.go`), computed server-side like the real API server.
//! Each kind brings its columns and rows ([`super::kinds`]); this module builds the envelope.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::kinds::by_resource;
use super::kinds::common::columns::{generic_row, GENERIC_COLUMNS};

pub use super::kinds::common::columns::{human_duration, human_duration_nanos};
pub use apimachinery::time::parse_rfc3339;

/// What each row carries in `object` (query parameter `includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` field.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    Metadata,
    /// The full object (`kubectl get --sort-by`).
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value; unknown or absent values give `Metadata`.
    pub fn from_query(v: Option<&str>) -> Self {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Builds the Table for `objects` of `resource` (plural, e.g. `pods`); ages are computed against `now`.
/// The server always produces the wide (`priority: 1`) columns; kubectl hides them without `-o wide`.
pub fn table(
    resource: &str,
    objects: &[&Value],
    include_object: IncludeObject,
    resource_version: &str,
    now: SystemTime,
) -> Value {
    let kind = by_resource(resource);
    let columns = kind.map_or(GENERIC_COLUMNS, |k| k.columns());
    let row_fn = |o: &Value| kind.map_or_else(|| generic_row(o, now), |k| k.row(o, now));

    let column_definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let (cells, conditions) = row_fn(o);
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if let Some(c) = conditions {
                row.insert("conditions".into(), c);
            }
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({}))}),
                    );
                }
                IncludeObject::Object => {
                    row.insert("object".into(), (*o).clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests;
