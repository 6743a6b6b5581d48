//! Peer transport over gRPC (port 6444), client side: one outbound queue + task per peer, so a slow or
//! dead peer never blocks the driver, and the Join and Status calls. The server side is
//! `peer_service`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::raftpb::raft_peer_client::RaftPeerClient;
use proto::raftpb::{JoinRequest, StatusRequest, StatusResponse, StepRequest};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use super::driver::{Msg, Network};
use super::members::{Member, Members};
use super::object_store::{Error, Result};
use super::snapshot::MAX_MESSAGE;

/// Raft messages queued per peer before new ones are dropped (Raft retransmits).
const PEER_QUEUE: usize = 8192;
struct Peer {
    addr: String,
    queue: mpsc::Sender<Message>,
    channel: Channel,
}

/// Outbound side of the transport: an address book and a sender task per peer.
pub(crate) struct Transport {
    self_id: u64,
    runtime: tokio::runtime::Handle,
    driver: std::sync::mpsc::Sender<Msg>,
    peers: Mutex<HashMap<u64, Peer>>,
    tls: PeerTls,
}

/// The TLS client side of the peer port: trust the cluster CA, present this member's certificate.
/// `None` is plaintext (in-process tests of the store alone).
pub type PeerTls = Option<Arc<rustls::ClientConfig>>;

pub(crate) fn channel_to(addr: &str, tls: &PeerTls) -> Result<Channel> {
    let bare = addr
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    // The scheme stays http: with TLS, the connector wraps the stream before HTTP/2 starts.
    let endpoint = Endpoint::from_shared(format!("http://{bare}"))
        .map_err(|e| Error::Invalid(format!("peer address {addr}: {e}")))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(match tls {
        Some(cfg) => endpoint.connect_with_connector_lazy(pki::net::grpc_connector(cfg.clone())),
        None => endpoint.connect_lazy(),
    })
}

pub(crate) fn client(channel: Channel) -> RaftPeerClient<Channel> {
    RaftPeerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

impl Transport {
    pub(crate) fn new(
        self_id: u64,
        runtime: tokio::runtime::Handle,
        driver: std::sync::mpsc::Sender<Msg>,
        tls: PeerTls,
    ) -> Self {
        Transport {
            self_id,
            runtime,
            driver,
            peers: Mutex::new(HashMap::new()),
            tls,
        }
    }

    /// Makes the address book match `members` (a member's own entry is skipped). An empty set keeps
    /// the current peers: a joining member knows its peers from the join answer before any snapshot.
    pub(crate) fn set_peers(&self, members: &Members) {
        if members.by_id.is_empty() {
            return;
        }
        let mut peers = self.peers.lock().expect("peers lock");
        peers.retain(|id, _| members.by_id.contains_key(id));
        for m in members.iter() {
            self.add_locked(&mut peers, m.id, &m.peer_addr);
        }
    }

    /// Adds one peer address (from a join answer).
    pub(crate) fn add_peer(&self, id: u64, addr: &str) {
        let mut peers = self.peers.lock().expect("peers lock");
        self.add_locked(&mut peers, id, addr);
    }

    fn add_locked(&self, peers: &mut HashMap<u64, Peer>, id: u64, addr: &str) {
        if id == self.self_id || peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        // Called from the driver thread: tonic needs the runtime to build a channel.
        let _guard = self.runtime.enter();
        let channel = match channel_to(addr, &self.tls) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(peer = id, error = %e, "bad peer address");
                return;
            }
        };
        let (queue, rx) = mpsc::channel(PEER_QUEUE);
        self.runtime.spawn(send_loop(
            id,
            client(channel.clone()),
            rx,
            self.driver.clone(),
        ));
        peers.insert(
            id,
            Peer {
                addr: addr.to_string(),
                queue,
                channel,
            },
        );
    }

    /// Queues messages to their peers without blocking; a full queue drops (Raft resends).
    pub(crate) fn send(&self, msgs: Vec<Message>) {
        let peers = self.peers.lock().expect("peers lock");
        for m in msgs {
            let to = m.to;
            let is_snap = m.get_msg_type() == MessageType::MsgSnapshot;
            let sent = match peers.get(&to) {
                Some(p) => p.queue.try_send(m).is_ok(),
                None => false,
            };
            if !sent {
                let _ = self.driver.send(Msg::Unreachable(to));
                if is_snap {
                    let _ = self.driver.send(Msg::SnapshotSent { to, ok: false });
                }
            }
        }
    }

    /// A gRPC client for peer `id`, if its address is known.
    pub(crate) fn client_for(&self, id: u64) -> Option<RaftPeerClient<Channel>> {
        let peers = self.peers.lock().expect("peers lock");
        peers.get(&id).map(|p| client(p.channel.clone()))
    }
}

