//! Object validation with the field paths, cause reasons and message texts of the real API server
//! (`k8s.io/apimachinery/pkg/util/validation` and `pkg/apis/*/validation`), for 422 `Invalid` answers.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

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

/// The message of a DNS-1123 subdomain violation.
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// The message of a DNS-1123 label violation.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
/// The message of a DNS-1035 label violation (Service names).
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
/// The largest ConfigMap or Secret payload (1 MiB), and the largest total annotation size (256 KiB).
const MAX_CONFIG_SIZE: usize = 1024 * 1024;
const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// Validates an object about to be created or updated. `resource` is the plural resource name
/// (`deployments`, `pods`, ...); an empty result means valid.
pub fn validate(resource: &str, object: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    let meta = object.get("metadata").and_then(Value::as_object);
    let name_fn: fn(&str) -> Vec<String> = match resource {
        "namespaces" => dns1123_label,
        "services" => dns1035_label,
        "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings" => path_segment_name,
        _ => dns1123_subdomain,
    };
    validate_object_meta(&mut e, meta, name_fn);
    let spec = object.get("spec");
    match resource {
        "pods" => {
            if let Some(spec) = spec {
                validate_pod_spec(&mut e, spec, "spec", None);
            } else {
                e.required("spec.containers", "");
            }
        }
        "deployments"
        | "replicasets"
        | "statefulsets"
        | "daemonsets"
        | "replicationcontrollers" => {
            validate_workload(&mut e, resource, spec.unwrap_or(&Value::Null));
        }
        "jobs" => validate_job(&mut e, object),
        "services" => validate_service(&mut e, spec.unwrap_or(&Value::Null)),
        "configmaps" => validate_config_data(&mut e, object, false),
        "secrets" => validate_config_data(&mut e, object, true),
        "roles" => validate_rules(&mut e, object, true),
        "clusterroles" => validate_rules(&mut e, object, false),
        "rolebindings" => validate_role_binding(&mut e, object, true),
        "clusterrolebindings" => validate_role_binding(&mut e, object, false),
        _ => {}
    }
    e.0
}

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

fn str_list(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn go_string_slice(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// A Role's or ClusterRole's rules, as `ValidatePolicyRule`.
fn validate_rules(e: &mut Errs, role: &Value, namespaced: bool) {
    let Some(rules) = role.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("rules[{i}]");
        let urls = str_list(rule.get("nonResourceURLs"));
        let resources = str_list(rule.get("resources"));
        if str_list(rule.get("verbs")).is_empty() {
            e.required(
                &format!("{base}.verbs"),
                "verbs must contain at least one value",
            );
        }
        if !urls.is_empty() {
            if namespaced {
                e.invalid_raw(
                    &format!("{base}.nonResourceURLs"),
                    &go_string_slice(&urls),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !str_list(rule.get("apiGroups")).is_empty() || !resources.is_empty() {
                e.invalid_raw(
                    &format!("{base}.nonResourceURLs"),
                    &go_string_slice(&urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if rule
            .get("apiGroups")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            e.required(
                &format!("{base}.apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if resources.is_empty() {
            e.required(
                &format!("{base}.resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

/// A RoleBinding's or ClusterRoleBinding's roleRef and subjects, as `ValidateRoleBinding`.
fn validate_role_binding(e: &mut Errs, b: &Value, namespaced: bool) {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let get = |p: &str| b.pointer(p).and_then(Value::as_str).unwrap_or("");
    let group = get("/roleRef/apiGroup");
    if group != RBAC {
        e.not_supported("roleRef.apiGroup", group, &[RBAC]);
    }
    let kind = get("/roleRef/kind");
    if namespaced {
        if kind != "Role" && kind != "ClusterRole" {
            e.not_supported("roleRef.kind", kind, &["Role", "ClusterRole"]);
        }
    } else if kind != "ClusterRole" {
        e.not_supported("roleRef.kind", kind, &["ClusterRole"]);
    }
    let name = get("/roleRef/name");
    if name.is_empty() {
        e.required("roleRef.name", "");
    } else {
        for msg in path_segment_name(name) {
            e.invalid_str("roleRef.name", name, &msg);
        }
    }
    let subjects = b.get("subjects").and_then(Value::as_array);
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let base = format!("subjects[{i}]");
        let get = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
        let name = get("name");
        if name.is_empty() {
            e.required(&format!("{base}.name"), "");
        }
        match get("kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for msg in dns1123_subdomain(name) {
                        e.invalid_str(&format!("{base}.name"), name, &msg);
                    }
                }
                if !get("apiGroup").is_empty() {
                    e.not_supported(&format!("{base}.apiGroup"), get("apiGroup"), &[""]);
                }
                if !namespaced && get("namespace").is_empty() {
                    e.required(&format!("{base}.namespace"), "");
                }
            }
            "User" | "Group" => {
                if get("apiGroup") != RBAC {
                    e.not_supported(&format!("{base}.apiGroup"), get("apiGroup"), &[RBAC]);
                }
            }
            other => e.not_supported(
                &format!("{base}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            ),
        }
    }
}

/// A binding's roleRef may not change (`cannot change roleRef`).
fn validate_role_ref_update(e: &mut Errs, old: &Value, new: &Value) {
    if old.get("roleRef") == new.get("roleRef") {
        return;
    }
    let get = |p: &str| new.pointer(p).and_then(Value::as_str).unwrap_or("");
    let rendered = format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(get("/roleRef/apiGroup")),
        go_quote(get("/roleRef/kind")),
        go_quote(get("/roleRef/name"))
    );
    e.invalid_raw("roleRef", &rendered, "cannot change roleRef");
}

/// Validates what may change in an update of the main resource (not `/status`), comparing the stored
/// object `old` with `new` after `meta::prepare_update`; run in addition to [`validate`]. An empty
/// result means the update is allowed. Only Jobs have immutable spec fields here.
pub fn validate_update(resource: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut e = Errs::default();
    if resource == "jobs" {
        validate_job_update(&mut e, old, new);
    }
    if matches!(resource, "rolebindings" | "clusterrolebindings") {
        validate_role_ref_update(&mut e, old, new);
    }
    e.0
}

#[derive(Default)]
struct Errs(Vec<Cause>);

impl Errs {
    fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            field: field.into(),
            message,
        });
    }
    fn required(&mut self, field: &str, detail: &str) {
        let msg = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, msg);
    }
    fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", go_value(value)),
        );
    }
    fn invalid_raw(&mut self, field: &str, rendered: &str, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {rendered}: {detail}"),
        );
    }
    fn immutable(&mut self, field: &str, rendered: &str) {
        self.invalid_raw(field, rendered, "field is immutable");
    }
    fn invalid_str(&mut self, field: &str, value: &str, detail: &str) {
        self.invalid(field, &Value::String(value.to_string()), detail);
    }
    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
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
    fn duplicate(&mut self, field: &str, value: &Value) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", go_value(value)),
        );
    }
    fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }
    fn too_long(&mut self, field: &str, max: usize) {
        self.push(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        );
    }
}

