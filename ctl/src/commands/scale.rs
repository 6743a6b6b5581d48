//! `berthctl scale deploy/NAME --replicas N`.

use anyhow::{bail, Result};
use ctl::kubectl::scale;
use ctl::resources::single_target;

use super::Global;

/// Arguments of `scale`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TYPE/NAME, or TYPE NAME
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
    /// The new number of replicas
    #[arg(long)]
    replicas: i64,
}

/// Scales and prints `deployment.apps/NAME scaled`.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let (kind, name) = single_target(&a.target, "TYPE/NAME")?;
    if a.replicas < 0 {
        bail!(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        );
    }
    let (s, c) = super::session_and_catalog(g).await?;
    println!("{}", scale::scale(&s, &c, &kind, &name, a.replicas).await?);
    Ok(())
}
