//! One Compose service into its workload (Deployment or DaemonSet) and its Service.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use super::autoscale;
use super::converter::{Converter, FileKind};
use super::deploy::update_config;
use super::labels::{AUTOSCALE_KEY, FILES_HASH, SERVICE_LABEL, STACK_LABEL};
use super::ports::{parse_port, port_number, split_proto, Port, NODE_PORTS};
use super::values::{
    check_name, int_at_least, key_values, list_at, probe, scalar_text, seconds, str_of,
    user_context, words,
};

/// Service keys `docker stack deploy` ignores (it prints them once); berth does the same.
const IGNORED: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "container_name",
    "depends_on",
    "devices",
    "dns",
    "dns_search",
    "domainname",
    "external_links",
    "extra_hosts",
    "ipc",
    "links",
    "logging",
    "mac_address",
    "networks",
    "pid",
    "privileged",
    "pull_policy",
    "restart",
    "security_opt",
    "shm_size",
    "sysctls",
    "ulimits",
    "userns_mode",
];

/// Service keys this converter maps.
const SUPPORTED: &[&str] = &[
    "command",
    "configs",
    "deploy",
    "entrypoint",
    "environment",
    "env_file",
    "expose",
    "healthcheck",
    "hostname",
    "image",
    "labels",
    "network_mode",
    "ports",
    "secrets",
    "stdin_open",
    "stop_grace_period",
    "tty",
    "user",
    "volumes",
    "working_dir",
];

