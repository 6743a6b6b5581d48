//! The resource catalog: what the server serves (from aggregated discovery, or the legacy per-group lists), how
//! kubectl-style type names (`po`, `deploy`, `deployments.apps`, `Deployment`) resolve, and the REST paths.

use anyhow::{bail, Result};
use kube::core::discovery::v2::APIGroupDiscoveryList;
use kube::discovery::ApiResource;
use kube::Client;

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// Group, version, kind and plural.
    pub ar: ApiResource,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names from discovery (plus the built-in ones kubectl users expect).
    pub short_names: Vec<String>,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Verbs the server supports.
    pub verbs: Vec<String>,
}

impl ResourceInfo {
    /// `deployments.apps` or `pods`: the name kubectl uses in error messages and `delete` output.
    pub fn qualified_plural(&self) -> String {
        if self.ar.group.is_empty() {
            self.ar.plural.clone()
        } else {
            format!("{}.{}", self.ar.plural, self.ar.group)
        }
    }

    /// `deployment.apps` or `pod`: the prefix of `-o name` and `apply` output.
    pub fn qualified_kind(&self) -> String {
        let k = self.ar.kind.to_lowercase();
        if self.ar.group.is_empty() {
            k
        } else {
            format!("{k}.{}", self.ar.group)
        }
    }

    /// The collection path, e.g. `/apis/apps/v1/namespaces/default/deployments`; `ns = None` lists across
    /// namespaces (and is ignored for cluster-scoped types).
    pub fn collection_path(&self, ns: Option<&str>) -> String {
        let base = if self.ar.group.is_empty() {
            format!("/api/{}", self.ar.version)
        } else {
            format!("/apis/{}/{}", self.ar.group, self.ar.version)
        };
        match ns {
            Some(ns) if self.namespaced => {
                format!("{base}/namespaces/{ns}/{}", self.ar.plural)
            }
            _ => format!("{base}/{}", self.ar.plural),
        }
    }

    /// The path of one object.
    pub fn object_path(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection_path(ns))
    }
}

/// Short names kubectl users type, used when discovery does not send them.
const BUILTIN_SHORT_NAMES: &[(&str, &str)] = &[
    ("po", "pods"),
    ("deploy", "deployments"),
    ("svc", "services"),
    ("rs", "replicasets"),
    ("ns", "namespaces"),
    ("no", "nodes"),
    ("cm", "configmaps"),
    ("ep", "endpoints"),
    ("ev", "events"),
    ("pvc", "persistentvolumeclaims"),
    ("pv", "persistentvolumes"),
    ("sa", "serviceaccounts"),
    ("ds", "daemonsets"),
    ("sts", "statefulsets"),
    ("hpa", "horizontalpodautoscalers"),
];

/// All resource types the server serves.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The resources, in discovery order (core first).
    pub items: Vec<ResourceInfo>,
}

impl Catalog {
    /// Builds a catalog from resource entries, adding built-in short names that discovery left out.
    pub fn new(mut items: Vec<ResourceInfo>) -> Self {
        for (short, plural) in BUILTIN_SHORT_NAMES {
            let taken = items
                .iter()
                .any(|i| i.short_names.iter().any(|s| s == short));
            if taken {
                continue;
            }
            // Prefer the core/apps entry when a plural exists in several groups (events.k8s.io vs core).
            if let Some(i) = items.iter_mut().find(|i| i.ar.plural == *plural) {
                i.short_names.push(short.to_string());
            }
        }
        Catalog { items }
    }

    /// Runs discovery: aggregated first (2 requests), then the legacy per-group lists.
    pub async fn discover(client: &Client) -> Result<Self> {
        match Self::discover_aggregated(client).await {
            Ok(c) if !c.items.is_empty() => Ok(c),
            Ok(_) | Err(_) => Self::discover_legacy(client).await,
        }
    }

    async fn discover_aggregated(client: &Client) -> Result<Self> {
        let core = client.list_core_api_versions_aggregated().await?;
        let groups = client.list_api_groups_aggregated().await?;
        let mut items = from_aggregated(core);
        items.extend(from_aggregated(groups));
        Ok(Catalog::new(items))
    }

    async fn discover_legacy(client: &Client) -> Result<Self> {
        let mut items = Vec::new();
        let core = client.list_core_api_versions().await?;
        for v in core.versions {
            let list = client.list_core_api_resources(&v).await?;
            items.extend(from_legacy(&list));
        }
        let groups = client.list_api_groups().await?;
        for g in groups.groups {
            let gv = g
                .preferred_version
                .map(|p| p.group_version)
                .or_else(|| g.versions.first().map(|v| v.group_version.clone()));
            if let Some(gv) = gv {
                let list = client.list_api_group_resources(&gv).await?;
                items.extend(from_legacy(&list));
            }
        }
        Ok(Catalog::new(items))
    }

