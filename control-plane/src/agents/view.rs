//! What a node is told: its desired pods (with the ConfigMaps/Secrets they reference) and the cluster
//! network view (nodes with IPs, pod CIDRs and readiness; services with their endpoints).

use crate::store::{self, Consistency, ObjectStore};
use proto::agentpb::{Endpoint, NetworkView, NodeRoute, PodUpdate, ServicePort, ServiceView};
use serde_json::Value;
use std::collections::BTreeSet;

/// (kind, name) of every ConfigMap/Secret a pod references in volumes, env or envFrom.
pub(super) fn referenced_objects(pod: &Value) -> BTreeSet<(&'static str, String)> {
    let mut out = BTreeSet::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        if let Some(n) = v["configMap"]["name"].as_str() {
            out.insert(("ConfigMap", n.to_string()));
        }
        if let Some(n) = v["secret"]["secretName"].as_str() {
            out.insert(("Secret", n.to_string()));
        }
    }
    let containers = pod["spec"]["containers"].as_array().into_iter().flatten();
    let inits = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten();
    for c in containers.chain(inits) {
        for e in c["env"].as_array().into_iter().flatten() {
            if let Some(n) = e["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                out.insert(("ConfigMap", n.to_string()));
            }
            if let Some(n) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                out.insert(("Secret", n.to_string()));
            }
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(n) = e["configMapRef"]["name"].as_str() {
                out.insert(("ConfigMap", n.to_string()));
            }
            if let Some(n) = e["secretRef"]["name"].as_str() {
                out.insert(("Secret", n.to_string()));
            }
        }
    }
    out
}

/// The update message for one pod, with its referenced objects read from the store.
///
/// # Errors
/// Store read errors.
pub async fn pod_update(store: &dyn ObjectStore, pod: &Value) -> Result<PodUpdate, store::Error> {
    let md = &pod["metadata"];
    let ns = md["namespace"].as_str().unwrap_or("default");
    let mut objects_json = vec![];
    for (kind, name) in referenced_objects(pod) {
        let resource = if kind == "ConfigMap" {
            "configmaps"
        } else {
            "secrets"
        };
        if let Some(o) = store
            .get(&store::key("", resource, ns, &name), Consistency::Local)
            .await?
        {
            objects_json.push(o.value.to_string());
        }
    }
    Ok(PodUpdate {
        namespace: ns.to_string(),
        name: md["name"].as_str().unwrap_or("").to_string(),
        uid: md["uid"].as_str().unwrap_or("").to_string(),
        deleted: false,
        pod_json: pod.to_string(),
        objects_json,
        service_account_token: String::new(),
    })
}

/// Every pod bound to `node`, and the revision the list is consistent at.
///
/// # Errors
/// Store read errors.
pub async fn desired_pods(
    store: &dyn ObjectStore,
    node: &str,
) -> Result<(Vec<PodUpdate>, u64), store::Error> {
    let (pods, rev) = store
        .list(&store::prefix("", "pods", None), Consistency::Linearizable)
        .await?;
    let mut out = vec![];
    for p in pods.iter().filter(|p| p.value["spec"]["nodeName"] == node) {
        out.push(pod_update(store, &p.value).await?);
    }
    Ok((out, rev))
}

fn node_route(n: &Value) -> NodeRoute {
    let ip = n["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or("")
        .to_string();
    let ready = n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    NodeRoute {
        name: n["metadata"]["name"].as_str().unwrap_or("").to_string(),
        node_ip: ip,
        pod_cidr: n["spec"]["podCIDR"].as_str().unwrap_or("").to_string(),
        ready,
    }
}

fn service_view(svc: &Value, eps: Option<&Value>) -> ServiceView {
    let md = &svc["metadata"];
    let spec = &svc["spec"];
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or("").to_string();
    let typ = if cluster_ip == "None" {
        "None".to_string()
    } else {
        spec["type"].as_str().unwrap_or("ClusterIP").to_string()
    };
    let subsets: Vec<&Value> = eps
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
        .collect();
    let ports = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("").to_string();
            let port = p["port"].as_u64().unwrap_or(0) as u32;
            // A named targetPort is resolved per pod by the endpoints controller; take it from the subset.
            let target_port = p["targetPort"]
                .as_u64()
                .map(|t| t as u32)
                .unwrap_or_else(|| {
                    subsets
                        .iter()
                        .flat_map(|s| s["ports"].as_array().into_iter().flatten())
                        .find(|sp| sp["name"].as_str().unwrap_or("") == name)
                        .and_then(|sp| sp["port"].as_u64())
                        .map(|v| v as u32)
                        .unwrap_or(port)
                });
            ServicePort {
                name,
                protocol: p["protocol"].as_str().unwrap_or("TCP").to_string(),
                port,
                node_port: p["nodePort"].as_u64().unwrap_or(0) as u32,
                target_port,
            }
        })
        .collect();
    let mut endpoints = vec![];
    for s in &subsets {
        for (key, ready) in [("addresses", true), ("notReadyAddresses", false)] {
            for a in s[key].as_array().into_iter().flatten() {
                endpoints.push(Endpoint {
                    ip: a["ip"].as_str().unwrap_or("").to_string(),
                    pod_name: a["targetRef"]["name"].as_str().unwrap_or("").to_string(),
                    node_name: a["nodeName"].as_str().unwrap_or("").to_string(),
                    ready,
                });
            }
        }
    }
    ServiceView {
        namespace: md["namespace"].as_str().unwrap_or("default").to_string(),
        name: md["name"].as_str().unwrap_or("").to_string(),
        cluster_ip,
        r#type: typ,
        session_affinity: spec["sessionAffinity"]
            .as_str()
            .unwrap_or("None")
            .to_string(),
        ports,
        endpoints,
    }
}

/// The cluster network view.
///
/// # Errors
/// Store read errors.
pub async fn network_view(store: &dyn ObjectStore) -> Result<NetworkView, store::Error> {
    let (nodes, _) = store
        .list(&store::prefix("", "nodes", None), Consistency::Local)
        .await?;
    let (svcs, _) = store
        .list(&store::prefix("", "services", None), Consistency::Local)
        .await?;
    let (eps, _) = store
        .list(&store::prefix("", "endpoints", None), Consistency::Local)
        .await?;
    let services = svcs
        .iter()
        .map(|s| {
            let ep_key = s.key.replacen("/core/services/", "/core/endpoints/", 1);
            service_view(
                &s.value,
                eps.iter().find(|e| e.key == ep_key).map(|e| &e.value),
            )
        })
        .collect();
    Ok(NetworkView {
        nodes: nodes.iter().map(|n| node_route(&n.value)).collect(),
        services,
    })
}
