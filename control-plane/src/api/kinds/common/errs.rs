//! Field errors with the reasons and texts of `k8s.io/apimachinery/pkg/util/validation/field`, and
//! the Go renderings (`%q`, `%v`, `%#v`) those texts embed.

use std::collections::BTreeMap;

use serde_json::Value;

/// One `details.causes[]` entry of a 422 `Invalid` Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueDuplicate`,
    /// `FieldValueForbidden` or `FieldValueTooLong`.
    pub reason: String,
    /// The field path (`spec.template.spec.containers[0].image`).
    pub field: String,
    /// The message without the field (`Required value`, `Invalid value: -1: must be ...`).
    pub message: String,
}

impl Cause {
    /// The text kubectl prints for this cause: `<field>: <message>`.
    pub fn to_line(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

#[derive(Default)]
pub(crate) struct Errs(pub(crate) Vec<Cause>);

impl Errs {
    pub(crate) fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            field: field.into(),
            message,
        });
    }
    pub(crate) fn required(&mut self, field: &str, detail: &str) {
        let msg = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, msg);
    }
    pub(crate) fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", go_value(value)),
        );
    }
    pub(crate) fn invalid_raw(&mut self, field: &str, rendered: &str, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {rendered}: {detail}"),
        );
    }
    pub(crate) fn immutable(&mut self, field: &str, rendered: &str) {
        self.invalid_raw(field, rendered, "field is immutable");
    }
    pub(crate) fn invalid_str(&mut self, field: &str, value: &str, detail: &str) {
        self.invalid(field, &Value::String(value.to_string()), detail);
    }
    pub(crate) fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                go_quote(value),
                quoted.join(", ")
            ),
        );
    }
    pub(crate) fn duplicate(&mut self, field: &str, value: &Value) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", go_value(value)),
        );
    }
    pub(crate) fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }
    pub(crate) fn too_long(&mut self, field: &str, max: usize) {
        self.push(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        );
    }
}

/// Renders a value the way `field.Error.ErrorBody` does with Go's `%q`, `%v` and `%#v`.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(m) if m.values().all(Value::is_string) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_value(v)))
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// Go's `%#v` of a `metav1.LabelSelector` (how field errors print one: it has no value `String()`);
/// `null` for a missing selector.
pub(crate) fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "null".into();
    };
    let strings = |v: Option<&Value>| match v.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a.iter().map(go_value).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    };
    let labels = match sel.get("matchLabels").and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => go_value(&Value::Object(m.clone())),
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(r.get("key").and_then(Value::as_str).unwrap_or("")),
                        go_quote(r.get("operator").and_then(Value::as_str).unwrap_or("")),
                        strings(r.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

pub(crate) fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

pub(crate) fn go_string_slice(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

pub(crate) fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub(crate) fn int_field(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

pub(crate) fn is_set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

pub(crate) fn set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

pub(crate) fn bool_field(e: &mut Errs, holder: &Value, key: &str, field: &str) -> Option<bool> {
    match holder.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            e.invalid(field, other, "must be a boolean");
            None
        }
    }
}

/// Fields Kubernetes declares `int32`: a larger number is no valid value for them (kube-apiserver
/// refuses it while decoding), and controllers must never see one to add to a clock or count.
pub(crate) const INT32_FIELDS: &[&str] = &[
    "replicas",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "parallelism",
    "completions",
    "backoffLimit",
    "ttlSecondsAfterFinished",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
];

pub(crate) fn nonnegative(e: &mut Errs, spec: &Value, key: &str, base: &str) {
    let Some(raw) = spec.get(key).filter(|v| v.is_number()) else {
        return;
    };
    // u64 values beyond i64 (and floats) are out of every range these fields have.
    let Some(n) = raw.as_i64() else {
        e.invalid(&format!("{base}.{key}"), raw, "must be an integer");
        return;
    };
    if n < 0 {
        e.invalid(
            &format!("{base}.{key}"),
            &Value::from(n),
            "must be greater than or equal to 0",
        );
    } else if INT32_FIELDS.contains(&key) && n > i64::from(i32::MAX) {
        e.invalid(
            &format!("{base}.{key}"),
            &Value::from(n),
            "must be less than or equal to 2147483647",
        );
    }
}