/// Renders a value the way `field.Error.ErrorBody` does with Go's `%q`, `%v` and `%#v`.
fn go_value(v: &Value) -> String {
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
fn go_label_selector(sel: Option<&Value>) -> String {
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

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns_label_ok(s: &str, first_alpha: bool) -> bool {
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

fn qualified_name_part_ok(s: &str) -> bool {
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

fn validate_labels(e: &mut Errs, labels: Option<&Value>, field: &str) {
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

fn validate_object_meta(
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

fn int_field(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// `securityContext.runAsUser/runAsGroup` in Kubernetes' range: an agent must never wrap a larger
/// number into a small uid (4294967296 would be root).
fn validate_ids(e: &mut Errs, holder: &Value, base: &str) {
    for key in ["runAsUser", "runAsGroup"] {
        let Some(v) = holder.get("securityContext").and_then(|s| s.get(key)) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        if !v
            .as_i64()
            .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n))
        {
            e.invalid(
                &format!("{base}.securityContext.{key}"),
                v,
                "must be between 0 and 2147483647, inclusive",
            );
        }
    }
}

/// Fields Kubernetes declares `int32`: a larger number is no valid value for them (kube-apiserver
/// refuses it while decoding), and controllers must never see one to add to a clock or count.
const INT32_FIELDS: &[&str] = &[
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

fn nonnegative(e: &mut Errs, spec: &Value, key: &str, base: &str) {
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

fn validate_workload(e: &mut Errs, resource: &str, spec: &Value) {
    nonnegative(e, spec, "replicas", "spec");
    nonnegative(e, spec, "minReadySeconds", "spec");
    nonnegative(e, spec, "revisionHistoryLimit", "spec");
    if resource == "deployments" {
        if let Some(p) = int_field(spec, "progressDeadlineSeconds") {
            if p <= 0 {
                e.invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(p),
                    "must be greater than 0",
                );
            } else if p <= int_field(spec, "minReadySeconds").unwrap_or(0) {
                e.invalid(
                    "spec.progressDeadlineSeconds",
                    &Value::from(p),
                    "must be greater than minReadySeconds",
                );
            }
        }
        if let Some(t) = spec.pointer("/strategy/type").and_then(Value::as_str) {
            if !["Recreate", "RollingUpdate"].contains(&t) {
                e.not_supported("spec.strategy.type", t, &["Recreate", "RollingUpdate"]);
            }
        }
    }
    let template_labels = spec.pointer("/template/metadata/labels");
    let selector = spec.get("selector").filter(|s| !s.is_null());
    // ReplicationControllers use a plain map selector that defaults to the template labels.
    if resource == "replicationcontrollers" {
        if let Some(Value::Object(sel)) = selector {
            validate_labels(e, selector, "spec.selector");
            let labels = template_labels.and_then(Value::as_object);
            if !sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                e.invalid(
                    "spec.template.metadata.labels",
                    template_labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                );
            }
        }
    } else {
        match selector {
            None => e.required("spec.selector", ""),
            Some(sel) => {
                let empty = sel
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && sel
                        .get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty);
                if empty {
                    let kind = match resource {
                        "deployments" => "deployment",
                        "replicasets" => "replicaset",
                        "statefulsets" => "statefulset",
                        _ => "daemonset",
                    };
                    e.invalid_raw(
                        "spec.selector",
                        // Go's %#v of the dereferenced *metav1.LabelSelector.
                        "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}",
                        &format!("empty selector is invalid for {kind}"),
                    );
                } else {
                    selector_selects_template(e, sel, template_labels);
                }
            }
        }
    }
    let Some(template) = spec.get("template").filter(|t| !t.is_null()) else {
        e.required("spec.template", "");
        return;
    };
    validate_labels(e, template_labels, "spec.template.metadata.labels");
    let Some(pod_spec) = template.get("spec") else {
        e.required("spec.template.spec.containers", "");
        return;
    };
    let restart: &[&str] = if resource == "statefulsets"
        || resource == "daemonsets"
        || resource == "deployments"
        || resource == "replicasets"
        || resource == "replicationcontrollers"
    {
        &["Always"]
    } else {
        &["Always", "OnFailure", "Never"]
    };
    validate_pod_spec(e, pod_spec, "spec.template.spec", Some(restart));
}

const JOB_LABELS: [(&str, bool); 4] = [
    (super::meta::LEGACY_JOB_CONTROLLER_UID_LABEL, true),
    (super::meta::LEGACY_JOB_NAME_LABEL, false),
    (super::meta::JOB_CONTROLLER_UID_LABEL, true),
    (super::meta::JOB_NAME_LABEL, false),
];
/// Largest parallelism of an Indexed Job.
const MAX_PARALLELISM_INDEXED: i64 = 100_000;

fn is_set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// `ValidateJob` (`pkg/apis/batch/validation`): the generated selector and labels, the counts, the
/// completion mode, the pod replacement policy, the pod template (restart policy OnFailure or
/// Never) and the selector against the template labels.
fn validate_job(e: &mut Errs, job: &Value) {
    let spec = job.get("spec").unwrap_or(&Value::Null);
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let template_labels = spec.pointer("/template/metadata/labels");
    // validateGeneratedSelector: a Job that did not ask for a manual selector must carry exactly
    // what the server generated on create.
    if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) {
        if let Some(sel) = selector {
            let uid = job
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = super::meta::name_of(job);
            if uid.is_empty() {
                e.required("metadata.uid", "");
            }
            let mut expected = Map::new();
            for (key, is_uid) in JOB_LABELS {
                let want = if is_uid { uid } else { name };
                let field = format!("spec.template.metadata.labels[{key}]");
                match template_labels.and_then(|l| l.get(key)) {
                    None => e.required(&field, &format!("must be '{want}'")),
                    Some(v) if v.as_str() != Some(want) => e.invalid(
                        &field,
                        template_labels.unwrap_or(&Value::Null),
                        &format!("must be '{want}'"),
                    ),
                    Some(_) => {}
                }
                expected.insert(key.to_string(), Value::from(want));
            }
            if let Ok(s) = apimachinery::labels::LabelSelector::from_label_selector_json(sel) {
                if !s.matches(Some(&expected)) {
                    e.invalid_raw(
                        "spec.selector",
                        &go_label_selector(Some(sel)),
                        "`selector` not auto-generated",
                    );
                }
            }
        }
    }
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(e, spec, key, "spec");
    }
    if is_set(spec, "maxFailedIndexes") && !is_set(spec, "backoffLimitPerIndex") {
        e.required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        );
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    match mode {
        None | Some("NonIndexed") => {
            for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                    e.invalid(
                        &format!("spec.{key}"),
                        v,
                        "requires indexed completion mode",
                    );
                }
            }
        }
        Some("Indexed") => {
            if !is_set(spec, "completions") {
                e.required("spec.completions", "when completion mode is Indexed");
            }
            if let Some(p) = int_field(spec, "parallelism").filter(|p| *p > MAX_PARALLELISM_INDEXED)
            {
                e.invalid(
                    "spec.parallelism",
                    &Value::from(p),
                    &format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
                );
            }
        }
        Some(other) => e.not_supported("spec.completionMode", other, &["NonIndexed", "Indexed"]),
    }
    let failure_policy = is_set(spec, "podFailurePolicy");
    if let Some(p) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if failure_policy {
            if p != "Failed" {
                e.not_supported("spec.podReplacementPolicy", p, &["Failed"]);
            }
        } else if !["Failed", "TerminatingOrFailed"].contains(&p) {
            e.not_supported(
                "spec.podReplacementPolicy",
                p,
                &["Failed", "TerminatingOrFailed"],
            );
        }
    }
    match spec.get("template").filter(|t| !t.is_null()) {
        None => e.required("spec.template.spec.containers", ""),
        Some(t) => {
            validate_labels(e, template_labels, "spec.template.metadata.labels");
            validate_pod_spec(
                e,
                t.get("spec").unwrap_or(&Value::Null),
                "spec.template.spec",
                None,
            );
        }
    }
    // The pod defaults make an unset restart policy `Always`, so both mean "not set for a Job".
    let field = "spec.template.spec.restartPolicy";
    match spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" | "Always" => e.required(field, "valid values: \"OnFailure\", \"Never\""),
        "Never" => {}
        "OnFailure" if failure_policy => e.invalid_str(
            field,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        ),
        "OnFailure" => {}
        other => e.not_supported(field, other, &["OnFailure", "Never"]),
    }
    match selector {
        None => e.required("spec.selector", ""),
        Some(sel) => {
            selector_selects_template(e, sel, template_labels);
        }
    }
}

