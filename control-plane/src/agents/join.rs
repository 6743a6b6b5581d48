//! `Join`: token check, Node object creation or update, and pod CIDR allocation through an allocation key
//! (`/core/podcidrs//10.244.N.0`) committed with `Precondition::Absent` in the same batch as the Node.

use super::{now_rfc3339, store_status, AgentsService};
use crate::store::{self, Batch, Consistency, Op, Precondition};
use proto::agentpb::{JoinRequest, JoinResponse};
use serde_json::{json, Value};

/// Builds the node object from the agent's report, keeping server-owned fields of `existing`.
fn node_object(req: &JoinRequest, existing: Option<&Value>, pod_cidr: &str) -> Value {
    let reported: Value = serde_json::from_str(&req.node_json).unwrap_or_else(|_| json!({}));
    let mut node = existing.cloned().unwrap_or_else(|| {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": req.node_name, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now_rfc3339()},
            "spec": {},
            "status": {},
        })
    });
    if let Some(labels) = reported["metadata"]["labels"].as_object() {
        let l = &mut node["metadata"]["labels"];
        if !l.is_object() {
            *l = json!({});
        }
        for (k, v) in labels {
            l[k] = v.clone();
        }
    }
    node["metadata"]["labels"]["kubernetes.io/hostname"] = json!(req.node_name);
    node["metadata"]["labels"]["kubernetes.io/os"] = json!("linux");
    node["spec"]["podCIDR"] = json!(pod_cidr);
    node["spec"]["podCIDRs"] = json!([pod_cidr]);
    for k in ["capacity", "allocatable", "nodeInfo"] {
        if !reported["status"][k].is_null() {
            node["status"][k] = reported["status"][k].clone();
        }
    }
    node["status"]["addresses"] = json!([{"type": "InternalIP", "address": req.node_ip}, {"type": "Hostname", "address": req.node_name}]);
    node["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 10250}});
    node
}

/// The /24s of a /16 cluster CIDR (`10.244.0.0/16` gives `10.244.0.0/24` … `10.244.255.0/24`).
fn subnets(cluster_cidr: &str) -> Vec<String> {
    let base = cluster_cidr.split('/').next().unwrap_or("10.244.0.0");
    let o: Vec<&str> = base.split('.').collect();
    let (a, b) = (
        o.first().copied().unwrap_or("10"),
        o.get(1).copied().unwrap_or("244"),
    );
    (0..=255).map(|n| format!("{a}.{b}.{n}.0/24")).collect()
}

impl AgentsService {
    pub(super) async fn join(&self, req: JoinRequest) -> Result<JoinResponse, tonic::Status> {
        if req.token != self.config.token {
            return Err(tonic::Status::unauthenticated("invalid cluster token"));
        }
        if req.node_name.is_empty() {
            return Err(tonic::Status::invalid_argument("node_name is required"));
        }
        let key = store::key("", "nodes", "", &req.node_name);
        let mut pod_cidr = String::new();
        for _ in 0..32 {
            let existing = self
                .store
                .get(&key, Consistency::Linearizable)
                .await
                .map_err(store_status)?;
            let cur_cidr = existing
                .as_ref()
                .and_then(|o| o.value["spec"]["podCIDR"].as_str().map(String::from));
            let node_pre = existing
                .as_ref()
                .map(|o| Precondition::Revision(o.revision))
                .unwrap_or(Precondition::Absent);
            let mut ops = vec![];
            let cidr = match cur_cidr {
                Some(c) => c,
                None => {
                    let (allocs, _) = self
                        .store
                        .list("/core/podcidrs/", Consistency::Linearizable)
                        .await
                        .map_err(store_status)?;
                    let taken: std::collections::HashSet<String> = allocs
                        .iter()
                        .filter_map(|o| o.key.rsplit('/').next().map(String::from))
                        .collect();
                    let Some(free) = subnets(&self.config.cluster_cidr)
                        .into_iter()
                        .find(|s| !taken.contains(s.split('/').next().unwrap_or("")))
                    else {
                        return Err(tonic::Status::resource_exhausted("no free pod CIDR"));
                    };
                    let addr = free.split('/').next().unwrap_or("").to_string();
                    ops.push(Op::Put {
                        key: format!("/core/podcidrs//{addr}"),
                        value: json!({"apiVersion": "v1", "kind": "PodCIDRAllocation", "metadata": {"name": addr}, "node": req.node_name}),
                        precondition: Precondition::Absent,
                    });
                    free
                }
            };
            let node = node_object(&req, existing.as_ref().map(|o| &o.value), &cidr);
            ops.push(Op::Put {
                key: key.clone(),
                value: node,
                precondition: node_pre,
            });
            match self.store.commit(Batch { ops }).await {
                Ok(_) => {
                    pod_cidr = cidr;
                    break;
                }
                Err(store::Error::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        if pod_cidr.is_empty() {
            return Err(tonic::Status::aborted(
                "pod CIDR allocation kept conflicting",
            ));
        }
        Ok(JoinResponse {
            node_name: req.node_name,
            pod_cidr,
            cluster_cidr: self.config.cluster_cidr.clone(),
            service_cidr: self.config.service_cidr.clone(),
            cluster_dns: self.config.cluster_dns.clone(),
            cluster_domain: self.config.cluster_domain.clone(),
            servers: self.config.servers.clone(),
        })
    }
}
