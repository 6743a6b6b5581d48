//! `Sync`: the long-lived stream. Up: heartbeats (one Node status write each) and pod statuses (pod
//! `status` writes; a deleting pod whose containers all stopped is removed). Down: a full desired state,
//! then deltas from a store watch; a watch that falls out of the window restarts with a new full state.

use super::{now_rfc3339, store_status, update, view, AgentsService};
use crate::store::{self, Batch, Consistency, EventType, ObjectStore, Op, Precondition};
use futures::StreamExt;
use proto::agentpb::{agent_message, AgentMessage, Heartbeat, PodStatus, PodUpdate, ServerMessage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Stream type of `Sync` responses.
pub type SyncStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ServerMessage, tonic::Status>> + Send>>;

/// Applies a heartbeat to the Node: reported capacity and conditions, `Ready=True`, heartbeat times.
pub(super) async fn heartbeat(
    store: &dyn ObjectStore,
    node: &str,
    hb: &Heartbeat,
) -> Result<(), store::Error> {
    let reported: Value = serde_json::from_str(&hb.node_status_json).unwrap_or_else(|_| json!({}));
    let now = now_rfc3339();
    update(store, &store::key("", "nodes", "", node), |mut n| {
        for k in ["capacity", "allocatable", "nodeInfo", "addresses"] {
            if !reported[k].is_null() {
                n["status"][k] = reported[k].clone();
            }
        }
        let old: Vec<Value> = n["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = reported["conditions"].as_array().cloned().unwrap_or_default();
        if !conds.iter().any(|c| c["type"] == "Ready") {
            conds.push(json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "berth-agent is posting ready status"}));
        }
        for c in conds.iter_mut() {
            c["lastHeartbeatTime"] = json!(now);
            let prev = old.iter().find(|o| o["type"] == c["type"]);
            c["lastTransitionTime"] = match prev {
                Some(p) if p["status"] == c["status"] => p["lastTransitionTime"].clone(),
                _ => json!(now),
            };
        }
        n["status"]["conditions"] = Value::Array(conds);
        Some(n)
    })
    .await
    .map(|_| ())
}

/// Writes a reported pod status; deletes a terminating pod once no container runs.
pub(super) async fn pod_status(
    store: &dyn ObjectStore,
    node: &str,
    ps: &PodStatus,
) -> Result<(), store::Error> {
    let status: Value =
        serde_json::from_str(&ps.status_json).map_err(|e| store::Error::Invalid(e.to_string()))?;
    let key = store::key("", "pods", &ps.namespace, &ps.name);
    let Some(written) = update(store, &key, |mut p| {
        if p["metadata"]["uid"] != ps.uid.as_str() || p["spec"]["nodeName"] != node {
            return None;
        }
        if p["status"] == status {
            return None;
        }
        p["status"] = status.clone();
        Some(p)
    })
    .await?
    else {
        return maybe_delete(store, &key, &ps.uid).await;
    };
    let _ = written;
    maybe_delete(store, &key, &ps.uid).await
}