    /// Resolves a user-typed type name: plural, singular, short name, kind (any case), optionally
    /// qualified by group (`deployments.apps`, `deploy.apps`).
    ///
    /// # Errors
    /// kubectl's `the server doesn't have a resource type "x"`.
    pub fn resolve(&self, name: &str) -> Result<&ResourceInfo> {
        let lower = name.to_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        let matches = |i: &&ResourceInfo| {
            group.as_deref().is_none_or(|g| i.ar.group == g)
                && (i.ar.plural == base
                    || i.singular == base
                    || i.ar.kind.to_lowercase() == base
                    || i.short_names.contains(&base))
        };
        if let Some(i) = self.items.iter().find(matches) {
            return Ok(i);
        }
        bail!("the server doesn't have a resource type \"{name}\"")
    }

    /// Finds the resource for an object's `apiVersion` and `kind`.
    ///
    /// # Errors
    /// kubectl's `no matches for kind "X" in version "Y"`.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Result<&ResourceInfo> {
        self.items
            .iter()
            .find(|i| i.ar.api_version == api_version && i.ar.kind == kind)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "resource mapping not found for kind \"{kind}\" in version \"{api_version}\": \
                     no matches for kind \"{kind}\" in version \"{api_version}\""
                )
            })
    }
}

/// Converts an aggregated discovery list (`/api` or `/apis`) into catalog entries (preferred = first version).
pub fn from_aggregated(list: APIGroupDiscoveryList) -> Vec<ResourceInfo> {
    let mut out = Vec::new();
    for g in list.items {
        let group = g.metadata.and_then(|m| m.name).unwrap_or_default();
        let Some(ver) = g.versions.into_iter().next() else {
            continue;
        };
        let version = ver.version.unwrap_or_default();
        for r in ver.resources {
            let plural = r.resource.unwrap_or_default();
            if plural.is_empty() || plural.contains('/') {
                continue;
            }
            let kind = r.response_kind.and_then(|k| k.kind).unwrap_or_default();
            let api_version = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            out.push(ResourceInfo {
                singular: r
                    .singular_resource
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| kind.to_lowercase()),
                ar: ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    api_version,
                    kind,
                    plural,
                },
                namespaced: r.scope.as_deref() == Some("Namespaced"),
                short_names: r.short_names,
                verbs: r.verbs,
            });
        }
    }
    out
}

