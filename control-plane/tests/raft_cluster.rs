//! Real 3-member Raft clusters in one process on 127.0.0.1 ports, each member with its own sled data
//! dir and gRPC peer server: elections, forwarding, linearizable reads, leader loss, restart, rejoin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_plane::store::{
    Batch, Consistency, Error, Member, ObjectStore, Op, Precondition, RaftStore, Start, StoreConfig,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

struct Node {
    name: String,
    dir: PathBuf,
    addr: SocketAddr,
    store: Arc<RaftStore>,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

fn config(
    name: &str,
    dir: &std::path::Path,
    addr: SocketAddr,
    start: Start,
    snapshot_every: u64,
) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir, name, &addr.to_string(), "", start);
    // Fast but not flappy on a loaded 2-core machine: elections after 0.5-1 s.
    cfg.driver.tick = Duration::from_millis(50);
    cfg.driver.snapshot_every = snapshot_every;
    cfg
}

async fn start(listener: TcpListener, cfg: StoreConfig) -> Node {
    let addr = listener.local_addr().unwrap();
    let (name, dir) = (cfg.name.clone(), cfg.data_dir.clone());
    let store = RaftStore::open(cfg).await.expect("store opens");
    let stop = CancellationToken::new();
    let svc = store.peer_service();
    let token = stop.clone();
    let server = tokio::spawn(async move {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, token.cancelled())
            .await;
    });
    Node {
        name,
        dir,
        addr,
        store,
        stop,
        server,
    }
}

impl Node {
    /// Stops the member as a crash would look to its peers: the port closes and the store stops.
    async fn kill(self) -> (String, PathBuf, SocketAddr) {
        self.store.shutdown().await;
        self.stop.cancel();
        // Graceful shutdown sends GOAWAY so peers reconnect to a restarted member on the same port.
        let abort = self.server.abort_handle();
        if timeout(Duration::from_secs(3), self.server).await.is_err() {
            abort.abort();
        }
        (self.name, self.dir, self.addr)
    }
}

async fn cluster(dirs: &[PathBuf], snapshot_every: u64) -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in dirs {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let members: Vec<Member> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| Member {
            id: i as u64 + 1,
            name: format!("m{}", i + 1),
            peer_addr: l.local_addr().unwrap().to_string(),
            api_addr: String::new(),
        })
        .collect();
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let addr = l.local_addr().unwrap();
        let cfg = config(
            &members[i].name,
            &dirs[i],
            addr,
            Start::InitialCluster(members.clone()),
            snapshot_every,
        );
        nodes.push(start(l, cfg).await);
    }
    nodes
}

