//! Compose files as Kubernetes objects, for `berthctl stack deploy` (the `docker stack deploy` subset).
//!
//! A stack is a namespace named after it. Each Compose service becomes a Deployment, or with `deploy.mode: global`
//! a DaemonSet (one task on every eligible node), and a Service of the same name in that namespace, so services
//! find each other by their Compose names through the pods' DNS search path, as they do on a Swarm overlay
//! network. Published ports become NodePorts (Swarm's ingress routing mesh: the port answers on every node), or
//! with `mode: host` the pods' `hostPort`s (only the nodes running a task), named volumes become
//! PersistentVolumeClaims (berth's named local volumes), and a healthcheck becomes both probes (Swarm routes only
//! to healthy tasks and replaces unhealthy ones).
//!
//! Like `docker stack deploy`, options that make no sense for a cluster (`build`, `container_name`, ...) are
//! ignored with one warning; unknown keys are errors, so a typo never deploys something else than asked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

/// Label on every object of a stack (the Swarm label name), with the stack's name.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// The namespace label of the Pod Security level the API server enforces there.
pub const POD_SECURITY_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// Label on a service's Deployment (or DaemonSet), Service and pods, with the Compose service name.
pub const SERVICE_LABEL: &str = "com.docker.stack.service.name";
/// The NodePort range of the API server; published ports outside it get a port allocated by the server.
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

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

/// The Kubernetes objects of one stack, in the order to apply them, and the warnings for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// Stack name (also the namespace).
    pub name: String,
    /// Namespace, then claims, configs and secrets, Services, and Deployments and DaemonSets.
    pub objects: Vec<Value>,
    /// One line each, printed before deploying.
    pub warnings: Vec<String>,
}

impl Stack {
    /// The names of the Compose services, sorted.
    pub fn services(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    }
}

/// Reads Compose files (later files override earlier ones, key by key, as `docker stack deploy -c a -c b`) and
/// converts them. Relative paths (`env_file`, bind mounts) are taken from the first file's directory.
///
/// # Errors
/// A file is unreadable or not valid Compose, or the result cannot run on berth (see [`convert`]).
pub fn load(files: &[String], stack: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Stack> {
    let mut merged = Value::Null;
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("read {f}"))?;
        let doc: Value =
            serde_yaml::from_str(&text).with_context(|| format!("{f}: not valid YAML"))?;
        merge(&mut merged, doc);
    }
    let base = files
        .first()
        .and_then(|f| Path::new(f).parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    convert(&merged, stack, &base, env)
}

