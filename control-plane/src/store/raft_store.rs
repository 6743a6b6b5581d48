//! [`RaftStore`]: the production [`ObjectStore`]. Writes go through Raft (forwarded to the leader from
//! followers), linearizable reads use ReadIndex, and watches replay from the in-memory event window.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::{ConfChange, ConfChangeType};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::driver::{
    self, Driver, DriverConfig, DriverThread, Leadership, MonotonicClock, Msg, Shared, Status,
};
use super::log_store::restore;
use super::mem::watch_stream;
use super::members::{Member, Members};
use super::object_store::{
    Batch, BoxFuture, Committed, Consistency, Error, Health, Membership, Object, ObjectStore,
    Result, WatchStream,
};
use super::sled_storage::SledStorage;
use super::state_machine::StateMachine;
use super::transport::{self, PeerTls, Transport};

/// How a member starts when its data dir holds no Raft state yet. A data dir that already has
/// state always restarts from it, whatever this says.
#[derive(Debug, Clone)]
pub enum Start {
    /// A member of a new cluster. Ids are the 1-based positions in this list, which every
    /// initial member must be given identically; this member is the one named `StoreConfig::name`.
    InitialCluster(Vec<Member>),
    /// Ask the running member at this peer address to add us, then catch up from the leader.
    Join(String),
}

/// Everything needed to open a member's store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// sled directory.
    pub data_dir: PathBuf,
    /// This member's name (unique in the cluster).
    pub name: String,
    /// Peer address others dial (`host:6444`).
    pub peer_addr: String,
    /// API address clients may be redirected to (`host:6443`).
    pub api_addr: String,
    /// First-start behaviour.
    pub start: Start,
    /// Raft timing and compaction.
    pub driver: DriverConfig,
    /// Events kept for watch replay.
    pub event_window: usize,
    /// How long `commit` waits before `Timeout`.
    pub commit_timeout: Duration,
    /// How long a linearizable read waits before `Timeout`.
    pub read_timeout: Duration,
    /// Mutual TLS towards peers; when set, the peer service also admits members only.
    pub tls: PeerTls,
}