impl Converter<'_> {
    /// The Deployment (DaemonSet in global mode) and the Service of one Compose service, and its
    /// HorizontalPodAutoscaler when it has `x-berth-autoscale`.
    pub(super) fn service(
        &mut self,
        name: &str,
        svc: &Value,
    ) -> Result<(Value, Value, Option<Value>)> {
        check_name("service name", name)?;
        let svc = svc
            .as_object()
            .ok_or_else(|| anyhow!("must be a mapping"))?;
        for k in svc.keys() {
            if IGNORED.contains(&k.as_str()) {
                self.ignored.insert(k.clone());
            } else if !SUPPORTED.contains(&k.as_str()) && !k.starts_with("x-") {
                bail!("Additional property {k} is not allowed");
            }
        }
        let image = str_of(svc.get("image"), "image")?.ok_or_else(|| {
            anyhow!(
                "no image (berth does not build images: build it, then `berthctl image load` it)"
            )
        })?;
        let labels = json!({STACK_LABEL: self.stack, SERVICE_LABEL: name});
        let mut container = json!({
            "name": name,
            "image": image,
            // Lab clusters have no registry: images are loaded onto the nodes.
            "imagePullPolicy": "IfNotPresent",
        });
        if let Some(v) = svc.get("entrypoint") {
            container["command"] = json!(words(v, "entrypoint")?);
        }
        if let Some(v) = svc.get("command") {
            container["args"] = json!(words(v, "command")?);
        }
        let env = self.environment(svc)?;
        if !env.is_empty() {
            container["env"] = Value::Array(
                env.into_iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect(),
            );
        }
        if let Some(dir) = str_of(svc.get("working_dir"), "working_dir")? {
            container["workingDir"] = json!(dir);
        }
        if let Some(user) = svc.get("user") {
            container["securityContext"] = user_context(user)?;
        }
        for (key, field) in [("tty", "tty"), ("stdin_open", "stdin")] {
            if let Some(v) = svc.get(key) {
                container[field] = json!(v
                    .as_bool()
                    .ok_or_else(|| anyhow!("{key} must be a boolean"))?);
            }
        }
        if let Some(h) = svc.get("healthcheck") {
            if let Some(probe) = probe(h)? {
                container["readinessProbe"] = probe.clone();
                container["livenessProbe"] = probe;
            }
        }
        let ports = self.ports(svc)?;
        if !ports.is_empty() {
            container["ports"] = Value::Array(
                ports
                    .iter()
                    .map(|p| {
                        let mut c = json!({"containerPort": p.target, "protocol": p.protocol});
                        if let (true, Some(host)) = (p.host_mode, p.published) {
                            c["hostPort"] = json!(host);
                        }
                        c
                    })
                    .collect(),
            );
        }
        let (mut mounts, mut pod_volumes) = self.volumes(svc)?;
        let mut file_hash = String::new();
        for kind in [FileKind::Config, FileKind::Secret] {
            let (m, v, h) = self.file_mounts(kind, svc, pod_volumes.len())?;
            mounts.extend(m);
            pod_volumes.extend(v);
            file_hash.push_str(&h);
        }
        if !mounts.is_empty() {
            container["volumeMounts"] = Value::Array(mounts);
        }

        let deploy = svc.get("deploy").cloned().unwrap_or(json!({}));
        let deploy = deploy
            .as_object()
            .ok_or_else(|| anyhow!("deploy must be a mapping"))?;
        let mut pod_spec = json!({"containers": [container]});
        if !pod_volumes.is_empty() {
            pod_spec["volumes"] = Value::Array(pod_volumes);
        }
        let mut annotations = Map::new();
        match str_of(svc.get("network_mode"), "network_mode")? {
            // Docker's bridge is a container on the node's bridge: berth's pod network is exactly that.
            None | Some("bridge") => {}
            Some("host") => pod_spec["hostNetwork"] = json!(true),
            Some("none") => {
                annotations.insert("berth.dev/network".into(), json!("none"));
            }
            Some(other) => bail!(
                "network_mode {other} is not supported (every service is on the cluster network, \
                 which is also `bridge`; `host` and `none` are the other choices)"
            ),
        }
        if let Some(h) = str_of(svc.get("hostname"), "hostname")? {
            pod_spec["hostname"] = json!(h);
        }
        if let Some(g) = svc.get("stop_grace_period") {
            pod_spec["terminationGracePeriodSeconds"] = json!(seconds(g, "stop_grace_period")?);
        }
        if let Some(l) = svc.get("labels") {
            for (k, v) in key_values(l, "labels")? {
                annotations.insert(k, json!(v.unwrap_or_default()));
            }
        }
        self.deploy_spec(deploy, &mut pod_spec)?;
        let global = match str_of(deploy.get("mode"), "deploy.mode")? {
            None | Some("replicated") => false,
            Some("global") => true,
            Some(m) => bail!("deploy.mode {m} is not supported (replicated or global)"),
        };
        let replicas = deploy.get("replicas").filter(|v| !v.is_null());
        if global && replicas.is_some() {
            // Docker's words (cli/compose/convert convertDeployMode).
            bail!("replicas can only be used with replicated mode");
        }
        let replicas = replicas.map_or(Ok(1), |v| int_at_least(v, 0, "deploy.replicas"))?;
        let autoscale = svc
            .get(AUTOSCALE_KEY)
            .map(|v| autoscale::parse(v, global, &pod_spec["containers"][0]["resources"]))
            .transpose()?;
        let replicas = autoscale
            .as_ref()
            .map_or(replicas, |a| a.initial_replicas(replicas));
        let mut meta_labels = labels.clone();
        if let Some(l) = deploy.get("labels") {
            for (k, v) in key_values(l, "deploy.labels")? {
                meta_labels[k] = json!(v.unwrap_or_default());
            }
        }
        if !file_hash.is_empty() {
            // Pods read configs and secrets when they start: new content must roll the service out.
            annotations.insert(
                FILES_HASH.into(),
                json!(format!(
                    "{:016x}",
                    apimachinery::hash::fnv1a_64(file_hash.as_bytes())
                )),
            );
        }
        let mut template_meta = json!({"labels": labels});
        if !annotations.is_empty() {
            template_meta["annotations"] = Value::Object(annotations);
        }
        // Both kinds share everything but the replica count and the update strategy, so a service that
        // switches mode keeps its pods' labels, template and Service.
        let mut workload = json!({
            "apiVersion": "apps/v1",
            "kind": if global { "DaemonSet" } else { "Deployment" },
            "metadata": {"name": name, "namespace": self.stack, "labels": meta_labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": template_meta, "spec": pod_spec},
            },
        });
        let update = update_config(deploy.get("update_config"))?;
        if global {
            if let Some(u) = update {
                workload["spec"]["updateStrategy"] = u.daemon_set_strategy();
            }
        } else {
            workload["spec"]["replicas"] = json!(replicas);
            if let Some(u) = update {
                workload["spec"]["strategy"] = u.deployment_strategy();
            }
        }
        let service = self.k8s_service(name, deploy, &meta_labels, &labels, &ports, svc)?;
        let hpa = autoscale.map(|a| a.object(name, &self.stack, &meta_labels));
        Ok((workload, service, hpa))
    }
}