/// Deep merge of mappings; anything else in `over` replaces what is in `base`.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Converts a parsed Compose document into the objects of stack `stack`.
///
/// # Errors
/// The stack name or a service name is not a DNS-1123 label, a key is unknown, a value has the wrong shape, an
/// interpolated variable marked required (`${X:?msg}`) is unset, or an option cannot be honoured (modes other
/// than replicated and global, `replicas` with global mode, port ranges, network modes other than bridge/host/none).
pub fn convert(
    doc: &Value,
    stack: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Stack> {
    check_name("stack name", stack)?;
    let doc = interpolate(doc, env)?;
    let top = doc
        .as_object()
        .ok_or_else(|| anyhow!("the Compose file must be a mapping with a `services` key"))?;
    for k in top.keys() {
        let known = [
            "version", "name", "services", "volumes", "networks", "configs", "secrets",
        ];
        if !known.contains(&k.as_str()) && !k.starts_with("x-") {
            bail!("(root) Additional property {k} is not allowed");
        }
    }
    let services = top
        .get("services")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("the Compose file defines no services"))?;
    let volumes = top.get("volumes").and_then(Value::as_object);
    let mut c = Converter {
        stack: stack.to_string(),
        base: base.to_path_buf(),
        volumes: volumes.cloned().unwrap_or_default(),
        claims: BTreeSet::new(),
        files: BTreeMap::new(),
        ignored: BTreeSet::new(),
        warnings: Vec::new(),
        env,
    };
    for kind in [FileKind::Config, FileKind::Secret] {
        let defs = top.get(kind.section()).and_then(Value::as_object);
        for (name, def) in defs.into_iter().flatten() {
            let file = c
                .stack_file(kind, name, def)
                .with_context(|| format!("{} {name}", kind.singular()))?;
            c.files.insert((kind, name.clone()), file);
        }
    }
    let mut svcs = Vec::new();
    let mut workloads = Vec::new();
    for (name, svc) in services {
        let (w, s) = c
            .service(name, svc)
            .with_context(|| format!("service {name}"))?;
        workloads.push(w);
        svcs.push(s);
    }
    let mut ns_labels = json!({STACK_LABEL: stack});
    // Bind mounts (hostPath) and `network_mode: host` are what the Compose file asks for, but the cluster's
    // Pod Security admission refuses them in a baseline namespace: the stack's own namespace allows them,
    // as a Kubernetes user would label a namespace that needs host access.
    let host_access = workloads.iter().any(|w| {
        let spec = &w["spec"]["template"]["spec"];
        spec["hostNetwork"] == true
            || spec["volumes"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v.get("hostPath").is_some()))
    });
    if host_access {
        ns_labels[POD_SECURITY_LABEL] = json!("privileged");
    }
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": stack, "labels": ns_labels},
    })];
    for claim in &c.claims {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": stack, "labels": {STACK_LABEL: stack}},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }));
    }
    for f in c.files.values() {
        if let Some(o) = &f.object {
            objects.push(o.clone());
        }
    }
    objects.extend(svcs);
    objects.extend(workloads);
    let mut warnings = c.warnings;
    if !c.ignored.is_empty() {
        let list: Vec<_> = c.ignored.into_iter().collect();
        warnings.insert(
            0,
            format!("Ignoring unsupported options: {}", list.join(", ")),
        );
    }
    Ok(Stack {
        name: stack.to_string(),
        objects,
        warnings,
    })
}

struct Converter<'a> {
    stack: String,
    base: std::path::PathBuf,
    volumes: Map<String, Value>,
    claims: BTreeSet<String>,
    /// Top-level configs and secrets by (kind, Compose name).
    files: BTreeMap<(FileKind, String), StackFile>,
    ignored: BTreeSet<String>,
    warnings: Vec<String>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// Pod template annotation with a hash of the configs and secrets the service mounts.
pub const FILES_HASH: &str = "berth.dev/configs-hash";

/// Compose's two kinds of files handed to services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FileKind {
    Config,
    Secret,
}

impl FileKind {
    fn section(self) -> &'static str {
        match self {
            FileKind::Config => "configs",
            FileKind::Secret => "secrets",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Secret => "secret",
        }
    }
}

/// A top-level config or secret: the object that holds it (none when external) and where to find its data.
#[derive(Debug, Clone)]
struct StackFile {
    /// The ConfigMap or Secret name.
    object_name: String,
    /// The data key holding the content.
    key: String,
    /// The object to create; `None` for `external: true`.
    object: Option<Value>,
}

/// One published or exposed port.
#[derive(Debug, Clone, PartialEq)]
struct Port {
    target: i64,
    published: Option<i64>,
    protocol: String,
    /// Swarm's `mode: host`: published on the node that runs the task only (a `hostPort`), not on every node.
    host_mode: bool,
}

