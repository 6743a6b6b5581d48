//! `x-berth-autoscale: {min, max, cpu, memory}` on a service: an `autoscaling/v2` HorizontalPodAutoscaler of
//! the service's name targeting its Deployment (a berth extension; Swarm has no autoscaling).

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::labels::AUTOSCALE_KEY;
use super::values::{int_at_least, scalar_text};

/// A service's autoscaling bounds and utilization targets (percent of the reservations).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Autoscale {
    pub(super) min: i64,
    pub(super) max: i64,
    cpu: Option<i64>,
    memory: Option<i64>,
}

/// `50`, `"50"` or `"50%"`: a utilization percentage above 0.
fn percent(v: &Value, what: &str) -> Result<i64> {
    let text =
        scalar_text(v).ok_or_else(|| anyhow!("{AUTOSCALE_KEY} {what} must be a percentage"))?;
    text.trim()
        .trim_end_matches('%')
        .parse::<i64>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            anyhow!(
                "{AUTOSCALE_KEY} {what} {text:?} must be a percentage above 0 (like 50 or \"50%\")"
            )
        })
}

/// Reads the extension. `resources` is the container's `resources` (utilization is measured against the
/// requests, so a target without the matching reservation could never be computed).
///
/// # Errors
/// Unknown keys, bounds that are not `1 <= min <= max`, a global service, or a target without its reservation.
pub(super) fn parse(v: &Value, global: bool, resources: &Value) -> Result<Autoscale> {
    let m = v.as_object().ok_or_else(|| {
        anyhow!("{AUTOSCALE_KEY} must be a mapping with min, max and cpu or memory")
    })?;
    for k in m.keys() {
        if !["min", "max", "cpu", "memory"].contains(&k.as_str()) {
            bail!("{AUTOSCALE_KEY} Additional property {k} is not allowed");
        }
    }
    if global {
        bail!("{AUTOSCALE_KEY} needs a replicated service (deploy.mode global runs one task per node)");
    }
    let min = m.get("min").map_or(Ok(1), |v| {
        int_at_least(v, 1, &format!("{AUTOSCALE_KEY} min"))
    })?;
    let max = int_at_least(
        m.get("max")
            .ok_or_else(|| anyhow!("{AUTOSCALE_KEY} needs max"))?,
        1,
        &format!("{AUTOSCALE_KEY} max"),
    )?;
    if max < min {
        bail!("{AUTOSCALE_KEY} max ({max}) must be at least min ({min})");
    }
    let cpu = m.get("cpu").map(|v| percent(v, "cpu")).transpose()?;
    let memory = m.get("memory").map(|v| percent(v, "memory")).transpose()?;
    if cpu.is_none() && memory.is_none() {
        bail!("{AUTOSCALE_KEY} needs a cpu or memory target");
    }
    for (target, request, key) in [(cpu, "cpu", "cpus"), (memory, "memory", "memory")] {
        if target.is_some() && resources["requests"][request].is_null() {
            bail!("{AUTOSCALE_KEY} {request} needs deploy.resources.reservations.{key}");
        }
    }
    Ok(Autoscale {
        min,
        max,
        cpu,
        memory,
    })
}

impl Autoscale {
    /// The replicas a new Deployment starts with: what the file asks, within the autoscaler's bounds, so
    /// the first scaling decision does not have to undo it.
    pub(super) fn initial_replicas(&self, replicas: i64) -> i64 {
        replicas.clamp(self.min, self.max)
    }

    /// The HorizontalPodAutoscaler, labelled as the service's other objects.
    pub(super) fn object(&self, name: &str, stack: &str, labels: &Value) -> Value {
        let mut metrics = Vec::new();
        for (resource, target) in [("cpu", self.cpu), ("memory", self.memory)] {
            if let Some(p) = target {
                metrics.push(json!({
                    "type": "Resource",
                    "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": p}},
                }));
            }
        }
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(stack));
        meta.insert("labels".into(), labels.clone());
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": self.min,
                "maxReplicas": self.max,
                "metrics": metrics,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{json, Value};

    use crate::compose::{convert, Stack};

    fn conv(yaml: &str) -> anyhow::Result<Stack> {
        let doc: Value = serde_yaml::from_str(yaml).unwrap();
        convert(&doc, "demo", Path::new("."), &|_| None)
    }

    fn find<'a>(s: &'a Stack, kind: &str) -> Vec<&'a Value> {
        s.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    const WEB: &str = "
services:
  web:
    image: berth/busybox:latest
    deploy:
      replicas: REPLICAS
      resources:
        limits: {cpus: '0.5', memory: 128M}
        reservations: {cpus: '0.1', memory: 64M}
    x-berth-autoscale: AUTOSCALE
  db:
    image: berth/busybox:latest
