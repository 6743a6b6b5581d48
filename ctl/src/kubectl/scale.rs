//! `scale TYPE/NAME --replicas N` through the `scale` subresource.

use anyhow::Result;

use crate::kubeconfig::Session;
use crate::resources::Catalog;
use crate::rest;

/// Sets `spec.replicas` via `PATCH .../scale` (merge patch, as kubectl does) and returns
/// `deployment.apps/web scaled`.
pub async fn scale(
    session: &Session,
    catalog: &Catalog,
    kind: &str,
    name: &str,
    replicas: i64,
) -> Result<String> {
    let info = catalog.resolve(kind)?;
    let ns = info.namespaced.then_some(session.namespace.as_str());
    let path = format!("{}/scale", info.object_path(ns, name));
    let body = serde_json::json!({"spec": {"replicas": replicas}});
    rest::patch(
        &session.client,
        &path,
        &body,
        "application/merge-patch+json",
    )
    .await?;
    Ok(format!("{}/{name} scaled", info.qualified_kind()))
}
