//! Table columns and cell formats shared by every kind (`pkg/printers/internalversion/printers.go`):
//! name and age, durations as kubectl prints them, selectors and label maps.

use std::time::SystemTime;

pub use apimachinery::duration::{human_duration, human_duration_nanos};
use apimachinery::time::parse_rfc3339;
use serde_json::{Map, Value};

/// A row's cells and its optional `conditions`.
pub(crate) type Row = (Vec<Value>, Option<Value>);

pub(crate) struct Col {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) format: &'static str,
    pub(crate) priority: u8,
    pub(crate) description: &'static str,
}

pub(crate) const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
) -> Col {
    Col {
        name,
        kind,
        format: "",
        priority,
        description,
    }
}

pub(crate) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

pub(crate) const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(crate) const NAME: Col = Col {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};

pub(crate) const AGE: Col = col("Age", "string", 0, AGE_DESC);

pub(crate) const GENERIC_COLUMNS: &[Col] = &[NAME, AGE];

pub(crate) fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn i(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn arr<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

pub(crate) fn strings(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

pub(crate) fn since_nanos(t: SystemTime, now: SystemTime) -> i128 {
    match now.duration_since(t) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else the human age.
pub(crate) fn age(ts: &str, now: SystemTime) -> String {
    match parse_rfc3339(ts) {
        Some(t) => human_duration_nanos(since_nanos(t, now)),
        None => "<unknown>".into(),
    }
}

pub(crate) fn created_age(o: &Value, now: SystemTime) -> Value {
    Value::from(age(s(o, "/metadata/creationTimestamp"), now))
}

pub(crate) fn name(o: &Value) -> Value {
    Value::from(s(o, "/metadata/name"))
}

pub(crate) fn generic_row(o: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    (vec![name(o), created_age(o, now)], None)
}

pub(crate) fn containers_and_images(o: &Value) -> (Value, Value) {
    let cs = arr(o, "/spec/template/spec/containers");
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key; `<none>` when empty.
/// Stored selectors passed strict validation, so the lenient reading loses nothing; one that still
/// cannot be read (a hostile stored object) prints as `<none>`.
pub(crate) fn label_selector_string(sel: Option<&Value>) -> String {
    match sel
        .filter(|s| !s.is_null())
        .map(apimachinery::labels::format_selector)
    {
        Some(s) if !s.is_empty() => s,
        _ => "<none>".into(),
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
pub(crate) fn format_labels(m: Option<&Value>) -> String {
    let Some(m) = m.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

pub(crate) fn map_len(o: &Value, pointer: &str) -> usize {
    o.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}