impl Network for Transport {
    fn send(&self, msgs: Vec<Message>) {
        Transport::send(self, msgs);
    }

    fn set_peers(&self, members: &Members) {
        Transport::set_peers(self, members);
    }
}

/// Sends one peer's queue in batches, one RPC at a time, backing off while the peer is unreachable.
async fn send_loop(
    id: u64,
    mut client: RaftPeerClient<Channel>,
    mut rx: mpsc::Receiver<Message>,
    driver: std::sync::mpsc::Sender<Msg>,
) {
    let mut backoff = Duration::from_millis(50);
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.push(first);
        while buf.len() < 4096 {
            match rx.try_recv() {
                Ok(m) => buf.push(m),
                Err(_) => break,
            }
        }
        let encoded = buf
            .iter()
            .map(|m| {
                (
                    m.write_to_bytes().expect("raft message encodes"),
                    m.get_msg_type() == MessageType::MsgSnapshot,
                )
            })
            .collect();
        let (requests, too_big) = pack(encoded, MAX_MESSAGE - REQUEST_OVERHEAD);
        for (len, snapshot) in too_big {
            tracing::error!(
                peer = id,
                bytes = len,
                limit = MAX_MESSAGE,
                "dropped a raft message larger than the peer port's message limit"
            );
            if snapshot {
                let _ = driver.send(Msg::SnapshotSent { to: id, ok: false });
            }
        }
        for (messages, snapshots) in requests {
            let mut req = Request::new(StepRequest { messages });
            req.set_timeout(Duration::from_secs(if snapshots > 0 { 60 } else { 5 }));
            match client.step(req).await {
                Ok(_) => {
                    backoff = Duration::from_millis(50);
                    for _ in 0..snapshots {
                        let _ = driver.send(Msg::SnapshotSent { to: id, ok: true });
                    }
                }
                Err(status) => {
                    tracing::debug!(peer = id, error = %status.message(), "raft peer unreachable");
                    let _ = driver.send(Msg::Unreachable(id));
                    for _ in 0..snapshots {
                        let _ = driver.send(Msg::SnapshotSent { to: id, ok: false });
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    // What queued meanwhile is stale; Raft resends from its progress tracking.
                    while rx.try_recv().is_ok() {}
                    break;
                }
            }
        }
    }
}

/// Room left in a [`MAX_MESSAGE`] for the `StepRequest` framing (a tag and length per message).
const REQUEST_OVERHEAD: usize = 64 << 10;

/// Requests: the encoded messages and how many of them are snapshots.
type Packed = Vec<(Vec<Vec<u8>>, usize)>;

