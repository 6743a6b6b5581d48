//! Agent security with real TLS: the one-time token join and the node certificate, who may Join and
//! Sync, port 10250 serving only the API server, renewal. The process tests run `berth-agent` (root
//! and crun or runc needed; they skip otherwise); the protocol tests run in process.

#[macro_use]
mod common;

use common::skip_reason;

use control_plane::store::{Batch, Consistency, MemStore, ObjectStore, Op, Precondition};
use node_agent::agent::identity;
use proto::agentpb::agent_service_client::AgentServiceClient;
use proto::agentpb::{agent_message, AgentMessage, Hello, JoinRequest};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A `berth-agent` process, killed on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_agent(
    server: &str,
    data: &Path,
    http: std::net::SocketAddr,
    token: Option<&str>,
) -> Agent {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth-agent"));
    cmd.args(["--server", server, "--node-name", "n1"])
        .arg("--data-dir")
        .arg(data)
        .args(["--node-ip", "127.0.0.1", "--network", "none"])
        .args(["--listen", &http.to_string()])
        .env("RUST_LOG", "warn")
        .env_remove("BERTH_TOKEN");
    if let Some(t) = token {
        cmd.env("BERTH_TOKEN", t);
    }
    Agent(cmd.spawn().unwrap())
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn heartbeat(node: &Value) -> String {
    node["status"]["conditions"][0]["lastHeartbeatTime"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn node(store: &Arc<dyn ObjectStore>, name: &str) -> Option<Value> {
    store
        .get(&format!("/core/nodes//{name}"), Consistency::Local)
        .await
        .unwrap()
        .map(|o| o.value)
}

fn client_config(ca: &str, cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let source = cert.map(|(c, k)| pki::CertSource::from_pem(c, k).unwrap());
    pki::client_config(ca, source, &[b"http/1.1"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_joins_once_with_the_token_and_10250_serves_only_the_api_server() {
    require_root!();
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    let (_pki_dir, pki) = common::new_pki(Duration::from_secs(3600));
    let (addr, _server) = common::serve_agents(store.clone(), pki.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let http = free_port();
    let token = pki.token.to_string();
    let agent = spawn_agent(&addr.to_string(), data.path(), http, Some(&token));
    let n1 = wait_for("node n1 heartbeating", 30, async || {
        node(&store, "n1")
            .await
            .filter(|n| !heartbeat(n).is_empty())
    })
    .await;
    assert_eq!(n1["status"]["addresses"][0]["address"], "127.0.0.1");

    // The node's identity: 0700 dir, 0600 files, a certificate naming the node.
    let dir = data.path().join("pki");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for f in ["ca.crt", "node.crt", "node.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    let cert_pem = std::fs::read_to_string(dir.join("node.crt")).unwrap();
    let key_pem = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let who = pki::identity_of(&pki::parse_certs(&cert_pem).unwrap()[0]).unwrap();
    assert_eq!(who.user, "system:node:n1");
    assert_eq!(who.groups, vec![pki::GROUP_NODES.to_string()]);
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
        pki.ca_pem()
    );

    // 10250: the API server's certificate works (the agent is verified by its IP)...
    let apiserver = pki.agent_client_config().unwrap();
    let (code, body) = wait_for("10250 up", 30, async || {
        common::https(http, apiserver.clone(), "GET", "/images", b"")
            .await
            .ok()
    })
    .await;
    assert_eq!(code, 200, "{body}");
    // ...and nothing else: no certificate, another CA's, an expired one, the node's own, a user's.
    let ca = pki.ca_pem();
    let anonymous = common::https(http, client_config(ca, None), "GET", "/images", b"").await;
    assert!(anonymous.is_err(), "anonymous: {anonymous:?}");
    let other_ca = pki::Ca::generate("other", Duration::from_secs(3600)).unwrap();
    let forged = other_ca
        .issue(&pki::CertRequest::client(
            pki::APISERVER_USER,
            &[],
            Duration::from_secs(3600),
        ))
        .unwrap();
    let r = common::https(
        http,
        client_config(ca, Some((&forged.cert_pem, &forged.key_pem))),
        "GET",
        "/images",
        b"",
    )
    .await;
    assert!(r.is_err(), "another CA: {r:?}");
    let expired = pki
        .ca
        .issue(&pki::CertRequest::client(
            pki::APISERVER_USER,
            &[],
            Duration::from_secs(1),
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = common::https(
        http,
        client_config(ca, Some((&expired.cert_pem, &expired.key_pem))),
        "GET",
        "/images",
        b"",
    )
    .await;
    assert!(r.is_err(), "expired: {r:?}");
    let r = common::https(
        http,
        client_config(ca, Some((&cert_pem, &key_pem))),
        "POST",
        "/images/load",
        b"x",
    )
    .await
    .unwrap();
    assert_eq!(r.0, 403, "the node's own certificate: {r:?}");
    let admin = pki.issue_user_cert("admin", &[pki::GROUP_MASTERS]).unwrap();
    let r = common::https(
        http,
        client_config(ca, Some((&admin.cert_pem, &admin.key_pem))),
        "GET",
        "/containerLogs/default/p/c",
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.0, 403, "a user's certificate: {r:?}");

    // A restart without the token joins with the stored certificate (no new one is issued).
    drop(agent);
    let before = heartbeat(&node(&store, "n1").await.unwrap());
    let _agent = spawn_agent(&addr.to_string(), data.path(), http, None);
    wait_for("a heartbeat after the restart", 30, async || {
        node(&store, "n1").await.filter(|n| heartbeat(n) > before)
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.join("node.crt")).unwrap(),
        cert_pem
    );

    // A node with neither a certificate nor a token cannot start.
    let empty = tempfile::tempdir().unwrap();
    let mut lost = spawn_agent(&addr.to_string(), empty.path(), free_port(), None);
    let status = wait_for("the tokenless agent to exit", 30, async || {
        lost.0.try_wait().unwrap()
    })
    .await;
    assert!(!status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_certificate_is_renewed_in_place_before_it_expires() {
    require_root!();
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    // Certificates live 24 s: the agent renews at about 16 s.
    let (_pki_dir, pki) = common::new_pki(Duration::from_secs(24));
    let (addr, _server) = common::serve_agents(store.clone(), pki.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let http = free_port();
    let _agent = spawn_agent(
        &addr.to_string(),
        data.path(),
        http,
        Some(&pki.token.to_string()),
    );
    let crt = data.path().join("pki/node.crt");
    let first = wait_for("the node certificate", 20, async || {
        std::fs::read_to_string(&crt).ok()
    })
    .await;
    let renewed = wait_for("the renewed certificate", 22, async || {
        std::fs::read_to_string(&crt).ok().filter(|c| *c != first)
    })
    .await;
    assert!(pki::not_after(&renewed).unwrap() > pki::not_after(&first).unwrap());
    // 10250 presents the new certificate without a restart.
    let (config, seen) = pki::insecure_client_config(&[b"http/1.1"]);
    let _ = common::https(http, config, "GET", "/images", b"").await;
    assert_eq!(
        seen.get().unwrap(),
        pki::parse_certs(&renewed).unwrap()[0].to_vec()
    );
}

async fn anonymous_channel(addr: &str, ca: &str) -> tonic::transport::Channel {
    let config = pki::client_config(ca, None, &[b"h2"]).unwrap();
    identity::channel(addr, config).await.unwrap()
}

fn join_req(node: &str, token: &str, csr: &str) -> JoinRequest {
    JoinRequest {
        token: token.into(),
        node_name: node.into(),
        node_ip: "127.0.0.1".into(),
        node_json: "{}".into(),
        csr_pem: csr.into(),
    }
}

fn hello(node: &str) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(Hello {
            node_name: node.into(),
            resume_revision: 0,
        })),
    }
}

#[tokio::test]
async fn joins_and_syncs_are_refused_to_the_wrong_callers() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    let (_pki_dir, pki) = common::new_pki(Duration::from_secs(3600));
    let (addr, _server) = common::serve_agents(store.clone(), pki.clone()).await;
    let addr = addr.to_string();
    let token = pki.token.clone();

    // Hello: a server that does not hold the token the agent has cannot prove it.
    let wrong = pki::Token {
        id: token.id.clone(),
        secret: "0000000000000000".into(),
    };
    let e = identity::verify_hello(&addr, &wrong).await.unwrap_err();
    assert!(e.to_string().contains("does not hold"), "{e:#}");
    let ca = identity::verify_hello(&addr, &token).await.unwrap();
    assert_eq!(ca, pki.ca_pem());

    // Join: a wrong secret or no token at all is unauthenticated.
    let mut anon = AgentServiceClient::new(anonymous_channel(&addr, &ca).await);
    let (csr, key) = pki::new_csr("whatever").unwrap();
    for t in [format!("{}.{}", token.id, wrong.secret), String::new()] {
        let e = anon.join(join_req("n2", &t, &csr)).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
        assert!(!e.message().contains(&token.secret));
    }
    let resp = anon
        .join(join_req("n2", &token.to_string(), &csr))
        .await
        .unwrap()
        .into_inner();
    let n2 = pki::CertSource::from_pem(&resp.cert_pem, &key).unwrap();
    let as_n2 = pki::client_config(&ca, Some(n2), &[b"h2"]).unwrap();
    let mut n2c = AgentServiceClient::new(identity::channel(&addr, as_n2).await.unwrap());

    // Sync: only as the node the certificate names.
    let e = n2c
        .sync(futures::stream::iter(vec![hello("n1")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    let e = anon
        .sync(futures::stream::iter(vec![hello("n2")]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    use futures::StreamExt as _;
    let outbound = futures::stream::iter(vec![hello("n2")]).chain(futures::stream::pending());
    let mut inbound = n2c.sync(outbound).await.unwrap().into_inner();
    assert!(inbound.message().await.unwrap().unwrap().full);

    // Join: n2's certificate renews n2 (no token) but cannot join as n1.
    let (csr2, _) = pki::new_csr("n2").unwrap();
    let renewed = n2c
        .join(join_req("n2", "", &csr2))
        .await
        .unwrap()
        .into_inner();
    assert!(!renewed.cert_pem.is_empty());
    let e = n2c.join(join_req("n1", "", &csr2)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // A bootstrap token cannot take over a live node; the cluster token can, and new names are fine.
    let boot = "abcdef.0123456789abcdef";
    store
        .commit(Batch::one(Op::Put {
            key: "/core/secrets/kube-system/bootstrap-token-abcdef".into(),
            value: json!({"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                "stringData": {"token-id": "abcdef", "token-secret": "0123456789abcdef",
                               "usage-bootstrap-authentication": "true"}}),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    let now = apimachinery::time::rfc3339(std::time::SystemTime::now());
    let mut live = node(&store, "n2").await.unwrap();
    live["status"]["conditions"] =
        json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": now}]);
    store
        .commit(Batch::one(Op::Put {
            key: "/core/nodes//n2".into(),
            value: live,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    let e = anon.join(join_req("n2", boot, &csr)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");
    anon.join(join_req("n3", boot, &csr)).await.unwrap();
    anon.join(join_req("n2", &token.to_string(), &csr))
        .await
        .unwrap();
}