impl StoreConfig {
    /// A config with the defaults (100 ms ticks, 10,000-entry snapshots, 10,000-event window).
    pub fn new(
        data_dir: impl Into<PathBuf>,
        name: &str,
        peer_addr: &str,
        api_addr: &str,
        start: Start,
    ) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            name: name.to_string(),
            peer_addr: peer_addr.to_string(),
            api_addr: api_addr.to_string(),
            start,
            driver: DriverConfig::default(),
            event_window: 10_000,
            commit_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// A member of the Raft-replicated object store. Dropping the last handle stops the driver thread.
pub struct RaftStore {
    shared: Arc<Shared>,
    tx: std::sync::mpsc::Sender<Msg>,
    transport: Arc<Transport>,
    thread: DriverThread,
    commit_timeout: Duration,
    read_timeout: Duration,
    member_certs: bool,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl RaftStore {
    /// Opens the member's data dir and starts its Raft driver thread. A fresh data dir is bootstrapped
    /// from `config.start` (for `Join`, this calls the running member first); an existing one restarts.
    /// Serve [`RaftStore::peer_service`] on the peer address right after, or peers cannot reach it.
    ///
    /// # Errors
    /// `Unavailable` when the data dir cannot be opened or the join failed; `Invalid` when this member's
    /// name is not in the initial cluster.
    pub async fn open(config: StoreConfig) -> Result<Arc<RaftStore>> {
        let dir = config.data_dir.clone();
        let mut storage = tokio::task::spawn_blocking(move || SledStorage::open(&dir))
            .await
            .map_err(|e| Error::Unavailable(format!("opening storage: {e}")))?
            .map_err(|e| {
                Error::Unavailable(format!("opening {}: {e}", config.data_dir.display()))
            })?;
        let unavailable = |e: super::storage_error::Error| Error::Unavailable(e.to_string());
        let mut seeds = Vec::new();
        let id = match storage.node_id().map_err(unavailable)? {
            Some(id) => {
                tracing::info!(id, dir = %config.data_dir.display(), "restarting from data dir");
                id
            }
            None => match &config.start {
                Start::InitialCluster(cluster) => {
                    let me = cluster
                        .iter()
                        .find(|m| m.name == config.name)
                        .ok_or_else(|| {
                            Error::Invalid(format!("{} is not in the initial cluster", config.name))
                        })?;
                    let members = Members::initial(cluster);
                    storage
                        .bootstrap(cluster.iter().map(|m| m.id).collect(), &members)
                        .map_err(unavailable)?;
                    storage.set_node_id(me.id).map_err(unavailable)?;
                    tracing::info!(
                        id = me.id,
                        members = cluster.len(),
                        "bootstrapped new cluster member"
                    );
                    me.id
                }
                Start::Join(via) => {
                    let (id, members) = join_with_retry(via, &config).await?;
                    storage.set_node_id(id).map_err(unavailable)?;
                    tracing::info!(id, via = %via, "joined cluster");
                    seeds = members;
                    id
                }
            },
        };
        let (sm, members) = restore(&mut storage).map_err(unavailable)?;
        let shared = driver::new_shared(id, sm, config.event_window, members.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let transport = Arc::new(Transport::new(
            id,
            tokio::runtime::Handle::current(),
            tx.clone(),
            config.tls.clone(),
        ));
        transport.set_peers(&members);
        for m in &seeds {
            transport.add_peer(m.id, &m.peer_addr);
        }
        if !seeds.is_empty() && members.by_id.is_empty() {
            // Until the snapshot arrives, the join answer is the best view of the cluster.
            let mut ms = Members::default();
            for m in &seeds {
                ms.insert(m.clone());
            }
            *shared.members.write().expect("members lock") = ms;
        }
        let driver = Driver::new(
            storage,
            rx,
            tx.clone(),
            shared.clone(),
            transport.clone(),
            Arc::new(MonotonicClock),
            config.driver.clone(),
            // The one source of randomness of a member: its proposal nonce and election timeouts.
            rand::random(),
        )?;
        let thread = std::thread::Builder::new()
            .name(format!("raft-{id}"))
            .spawn(move || driver::supervise("raft driver", move || driver.run()))
            .map_err(|e| Error::Unavailable(format!("spawning raft thread: {e}")))?;
        Ok(Arc::new(RaftStore {
            shared,
            tx,
            transport,
            thread: Mutex::new(Some(thread)),
            commit_timeout: config.commit_timeout,
            read_timeout: config.read_timeout,
            member_certs: config.tls.is_some(),
        }))
    }

    /// This member's Raft id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Whether this member leads, as a watch: controllers start on `true` and stop on `false`.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.shared.is_leader.subscribe()
    }

    /// The leader as this member knows it, as a watch.
    pub fn leader_watch(&self) -> watch::Receiver<Leadership> {
        self.shared.leadership.subscribe()
    }

    /// The current leader's member record (with its API address), if known.
    pub fn leader(&self) -> Option<Member> {
        let leader = self.shared.leadership.borrow().leader_id;
        self.shared
            .members
            .read()
            .expect("members lock")
            .get(leader)
            .cloned()
    }

    /// Members of the configuration as of the applied index.
    pub fn members(&self) -> Members {
        self.shared.members.read().expect("members lock").clone()
    }

    /// Why this member cannot persist now (disk full, I/O error), if it cannot: while set it
    /// acknowledges no writes, and it clears itself once the disk takes writes again.
    pub fn storage_error(&self) -> Option<String> {
        self.shared
            .storage_error
            .lock()
            .expect("storage error lock")
            .clone()
    }

    /// Raft status of this member.
    ///
    /// # Errors
    /// `Unavailable` when the driver stopped.
    pub async fn status(&self) -> Result<Status> {
        let (tx, rx) = oneshot::channel();
        self.send_to_driver(Msg::Status(tx))?;
        rx.await
            .map_err(|_| Error::Unavailable("raft driver stopped".into()))
    }

    /// Stops the driver thread and waits for it, which closes the sled database so the data dir can
    /// be reopened. Pending callers get `Unavailable`.
    pub async fn shutdown(&self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let handle = self.thread.lock().expect("thread lock").take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        self.transport.set_peers(&Members {
            by_id: Default::default(),
            max_id: 0,
        });
    }

    pub(crate) fn send_to_driver(&self, m: Msg) -> Result<()> {
        if self
            .shared
            .stopped
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::Unavailable("store stopped".into()));
        }
        self.tx
            .send(m)
            .map_err(|_| Error::Unavailable("raft driver stopped".into()))
    }

    fn leader_id(&self) -> u64 {
        self.shared.leadership.borrow().leader_id
    }

    /// Waits until the leader changes or `max` passes (used between retries).
    async fn wait_leader_change(&self, max: Duration) {
        let mut rx = self.shared.leadership.subscribe();
        rx.borrow_and_update();
        let _ = tokio::time::timeout(max, rx.changed()).await;
    }

