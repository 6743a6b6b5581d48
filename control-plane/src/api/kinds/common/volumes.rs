//! Volume sources and the paths inside them (`validateVolumeSource`, `validateLocalDescendingPath`).

use serde_json::Value;

use super::errs::Errs;
use super::names::dns1123_subdomain;

/// `validatePathNoBacksteps` and `validateLocalDescendingPath`: a path that must stay inside its volume.
pub(crate) fn validate_descending_path(e: &mut Errs, path: &str, field: &str) {
    if path.starts_with('/') {
        e.invalid_str(field, path, "must be a relative path");
    }
    no_backsteps(e, path, field);
}

pub(crate) fn no_backsteps(e: &mut Errs, path: &str, field: &str) {
    if path.split('/').any(|c| c == "..") {
        e.invalid_str(field, path, "must not contain '..'");
    }
}

/// File modes of projected keys (`defaultMode`, `items[].mode`).
pub(crate) fn validate_file_mode(e: &mut Errs, holder: &Value, key: &str, field: &str) {
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
pub(crate) fn validate_volume_sources(e: &mut Errs, spec: &Value, base: &str) {
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
