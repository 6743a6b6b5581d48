//! Pure translation of a pod spec plus its image config into a
//! [`ContainerConfig`](crate::runtime::ContainerConfig), as the kubelet merges them: `command` replaces the
//! entrypoint, `args` replace `Cmd`, env overrides image env.

use crate::images::ImageConfig;
use crate::runtime::bundle::all_capabilities;
use crate::runtime::SecurityConfig;
use apimachinery::security::{oci_capability, ALL_CAPABILITIES, SAFE_SYSCTLS};
use serde_json::Value;

/// Final argv of a container (Kubernetes' command/args rules over the image's Entrypoint/Cmd).
pub fn argv(container: &Value, image: &ImageConfig) -> Vec<String> {
    let list = |k: &str| -> Option<Vec<String>> {
        container[k].as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
    };
    match (list("command"), list("args")) {
        (Some(cmd), args) if !cmd.is_empty() => {
            cmd.into_iter().chain(args.unwrap_or_default()).collect()
        }
        (_, Some(args)) if !args.is_empty() => {
            image.entrypoint.iter().cloned().chain(args).collect()
        }
        _ => image
            .entrypoint
            .iter()
            .cloned()
            .chain(image.cmd.iter().cloned())
            .collect(),
    }
}

/// Looks up `key` in a ConfigMap or Secret (decoding Secret data) among `objects`.
pub fn object_key(objects: &[Value], kind: &str, name: &str, key: &str) -> Option<String> {
    let o = objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)?;
    if let Some(v) = o["data"][key].as_str() {
        if kind == "Secret" {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
            return Some(String::from_utf8_lossy(&raw).into_owned());
        }
        return Some(v.to_string());
    }
    o["stringData"][key].as_str().map(String::from)
}

/// A Service as pods see it through environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEnv {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// ClusterIP (empty or `None` for headless services, which get no variables).
    pub cluster_ip: String,
    /// (port name, port, protocol).
    pub ports: Vec<(String, u32, String)>,
}

/// Kubernetes service link variables (`DB_SERVICE_HOST`, `DB_PORT_5432_TCP`, …) for services in `ns`, plus
/// the `kubernetes` service of `default`.
pub fn service_links(services: &[ServiceEnv], ns: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for s in services {
        let visible = s.namespace == ns || (s.namespace == "default" && s.name == "kubernetes");
        if !visible || s.cluster_ip.is_empty() || s.cluster_ip == "None" || s.ports.is_empty() {
            continue;
        }
        let n = s.name.to_uppercase().replace('-', "_");
        let ip = &s.cluster_ip;
        out.push((format!("{n}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{n}_SERVICE_PORT"), s.ports[0].1.to_string()));
        for (pname, port, _) in &s.ports {
            if !pname.is_empty() {
                out.push((
                    format!(
                        "{n}_SERVICE_PORT_{}",
                        pname.to_uppercase().replace('-', "_")
                    ),
                    port.to_string(),
                ));
            }
        }
        let (_, p0, proto0) = &s.ports[0];
        out.push((
            format!("{n}_PORT"),
            format!("{}://{ip}:{p0}", proto0.to_lowercase()),
        ));
        for (_, port, proto) in &s.ports {
            let (lp, up) = (proto.to_lowercase(), proto.to_uppercase());
            let base = format!("{n}_PORT_{port}_{up}");
            out.push((base.clone(), format!("{lp}://{ip}:{port}")));
            out.push((format!("{base}_PROTO"), lp));
            out.push((format!("{base}_PORT"), port.to_string()));
            out.push((format!("{base}_ADDR"), ip.clone()));
        }
    }
    out
}

