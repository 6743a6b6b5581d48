//! Pod spec validation shared by Pods and every pod template (workloads, Jobs): containers, ports,
//! environment and restart policies.

use std::collections::HashSet;

use serde_json::Value;

use super::errs::{int_field, nonnegative, Errs};
use super::names::{dns1123_label, port_name, validate_labels};
use super::security::validate_security;
use super::volumes::validate_volume_sources;

pub(crate) const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

/// `securityContext.runAsUser/runAsGroup` in Kubernetes' range: an agent must never wrap a larger
/// number into a small uid (4294967296 would be root).
pub(crate) fn validate_ids(e: &mut Errs, holder: &Value, base: &str) {
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

/// Drops what a suspended, never-started Job may change in its pod template before comparing.
pub(crate) fn scrub_scheduling_directives(template: &mut Value) {
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

pub(crate) fn validate_pod_spec(
    e: &mut Errs,
    spec: &Value,
    base: &str,
    restart_policies: Option<&[&str]>,
) {
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

pub(crate) fn validate_container(e: &mut Errs, c: &Value, base: &str, names: &mut HashSet<String>) {
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
pub(crate) fn env_var_name_ok(n: &str) -> bool {
    n.chars().all(|c| (' '..='~').contains(&c) && c != '=')
}

pub(crate) fn validate_protocol(e: &mut Errs, p: &Value, base: &str) {
    if let Some(proto) = p.get("protocol").and_then(Value::as_str) {
        let allowed = ["SCTP", "TCP", "UDP"];
        if !allowed.contains(&proto) {
            e.not_supported(&format!("{base}.protocol"), proto, &allowed);
        }
    }
}
