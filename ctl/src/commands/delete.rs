//! `berthctl delete -f FILE | TYPE NAME...`.

use std::time::Duration;

use anyhow::{bail, Result};
use ctl::kubectl::delete::{self, DeleteOptions};
use ctl::manifest;

use super::Global;

/// Arguments of `delete`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TYPE NAME... or TYPE/NAME...
    args: Vec<String>,
    /// Files, directories or `-` holding the objects to delete
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// Treat "not found" as success
    #[arg(long)]
    ignore_not_found: bool,
    /// Wait until the objects are gone
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wait: bool,
    /// Bound on --wait (e.g. 60s)
    #[arg(long, default_value = "120s")]
    timeout: humantime::Duration,
    /// Seconds the pod gets to stop (0 = immediately)
    #[arg(long)]
    grace_period: Option<i64>,
}

/// Deletes and prints `kind "name" deleted` per object.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let opts = DeleteOptions {
        ignore_not_found: a.ignore_not_found,
        wait: a.wait,
        timeout: Duration::from(a.timeout),
        grace_period: a.grace_period,
    };
    let mut out = std::io::stdout().lock();
    if !a.files.is_empty() {
        if !a.args.is_empty() {
            bail!("cannot pass resource names together with --filename");
        }
        let docs = manifest::read_sources(&a.files, &mut std::io::stdin())?;
        let (s, c) = super::session_and_catalog(g).await?;
        if delete::delete_documents(&s, &c, &docs, &opts, &mut out)
            .await
            .is_err()
        {
            // Each failure was printed already.
            std::process::exit(1);
        }
        return Ok(());
    }
    if a.args.is_empty() {
        bail!("You must provide one or more resources by argument or filename.");
    }
    let (s, c) = super::session_and_catalog(g).await?;
    delete::delete_named(&s, &c, &a.args, &opts, &mut out).await
}
