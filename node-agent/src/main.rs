//! `berth-agent`: runs the pods bound to this node.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "berth-agent",
    about = "berth node agent",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Server gRPC addresses (host:6444), comma-separated; the agent fails over between them.
    #[arg(long, value_delimiter = ',', env = "BERTH_SERVER")]
    server: Vec<String>,
    /// File holding the join token (`<id>.<secret>`), needed only until the node has its certificate.
    /// Without it the token is read from the BERTH_TOKEN environment variable. A token is never taken
    /// on the command line, where every user of the host could read it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Node name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// State directory.
    #[arg(long, default_value = "/var/lib/berth/agent")]
    data_dir: PathBuf,
    /// This node's IP (InternalIP, VXLAN underlay).
    #[arg(long, default_value = "127.0.0.1")]
    node_ip: String,
    /// Address of the logs/exec/images endpoint.
    #[arg(long, default_value = "0.0.0.0:10250")]
    listen: std::net::SocketAddr,
    /// Pod network: `cni` (bridge, overlay, services, DNS) or `none` (loopback only).
    #[arg(long, default_value = "cni")]
    network: String,
    /// How often each container's CPU and memory are sampled for /stats/summary (`2s`, `500ms`; at most 5s).
    #[arg(long, default_value = "2s", value_parser = node_agent::metrics::parse_interval)]
    metrics_interval: std::time::Duration,
}

#[derive(Subcommand)]
enum Mode {
    /// Kill and remove every container, rootfs mount, cgroup and netns recorded under --data-dir.
    Reset {
        /// State directory of the agent to reset.
        #[arg(long, default_value = "/var/lib/berth/agent")]
        data_dir: PathBuf,
    },
    /// Internal: supervise one container (started by the agent itself).
    Supervise {
        /// Container state directory.
        #[arg(long)]
        dir: PathBuf,
        /// OCI runtime binary.
        #[arg(long)]
        runtime: PathBuf,
        /// Log rotation size in bytes.
        #[arg(long, default_value_t = node_agent::runtime::linux::DEFAULT_LOG_MAX)]
        log_max: u64,
    },
}

fn main() -> anyhow::Result<()> {
    pki::install_crypto_provider();
    let cli = Cli::parse();
    if let Some(Mode::Reset { data_dir }) = &cli.mode {
        let exe = std::env::current_exe()?;
        let rt = node_agent::runtime::linux::LinuxRuntime::new(data_dir, exe)?;
        for id in rt.reset() {
            println!("removed {id}");
        }
        node_agent::pod::release_secret_mounts(data_dir);
        return Ok(());
    }
    if let Some(Mode::Supervise {
        dir,
        runtime,
        log_max,
    }) = cli.mode
    {
        let args = node_agent::runtime::supervisor::SuperviseArgs {
            dir,
            runtime,
            log_max,
        };
        std::process::exit(node_agent::runtime::supervisor::run(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    anyhow::ensure!(!cli.server.is_empty(), "--server is required");
    let token = node_agent::agent::identity::read_token(cli.token_file.as_deref())?;
    // Still one thread: no supervisor or container started later inherits the token.
    std::env::remove_var("BERTH_TOKEN");
    let node_name = match cli.node_name {
        Some(n) => n,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let cfg = node_agent::agent::AgentConfig {
        servers: cli.server,
        token,
        node_name,
        data_dir: cli.data_dir,
        node_ip: cli.node_ip,
        listen: cli.listen,
        network: cli.network,
        supervisor_exe: std::env::current_exe().context("cannot locate the berth-agent binary")?,
        metrics_interval: cli.metrics_interval,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("sigterm handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            // Containers keep running: they belong to their supervisors, not to the agent.
            s.cancel();
        });
        node_agent::agent::run(cfg, shutdown).await
    })
}
