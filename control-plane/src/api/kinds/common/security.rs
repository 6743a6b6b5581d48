//! `securityContext` and volume-mount settings: each is honoured by the node agent or refused here.

use std::collections::HashSet;

use apimachinery::security::ALL_CAPABILITIES;
use proto::SAFE_SYSCTLS;
use serde_json::Value;

use super::errs::{bool_field, go_quote, set, Errs};
use super::volumes::validate_descending_path;

pub(crate) const NOT_SUPPORTED: &str = "not supported by berth nodes";

/// `securityContext` (pod and containers) and volume mounts: every field is either honoured by the node
/// agent or refused here, so no setting a user relies on is silently ignored.
pub(crate) fn validate_security(e: &mut Errs, spec: &Value, base: &str, volumes: &HashSet<String>) {
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

pub(crate) fn validate_seccomp_profile(e: &mut Errs, sc: &Value, base: &str) {
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

pub(crate) fn validate_container_security(e: &mut Errs, c: &Value, cb: &str) {
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
            if bare != "ALL" && !ALL_CAPABILITIES.contains(&bare) {
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