/// `ValidateJobSpecUpdate`: completions (except in tandem with parallelism for Indexed Jobs),
/// selector, template, completion mode and the failure/success policies are immutable. A suspended
/// Job that never started may still change its pods' scheduling directives, labels and annotations.
fn validate_job_update(e: &mut Errs, old: &Value, new: &Value) {
    let null = Value::Null;
    let spec = new.get("spec").unwrap_or(&null);
    let old_spec = old.get("spec").unwrap_or(&null);
    let get = |s: &'_ Value, k: &str| s.get(k).filter(|v| !v.is_null()).cloned();
    let changed = |k: &str| get(spec, k) != get(old_spec, k);
    let render = |k: &str| go_value(&get(spec, k).unwrap_or(Value::Null));
    if changed("completions") {
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        match (indexed, int_field(spec, "completions")) {
            (false, _) => e.immutable("spec.completions", &render("completions")),
            // An Indexed Job without completions is already refused by `validate`.
            (true, None) => {}
            (true, Some(c)) => {
                if int_field(spec, "parallelism") != Some(c) {
                    e.invalid(
                        "spec.completions",
                        &Value::from(c),
                        "can only be modified in tandem with spec.parallelism",
                    );
                }
            }
        }
    }
    if changed("selector") {
        e.immutable("spec.selector", &go_label_selector(spec.get("selector")));
    }
    let mut template = get(spec, "template").unwrap_or(Value::Null);
    let mut old_template = get(old_spec, "template").unwrap_or(Value::Null);
    let suspended = old_spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let started = old
        .pointer("/status/startTime")
        .is_some_and(|v| !v.is_null());
    if suspended && !started {
        for t in [&mut template, &mut old_template] {
            scrub_scheduling_directives(t);
        }
    }
    if template != old_template {
        e.immutable("spec.template", &render("template"));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if changed(key) {
            e.immutable(&format!("spec.{key}"), &render(key));
        }
    }
}

/// Drops what a suspended, never-started Job may change in its pod template before comparing.
fn scrub_scheduling_directives(template: &mut Value) {
    if let Some(meta) = template.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("labels");
        meta.remove("annotations");
    }
    if let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
        for k in ["nodeSelector", "tolerations", "schedulingGates"] {
            spec.remove(k);
        }
        if let Some(affinity) = spec.get_mut("affinity").and_then(Value::as_object_mut) {
            affinity.remove("nodeAffinity");
            if affinity.is_empty() {
                spec.remove("affinity");
            }
        }
    }
}

fn validate_pod_spec(e: &mut Errs, spec: &Value, base: &str, restart_policies: Option<&[&str]>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => e.required(&format!("{base}.containers"), ""),
        Some(c) if c.is_empty() => e.required(&format!("{base}.containers"), ""),
        Some(_) => {}
    }
    let mut names = HashSet::new();
    for (list, items) in [
        (
            "initContainers",
            spec.get("initContainers").and_then(Value::as_array),
        ),
        ("containers", containers),
    ] {
        for (i, c) in items.into_iter().flatten().enumerate() {
            validate_container(e, c, &format!("{base}.{list}[{i}]"), &mut names);
            validate_ids(e, c, &format!("{base}.{list}[{i}]"));
        }
    }
    validate_ids(e, spec, base);
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        let allowed = restart_policies.unwrap_or(&["Always", "OnFailure", "Never"]);
        if !allowed.contains(&rp) {
            e.not_supported(&format!("{base}.restartPolicy"), rp, allowed);
        }
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str) {
        let allowed = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
        if !allowed.contains(&dp) {
            e.not_supported(&format!("{base}.dnsPolicy"), dp, &allowed);
        }
    }
    nonnegative(e, spec, "terminationGracePeriodSeconds", base);
    if let Some(n) = int_field(spec, "activeDeadlineSeconds") {
        if n <= 0 {
            e.invalid(
                &format!("{base}.activeDeadlineSeconds"),
                &Value::from(n),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    validate_labels(e, spec.get("nodeSelector"), &format!("{base}.nodeSelector"));
    let mut vol_names = HashSet::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = format!("{base}.volumes[{i}].name");
        match v.get("name").and_then(Value::as_str).unwrap_or("") {
            "" => e.required(&f, ""),
            n => {
                for msg in dns1123_label(n) {
                    e.invalid_str(&f, n, &msg);
                }
                if !vol_names.insert(n.to_string()) {
                    e.duplicate(&f, &Value::from(n));
                }
            }
        }
    }
    validate_volume_sources(e, spec, base);
    validate_security(e, spec, base, &vol_names);
}

fn validate_container(e: &mut Errs, c: &Value, base: &str, names: &mut HashSet<String>) {
    let name_field = format!("{base}.name");
    match c.get("name").and_then(Value::as_str).unwrap_or("") {
        "" => e.required(&name_field, ""),
        n => {
            for msg in dns1123_label(n) {
                e.invalid_str(&name_field, n, &msg);
            }
            if !names.insert(n.to_string()) {
                e.duplicate(&name_field, &Value::from(n));
            }
        }
    }
    if c.get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .is_empty()
    {
        e.required(&format!("{base}.image"), "");
    }
    if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str) {
        let allowed = ["Always", "IfNotPresent", "Never"];
        if !allowed.contains(&p) {
            e.not_supported(&format!("{base}.imagePullPolicy"), p, &allowed);
        }
    }
    let mut port_names = HashSet::new();
    for (i, p) in c
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let pb = format!("{base}.ports[{i}]");
        if let Some(n) = p
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            for msg in port_name(n) {
                e.invalid_str(&format!("{pb}.name"), n, &msg);
            }
            if !port_names.insert(n.to_string()) {
                e.duplicate(&format!("{pb}.name"), &Value::from(n));
            }
        }
        match int_field(p, "containerPort") {
            None | Some(0) => e.required(&format!("{pb}.containerPort"), ""),
            Some(n) if !(1..=65535).contains(&n) => e.invalid(
                &format!("{pb}.containerPort"),
                &Value::from(n),
                PORT_RANGE_MSG,
            ),
            _ => {}
        }
        if let Some(n) = int_field(p, "hostPort").filter(|n| *n != 0) {
            if !(1..=65535).contains(&n) {
                e.invalid(&format!("{pb}.hostPort"), &Value::from(n), PORT_RANGE_MSG);
            }
        }
        validate_protocol(e, p, &pb);
    }
    for (i, env) in c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = format!("{base}.env[{i}].name");
        match env.get("name").and_then(Value::as_str).unwrap_or("") {
            "" => e.required(&f, ""),
            n if !env_var_name_ok(n) => e.invalid_str(
                &f,
                n,
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ),
            _ => {}
        }
    }
    for (i, m) in c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if m.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            e.required(&format!("{base}.volumeMounts[{i}].name"), "");
        }
        if m.get("mountPath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            e.required(&format!("{base}.volumeMounts[{i}].mountPath"), "");
        }
    }
}

/// `IsRelaxedEnvVarName` (RelaxedEnvironmentVariableValidation, on by default since 1.32).
fn env_var_name_ok(n: &str) -> bool {
    n.chars().all(|c| (' '..='~').contains(&c) && c != '=')
}