";

    fn web(replicas: &str, autoscale: &str) -> String {
        WEB.replace("REPLICAS", replicas)
            .replace("AUTOSCALE", autoscale)
    }

    #[test]
    fn the_extension_makes_an_hpa_targeting_the_deployment() {
        let s = conv(&web("2", "{min: 3, max: 10, cpu: 50, memory: \"80%\"}")).unwrap();
        let hpas = find(&s, "HorizontalPodAutoscaler");
        assert_eq!(hpas.len(), 1, "only the autoscaled service");
        let h = hpas[0];
        assert_eq!(h["apiVersion"], "autoscaling/v2");
        assert_eq!(h["metadata"]["name"], "web");
        assert_eq!(h["metadata"]["namespace"], "demo");
        assert_eq!(
            h["metadata"]["labels"]["com.docker.stack.namespace"],
            "demo"
        );
        assert_eq!(
            h["metadata"]["labels"]["com.docker.stack.service.name"],
            "web"
        );
        assert_eq!(
            h["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
        );
        assert_eq!(
            (
                h["spec"]["minReplicas"].clone(),
                h["spec"]["maxReplicas"].clone()
            ),
            (3.into(), 10.into())
        );
        let target = |i: usize| {
            let r = &h["spec"]["metrics"][i]["resource"];
            (r["name"].clone(), r["target"].clone())
        };
        assert_eq!(
            target(0),
            (
                json!("cpu"),
                json!({"type": "Utilization", "averageUtilization": 50})
            )
        );
        assert_eq!(
            target(1),
            (
                json!("memory"),
                json!({"type": "Utilization", "averageUtilization": 80})
            )
        );
        // The file's 2 replicas are below min: the Deployment starts at min.
        let d = s
            .objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "web")
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(
            s.objects.last().unwrap()["kind"],
            "HorizontalPodAutoscaler",
            "after its target"
        );
        assert_eq!(s.services().len(), 2, "an autoscaler is not a service");
        let s = conv(&web("5", "{max: 4, cpu: \"50%\"}")).unwrap();
        let h = find(&s, "HorizontalPodAutoscaler")[0];
        assert_eq!(h["spec"]["minReplicas"], 1);
        assert_eq!(h["spec"]["metrics"].as_array().unwrap().len(), 1);
        let d = find(&s, "Deployment")
            .into_iter()
            .find(|d| d["metadata"]["name"] == "web")
            .unwrap();
        assert_eq!(d["spec"]["replicas"], 4, "never above max");
    }

    #[test]
    fn what_cannot_autoscale_is_a_one_line_error() {
        let no_cpu =
            "services:\n  web:\n    image: x\n    x-berth-autoscale: {min: 1, max: 10, cpu: 50}\n";
        let no_mem = "services:\n  web:\n    image: x\n    deploy: {resources: {reservations: {cpus: '0.1'}}}\n    x-berth-autoscale: {max: 3, memory: 80}\n";
        let global = "services:\n  web:\n    image: x\n    deploy: {mode: global, resources: {reservations: {cpus: '0.1'}}}\n    x-berth-autoscale: {max: 3, cpu: 50}\n";
        for (yaml, want) in [
            (no_cpu.to_string(), "service web: x-berth-autoscale cpu needs deploy.resources.reservations.cpus"),
            (no_mem.to_string(), "service web: x-berth-autoscale memory needs deploy.resources.reservations.memory"),
            (global.to_string(), "service web: x-berth-autoscale needs a replicated service (deploy.mode global runs one task per node)"),
            (web("1", "{min: 5, max: 2, cpu: 50}"), "service web: x-berth-autoscale max (2) must be at least min (5)"),
            (web("1", "{min: 0, max: 2, cpu: 50}"), "service web: x-berth-autoscale min must be a positive integer"),
            (web("1", "{min: 1, cpu: 50}"), "service web: x-berth-autoscale needs max"),
            (web("1", "{max: 2}"), "service web: x-berth-autoscale needs a cpu or memory target"),
            (web("1", "{max: 2, cpu: lots}"), "service web: x-berth-autoscale cpu \"lots\" must be a percentage above 0 (like 50 or \"50%\")"),
            (web("1", "{max: 2, cpu: 50, disk: 1}"), "service web: x-berth-autoscale Additional property disk is not allowed"),
            (web("1", "10"), "service web: x-berth-autoscale must be a mapping with min, max and cpu or memory"),
        ] {
            let e = format!("{:#}", conv(&yaml).unwrap_err());
            assert_eq!(e, want, "{yaml}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn resources_map_cpus_and_memory_units() {
        let yaml = "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits: {cpus: 2, memory: 1gb}\n        reservations: {cpus: 0.25, memory: 128k}\n";
        let s = conv(yaml).unwrap();
        let c = &find(&s, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["resources"],
            json!({"limits": {"cpu": "2000m", "memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "128Ki"}})
        );
        let yaml =
            "services:\n  web:\n    image: x\n    deploy: {resources: {limits: {cpus: '0.001'}}}\n";
        let s = conv(yaml).unwrap();
        let c = &find(&s, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"]["cpu"], "1m");
        let bad =
            "services:\n  web:\n    image: x\n    deploy: {resources: {limits: {cpus: half}}}\n";
        assert!(format!("{:#}", conv(bad).unwrap_err())
            .contains("limits.cpus \"half\" is not a number"));
    }
}
