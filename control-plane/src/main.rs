//! `berth-server`: one member of the berth control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use std::sync::Arc;

use control_plane::agents::{self, AgentsConfig};
use control_plane::api;
use control_plane::controllers::{self, ControllerConfig};
use control_plane::metrics::{AgentMetrics, MetricsSource};
use control_plane::server::{self, Hooks, ServerConfig};
use control_plane::store::ObjectStore;
use tokio_util::sync::CancellationToken;

// glibc malloc was ~25% of a member's CPU under write load (fragmented small JSON values).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One member of the berth control plane: the Raft-replicated store, the Kubernetes API and the controllers.
#[derive(Debug, Parser)]
#[command(name = "berth-server", version)]
struct Cli {
    /// Member name, unique in the cluster.
    #[arg(long, env = "BERTH_NAME", default_value = "server-1")]
    name: String,
    /// Data directory (the Raft log, snapshots and objects).
    #[arg(long, default_value = "/var/lib/berth/server")]
    data_dir: PathBuf,
    /// Address of the peer gRPC port (Raft and agents).
    #[arg(long, default_value = "0.0.0.0:6444")]
    listen_peer: SocketAddr,
    /// Address of the Kubernetes API.
    #[arg(long, default_value = "0.0.0.0:6443")]
    listen_api: SocketAddr,
    /// Peer address other members dial (default: this member's --initial-cluster entry).
    #[arg(long)]
    advertise_peer: Option<String>,
    /// API address clients are sent to (default: the advertised peer host with the API port).
    #[arg(long)]
    advertise_api: Option<String>,
    /// Initial members as name=peer-addr,... (ids follow the order). Ignored when the data dir has state.
    #[arg(long, default_value = "")]
    initial_cluster: String,
    /// Peer address of a running member: ask it to add this member, then catch up from the leader.
    #[arg(long)]
    join: Option<String>,
    /// Compact the Raft log every N applied entries.
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Raft tick in milliseconds (elections take 10-20 ticks).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// File holding the cluster token (`<id>.<secret>`); or set BERTH_TOKEN. Never on the command
    /// line, where every local user could read it. The first member makes one when none is given.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Validity of the certificates this member issues (renewed at two thirds of it).
    #[arg(long, default_value = "365d", value_parser = humantime::parse_duration)]
    cert_validity: std::time::Duration,
    /// Extra DNS name or IP for this member's certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    #[command(subcommand)]
    command: Option<Command>,
    /// A node whose heartbeats stop for this long becomes NotReady.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// Pods on a NotReady node are replaced elsewhere after this long (labs: 5 s; Kubernetes: 5 min).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pod_eviction_timeout: std::time::Duration,
    /// How often each HorizontalPodAutoscaler reads pod usage and rescales its target.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// Most non-mutating API requests in flight; more are answered 429 (0: no limit).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Most mutating API requests in flight; more are answered 429 (0: no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Longest an API request other than a watch, exec or follow may take before a 504.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    request_timeout: std::time::Duration,
    /// Most watches one user may hold open; more are answered 429 (0: no limit).
    #[arg(long, default_value_t = 500)]
    max_watches_per_user: usize,
}

/// Maintenance commands run against a data dir.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Certificates of this member.
    Certs {
        #[command(subcommand)]
        action: CertsCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum CertsCommand {
    /// Re-issue this member's certificates now; a running member switches to them without a restart.
    Rotate,
}

/// The cluster token from `--token-file` or `BERTH_TOKEN`.
fn read_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<pki::Token>> {
    let text = match file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("failed to read token file {}", f.display()))?,
        ),
        None => std::env::var("BERTH_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty()),
    };
    text.map(|t| pki::Token::parse(&t).context("bad cluster token"))
        .transpose()
}