fn validate_protocol(e: &mut Errs, p: &Value, base: &str) {
    if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
        let allowed = ["SCTP", "TCP", "UDP"];
        if !allowed.contains(&proto) {
            e.not_supported(&format!("{base}.protocol"), proto, &allowed);
        }
    }
}

/// `IsValidPortName` (IANA_SVC_NAME): the violation messages (empty when valid).
fn port_name(n: &str) -> Vec<String> {
    let mut out = Vec::new();
    if n.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if !n.chars().all(|c| is_alnum_lower(c) || c == '-') {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if n.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if !n.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if n.starts_with('-') || n.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

fn validate_service(e: &mut Errs, spec: &Value) {
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&svc_type) {
        e.not_supported("spec.type", svc_type, &types);
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if svc_type == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            e.required("spec.externalName", "");
        }
    } else if ports.is_empty() && !headless {
        e.required("spec.ports", "");
    }
    let mut names = HashSet::new();
    let mut port_protos = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pb = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            e.required(&format!("{pb}.name"), "");
        } else if !name.is_empty() {
            for msg in dns1123_label(name) {
                e.invalid_str(&format!("{pb}.name"), name, &msg);
            }
            if !names.insert(name.to_string()) {
                e.duplicate(&format!("{pb}.name"), &Value::from(name));
            }
        }
        let port = int_field(p, "port").unwrap_or(0);
        if !(1..=65535).contains(&port) {
            e.invalid(&format!("{pb}.port"), &Value::from(port), PORT_RANGE_MSG);
        }
        validate_protocol(e, p, &pb);
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !port_protos.insert((port, proto.to_string())) {
            e.duplicate(&pb, &Value::String(format!("{port}/{proto}")));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(-1);
                if !(1..=65535).contains(&n) {
                    e.invalid(&format!("{pb}.targetPort"), &Value::from(n), PORT_RANGE_MSG);
                }
            }
            Some(Value::String(s)) => {
                for msg in port_name(s) {
                    e.invalid_str(&format!("{pb}.targetPort"), s, &msg);
                }
            }
            _ => {}
        }
        if let Some(np) = int_field(p, "nodePort").filter(|n| *n != 0) {
            if svc_type == "ClusterIP" || svc_type == "ExternalName" {
                e.forbidden(
                    &format!("{pb}.nodePort"),
                    &format!("may not be used when `type` is '{svc_type}'"),
                );
            } else if !(30000..=32767).contains(&np) {
                e.invalid(
                    &format!("{pb}.nodePort"),
                    &Value::from(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
    }
    validate_labels(e, spec.get("selector"), "spec.selector");
}

fn config_key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_config_data(e: &mut Errs, obj: &Value, secret: bool) {
    let data = obj.get("data").and_then(Value::as_object);
    let other_name = if secret { "stringData" } else { "binaryData" };
    let other = obj.get(other_name).and_then(Value::as_object);
    let mut total = 0usize;
    for (field, map) in [("data", data), (other_name, other)] {
        for (k, v) in map.into_iter().flatten() {
            let f = format!("{field}[{k}]");
            if k.len() > 253 {
                e.invalid_str(&f, k, "must be no more than 253 characters");
            }
            if !config_key_ok(k) {
                e.invalid_str(&f, k, CONFIG_KEY_MSG);
            } else if k == "." || k == ".." {
                e.invalid_str(&f, k, &format!("must not be '{k}'"));
            } else if k.starts_with("..") {
                e.invalid_str(&f, k, "must not start with '..'");
            }
            if !secret && field == "binaryData" && data.is_some_and(|d| d.contains_key(k)) {
                e.invalid_str(&f, k, "duplicate of key present in data");
            }
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_CONFIG_SIZE {
        e.too_long("", MAX_CONFIG_SIZE);
    }
    if secret {
        let has = |k: &str| {
            data.is_some_and(|d| d.contains_key(k)) || other.is_some_and(|d| d.contains_key(k))
        };
        let required: &[&str] = match obj.get("type").and_then(Value::as_str).unwrap_or("Opaque") {
            "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
            "kubernetes.io/dockercfg" => &[".dockercfg"],
            "kubernetes.io/tls" => &["tls.crt", "tls.key"],
            "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
            _ => &[],
        };
        for k in required {
            if !has(k) {
                e.required(&format!("data[{k}]"), "");
            }
        }
    }
}

/// A workload's selector: valid labels, parseable, and selecting its own template's labels.
fn selector_selects_template(e: &mut Errs, sel: &Value, template_labels: Option<&Value>) {
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

/// `validatePathNoBacksteps` and `validateLocalDescendingPath`: a path that must stay inside its volume.
fn validate_descending_path(e: &mut Errs, path: &str, field: &str) {
    if path.starts_with('/') {
        e.invalid_str(field, path, "must be a relative path");
    }
    no_backsteps(e, path, field);
}

fn no_backsteps(e: &mut Errs, path: &str, field: &str) {
    if path.split('/').any(|c| c == "..") {
        e.invalid_str(field, path, "must not contain '..'");
    }
}

/// File modes of projected keys (`defaultMode`, `items[].mode`).
fn validate_file_mode(e: &mut Errs, holder: &Value, key: &str, field: &str) {
    if let Some(v) = holder.get(key).filter(|v| !v.is_null()) {
        if !v.as_i64().is_some_and(|m| (0..=0o777).contains(&m)) {
            e.invalid(
                field,
                v,
                "must be a number between 0 and 0777 (octal), both inclusive",
            );
        }
    }
}

/// Volume sources whose names and paths become host paths: ConfigMap/Secret `items`, PVC claim names
/// and hostPath paths (`validateVolumeSource`).
fn validate_volume_sources(e: &mut Errs, spec: &Value, base: &str) {
    let volumes = spec.get("volumes").and_then(Value::as_array);
    for (i, v) in volumes.into_iter().flatten().enumerate() {
        let vb = format!("{base}.volumes[{i}]");
        for src in ["configMap", "secret"] {
            let Some(source) = v.get(src).filter(|s| s.is_object()) else {
                continue;
            };
            validate_file_mode(e, source, "defaultMode", &format!("{vb}.{src}.defaultMode"));
            let items = source.get("items").and_then(Value::as_array);
            for (j, item) in items.into_iter().flatten().enumerate() {
                let ib = format!("{vb}.{src}.items[{j}]");
                if item
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    e.required(&format!("{ib}.key"), "");
                }
                let pf = format!("{ib}.path");
                match item.get("path").and_then(Value::as_str).unwrap_or("") {
                    "" => e.required(&pf, ""),
                    path => {
                        validate_descending_path(e, path, &pf);
                        // `..data` and friends are the kubelet's own entries in such a volume.
                        if path.starts_with("..") && !path.starts_with("../") {
                            e.invalid_str(&pf, path, "must not start with '..'");
                        }
                    }
                }
                validate_file_mode(e, item, "mode", &format!("{ib}.mode"));
            }
        }
        if let Some(pvc) = v.get("persistentVolumeClaim").filter(|s| !s.is_null()) {
            let f = format!("{vb}.persistentVolumeClaim.claimName");
            match pvc.get("claimName").and_then(Value::as_str).unwrap_or("") {
                "" => e.required(&f, ""),
                claim => {
                    for msg in dns1123_subdomain(claim) {
                        e.invalid_str(&f, claim, &msg);
                    }
                }
            }
        }
        if let Some(hp) = v.get("hostPath").filter(|s| !s.is_null()) {
            let f = format!("{vb}.hostPath.path");
            match hp.get("path").and_then(Value::as_str).unwrap_or("") {
                "" => e.required(&f, ""),
                path => no_backsteps(e, path, &f),
            }
            if let Some(t) = hp.get("type").and_then(Value::as_str) {
                let allowed = [
                    "",
                    "BlockDevice",
                    "CharDevice",
                    "Directory",
                    "DirectoryOrCreate",
                    "File",
                    "FileOrCreate",
                    "Socket",
                ];
                if !allowed.contains(&t) {
                    e.not_supported(&format!("{vb}.hostPath.type"), t, &allowed);
                }
            }
        }
    }
}

/// The capabilities a `securityContext` may name (with or without `CAP_`), plus `ALL`.
const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// The kubelet's default safe sysctls, the only ones a node agent sets.
pub use proto::SAFE_SYSCTLS;

const NOT_SUPPORTED: &str = "not supported by berth nodes";

fn set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn bool_field(e: &mut Errs, holder: &Value, key: &str, field: &str) -> Option<bool> {
    match holder.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            e.invalid(field, other, "must be a boolean");
            None
        }
    }
}

/// `securityContext` (pod and containers) and volume mounts: every field is either honoured by the node
/// agent or refused here, so no setting a user relies on is silently ignored.
fn validate_security(e: &mut Errs, spec: &Value, base: &str, volumes: &HashSet<String>) {
    let empty = Value::Null;
    let psc = spec.get("securityContext").unwrap_or(&empty);
    let pb = format!("{base}.securityContext");
    for key in [
        "seLinuxOptions",
        "appArmorProfile",
        "windowsOptions",
        "fsGroup",
        "fsGroupChangePolicy",
        "seLinuxChangePolicy",
        "supplementalGroupsPolicy",
    ] {
        if set(psc, key) {
            e.forbidden(&format!("{pb}.{key}"), NOT_SUPPORTED);
        }
    }
    bool_field(e, psc, "runAsNonRoot", &format!("{pb}.runAsNonRoot"));
    validate_seccomp_profile(e, psc, &pb);
    let groups = psc.get("supplementalGroups").and_then(Value::as_array);
    for (i, g) in groups.into_iter().flatten().enumerate() {
        if !g
            .as_i64()
            .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n))
        {
            e.invalid(
                &format!("{pb}.supplementalGroups[{i}]"),
                g,
                "must be between 0 and 2147483647, inclusive",
            );
        }
    }
    let sysctls = psc.get("sysctls").and_then(Value::as_array);
    for (i, s) in sysctls.into_iter().flatten().enumerate() {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if !SAFE_SYSCTLS.contains(&name) {
            e.forbidden(
                &format!("{pb}.sysctls[{i}].name"),
                &format!("sysctl {name:?} is not one of the safe sysctls berth nodes set"),
            );
        }
    }
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        bool_field(e, spec, key, &format!("{base}.{key}"));
    }
    for list in ["initContainers", "containers"] {
        let items = spec.get(list).and_then(Value::as_array);
        for (i, c) in items.into_iter().flatten().enumerate() {
            let cb = format!("{base}.{list}[{i}]");
            validate_container_security(e, c, &cb);
            let mounts = c.get("volumeMounts").and_then(Value::as_array);
            for (j, m) in mounts.into_iter().flatten().enumerate() {
                let mb = format!("{cb}.volumeMounts[{j}]");
                let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                if !name.is_empty() && !volumes.contains(name) {
                    e.push(
                        "FieldValueNotFound",
                        &format!("{mb}.name"),
                        format!("Not found: {}", go_quote(name)),
                    );
                }
                if let Some(sub) = m
                    .get("subPath")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    validate_descending_path(e, sub, &format!("{mb}.subPath"));
                }
                if set(m, "subPathExpr") {
                    e.forbidden(&format!("{mb}.subPathExpr"), NOT_SUPPORTED);
                }
                // Mounts are private on berth nodes; a propagation or recursive read-only mode asked for
                // would otherwise be silently different.
                match m.get("mountPropagation").and_then(Value::as_str) {
                    None | Some("None") => {}
                    Some(_) => e.forbidden(&format!("{mb}.mountPropagation"), NOT_SUPPORTED),
                }
                match m.get("recursiveReadOnly").and_then(Value::as_str) {
                    None | Some("Disabled") => {}
                    Some(_) => e.forbidden(&format!("{mb}.recursiveReadOnly"), NOT_SUPPORTED),
                }
            }
        }
    }
}

