//! Discovery documents, built from the registry: aggregated (`apidiscovery.k8s.io/v2`) and legacy
//! (`APIVersions`, `APIGroupList`, `APIResourceList`), and `/version`.

use serde_json::{json, Value};

use super::resources::{groups, of_group_version, versions, ResourceInfo};
use super::route::METRICS_GROUP_VERSION;

/// The group metrics-server serves (here, the API server itself).
const METRICS_GROUP: &str = "metrics.k8s.io";
const METRICS_VERSION: &str = "v1beta1";

/// `metrics.k8s.io` resources: (plural, singular, kind, namespaced).
const METRICS_RESOURCES: [(&str, &str, &str, bool); 2] = [
    ("nodes", "", "NodeMetrics", false),
    ("pods", "", "PodMetrics", true),
];

/// Media type kubectl requires on an aggregated discovery answer (gotcha 6 of the wire spec).
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<String> = part.split(';').map(|p| p.trim().replace(' ', "")).collect();
        params.iter().any(|p| p == "as=APIGroupDiscoveryList")
            && params.iter().any(|p| p == "v=v2")
            && params.iter().any(|p| p == "g=apidiscovery.k8s.io")
    })
}

/// `/version`: minor 32 makes the kubectl dispatcher run its own 1.32 client.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "berth",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn scope(r: &ResourceInfo) -> &'static str {
    if r.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    }
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let mut v = json!({"subresource": s.name, "verbs": s.verbs});
            if !s.kind.is_empty() {
                v["responseKind"] = json!({"group": s.group, "version": s.version, "kind": s.kind});
            }
            v
        })
        .collect();
    let mut v = json!({
        "resource": r.resource,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs,
        "subresources": subresources,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

/// The versions of a group, preferred first (`v1` for the core group).
fn group_versions(group: &str) -> Vec<&'static str> {
    if group.is_empty() {
        vec!["v1"]
    } else if group == METRICS_GROUP {
        vec![METRICS_VERSION]
    } else {
        versions(group)
    }
}

fn aggregated_group(group: &str) -> Value {
    // Aggregated discovery lists a group's versions in preference order.
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = of_group_version(group, v)
                .map(aggregated_resource)
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// Aggregated discovery of the core group (`GET /api`).
pub fn aggregated_core() -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
        "items": [aggregated_group("")]})
}

/// The aggregated entry of `metrics.k8s.io`, as kube-apiserver lists metrics-server's APIService.
fn aggregated_metrics_group() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|(plural, _, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": METRICS_GROUP, "version": METRICS_VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "verbs": ["get", "list"],
            })
        })
        .collect();
    json!({
        "metadata": {"name": METRICS_GROUP},
        "versions": [{"version": METRICS_VERSION, "resources": resources, "freshness": "Current"}],
    })
}

/// Aggregated discovery of the named groups (`GET /apis`).
pub fn aggregated_groups() -> Value {
    let mut items: Vec<Value> = groups().into_iter().map(aggregated_group).collect();
    items.push(aggregated_metrics_group());
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// Legacy `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn api_group(group: &str) -> Value {
    let gvs: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": preferred})
}