impl Converter<'_> {
    /// The Deployment (DaemonSet in global mode) and the Service of one Compose service.
    fn service(&mut self, name: &str, svc: &Value) -> Result<(Value, Value)> {
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
        let mut meta_labels = labels.clone();
        if let Some(l) = deploy.get("labels") {
            for (k, v) in key_values(l, "deploy.labels")? {
                meta_labels[k] = json!(v.unwrap_or_default());
            }
        }
        if !file_hash.is_empty() {
            // Pods read configs and secrets when they start: new content must roll the service out.
            annotations.insert(FILES_HASH.into(), json!(fnv_hex(&file_hash)));
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
        Ok((workload, service))
    }

    /// A top-level config or secret (`file`, `content`/`environment`, or `external`).
    fn stack_file(&self, kind: FileKind, name: &str, def: &Value) -> Result<StackFile> {
        let def = def
            .as_object()
            .ok_or_else(|| anyhow!("must be a mapping"))?;
        for k in def.keys() {
            if ![
                "file",
                "content",
                "environment",
                "external",
                "name",
                "labels",
            ]
            .contains(&k.as_str())
            {
                bail!("Additional property {k} is not allowed");
            }
        }
        let object_name = object_name(str_of(def.get("name"), "name")?.unwrap_or(name))?;
        let key = name.to_string();
        if def.get("external").and_then(Value::as_bool) == Some(true) {
            return Ok(StackFile {
                object_name,
                key,
                object: None,
            });
        }
        let content: Vec<u8> = if let Some(f) = str_of(def.get("file"), "file")? {
            let path = self.base.join(f);
            std::fs::read(&path).with_context(|| format!("read {}", path.display()))?
        } else if let (FileKind::Config, Some(c)) = (kind, str_of(def.get("content"), "content")?) {
            c.as_bytes().to_vec()
        } else if let (FileKind::Secret, Some(var)) =
            (kind, str_of(def.get("environment"), "environment")?)
        {
            (self.env)(var)
                .ok_or_else(|| anyhow!("environment variable {var} is not set"))?
                .into_bytes()
        } else {
            bail!(
                "needs file, {} or external",
                match kind {
                    FileKind::Config => "content",
                    FileKind::Secret => "environment",
                }
            );
        };
        let meta = json!({"name": object_name, "namespace": self.stack, "labels": {STACK_LABEL: self.stack}});
        let object = match kind {
            FileKind::Config => {
                let text = String::from_utf8(content)
                    .map_err(|_| anyhow!("is not UTF-8 text (binary configs are not supported)"))?;
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {key.clone(): text}})
            }
            FileKind::Secret => json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "type": "Opaque", "data": {key.clone(): base64(&content)}}),
        };
        Ok(StackFile {
            object_name,
            key,
            object: Some(object),
        })
    }

    /// The mounts and volumes for a service's `configs:` or `secrets:` list, and a digest of what they hold.
    fn file_mounts(
        &mut self,
        kind: FileKind,
        svc: &Map<String, Value>,
        first_volume: usize,
    ) -> Result<(Vec<Value>, Vec<Value>, String)> {
        let (mut mounts, mut vols, mut digest) = (Vec::new(), Vec::new(), String::new());
        for (i, e) in list_at(svc, kind.section())?.into_iter().enumerate() {
            let (source, target) = match e {
                Value::String(s) => (s.clone(), None),
                Value::Object(m) => {
                    for k in m.keys() {
                        match k.as_str() {
                            "source" | "target" => {}
                            "uid" | "gid" | "mode" => {
                                self.ignored.insert(format!("{}.{k}", kind.section()));
                            }
                            _ => bail!("{} Additional property {k} is not allowed", kind.section()),
                        }
                    }
                    let source = str_of(m.get("source"), "source")?
                        .ok_or_else(|| anyhow!("{} entries need a source", kind.section()))?;
                    (
                        source.to_string(),
                        str_of(m.get("target"), "target")?.map(str::to_string),
                    )
                }
                _ => bail!("{} entries must be names or mappings", kind.section()),
            };
            let file = self.files.get(&(kind, source.clone())).ok_or_else(|| {
                anyhow!(
                    "{} {source:?} is not declared in the top-level {}",
                    kind.singular(),
                    kind.section()
                )
            })?;
            // Swarm's defaults: configs at /NAME, secrets at /run/secrets/NAME (a relative target too).
            let target = match (kind, target) {
                (_, Some(t)) if t.starts_with('/') => t,
                (FileKind::Config, t) => format!("/{}", t.unwrap_or(source.clone())),
                (FileKind::Secret, t) => format!("/run/secrets/{}", t.unwrap_or(source.clone())),
            };
            let vol_name = format!("vol-{}", first_volume + i);
            let items = json!([{"key": file.key, "path": file.key}]);
            let source_spec = match kind {
                FileKind::Config => {
                    json!({"configMap": {"name": file.object_name, "items": items}})
                }
                FileKind::Secret => {
                    json!({"secret": {"secretName": file.object_name, "items": items}})
                }
            };
            let mut vol = source_spec;
            vol["name"] = json!(vol_name);
            vols.push(vol);
            mounts.push(json!({"name": vol_name, "mountPath": target, "subPath": file.key, "readOnly": true}));
            if let Some(o) = &file.object {
                digest.push_str(&o["data"].to_string());
            }
        }
        Ok((mounts, vols, digest))
    }

    fn environment(&self, svc: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
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

    fn ports(&self, svc: &Map<String, Value>) -> Result<Vec<Port>> {
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

    /// Mounts of the container and volumes of the pod.
    fn volumes(&mut self, svc: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut mounts = Vec::new();
        let mut vols = Vec::new();
        for (i, v) in list_at(svc, "volumes")?.into_iter().enumerate() {
            let (kind, source, target, read_only) = match v {
                Value::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    let (src, dst, mode) = match parts[..] {
                        [dst] => (None, dst, None),
                        [src, dst] => (Some(src), dst, None),
                        [src, dst, mode] => (Some(src), dst, Some(mode)),
                        _ => bail!("volume {s:?}: expected [SOURCE:]TARGET[:MODE]"),
                    };
                    let ro = match mode {
                        None | Some("rw") => false,
                        Some("ro") => true,
                        Some(m) => bail!("volume {s:?}: mode {m:?} is not supported (ro or rw)"),
                    };
                    let kind = match src {
                        None => "anonymous",
                        Some(p)
                            if p.starts_with('/') || p.starts_with('.') || p.starts_with('~') =>
                        {
                            "bind"
                        }
                        Some(_) => "volume",
                    };
                    (
                        kind.to_string(),
                        src.map(str::to_string),
                        dst.to_string(),
                        ro,
                    )
                }
                Value::Object(m) => {
                    let kind = str_of(m.get("type"), "volumes[].type")?.unwrap_or("volume");
                    let target = str_of(m.get("target"), "volumes[].target")?
                        .ok_or_else(|| anyhow!("volume {i}: no target"))?;
                    let source = str_of(m.get("source"), "volumes[].source")?;
                    let ro = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                    let kind = match (kind, source) {
                        ("volume", None) => "anonymous",
                        (k @ ("volume" | "bind" | "tmpfs"), _) => k,
                        (k, _) => bail!("volume type {k} is not supported (volume, bind or tmpfs)"),
                    };
                    (
                        kind.to_string(),
                        source.map(str::to_string),
                        target.to_string(),
                        ro,
                    )
                }
                _ => bail!("volumes entries must be strings or mappings"),
            };
            if !target.starts_with('/') {
                bail!("volume target {target:?} must be an absolute path");
            }
            let vol_name = format!("vol-{i}");
            let source_spec = match kind.as_str() {
                "anonymous" => json!({"emptyDir": {}}),
                "tmpfs" => json!({"emptyDir": {"medium": "Memory"}}),
                "bind" => {
                    let src = source.unwrap_or_default();
                    let path = if let Some(rest) = src.strip_prefix("~/") {
                        let home = (self.env)("HOME").unwrap_or_else(|| "/root".into());
                        Path::new(&home).join(rest)
                    } else {
                        let p = self.base.join(&src);
                        std::path::absolute(&p).unwrap_or(p)
                    };
                    json!({"hostPath": {"path": path.display().to_string()}})
                }
                _ => {
                    let src = source.unwrap_or_default();
                    let def = self.volumes.get(&src).ok_or_else(|| {
                        anyhow!("named volume {src:?} is not declared in the top-level volumes")
                    })?;
                    let external = def["external"].as_bool().unwrap_or(false);
                    let claim = def["name"].as_str().unwrap_or(&src).to_string();
                    check_name("volume name", &claim)?;
                    if !external {
                        self.claims.insert(claim.clone());
                    }
                    json!({"persistentVolumeClaim": {"claimName": claim}})
                }
            };
            let mut vol = source_spec;
            vol["name"] = json!(vol_name);
            vols.push(vol);
            let mut mount = json!({"name": vol_name, "mountPath": target});
            if read_only {
                mount["readOnly"] = json!(true);
            }
            mounts.push(mount);
        }
        Ok((mounts, vols))
    }

    /// `deploy`: its keys, and resources and placement into the pod spec (mode, replicas, labels and updates are
    /// read by the caller).
    fn deploy_spec(&mut self, deploy: &Map<String, Value>, pod_spec: &mut Value) -> Result<()> {
        for k in deploy.keys() {
            let known = [
                "mode",
                "replicas",
                "labels",
                "resources",
                "placement",
                "update_config",
                "rollback_config",
                "restart_policy",
                "endpoint_mode",
            ];
            if !known.contains(&k.as_str()) {
                bail!("deploy Additional property {k} is not allowed");
            }
        }
        // Swarm pauses, monitors and rolls back updates by these; berth's rollouts are gated by readiness and
        // roll back only when asked (`berthctl rollout undo`), so saying nothing would promise behaviour.
        let mut unused: Vec<String> = Vec::new();
        if let Some(u) = deploy.get("update_config").and_then(Value::as_object) {
            for k in u.keys() {
                match k.as_str() {
                    "parallelism" | "order" => {}
                    "delay" | "failure_action" | "monitor" | "max_failure_ratio" => {
                        unused.push(format!("update_config.{k}"));
                    }
                    _ => bail!("deploy.update_config Additional property {k} is not allowed"),
                }
            }
        }
        if deploy.contains_key("rollback_config") {
            unused.push("rollback_config".into());
        }
        if !unused.is_empty() {
            self.warnings.push(format!(
                "{}: berth rolls out as readiness allows and rolls back only on `berthctl rollout undo`",
                unused.join(", ")
            ));
        }
        if let Some(cond) = deploy
            .get("restart_policy")
            .and_then(|r| r.get("condition"))
            .and_then(Value::as_str)
        {
            if cond != "any" {
                self.warnings.push(format!(
                    "restart_policy condition {cond}: berth restarts every container of a service, like `any`"
                ));
            }
        }
        if let Some(r) = deploy.get("resources") {
            let mut res = Map::new();
            for (from, to) in [("limits", "limits"), ("reservations", "requests")] {
                let Some(section) = r.get(from) else { continue };
                let mut m = Map::new();
                if let Some(c) = section.get("cpus") {
                    let text =
                        scalar_text(c).ok_or_else(|| anyhow!("{from}.cpus must be a number"))?;
                    let cpus: f64 = text
                        .parse()
                        .map_err(|_| anyhow!("{from}.cpus {text:?} is not a number"))?;
                    m.insert(
                        "cpu".into(),
                        json!(format!("{}m", (cpus * 1000.0).round() as i64)),
                    );
                }
                if let Some(mem) = section.get("memory") {
                    let text =
                        scalar_text(mem).ok_or_else(|| anyhow!("{from}.memory must be a size"))?;
                    m.insert("memory".into(), json!(memory_quantity(&text)?));
                }
                if !m.is_empty() {
                    res.insert(to.into(), Value::Object(m));
                }
            }
            if !res.is_empty() {
                pod_spec["containers"][0]["resources"] = Value::Object(res);
            }
        }
        if let Some(constraints) = deploy.get("placement").and_then(|p| p.get("constraints")) {
            let mut selector = Map::new();
            for c in list(constraints, "placement.constraints")? {
                let c = c
                    .as_str()
                    .ok_or_else(|| anyhow!("placement constraints are strings"))?;
                let (k, v) = c
                    .split_once("==")
                    .map(|(k, v)| (k.trim(), v.trim()))
                    .ok_or_else(|| {
                        anyhow!("placement constraint {c:?}: only `==` constraints are supported")
                    })?;
                let key = match k {
                    "node.hostname" => "kubernetes.io/hostname",
                    "node.platform.os" => "kubernetes.io/os",
                    "node.platform.arch" => "kubernetes.io/arch",
                    _ => k.strip_prefix("node.labels.").ok_or_else(|| {
                        anyhow!("placement constraint {c:?}: use node.hostname, node.platform.* or node.labels.*")
                    })?,
                };
                selector.insert(key.into(), json!(v));
            }
            if !selector.is_empty() {
                pod_spec["nodeSelector"] = Value::Object(selector);
            }
        }
        Ok(())
    }

    fn k8s_service(
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

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and
/// `$$` in every string of the document, as Compose does.
pub fn interpolate(doc: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<Value> {
    Ok(match doc {
        Value::String(s) => Value::String(interpolate_str(s, env)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| interpolate(v, env))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate(v, env)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn interpolate_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| anyhow!("invalid interpolation format for {s:?}: missing '}}'"))?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            if name.is_empty() {
                bail!("invalid interpolation format for {s:?}: {expr:?} has no variable name");
            }
            let val = env(name);
            let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
            let text = match op {
                "" => val.unwrap_or_default(),
                _ if op.starts_with(":-") => {
                    if set_nonempty {
                        val.unwrap_or_default()
                    } else {
                        op[2..].to_string()
                    }
                }
                _ if op.starts_with('-') => val.unwrap_or_else(|| op[1..].to_string()),
                _ if op.starts_with(":?") => {
                    if !set_nonempty {
                        bail!("required variable {name} is missing a value: {}", &op[2..]);
                    }
                    val.unwrap_or_default()
                }
                _ if op.starts_with('?') => val.ok_or_else(|| {
                    anyhow!("required variable {name} is missing a value: {}", &op[1..])
                })?,
                _ => bail!("invalid interpolation format for {s:?}: {expr:?}"),
            };
            out.push_str(&text);
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                bail!("invalid interpolation format for {s:?}: a lone '$' (write $$ for a literal one)");
            }
            out.push_str(&env(&rest[..name_len]).unwrap_or_default());
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        bail!(
            "{what} {name:?} is not valid: use at most 63 lowercase letters, digits and '-', starting and ending \
             with a letter or digit"
        )
    }
}

fn str_of<'a>(v: Option<&'a Value>, what: &str) -> Result<Option<&'a str>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bail!("{what} must be a string"),
    }
}