fn validate_seccomp_profile(e: &mut Errs, sc: &Value, base: &str) {
    let Some(p) = sc.get("seccompProfile").filter(|p| !p.is_null()) else {
        return;
    };
    let f = format!("{base}.seccompProfile.type");
    match p.get("type").and_then(Value::as_str).unwrap_or("") {
        "" => e.required(&f, ""),
        "RuntimeDefault" | "Unconfined" => {}
        "Localhost" => e.forbidden(&f, "Localhost profiles are not supported by berth nodes"),
        other => e.not_supported(&f, other, &["Localhost", "RuntimeDefault", "Unconfined"]),
    }
}

fn validate_container_security(e: &mut Errs, c: &Value, cb: &str) {
    let Some(sc) = c.get("securityContext").filter(|s| !s.is_null()) else {
        return;
    };
    let sb = format!("{cb}.securityContext");
    for key in ["seLinuxOptions", "appArmorProfile", "windowsOptions"] {
        if set(sc, key) {
            e.forbidden(&format!("{sb}.{key}"), NOT_SUPPORTED);
        }
    }
    let privileged = bool_field(e, sc, "privileged", &format!("{sb}.privileged"));
    let escalation = bool_field(
        e,
        sc,
        "allowPrivilegeEscalation",
        &format!("{sb}.allowPrivilegeEscalation"),
    );
    for key in ["readOnlyRootFilesystem", "runAsNonRoot"] {
        bool_field(e, sc, key, &format!("{sb}.{key}"));
    }
    validate_seccomp_profile(e, sc, &sb);
    if let Some(pm) = sc.get("procMount").and_then(Value::as_str) {
        if !["Default", "Unmasked"].contains(&pm) {
            e.not_supported(&format!("{sb}.procMount"), pm, &["Default", "Unmasked"]);
        }
    }
    let mut sys_admin = false;
    for list in ["add", "drop"] {
        let caps = sc
            .pointer(&format!("/capabilities/{list}"))
            .and_then(Value::as_array);
        for (i, cap) in caps.into_iter().flatten().enumerate() {
            let name = cap.as_str().unwrap_or("").to_ascii_uppercase();
            let bare = name.strip_prefix("CAP_").unwrap_or(&name);
            if !CAPABILITIES.contains(&bare) {
                e.invalid(
                    &format!("{sb}.capabilities.{list}[{i}]"),
                    cap,
                    "must be a Linux capability name (e.g. 'NET_ADMIN') or 'ALL'",
                );
            }
            sys_admin |= list == "add" && (bare == "SYS_ADMIN" || bare == "ALL");
        }
    }
    if escalation == Some(false) && privileged == Some(true) {
        e.invalid_raw(
            &sb,
            "securityContext",
            "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        );
    }
    if escalation == Some(false) && sys_admin {
        e.invalid_raw(
            &sb,
            "securityContext",
            "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
        );
    }
}

/// The pod template of a workload object (`spec.template.spec`, or `spec.jobTemplate.spec.template.spec`
/// for a CronJob), or the spec of a Pod, with the field path of the spec.
pub fn pod_spec_of<'a>(resource: &str, object: &'a Value) -> Option<(&'a Value, &'static str)> {
    match resource {
        "pods" => object.get("spec").map(|s| (s, "spec")),
        "deployments"
        | "replicasets"
        | "statefulsets"
        | "daemonsets"
        | "replicationcontrollers"
        | "jobs" => object
            .pointer("/spec/template/spec")
            .map(|s| (s, "spec.template.spec")),
        "cronjobs" => object
            .pointer("/spec/jobTemplate/spec/template/spec")
            .map(|s| (s, "spec.jobTemplate.spec.template.spec")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The cause lines, sorted: map iteration order is not part of the contract (Go's is random).
    fn lines(resource: &str, obj: Value) -> Vec<String> {
        let mut l: Vec<String> = validate(resource, &obj)
            .iter()
            .map(Cause::to_line)
            .collect();
        l.sort();
        l
    }

    fn sorted<S: ToString>(v: impl IntoIterator<Item = S>) -> Vec<String> {
        let mut l: Vec<String> = v.into_iter().map(|s| s.to_string()).collect();
        l.sort();
        l
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
    }

    fn with(mut base: Value, pointer: &str, v: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = base
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{pointer}"));
        match parent {
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = v,
            other => {
                other.as_object_mut().unwrap().insert(key.to_string(), v);
            }
        }
        base
    }

    #[test]
    fn valid_objects_have_no_causes() {
        assert_eq!(lines("deployments", deployment()), Vec::<String>::new());
        let pod = json!({"metadata": {"name": "p", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "busybox", "env": [{"name": "A_B", "value": "1"}]}]}});
        assert_eq!(lines("pods", pod), Vec::<String>::new());
        let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}, {"name": "https", "port": 443, "targetPort": "https"}]}});
        assert_eq!(lines("services", svc), Vec::<String>::new());
        let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
        assert_eq!(lines("services", headless), Vec::<String>::new());
        let cm = json!({"metadata": {"name": "cfg.v1"}, "data": {"a.txt": "x", "KEY_1": "y"}});
        assert_eq!(lines("configmaps", cm), Vec::<String>::new());
        assert_eq!(
            lines("namespaces", json!({"metadata": {"name": "team-a"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            lines("nodes", json!({"metadata": {"name": "node1.example"}})),
            Vec::<String>::new()
        );
        assert_eq!(
            lines(
                "pods",
                json!({"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "a", "image": "b"}]}})
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn metadata_messages() {
        let cases: Vec<(&str, Value, Vec<String>)> = vec![
            ("configmaps", json!({"metadata": {"name": "Web_1"}}), vec![format!("metadata.name: Invalid value: \"Web_1\": {DNS1123_SUBDOMAIN_MSG}")]),
            ("configmaps", json!({"metadata": {}}), vec!["metadata.name: Required value: name or generateName is required".into()]),
            ("namespaces", json!({"metadata": {"name": "a.b"}}), vec![format!("metadata.name: Invalid value: \"a.b\": {DNS1123_LABEL_MSG}")]),
            ("services", json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}), vec![format!("metadata.name: Invalid value: \"1web\": {DNS1035_LABEL_MSG}")]),
            ("namespaces", json!({"metadata": {"name": "a".repeat(64)}}), vec![format!("metadata.name: Invalid value: \"{}\": must be no more than 63 characters", "a".repeat(64))]),
            ("configmaps", json!({"metadata": {"name": "x", "labels": {"bad key": "ok", "k": "-bad"}}}), vec![
                format!("metadata.labels: Invalid value: \"bad key\": {QUALIFIED_NAME_MSG}"),
                format!("metadata.labels: Invalid value: \"-bad\": {LABEL_VALUE_MSG}"),
            ]),
            ("configmaps", json!({"metadata": {"name": "x", "labels": {"Example.com/a": "b"}}}), vec![
                format!("metadata.labels: Invalid value: \"Example.com/a\": prefix part {DNS1123_SUBDOMAIN_MSG}"),
            ]),
        ];
        for (res, obj, want) in cases {
            assert_eq!(lines(res, obj.clone()), sorted(want), "{obj}");
        }
        let c = &validate("configmaps", &json!({"metadata": {"name": "Web_1"}}))[0];
        assert_eq!(
            (c.reason.as_str(), c.field.as_str()),
            ("FieldValueInvalid", "metadata.name")
        );
        assert_eq!(
            validate("configmaps", &json!({"metadata": {}}))[0].reason,
            "FieldValueRequired"
        );
    }

    #[test]
    fn deployment_messages() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (with(deployment(), "/spec/replicas", json!(-1)), vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
            (with(deployment(), "/spec/template/metadata/labels", json!({"app": "nginx"})),
                vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"nginx\"}: `selector` does not match template `labels`"]),
            (with(deployment(), "/spec/template/spec/containers/0/image", json!("")), vec!["spec.template.spec.containers[0].image: Required value"]),
            (with(deployment(), "/spec/template/spec/containers", json!([])), vec!["spec.template.spec.containers: Required value"]),
            (with(deployment(), "/spec/template/spec/containers/0/ports/0/containerPort", json!(70000)),
                vec!["spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
            (with(deployment(), "/spec/template/spec/containers/0/ports/0/protocol", json!("XTP")),
                vec!["spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"XTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
            (with(deployment(), "/spec/template/spec/containers/0/imagePullPolicy", json!("Sometimes")),
                vec!["spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]),
            (with(deployment(), "/spec/template/spec/containers/0/name", json!("")), vec!["spec.template.spec.containers[0].name: Required value"]),
            (with(deployment(), "/spec/template/spec/restartPolicy", json!("Never")), vec!["spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""]),
            (with(deployment(), "/spec/strategy", json!({"type": "BlueGreen"})), vec!["spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", \"RollingUpdate\""]),
            (with(deployment(), "/spec/selector", json!({})), vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]),
        ];
        for (obj, want) in cases {
            assert_eq!(lines("deployments", obj.clone()), sorted(want), "{obj}");
        }
        let mut d = deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(lines("deployments", d), ["spec.selector: Required value"]);
        assert_eq!(
            lines(
                "replicasets",
                with(deployment(), "/spec/replicas", json!(-3))
            ),
            ["spec.replicas: Invalid value: -3: must be greater than or equal to 0"]
        );
    }

    /// A Job as the server stores it after create (generated selector and labels, defaults).
    fn job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
            "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
              "suspend": false, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
              "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
              "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u-1",
                  "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}})
    }

    #[test]
    fn job_messages() {
        assert_eq!(lines("jobs", job()), Vec::<String>::new());
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (with(job(), "/spec/template/spec/restartPolicy", json!("Always")),
                vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]),
            (with(job(), "/spec/template/spec/restartPolicy", json!("Sometimes")), vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\"",
            ]),
            (with(job(), "/spec/parallelism", json!(-1)), vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
            (with(job(), "/spec/completions", json!(-2)), vec!["spec.completions: Invalid value: -2: must be greater than or equal to 0"]),
            (with(job(), "/spec/backoffLimit", json!(-3)), vec!["spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0"]),
            (with(job(), "/spec/activeDeadlineSeconds", json!(-4)), vec!["spec.activeDeadlineSeconds: Invalid value: -4: must be greater than or equal to 0"]),
            (with(job(), "/spec/ttlSecondsAfterFinished", json!(-5)), vec!["spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0"]),
            (with(job(), "/spec/template/spec/securityContext", json!({"runAsUser": 4_294_967_296u64})), vec!["spec.template.spec.securityContext.runAsUser: Invalid value: 4294967296: must be between 0 and 2147483647, inclusive"]),
            (with(job(), "/spec/ttlSecondsAfterFinished", json!(i64::MAX)), vec!["spec.ttlSecondsAfterFinished: Invalid value: 9223372036854775807: must be less than or equal to 2147483647"]),
            (with(job(), "/spec/backoffLimit", json!(u64::MAX)), vec!["spec.backoffLimit: Invalid value: 18446744073709551615: must be an integer"]),
            (with(job(), "/spec/completionMode", json!("Sometimes")),
                vec!["spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""]),
            (with(with(job(), "/spec/completionMode", json!("Indexed")), "/spec/completions", Value::Null),
                vec!["spec.completions: Required value: when completion mode is Indexed"]),
            (with(job(), "/spec/podReplacementPolicy", json!("Never")),
                vec!["spec.podReplacementPolicy: Unsupported value: \"Never\": supported values: \"Failed\", \"TerminatingOrFailed\""]),
            (with(job(), "/spec/template/spec/containers", json!([])), vec!["spec.template.spec.containers: Required value"]),
            (with(job(), "/spec/selector", Value::Null), vec!["spec.selector: Required value"]),
            // A selector the user picked without manualSelector: the server added the uid to it.
            (with(job(), "/spec/selector", json!({"matchLabels": {"app": "pi", "batch.kubernetes.io/controller-uid": "u-1"}})), vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"u-1\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"pi\"}: `selector` does not match template `labels`",
            ]),
            (with(job(), "/spec/template/metadata/labels/job-name", json!("other")), vec![
                "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"batch.kubernetes.io/controller-uid\":\"u-1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u-1\", \"job-name\":\"other\"}: must be 'pi'",
            ]),
        ];
        for (obj, want) in cases {
            assert_eq!(lines("jobs", obj.clone()), sorted(want), "{obj}");
        }
        let mut missing = job();
        missing["spec"]["template"]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("controller-uid");
        assert_eq!(
            lines("jobs", missing),
            ["spec.template.metadata.labels[controller-uid]: Required value: must be 'u-1'"]
        );
        // With manualSelector the user's selector only has to match the template.
        let manual = json!({"metadata": {"name": "m", "uid": "u-2"},
            "spec": {"manualSelector": true, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["m"]}]},
              "template": {"metadata": {"labels": {"app": "m"}}, "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(lines("jobs", manual.clone()), Vec::<String>::new());
        assert_eq!(
            lines("jobs", with(manual.clone(), "/spec/manualSelector", json!(false))),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"In\", Values:[]string{\"m\"}}}}: `selector` not auto-generated",
                "spec.template.metadata.labels[batch.kubernetes.io/controller-uid]: Required value: must be 'u-2'",
                "spec.template.metadata.labels[batch.kubernetes.io/job-name]: Required value: must be 'm'",
                "spec.template.metadata.labels[controller-uid]: Required value: must be 'u-2'",
                "spec.template.metadata.labels[job-name]: Required value: must be 'm'",
            ]
        );
        let pfp = with(
            with(manual, "/spec/podFailurePolicy", json!({"rules": []})),
            "/spec/podReplacementPolicy",
            json!("TerminatingOrFailed"),
        );
        assert_eq!(
            lines("jobs", pfp),
            [
                "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
                "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
            ]
        );
        let c = &validate("jobs", &with(job(), "/spec/selector", Value::Null))[0];
        assert_eq!(
            (c.reason.as_str(), c.field.as_str()),
            ("FieldValueRequired", "spec.selector")
        );
    }

    #[test]
    fn rbac_messages() {
        let rules = |r: Value| json!({"metadata": {"name": "system:x"}, "rules": r});
        assert!(lines(
            "clusterroles",
            rules(json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]))
        )
        .is_empty());
        assert!(lines(
            "roles",
            rules(json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]))
        )
        .is_empty());
        assert_eq!(
            lines("roles", rules(json!([{"verbs": [], "apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}, {"verbs": ["get"]}]))),
            sorted([
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ])
        );
        assert_eq!(
            lines("clusterroles", json!({"metadata": {"name": "a/b"}})),
            ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        let binding = |role_ref: Value, subjects: Value| json!({"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects});
        let view =
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"});
        let sa = json!([{"kind": "ServiceAccount", "name": "x"}]);
        assert!(lines("rolebindings", binding(view.clone(), sa.clone())).is_empty());
        assert_eq!(
            lines("clusterrolebindings", binding(view, sa)),
            ["subjects[0].namespace: Required value"]
        );
        assert_eq!(
            lines("rolebindings", binding(json!({}), json!([{"kind": "Robot", "name": "r"}, {"kind": "User", "name": ""}]))),
            sorted([
                "roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                "roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\"",
                "roleRef.name: Required value",
                "subjects[0].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                "subjects[1].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
                "subjects[1].name: Required value",
            ])
        );
        let old = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}});
        assert!(validate_update("rolebindings", &old, &old).is_empty());
        let new = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "b"}});
        assert_eq!(
            validate_update("rolebindings", &old, &new)[0].to_line(),
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"b\"}: cannot change roleRef"
        );
    }

    fn update_lines(old: &Value, new: Value) -> Vec<String> {
        let mut l: Vec<String> = validate_update("jobs", old, &new)
            .iter()
            .map(Cause::to_line)
            .collect();
        l.sort();
        l
    }

    #[test]
    fn job_update_messages() {
        let old = job();
        // What may change: parallelism, suspend, backoffLimit, labels of the Job itself.
        let mut ok = with(old.clone(), "/spec/parallelism", json!(4));
        ok["spec"]["suspend"] = json!(true);
        ok["spec"]["backoffLimit"] = json!(1);
        ok["metadata"]["labels"] = json!({"x": "y"});
        assert_eq!(update_lines(&old, ok), Vec::<String>::new());
        assert!(validate_update("deployments", &deployment(), &json!({})).is_empty());

        let cases: Vec<(Value, Vec<&str>)> = vec![
            (with(old.clone(), "/spec/completions", json!(3)), vec!["spec.completions: Invalid value: 3: field is immutable"]),
            (with(old.clone(), "/spec/selector", json!({"matchLabels": {"a": "b"}})),
                vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]),
            (with(old.clone(), "/spec/completionMode", json!("Indexed")), vec!["spec.completionMode: Invalid value: \"Indexed\": field is immutable"]),
        ];
        for (obj, want) in cases {
            assert_eq!(update_lines(&old, obj.clone()), sorted(want), "{obj}");
        }
        let image = update_lines(
            &old,
            with(
                old.clone(),
                "/spec/template/spec/containers/0/image",
                json!("perl:2"),
            ),
        );
        assert_eq!(image.len(), 1);
        assert!(
            image[0].starts_with("spec.template: Invalid value: {"),
            "{image:?}"
        );
        assert!(image[0].ends_with(": field is immutable"), "{image:?}");

        // Indexed: completions may change together with parallelism (elastic Indexed Jobs).
        let mut indexed = with(old.clone(), "/spec/completionMode", json!("Indexed"));
        indexed["spec"]["completions"] = json!(2);
        indexed["spec"]["parallelism"] = json!(2);
        let both = with(
            with(indexed.clone(), "/spec/completions", json!(5)),
            "/spec/parallelism",
            json!(5),
        );
        assert_eq!(update_lines(&indexed, both), Vec::<String>::new());
        assert_eq!(
            update_lines(&indexed, with(indexed.clone(), "/spec/completions", json!(5))),
            ["spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]
        );

        // A suspended Job that never started may move its pods (node selector, labels, tolerations).
        let suspended = with(old.clone(), "/spec/suspend", json!(true));
        let mut moved = with(
            suspended.clone(),
            "/spec/template/spec/nodeSelector",
            json!({"zone": "b"}),
        );
        moved["spec"]["template"]["metadata"]["annotations"] = json!({"a": "b"});
        assert_eq!(
            update_lines(&suspended, moved.clone()),
            Vec::<String>::new()
        );
        let mut started = suspended.clone();
        started["status"] = json!({"startTime": "2026-01-01T00:00:00Z"});
        assert_eq!(update_lines(&started, moved).len(), 1);
    }

    #[test]
    fn pod_messages() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [
            {"name": "a", "image": "x"}, {"name": "a", "image": "y", "env": [{"name": "1X"}, {"name": "A=B"}]}]}});
        assert_eq!(lines("pods", pod), sorted([
            "spec.containers[1].name: Duplicate value: \"a\"",
            "spec.containers[1].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        ]));
        assert_eq!(
            lines("pods", json!({"metadata": {"name": "p"}, "spec": {}})),
            ["spec.containers: Required value"]
        );
        assert_eq!(
            lines(
                "pods",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "Web", "image": "x"}]}})
            ),
            [format!(
                "spec.containers[0].name: Invalid value: \"Web\": {DNS1123_LABEL_MSG}"
            )]
        );
    }

    #[test]
    fn service_messages() {
        let svc = |spec: Value| json!({"metadata": {"name": "web"}, "spec": spec});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (svc(json!({})), vec!["spec.ports: Required value"]),
            (svc(json!({"ports": [{"port": 0}]})), vec!["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"]),
            (svc(json!({"ports": [{"port": 70000}]})), vec!["spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]),
            (svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
                vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]),
            (svc(json!({"ports": [{"port": 80, "nodePort": 30080}]})), vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
            (svc(json!({"type": "Magic", "ports": [{"port": 80}]})),
                vec!["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]),
            (svc(json!({"ports": [{"port": 80}, {"port": 81}]})), vec!["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]),
            (svc(json!({"ports": [{"port": 80, "protocol": "ICMP"}]})), vec!["spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""]),
            (svc(json!({"ports": [{"port": 80, "targetPort": 0}]})), vec!["spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive"]),
        ];
        for (obj, want) in cases {
            assert_eq!(lines("services", obj.clone()), sorted(want), "{obj}");
        }
    }

    #[test]
    fn configmap_and_secret_messages() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"bad key": "x", "..x": "y"}, "binaryData": {"ok": ""}});
        assert_eq!(
            lines("configmaps", cm),
            sorted([
                "data[..x]: Invalid value: \"..x\": must not start with '..'",
                format!("data[bad key]: Invalid value: \"bad key\": {CONFIG_KEY_MSG}").as_str(),
            ])
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"k": "x"}, "binaryData": {"k": ""}});
        assert_eq!(
            lines("configmaps", cm),
            ["binaryData[k]: Invalid value: \"k\": duplicate of key present in data"]
        );
        let big =
            json!({"metadata": {"name": "c"}, "data": {"k": "x".repeat(MAX_CONFIG_SIZE + 1)}});
        assert_eq!(
            lines("configmaps", big),
            ["Too long: may not be more than 1048576 bytes"]
        );
        let tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(lines("secrets", tls), ["data[tls.key]: Required value"]);
        let s = json!({"metadata": {"name": "s"}, "stringData": {"a/b": "x"}});
        assert_eq!(
            lines("secrets", s),
            [format!(
                "stringData[a/b]: Invalid value: \"a/b\": {CONFIG_KEY_MSG}"
            )]
        );
    }

    fn pod_with(spec: Value) -> Value {
        let mut base = json!({"containers": [{"name": "c", "image": "busybox"}]});
        for (k, v) in spec.as_object().unwrap() {
            base[k] = v.clone();
        }
        json!({"metadata": {"name": "p"}, "spec": base})
    }

    fn pod_lines(obj: &Value) -> Vec<String> {
        validate("pods", obj).iter().map(Cause::to_line).collect()
    }

    #[test]
    fn volume_item_paths_stay_inside_the_volume_with_kubes_words() {
        let p = pod_with(
            json!({"volumes": [{"name": "v", "configMap": {"name": "cm", "items": [
            {"key": "a", "path": "../x"}, {"key": "b", "path": "/etc/passwd"}, {"key": "c", "path": "..data"},
            {"key": "d", "path": "ok/file"}]}}]}),
        );
        assert_eq!(
            pod_lines(&p),
            vec![
                r#"spec.volumes[0].configMap.items[0].path: Invalid value: "../x": must not contain '..'"#,
                r#"spec.volumes[0].configMap.items[1].path: Invalid value: "/etc/passwd": must be a relative path"#,
                r#"spec.volumes[0].configMap.items[2].path: Invalid value: "..data": must not start with '..'"#,
            ]
        );
        let p = pod_with(
            json!({"volumes": [{"name": "s", "secret": {"secretName": "s", "defaultMode": 4096,
            "items": [{"key": "k", "path": "a/../../b"}]}}]}),
        );
        assert_eq!(
            pod_lines(&p),
            vec![
                "spec.volumes[0].secret.defaultMode: Invalid value: 4096: must be a number between 0 and 0777 (octal), both inclusive",
                r#"spec.volumes[0].secret.items[0].path: Invalid value: "a/../../b": must not contain '..'"#,
            ]
        );
    }

    #[test]
    fn sub_paths_claims_and_mount_names() {
        let p = pod_with(json!({
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "../../etc"}}],
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
                {"name": "d", "mountPath": "/d", "subPath": "../up"},
                {"name": "d", "mountPath": "/e", "subPath": "/abs"},
                {"name": "nope", "mountPath": "/f"},
                {"name": "d", "mountPath": "/g", "mountPropagation": "Bidirectional"}]}]}));
        let l = pod_lines(&p);
        assert!(l[0].starts_with(r#"spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: "../../etc": a lowercase RFC 1123 subdomain"#), "{l:?}");
        assert_eq!(
            l[1..],
            [
                r#"spec.containers[0].volumeMounts[0].subPath: Invalid value: "../up": must not contain '..'"#,
                r#"spec.containers[0].volumeMounts[1].subPath: Invalid value: "/abs": must be a relative path"#,
                r#"spec.containers[0].volumeMounts[2].name: Not found: "nope""#,
                "spec.containers[0].volumeMounts[3].mountPropagation: Forbidden: not supported by berth nodes",
            ]
        );
    }

    #[test]
    fn security_context_fields_are_honoured_or_refused() {
        let ok = pod_with(
            json!({"securityContext": {"runAsNonRoot": true, "supplementalGroups": [1],
            "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "privileged": false, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}),
        );
        assert!(pod_lines(&ok).is_empty(), "{:?}", pod_lines(&ok));
        let bad = pod_with(
            json!({"securityContext": {"fsGroup": 2000, "seLinuxOptions": {"level": "s0"},
            "sysctls": [{"name": "kernel.panic", "value": "1"}]},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "privileged": true, "allowPrivilegeEscalation": false,
                "seccompProfile": {"type": "Localhost"}, "capabilities": {"add": ["NOT_A_CAP"]}}}]}),
        );
        let l = pod_lines(&bad);
        for want in [
            "spec.securityContext.seLinuxOptions: Forbidden: not supported by berth nodes",
            "spec.securityContext.fsGroup: Forbidden: not supported by berth nodes",
            r#"spec.securityContext.sysctls[0].name: Forbidden: sysctl "kernel.panic" is not one of the safe sysctls berth nodes set"#,
            "spec.containers[0].securityContext.seccompProfile.type: Forbidden: Localhost profiles are not supported by berth nodes",
            r#"spec.containers[0].securityContext.capabilities.add[0]: Invalid value: "NOT_A_CAP": must be a Linux capability name (e.g. 'NET_ADMIN') or 'ALL'"#,
            "spec.containers[0].securityContext: Invalid value: securityContext: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ] {
            assert!(l.contains(&want.to_string()), "{want} not in {l:#?}");
        }
    }
}