/// Legacy `GET /apis`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .chain([METRICS_GROUP])
        .map(|g| {
            let mut v = api_group(g);
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`, or `None` when the group is not served.
pub fn group(group: &str) -> Option<Value> {
    (groups().contains(&group) || group == METRICS_GROUP).then(|| api_group(group))
}

/// `GET /apis/metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics, get and list only.
pub fn metrics_resource_list() -> Value {
    let resources: Vec<Value> = METRICS_RESOURCES
        .iter()
        .map(|(plural, singular, kind, namespaced)| {
            json!({"name": plural, "singularName": singular, "namespaced": namespaced,
                "kind": kind, "verbs": ["get", "list"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": METRICS_GROUP_VERSION,
        "resources": resources})
}

/// Legacy `GET /api/v1` or `/apis/{group}/{version}`: resources and subresources.
pub fn api_resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in of_group_version(group, version) {
        let mut v = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        resources.push(v);
        for s in r.subresources {
            let mut v = json!({
                "name": format!("{}/{}", r.resource, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": if s.kind.is_empty() { r.kind } else { s.kind },
                "verbs": s.verbs,
            });
            if s.group != r.group || s.version != r.version {
                v["group"] = json!(s.group);
                v["version"] = json!(s.version);
            }
            resources.push(v);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(wants_aggregated(
            "application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"
        ));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn aggregated_documents_carry_short_names_and_categories() {
        let core = aggregated_core();
        let res = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap();
        let pods = res.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["scope"], "Namespaced");
        let ev = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "eviction")
            .unwrap();
        assert_eq!(ev["responseKind"]["group"], "policy");
        let ns = res.iter().find(|r| r["resource"] == "namespaces").unwrap();
        assert_eq!(ns["scope"], "Cluster");
        let apps = aggregated_groups();
        assert_eq!(apps["items"][0]["metadata"]["name"], "apps");
        let deploy = &apps["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
    }

    #[test]
    fn rbac_reviews_and_service_accounts_are_discoverable() {
        let rbac = api_resource_list("rbac.authorization.k8s.io", "v1");
        let names: Vec<&str> = rbac["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "clusterrolebindings",
                "clusterroles",
                "rolebindings",
                "roles"
            ]
        );
        assert_eq!(rbac["resources"][3]["namespaced"], true);
        assert_eq!(rbac["resources"][1]["namespaced"], false);
        let authz = api_resource_list("authorization.k8s.io", "v1");
        assert_eq!(authz["resources"][0]["name"], "selfsubjectaccessreviews");
        assert_eq!(authz["resources"][0]["verbs"], json!(["create"]));
        let core = api_resource_list("", "v1");
        let token = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts/token")
            .unwrap();
        assert_eq!(
            (&token["group"], &token["kind"], &token["verbs"]),
            (
                &json!("authentication.k8s.io"),
                &json!("TokenRequest"),
                &json!(["create"])
            )
        );
        let sa = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts")
            .unwrap();
        assert_eq!(sa["shortNames"], json!(["sa"]));
    }

    #[test]
    fn batch_jobs_are_discoverable() {
        let groups = aggregated_groups();
        let names: Vec<&str> = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "batch",
                "rbac.authorization.k8s.io",
                "coordination.k8s.io",
                "autoscaling",
                "metrics.k8s.io"
            ]
        );
        let batch = &groups["items"][3]["versions"][0];
        assert_eq!(batch["version"], "v1");
        let jobs = &batch["resources"][0];
        assert_eq!(jobs["resource"], "jobs");
        assert_eq!(jobs["singularResource"], "job");
        assert_eq!(
            jobs["responseKind"],
            json!({"group": "batch", "version": "v1", "kind": "Job"})
        );
        assert_eq!(jobs["scope"], "Namespaced");
        assert_eq!(jobs["categories"], json!(["all"]));
        assert!(jobs.get("shortNames").is_none());
        assert_eq!(jobs["subresources"][0]["subresource"], "status");
        assert_eq!(jobs["subresources"][0]["responseKind"]["kind"], "Job");

        let legacy = api_group_list();
        assert_eq!(
            legacy["groups"][3],
            json!({"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                   "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}})
        );
        assert_eq!(group("batch").unwrap()["kind"], "APIGroup");
        let list = api_resource_list("batch", "v1");
        assert_eq!(list["groupVersion"], "batch/v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["jobs", "jobs/status"]);
        assert_eq!(list["resources"][0]["namespaced"], true);
        assert_eq!(list["resources"][0]["kind"], "Job");
        assert_eq!(list["resources"][0]["verbs"].as_array().unwrap().len(), 8);
    }

    #[test]
    fn metrics_group_is_discoverable_in_both_forms() {
        let agg = aggregated_groups();
        let metrics = agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "metrics.k8s.io")
            .unwrap();
        let v = &metrics["versions"][0];
        assert_eq!(v["version"], "v1beta1");
        assert_eq!(v["resources"][0]["resource"], "nodes");
        assert_eq!(v["resources"][0]["scope"], "Cluster");
        assert_eq!(v["resources"][1]["responseKind"]["kind"], "PodMetrics");
        assert_eq!(v["resources"][1]["verbs"], json!(["get", "list"]));
        let legacy = api_group_list();
        assert!(legacy["groups"].as_array().unwrap().contains(&json!({
            "name": "metrics.k8s.io",
            "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
        })));
        assert_eq!(
            group("metrics.k8s.io").unwrap()["preferredVersion"]["version"],
            "v1beta1"
        );
        let list = metrics_resource_list();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(list["resources"][0]["kind"], "NodeMetrics");
        assert_eq!(list["resources"][1]["namespaced"], true);
    }

    #[test]
    fn autoscaling_lists_v2_preferred_then_v1() {
        let groups = aggregated_groups();
        let autoscaling = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "autoscaling")
            .unwrap();
        let versions: Vec<&str> = autoscaling["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v2", "v1"]);
        let hpa = &autoscaling["versions"][1]["resources"][0];
        assert_eq!(hpa["responseKind"]["version"], "v1");
        assert_eq!(hpa["shortNames"], json!(["hpa"]));
        assert_eq!(hpa["subresources"][0]["responseKind"]["version"], "v1");
        let g = group("autoscaling").unwrap();
        assert_eq!(g["preferredVersion"]["groupVersion"], "autoscaling/v2");
        assert_eq!(g["versions"][1]["groupVersion"], "autoscaling/v1");
        let v1 = api_resource_list("autoscaling", "v1");
        assert_eq!(v1["resources"][0]["name"], "horizontalpodautoscalers");
        assert_eq!(
            v1["resources"][1]["name"],
            "horizontalpodautoscalers/status"
        );
        let legacy = api_group_list();
        let listed = legacy["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .unwrap();
        assert_eq!(listed["versions"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn legacy_v1_lists_eviction_for_drain() {
        let v1 = api_resource_list("", "v1");
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/eviction"));
        assert!(names.contains(&"pods/log"));
        let apps = api_resource_list("apps", "v1");
        assert_eq!(apps["groupVersion"], "apps/v1");
        assert!(apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale" && r["group"] == "autoscaling"));
        assert_eq!(
            api_group_list()["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
    }
}