/// `m[key]` as a list; a missing key is an empty one.
fn list_at<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Vec<&'a Value>> {
    m.get(key).map_or(Ok(Vec::new()), |v| list(v, key))
}

fn list<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a Value>> {
    match v {
        Value::Array(a) => Ok(a.iter().collect()),
        Value::Null => Ok(Vec::new()),
        _ => bail!("{what} must be a list"),
    }
}

/// An integer of at least `min` (0 or 1, which the message names non-negative or positive).
fn int_at_least(v: &Value, min: i64, what: &str) -> Result<i64> {
    let kind = if min > 0 { "positive" } else { "non-negative" };
    v.as_i64()
        .filter(|n| *n >= min)
        .ok_or_else(|| anyhow!("{what} must be a {kind} integer"))
}

/// Numbers and strings as text (YAML gives `8080` and `"8080"` alike).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `KEY=VALUE` lists and `KEY: VALUE` mappings; a key without a value gives `None`.
fn key_values(v: &Value, what: &str) -> Result<Vec<(String, Option<String>)>> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), None)),
                v => scalar_text(v)
                    .map(|t| (k.clone(), Some(t)))
                    .ok_or_else(|| anyhow!("{what}.{k} must be a string, number or boolean")),
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                let e = e
                    .as_str()
                    .ok_or_else(|| anyhow!("{what} entries must be KEY=VALUE strings"))?;
                Ok(match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (e.to_string(), None),
                })
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => bail!("{what} must be a list or a mapping"),
    }
}