/// Converts a legacy `APIResourceList` into catalog entries (subresources skipped).
pub fn from_legacy(
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<ResourceInfo> {
    let (group, version) = match list.group_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), list.group_version.clone()),
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceInfo {
            ar: ApiResource {
                group: group.clone(),
                version: version.clone(),
                api_version: list.group_version.clone(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
            },
            namespaced: r.namespaced,
            short_names: r.short_names.clone().unwrap_or_default(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_lowercase()
            } else {
                r.singular_name.clone()
            },
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// Splits `TYPE/NAME` (as in `deploy/web`) or returns the type alone.
pub fn split_type_name(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('/') {
        Some((t, n)) => (t, Some(n)),
        None => (arg, None),
    }
}

/// The one object a verb such as `scale` or `autoscale` names, as `TYPE/NAME` or `TYPE NAME`, with
/// kubectl's messages; `usage` is the form the verb's error shows when the arguments fit neither.
///
/// # Errors
/// A type without a name, or too many or too few arguments.
pub fn single_target(args: &[String], usage: &str) -> Result<(String, String)> {
    match args {
        [one] => match split_type_name(one) {
            (k, Some(n)) => Ok((k.to_string(), n.to_string())),
            _ => bail!("resource(s) were provided, but no name was specified"),
        },
        [k, n] => Ok((k.clone(), n.clone())),
        _ => bail!("expected {usage}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn single_target_takes_type_slash_name_or_type_and_name() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = |a: &[&str]| single_target(&args(a), "TYPE NAME").unwrap();
        assert_eq!(ok(&["deploy/web"]), ("deploy".into(), "web".into()));
        assert_eq!(ok(&["deploy", "web"]), ("deploy".into(), "web".into()));
        let err = |a: &[&str]| {
            single_target(&args(a), "TYPE NAME")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&["deploy"]),
            "resource(s) were provided, but no name was specified"
        );
        assert_eq!(err(&[]), "expected TYPE NAME");
        assert_eq!(err(&["a", "b", "c"]), "expected TYPE NAME");
    }

    /// A catalog with the kinds berth serves, as discovery would return them (no short names for some).
    pub(crate) fn sample() -> Catalog {
        let list: APIGroupDiscoveryList = serde_json::from_value(serde_json::json!({
            "items": [
              {"metadata":{"name":""},"versions":[{"version":"v1","resources":[
                {"resource":"pods","responseKind":{"group":"","version":"v1","kind":"Pod"},"scope":"Namespaced","singularResource":"pod","shortNames":["po"],"verbs":["get","list"]},
                {"resource":"services","responseKind":{"group":"","version":"v1","kind":"Service"},"scope":"Namespaced","verbs":["get"]},
                {"resource":"nodes","responseKind":{"group":"","version":"v1","kind":"Node"},"scope":"Cluster","verbs":["get"]},
                {"resource":"namespaces","responseKind":{"group":"","version":"v1","kind":"Namespace"},"scope":"Cluster","verbs":["get"]},
                {"resource":"events","responseKind":{"group":"","version":"v1","kind":"Event"},"scope":"Namespaced","verbs":["get"]}
              ]}]},
              {"metadata":{"name":"apps"},"versions":[{"version":"v1","resources":[
                {"resource":"deployments","responseKind":{"group":"apps","version":"v1","kind":"Deployment"},"scope":"Namespaced","verbs":["get"]},
                {"resource":"replicasets","responseKind":{"group":"apps","version":"v1","kind":"ReplicaSet"},"scope":"Namespaced","verbs":["get"]},
                {"resource":"daemonsets","responseKind":{"group":"apps","version":"v1","kind":"DaemonSet"},"scope":"Namespaced","verbs":["get"]}
              ]}]}
            ]
        }))
        .unwrap();
        Catalog::new(from_aggregated(list))
    }

    #[test]
    fn resolves_every_spelling() {
        let c = sample();
        for n in [
            "deploy",
            "deployment",
            "deployments",
            "Deployment",
            "deployments.apps",
            "deploy.apps",
        ] {
            assert_eq!(c.resolve(n).unwrap().ar.plural, "deployments", "{n}");
        }
        for (short, plural) in [
            ("po", "pods"),
            ("svc", "services"),
            ("rs", "replicasets"),
            ("ns", "namespaces"),
            ("no", "nodes"),
            ("ev", "events"),
            ("ds", "daemonsets"),
            ("daemonset", "daemonsets"),
            ("DaemonSet", "daemonsets"),
            ("ds.apps", "daemonsets"),
        ] {
            assert_eq!(c.resolve(short).unwrap().ar.plural, plural);
        }
        let e = c.resolve("foo").unwrap_err().to_string();
        assert_eq!(e, "the server doesn't have a resource type \"foo\"");
        assert!(c.resolve("pods.apps").is_err());
    }

    #[test]
    fn names_and_paths() {
        let c = sample();
        let d = c.resolve("deploy").unwrap();
        assert_eq!(d.qualified_plural(), "deployments.apps");
        assert_eq!(d.qualified_kind(), "deployment.apps");
        assert_eq!(
            d.object_path(Some("default"), "web"),
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        assert_eq!(d.collection_path(None), "/apis/apps/v1/deployments");
        let n = c.resolve("no").unwrap();
        assert_eq!(n.qualified_kind(), "node");
        assert_eq!(n.object_path(Some("default"), "a1"), "/api/v1/nodes/a1");
        let p = c.for_kind("v1", "Pod").unwrap();
        assert_eq!(p.collection_path(Some("x")), "/api/v1/namespaces/x/pods");
        assert!(c.for_kind("apps/v1", "Pod").is_err());
        let ds = c.for_kind("apps/v1", "DaemonSet").unwrap();
        assert_eq!(ds.qualified_kind(), "daemonset.apps");
        assert_eq!(ds.qualified_plural(), "daemonsets.apps");
        assert_eq!(
            ds.object_path(Some("default"), "agent"),
            "/apis/apps/v1/namespaces/default/daemonsets/agent"
        );
    }

    #[test]
    fn legacy_lists_convert() {
        let list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList =
            serde_json::from_value(serde_json::json!({
                "groupVersion":"apps/v1","resources":[
                  {"name":"deployments","singularName":"","namespaced":true,"kind":"Deployment","verbs":["get"],"shortNames":["deploy"]},
                  {"name":"deployments/scale","singularName":"","namespaced":true,"kind":"Scale","verbs":["get"]}]
            }))
            .unwrap();
        let items = from_legacy(&list);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].ar.api_version, "apps/v1");
        assert_eq!(items[0].singular, "deployment");
        assert!(items[0].namespaced);
    }

    #[test]
    fn split() {
        assert_eq!(split_type_name("deploy/web"), ("deploy", Some("web")));
        assert_eq!(split_type_name("pods"), ("pods", None));
    }
}
