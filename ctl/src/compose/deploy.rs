//! A service's `deploy` section: resources, placement and `update_config`.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::converter::Converter;
use super::values::{int_at_least, list, memory_quantity, scalar_text};

impl Converter<'_> {
    /// `deploy`: its keys, and resources and placement into the pod spec (mode, replicas, labels and updates are
    /// read by the caller).
    pub(super) fn deploy_spec(
        &mut self,
        deploy: &Map<String, Value>,
        pod_spec: &mut Value,
    ) -> Result<()> {
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
}

/// A service's `update_config`: how many tasks Swarm replaces at a time, and in which order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct UpdateConfig {
    /// `parallelism` as a count or, for Swarm's 0 (all at once), `"100%"`.
    step: Value,
    /// `order: start-first`: the new task starts before the old one stops.
    start_first: bool,
}

impl UpdateConfig {
    /// A Deployment's `strategy`: `step` pods at a time, new first or old first.
    pub(super) fn deployment_strategy(&self) -> Value {
        let rolling = if self.start_first {
            json!({"maxSurge": self.step, "maxUnavailable": 0})
        } else {
            json!({"maxSurge": 0, "maxUnavailable": self.step})
        };
        json!({"type": "RollingUpdate", "rollingUpdate": rolling})
    }

    /// A DaemonSet's `updateStrategy`. A node runs one pod of it, and Kubernetes requires maxUnavailable 0 when
    /// maxSurge is set, so start-first surges one node at a time.
    pub(super) fn daemon_set_strategy(&self) -> Value {
        let rolling = if self.start_first {
            json!({"maxSurge": 1, "maxUnavailable": 0})
        } else {
            json!({"maxSurge": 0, "maxUnavailable": self.step})
        };
        json!({"type": "RollingUpdate", "rollingUpdate": rolling})
    }
}

/// Reads `update_config` (`parallelism`, default 1, and `order`, default stop-first); `None` when absent.
pub(super) fn update_config(v: Option<&Value>) -> Result<Option<UpdateConfig>> {
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