/// Environment: image env, service links, then the container's env (later names override earlier ones).
pub fn env(
    container: &Value,
    image: &ImageConfig,
    pod: &Value,
    pod_ip: Option<&str>,
    objects: &[Value],
    services: &[ServiceEnv],
) -> Vec<String> {
    let mut out: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    if pod["spec"]["enableServiceLinks"].as_bool().unwrap_or(true) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        out.extend(service_links(services, ns));
    } else if let Some(k) = services
        .iter()
        .find(|s| s.namespace == "default" && s.name == "kubernetes")
    {
        out.extend(service_links(std::slice::from_ref(k), "default"));
    }
    let mut set = |k: String, v: String| match out.iter_mut().find(|(n, _)| *n == k) {
        Some(e) => e.1 = v,
        None => out.push((k, v)),
    };
    set(
        "HOSTNAME".into(),
        pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
    );
    for e in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = e["prefix"].as_str().unwrap_or("");
        let (kind, name) = if let Some(n) = e["configMapRef"]["name"].as_str() {
            ("ConfigMap", n)
        } else if let Some(n) = e["secretRef"]["name"].as_str() {
            ("Secret", n)
        } else {
            continue;
        };
        let Some(o) = objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        else {
            continue;
        };
        let keys: Vec<String> = o["data"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            if let Some(v) = object_key(objects, kind, name, &k) {
                set(format!("{prefix}{k}"), v);
            }
        }
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e["value"].as_str() {
            Some(v.to_string())
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => pod["metadata"]["name"].as_str().map(String::from),
                "metadata.namespace" => pod["metadata"]["namespace"].as_str().map(String::from),
                "metadata.uid" => pod["metadata"]["uid"].as_str().map(String::from),
                "spec.nodeName" => pod["spec"]["nodeName"].as_str().map(String::from),
                "status.podIP" => pod_ip.map(String::from),
                _ => None,
            }
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            object_key(
                objects,
                "ConfigMap",
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            )
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            object_key(
                objects,
                "Secret",
                r["name"].as_str().unwrap_or(""),
                r["key"].as_str().unwrap_or(""),
            )
        } else {
            Some(String::new())
        };
        set(name.to_string(), value.unwrap_or_default());
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Parses a Kubernetes quantity (`128Mi`, `1G`, `500m`, `0.5`, `1e3`) into a value scaled by `scale`
/// (1 for bytes, 1000 for millicores). The parsing is [`apimachinery::quantity::parse`], so the agent
/// accepts exactly the suffixes the API and the scheduler accept.
pub fn quantity(q: &str, scale: f64) -> Option<f64> {
    apimachinery::quantity::parse(q).map(|v| v * scale)
}

/// cgroup settings from `resources`: (memory limit bytes, cpu shares, cpu quota per 100 ms).
pub fn resources(container: &Value) -> (Option<i64>, Option<u64>, Option<i64>) {
    let r = &container["resources"];
    let get = |section: &str, k: &str, scale: f64| {
        r[section][k]
            .as_str()
            .and_then(|q| quantity(q, scale))
            .or_else(|| r[section][k].as_f64().map(|v| v * scale))
    };
    let mem = get("limits", "memory", 1.0).map(|v| v as i64);
    let cpu_limit = get("limits", "cpu", 1000.0);
    // Kubernetes defaults the request to the limit when only a limit is set.
    let cpu_req = get("requests", "cpu", 1000.0).or(cpu_limit);
    let shares = cpu_req.map(|m| ((m * 1024.0 / 1000.0) as u64).max(2));
    let quota = cpu_limit.map(|m| ((m * 100.0) as i64).max(1000));
    (mem, shares, quota)
}

/// UID and GID for the process: `securityContext` (container over pod), else the image `User` if numeric.
///
/// # Errors
/// A `runAsUser`/`runAsGroup` that is not a number in Kubernetes' range (0 to 2147483647): refused,
/// never wrapped (4294967296 as u32 would be 0, root).
pub fn user(container: &Value, pod: &Value, image: &ImageConfig) -> Result<(u32, u32), String> {
    let pick = |k: &str| -> Result<Option<u32>, String> {
        let v = match &container["securityContext"][k] {
            Value::Null => &pod["spec"]["securityContext"][k],
            v => v,
        };
        if v.is_null() {
            return Ok(None);
        }
        v.as_i64()
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!("securityContext.{k} {v} is not between 0 and 2147483647, inclusive")
            })
    };
    let (img_uid, img_gid) = match image.user.split_once(':') {
        Some((u, g)) => (u.parse().ok(), g.parse().ok()),
        None => (image.user.parse().ok(), None),
    };
    let uid = pick("runAsUser")?.or(img_uid).unwrap_or(0);
    let gid = pick("runAsGroup")?.or(img_gid).unwrap_or(0);
    Ok((uid, gid))
}

