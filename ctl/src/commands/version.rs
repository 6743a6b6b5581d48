//! `berthctl version`.

use anyhow::Result;
use ctl::kubectl::version;

use super::Global;

/// Arguments of `version`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only print the client version
    #[arg(long)]
    client: bool,
}

/// Prints `Client Version` and, unless `--client`, `Server Version`.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    println!("Client Version: v{} (berthctl)", version::CLIENT_VERSION);
    if a.client {
        return Ok(());
    }
    let s = super::session(g).await?;
    println!("Server Version: {}", version::server_version(&s).await?);
    Ok(())
}