/// A command as a list of words: lists as given, strings split like a POSIX shell splits them (quotes and
/// backslashes), which is what Compose does.
fn words(v: &Value, what: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|w| scalar_text(w).ok_or_else(|| anyhow!("{what} entries must be strings")))
            .collect(),
        Value::String(s) => split_words(s),
        _ => bail!("{what} must be a string or a list"),
    }
}

/// POSIX-shell word splitting without expansions.
pub fn split_words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => bail!("unterminated single quote in {s:?}"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => bail!("unterminated double quote in {s:?}"),
                        },
                        Some(c) => cur.push(c),
                        None => bail!("unterminated double quote in {s:?}"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => bail!("trailing backslash in {s:?}"),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn split_proto(text: &str) -> Result<(&str, String)> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = match proto {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        p => bail!("port {text:?}: protocol {p} is not tcp, udp or sctp"),
    };
    Ok((port, proto.to_string()))
}

fn port_number(text: &str) -> Result<i64> {
    if text.contains('-') {
        bail!("port ranges ({text}) are not supported: list each port");
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| anyhow!("port {text:?} is not a number between 1 and 65535"))
}

/// Short (`[IP:][PUBLISHED:]TARGET[/PROTO]`) and long (`{target, published, protocol, mode}`) port syntax.
fn parse_port(v: &Value) -> Result<Vec<Port>> {
    if let Some(m) = v.as_object() {
        for k in m.keys() {
            if ![
                "target",
                "published",
                "protocol",
                "mode",
                "name",
                "app_protocol",
                "host_ip",
            ]
            .contains(&k.as_str())
            {
                bail!("ports Additional property {k} is not allowed");
            }
        }
        let host_mode = match m.get("mode").and_then(Value::as_str) {
            None | Some("ingress") => false,
            Some("host") => true,
            Some(other) => bail!("ports: mode {other} is not ingress or host"),
        };
        if m.contains_key("host_ip") {
            bail!("ports: host_ip is not supported (published ports answer on every node address)");
        }
        let target = m
            .get("target")
            .and_then(scalar_text)
            .ok_or_else(|| anyhow!("ports: long syntax needs a target"))?;
        let target = port_number(&target)?;
        let published = m
            .get("published")
            .and_then(scalar_text)
            .map(|p| port_number(&p))
            .transpose()?;
        let proto = m.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
        let (_, protocol) = split_proto(&format!("{target}/{proto}"))?;
        if host_mode && published.is_none() {
            bail!("ports: mode host needs a published port");
        }
        return Ok(vec![Port {
            target,
            published,
            protocol,
            host_mode,
        }]);
    }
    let text = scalar_text(v).ok_or_else(|| anyhow!("ports entries are strings or mappings"))?;
    let (spec, protocol) = split_proto(&text)?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts[..] {
        [t] => (None, t),
        [p, t] => (Some(p), t),
        [_ip, _p, _t] => {
            bail!("port {text:?}: binding to a host IP is not supported (published ports answer on every node address)")
        }
        _ => bail!("port {text:?}: expected [PUBLISHED:]TARGET[/PROTOCOL]"),
    };
    Ok(vec![Port {
        target: port_number(target)?,
        published: published.map(port_number).transpose()?,
        protocol,
        host_mode: false,
    }])
}

