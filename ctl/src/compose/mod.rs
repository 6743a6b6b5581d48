//! Compose files as Kubernetes objects, for `berthctl stack deploy` (the `docker stack deploy` subset).
//!
//! A stack is a namespace named after it. Each Compose service becomes a Deployment, or with `deploy.mode: global`
//! a DaemonSet (one task on every eligible node), and a Service of the same name in that namespace, so services
//! find each other by their Compose names through the pods' DNS search path, as they do on a Swarm overlay
//! network. Published ports become NodePorts (Swarm's ingress routing mesh: the port answers on every node), or
//! with `mode: host` the pods' `hostPort`s (only the nodes running a task), named volumes become
//! PersistentVolumeClaims (berth's named local volumes), and a healthcheck becomes both probes (Swarm routes only
//! to healthy tasks and replaces unhealthy ones). A service with the `x-berth-autoscale` extension also gets a
//! HorizontalPodAutoscaler of its name.
//!
//! Like `docker stack deploy`, options that make no sense for a cluster (`build`, `container_name`, ...) are
//! ignored with one warning; unknown keys are errors, so a typo never deploys something else than asked.
//!
//! # Layout
//! - [`convert`] and [`load`] (here): the document as a whole, into a [`Stack`].
//! - `converter`: the conversion's state; `service`: one Compose service into a workload and a Service; `files`, `volumes` and `deploy`
//!   convert its configs/secrets, volumes and `deploy` section.
//! - `autoscale`: `x-berth-autoscale` into a HorizontalPodAutoscaler.
//! - `ports`, `values`: Compose's value syntaxes (ports, durations, sizes, commands, ...).
//! - [`interpolate`]: `${VAR}` substitution.

mod autoscale;
mod converter;
mod deploy;
mod files;
mod interpolate;
mod labels;
mod ports;
mod service;
mod values;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use converter::{Converter, FileKind};
pub use interpolate::interpolate;
pub use labels::{AUTOSCALE_KEY, FILES_HASH, POD_SECURITY_LABEL, SERVICE_LABEL, STACK_LABEL};
use values::check_name;
pub use values::split_words;

/// The Kubernetes objects of one stack, in the order to apply them, and the warnings for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// Stack name (also the namespace).
    pub name: String,
    /// Namespace, then claims, configs and secrets, Services, Deployments and DaemonSets, and the
    /// HorizontalPodAutoscalers of services with `x-berth-autoscale`.
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
    let mut autoscalers = Vec::new();
    for (name, svc) in services {
        let (w, s, hpa) = c
            .service(name, svc)
            .with_context(|| format!("service {name}"))?;
        workloads.push(w);
        svcs.push(s);
        autoscalers.extend(hpa);
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
    // After the Deployments they scale, so an autoscaler never points at a target that is not there yet.
    objects.extend(autoscalers);
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

#[cfg(test)]
mod tests;
