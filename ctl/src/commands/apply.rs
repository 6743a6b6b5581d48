//! `berthctl apply -f FILE|DIR|-`.

use anyhow::Result;
use ctl::kubectl::apply;
use ctl::manifest;

use super::Global;

/// Arguments of `apply`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files, directories (recursive) or `-` for stdin
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Report `serverside-applied` like `kubectl apply --server-side` (berthctl always applies server-side)
    #[arg(long)]
    server_side: bool,
    /// Take ownership of fields other managers own
    #[arg(long)]
    force_conflicts: bool,
}

/// Applies every object, printing one line each; keeps going after a failure and exits 1 at the end.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let docs = manifest::read_sources(&a.files, &mut std::io::stdin())?;
    let (s, c) = super::session_and_catalog(g).await?;
    let mut failed = None;
    for d in &docs {
        match apply::apply_one(&s, &c, d, a.server_side, a.force_conflicts).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("{}", ctl::errors::render(&e, Some(&s.server)));
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        // Already printed: exit 1 without a second message.
        Some(_) => std::process::exit(1),
        None => Ok(()),
    }
}
