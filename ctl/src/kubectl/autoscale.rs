//! `autoscale TYPE NAME --max N [--min N] [--cpu-percent N]`: an `autoscaling/v2` HorizontalPodAutoscaler for
//! a workload that has a `scale` subresource, as kubectl autoscale makes it.

use std::str::FromStr;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::kubeconfig::Session;
use crate::resources::Catalog;
use crate::rest;

/// The kinds the API server gives a `scale` subresource (kubectl asks discovery; berth's catalog keeps no
/// subresources, so the list is spelled out).
const SCALABLE: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("", "ReplicationController"),
];

/// The API version of the objects `autoscale` creates.
pub const HPA_API_VERSION: &str = "autoscaling/v2";

/// `--dry-run`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DryRun {
    /// Create the object.
    #[default]
    None,
    /// Build it and print it, without a request.
    Client,
    /// Send it with `dryRun=All`: the server validates but does not store it.
    Server,
}

impl FromStr for DryRun {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(DryRun::None),
            "client" => Ok(DryRun::Client),
            "server" => Ok(DryRun::Server),
            other => bail!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            ),
        }
    }
}

/// What to autoscale and how.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The target's type as typed (`deploy`, `deployment.apps`).
    pub kind: String,
    /// The target's name.
    pub name: String,
    /// `--min`; unset leaves the server's default (1).
    pub min: Option<i32>,
    /// `--max`.
    pub max: i32,
    /// `--cpu-percent`; unset leaves the metric out (the controller's default target applies).
    pub cpu_percent: Option<i32>,
    /// `--name`; the target's name when unset.
    pub hpa_name: Option<String>,
    /// `--dry-run`.
    pub dry_run: DryRun,
    /// `-o yaml|json|name`; the `autoscaled` line when unset.
    pub output: Option<String>,
}

/// kubectl's flag checks, before any request.
///
/// # Errors
/// kubectl's messages for a missing or too small `--max`, and `--min` above `--max`.
pub fn validate(min: Option<i32>, max: i32) -> Result<()> {
    if max < 1 {
        bail!("--max=MAXPODS is required and must be at least 1, max: {max}");
    }
    if let Some(min) = min {
        if max < min {
            bail!("--max=MAXPODS must be larger or equal to --min=MINPODS, max: {max}, min: {min}");
        }
    }
    Ok(())
}

/// The HorizontalPodAutoscaler `autoscale` creates (pure).
pub fn hpa_object(
    namespace: &str,
    name: &str,
    target: (&str, &str, &str),
    min: Option<i32>,
    max: i32,
    cpu_percent: Option<i32>,
) -> Value {
    let (api_version, kind, target_name) = target;
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target_name},
        "maxReplicas": max,
    });
    if let Some(min) = min {
        spec["minReplicas"] = json!(min);
    }
    if let Some(cpu) = cpu_percent {
        spec["metrics"] = json!([{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}},
        }]);
    }
    json!({
        "apiVersion": HPA_API_VERSION,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

/// Checks the target, creates the autoscaler and returns what to print.
///
/// # Errors
/// The flags are invalid, the target does not exist or has no `scale` subresource
/// (`cannot autoscale a Service: ...`), or the server refuses the object (AlreadyExists, Invalid).
pub async fn autoscale(session: &Session, catalog: &Catalog, r: &Request) -> Result<String> {
    validate(r.min, r.max)?;
    let info = catalog.resolve(&r.kind)?;
    if !SCALABLE.contains(&(info.ar.group.as_str(), info.ar.kind.as_str())) {
        bail!(
            "cannot autoscale a {}: could not find scale subresource for {} in discovery information",
            info.ar.kind,
            info.qualified_plural()
        );
    }
    let ns = session.namespace.as_str();
    let target = rest::get(&session.client, &info.object_path(Some(ns), &r.name)).await?;
    let target_name = target["metadata"]["name"].as_str().unwrap_or(&r.name);
    let name = r.hpa_name.as_deref().unwrap_or(target_name);
    let obj = hpa_object(
        ns,
        name,
        (&info.ar.api_version, &info.ar.kind, target_name),
        r.min,
        r.max,
        r.cpu_percent,
    );
    let written = match r.dry_run {
        DryRun::Client => obj,
        DryRun::None | DryRun::Server => {
            let hpa = catalog.for_kind(HPA_API_VERSION, "HorizontalPodAutoscaler")?;
            let mut uri = hpa.collection_path(Some(ns));
            if r.dry_run == DryRun::Server {
                uri = rest::with_query(&uri, &[("dryRun", "All".into())]);
            }
            rest::post(&session.client, &uri, &obj).await?
        }
    };
    let suffix = match r.dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    let qualified = format!("horizontalpodautoscaler.autoscaling/{name}");
    Ok(match r.output.as_deref() {
        None => format!("{qualified} autoscaled{suffix}\n"),
        Some("name") => format!("{qualified}\n"),
        Some("yaml") => serde_yaml::to_string(&written)?,
        Some("json") => format!("{}\n", serde_json::to_string_pretty(&written)?),
        Some(o) => bail!(
            "unable to match a printer suitable for the output format \"{o}\", allowed formats are: json,name,yaml"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_like_kubectl() {
        assert_eq!(
            validate(None, 0).unwrap_err().to_string(),
            "--max=MAXPODS is required and must be at least 1, max: 0"
        );
        assert_eq!(
            validate(Some(5), 3).unwrap_err().to_string(),
            "--max=MAXPODS must be larger or equal to --min=MINPODS, max: 3, min: 5"
        );
        assert!(validate(Some(3), 3).is_ok());
        assert!("bogus".parse::<DryRun>().is_err());
    }

    #[test]
    fn object_has_the_target_bounds_and_cpu_metric() {
        let o = hpa_object(
            "default",
            "web",
            ("apps/v1", "Deployment", "web"),
            Some(1),
            4,
            Some(50),
        );
        assert_eq!(o["apiVersion"], "autoscaling/v2");
        assert_eq!(
            o["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
        );
        assert_eq!(o["spec"]["minReplicas"], 1);
        assert_eq!(o["spec"]["maxReplicas"], 4);
        assert_eq!(
            o["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 50})
        );
        let bare = hpa_object("ns", "x", ("apps/v1", "ReplicaSet", "x"), None, 2, None);
        assert!(bare["spec"].get("minReplicas").is_none());
        assert!(bare["spec"].get("metrics").is_none());
    }
}
