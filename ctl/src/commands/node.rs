//! `berthctl cordon|uncordon|drain NODE`.

use std::time::Duration;

use anyhow::Result;
use ctl::kubectl::node::{self, DrainOptions};

use super::Global;

/// Arguments of `cordon` and `uncordon`.
#[derive(clap::Args, Debug)]
pub struct CordonArgs {
    /// Node name
    node: String,
}

/// Arguments of `drain`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// Node name
    node: String,
    /// Also evict pods that no controller manages
    #[arg(long)]
    force: bool,
    /// Skip DaemonSet-managed pods
    #[arg(long)]
    ignore_daemonsets: bool,
    /// Evict pods using emptyDir volumes (their data is lost)
    #[arg(long)]
    delete_emptydir_data: bool,
    /// Give up after this long
    #[arg(long, default_value = "120s")]
    timeout: humantime::Duration,
}

/// `cordon` (`on`) or `uncordon`.
pub async fn cordon(g: &Global, a: CordonArgs, on: bool) -> Result<()> {
    let s = super::session(g).await?;
    println!("{}", node::set_unschedulable(&s, &a.node, on).await?);
    Ok(())
}

/// `drain`.
pub async fn drain(g: &Global, a: DrainArgs) -> Result<()> {
    let s = super::session(g).await?;
    let opts = DrainOptions {
        force: a.force,
        ignore_daemonsets: a.ignore_daemonsets,
        delete_emptydir_data: a.delete_emptydir_data,
        timeout: Duration::from(a.timeout),
    };
    node::drain(&s, &a.node, &opts, &mut std::io::stdout()).await
}
