//! `berthctl lab up|down|status|kill|restart|partition|heal|ui`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use ctl::lab::{self, plan::Cidr, UpOptions};

/// Arguments of `lab`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

/// Which lab and where it lives.
#[derive(clap::Args, Debug, Clone)]
pub struct Which {
    /// Lab name (1-6 lower-case letters/digits)
    #[arg(long, default_value = "lab")]
    name: String,
    /// Lab directory (default /var/lib/berth/labs/NAME)
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Create a lab cluster: a bridge, one network namespace per node, servers and agents
    Up {
        #[command(flatten)]
        which: Which,
        /// Number of berth-server nodes
        #[arg(long, default_value_t = 3)]
        servers: usize,
        /// Number of berth-agent nodes
        #[arg(long, default_value_t = 3)]
        agents: usize,
        /// Directory holding berth-server and berth-agent (default: next to berthctl, then PATH)
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Lab subnet (default: the first 172.29.x.0/24 no host route uses)
        #[arg(long)]
        subnet: Option<String>,
        /// How long to wait for the API and all nodes Ready
        #[arg(long, default_value = "90s")]
        timeout: humantime::Duration,
        /// Extra environment for every server, KEY=VALUE (repeatable; for test hooks)
        #[arg(long = "server-env", value_name = "KEY=VALUE")]
        server_env: Vec<String>,
    },
    /// Remove everything a lab created (processes, namespaces, links, data); safe to repeat
    Down {
        #[command(flatten)]
        which: Which,
    },
    /// Show nodes, processes, partitions and the leader
    Status {
        #[command(flatten)]
        which: Which,
    },
    /// SIGKILL a node's process
    Kill {
        #[command(flatten)]
        which: Which,
        /// Node (s1, a2 ...)
        node: String,
    },
    /// Restart a node's process
    Restart {
        #[command(flatten)]
        which: Which,
        /// Node (s1, a2 ...)
        node: String,
    },
    /// Cut a node off the lab network
    Partition {
        #[command(flatten)]
        which: Which,
        /// Node (s1, a2 ...)
        node: String,
    },
    /// Reconnect partitioned nodes (all, or one)
    Heal {
        #[command(flatten)]
        which: Which,
        /// Node (default: all)
        node: Option<String>,
    },
    /// Serve the live web view on 127.0.0.1, acting as the lab admin, with the fault drills as buttons
    Ui {
        #[command(flatten)]
        which: Which,
        /// Port to listen on (0: any free port)
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on; must be loopback unless --allow-remote
        #[arg(long, default_value = "127.0.0.1")]
        address: std::net::IpAddr,
        /// Allow a non-loopback --address: anyone who reaches it acts as the lab admin without a login
        #[arg(long)]
        allow_remote: bool,
    },
}

/// Runs a lab verb.
pub async fn run(a: Args) -> Result<()> {
    match a.verb {
        Verb::Up {
            which,
            servers,
            agents,
            bin_dir,
            subnet,
            timeout,
            server_env,
        } => {
            let subnet = match subnet {
                Some(s) => {
                    Some(Cidr::parse(&s).ok_or_else(|| anyhow::anyhow!("invalid --subnet {s:?}"))?)
                }
                None => None,
            };
            lab::up(&UpOptions {
                name: which.name,
                servers,
                agents,
                dir: which.dir,
                bin_dir,
                subnet,
                timeout: Duration::from(timeout),
                server_env: server_env
                    .iter()
                    .map(|e| lab::parse_env(e))
                    .collect::<Result<_>>()?,
            })
            .await?;
        }
        Verb::Down { which } => {
            let r = lab::down(&which.name, which.dir.as_deref())?;
            println!(
                "lab {} down: {} processes stopped, {} namespaces and {} links deleted{}",
                which.name,
                r.processes,
                r.netns.len(),
                r.links.len(),
                if r.removed_dir { ", data removed" } else { "" }
            );
        }
        Verb::Status { which } => {
            lab::status(
                &which.name,
                which.dir.as_deref(),
                &mut std::io::stdout().lock(),
            )
            .await?
        }
        Verb::Kill { which, node } => {
            println!("{}", lab::kill(&which.name, which.dir.as_deref(), &node)?)
        }
        Verb::Restart { which, node } => {
            println!(
                "{}",
                lab::restart(&which.name, which.dir.as_deref(), &node)?
            )
        }
        Verb::Partition { which, node } => {
            println!(
                "{}",
                lab::partition(&which.name, which.dir.as_deref(), &node)?
            )
        }
        Verb::Heal { which, node } => {
            for l in lab::heal(&which.name, which.dir.as_deref(), node.as_deref())? {
                println!("{l}");
            }
        }
        Verb::Ui {
            which,
            port,
            address,
            allow_remote,
        } => {
            let opts = lab::UiOptions {
                name: which.name,
                dir: which.dir,
            };
            lab::ui(
                &opts,
                std::net::SocketAddr::new(address, port),
                allow_remote,
            )
            .await?
        }
    }
    Ok(())
}