    /// Proposes on this member, which must be the leader; `NoLeader` otherwise (nothing proposed).
    /// Whether the peer service admits only callers with a member certificate (TLS is on).
    pub fn requires_member_certs(&self) -> bool {
        self.member_certs
    }

    pub(crate) async fn propose_local(&self, batch: &Batch) -> Result<Committed> {
        let data = serde_json::to_vec(batch).map_err(|e| Error::Invalid(format!("batch: {e}")))?;
        self.propose_data(data).await
    }

    /// [`propose_local`](Self::propose_local) of an already encoded (and validated) batch.
    pub(crate) async fn propose_data(&self, data: Vec<u8>) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.send_to_driver(Msg::Propose { data, tx })?;
        match tokio::time::timeout(self.commit_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Unavailable("raft driver stopped".into())),
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn forward(&self, leader: u64, batch: &Batch) -> Result<Committed> {
        let Some(mut client) = self.transport.client_for(leader) else {
            return Err(Error::NoLeader);
        };
        let data = serde_json::to_vec(batch).map_err(|e| Error::Invalid(format!("batch: {e}")))?;
        let mut req = tonic::Request::new(proto::raftpb::ProposeRequest { batch: data });
        req.set_timeout(self.commit_timeout);
        match client.propose(req).await {
            Ok(resp) => serde_json::from_slice::<Result<Committed>>(&resp.into_inner().result)
                .map_err(|e| Error::Unavailable(format!("bad answer from leader: {e}")))?,
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => Err(Error::Timeout),
            // The request may or may not have reached the leader: the caller decides whether to retry.
            Err(s) => Err(Error::Dropped(format!(
                "forward to leader {leader}: {}",
                s.message()
            ))),
        }
    }

    async fn commit_batch(&self, batch: Batch) -> Result<Committed> {
        if let Some(key) = batch.invalid_key() {
            return Err(Error::Invalid(format!("invalid key {key:?}")));
        }
        let deadline = Instant::now() + self.commit_timeout;
        loop {
            let leader = self.leader_id();
            let result = if leader == self.id() {
                self.propose_local(&batch).await
            } else if leader == 0 {
                Err(Error::NoLeader)
            } else {
                self.forward(leader, &batch).await
            };
            match result {
                // NoLeader means nothing was proposed, so retrying cannot apply the batch twice.
                Err(Error::NoLeader) if Instant::now() < deadline => {
                    self.wait_leader_change(Duration::from_millis(100)).await;
                }
                Err(Error::NoLeader) => return Err(Error::Timeout),
                other => return other,
            }
        }
    }

