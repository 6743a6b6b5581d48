//! `Sync`: the long-lived stream. Up: heartbeats (one Node status write each) and pod statuses (pod
//! `status` writes; a deleting pod whose containers all stopped is removed). Down: a full desired state,
//! then deltas from the shared [`Watcher`]; a watch that falls out of the window restarts with a new full state.

use super::{now_rfc3339, store_status, update, view, AgentsService};
use crate::informer::watcher::{Step, Watcher};
use crate::store::{self, Batch, Consistency, EventType, ObjectStore, Op, Precondition};
use proto::agentpb::{agent_message, AgentMessage, Heartbeat, PodStatus, PodUpdate, ServerMessage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

/// Lifetime of the ServiceAccount tokens handed to pods.
const SA_TOKEN_TTL: i64 = 24 * 3600;
/// Every pod gets a fresh token this often (kubelet refreshes at 80% of the lifetime).
const SA_TOKEN_REFRESH: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// A ServiceAccount token for `pod` (its `serviceAccountName`, else `default`), or `None` when the pod
/// opts out with `automountServiceAccountToken: false`.
pub(super) fn service_account_token(
    pki: &crate::security::ClusterPki,
    pod: &Value,
    now: i64,
) -> Option<String> {
    if pod["spec"]["automountServiceAccountToken"] == false {
        return None;
    }
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    Some(pki.sa_key.sign(&pki::ServiceAccountClaims {
        iss: "https://kubernetes.default.svc.cluster.local".into(),
        sub: format!("system:serviceaccount:{ns}:{sa}"),
        aud: vec![],
        iat: now,
        exp: now + SA_TOKEN_TTL,
        uid: String::new(),
    }))
}

/// Fills `service_account_token` of every live update.
fn with_tokens(pki: Option<&crate::security::ClusterPki>, updates: &mut [PodUpdate]) {
    let Some(pki) = pki else { return };
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for u in updates.iter_mut().filter(|u| !u.deleted) {
        if let Ok(pod) = serde_json::from_str::<Value>(&u.pod_json) {
            u.service_account_token = service_account_token(pki, &pod, now).unwrap_or_default();
        }
    }
}

/// Where the objects a node is told about live: its pods, the network view (nodes, services,
/// endpoints) and the ConfigMaps/Secrets its pods reference. One prefix keeps one totally ordered
/// watch, so every delta's revision is a safe point for the agent to resume from.
const CORE: &str = "/core/";

type Tx = mpsc::Sender<Result<ServerMessage, tonic::Status>>;

/// The receiver went away: the stream is over.
struct Closed;

async fn send(tx: &Tx, msg: Result<ServerMessage, tonic::Status>) -> Result<(), Closed> {
    tx.send(msg).await.map_err(|_| Closed)
}

/// The deletion notice of a pod the node no longer runs.
fn deleted(old: &Value) -> PodUpdate {
    PodUpdate {
        namespace: old["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        name: old["metadata"]["name"].as_str().unwrap_or("").to_string(),
        uid: old["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        deleted: true,
        pod_json: String::new(),
        objects_json: vec![],
        service_account_token: String::new(),
    }
}

/// One agent's stream: the node's pods it was told about, kept current from the shared watcher.
struct Desired<'a> {
    store: &'a dyn ObjectStore,
    pki: Option<&'a crate::security::ClusterPki>,
    node: &'a str,
    tx: &'a Tx,
    /// The node's pods as last sent, by store key.
    known: BTreeMap<String, Value>,
}

impl Desired<'_> {
    /// A (re-)list: the node's pods become `known`; unless the watch resumes where the agent left
    /// off, the agent gets them all as a full state. `Ok(false)` when a pod's objects could not be
    /// read (reported to the agent) and the caller should list again.
    async fn listed(
        &mut self,
        objects: Vec<store::Object>,
        rev: u64,
        resumed: bool,
    ) -> Result<bool, Closed> {
        let pods_prefix = store::prefix("", "pods", None);
        self.known = objects
            .into_iter()
            .filter(|o| o.key.starts_with(&pods_prefix) && o.value["spec"]["nodeName"] == self.node)
            .map(|o| (o.key, o.value))
            .collect();
        if resumed {
            return Ok(true);
        }
        let mut pods = Vec::with_capacity(self.known.len());
        for p in self.known.values() {
            match view::pod_update(self.store, p).await {
                Ok(u) => pods.push(u),
                Err(e) => {
                    send(self.tx, Err(store_status(e))).await?;
                    return Ok(false);
                }
            }
        }
        with_tokens(self.pki, &mut pods);
        let network = view::network_view(self.store).await.ok();
        send(
            self.tx,
            Ok(ServerMessage {
                revision: rev,
                full: true,
                pods,
                network,
            }),
        )
        .await
        .map(|()| true)
    }

    /// Tokens expire: resends every pod with a fresh one.
    async fn refresh_tokens(&self) -> Result<(), Closed> {
        let mut updates = vec![];
        for p in self.known.values() {
            if let Ok(u) = view::pod_update(self.store, p).await {
                updates.push(u);
            }
        }
        with_tokens(self.pki, &mut updates);
        if updates.is_empty() {
            return Ok(());
        }
        send(
            self.tx,
            Ok(ServerMessage {
                revision: 0,
                full: false,
                pods: updates,
                network: None,
            }),
        )
        .await
    }

    /// One batch of watch events as one delta tagged with the batch's last revision; nothing is sent
    /// when none concerns the node.
    async fn events(&mut self, events: Vec<store::Event>) -> Result<(), Closed> {
        let node = self.node;
        let mut updates: Vec<PodUpdate> = vec![];
        let mut net_changed = false;
        let mut touched_objects = vec![];
        let mut last_rev = 0;
        for ev in events {
            last_rev = ev.revision;
            let k = ev.key.as_str();
            if k.starts_with("/core/pods/") {
                let mine = ev.object["spec"]["nodeName"] == node && ev.kind != EventType::Deleted;
                if mine {
                    self.known.insert(ev.key.clone(), (*ev.object).clone());
                    if let Ok(u) = view::pod_update(self.store, &ev.object).await {
                        updates.push(u);
                    }
                } else if let Some(old) = self.known.remove(k).or_else(|| {
                    // A pod deleted before this stream knew it (a resumed agent still runs it).
                    (ev.object["spec"]["nodeName"] == node).then(|| (*ev.object).clone())
                }) {
                    updates.push(deleted(&old));
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
        for o in touched_objects {
            let kind = if o["kind"] == "Secret" {
                "Secret"
            } else {
                "ConfigMap"
            };
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ns = o["metadata"]["namespace"].clone();
            for p in self.known.values() {
                if p["metadata"]["namespace"] == ns
                    && view::referenced_objects(p).contains(&(kind, name.clone()))
                    && !updates
                        .iter()
                        .any(|u| u.uid == p["metadata"]["uid"].as_str().unwrap_or(""))
                {
                    if let Ok(u) = view::pod_update(self.store, p).await {
                        updates.push(u);
                    }
                }
            }
        }
        let network = if net_changed {
            view::network_view(self.store).await.ok()
        } else {
            None
        };
        if updates.is_empty() && network.is_none() {
            return Ok(());
        }
        with_tokens(self.pki, &mut updates);
        send(
            self.tx,
            Ok(ServerMessage {
                revision: last_rev,
                full: false,
                pods: updates,
                network,
            }),
        )
        .await
    }
}

/// Feeds `tx` with the node's desired state until the receiver goes away: a full state, then deltas
/// from the shared [`Watcher`]. An agent that applied up to `resume` gets only what changed since,
/// replayed from the store's event window; when the window no longer reaches back that far (or
/// `resume` is ahead of the store), and after any watch failure, it gets a full state instead.
pub(super) async fn stream_desired(
    store: Arc<dyn ObjectStore>,
    pki: Option<Arc<crate::security::ClusterPki>>,
    node: String,
    tx: Tx,
    resume: u64,
) {
    let mut desired = Desired {
        store: store.as_ref(),
        pki: pki.as_deref(),
        node: &node,
        tx: &tx,
        known: BTreeMap::new(),
    };
    let mut watcher = Watcher::new(store.clone(), vec![CORE.to_string()]).resume_from(resume);
    // The stream ends with its receiver, never by a shutdown of its own.
    let forever = CancellationToken::new();
    let mut refresh = tokio::time::interval_at(
        tokio::time::Instant::now() + SA_TOKEN_REFRESH,
        SA_TOKEN_REFRESH,
    );
    loop {
        let step = tokio::select! {
            _ = tx.closed() => return,
            step = watcher.next(&forever) => match step {
                Some(step) => step,
                None => return,
            },
            _ = refresh.tick(), if desired.pki.is_some() => {
                if desired.refresh_tokens().await.is_err() {
                    return;
                }
                continue;
            }
        };
        let resumed = matches!(step, Step::Resumed(_));
        let sent = match step {
            Step::Listed(mut lists) | Step::Resumed(mut lists) => {
                let Some((objects, rev)) = lists.pop() else {
                    continue;
                };
                // Tokens handed out with this state are fresh: the next refresh is a period away.
                refresh.reset();
                match desired.listed(objects, rev, resumed).await {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        watcher.relist();
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Step::Events(batch) => {
                desired
                    .events(batch.into_iter().map(|(_, ev)| ev).collect())
                    .await
            }
            // The agent reconnects (perhaps to a member that can list); the watcher backs off.
            Step::ListFailed(e) => send(&tx, Err(store_status(e))).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

impl AgentsService {
    pub(super) async fn sync(
        &self,
        caller: Option<pki::Identity>,
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
        // With a PKI only the node itself may sync as the node (its certificate names it); without
        // one (in-process tests) the stream is not authenticated.
        if self.config.pki.is_some()
            && crate::security::node_of(caller.as_ref()) != Some(hello.node_name.as_str())
        {
            return Err(tonic::Status::permission_denied(format!(
                "the caller's certificate does not name node {}",
                hello.node_name
            )));
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
            self.config.pki.clone(),
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
        let caller = crate::security::peer_identity(&request);
        AgentsService::join(self, caller, request.into_inner())
            .await
            .map(tonic::Response::new)
    }

    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: tonic::Request<tonic::Streaming<AgentMessage>>,
    ) -> Result<tonic::Response<Self::SyncStream>, tonic::Status> {
        let caller = crate::security::peer_identity(&request);
        AgentsService::sync(self, caller, request.into_inner())
            .await
            .map(tonic::Response::new)
    }
}