/// Security settings of `container` in `pod` running as `uid`: Docker's defaults, changed by
/// `securityContext` (container over pod) and `hostPID`/`hostIPC`. `image_user` is the image's `User`,
/// for kubelet's runAsNonRoot check of a non-numeric user.
///
/// # Errors
/// A setting this node cannot honour, or `runAsNonRoot` with a root user, with kubelet's message: the
/// container is refused (`CreateContainerConfigError`), never started with the setting ignored.
pub fn security(
    container: &Value,
    pod: &Value,
    uid: u32,
    image_user: &str,
) -> Result<SecurityConfig, String> {
    let csc = &container["securityContext"];
    let psc = &pod["spec"]["securityContext"];
    let pick = |k: &str| match &csc[k] {
        Value::Null => &psc[k],
        v => v,
    };
    let flag = |v: &Value, k: &str| -> Result<Option<bool>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            other => Err(format!("securityContext.{k} {other} is not a boolean")),
        }
    };
    let mut sec = SecurityConfig {
        host_pid: flag(&pod["spec"]["hostPID"], "hostPID")?.unwrap_or(false),
        host_ipc: flag(&pod["spec"]["hostIPC"], "hostIPC")?.unwrap_or(false),
        ..SecurityConfig::default()
    };
    sec.privileged = flag(&csc["privileged"], "privileged")?.unwrap_or(false);
    sec.read_only_rootfs =
        flag(&csc["readOnlyRootFilesystem"], "readOnlyRootFilesystem")?.unwrap_or(false);
    let escalation = flag(&csc["allowPrivilegeEscalation"], "allowPrivilegeEscalation")?;
    for unsupported in ["seLinuxOptions", "appArmorProfile", "windowsOptions"] {
        if !pick(unsupported).is_null() {
            return Err(format!(
                "securityContext.{unsupported} is not supported on this node"
            ));
        }
    }
    for unsupported in [
        "fsGroup",
        "fsGroupChangePolicy",
        "seLinuxChangePolicy",
        "supplementalGroupsPolicy",
    ] {
        if !psc[unsupported].is_null() {
            return Err(format!(
                "securityContext.{unsupported} is not supported on this node"
            ));
        }
    }
    match csc["procMount"].as_str() {
        None | Some("Default") => {}
        Some("Unmasked") => sec.unmasked_proc = true,
        Some(other) => {
            return Err(format!(
                "securityContext.procMount {other:?} is not supported"
            ))
        }
    }
    match pick("seccompProfile")["type"].as_str() {
        None | Some("RuntimeDefault") => {}
        Some("Unconfined") => sec.seccomp = false,
        Some(other) => {
            return Err(format!(
                "securityContext.seccompProfile type {other:?} is not supported on this node (use RuntimeDefault or Unconfined)"
            ))
        }
    }
    let caps = &csc["capabilities"];
    let names = |k: &str| -> Result<Vec<String>, String> {
        let mut out = vec![];
        for c in caps[k].as_array().into_iter().flatten() {
            let n = c.as_str().unwrap_or("").to_ascii_uppercase();
            if n == "ALL" {
                out.push(n);
                continue;
            }
            let full = oci_capability(&n);
            if !ALL_CAPABILITIES.contains(&&full["CAP_".len()..]) {
                return Err(format!(
                    "securityContext.capabilities.{k}: unknown capability {c}"
                ));
            }
            out.push(full);
        }
        Ok(out)
    };
    let (add, drop) = (names("add")?, names("drop")?);
    // As containerd: drop applies first (ALL empties the set), then add (ALL grants every capability).
    if drop.iter().any(|c| c == "ALL") {
        sec.capabilities.clear();
    }
    sec.capabilities.retain(|c| !drop.contains(c));
    if add.iter().any(|c| c == "ALL") {
        sec.capabilities = all_capabilities();
    }
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !sec.capabilities.contains(&c) {
            sec.capabilities.push(c);
        }
    }
    // Kubernetes' rule: escalation is allowed unless asked otherwise; a privileged or CAP_SYS_ADMIN container
    // may escalate by definition. Here a container that does not ask for escalation gets no_new_privs, as
    // Docker's `--security-opt no-new-privileges`, so setuid binaries cannot raise it.
    let may_escalate = sec.privileged || sec.capabilities.iter().any(|c| c == "CAP_SYS_ADMIN");
    if escalation == Some(false) && may_escalate {
        return Err(
            "cannot set allowPrivilegeEscalation to false with privileged or CAP_SYS_ADMIN".into(),
        );
    }
    sec.no_new_privileges = !(may_escalate || escalation == Some(true));
    if flag(pick("runAsNonRoot"), "runAsNonRoot")?.unwrap_or(false) {
        let explicit = !pick("runAsUser").is_null();
        let user = image_user.split(':').next().unwrap_or("");
        if !explicit && !user.is_empty() && user.parse::<u32>().is_err() {
            return Err(format!(
                "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root"
            ));
        }
        if uid == 0 {
            return Err("container has runAsNonRoot and image will run as root".into());
        }
    }
    for g in psc["supplementalGroups"].as_array().into_iter().flatten() {
        let gid = g
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= i32::MAX as u32)
            .ok_or_else(|| format!("securityContext.supplementalGroups {g} is not between 0 and 2147483647, inclusive"))?;
        sec.supplementary_gids.push(gid);
    }
    for s in psc["sysctls"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (s["name"].as_str(), s["value"].as_str()) else {
            return Err(format!(
                "securityContext.sysctls entry {s} needs a name and a value"
            ));
        };
        if !SAFE_SYSCTLS.contains(&name) {
            return Err(format!("forbidden sysctl: {name:?} not allowlisted"));
        }
        // With the host's namespaces a "namespaced" sysctl would change the node itself.
        let host_net = pod["spec"]["hostNetwork"].as_bool().unwrap_or(false);
        if (name.starts_with("net.") && host_net) || (name.starts_with("kernel.") && sec.host_ipc) {
            return Err(format!(
                "sysctl {name:?} cannot be set with the host's namespace"
            ));
        }
        sec.sysctls.insert(name.to_string(), value.to_string());
    }
    Ok(sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn img() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            working_dir: "/w".into(),
            user: "1000".into(),
        }
    }

    #[test]
    fn argv_follows_kubernetes_rules() {
        let i = img();
        assert_eq!(argv(&json!({}), &i), vec!["/entry", "serve"]);
        assert_eq!(argv(&json!({"args": ["x"]}), &i), vec!["/entry", "x"]);
        assert_eq!(argv(&json!({"command": ["sh"]}), &i), vec!["sh"]);
        assert_eq!(
            argv(&json!({"command": ["sh"], "args": ["-c", "true"]}), &i),
            vec!["sh", "-c", "true"]
        );
    }

    #[test]
    fn env_overrides_and_resolves_refs() {
        use base64::Engine;
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}});
        let objs = vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}),
            json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": base64::engine::general_purpose::STANDARD.encode("hunter2")}}),
        ];
        let c = json!({"envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}], "env": [
            {"name": "A", "value": "2"},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}}
        ]});
        let svcs = vec![
            ServiceEnv {
                namespace: "ns".into(),
                name: "my-db".into(),
                cluster_ip: "10.96.0.12".into(),
                ports: vec![("http".into(), 5432, "TCP".into())],
            },
            ServiceEnv {
                namespace: "other".into(),
                name: "x".into(),
                cluster_ip: "10.96.0.13".into(),
                ports: vec![("".into(), 1, "TCP".into())],
            },
        ];
        let e = env(&c, &img(), &pod, Some("10.244.1.5"), &objs, &svcs);
        for want in [
            "MY_DB_SERVICE_HOST=10.96.0.12",
            "MY_DB_SERVICE_PORT=5432",
            "MY_DB_SERVICE_PORT_HTTP=5432",
            "MY_DB_PORT=tcp://10.96.0.12:5432",
            "MY_DB_PORT_5432_TCP_ADDR=10.96.0.12",
        ] {
            assert!(e.contains(&want.to_string()), "{want} in {e:?}");
        }
        assert!(
            !e.iter().any(|v| v.starts_with("X_SERVICE_HOST")),
            "other namespaces are not linked"
        );
        for want in [
            "PATH=/bin",
            "A=2",
            "N=ns",
            "IP=10.244.1.5",
            "C=v",
            "S=hunter2",
            "HOSTNAME=p",
            "CM_k=v",
        ] {
            assert!(e.contains(&want.to_string()), "{want} in {e:?}");
        }
        assert_eq!(e.iter().filter(|v| v.starts_with("A=")).count(), 1);
    }

    #[test]
    fn quantities_and_resources() {
        assert_eq!(quantity("64Mi", 1.0), Some(67108864.0));
        assert_eq!(quantity("1G", 1.0), Some(1e9));
        assert_eq!(quantity("500m", 1000.0), Some(500.0));
        assert_eq!(quantity("2", 1000.0), Some(2000.0));
        // Every suffix the API accepts, P and E included (the agent's own parser once lacked them).
        assert_eq!(quantity("1P", 1.0), Some(1e15));
        assert_eq!(quantity("2E", 1.0), Some(2e18));
        assert_eq!(quantity("1Ei", 1.0), Some(1024f64.powi(6)));
        assert_eq!(quantity("1e3", 1000.0), Some(1e6));
        assert_eq!(quantity("1Q", 1.0), None);
        let c = json!({"resources": {"limits": {"memory": "128Mi", "cpu": "500m"}}});
        assert_eq!(resources(&c), (Some(128 << 20), Some(512), Some(50_000)));
        let c = json!({"resources": {"requests": {"cpu": "250m"}}});
        assert_eq!(resources(&c), (None, Some(256), None));
    }

    #[test]
    fn user_prefers_security_context() {
        let pod = json!({"spec": {"securityContext": {"runAsUser": 7}}});
        assert_eq!(user(&json!({}), &pod, &img()), Ok((7, 0)));
        assert_eq!(
            user(
                &json!({"securityContext": {"runAsUser": 9, "runAsGroup": 9}}),
                &pod,
                &img()
            ),
            Ok((9, 9))
        );
        assert_eq!(user(&json!({}), &json!({}), &img()), Ok((1000, 0)));
    }

    #[test]
    fn out_of_range_users_are_refused_never_wrapped_to_root() {
        // 4294967296 as u32 is 0: the old cast ran such a container as root (#13).
        for bad in [
            json!(4_294_967_296u64),
            json!(-1),
            json!(2_147_483_648u64),
            json!("0"),
            json!(1.5),
        ] {
            let c = json!({"securityContext": {"runAsUser": bad}});
            let e = user(&c, &json!({}), &img()).unwrap_err();
            assert!(e.contains("runAsUser"), "{e}");
        }
        let c = json!({"securityContext": {"runAsGroup": 4_294_967_296u64}});
        assert!(user(&c, &json!({}), &img()).is_err());
    }

    fn sec(c: Value, pod: Value, uid: u32) -> Result<SecurityConfig, String> {
        security(&c, &pod, uid, "")
    }

    #[test]
    fn security_defaults_are_dockers() {
        let s = sec(json!({}), json!({}), 0).unwrap();
        assert_eq!(s, SecurityConfig::default());
        assert!(s.no_new_privileges && s.seccomp && !s.privileged);
        assert_eq!(s.pids_limit, crate::runtime::DEFAULT_PIDS_LIMIT);
        assert!(s.capabilities.contains(&"CAP_CHOWN".to_string()));
        assert!(!s.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn capabilities_drop_then_add() {
        let c = json!({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "CAP_KILL"]}}});
        let s = sec(c, json!({}), 0).unwrap();
        assert_eq!(s.capabilities, vec!["CAP_NET_ADMIN", "CAP_KILL"]);
        let c = json!({"securityContext": {"capabilities": {"drop": ["chown"]}}});
        let s = sec(c, json!({}), 0).unwrap();
        assert!(!s.capabilities.contains(&"CAP_CHOWN".to_string()));
        let c = json!({"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}});
        let s = sec(c, json!({}), 0).unwrap();
        assert!(
            !s.no_new_privileges,
            "CAP_SYS_ADMIN may escalate by definition"
        );
        let c = json!({"securityContext": {"capabilities": {"add": ["NOT_A_CAP"]}}});
        assert!(sec(c, json!({}), 0)
            .unwrap_err()
            .contains("unknown capability"));
    }

    #[test]
    fn privilege_escalation_and_privileged() {
        let c = json!({"securityContext": {"allowPrivilegeEscalation": true}});
        assert!(!sec(c, json!({}), 0).unwrap().no_new_privileges);
        let c = json!({"securityContext": {"privileged": true}});
        let s = sec(c, json!({}), 0).unwrap();
        assert!(s.privileged && !s.no_new_privileges);
        let c = json!({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false}});
        assert!(sec(c, json!({}), 0).is_err());
        let c = json!({"securityContext": {"privileged": "yes"}});
        assert!(
            sec(c, json!({}), 0).is_err(),
            "a non-boolean is refused, not read as false"
        );
    }

    #[test]
    fn run_as_non_root_refuses_root_with_kubelets_message() {
        let pod = json!({"spec": {"securityContext": {"runAsNonRoot": true}}});
        assert_eq!(
            sec(json!({}), pod.clone(), 0).unwrap_err(),
            "container has runAsNonRoot and image will run as root"
        );
        assert!(sec(json!({}), pod.clone(), 1000).is_ok());
        let e = security(&json!({}), &pod, 0, "nginx").unwrap_err();
        assert!(e.contains("non-numeric user (nginx)"), "{e}");
        // The container's false overrides the pod's true.
        let c = json!({"securityContext": {"runAsNonRoot": false}});
        assert!(sec(c, pod, 0).is_ok());
    }

    #[test]
    fn unsupported_settings_are_refused_not_ignored() {
        for c in [
            json!({"securityContext": {"seLinuxOptions": {"level": "s0"}}}),
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x"}}}),
            json!({"securityContext": {"procMount": "Weird"}}),
        ] {
            assert!(sec(c.clone(), json!({}), 0).is_err(), "{c}");
        }
        let pod = json!({"spec": {"securityContext": {"fsGroup": 2000}}});
        assert!(sec(json!({}), pod, 0).unwrap_err().contains("fsGroup"));
        let pod = json!({"spec": {"securityContext": {"sysctls": [{"name": "kernel.panic", "value": "1"}]}}});
        assert!(sec(json!({}), pod, 0)
            .unwrap_err()
            .contains("not allowlisted"));
        let pod = json!({"spec": {"hostNetwork": true, "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}}});
        assert!(sec(json!({}), pod, 0).is_err());
    }

    #[test]
    fn honoured_settings() {
        let pod = json!({"spec": {"hostPID": true, "securityContext": {
            "supplementalGroups": [5, 6], "seccompProfile": {"type": "Unconfined"},
            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 2048"}]}}});
        let c =
            json!({"securityContext": {"readOnlyRootFilesystem": true, "procMount": "Unmasked"}});
        let s = sec(c, pod, 0).unwrap();
        assert!(s.host_pid && !s.host_ipc && s.read_only_rootfs && s.unmasked_proc && !s.seccomp);
        assert_eq!(s.supplementary_gids, vec![5, 6]);
        assert_eq!(s.sysctls["net.ipv4.ip_local_port_range"], "1024 2048");
        let pod = json!({"spec": {"securityContext": {"supplementalGroups": [4_294_967_296u64]}}});
        assert!(sec(json!({}), pod, 0).is_err());
    }
}
