//! The agent's main loop: Join, then a Sync stream to one of the servers (failing over to the next),
//! heartbeats every 2 s, desired pods into the pod manager, pod status changes back, network views into
//! the node network.

pub mod identity;
pub mod node_info;

use crate::images::ImageStore;
use crate::network::node::{NodeNetwork, NodeNetworkConfig};
use crate::pod::{ClusterSettings, DesiredPod, Lookup, PodManager, StoreImages};
use crate::runtime::linux::LinuxRuntime;
use crate::runtime::netns_basic::{LoopbackOnly, Network, NetworkHook};
use crate::runtime::ContainerRuntime;
use identity::NodeIdentity;
use proto::agentpb::agent_service_client::AgentServiceClient;
use proto::agentpb::{
    agent_message, AgentMessage, Heartbeat, Hello, JoinRequest, JoinResponse, PodStatus,
    ServerMessage,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the agent runs; mirrors the `berth-agent` flags.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// gRPC addresses of the servers (`host:6444`), tried in order.
    pub servers: Vec<String>,
    /// Join token (`<id>.<secret>`), used only when no node certificate is stored yet.
    pub token: Option<pki::Token>,
    /// This node's name.
    pub node_name: String,
    /// State directory.
    pub data_dir: PathBuf,
    /// Address of this node.
    pub node_ip: String,
    /// Address of the logs/exec/images HTTP endpoint.
    pub listen: SocketAddr,
    /// `cni` (bridge + overlay + services + DNS from `crate::network`) or `none` (loopback-only pods).
    pub network: String,
    /// The binary started as `supervise` for each container (normally this executable).
    pub supervisor_exe: PathBuf,
    /// How often containers' CPU and memory are sampled (at most [`crate::metrics::MAX_INTERVAL`]).
    pub metrics_interval: Duration,
}

/// Commands to the pod manager thread.
pub enum Command {
    /// A full desired state.
    Full(Vec<DesiredPod>),
    /// Deltas: upserts and removals (by UID).
    Delta(Vec<DesiredPod>, Vec<String>),
    /// Report every pod again (after a reconnect).
    ResendAll,
    /// New cluster settings.
    Settings(ClusterSettings),
    /// Services from the network view (for service-link environment variables).
    Services(Vec<crate::pod::spec::ServiceEnv>),
}

pub use crate::server::AgentState;

fn desired(u: &proto::agentpb::PodUpdate) -> Option<DesiredPod> {
    let pod: Value = serde_json::from_str(&u.pod_json).ok()?;
    let objects = u
        .objects_json
        .iter()
        .filter_map(|o| serde_json::from_str(o).ok())
        .collect();
    Some(DesiredPod {
        pod,
        objects,
        service_account_token: u.service_account_token.clone(),
    })
}

/// Runs the pod manager on its own thread: applies commands, syncs every 250 ms (sooner on a command),
/// and sends status reports to `reports`.
pub fn spawn_pod_manager(
    manager: PodManager,
    commands: std::sync::mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<PodStatus>,
    lookup: Arc<Mutex<Lookup>>,
    shutdown: CancellationToken,
) -> std::thread::JoinHandle<()> {
    let stopping = shutdown.clone();
    std::thread::spawn(move || {
        let end = crate::critical::supervise(
            || stopping.is_cancelled(),
            move || pod_manager_loop(manager, commands, reports, lookup, shutdown),
        );
        crate::critical::die("pod manager", &end);
    })
}

