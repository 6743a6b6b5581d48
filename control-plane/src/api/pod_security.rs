//! Pod Security admission (`pod-security.kubernetes.io/enforce`): the pure checks of the `baseline` and
//! `restricted` levels with kube-apiserver's wording. Namespaces are enforced at `baseline` unless labelled;
//! `kube-system` is `privileged`.
//!
//! One deliberate difference from Kubernetes' baseline: `hostPort` is allowed, because berth publishes a
//! hostPort by forwarding to the pod's own address (it opens nothing on the host) and the shipped samples
//! (`node-hello`, Compose `mode: host` ports) rely on it.

use std::collections::BTreeSet;

use apimachinery::security::DEFAULT_CAPABILITIES;
use serde_json::Value;

/// The namespace label that selects the enforced level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes.
    Privileged,
    /// No known privilege escalation: no host namespaces, hostPath, privileged or extra capabilities.
    Baseline,
    /// Hardened: non-root, no escalation, all capabilities dropped, only ephemeral or claimed volumes.
    Restricted,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level enforced in namespace `name` whose object is `ns` (`None` when it is not stored yet).
/// A label value that is no level is enforced as `restricted`, as Kubernetes fails closed.
pub fn enforced_level(name: &str, ns: Option<&Value>) -> Level {
    let label = ns
        .and_then(|n| n.pointer("/metadata/labels"))
        .and_then(|l| l.get(ENFORCE_LABEL))
        .and_then(Value::as_str);
    match label {
        Some("privileged") => Level::Privileged,
        Some("baseline") => Level::Baseline,
        Some(_) => Level::Restricted,
        None if name == "kube-system" => Level::Privileged,
        None => Level::Baseline,
    }
}

/// Whether a baseline container may add a capability: Docker's defaults (what containers get anyway)
/// except `NET_RAW`, which Kubernetes' baseline leaves out.
fn baseline_allows(cap: &str) -> bool {
    cap != "NET_RAW" && DEFAULT_CAPABILITIES.contains(&cap)
}

/// Volume types a restricted pod may use.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn plural<'a>(one: &'a str, many: &'a str, n: usize) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec.get(k).and_then(Value::as_array).into_iter().flatten())
}

