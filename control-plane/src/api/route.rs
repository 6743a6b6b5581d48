//! Request routing: turns a path into what it names (discovery, OpenAPI, or a resource target with
//! namespace, name and subresource), and parses query strings.

use super::resources::{lookup, ResourceInfo};

/// What a request path names.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/api`.
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/{group}`.
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion {
        /// Group (`""` = core).
        group: String,
        /// Version.
        version: String,
    },
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/{path}`.
    OpenApiDoc(String),
    /// `/openapi/v2` (answered 404: kubectl then uses its compiled-in types).
    OpenApiV2,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// A resource collection, object or subresource.
    Resource(Target),
    /// `metrics.k8s.io/v1beta1`: usage read from the agents, not stored, so outside the registry
    /// of kinds (whose plural names must be unique across groups: these are `nodes` and `pods`).
    Metrics(MetricsTarget),
    /// `/ui` and `/ui/{path}`: the web view's static assets (the path below `/ui/`).
    Ui(String),
    /// `/berth/v1/members`: the control-plane members as this member knows them.
    Members,
    /// `/berth/v1/watch`: several cluster-wide watches merged into one stream.
    MultiWatch,
}

/// The merged watch's path (served by `multiwatch.rs`). Named here, beside the routing, because the
/// limits and the default roles name it too, and the merged watch depends on both.
pub const MULTIWATCH_PATH: &str = "/berth/v1/watch";

/// The served version of `metrics.k8s.io`.
pub const METRICS_GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// What a `metrics.k8s.io/v1beta1` path names.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsTarget {
    /// `/apis/metrics.k8s.io/v1beta1`: the APIResourceList.
    Discovery,
    /// `nodes` or `nodes/{name}`.
    Nodes {
        /// One node; `None` for the list.
        name: Option<String>,
    },
    /// `pods`, `namespaces/{ns}/pods` or `namespaces/{ns}/pods/{name}`.
    Pods {
        /// `None` across all namespaces.
        namespace: Option<String>,
        /// One pod; `None` for the list.
        name: Option<String>,
    },
}

fn metrics_path(rest: &[&str]) -> Option<Route> {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let t = match rest {
        [] => MetricsTarget::Discovery,
        ["nodes"] => MetricsTarget::Nodes { name: None },
        ["nodes", name] => MetricsTarget::Nodes {
            name: Some(some(name)?),
        },
        ["pods"] => MetricsTarget::Pods {
            namespace: None,
            name: None,
        },
        ["namespaces", ns, "pods"] => MetricsTarget::Pods {
            namespace: Some(some(ns)?),
            name: None,
        },
        ["namespaces", ns, "pods", name] => MetricsTarget::Pods {
            namespace: Some(some(ns)?),
            name: Some(some(name)?),
        },
        _ => return None,
    };
    Some(Route::Metrics(t))
}

/// A resource request target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// Namespace from the path; `None` for cluster-scoped resources and all-namespace lists.
    pub namespace: Option<String>,
    /// Object name; `None` for the collection.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `log` …).
    pub subresource: Option<String>,
}

fn target(
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
) -> Option<Route> {
    // A namespaced object is only reachable through its namespace; a cluster-scoped one never is.
    if info.namespaced != namespace.is_some() && (name.is_some() || !info.namespaced) {
        return None;
    }
    if let Some(s) = sub {
        info.subresource(s)?;
    }
    if name.is_some_and(str::is_empty) || namespace.is_some_and(str::is_empty) {
        return None;
    }
    Some(Route::Resource(Target {
        info,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
    }))
}

/// Parses a request path; `None` when it names nothing served (404).
pub fn parse(path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiIndex),
        ["openapi", "v3", rest @ ..] => Some(Route::OpenApiDoc(rest.join("/"))),
        ["api"] => Some(Route::Api),
        ["apis"] => Some(Route::Apis),
        ["api", version, rest @ ..] => resource_path("", version, rest),
        ["apis", group] => Some(Route::Group(group.to_string())),
        ["apis", "metrics.k8s.io", "v1beta1", rest @ ..] => metrics_path(rest),
        ["apis", group, version, rest @ ..] => resource_path(group, version, rest),
        ["ui", rest @ ..] => Some(Route::Ui(rest.join("/"))),
        ["berth", "v1", "members"] => Some(Route::Members),
        ["berth", "v1", "watch"] => Some(Route::MultiWatch),
        _ => None,
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    if !super::resources::serves(group, version) {
        return None;
    }
    let find = |r: &str| lookup(group, version, r);
    match rest {
        [] => Some(Route::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        }),
        // A namespaced resource without a namespace: the list across all namespaces.
        [res] => target(find(res)?, None, None, None),
        ["namespaces", ns, res] if find(res).is_some_and(|i| i.namespaced) => {
            target(find(res)?, Some(ns), None, None)
        }
        ["namespaces", ns, res, name] if find(res).is_some_and(|i| i.namespaced) => {
            target(find(res)?, Some(ns), Some(name), None)
        }
        ["namespaces", ns, res, name, sub] if find(res).is_some_and(|i| i.namespaced) => {
            target(find(res)?, Some(ns), Some(name), Some(sub))
        }
        [res, name] => target(find(res)?, None, Some(name), None),
        [res, name, sub] => target(find(res)?, None, Some(name), Some(sub)),
        // `nodes/{name}/proxy/{path...}`: the proxy subresource takes the rest of the path.
        [res, name, "proxy", _, ..] => target(find(res)?, None, Some(name), Some("proxy")),
        _ => None,
    }
}

