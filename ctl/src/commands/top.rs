//! `berthctl top nodes|pods`: resource usage from the metrics API (kubectl top).

use anyhow::Result;
use ctl::kubectl::top::{self, NodeRequest, PodOptions, PodRequest, SortBy};

use super::Global;

/// Arguments of `top`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Display resource (CPU/memory) usage of nodes
    #[command(visible_aliases = ["nodes", "no"])]
    Node {
        /// One node
        name: Option<String>,
        /// Label selector (e.g. kubernetes.io/os=linux)
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Do not print headers
        #[arg(long)]
        no_headers: bool,
        /// Sort by cpu or memory, biggest first
        #[arg(long)]
        sort_by: Option<String>,
    },
    /// Display resource (CPU/memory) usage of pods
    #[command(visible_aliases = ["pods", "po"])]
    Pod {
        /// One pod
        name: Option<String>,
        /// Label selector (e.g. app=web)
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Across all namespaces
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// One line per container
        #[arg(long)]
        containers: bool,
        /// Do not print headers
        #[arg(long)]
        no_headers: bool,
        /// Sort by cpu or memory, biggest first
        #[arg(long)]
        sort_by: Option<String>,
    },
}

fn sort_by(s: Option<String>) -> Result<Option<SortBy>> {
    s.map(|s| s.parse()).transpose()
}

/// Prints the usage table.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    match a.what {
        What::Node {
            name,
            selector,
            no_headers,
            sort_by: s,
        } => {
            let req = NodeRequest {
                name,
                selector,
                no_headers,
                sort_by: sort_by(s)?,
            };
            let s = super::session(g).await?;
            print!("{}", top::top_nodes(&s, &req).await?);
        }
        What::Pod {
            name,
            selector,
            all_namespaces,
            containers,
            no_headers,
            sort_by: s,
        } => {
            let req = PodRequest {
                name,
                selector,
                options: PodOptions {
                    all_namespaces,
                    containers,
                    no_headers,
                    sort_by: sort_by(s)?,
                },
            };
            let s = super::session(g).await?;
            match top::top_pods(&s, &req).await? {
                Some(text) => print!("{text}"),
                None if all_namespaces => eprintln!("No resources found"),
                None => eprintln!("No resources found in {} namespace.", s.namespace),
            }
        }
    }
    Ok(())
}
