//! OpenAPI v3: an index and one document per group/version. PATCH operations list the
//! `fieldValidation` parameter, which makes kubectl validate on the server (`fieldValidation=Strict`);
//! `components.schemas` carries each kind's schema (from k8s-openapi) for `kubectl explain`.
//! `/openapi/v2` is a 404.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::kinds::versions::schema_of;
use super::resources::{groups, of_group_version, versions};

/// Paths of the per-group-version documents (`api/v1`, `apis/apps/v1`).
fn gv_paths() -> Vec<(String, &'static str, &'static str)> {
    let mut out = vec![("api/v1".to_string(), "", "v1")];
    for g in groups() {
        for v in versions(g) {
            out.push((format!("apis/{g}/{v}"), g, v));
        }
    }
    out
}

/// A stable hash of a document, for the `?hash=` cache key kubectl uses.
fn hash(doc: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// Every document with its path: the schemas make them large, and they never change while the
/// server runs, so they are built once.
static DOCUMENTS: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    gv_paths()
        .into_iter()
        .map(|(path, group, version)| (path, document_for(group, version)))
        .collect()
});

/// `GET /openapi/v3`.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (path, doc) in DOCUMENTS.iter() {
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(doc))}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/{path}` (`api/v1`, `apis/apps/v1`), or `None` for anything else.
pub fn document(path: &str) -> Option<Value> {
    DOCUMENTS
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, doc)| doc.clone())
}

/// The schemas of one group/version's kinds and everything they refer to, each kind's carrying the
/// `x-kubernetes-group-version-kind` by which kubectl finds it.
fn schemas_for(group: &str, version: &str) -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut named = Vec::new();
    for r in of_group_version(group, version) {
        let Some(schema) = schema_of(r, &mut generator) else {
            continue;
        };
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("#/components/schemas/"))
        {
            named.push((name.to_string(), r));
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (name, r) in named {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
            );
        }
    }
    schemas
}

fn document_for(group: &str, version: &str) -> Value {
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = Map::new();
    // Reviews are create-only: kubectl looks for no PATCH operation of theirs.
    for r in of_group_version(group, version).filter(|r| r.supports("patch")) {
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("{base}/{}/{{name}}", r.resource)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}},
        ]);
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }}),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas_for(group, version)},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_points_at_documents_with_field_validation() {
        let idx = index();
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = document("apis/apps/v1").unwrap();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        let core = document("api/v1").unwrap();
        assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
        let batch = document("apis/batch/v1").unwrap();
        let op = &batch["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Job");
        assert!(idx["paths"]["apis/batch/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/batch/v1?hash="));
        assert!(document("apis/policy/v1").is_none());
    }

    #[test]
    fn each_version_documents_its_own_schema() {
        for (v, name) in [
            ("v2", "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"),
            ("v1", "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"),
        ] {
            let doc = document(&format!("apis/autoscaling/{v}")).unwrap();
            let gvk = &doc["components"]["schemas"][name]["x-kubernetes-group-version-kind"];
            assert_eq!(gvk[0]["version"], v, "{name}");
        }
    }

    #[test]
    fn schemas_carry_field_docs_and_group_version_kinds() {
        let apps = document("apis/apps/v1").unwrap();
        let schemas = &apps["components"]["schemas"];
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert!(replicas["description"]
            .as_str()
            .unwrap()
            .starts_with("Number of desired pods"));
        // Referenced types come along, with `$ref`s kubectl resolves in the same document.
        assert!(schemas.get("io.k8s.api.core.v1.PodSpec").is_some());
        let spec = serde_json::to_string(&d["properties"]["spec"]).unwrap();
        assert!(spec.contains("#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"));
        let core = document("api/v1").unwrap();
        let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        // A kind of another group is no kind of this document.
        assert!(core["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_null());
    }
}
