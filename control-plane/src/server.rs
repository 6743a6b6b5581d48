//! Process wiring of `berth-server`: opens the Raft store, serves the peer gRPC port, and runs the
//! pieces the lead attaches through [`Hooks`] (the Kubernetes API, agent gRPC services, leader-only
//! controllers) until shutdown. No logic of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::security::{ClusterPki, MemberIdentity};
use crate::store::{BoxFuture, DriverConfig, Member, RaftStore, Start, StoreConfig};

/// Settings of one `berth-server` member (the command-line flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Member name, unique in the cluster.
    pub name: String,
    /// sled data directory.
    pub data_dir: PathBuf,
    /// Where the peer gRPC port (Raft + agents) listens.
    pub listen_peer: SocketAddr,
    /// Where the Kubernetes API listens.
    pub listen_api: SocketAddr,
    /// Peer address others dial; defaults to this member's `--initial-cluster` entry, else `listen_peer`.
    pub advertise_peer: Option<String>,
    /// API address clients are sent to; defaults to the advertised peer host with the API port.
    pub advertise_api: Option<String>,
    /// `(name, peer address)` of every initial member, in order (ids are 1-based positions).
    pub initial_cluster: Vec<(String, String)>,
    /// Peer address of a running member to join through (instead of `initial_cluster`).
    pub join: Option<String>,
    /// Raft timing and compaction.
    pub driver: DriverConfig,
    /// The cluster token: the first member makes one when not given; others need it to join.
    pub token: Option<pki::Token>,
    /// Validity of the certificates this member issues (its own, agents', users').
    pub cert_validity: std::time::Duration,
    /// Extra names and IPs for this member's certificate.
    pub tls_sans: Vec<String>,
}

impl ServerConfig {
    /// A config with the default ports and data dir for member `name`.
    pub fn new(name: &str) -> Self {
        ServerConfig {
            name: name.to_string(),
            data_dir: PathBuf::from("/var/lib/berth/server"),
            listen_peer: ([0, 0, 0, 0], 6444).into(),
            listen_api: ([0, 0, 0, 0], 6443).into(),
            advertise_peer: None,
            advertise_api: None,
            initial_cluster: Vec::new(),
            join: None,
            driver: DriverConfig::default(),
            token: None,
            cert_validity: crate::security::DEFAULT_VALIDITY,
            tls_sans: Vec::new(),
        }
    }

    /// The peer address this member advertises.
    pub fn peer_addr(&self) -> String {
        if let Some(a) = &self.advertise_peer {
            return a.clone();
        }
        if let Some((_, a)) = self.initial_cluster.iter().find(|(n, _)| *n == self.name) {
            return a.clone();
        }
        self.listen_peer.to_string()
    }

    /// The API address this member advertises.
    pub fn api_addr(&self) -> String {
        if let Some(a) = &self.advertise_api {
            return a.clone();
        }
        let peer = self.peer_addr();
        let host = peer.rsplit_once(':').map(|(h, _)| h).unwrap_or(&peer);
        if host.is_empty() || host == "0.0.0.0" {
            return self.listen_api.to_string();
        }
        format!("{host}:{}", self.listen_api.port())
    }

    fn store_config(&self) -> anyhow::Result<StoreConfig> {
        let start = match (&self.join, self.initial_cluster.is_empty()) {
            (Some(via), _) => Start::Join(via.clone()),
            (None, false) => Start::InitialCluster(
                self.initial_cluster
                    .iter()
                    .enumerate()
                    .map(|(i, (name, peer))| Member {
                        id: i as u64 + 1,
                        name: name.clone(),
                        peer_addr: peer.clone(),
                        // Other members are assumed to use the same API port on their peer host.
                        api_addr: if *name == self.name {
                            self.api_addr()
                        } else {
                            let host = peer.rsplit_once(':').map(|(h, _)| h).unwrap_or(peer);
                            format!("{host}:{}", self.listen_api.port())
                        },
                    })
                    .collect(),
            ),
            // A lone member with no flags is a one-member cluster of itself.
            (None, true) => Start::InitialCluster(vec![Member {
                id: 1,
                name: self.name.clone(),
                peer_addr: self.peer_addr(),
                api_addr: self.api_addr(),
            }]),
        };
        let mut cfg = StoreConfig::new(
            &self.data_dir,
            &self.name,
            &self.peer_addr(),
            &self.api_addr(),
            start,
        );
        cfg.driver = self.driver.clone();
        Ok(cfg)
    }

