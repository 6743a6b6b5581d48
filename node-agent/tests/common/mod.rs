//! What the agent tests share: a cluster PKI, the agents and bootstrap services over mutual TLS (as
//! berth-server serves them on 6444), and raw HTTPS requests to an agent's 10250.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use control_plane::security::{ClusterPki, MemberIdentity};
use control_plane::store::ObjectStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A cluster PKI in a temp dir; the member certificate names 127.0.0.1. Node certificates last
/// `validity`.
pub fn new_pki(validity: Duration) -> (tempfile::TempDir, Arc<ClusterPki>) {
    pki::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let id = MemberIdentity {
        name: "s1".into(),
        sans: vec!["127.0.0.1".into()],
        validity,
    };
    let pki = Arc::new(ClusterPki::create(dir.path(), &id, None).unwrap());
    (dir, pki)
}

/// Serves the agents and bootstrap services over `store` on a fresh loopback port, with TLS (client
/// certificates optional and verified), as berth-server's peer port.
pub async fn serve_agents(
    store: Arc<dyn ObjectStore>,
    pki: Arc<ClusterPki>,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let agents = control_plane::agents::service(
        store.clone(),
        control_plane::agents::AgentsConfig {
            pki: Some(pki.clone()),
            servers: vec![],
            ..Default::default()
        },
    );
    let bootstrap = control_plane::bootstrap::service(pki.clone(), store);
    let tls = pki.peer_server_config().unwrap();
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(agents)
            .add_service(bootstrap)
            .serve_with_incoming(pki::net::incoming(listener, tls))
            .await
            .unwrap();
    });
    (addr, server)
}

/// One HTTP/1.1 request over TLS with `config`; `Err` when the TLS handshake or the exchange fails
/// (a refused client certificate shows up as either).
pub async fn https(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(10),
        pki::net::connect(&addr.to_string(), config),
    )
    .await??;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = vec![];
    let read = tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out)).await?;
    match read {
        Ok(_) => {}
        // A peer that closes without close_notify after a full answer is still an answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {out:?}")))?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Why a real-container test cannot run here (not root, no OCI runtime), if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if node_agent::runtime::linux::find_oci_runtime().is_none() {
        return Some("neither crun nor runc installed".into());
    }
    None
}

/// Returns from the test, saying why, when [`skip_reason`] gives a reason.
macro_rules! require_root {
    () => {
        if let Some(r) = skip_reason() {
            eprintln!("skipping: {r}");
            return;
        }
    };
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test images, built once per process by tests/images/build.sh: (OCI tar, OCI dir, docker-save
/// tar).
pub fn test_images() -> Vec<PathBuf> {
    static ONCE: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let out = workspace().join("target/test-images");
        let o = std::process::Command::new(workspace().join("tests/images/build.sh"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "build.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(PathBuf::from)
            .collect()
    })
    .clone()
}