fn pod_manager_loop(
    mut manager: PodManager,
    commands: std::sync::mpsc::Receiver<Command>,
    reports: mpsc::UnboundedSender<PodStatus>,
    lookup: Arc<Mutex<Lookup>>,
    shutdown: CancellationToken,
) {
    {
        // Without a desired state the manager must not stop adopted pods; wait for the first full one.
        let mut have_full = false;
        while !shutdown.is_cancelled() {
            match commands.recv_timeout(Duration::from_millis(250)) {
                Ok(cmd) => {
                    let mut next = Some(cmd);
                    while let Some(c) = next {
                        match c {
                            Command::Full(pods) => {
                                have_full = true;
                                manager.set_desired(pods);
                            }
                            Command::Delta(up, rm) => {
                                for d in up {
                                    manager.upsert(d);
                                }
                                for uid in rm {
                                    manager.remove(&uid);
                                }
                            }
                            Command::ResendAll => manager.reset_reported(),
                            Command::Settings(s) => manager.set_settings(s),
                            Command::Services(s) => manager.set_services(s),
                        }
                        next = commands.try_recv().ok();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if !have_full {
                continue;
            }
            #[allow(clippy::disallowed_methods)]
            let now = SystemTime::now();
            for r in manager.sync(now) {
                let _ = reports.send(PodStatus {
                    namespace: r.namespace,
                    name: r.name,
                    uid: r.uid,
                    status_json: r.status.to_string(),
                });
            }
            // A reader that panicked holding the lock left a whole value behind: replace it anyway.
            *lookup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = manager.lookup();
        }
    }
}

fn join_request(cfg: &AgentConfig, token: String, csr_pem: String) -> JoinRequest {
    let status = node_info::node_status(&cfg.node_name, &cfg.node_ip, "crun");
    let node_json = serde_json::json!({"metadata": {"labels": {"kubernetes.io/hostname": cfg.node_name}}, "status": status});
    JoinRequest {
        token,
        node_name: cfg.node_name.clone(),
        node_ip: cfg.node_ip.clone(),
        node_json: node_json.to_string(),
        csr_pem,
    }
}

/// First start: proves the server holds the token (Hello), then trades the token and a CSR for the
/// node certificate over TLS verified against the CA Hello gave. The only use of the token.
async fn bootstrap(
    cfg: &AgentConfig,
    addr: &str,
    token: &pki::Token,
) -> anyhow::Result<NodeIdentity> {
    let ca = identity::verify_hello(addr, token).await?;
    let config = pki::client_config(&ca, None, &[identity::ALPN_H2])?;
    let mut client = AgentServiceClient::new(identity::channel(addr, config).await?);
    let (csr, key) = pki::new_csr(&format!("{}{}", pki::NODE_USER_PREFIX, cfg.node_name))?;
    let resp = client
        .join(join_request(cfg, token.to_string(), csr))
        .await?
        .into_inner();
    if resp.cert_pem.is_empty() {
        anyhow::bail!("{addr} issued no node certificate");
    }
    let id = NodeIdentity::store(&cfg.data_dir, &ca, &resp.cert_pem, &key)?;
    tracing::info!(server = %addr, "got the node certificate; the token is not used again");
    Ok(id)
}

/// Join (every start and reconnect) with the node certificate: no token.
async fn join(
    cfg: &AgentConfig,
    id: &NodeIdentity,
    addr: &str,
) -> anyhow::Result<(AgentServiceClient<tonic::transport::Channel>, JoinResponse)> {
    let mut client = AgentServiceClient::new(identity::channel(addr, id.grpc_config()?).await?);
    let resp = client
        .join(join_request(cfg, String::new(), String::new()))
        .await?
        .into_inner();
    Ok((client, resp))
}

/// Renews the node certificate through `addr`: a fresh key and CSR, authenticated by the current
/// certificate; files and the live certificate are replaced, no restart.
async fn renew(cfg: &AgentConfig, id: &NodeIdentity, addr: &str) -> anyhow::Result<()> {
    let mut client = AgentServiceClient::new(identity::channel(addr, id.grpc_config()?).await?);
    let (csr, key) = pki::new_csr(&format!("{}{}", pki::NODE_USER_PREFIX, cfg.node_name))?;
    let resp = client
        .join(join_request(cfg, String::new(), csr))
        .await?
        .into_inner();
    if resp.cert_pem.is_empty() {
        anyhow::bail!("{addr} issued no certificate");
    }
    id.renew(&resp.cert_pem, &key)
}

/// Renews the node certificate at two thirds of its life, trying every server; retries every 30 s
/// (sooner for short-lived certificates) until it works.
async fn renew_loop(
    cfg: AgentConfig,
    id: NodeIdentity,
    servers: Vec<String>,
    shutdown: CancellationToken,
) {
    loop {
        #[allow(clippy::disallowed_methods)]
        let wait = id
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let mut renewed = false;
        for s in &servers {
            match renew(&cfg, &id, s).await {
                Ok(()) => {
                    tracing::info!(server = %s, "node certificate renewed");
                    renewed = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(server = %s, error = %e, "node certificate renewal failed")
                }
            }
        }
        if !renewed {
            #[allow(clippy::disallowed_methods)]
            let left = id
                .cert
                .not_after()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or_default();
            let retry = (left / 10).clamp(Duration::from_millis(200), Duration::from_secs(30));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }
}

/// The stored node identity, or a new one got with the token from the first server that answers.
async fn obtain_identity(
    cfg: &AgentConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<NodeIdentity>> {
    loop {
        if let Some(id) = NodeIdentity::load(&cfg.data_dir)? {
            return Ok(Some(id));
        }
        let Some(token) = &cfg.token else {
            anyhow::bail!(
                "no node certificate under {} and no join token: pass --token-file FILE or set BERTH_TOKEN",
                identity::pki_dir(&cfg.data_dir).display()
            );
        };
        for s in &cfg.servers {
            match bootstrap(cfg, s, token).await {
                Ok(id) => return Ok(Some(id)),
                Err(e) => {
                    tracing::warn!(server = %s, error = %format!("{e:#}"), "bootstrap failed")
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs the agent until `shutdown`: the HTTP endpoint, the pod manager and the server connection.
///
/// # Errors
/// The runtime or image store cannot be opened, or the HTTP port cannot be bound.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let images = Arc::new(ImageStore::open(&cfg.data_dir)?);
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(LinuxRuntime::new(
        &cfg.data_dir,
        cfg.supervisor_exe.clone(),
    )?);
    let lookup = Arc::new(Mutex::new(Lookup::new()));
    let summary = Arc::new(crate::metrics::LatestSummary::new(&cfg.node_name));
    let state = AgentState {
        runtime: runtime.clone(),
        images: images.clone(),
        lookup: lookup.clone(),
        summary: summary.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let Some(id) = obtain_identity(&cfg, &shutdown).await? else {
        return Ok(());
    };
    tokio::spawn(crate::server::serve_tls(
        listener,
        id.http_config()?,
        state,
        shutdown.clone(),
    ));
    // Adopted containers are in the lookup as soon as the pod manager starts, so sampling from now on
    // has their rates ready by the first scrape after it.
    let sampler = crate::metrics::Sampler {
        host: crate::metrics::Host::detect(),
        node_name: cfg.node_name.clone(),
        lookup: lookup.clone(),
        latest: summary,
    };
    tokio::spawn(sampler.run(cfg.metrics_interval, shutdown.clone()));

    // Join first: the pod network needs the pod CIDR, and the pod manager needs the network.
    let mut servers = cfg.servers.clone();
    let (joined, idx) = loop {
        let mut found = None;
        for (i, s) in servers.iter().enumerate() {
            match join(&cfg, &id, s).await {
                Ok(j) => {
                    found = Some((j, i));
                    break;
                }
                Err(e) => tracing::warn!(server = %s, error = %e, "join failed"),
            }
        }
        if let Some(f) = found {
            break f;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    let resp = joined.1.clone();
    for s in &resp.servers {
        if !servers.contains(s) {
            servers.push(s.clone());
        }
    }
    tracing::info!(node = %cfg.node_name, pod_cidr = %resp.pod_cidr, "joined");
    tokio::spawn(renew_loop(
        cfg.clone(),
        id.clone(),
        servers.clone(),
        shutdown.clone(),
    ));
    let (net, node_net): (Arc<dyn NetworkHook>, Option<Arc<NodeNetwork>>) =
        match cfg.network.as_str() {
            "none" => (Arc::new(LoopbackOnly), None),
            _ => match setup_network(&cfg, &resp) {
                Ok(n) => {
                    let n = Arc::new(n);
                    start_dns(&n, shutdown.clone());
                    (Arc::new(Network(n.pod_network())), Some(n))
                }
                Err(e) => {
                    tracing::error!(error = %e, "pod network setup failed; pods get loopback only");
                    (Arc::new(LoopbackOnly), None)
                }
            },
        };
    let settings = ClusterSettings {
        cluster_dns: node_net
            .as_ref()
            .map(|n| n.gateway().to_string())
            .unwrap_or_else(|| resp.cluster_dns.clone()),
        cluster_domain: resp.cluster_domain.clone(),
        node_ip: cfg.node_ip.clone(),
        ca_pem: id.ca_pem.clone(),
    };
    let source = Arc::new(StoreImages {
        store: images.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    let manager = tokio::task::spawn_blocking({
        let (rt, dir) = (runtime.clone(), cfg.data_dir.clone());
        move || PodManager::new(rt, net, source, &dir, settings)
    })
    .await?;
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (rep_tx, mut rep_rx) = mpsc::unbounded_channel();
    let pm = spawn_pod_manager(manager, cmd_rx, rep_tx, lookup, shutdown.clone());

    let mut last_rev = 0u64;
    let mut client = Some(joined.0);
    let mut i = idx;
    while !shutdown.is_cancelled() {
        let addr = servers[i % servers.len()].clone();
        let c = match client.take() {
            Some(c) => Ok(c),
            None => join(&cfg, &id, &addr).await.map(|(c, _)| c),
        };
        match c {
            Ok(c) => {
                let _ = cmd_tx.send(Command::ResendAll);
                match session(
                    &cfg,
                    c,
                    &mut last_rev,
                    &cmd_tx,
                    &mut rep_rx,
                    node_net.clone(),
                    &shutdown,
                )
                .await
                {
                    Ok(()) => {}
                    Err(e) => tracing::warn!(server = %addr, error = %e, "sync stream ended"),
                }
            }
            Err(e) => tracing::warn!(server = %addr, error = %e, "reconnect failed"),
        }
        i += 1;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    drop(cmd_tx);
    let _ = tokio::task::spawn_blocking(move || pm.join()).await;
    Ok(())
}

fn setup_network(cfg: &AgentConfig, resp: &JoinResponse) -> anyhow::Result<NodeNetwork> {
    let mut nc = NodeNetworkConfig::new(
        &cfg.node_name,
        cfg.node_ip.parse()?,
        crate::network::parse_cidr(&resp.pod_cidr)?,
        cfg.data_dir.clone(),
    );
    nc.cluster_cidr = crate::network::parse_cidr(&resp.cluster_cidr)?;
    nc.service_cidr = crate::network::parse_cidr(&resp.service_cidr).ok();
    nc.cluster_domain = resp.cluster_domain.clone();
    nc.cluster_dns = resp.cluster_dns.parse().ok();
    Ok(NodeNetwork::setup(
        nc,
        crate::network::netlink::IpTool::host(),
    )?)
}

fn start_dns(n: &Arc<NodeNetwork>, shutdown: CancellationToken) {
    let server = n.dns_server(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    match crate::network::dns::bind_dns(SocketAddr::from((n.gateway(), 53))) {
        Ok((udp, tcp)) => {
            tokio::spawn(async move {
                let (Ok(udp), Ok(tcp)) = (
                    tokio::net::UdpSocket::from_std(udp),
                    tokio::net::TcpListener::from_std(tcp),
                ) else {
                    return;
                };
                if let Err(e) = server.run(udp, tcp, shutdown).await {
                    tracing::warn!(error = %e, "dns server stopped");
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot bind the node DNS server"),
    }
}

/// One Sync session: returns when the stream breaks.
async fn session(
    cfg: &AgentConfig,
    mut client: AgentServiceClient<tonic::transport::Channel>,
    last_rev: &mut u64,
    cmds: &std::sync::mpsc::Sender<Command>,
    reports: &mut mpsc::UnboundedReceiver<PodStatus>,
    node_net: Option<Arc<NodeNetwork>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (out_tx, out_rx) = mpsc::channel::<AgentMessage>(256);
    out_tx
        .send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(Hello {
                node_name: cfg.node_name.clone(),
                resume_revision: *last_rev,
            })),
        })
        .await?;
    let mut inbound = client
        .sync(tokio_stream::wrappers::ReceiverStream::new(out_rx))
        .await?
        .into_inner();
    let mut beat = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = beat.tick() => {
                let status = node_info::node_status(&cfg.node_name, &cfg.node_ip, "crun");
                out_tx.send(AgentMessage { msg: Some(agent_message::Msg::Heartbeat(Heartbeat { node_status_json: status.to_string() })) }).await?;
            }
            Some(r) = reports.recv() => {
                out_tx.send(AgentMessage { msg: Some(agent_message::Msg::PodStatus(r)) }).await?;
            }
            msg = inbound.message() => {
                let Some(m) = msg? else { anyhow::bail!("server closed the stream") };
                apply(m, last_rev, cmds, node_net.clone());
            }
        }
    }
}

fn apply(
    m: ServerMessage,
    last_rev: &mut u64,
    cmds: &std::sync::mpsc::Sender<Command>,
    node_net: Option<Arc<NodeNetwork>>,
) {
    *last_rev = m.revision.max(*last_rev);
    if m.full {
        let _ = cmds.send(Command::Full(m.pods.iter().filter_map(desired).collect()));
    } else if !m.pods.is_empty() {
        let removed = m
            .pods
            .iter()
            .filter(|u| u.deleted)
            .map(|u| u.uid.clone())
            .collect();
        let up = m
            .pods
            .iter()
            .filter(|u| !u.deleted)
            .filter_map(desired)
            .collect();
        let _ = cmds.send(Command::Delta(up, removed));
    }
    if let Some(view) = &m.network {
        let services = view
            .services
            .iter()
            .map(|s| crate::pod::spec::ServiceEnv {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                cluster_ip: s.cluster_ip.clone(),
                ports: s
                    .ports
                    .iter()
                    .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
                    .collect(),
            })
            .collect();
        let _ = cmds.send(Command::Services(services));
    }
    if let (Some(view), Some(n)) = (m.network, node_net) {
        tokio::task::spawn_blocking(move || {
            if let Err(e) = n.apply_view(&view) {
                tracing::warn!(error = %e, "network view not applied");
            }
        });
    }
}
