//! `berthctl bench`: the seed's metrics measured on the cluster, written as Markdown, JSON and SVG.

use std::path::PathBuf;

use anyhow::Result;
use ctl::bench::run::{self, Options};

use super::Global;

/// Arguments of `bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory for report.md, report.json and the SVG plots
    #[arg(long, default_value = "bench-results/berthctl-bench")]
    out: PathBuf,
    /// Only these measurements (comma-separated: startup,images,memory,disk,cpu,network)
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The node single-node measurements run on (default: the first Ready node)
    #[arg(long)]
    node: Option<String>,
    /// Samples per subject
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// The lab berthctl runs on, for host-side references (default: found from the API URL)
    #[arg(long)]
    lab: Option<String>,
}

/// Runs the bench and prints the Markdown report.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let s = super::session(g).await?;
    let opts = Options {
        out: a.out,
        only: a.only,
        node: a.node,
        samples: a.samples,
        lab: a.lab,
    };
    run::run(&s, &opts).await.map(|_| ())
}