/// A parsed query string; repeated keys keep every value (`command=ls&command=/`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses `a=b&c=d` with percent-decoding and `+` as space.
    pub fn parse(raw: Option<&str>) -> Self {
        let Some(raw) = raw else {
            return Query::default();
        };
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of a key.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether a boolean flag is set (`true` or `1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }
}

/// Percent-decodes a query component (`+` = space); invalid escapes are kept as they are.
pub fn decode(s: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(s)).into_owned()
}

/// [`decode`] without the UTF-8 conversion: the raw bytes a component names.
pub fn decode_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> Target {
        match parse(path) {
            Some(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn discovery_and_openapi_paths() {
        assert_eq!(parse("/version"), Some(Route::Version));
        assert_eq!(parse("/api"), Some(Route::Api));
        assert_eq!(parse("/apis/"), Some(Route::Apis));
        assert_eq!(parse("/apis/apps"), Some(Route::Group("apps".into())));
        assert_eq!(
            parse("/api/v1"),
            Some(Route::GroupVersion {
                group: "".into(),
                version: "v1".into()
            })
        );
        assert_eq!(
            parse("/apis/coordination.k8s.io/v1"),
            Some(Route::GroupVersion {
                group: "coordination.k8s.io".into(),
                version: "v1".into()
            })
        );
        assert_eq!(
            parse("/apis/batch/v1"),
            Some(Route::GroupVersion {
                group: "batch".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/apis/policy/v1"), None);
        assert_eq!(parse("/openapi/v3"), Some(Route::OpenApiIndex));
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1"),
            Some(Route::OpenApiDoc("apis/apps/v1".into()))
        );
        assert_eq!(parse("/openapi/v2"), Some(Route::OpenApiV2));
        assert_eq!(parse("/nothing"), None);
    }

    #[test]
    fn resource_paths() {
        let t = res("/api/v1/namespaces/default/pods");
        assert_eq!(
            (t.info.resource, t.namespace.as_deref(), t.name.as_deref()),
            ("pods", Some("default"), None)
        );
        let t = res("/api/v1/pods");
        assert_eq!((t.info.resource, t.namespace.as_deref()), ("pods", None));
        let t = res("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(
            (t.name.as_deref(), t.subresource.as_deref()),
            (Some("web"), Some("scale"))
        );
        let t = res("/api/v1/namespaces/foo");
        assert_eq!(
            (t.info.resource, t.name.as_deref(), t.namespace.as_deref()),
            ("namespaces", Some("foo"), None)
        );
        let t = res("/api/v1/namespaces/foo/status");
        assert_eq!(
            (t.info.resource, t.subresource.as_deref()),
            ("namespaces", Some("status"))
        );
        let t = res("/api/v1/namespaces");
        assert_eq!((t.info.resource, t.name.as_deref()), ("namespaces", None));
        let t = res("/api/v1/nodes/n1/status");
        assert_eq!((t.info.resource, t.name.as_deref()), ("nodes", Some("n1")));
        let t = res("/api/v1/namespaces/default/pods/x/eviction");
        assert_eq!(t.subresource.as_deref(), Some("eviction"));
        // A namespaced object outside a namespace, a cluster object inside one, unknown subresources.
        assert_eq!(parse("/api/v1/pods/x"), None);
        assert_eq!(parse("/api/v1/namespaces/default/nodes/n1"), None);
        assert_eq!(parse("/api/v1/namespaces/default/pods/x/bogus"), None);
        assert_eq!(parse("/apis/apps/v1/namespaces/default/pods"), None);
    }

    #[test]
    fn metrics_paths() {
        let m = |p: &str| match parse(p) {
            Some(Route::Metrics(t)) => Some(t),
            _ => None,
        };
        assert_eq!(
            m("/apis/metrics.k8s.io/v1beta1"),
            Some(MetricsTarget::Discovery)
        );
        assert_eq!(
            m("/apis/metrics.k8s.io/v1beta1/nodes/n1"),
            Some(MetricsTarget::Nodes {
                name: Some("n1".into())
            })
        );
        assert_eq!(
            m("/apis/metrics.k8s.io/v1beta1/pods"),
            Some(MetricsTarget::Pods {
                namespace: None,
                name: None
            })
        );
        assert_eq!(
            m("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web"),
            Some(MetricsTarget::Pods {
                namespace: Some("default".into()),
                name: Some("web".into())
            })
        );
        assert_eq!(parse("/apis/metrics.k8s.io/v1beta1/pods/web"), None);
        assert_eq!(
            parse("/apis/metrics.k8s.io/v1beta1/namespaces/default/nodes"),
            None
        );
        assert_eq!(parse("/apis/metrics.k8s.io/v1/nodes"), None);
        assert_eq!(
            parse("/apis/metrics.k8s.io"),
            Some(Route::Group("metrics.k8s.io".into()))
        );
    }

    #[test]
    fn a_kind_served_at_two_versions_routes_at_both() {
        for v in ["v1", "v2"] {
            let t = res(&format!(
                "/apis/autoscaling/{v}/namespaces/default/horizontalpodautoscalers/web/status"
            ));
            assert_eq!(
                (t.info.version, t.info.kind),
                (v, "HorizontalPodAutoscaler")
            );
            assert_eq!(
                t.info.key("default", "web"),
                "/autoscaling/horizontalpodautoscalers/default/web"
            );
            assert_eq!(super::super::resources::stored(t.info).version, "v2");
        }
        assert_eq!(
            parse("/apis/autoscaling/v2beta2/namespaces/default/horizontalpodautoscalers"),
            None
        );
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&command=ls&command=%2F&x",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        let cmds: Vec<&str> =
            q.0.iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.as_str())
                .collect();
        assert_eq!(cmds, ["ls", "/"]);
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.non_empty("x"), None);
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%41"), "%zzA");
    }
}