async fn maybe_delete(store: &dyn ObjectStore, key: &str, uid: &str) -> Result<(), store::Error> {
    let Some(obj) = store.get(key, Consistency::Linearizable).await? else {
        return Ok(());
    };
    let p = &obj.value;
    if p["metadata"]["uid"] != uid || p["metadata"]["deletionTimestamp"].is_null() {
        return Ok(());
    }
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let stopped = statuses.iter().all(|c| c["state"]["running"].is_null());
    if !stopped {
        return Ok(());
    }
    match store
        .commit(Batch::one(Op::Delete {
            key: key.to_string(),
            precondition: Precondition::Revision(obj.revision),
        }))
        .await
    {
        Ok(_) | Err(store::Error::PreconditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Feeds `tx` with the node's desired state until the receiver goes away.
pub(super) async fn stream_desired(
    store: Arc<dyn ObjectStore>,
    node: String,
    tx: mpsc::Sender<Result<ServerMessage, tonic::Status>>,
    resume: u64,
) {
    let mut resume = resume;
    loop {
        let (pods, rev) = match view::desired_pods(store.as_ref(), &node).await {
            Ok(x) => x,
            Err(e) => {
                if tx.send(Err(store_status(e))).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut known: BTreeMap<String, Value> = pods
            .iter()
            .filter_map(|u| {
                serde_json::from_str::<Value>(&u.pod_json)
                    .ok()
                    .map(|v| (store::key("", "pods", &u.namespace, &u.name), v))
            })
            .collect();
        // A reconnecting agent that applied up to `resume` gets only what changed since, replayed from the
        // event window; when the window no longer reaches back that far it gets a full state instead.
        let resumed = match std::mem::take(&mut resume) {
            r if r > 0 && r <= rev => store.watch("/core/", r).await.ok(),
            _ => None,
        };
        let mut watch = match resumed {
            Some(w) => w,
            None => {
                let network = view::network_view(store.as_ref()).await.ok();
                if tx
                    .send(Ok(ServerMessage {
                        revision: rev,
                        full: true,
                        pods,
                        network,
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
                let Ok(w) = store.watch("/core/", rev).await else {
                    continue;
                };
                w
            }
        };
        // Events of one commit arrive together; batching what is ready keeps messages few.
        let mut chunks = (&mut watch).ready_chunks(256);
        let mut gone = false;
        while let Some(events) = chunks.next().await {
            let mut updates: Vec<PodUpdate> = vec![];
            let mut net_changed = false;
            let mut touched_objects = vec![];
            let mut last_rev = rev;
            for ev in events {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(_) => {
                        gone = true;
                        break;
                    }
                };
                last_rev = ev.revision;
                let k = ev.key.as_str();
                if k.starts_with("/core/pods/") {
                    let mine = ev.object["spec"]["nodeName"] == node.as_str()
                        && ev.kind != EventType::Deleted;
                    if mine {
                        known.insert(ev.key.clone(), (*ev.object).clone());
                        if let Ok(u) = view::pod_update(store.as_ref(), &ev.object).await {
                            updates.push(u);
                        }
                    } else if let Some(old) = known.remove(k).or_else(|| {
                        (ev.object["spec"]["nodeName"] == node.as_str())
                            .then(|| (*ev.object).clone())
                    }) {
                        updates.push(PodUpdate {
                            namespace: old["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("default")
                                .to_string(),
                            name: old["metadata"]["name"].as_str().unwrap_or("").to_string(),
                            uid: old["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                            deleted: true,
                            pod_json: String::new(),
                            objects_json: vec![],
                        });
                    }
                } else if k.starts_with("/core/nodes/")
                    || k.starts_with("/core/services/")
                    || k.starts_with("/core/endpoints/")
                {
                    net_changed = true;
                } else if k.starts_with("/core/configmaps/") || k.starts_with("/core/secrets/") {
                    touched_objects.push(ev.object.clone());
                }
            }
            if gone {
                break;
            }
            for o in touched_objects {
                let kind = if o["kind"] == "Secret" {
                    "Secret"
                } else {
                    "ConfigMap"
                };
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                let ns = o["metadata"]["namespace"].clone();
                for p in known.values() {
                    if p["metadata"]["namespace"] == ns
                        && view::referenced_objects(p).contains(&(kind, name.clone()))
                        && !updates
                            .iter()
                            .any(|u| u.uid == p["metadata"]["uid"].as_str().unwrap_or(""))
                    {
                        if let Ok(u) = view::pod_update(store.as_ref(), p).await {
                            updates.push(u);
                        }
                    }
                }
            }
            let network = if net_changed {
                view::network_view(store.as_ref()).await.ok()
            } else {
                None
            };
            if updates.is_empty() && network.is_none() {
                continue;
            }
            if tx
                .send(Ok(ServerMessage {
                    revision: last_rev,
                    full: false,
                    pods: updates,
                    network,
                }))
                .await
                .is_err()
            {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        // The watch ended (410 Gone or store restart): start over with a full state.
    }
}

impl AgentsService {
    pub(super) async fn sync(
        &self,
        mut inbound: tonic::Streaming<AgentMessage>,
    ) -> Result<SyncStream, tonic::Status> {
        let hello = match inbound.message().await? {
            Some(AgentMessage {
                msg: Some(agent_message::Msg::Hello(h)),
            }) => h,
            _ => {
                return Err(tonic::Status::invalid_argument(
                    "the first Sync message must be Hello",
                ))
            }
        };
        if hello.token != self.config.token {
            return Err(tonic::Status::unauthenticated("invalid cluster token"));
        }
        let node = hello.node_name.clone();
        let (tx, rx) = mpsc::channel(64);
        let store = self.store.clone();
        let up_node = node.clone();
        let up_tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = inbound.message().await {
                let res = match msg.msg {
                    Some(agent_message::Msg::Heartbeat(hb)) => {
                        heartbeat(store.as_ref(), &up_node, &hb).await
                    }
                    Some(agent_message::Msg::PodStatus(ps)) => {
                        pod_status(store.as_ref(), &up_node, &ps).await
                    }
                    _ => Ok(()),
                };
                if let Err(e) = res {
                    tracing::warn!(node = %up_node, error = %e, "agent update not written");
                }
            }
            drop(up_tx);
        });
        tokio::spawn(stream_desired(
            self.store.clone(),
            node,
            tx,
            hello.resume_revision,
        ));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl proto::agentpb::agent_service_server::AgentService for AgentsService {
    async fn join(
        &self,
        request: tonic::Request<proto::agentpb::JoinRequest>,
    ) -> Result<tonic::Response<proto::agentpb::JoinResponse>, tonic::Status> {
        AgentsService::join(self, request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: tonic::Request<tonic::Streaming<AgentMessage>>,
    ) -> Result<tonic::Response<Self::SyncStream>, tonic::Status> {
        AgentsService::sync(self, request.into_inner())
            .await
            .map(tonic::Response::new)
    }
}
