//! The `data`/`binaryData` (and `stringData`) keys and sizes ConfigMaps and Secrets share.

use serde_json::Value;

use super::errs::Errs;

pub(crate) const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The largest ConfigMap or Secret payload (1 MiB), and the largest total annotation size (256 KiB).
pub(crate) const MAX_CONFIG_SIZE: usize = 1024 * 1024;

pub(crate) fn config_key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) fn validate_config_data(e: &mut Errs, obj: &Value, secret: bool) {
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