fn name_of(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn seccomp(v: &Value) -> Option<&str> {
    v.pointer("/securityContext/seccompProfile/type")
        .and_then(Value::as_str)
}

fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

/// `what (detail)` entries for the containers failing `bad`, as one check of the Pod Security Standards.
fn per_container(
    spec: &Value,
    reason: &str,
    bad: impl Fn(&Value) -> bool,
    detail: impl Fn(&str) -> String,
    out: &mut Vec<String>,
) {
    let names: Vec<String> = containers(spec).filter(|c| bad(c)).map(name_of).collect();
    if !names.is_empty() {
        let who = format!(
            "{} {}",
            plural("container", "containers", names.len()),
            join_quote(&names)
        );
        out.push(format!("{reason} ({})", detail(&who)));
    }
}

/// The violations of `level` by a pod spec, each `reason (detail)` as kube-apiserver words it; empty when
/// the spec is allowed.
pub fn violations(level: Level, spec: &Value) -> Vec<String> {
    let mut out = vec![];
    if level == Level::Privileged {
        return out;
    }
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec.get(*k).and_then(Value::as_bool) == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    per_container(
        spec,
        "privileged",
        |c| flag(c, "/securityContext/privileged") == Some(true),
        |who| format!("{who} must not set securityContext.privileged=true"),
        &mut out,
    );
    let mut extra_caps = BTreeSet::new();
    let added = |c: &Value| -> Vec<String> {
        c.pointer("/securityContext/capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let mut bad_caps = vec![];
    for c in containers(spec) {
        let bad: Vec<String> = added(c)
            .into_iter()
            .filter(|a| !baseline_allows(a))
            .collect();
        if !bad.is_empty() {
            bad_caps.push(name_of(c));
            extra_caps.extend(bad);
        }
    }
    if !bad_caps.is_empty() {
        let caps: Vec<&String> = extra_caps.iter().collect();
        out.push(format!(
            "non-default capabilities ({} {} must not include {} in securityContext.capabilities.add)",
            plural("container", "containers", bad_caps.len()),
            join_quote(&bad_caps),
            join_quote(&caps)
        ));
    }
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let host_paths: Vec<String> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(|v| name_of(v))
        .collect();
    if !host_paths.is_empty() {
        out.push(format!(
            "hostPath volumes ({} {})",
            plural("volume", "volumes", host_paths.len()),
            join_quote(&host_paths)
        ));
    }
    per_container(
        spec,
        "procMount",
        |c| {
            c.pointer("/securityContext/procMount")
                .and_then(Value::as_str)
                == Some("Unmasked")
        },
        |who| format!("{who} must not set securityContext.procMount to \"Unmasked\""),
        &mut out,
    );
    if seccomp(spec) == Some("Unconfined") {
        out.push(
            "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
                .into(),
        );
    }
    per_container(
        spec,
        "seccompProfile",
        |c| seccomp(c) == Some("Unconfined"),
        |who| format!("{who} must not set securityContext.seccompProfile.type to \"Unconfined\""),
        &mut out,
    );
    if level == Level::Restricted {
        restricted(spec, &volumes, &mut out);
    }
    out
}

fn restricted(spec: &Value, volumes: &[&Value], out: &mut Vec<String>) {
    for v in volumes {
        let kind = v
            .as_object()
            .into_iter()
            .flatten()
            .find(|(k, x)| *k != "name" && !x.is_null())
            .map(|(k, _)| k.as_str());
        if let Some(kind) = kind.filter(|k| !RESTRICTED_VOLUMES.contains(k)) {
            out.push(format!(
                "restricted volume types (volume {:?} uses restricted volume type {kind:?})",
                name_of(v)
            ));
        }
    }
    per_container(
        spec,
        "allowPrivilegeEscalation != false",
        |c| flag(c, "/securityContext/allowPrivilegeEscalation") != Some(false),
        |who| format!("{who} must set securityContext.allowPrivilegeEscalation=false"),
        out,
    );
    let pod_non_root = flag(spec, "/securityContext/runAsNonRoot");
    per_container(
        spec,
        "runAsNonRoot != true",
        |c| {
            let own = flag(c, "/securityContext/runAsNonRoot");
            own == Some(false) || (own.is_none() && pod_non_root != Some(true))
        },
        |who| format!("pod or {who} must set securityContext.runAsNonRoot=true"),
        out,
    );
    let uid0 = |v: &Value| {
        v.pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64)
            == Some(0)
    };
    if uid0(spec) {
        out.push("runAsUser=0 (pod must not set runAsUser=0)".into());
    }
    per_container(
        spec,
        "runAsUser=0",
        uid0,
        |who| format!("{who} must not set runAsUser=0"),
        out,
    );
    let pod_seccomp = seccomp(spec);
    per_container(
        spec,
        "seccompProfile",
        |c| {
            !matches!(
                seccomp(c).or(pod_seccomp),
                Some("RuntimeDefault" | "Localhost")
            )
        },
        |who| {
            format!("pod or {who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"")
        },
        out,
    );
    per_container(
        spec,
        "unrestricted capabilities",
        |c| {
            !c.pointer("/securityContext/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        },
        |who| format!("{who} must set securityContext.capabilities.drop=[\"ALL\"]"),
        out,
    );
}

/// kube-apiserver's refusal: `pods "x" is forbidden: violates PodSecurity "baseline:latest": ...`.
pub fn forbidden_message(
    qualified_resource: &str,
    name: &str,
    level: Level,
    violations: &[String],
) -> String {
    format!(
        "{qualified_resource} {name:?} is forbidden: violates PodSecurity \"{}:latest\": {}",
        level.name(),
        violations.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_default_to_baseline_and_kube_system_is_privileged() {
        assert_eq!(enforced_level("default", None), Level::Baseline);
        assert_eq!(enforced_level("kube-system", None), Level::Privileged);
        let ns = |v: &str| json!({"metadata": {"labels": {ENFORCE_LABEL: v}}});
        assert_eq!(
            enforced_level("a", Some(&ns("privileged"))),
            Level::Privileged
        );
        assert_eq!(
            enforced_level("a", Some(&ns("restricted"))),
            Level::Restricted
        );
        assert_eq!(
            enforced_level("kube-system", Some(&ns("baseline"))),
            Level::Baseline
        );
        assert_eq!(
            enforced_level("a", Some(&ns("bogus"))),
            Level::Restricted,
            "fails closed"
        );
    }

    #[test]
    fn baseline_refuses_host_access_with_kubes_words() {
        let spec = json!({
            "hostNetwork": true, "hostPID": true,
            "containers": [
                {"name": "c", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
                {"name": "d", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}},
                {"name": "e", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "volumes": [{"name": "v", "hostPath": {"path": "/"}}, {"name": "w", "emptyDir": {}}]});
        let v = violations(Level::Baseline, &spec);
        assert_eq!(
            v,
            vec![
                "host namespaces (hostNetwork=true, hostPID=true)",
                "privileged (container \"c\" must not set securityContext.privileged=true)",
                "non-default capabilities (containers \"c\", \"d\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volumes (volume \"v\")",
            ]
        );
        assert_eq!(
            forbidden_message("pods", "x", Level::Baseline, &v[3..]),
            "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"v\")"
        );
        assert!(violations(Level::Privileged, &spec).is_empty());
    }

    #[test]
    fn an_ordinary_pod_passes_baseline_but_not_restricted() {
        let spec = json!({"containers": [{"name": "web", "image": "nginx"}], "volumes": [{"name": "d", "emptyDir": {}}]});
        assert!(violations(Level::Baseline, &spec).is_empty());
        let v = violations(Level::Restricted, &spec);
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(v[0].starts_with("allowPrivilegeEscalation != false (container \"web\""));
        let hardened = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "web", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "d", "emptyDir": {}}]});
        assert!(violations(Level::Restricted, &hardened).is_empty());
        let mut host = hardened.clone();
        host["volumes"] = json!([{"name": "h", "hostPath": {"path": "/x"}}]);
        assert!(violations(Level::Restricted, &host).contains(
            &"restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")"
                .to_string()
        ));
    }
}
