//! `Join`: who may join (a token, or the node's own certificate), the node certificate, Node object
//! creation or update, and pod CIDR allocation through an allocation key (`/core/podcidrs//10.244.N.0`)
//! committed with `Precondition::Absent` in the same batch as the Node.
//!
//! With a cluster PKI, as kubelet TLS bootstrap: the first Join carries a token (`<id>.<secret>`, the
//! cluster token or a `bootstrap-token-<id>` Secret) and a CSR; the answer carries the node certificate.
//! From then on the node presents that certificate (mutual TLS) and Join (renewal, restart) needs no
//! token. A bootstrap token cannot take over the name of a node that is alive: only that node's own
//! certificate or the cluster token can.

use super::{now_rfc3339, store_status, AgentsService};
use crate::bootstrap::{self, TokenUse};
use crate::security;
use crate::store::{self, Batch, Consistency, Op, Precondition};
use ipnet::Ipv4Net;
use proto::agentpb::{JoinRequest, JoinResponse};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

/// A Node whose Ready heartbeat is younger than this is alive (kube-controller-manager's default
/// node-monitor-grace-period).
const LIVE_GRACE: Duration = Duration::from_secs(40);

/// How a Join was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinAuth {
    /// The caller's verified certificate names this node.
    OwnCert,
    /// The cluster token (or, without a PKI, the configured shared token).
    ClusterToken,
    /// A bootstrap token Secret.
    BootstrapToken,
}

/// Whether `node` posted a Ready=True heartbeat within [`LIVE_GRACE`].
fn is_live(node: &Value, now: SystemTime) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "Ready" && c["status"] == "True")
        .filter_map(|c| apimachinery::time::parse_rfc3339(c["lastHeartbeatTime"].as_str()?))
        .any(|t| now.duration_since(t).unwrap_or_default() < LIVE_GRACE)
}

/// A node name as Kubernetes accepts it (DNS subdomain).
fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !n.starts_with(['-', '.'])
        && !n.ends_with(['-', '.'])
}

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

/// The default cluster CIDR, carved up when the configured one is malformed: a node still gets a
/// CIDR its peers route, rather than no CIDR at all.
const DEFAULT_CLUSTER_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16);

/// The node /24s of the cluster CIDR (`10.244.0.0/16` gives `10.244.0.0/24` … `10.244.255.0/24`).
/// A bare address counts as its /16; a malformed CIDR, or one narrower than a /24, falls back to
/// [`DEFAULT_CLUSTER_CIDR`].
pub(super) fn subnets(cluster_cidr: &str) -> impl Iterator<Item = String> {
    let net = cluster_cidr
        .parse::<Ipv4Net>()
        .ok()
        .or_else(|| {
            let addr = cluster_cidr.parse::<Ipv4Addr>().ok()?;
            Ipv4Net::new(addr, 16).ok()
        })
        .filter(|n| n.prefix_len() <= 24)
        .unwrap_or(DEFAULT_CLUSTER_CIDR);
    net.trunc()
        .subnets(24)
        .into_iter()
        .flatten()
        .map(|n| n.to_string())
}

impl AgentsService {
    /// Checks who may join as `req.node_name`; never logs or echoes the token.
    async fn authenticate_join(
        &self,
        caller: Option<&pki::Identity>,
        req: &JoinRequest,
    ) -> Result<JoinAuth, tonic::Status> {
        let Some(pki) = &self.config.pki else {
            return if !self.config.token.is_empty()
                && pki::ct_eq(req.token.as_bytes(), self.config.token.as_bytes())
            {
                Ok(JoinAuth::ClusterToken)
            } else {
                Err(tonic::Status::unauthenticated("invalid cluster token"))
            };
        };
        match security::node_of(caller) {
            Some(n) if n == req.node_name => return Ok(JoinAuth::OwnCert),
            Some(n) => {
                return Err(tonic::Status::permission_denied(format!(
                    "node {n} cannot join as {}",
                    req.node_name
                )))
            }
            None => {}
        }
        let invalid = || tonic::Status::unauthenticated("invalid token");
        let id = req
            .token
            .split_once('.')
            .map(|(id, _)| id)
            .ok_or_else(invalid)?;
        let (token, usage) = bootstrap::find_token(self.store.as_ref(), pki, id)
            .await
            .ok_or_else(invalid)?;
        if !token.matches(&req.token) {
            tracing::warn!(node = %req.node_name, token_id = %id, "join with a wrong token secret");
            return Err(invalid());
        }
        Ok(match usage {
            TokenUse::Cluster => JoinAuth::ClusterToken,
            TokenUse::Node => JoinAuth::BootstrapToken,
        })
    }

    pub(super) async fn join(
        &self,
        caller: Option<pki::Identity>,
        req: JoinRequest,
    ) -> Result<JoinResponse, tonic::Status> {
        if !valid_node_name(&req.node_name) {
            return Err(tonic::Status::invalid_argument(
                "node_name must be a DNS subdomain (lower-case letters, digits, '-', '.')",
            ));
        }
        let auth = self.authenticate_join(caller.as_ref(), &req).await?;
        let key = store::key("", "nodes", "", &req.node_name);
        if auth == JoinAuth::BootstrapToken {
            let existing = self
                .store
                .get(&key, Consistency::Linearizable)
                .await
                .map_err(store_status)?;
            #[allow(clippy::disallowed_methods)]
            let now = SystemTime::now();
            if existing.is_some_and(|o| is_live(&o.value, now)) {
                return Err(tonic::Status::permission_denied(format!(
                    "node {} is registered and alive; only its own certificate or the cluster token may re-join it",
                    req.node_name
                )));
            }
        }
        let cert_pem = match &self.config.pki {
            // A node that holds its certificate asks for a new one only when renewing.
            Some(_) if req.csr_pem.is_empty() && auth == JoinAuth::OwnCert => String::new(),
            Some(pki) => {
                if req.csr_pem.is_empty() {
                    return Err(tonic::Status::invalid_argument("csr_pem is required"));
                }
                let cert = pki
                    .issue_node_cert(&req.node_name, &req.node_ip, &req.csr_pem)
                    .map_err(|e| tonic::Status::invalid_argument(format!("bad CSR: {e}")))?;
                tracing::info!(node = %req.node_name, auth = ?auth, "issued node certificate");
                cert
            }
            None => String::new(),
        };
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
            cert_pem,
        })
    }
}