/// Packs encoded messages (with whether each is a snapshot), in order, into requests of at most
/// `limit` bytes of payload, counting 16 bytes of framing per message. A message that alone exceeds
/// `limit` cannot be sent at all: it is returned as (its size, whether it is a snapshot).
pub(crate) fn pack(msgs: Vec<(Vec<u8>, bool)>, limit: usize) -> (Packed, Vec<(usize, bool)>) {
    let mut out: Packed = Vec::new();
    let mut too_big = Vec::new();
    let mut size = 0;
    for (m, snapshot) in msgs {
        let cost = m.len() + 16;
        if cost > limit {
            too_big.push((m.len(), snapshot));
            continue;
        }
        if out.is_empty() || size + cost > limit {
            out.push((Vec::new(), 0));
            size = 0;
        }
        let last = out.last_mut().expect("one request");
        last.0.push(m);
        last.1 += usize::from(snapshot);
        size += cost;
    }
    (out, too_big)
}

/// Asks the running member at `addr` to add this member. Returns the new id and every member.
///
/// # Errors
/// `Unavailable` when the member cannot be reached or refuses.
pub async fn join(
    addr: &str,
    tls: &PeerTls,
    name: &str,
    peer_addr: &str,
    api_addr: &str,
) -> Result<(u64, Vec<Member>)> {
    let mut c = client(channel_to(addr, tls)?);
    let mut req = Request::new(JoinRequest {
        name: name.to_string(),
        peer_addr: peer_addr.to_string(),
    });
    // COMPAT(raft.proto): JoinRequest has no api_addr field; it travels as metadata.
    if let Ok(v) = api_addr.parse() {
        req.metadata_mut().insert("x-berth-api-addr", v);
    }
    req.set_timeout(Duration::from_secs(30));
    let resp = c
        .join(req)
        .await
        .map_err(|s| Error::Unavailable(format!("join via {addr}: {}", s.message())))?
        .into_inner();
    Ok((
        resp.id,
        resp.members.into_iter().map(Member::from).collect(),
    ))
}

/// Asks the member at `addr` for its Raft status.
///
/// # Errors
/// `Unavailable` when it cannot be reached.
pub async fn status(addr: &str, tls: &PeerTls) -> Result<StatusResponse> {
    let mut c = client(channel_to(addr, tls)?);
    let mut req = Request::new(StatusRequest {});
    req.set_timeout(Duration::from_secs(5));
    Ok(c.status(req)
        .await
        .map_err(|s| Error::Unavailable(format!("status of {addr}: {}", s.message())))?
        .into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(sizes: &[usize]) -> Vec<(Vec<u8>, bool)> {
        sizes.iter().map(|&n| (vec![0u8; n], n == 50)).collect()
    }

    #[test]
    fn pack_keeps_every_request_under_the_limit_and_the_order() {
        let (reqs, too_big) = pack(msgs(&[10, 20, 50, 30, 200, 5]), 100);
        assert_eq!(too_big, vec![(200, false)]);
        let lens: Vec<Vec<usize>> = reqs
            .iter()
            .map(|(r, _)| r.iter().map(Vec::len).collect())
            .collect();
        assert_eq!(lens, vec![vec![10, 20], vec![50], vec![30, 5]]);
        assert_eq!(reqs.iter().map(|r| r.1).collect::<Vec<_>>(), vec![0, 1, 0]);
        for (r, _) in &reqs {
            assert!(r.iter().map(|m| m.len() + 16).sum::<usize>() <= 100);
        }
    }

    proptest::proptest! {
        #[test]
        fn pack_loses_nothing_that_fits(sizes in proptest::collection::vec(0usize..300, 0..50)) {
            let (reqs, too_big) = pack(msgs(&sizes), 256);
            let sent: Vec<usize> = reqs.iter().flat_map(|(r, _)| r.iter().map(Vec::len)).collect();
            let fits: Vec<usize> = sizes.iter().copied().filter(|n| n + 16 <= 256).collect();
            proptest::prop_assert_eq!(sent, fits);
            proptest::prop_assert_eq!(too_big.len(), sizes.iter().filter(|n| *n + 16 > 256).count());
            for (r, _) in &reqs {
                proptest::prop_assert!(r.iter().map(|m| m.len() + 16).sum::<usize>() <= 256);
            }
        }
    }
}
