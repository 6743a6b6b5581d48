//! `berthctl logs POD [-c C] [-f] [--previous] [--tail N]`.

use anyhow::Result;
use ctl::kubectl::logs::{self, LogOptions};

use super::Global;

/// Arguments of `logs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// POD, or TYPE/NAME (deploy/web: its first pod)
    target: String,
    /// Container name (default: the only or first container)
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep streaming new output
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous (crashed) instance's logs
    #[arg(short = 'p', long)]
    previous: bool,
    /// Only the last N lines
    #[arg(long)]
    tail: Option<i64>,
    /// Prefix each line with its timestamp
    #[arg(long)]
    timestamps: bool,
}

/// Prints or streams the logs.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let (s, c) = super::session_and_catalog(g).await?;
    let opts = LogOptions {
        container: a.container,
        follow: a.follow,
        previous: a.previous,
        tail: a.tail,
        timestamps: a.timestamps,
    };
    logs::logs(&s, &c, &a.target, &opts, &mut std::io::stdout()).await
}
