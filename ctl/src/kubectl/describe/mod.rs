//! `describe TYPE NAME`: a kubectl-like summary (metadata, kind-specific sections for Pods, Deployments,
//! DaemonSets, Services, Nodes, HorizontalPodAutoscalers; the other kinds' fields as YAML) followed by the object's Events.
//!
//! # Layout
//! - `out`: the tab-aligned writer and the shared sections; `pod`, `workload`, `service`, `node`, `hpa`:
//!   the kinds (pure: an object in, text out). [`describe`] (here) fetches and picks one.

mod hpa;
mod node;
mod out;
mod pod;
mod service;
mod workload;

use anyhow::Result;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::resources::{Catalog, ResourceInfo};
use crate::rest;
use out::selector_text;

pub use hpa::describe_hpa;
pub use node::describe_node;
pub use out::{describe_generic, events_section};
pub use pod::describe_pod;
pub use service::describe_service;
pub use workload::{describe_daemon_set, describe_deployment};

async fn list(session: &Session, path: &str, query: &[(&str, String)]) -> Vec<Value> {
    rest::get(&session.client, &rest::with_query(path, query))
        .await
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// `describe TYPE NAME`.
pub async fn describe(
    session: &Session,
    catalog: &Catalog,
    kind: &str,
    name: &str,
) -> Result<String> {
    let info: &ResourceInfo = catalog.resolve(kind)?;
    let ns = info.namespaced.then_some(session.namespace.as_str());
    let obj = rest::get(&session.client, &info.object_path(ns, name)).await?;
    let mut text = match (info.ar.group.as_str(), info.ar.kind.as_str()) {
        ("", "Pod") => describe_pod(&obj),
        ("apps", "Deployment") => {
            let uid = obj["metadata"]["uid"].clone();
            let sel = selector_text(&obj["spec"]["selector"]);
            let rs_info = catalog.resolve("replicasets.apps")?;
            let rs: Vec<Value> = list(
                session,
                &rs_info.collection_path(ns),
                &[("labelSelector", sel)],
            )
            .await
            .into_iter()
            .filter(|r| {
                r["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid))
            })
            .collect();
            describe_deployment(&obj, &rs)
        }
        ("apps", "DaemonSet") => {
            let uid = obj["metadata"]["uid"].clone();
            let sel = selector_text(&obj["spec"]["selector"]);
            let pods: Vec<Value> = list(
                session,
                &format!("/api/v1/namespaces/{}/pods", session.namespace),
                &[("labelSelector", sel)],
            )
            .await
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|o| o["uid"] == uid && o["controller"] == true))
            })
            .collect();
            describe_daemon_set(&obj, &pods)
        }
        ("", "Service") => {
            let ep = rest::get_opt(
                &session.client,
                &format!("/api/v1/namespaces/{}/endpoints/{name}", session.namespace),
            )
            .await
            .ok()
            .flatten();
            describe_service(&obj, ep.as_ref())
        }
        ("", "Node") => {
            let pods = list(
                session,
                "/api/v1/pods",
                &[("fieldSelector", format!("spec.nodeName={name}"))],
            )
            .await;
            describe_node(&obj, &pods)
        }
        ("autoscaling", "HorizontalPodAutoscaler") => describe_hpa(&obj),
        _ => describe_generic(&obj, info.namespaced),
    };
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    let ev_path = match ns {
        Some(ns) => format!("/api/v1/namespaces/{ns}/events"),
        None => "/api/v1/events".into(),
    };
    let events = list(
        session,
        &ev_path,
        &[("fieldSelector", format!("involvedObject.uid={uid}"))],
    )
    .await;
    text.push_str(&events_section(&events, rest::now_secs()));
    Ok(text)
}

#[cfg(test)]
mod tests;