    /// Who this member is, for its certificate: every address it is reached at.
    pub fn member_identity(&self) -> MemberIdentity {
        let host = |a: &str| -> String {
            let a = a
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            match a.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok() => h.to_string(),
                _ => a.to_string(),
            }
        };
        let mut sans = vec![host(&self.peer_addr()), host(&self.api_addr())];
        sans.push(self.listen_api.ip().to_string());
        sans.push(self.listen_peer.ip().to_string());
        sans.extend(self.tls_sans.iter().cloned());
        // Every initial member's name and address, so any member's certificate is valid for a client
        // that dials the cluster by whichever member's address it was given.
        for (name, peer) in &self.initial_cluster {
            sans.push(name.clone());
            sans.push(host(peer));
        }
        sans.retain(|s| !s.is_empty() && s != "0.0.0.0" && s != "::");
        sans.sort();
        sans.dedup();
        MemberIdentity {
            name: self.name.clone(),
            sans,
            validity: self.cert_validity,
        }
    }

    /// The https URL of this member's API that a local client can use.
    pub fn api_url(&self) -> String {
        let a = self.api_addr();
        match a.strip_prefix("0.0.0.0:") {
            Some(port) => format!("https://127.0.0.1:{port}"),
            None => format!("https://{a}"),
        }
    }

    /// Where a member without a PKI gets the cluster keys: the `--join` member, or the first initial
    /// member; `None` when this member is the first (it makes the CA).
    fn pki_source(&self) -> Option<String> {
        if let Some(via) = &self.join {
            return Some(via.clone());
        }
        match self.initial_cluster.first() {
            Some((first, addr)) if *first != self.name => Some(addr.clone()),
            _ => None,
        }
    }
}

