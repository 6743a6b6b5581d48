//! `berthctl`: the berth command-line tool (kubectl-like verbs and `lab` clusters).

mod commands;

use clap::{Parser, Subcommand};

/// berthctl controls berth clusters (kubectl-like) and builds local lab clusters.
#[derive(Parser)]
#[command(name = "berthctl", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: commands::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply a configuration to resources from files, directories or stdin
    Apply(commands::apply::Args),
    /// Display one or many resources
    Get(commands::get::Args),
    /// Delete resources by file or by type and name
    Delete(commands::delete::Args),
    /// Show details of a resource, with its events
    Describe(commands::describe::Args),
    /// Set a new size for a deployment or replica set
    Scale(commands::scale::Args),
    /// Manage the rollout of a deployment or daemon set
    Rollout(commands::rollout::Args),
    /// Display resource (CPU/memory) usage of nodes or pods
    Top(commands::top::Args),
    /// Create a HorizontalPodAutoscaler for a deployment or replica set
    Autoscale(commands::autoscale::Args),
    /// Print the logs of a container in a pod
    Logs(commands::logs::Args),
    /// Mark a node unschedulable
    Cordon(commands::node::CordonArgs),
    /// Mark a node schedulable
    Uncordon(commands::node::CordonArgs),
    /// Cordon a node and evict its pods
    Drain(commands::node::DrainArgs),
    /// Load images onto the nodes
    Image(commands::image::Args),
    /// Deploy and manage Compose files as stacks (Docker Swarm's `docker stack`)
    Stack(commands::stack::Args),
    /// Print the client and server version
    Version(commands::version::Args),
    /// Manage bootstrap tokens that agents join with (kubeadm's `token`)
    Token(commands::token::Args),
    /// Local lab clusters in network namespaces, and fault drills
    Lab(commands::lab::Args),
    /// Measure start-up, image size, memory, disk, CPU and network side by side; write a report
    Bench(commands::bench::Args),
}

fn main() {
    // Before anything can build a TLS configuration: kube and the lab helpers take the process-wide
    // provider, and it must be ring (the workspace builds no other).
    pki::install_crypto_provider();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTHCTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let g = cli.global;
    let result = rt.block_on(async move {
        match cli.command {
            Command::Apply(a) => commands::apply::run(&g, a).await,
            Command::Get(a) => commands::get::run(&g, a).await,
            Command::Delete(a) => commands::delete::run(&g, a).await,
            Command::Describe(a) => commands::describe::run(&g, a).await,
            Command::Scale(a) => commands::scale::run(&g, a).await,
            Command::Rollout(a) => commands::rollout::run(&g, a).await,
            Command::Top(a) => commands::top::run(&g, a).await,
            Command::Autoscale(a) => commands::autoscale::run(&g, a).await,
            Command::Logs(a) => commands::logs::run(&g, a).await,
            Command::Cordon(a) => commands::node::cordon(&g, a, true).await,
            Command::Uncordon(a) => commands::node::cordon(&g, a, false).await,
            Command::Drain(a) => commands::node::drain(&g, a).await,
            Command::Image(a) => commands::image::run(&g, a).await,
            Command::Stack(a) => commands::stack::run(&g, a).await,
            Command::Version(a) => commands::version::run(&g, a).await,
            Command::Token(a) => commands::token::run(&g, a).await,
            Command::Lab(a) => commands::lab::run(a).await,
            Command::Bench(a) => commands::bench::run(&g, a).await,
        }
    });
    if let Err(e) = result {
        eprintln!(
            "{}",
            ctl::errors::render(&e, commands::server_for_errors().as_deref())
        );
        std::process::exit(1);
    }
}