impl Converter<'_> {
    pub(super) fn environment(&self, svc: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        if let Some(files) = svc.get("env_file") {
            let files = match files {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .map(|f| {
                        f.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| anyhow!("env_file entries must be paths"))
                    })
                    .collect::<Result<_>>()?,
                _ => bail!("env_file must be a path or a list of paths"),
            };
            for f in files {
                let path = self.base.join(&f);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("env_file {}", path.display()))?;
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (k, v) = match line.split_once('=') {
                        Some((k, v)) => (k.trim().to_string(), Some(v.to_string())),
                        None => (line.to_string(), None),
                    };
                    if let Some(v) = v.or_else(|| (self.env)(&k)) {
                        env.insert(k, v);
                    }
                }
            }
        }
        if let Some(e) = svc.get("environment") {
            for (k, v) in key_values(e, "environment")? {
                // `KEY` without a value takes it from the deploying shell, and is left out when unset there.
                if let Some(v) = v.or_else(|| (self.env)(&k)) {
                    env.insert(k, v);
                }
            }
        }
        Ok(env)
    }

    pub(super) fn ports(&self, svc: &Map<String, Value>) -> Result<Vec<Port>> {
        let mut out: Vec<Port> = Vec::new();
        for p in list_at(svc, "ports")? {
            out.extend(parse_port(p)?);
        }
        for e in list_at(svc, "expose")? {
            let text = scalar_text(e).ok_or_else(|| anyhow!("expose entries are ports"))?;
            let (port, proto) = split_proto(&text)?;
            let target = port_number(port)?;
            if !out
                .iter()
                .any(|p| p.target == target && p.protocol == proto)
            {
                out.push(Port {
                    target,
                    published: None,
                    protocol: proto,
                    host_mode: false,
                });
            }
        }
        Ok(out)
    }
}

impl Converter<'_> {
    pub(super) fn k8s_service(
        &mut self,
        name: &str,
        deploy: &Map<String, Value>,
        meta_labels: &Value,
        selector: &Value,
        ports: &[Port],
        svc: &Map<String, Value>,
    ) -> Result<Value> {
        let dnsrr = match str_of(deploy.get("endpoint_mode"), "deploy.endpoint_mode")? {
            None | Some("vip") => false,
            Some("dnsrr") => true,
            Some(m) => bail!("deploy.endpoint_mode {m} is not supported (vip or dnsrr)"),
        };
        // Host-mode ports are the pods' own (hostPort); the Service carries them inside the cluster only.
        let published = ports.iter().any(|p| p.published.is_some() && !p.host_mode);
        if dnsrr && published {
            bail!("port published with ingress mode can't be used with dnsrr mode");
        }
        if published && svc.get("network_mode").and_then(Value::as_str) == Some("none") {
            bail!("ports cannot be published with network_mode none");
        }
        let mut spec = json!({"selector": selector});
        let k8s_ports: Vec<Value> = ports
            .iter()
            .map(|p| {
                let mut v = json!({
                    "name": format!("{}-{}", p.protocol.to_lowercase(), p.target),
                    "protocol": p.protocol,
                    "port": p.target,
                    "targetPort": p.target,
                });
                match p.published.filter(|_| !p.host_mode) {
                    Some(n) if NODE_PORTS.contains(&n) => v["nodePort"] = json!(n),
                    Some(n) => self.warnings.push(format!(
                        "service {name}: published port {n} is outside the node port range 30000-32767; \
                         the server picks one (see `berthctl stack services {}`)",
                        self.stack
                    )),
                    None => {}
                }
                v
            })
            .collect();
        if published {
            spec["type"] = json!("NodePort");
        }
        if dnsrr || k8s_ports.is_empty() {
            // Without ports a ClusterIP cannot forward anything; a headless Service still gives the name,
            // resolving to the tasks' IPs (Swarm's dnsrr), and every port of the tasks answers.
            spec["clusterIP"] = json!("None");
        }
        spec["ports"] = Value::Array(k8s_ports);
        Ok(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.stack, "labels": meta_labels},
            "spec": spec,
        }))
    }
}