/// `certs rotate`: asks the member on the data dir to rotate and waits until it has.
async fn rotate_command(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let marker = control_plane::security::ClusterPki::request_rotation(data_dir)?;
    for _ in 0..150 {
        if !marker.exists() {
            println!("certificates rotated");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!("no running member took the request; the member rotates at its next start");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pki::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Command::Certs {
        action: CertsCommand::Rotate,
    }) = &cli.command
    {
        return rotate_command(&cli.data_dir).await;
    }
    let mut config = ServerConfig::new(&cli.name);
    config.data_dir = cli.data_dir;
    config.listen_peer = cli.listen_peer;
    config.listen_api = cli.listen_api;
    config.advertise_peer = cli.advertise_peer;
    config.advertise_api = cli.advertise_api;
    config.initial_cluster = server::parse_initial_cluster(&cli.initial_cluster)
        .context("failed to parse --initial-cluster")?;
    config.join = cli.join;
    config.driver.snapshot_every = cli.snapshot_every.max(1);
    config.driver.tick = std::time::Duration::from_millis(cli.tick_ms.max(1));
    config.token = read_token(cli.token_file.as_deref())?;
    config.cert_validity = cli.cert_validity;
    config.tls_sans = cli.tls_sans;
    // The data dir holds every object, Secrets included: only root may read it.
    pki::ensure_private_dir(&config.data_dir)
        .with_context(|| format!("failed to create data dir {}", config.data_dir.display()))?;

    let shutdown = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone()));
    let limits = api::limits::Limits {
        max_requests_inflight: cli.max_requests_inflight,
        max_mutating_requests_inflight: cli.max_mutating_requests_inflight,
        request_timeout: cli.request_timeout,
        max_watches_per_user: cli.max_watches_per_user,
        ..api::limits::Limits::default()
    };
    let hooks = hooks(
        cli.node_monitor_grace_period,
        cli.pod_eviction_timeout,
        cli.horizontal_pod_autoscaler_sync_period,
        limits,
    );
    server::run(config, hooks, shutdown).await
}

/// Attaches the Kubernetes API, the agents service and the leader-only controllers to the member.
fn hooks(
    grace: std::time::Duration,
    eviction: std::time::Duration,
    hpa_sync_period: std::time::Duration,
    limits: api::limits::Limits,
) -> Hooks {
    // One reader of the agents' summaries per process, so `kubectl top` and the HPA controller asking
    // at once share a scrape (its cache) instead of each dialling every agent.
    let usage: Arc<std::sync::OnceLock<Arc<dyn MetricsSource>>> = Arc::default();
    let shared_usage = |ctx: &server::Context| -> Arc<dyn MetricsSource> {
        let store: Arc<dyn ObjectStore> = ctx.store.clone();
        let client = api::ApiConfig {
            pki: Some(ctx.pki.clone()),
            ..api::ApiConfig::default()
        }
        .kubelet_client();
        Arc::new(AgentMetrics::new(store, client))
    };
    let api_usage = usage.clone();
    let api: server::ApiHook = Box::new(move |ctx, listener, shutdown| {
        let store: Arc<dyn ObjectStore> = ctx.store.clone();
        let config = api::ApiConfig {
            advertise_address: ctx.config.api_addr(),
            pki: Some(ctx.pki.clone()),
            limits,
            ..api::ApiConfig::default()
        };
        let metrics = api_usage.get_or_init(|| shared_usage(&ctx)).clone();
        Box::pin(api::serve_with_metrics(
            listener, store, config, metrics, shutdown,
        ))
    });
    let grpc: server::GrpcHook = Box::new(|ctx, routes| {
        let store: Arc<dyn ObjectStore> = ctx.store.clone();
        let config = AgentsConfig {
            token: ctx.pki.token.to_string(),
            pki: Some(ctx.pki.clone()),
            servers: ctx
                .store
                .members()
                .by_id
                .values()
                .map(|m| m.peer_addr.clone())
                .collect(),
            ..AgentsConfig::default()
        };
        routes.add_service(agents::service(store, config));
    });
    let on_leader: server::LeaderHook = Arc::new(move |ctx, shutdown| {
        let store: Arc<dyn ObjectStore> = ctx.store.clone();
        let config = ControllerConfig {
            node_monitor_grace_period: grace,
            pod_eviction_timeout: eviction,
            hpa_sync_period,
            metrics: Some(usage.get_or_init(|| shared_usage(&ctx)).clone()),
            ..ControllerConfig::default()
        };
        let lease = control_plane::leader_lease::run(
            store.clone(),
            ctx.config.name.clone(),
            std::time::Duration::from_secs(2),
            shutdown.clone(),
        );
        Box::pin(async move {
            // The system namespaces exist before anything else runs, so early clients can use `default`.
            for attempt in 0..50u32 {
                match api::bootstrap(store.as_ref()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "bootstrap of system namespaces failed");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                        }
                    }
                }
            }
            tokio::join!(controllers::run(store, config, shutdown), lease);
        })
    });
    Hooks {
        grpc: Some(grpc),
        api: Some(api),
        on_leader: Some(on_leader),
    }
}

/// First SIGTERM/ctrl-c: graceful shutdown. Second: exit at once.
async fn signals(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    for n in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        if n == 0 {
            tracing::info!("shutdown requested; signal again to force");
            shutdown.cancel();
        } else {
            tracing::warn!("forced exit");
            std::process::exit(130);
        }
    }
}
