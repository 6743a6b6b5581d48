//! `apply -f`: server-side apply of each manifest object, reporting `kind/name created|configured|unchanged`
//! from whether the object existed and whether its `resourceVersion` moved.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::manifest::Document;
use crate::resources::{Catalog, ResourceInfo};
use crate::rest;

/// The field manager berthctl applies as.
pub const FIELD_MANAGER: &str = "berthctl";

/// What an apply did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object did not exist.
    Created,
    /// The object existed and changed.
    Configured,
    /// The object existed and the server did not write it.
    Unchanged,
}

impl Outcome {
    /// Decides the outcome from the object's `resourceVersion` before (None = absent) and after the apply.
    pub fn from_versions(before: Option<&str>, after: Option<&str>) -> Self {
        match before {
            None => Outcome::Created,
            Some(b) if Some(b) == after => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        }
    }

    /// Like [`Outcome::from_versions`], but a server that writes a new `resourceVersion` for a no-op apply
    /// still yields `Unchanged` when nothing but bookkeeping (`resourceVersion`, `managedFields`, and the
    /// controller-owned `status`) differs.
    pub fn from_objects(before: Option<&Value>, after: &Value) -> Self {
        let rv = |o: &Value| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        };
        match before {
            None => Outcome::Created,
            Some(b) => match Self::from_versions(rv(b).as_deref(), rv(after).as_deref()) {
                Outcome::Configured if comparable(b) == comparable(after) => Outcome::Unchanged,
                o => o,
            },
        }
    }

    /// The word kubectl prints.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

fn comparable(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

/// Where an object goes: its resource type, namespace (for namespaced types) and the object with the
/// namespace filled in.
pub fn place<'a>(
    catalog: &'a Catalog,
    doc: &Document,
    default_ns: &str,
) -> Result<(&'a ResourceInfo, Option<String>, Value)> {
    let info = catalog.for_kind(doc.api_version(), doc.kind())?;
    let mut obj = doc.object.clone();
    if doc.name().is_empty() {
        anyhow::bail!(
            "error when retrieving current configuration of {} from {}: resource name may not be empty",
            doc.kind(),
            doc.source
        );
    }
    let ns = if info.namespaced {
        let ns = doc.namespace().unwrap_or(default_ns).to_string();
        obj["metadata"]["namespace"] = Value::String(ns.clone());
        Some(ns)
    } else {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        None
    };
    Ok((info, ns, obj))
}

/// Applies one object and returns the line to print (`deployment.apps/web created`).
pub async fn apply_one(
    session: &Session,
    catalog: &Catalog,
    doc: &Document,
    server_side: bool,
    force_conflicts: bool,
) -> Result<String> {
    let (info, outcome) = apply_document(session, catalog, doc, force_conflicts).await?;
    let word = if server_side {
        "serverside-applied"
    } else {
        outcome.word()
    };
    Ok(format!("{}/{} {word}", info.qualified_kind(), doc.name()))
}

/// Applies one object server-side and reports what that did to it.
pub async fn apply_document<'c>(
    session: &Session,
    catalog: &'c Catalog,
    doc: &Document,
    force_conflicts: bool,
) -> Result<(&'c ResourceInfo, Outcome)> {
    let (info, ns, mut obj) = place(catalog, doc, &session.namespace)?;
    let path = info.object_path(ns.as_deref(), doc.name());
    let client = &session.client;
    let before = rest::get_opt(client, &path).await.with_context(|| {
        format!(
            "error when retrieving current configuration of {}",
            doc.source
        )
    })?;
    // An applied config must not pin a resourceVersion or carry server-owned fields.
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    let uri = rest::with_query(
        &path,
        &[
            ("fieldManager", FIELD_MANAGER.to_string()),
            ("force", force_conflicts.to_string()),
        ],
    );
    let after = match rest::patch(client, &uri, &obj, "application/apply-patch+yaml").await {
        Err(e) if rest::is_unsupported_media(&e) => {
            // COMPAT: servers without server-side apply get create-or-merge-patch.
            if before.is_some() {
                rest::patch(client, &path, &obj, "application/merge-patch+json").await?
            } else {
                rest::post(client, &info.collection_path(ns.as_deref()), &obj).await?
            }
        }
        r => r.with_context(|| format!("error when applying {}", doc.source))?,
    };
    Ok((info, Outcome::from_objects(before.as_ref(), &after)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_documents;
    use crate::resources::tests::sample;

    #[test]
    fn outcome_from_versions() {
        assert_eq!(Outcome::from_versions(None, Some("5")), Outcome::Created);
        assert_eq!(
            Outcome::from_versions(Some("5"), Some("5")),
            Outcome::Unchanged
        );
        assert_eq!(
            Outcome::from_versions(Some("5"), Some("9")),
            Outcome::Configured
        );
        assert_eq!(Outcome::Configured.word(), "configured");
    }

    #[test]
    fn outcome_ignores_bookkeeping_only_writes() {
        let before = serde_json::json!({"metadata":{"name":"w","resourceVersion":"5","managedFields":[1]},"spec":{"replicas":3},"status":{"ready":1}});
        let noop = serde_json::json!({"metadata":{"name":"w","resourceVersion":"9","managedFields":[2]},"spec":{"replicas":3},"status":{"ready":2}});
        let changed = serde_json::json!({"metadata":{"name":"w","resourceVersion":"9"},"spec":{"replicas":4}});
        let relabeled = serde_json::json!({"metadata":{"name":"w","resourceVersion":"9","labels":{"a":"b"}},"spec":{"replicas":3}});
        assert_eq!(
            Outcome::from_objects(Some(&before), &noop),
            Outcome::Unchanged
        );
        assert_eq!(
            Outcome::from_objects(Some(&before), &changed),
            Outcome::Configured
        );
        assert_eq!(
            Outcome::from_objects(Some(&before), &relabeled),
            Outcome::Configured
        );
        assert_eq!(Outcome::from_objects(None, &noop), Outcome::Created);
    }

    #[test]
    fn place_fills_namespace_only_for_namespaced_kinds() {
        let c = sample();
        let docs = parse_documents(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: x, namespace: bogus}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\n",
            "f",
        )
        .unwrap();
        let (i, ns, o) = place(&c, &docs[0], "team").unwrap();
        assert_eq!(i.ar.plural, "deployments");
        assert_eq!(ns.as_deref(), Some("team"));
        assert_eq!(o["metadata"]["namespace"], "team");
        let (_, ns, o) = place(&c, &docs[1], "team").unwrap();
        assert_eq!(ns, None);
        assert!(o["metadata"].get("namespace").is_none());
        let (_, ns, _) = place(&c, &docs[2], "team").unwrap();
        assert_eq!(ns.as_deref(), Some("other"));
    }

    #[test]
    fn place_rejects_unknown_kinds_and_missing_names() {
        let c = sample();
        let d = parse_documents("apiVersion: x/v1\nkind: Foo\nmetadata: {name: a}\n", "f").unwrap();
        assert!(place(&c, &d[0], "default").is_err());
        let d = parse_documents("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "f").unwrap();
        assert!(place(&c, &d[0], "default").is_err());
    }
}