/// Compose durations (`1m30s`, `10s`, `500ms`, or a number of seconds) as whole seconds, rounded up.
fn seconds(v: &Value, what: &str) -> Result<i64> {
    let text = scalar_text(v).ok_or_else(|| anyhow!("{what} must be a duration"))?;
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let d = humantime::parse_duration(&text)
        .map_err(|e| anyhow!("{what} {text:?} is not a duration: {e}"))?;
    Ok(d.as_millis().div_ceil(1000) as i64)
}

/// Compose memory sizes (`512m`, `1g`, `1024k`, `100b`, plain bytes) as Kubernetes quantities.
fn memory_quantity(text: &str) -> Result<String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|s| !s.is_empty()).unwrap_or(&t);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("memory {text:?} is not a size like 512m or 1g"))?;
    let suffix = match unit {
        "" => "",
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        _ => bail!("memory {text:?} is not a size like 512m or 1g"),
    };
    Ok(format!("{n}{suffix}"))
}

fn user_context(v: &Value) -> Result<Value> {
    let text = scalar_text(v).ok_or_else(|| anyhow!("user must be a string"))?;
    let (u, g) = text
        .split_once(':')
        .map_or((text.as_str(), None), |(u, g)| (u, Some(g)));
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| anyhow!("user {text:?}: berth needs numeric ids (UID[:GID])"))
    };
    let mut ctx = json!({"runAsUser": num(u)?});
    if let Some(g) = g {
        ctx["runAsGroup"] = json!(num(g)?);
    }
    Ok(ctx)
}