/// Index (in `nodes`) of the leader all live members agree on.
async fn leader(nodes: &[Node]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let views: Vec<u64> = nodes
            .iter()
            .map(|n| n.store.leader_watch().borrow().leader_id)
            .collect();
        if let Some(i) = nodes.iter().position(|n| n.store.is_leader()) {
            let id = nodes[i].store.id();
            if views.iter().all(|v| *v == id) {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {views:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn put(key: &str, p: Precondition) -> Batch {
    Batch::one(Op::Put {
        key: key.into(),
        value: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": key}, "data": {"k": "v"}}),
        precondition: p,
    })
}

fn dirs(root: &tempfile::TempDir, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| root.path().join(format!("m{}", i + 1)))
        .collect()
}

async fn shutdown(nodes: Vec<Node>) {
    for n in nodes {
        n.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_a_leader_commit_and_forward() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(&dirs(&root, 3), 10_000).await;
    let l = leader(&nodes).await;
    let f = (l + 1) % 3;
    let c1 = nodes[l]
        .store
        .commit(put("/core/configmaps/default/a", Precondition::Absent))
        .await
        .unwrap();
    // A write through a follower is forwarded to the leader and answered with the leader's result.
    let c2 = nodes[f]
        .store
        .commit(put("/core/configmaps/default/b", Precondition::Absent))
        .await
        .unwrap();
    assert!(c2.revision > c1.revision);
    assert_eq!(
        c2.results[0].as_ref().unwrap()["metadata"]["resourceVersion"],
        c2.revision.to_string()
    );
    // Linearizable reads on every member see both writes at once (ReadIndex, not luck).
    for n in &nodes {
        let (list, rev) = n
            .store
            .list("/core/configmaps/", Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(list.len(), 2, "member {}", n.name);
        assert!(rev >= c2.revision);
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_read_on_follower_sees_preceding_write() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(&dirs(&root, 3), 10_000).await;
    let l = leader(&nodes).await;
    for i in 0..20 {
        let key = format!("/core/configmaps/default/k{i}");
        let c = nodes[l]
            .store
            .commit(put(&key, Precondition::None))
            .await
            .unwrap();
        for f in (0..3).filter(|f| *f != l) {
            let got = nodes[f]
                .store
                .get(&key, Consistency::Linearizable)
                .await
                .unwrap();
            assert_eq!(
                got.map(|o| o.revision),
                Some(c.revision),
                "follower {f} read {key}"
            );
        }
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precondition_failures_surface_through_followers() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(&dirs(&root, 3), 10_000).await;
    let l = leader(&nodes).await;
    let f = (l + 1) % 3;
    let key = "/core/configmaps/default/x";
    let c = nodes[f]
        .store
        .commit(put(key, Precondition::Absent))
        .await
        .unwrap();
    let e = nodes[f]
        .store
        .commit(put(key, Precondition::Absent))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        Error::PreconditionFailed {
            index: 0,
            key: key.into(),
            expected: Precondition::Absent,
            found: Some(c.revision)
        }
    );
    let e = nodes[l]
        .store
        .commit(put(key, Precondition::Revision(c.revision + 100)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::PreconditionFailed { found: Some(r), .. } if r == c.revision),
        "{e:?}"
    );
    nodes[f]
        .store
        .commit(put(key, Precondition::Revision(c.revision)))
        .await
        .unwrap();
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_keeps_every_acknowledged_write_across_restart() {
    leader_loss_case(10_000).await;
}

/// The same with a checkpoint and log compaction every 50 entries, so the restart replays a
/// compacted WAL on top of checkpointed objects (and WAL segments are purged while writes go on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_with_frequent_checkpoints_keeps_every_acknowledged_write() {
    leader_loss_case(50).await;
}

async fn leader_loss_case(snapshot_every: u64) {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(&root, 3);
    let mut nodes = cluster(&dirs, snapshot_every).await;
    let l = leader(&nodes).await;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_writers = CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..3usize {
        let stores: Vec<Arc<RaftStore>> = nodes.iter().map(|n| n.store.clone()).collect();
        let acked = acked.clone();
        let stop = stop_writers.clone();
        writers.push(tokio::spawn(async move {
            // Bounded: at most 2,000 writes per writer, and the test stops them after a few seconds.
            for i in 0..2_000usize {
                if stop.is_cancelled() {
                    break;
                }
                let key = format!("/core/configmaps/default/w{w}-{i}");
                let store = &stores[(w + i) % stores.len()];
                match timeout(
                    Duration::from_secs(5),
                    store.commit(put(&key, Precondition::Absent)),
                )
                .await
                {
                    Ok(Ok(_)) => acked.lock().unwrap().push(key),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = acked.lock().unwrap().len();
    assert!(
        before > 0,
        "writes were acknowledged before the leader died"
    );
    let dead = nodes.remove(l);
    let (dead_name, dead_dir, dead_addr) = dead.kill().await;

    let l2 = leader(&nodes).await;
    let c = nodes[l2]
        .store
        .commit(put("/core/configmaps/default/after", Precondition::Absent))
        .await
        .unwrap();
    assert!(c.revision > 0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop_writers.cancel();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before, "writes went on under the new leader");

    // Restart every member from its data dir (the dead one rejoins under its old id).
    let mut stopped = vec![(dead_name, dead_dir, dead_addr)];
    for n in nodes {
        stopped.push(n.kill().await);
    }
    let mut nodes = Vec::new();
    for (name, dir, addr) in stopped {
        let l = TcpListener::bind(addr).await.unwrap();
        // The initial cluster is ignored on restart; pass a wrong one to prove it.
        let cfg = config(
            &name,
            &dir,
            addr,
            Start::InitialCluster(Vec::new()),
            snapshot_every,
        );
        nodes.push(start(l, cfg).await);
    }
    let l3 = leader(&nodes).await;
    let (list, _) = nodes[l3]
        .store
        .list("/core/configmaps/", Consistency::Linearizable)
        .await
        .unwrap();
    let keys: std::collections::HashSet<_> = list.into_iter().map(|o| o.key).collect();
    let missing: Vec<_> = acked.iter().filter(|k| !keys.contains(*k)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(keys.contains("/core/configmaps/default/after"));
    // Every member converges on the same state.
    for n in &nodes {
        let (list, _) = n
            .store
            .list("/core/configmaps/", Consistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(list.len(), keys.len(), "member {}", n.name);
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_member_rejoins_and_catches_up_by_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let dirs = dirs(&root, 3);
    let mut nodes = cluster(&dirs, 20).await;
    let l = leader(&nodes).await;
    for i in 0..120 {
        nodes[l]
            .store
            .commit(put(
                &format!("/core/configmaps/default/s{i}"),
                Precondition::Absent,
            ))
            .await
            .unwrap();
    }
    let st = nodes[l].store.status().await.unwrap();
    assert!(st.first_index > 50, "leader compacted its log: {st:?}");

    // Wipe a follower and bring it back through the join path under the same name.
    let f = (l + 1) % 3;
    let victim = nodes.remove(f);
    let (name, dir, _) = victim.kill().await;
    std::fs::remove_dir_all(&dir).unwrap();
    let seed = nodes[0].addr.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let joined = start(listener, config(&name, &dir, addr, Start::Join(seed), 20)).await;
    assert!(joined.store.id() > 3, "a wiped member gets a fresh id");

    let target = nodes[leader(&nodes).await].store.revision();
    let deadline = Instant::now() + Duration::from_secs(20);
    while joined.store.revision() < target {
        assert!(
            Instant::now() < deadline,
            "joined member stuck at {}",
            joined.store.revision()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (list, _) = joined
        .store
        .list("/core/configmaps/", Consistency::Local)
        .await
        .unwrap();
    assert_eq!(list.len(), 120);
    let st = joined.store.status().await.unwrap();
    assert!(
        st.first_index > 50,
        "caught up by snapshot, not by replaying the log: {st:?}"
    );
    assert_eq!(
        st.members.len(),
        3,
        "old id removed, new id added: {:?}",
        st.members
    );
    // The rejoined member serves writes and linearizable reads like any other.
    let c = joined
        .store
        .commit(put("/core/configmaps/default/late", Precondition::Absent))
        .await
        .unwrap();
    let got = joined
        .store
        .get("/core/configmaps/default/late", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(got.unwrap().revision, c.revision);
    nodes.push(joined);
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_run_serves_hooks_and_shuts_down_gracefully() {
    use control_plane::server::{self, Hooks, ServerConfig};
    let root = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let mut config = ServerConfig::new("solo");
    config.data_dir = root.path().join("solo");
    config.listen_peer = peer_addr;
    config.driver.tick = Duration::from_millis(20);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let leading = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let leading2 = leading.clone();
    let hooks = Hooks {
        api: Some(Box::new(move |ctx, _listener, shutdown| {
            let _ = tx.send((ctx.store.clone(), ctx.pki.clone()));
            Box::pin(async move {
                shutdown.cancelled().await;
                Ok(())
            })
        })),
        on_leader: Some(Arc::new(move |_ctx, token| {
            leading2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { token.cancelled().await })
        })),
        grpc: None,
    };
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(server::run_with_listeners(
        config,
        peer,
        api,
        hooks,
        shutdown.clone(),
    ));
    let (store, pki) = timeout(Duration::from_secs(10), rx).await.unwrap().unwrap();
    let mut l = store.leadership();
    timeout(Duration::from_secs(10), l.wait_for(|v| *v))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.health(), control_plane::store::Health::default());
    store
        .commit(put("/core/configmaps/default/s", Precondition::Absent))
        .await
        .unwrap();
    // The peer port answers Status for members (mutual TLS).
    let tls = Some(pki.peer_client_config().unwrap());
    let st = control_plane::store::transport::status(&peer_addr.to_string(), &tls)
        .await
        .unwrap();
    assert_eq!((st.id, st.leader_id), (1, 1));
    peer_port_refuses_everyone_but_members(&peer_addr.to_string(), &pki).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while leading.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "leader hook never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    timeout(Duration::from_secs(15), run)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .unwrap();
    assert!(store
        .commit(put("/core/configmaps/default/t", Precondition::None))
        .await
        .is_err());
    // The health endpoints see the stopped driver.
    assert!(store.health().driver_stopped);
}

/// 6444 over real TLS: plaintext, no certificate, another CA's certificate, an expired certificate and
/// an agent's certificate are all refused; a joining member with a wrong token gets nothing.
async fn peer_port_refuses_everyone_but_members(
    addr: &str,
    pki: &control_plane::security::ClusterPki,
) {
    use control_plane::store::transport::status;
    use pki::{CertRequest, CertSource, Usage};
    let h2: &[&[u8]] = &[b"h2"];
    let refused = |what: &str, r: Result<_, control_plane::store::Error>| {
        let e = r.expect_err(what);
        eprintln!("{what}: {e}");
    };
    refused("plaintext", status(addr, &None).await);
    let anonymous = pki::client_config(pki.ca_pem(), None, h2).unwrap();
    refused(
        "no client certificate",
        status(addr, &Some(anonymous)).await,
    );

    let other_ca = pki::Ca::generate("other", Duration::from_secs(3600)).unwrap();
    let mut member = CertRequest::client(
        "berth:member:solo",
        &[pki::GROUP_MEMBERS],
        Duration::from_secs(3600),
    );
    member.usage = Usage::ServerAndClient;
    let forged = other_ca.issue(&member).unwrap();
    let src = CertSource::from_pem(&forged.cert_pem, &forged.key_pem).unwrap();
    let cfg = pki::client_config(pki.ca_pem(), Some(src), h2).unwrap();
    refused("another CA's certificate", status(addr, &Some(cfg)).await);

    let mut expired = member.clone();
    expired.validity = Duration::ZERO;
    let old = pki.ca.issue(&expired).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let src = CertSource::from_pem(&old.cert_pem, &old.key_pem).unwrap();
    let cfg = pki::client_config(pki.ca_pem(), Some(src), h2).unwrap();
    refused("an expired certificate", status(addr, &Some(cfg)).await);

    let node = pki
        .ca
        .issue(&CertRequest::client(
            "system:node:n1",
            &[pki::GROUP_NODES],
            Duration::from_secs(3600),
        ))
        .unwrap();
    let src = CertSource::from_pem(&node.cert_pem, &node.key_pem).unwrap();
    let cfg = pki::client_config(pki.ca_pem(), Some(src), h2).unwrap();
    refused("an agent's certificate", status(addr, &Some(cfg)).await);

    // A valid member certificate for a name the cluster does not know cannot re-join as an existing
    // member (which would remove it).
    let mut evil = CertRequest::client(
        "berth:member:evil",
        &[pki::GROUP_MEMBERS],
        Duration::from_secs(3600),
    );
    evil.usage = Usage::ServerAndClient;
    let evil = pki.ca.issue(&evil).unwrap();
    let src = CertSource::from_pem(&evil.cert_pem, &evil.key_pem).unwrap();
    let cfg = Some(pki::client_config(pki.ca_pem(), Some(src), h2).unwrap());
    let e = control_plane::store::transport::join(addr, &cfg, "solo", "127.0.0.1:1", "")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("may not add a member named solo"),
        "{e}"
    );
    let st = status(addr, &Some(pki.peer_client_config().unwrap()))
        .await
        .unwrap();
    assert_eq!(st.members.len(), 1, "the member is still there");

    // Joining: a wrong token fails the server's proof check and gets no keys; the right one works.
    let id = control_plane::security::MemberIdentity {
        name: "s9".into(),
        sans: vec!["127.0.0.1".into()],
        validity: Duration::from_secs(3600),
    };
    let wrong = pki::Token::parse("abcdef.0123456789abcdef").unwrap();
    let e = control_plane::bootstrap::fetch_member_keys(addr, &wrong, &id)
        .await
        .unwrap_err();
    eprintln!("wrong token: {e:#}");
    let same_id_wrong_secret = pki::Token {
        id: pki.token.id.clone(),
        secret: "0000000000000000".into(),
    };
    let e = control_plane::bootstrap::fetch_member_keys(addr, &same_id_wrong_secret, &id)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("does not hold the token"),
        "{e:#}"
    );
    let keys = control_plane::bootstrap::fetch_member_keys(addr, &pki.token, &id)
        .await
        .unwrap();
    assert_eq!(keys.ca_cert_pem, pki.ca_pem());
}