/// Opens this member's PKI, or makes it (the first member), or fetches the cluster keys from a running
/// member with the token (everyone else), retrying until that member answers or `shutdown`.
///
/// # Errors
/// When the PKI on disk is damaged, a joining member has no token, or shutdown came first.
pub async fn setup_pki(
    config: &ServerConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<ClusterPki> {
    let identity = config.member_identity();
    if let Some(p) = ClusterPki::open(&config.data_dir, &identity)? {
        if config.token.as_ref().is_some_and(|t| *t != p.token) {
            tracing::warn!("the given cluster token differs from the one in the data dir; using the data dir's");
        }
        return Ok(p);
    }
    let Some(source) = config.pki_source() else {
        let p = ClusterPki::create(&config.data_dir, &identity, config.token.clone())?;
        tracing::info!(token_file = %p.dir().join("token").display(),
            "created the cluster CA; agents and members join with the token in this file");
        return Ok(p);
    };
    let Some(token) = &config.token else {
        bail!(
            "member {} joins through {source} and needs the cluster token: set BERTH_TOKEN or \
             --token-file (the first member wrote it to <its data dir>/pki/token)",
            config.name
        );
    };
    let mut attempt = 0u32;
    loop {
        match crate::bootstrap::fetch_member_keys(&source, token, &identity).await {
            Ok(keys) => {
                tracing::info!(via = %source, "got the cluster keys");
                return Ok(ClusterPki::adopt(
                    &config.data_dir,
                    &identity,
                    keys,
                    token.clone(),
                )?);
            }
            Err(e) => {
                attempt += 1;
                // A refused token does not get better by waiting; an unreachable first member may.
                if format!("{e:#}").contains("does not hold the token") && attempt >= 5 {
                    return Err(e.context("the cluster refused this member's token"));
                }
                if attempt % 10 == 1 {
                    tracing::warn!(via = %source, error = %format!("{e:#}"), attempt,
                        "waiting for a running member to hand out the cluster keys");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => bail!("shut down before the cluster keys arrived"),
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

/// Parses `--initial-cluster name=addr,name=addr`.
///
/// # Errors
/// When an entry is not `name=addr` or a name repeats.
pub fn parse_initial_cluster(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, addr)) = part.split_once('=') else {
            bail!("initial cluster entry {part:?} is not name=addr");
        };
        if out.iter().any(|(n, _)| n == name) {
            bail!("initial cluster names {name} twice");
        }
        out.push((name.to_string(), addr.to_string()));
    }
    Ok(out)
}

/// What the attached pieces get: the store and the member's settings.
#[derive(Clone)]
pub struct Context {
    /// The replicated store (also usable as `Arc<dyn ObjectStore>`).
    pub store: Arc<RaftStore>,
    /// The member's settings (token, addresses).
    pub config: Arc<ServerConfig>,
    /// The cluster PKI as this member holds it.
    pub pki: Arc<ClusterPki>,
}

/// Adds gRPC services next to `RaftPeer` on the peer port.
pub type GrpcHook = Box<dyn FnOnce(&Context, &mut tonic::service::RoutesBuilder) + Send>;
/// Serves the Kubernetes API on the bound listener until the token is cancelled.
pub type ApiHook = Box<
    dyn FnOnce(Context, TcpListener, CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>
        + Send,
>;
/// Leader-only work: started each time this member becomes leader, its token cancelled when it stops leading.
pub type LeaderHook =
    Arc<dyn Fn(Context, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

/// Extension points where the lead attaches the API, the agents service and the controllers.
#[derive(Default)]
pub struct Hooks {
    /// Extra gRPC services on the peer port (e.g. the agents service).
    pub grpc: Option<GrpcHook>,
    /// The Kubernetes API (e.g. `|ctx, l, t| Box::pin(api::serve(l, ctx.store, t))`).
    pub api: Option<ApiHook>,
    /// Leader-only controllers and scheduler.
    pub on_leader: Option<LeaderHook>,
}

/// Runs one member until `shutdown` is cancelled: opens (or bootstraps, or joins) the store, serves the
/// peer port and the hooks, then stops everything in order and closes the store.
///
/// # Errors
/// When a port cannot be bound or the store cannot be opened.
pub async fn run(
    config: ServerConfig,
    hooks: Hooks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let peer_listener = TcpListener::bind(config.listen_peer)
        .await
        .with_context(|| format!("failed to bind peer port {}", config.listen_peer))?;
    let api_listener = TcpListener::bind(config.listen_api)
        .await
        .with_context(|| format!("failed to bind API port {}", config.listen_api))?;
    run_with_listeners(config, peer_listener, api_listener, hooks, shutdown).await
}

/// [`run`] over listeners the caller bound (tests bind `127.0.0.1:0`).
///
/// # Errors
/// When the store cannot be opened.
pub async fn run_with_listeners(
    config: ServerConfig,
    peer_listener: TcpListener,
    api_listener: TcpListener,
    hooks: Hooks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut store_config = config.store_config()?;
    tracing::info!(name = %config.name, peer = %store_config.peer_addr, api = %store_config.api_addr,
        data_dir = %config.data_dir.display(), "starting berth-server");
    let tracker = TaskTracker::new();
    let pki = Arc::new(setup_pki(&config, &shutdown).await?);
    let kubeconfig = pki.write_admin_kubeconfig(&config.api_url())?;
    tracing::info!(path = %kubeconfig.display(), "wrote the admin kubeconfig");
    store_config.tls = Some(pki.peer_client_config()?);
    // Peers that send before the peer port serves (a joining member) see refused connections and retry.
    let store = RaftStore::open(store_config)
        .await
        .with_context(|| format!("failed to open store in {}", config.data_dir.display()))?;
    let ctx = Context {
        store: store.clone(),
        config: Arc::new(config),
        pki: pki.clone(),
    };

    let mut routes = tonic::service::RoutesBuilder::default();
    routes.add_service(store.peer_service());
    routes.add_service(crate::bootstrap::service(pki.clone(), store.clone()));
    if let Some(grpc) = hooks.grpc {
        grpc(&ctx, &mut routes);
    }
    let grpc_shutdown = shutdown.clone();
    let grpc_stopping = shutdown.clone();
    let peer_tls = pki.peer_server_config()?;
    tracing::info!(addr = %peer_listener.local_addr()?, "serving the peer port (mutual TLS)");
    tracker.spawn(async move {
        let incoming = pki::net::incoming(peer_listener, peer_tls);
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, grpc_shutdown.cancelled())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "peer gRPC server failed");
        }
        if !grpc_stopping.is_cancelled() {
            exit_member("the peer gRPC server");
        }
    });

    tracker.spawn(rotate_certs(pki.clone(), shutdown.clone()));

    if let Some(api) = hooks.api {
        let fut = api(ctx.clone(), api_listener, shutdown.clone());
        let stopping = shutdown.clone();
        tracker.spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!(error = %e, "API server failed");
            }
            if !stopping.is_cancelled() {
                exit_member("the API server");
            }
        });
    }

    if let Some(on_leader) = hooks.on_leader {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let inner = tracker.clone();
        tracker.spawn(async move {
            let mut leading = ctx.store.leadership();
            let mut current: Option<CancellationToken> = None;
            loop {
                let is_leader = *leading.borrow_and_update();
                match (is_leader, &current) {
                    (true, None) => {
                        tracing::info!("became leader: starting leader-only work");
                        let token = shutdown.child_token();
                        inner.spawn(on_leader(ctx.clone(), token.clone()));
                        current = Some(token);
                    }
                    (false, Some(token)) => {
                        tracing::info!("lost leadership: stopping leader-only work");
                        token.cancel();
                        current = None;
                    }
                    _ => {}
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = leading.changed() => if changed.is_err() { break },
                }
            }
            if let Some(t) = current {
                t.cancel();
            }
        });
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    tracker.close();
    // In-flight RPCs and reconciles get a bounded grace period (STYLE rule 27: a second signal forces exit).
    if tokio::time::timeout(std::time::Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after 10 s; stopping the store anyway");
    }
    ctx.store.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Renews this member's certificates before they expire, and picks up ones written by
/// `berth-server certs rotate`, without a restart: new handshakes use them at once. The command's
/// request is looked for every second; the full renewal check runs every tenth of the validity (at
/// most a minute apart).
async fn rotate_certs(pki: Arc<ClusterPki>, shutdown: CancellationToken) {
    let every = (pki.validity() / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        if last.elapsed() < every && !pki.rotation_requested() {
            continue;
        }
        last = tokio::time::Instant::now();
        let p = pki.clone();
        match tokio::task::spawn_blocking(move || p.rotate(false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "certificate rotation failed; retrying"),
            Err(e) => tracing::error!(error = %e, "certificate rotation task failed"),
        }
    }
}

/// A server that ends before shutdown leaves a member that looks alive to Raft but serves nothing:
/// exit, as a dead driver or controller does, so a supervisor restarts it and clients fail over.
fn exit_member(what: &str) -> ! {
    apimachinery::runtime::exit_after_death(what, "stopped before shutdown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_in_order() {
        let c = parse_initial_cluster("a=10.0.0.1:6444, b=10.0.0.2:6444").unwrap();
        assert_eq!(
            c,
            vec![
                ("a".to_string(), "10.0.0.1:6444".to_string()),
                ("b".to_string(), "10.0.0.2:6444".to_string())
            ]
        );
        assert!(parse_initial_cluster("a=x,a=y").is_err());
        assert!(parse_initial_cluster("a").is_err());
    }

    #[test]
    fn advertised_addresses_default_from_initial_cluster() {
        let mut c = ServerConfig::new("b");
        c.initial_cluster = parse_initial_cluster("a=127.0.0.1:7001,b=127.0.0.2:7002").unwrap();
        assert_eq!(c.peer_addr(), "127.0.0.2:7002");
        assert_eq!(c.api_addr(), "127.0.0.2:6443");
        let sans = c.member_identity().sans;
        for want in ["a", "b", "127.0.0.1", "127.0.0.2"] {
            assert!(sans.contains(&want.to_string()), "{want} in {sans:?}");
        }
        match c.store_config().unwrap().start {
            Start::InitialCluster(ms) => {
                assert_eq!(ms.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2])
            }
            Start::Join(_) => panic!("expected initial cluster"),
        }
    }
}