/// A healthcheck as an exec probe; `None` when disabled.
fn probe(h: &Value) -> Result<Option<Value>> {
    let m = h
        .as_object()
        .ok_or_else(|| anyhow!("healthcheck must be a mapping"))?;
    if m.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let command = match m.get("test") {
        None => return Ok(None),
        Some(Value::String(s)) => vec!["/bin/sh".to_string(), "-c".into(), s.clone()],
        Some(Value::Array(a)) => {
            let w: Vec<String> = a.iter().filter_map(scalar_text).collect();
            match w.first().map(String::as_str) {
                Some("NONE") => return Ok(None),
                Some("CMD") => w[1..].to_vec(),
                Some("CMD-SHELL") => {
                    vec!["/bin/sh".to_string(), "-c".into(), w[1..].join(" ")]
                }
                _ => bail!("healthcheck test must start with CMD, CMD-SHELL or NONE"),
            }
        }
        Some(_) => bail!("healthcheck test must be a string or a list"),
    };
    if command.is_empty() {
        bail!("healthcheck test has no command");
    }
    let mut p = json!({"exec": {"command": command}});
    for (key, field) in [
        ("interval", "periodSeconds"),
        ("timeout", "timeoutSeconds"),
        ("start_period", "initialDelaySeconds"),
    ] {
        if let Some(v) = m.get(key) {
            p[field] = json!(seconds(v, &format!("healthcheck.{key}"))?.max(1));
        }
    }
    if let Some(r) = m.get("retries") {
        p["failureThreshold"] = json!(int_at_least(r, 1, "healthcheck.retries")?);
    }
    Ok(Some(p))
}

