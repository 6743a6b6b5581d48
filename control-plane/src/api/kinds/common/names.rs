//! Names, label keys and values, and object metadata, as `apimachinery/pkg/util/validation` and
//! `ValidateObjectMeta` check them.

use serde_json::{Map, Value};

use super::errs::Errs;

pub use apimachinery::validation::{
    dns1035_label, dns1123_label, dns1123_subdomain, label_value, path_segment_name, port_name,
    qualified_name, DNS1035_LABEL_MSG, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};

pub(crate) const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

pub(crate) fn validate_labels(e: &mut Errs, labels: Option<&Value>, field: &str) {
    let Some(Value::Object(m)) = labels else {
        return;
    };
    for (k, v) in m {
        for msg in qualified_name(k) {
            e.invalid_str(field, k, &msg);
        }
        let v = v.as_str().unwrap_or("");
        for msg in label_value(v) {
            e.invalid_str(field, v, &msg);
        }
    }
}

pub(crate) fn validate_object_meta(
    e: &mut Errs,
    meta: Option<&Map<String, Value>>,
    name_fn: fn(&str) -> Vec<String>,
) {
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let name = get("name");
    let generate_name = get("generateName");
    if !generate_name.is_empty() {
        // As upstream's maskTrailingDash: a generateName may end in '-' since a suffix follows.
        let masked = match generate_name.strip_suffix('-') {
            Some(p) if !p.is_empty() => format!("{p}a"),
            _ => generate_name.to_string(),
        };
        for msg in name_fn(&masked) {
            e.invalid_str("metadata.generateName", generate_name, &msg);
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            e.required("metadata.name", "name or generateName is required");
        }
    } else {
        for msg in name_fn(name) {
            e.invalid_str("metadata.name", name, &msg);
        }
    }
    let ns = get("namespace");
    if !ns.is_empty() {
        for msg in dns1123_label(ns) {
            e.invalid_str("metadata.namespace", ns, &msg);
        }
    }
    validate_labels(e, meta.and_then(|m| m.get("labels")), "metadata.labels");
    if let Some(Value::Object(ann)) = meta.and_then(|m| m.get("annotations")) {
        let mut total = 0;
        for (k, v) in ann {
            for msg in qualified_name(&k.to_lowercase()) {
                e.invalid_str("metadata.annotations", k, &msg);
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS_SIZE {
            e.too_long("metadata.annotations", MAX_ANNOTATIONS_SIZE);
        }
    }
}

/// A workload's selector: valid labels, parseable, and selecting its own template's labels.
pub(crate) fn selector_selects_template(
    e: &mut Errs,
    sel: &Value,
    template_labels: Option<&Value>,
) {
    validate_labels(e, sel.get("matchLabels"), "spec.selector.matchLabels");
    match apimachinery::labels::LabelSelector::from_label_selector_json(sel) {
        Err(msg) => e.invalid("spec.selector", sel, &msg),
        Ok(s) => {
            if !s.matches(template_labels.and_then(Value::as_object)) {
                e.invalid(
                    "spec.template.metadata.labels",
                    template_labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    }
}