    /// Waits until this member has applied everything the leader had committed when called.
    async fn read_barrier(&self) -> Result<()> {
        let deadline = Instant::now() + self.read_timeout;
        loop {
            let (tx, rx) = oneshot::channel();
            self.send_to_driver(Msg::ReadIndex(tx))?;
            // A read-index message lost on the way gets no answer: retry after a while.
            let attempt = (Instant::now() + Duration::from_secs(1)).min(deadline);
            let index = match tokio::time::timeout_at(attempt, rx).await {
                Ok(Ok(Ok(index))) => index,
                Ok(Ok(Err(Error::NoLeader | Error::Dropped(_)))) | Err(_) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout);
                    }
                    self.wait_leader_change(Duration::from_millis(100)).await;
                    continue;
                }
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(_)) => return Err(Error::Unavailable("raft driver stopped".into())),
            };
            let mut applied = self.shared.applied_index.subscribe();
            return match tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= index)).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(Error::Unavailable("raft driver stopped".into())),
                Err(_) => Err(Error::Timeout),
            };
        }
    }

    /// Adds a member named `name` (replacing a same-named member whose data was wiped) and returns its
    /// new id and the members after the change. Forwarded to the leader when called on a follower.
    ///
    /// # Errors
    /// `NoLeader`/`Timeout` when the cluster cannot commit the change.
    pub async fn add_member(
        &self,
        name: &str,
        peer_addr: &str,
        api_addr: &str,
    ) -> Result<(u64, Vec<Member>)> {
        let leader = self.leader_id();
        if leader == 0 {
            return Err(Error::NoLeader);
        }
        if leader != self.id() {
            let mut client = self.transport.client_for(leader).ok_or(Error::NoLeader)?;
            let mut req = tonic::Request::new(proto::raftpb::JoinRequest {
                name: name.to_string(),
                peer_addr: peer_addr.to_string(),
            });
            if let Ok(v) = api_addr.parse() {
                req.metadata_mut().insert("x-berth-api-addr", v);
            }
            let resp = client
                .join(req)
                .await
                .map_err(|s| {
                    Error::Unavailable(format!("join via leader {leader}: {}", s.message()))
                })?
                .into_inner();
            return Ok((
                resp.id,
                resp.members.into_iter().map(Member::from).collect(),
            ));
        }
        if let Some(old) = self.members().by_name(name).cloned() {
            tracing::info!(
                id = old.id,
                name,
                "member rejoins with a new id; removing the old one"
            );
            let mut cc = ConfChange::default();
            cc.set_change_type(ConfChangeType::RemoveNode);
            cc.node_id = old.id;
            self.conf_change(cc).await?;
        }
        let member = Member {
            id: self.members().next_id(),
            name: name.to_string(),
            peer_addr: peer_addr.to_string(),
            api_addr: api_addr.to_string(),
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddNode);
        cc.node_id = member.id;
        cc.context = serde_json::to_vec(&member).expect("member encodes").into();
        self.conf_change(cc).await?;
        Ok((member.id, self.members().iter().cloned().collect()))
    }

    async fn conf_change(&self, cc: ConfChange) -> Result<()> {
        let mut last = Error::Timeout;
        // raft-rs turns a conf change into an empty entry while another is pending; that waiter never
        // hears back, so retry a few times.
        for _ in 0..5 {
            let (tx, rx) = oneshot::channel();
            self.send_to_driver(Msg::ConfChange { cc: cc.clone(), tx })?;
            match tokio::time::timeout(Duration::from_secs(3), rx).await {
                Ok(Ok(r)) => return r,
                Ok(Err(_)) => return Err(Error::Unavailable("raft driver stopped".into())),
                Err(_) => last = Error::Timeout,
            }
        }
        Err(last)
    }

    fn read_local<T>(&self, f: impl FnOnce(&StateMachine) -> T) -> T {
        f(&self.shared.applied.read().expect("applied lock").sm)
    }
}

impl Drop for RaftStore {
    fn drop(&mut self) {
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

async fn join_with_retry(via: &str, config: &StoreConfig) -> Result<(u64, Vec<Member>)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut backoff = Duration::from_millis(200);
    loop {
        match transport::join(
            via,
            &config.tls,
            &config.name,
            &config.peer_addr,
            &config.api_addr,
        )
        .await
        {
            Ok(r) => return Ok(r),
            Err(e) if Instant::now() + backoff < deadline => {
                tracing::warn!(via, error = %e, "join failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(3));
            }
            Err(e) => return Err(e),
        }
    }
}

impl ObjectStore for RaftStore {
    fn commit(&self, batch: Batch) -> BoxFuture<'_, Result<Committed>> {
        Box::pin(self.commit_batch(batch))
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        consistency: Consistency,
    ) -> BoxFuture<'a, Result<Option<Object>>> {
        Box::pin(async move {
            if consistency == Consistency::Linearizable {
                self.read_barrier().await?;
            }
            Ok(self.read_local(|sm| sm.get(key)))
        })
    }

    fn list<'a>(
        &'a self,
        prefix: &'a str,
        consistency: Consistency,
    ) -> BoxFuture<'a, Result<(Vec<Object>, u64)>> {
        Box::pin(async move {
            if consistency == Consistency::Linearizable {
                self.read_barrier().await?;
            }
            Ok(self.read_local(|sm| (sm.list(prefix), sm.applied())))
        })
    }

    fn watch<'a>(&'a self, prefix: &'a str, after: u64) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(async move {
            let applied = self.shared.applied.read().expect("applied lock");
            let rx = applied.events.subscribe();
            let backlog = applied.window.since(after)?;
            Ok(watch_stream(backlog, rx, prefix.to_string(), after))
        })
    }

    fn revision(&self) -> u64 {
        *self.shared.applied_index.borrow()
    }

    fn is_leader(&self) -> bool {
        *self.shared.is_leader.borrow()
    }

    fn health(&self) -> Health {
        let driver_stopped = self
            .thread
            .lock()
            .map(|t| t.as_ref().is_none_or(std::thread::JoinHandle::is_finished))
            .unwrap_or(true);
        Health {
            driver_stopped,
            no_leader: self.leader_id() == 0,
            storage: self.storage_error(),
        }
    }

    fn membership(&self) -> Option<Membership> {
        Some(Membership {
            self_id: self.id(),
            leader_id: self.leader_id(),
            members: RaftStore::members(self).by_id.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests;
