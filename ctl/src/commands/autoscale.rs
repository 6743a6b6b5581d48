//! `berthctl autoscale (TYPE NAME | TYPE/NAME) --max N [--min N] [--cpu-percent N]` (kubectl autoscale).

use anyhow::Result;
use ctl::kubectl::autoscale::{self, DryRun, Request};
use ctl::resources::single_target;

use super::Global;

/// Arguments of `autoscale`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TYPE NAME, or TYPE/NAME (a deployment or replica set)
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
    /// The upper limit for the number of pods
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    max: i32,
    /// The lower limit for the number of pods (the server's default, 1, when unset)
    #[arg(long, allow_negative_numbers = true)]
    min: Option<i32>,
    /// The target average CPU utilization over all the pods, as a percentage of their requests
    #[arg(long)]
    cpu_percent: Option<i32>,
    /// The name of the autoscaler (default: the target's name)
    #[arg(long)]
    name: Option<String>,
    /// none, client (print the object only) or server (validated, not stored)
    #[arg(long, num_args = 0..=1, default_missing_value = "client")]
    dry_run: Option<String>,
    /// Output format: yaml, json or name
    #[arg(short = 'o', long)]
    output: Option<String>,
}

/// Creates the autoscaler and prints `horizontalpodautoscaler.autoscaling/NAME autoscaled`.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let (kind, name) = single_target(&a.target, "TYPE NAME")?;
    autoscale::validate(a.min, a.max)?;
    let req = Request {
        kind,
        name,
        min: a.min,
        max: a.max,
        cpu_percent: a.cpu_percent,
        hpa_name: a.name,
        dry_run: a.dry_run.as_deref().map_or(Ok(DryRun::None), str::parse)?,
        output: a.output,
    };
    let (s, c) = super::session_and_catalog(g).await?;
    print!("{}", autoscale::autoscale(&s, &c, &req).await?);
    Ok(())
}