/// A service's `update_config`: how many tasks Swarm replaces at a time, and in which order.
#[derive(Debug, Clone, PartialEq)]
struct UpdateConfig {
    /// `parallelism` as a count or, for Swarm's 0 (all at once), `"100%"`.
    step: Value,
    /// `order: start-first`: the new task starts before the old one stops.
    start_first: bool,
}

impl UpdateConfig {
    /// A Deployment's `strategy`: `step` pods at a time, new first or old first.
    fn deployment_strategy(&self) -> Value {
        let rolling = if self.start_first {
            json!({"maxSurge": self.step, "maxUnavailable": 0})
        } else {
            json!({"maxSurge": 0, "maxUnavailable": self.step})
        };
        json!({"type": "RollingUpdate", "rollingUpdate": rolling})
    }

    /// A DaemonSet's `updateStrategy`. A node runs one pod of it, and Kubernetes requires maxUnavailable 0 when
    /// maxSurge is set, so start-first surges one node at a time.
    fn daemon_set_strategy(&self) -> Value {
        let rolling = if self.start_first {
            json!({"maxSurge": 1, "maxUnavailable": 0})
        } else {
            json!({"maxSurge": 0, "maxUnavailable": self.step})
        };
        json!({"type": "RollingUpdate", "rollingUpdate": rolling})
    }
}

/// Reads `update_config` (`parallelism`, default 1, and `order`, default stop-first); `None` when absent.
fn update_config(v: Option<&Value>) -> Result<Option<UpdateConfig>> {
    let Some(u) = v else { return Ok(None) };
    let parallelism = u
        .get("parallelism")
        .map_or(Ok(1), |p| int_at_least(p, 0, "update_config.parallelism"))?;
    // Swarm's 0 means all at once.
    let step = if parallelism == 0 {
        json!("100%")
    } else {
        json!(parallelism)
    };
    let start_first = match u
        .get("order")
        .and_then(Value::as_str)
        .unwrap_or("stop-first")
    {
        "stop-first" => false,
        "start-first" => true,
        o => bail!("update_config.order {o} is not stop-first or start-first"),
    };
    Ok(Some(UpdateConfig { step, start_first }))
}

/// A Compose name as an object name: `_` becomes `-` (Compose allows it, Kubernetes names do not).
fn object_name(name: &str) -> Result<String> {
    let n = name.replace('_', "-");
    check_name("name", &n)?;
    Ok(n)
}

/// FNV-1a 64 in hex: a short, stable digest for change detection (not security).
fn fnv_hex(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Standard base64 with padding (a Secret's `data`).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
