//! Names, label keys and values, and object metadata, as `apimachinery/pkg/util/validation` and
//! `ValidateObjectMeta` check them.

use serde_json::{Map, Value};

use super::errs::Errs;

/// The message of a DNS-1123 subdomain violation.
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The message of a DNS-1123 label violation.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// The message of a DNS-1035 label violation (Service names).
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub(crate) const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

pub(crate) const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

pub(crate) const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// Names of RBAC objects need only be valid path segments (`system:node` is fine).
pub fn path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| s.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

pub(crate) fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

pub(crate) fn dns_label_ok(s: &str, first_alpha: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().last().unwrap_or(first);
    (if first_alpha {
        first.is_ascii_lowercase()
    } else {
        is_alnum_lower(first)
    }) && is_alnum_lower(last)
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
}

/// `IsDNS1123Subdomain`: the violation messages (empty when valid).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(|l| dns_label_ok(l, false)) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// `IsDNS1123Label`: the violation messages (empty when valid).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !dns_label_ok(s, false) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

/// `IsDNS1035Label`: the violation messages (empty when valid).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !dns_label_ok(s, true) {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

pub(crate) fn qualified_name_part_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().last().unwrap_or(first);
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `IsQualifiedName` (label and annotation keys): the violation messages (empty when valid).
pub fn qualified_name(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                out.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            out.push(format!("{QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !qualified_name_part_ok(name) {
        out.push(QUALIFIED_NAME_MSG.to_string());
    }
    out
}

/// `IsValidLabelValue`: the violation messages (empty when valid).
pub fn label_value(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !qualified_name_part_ok(v) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

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
