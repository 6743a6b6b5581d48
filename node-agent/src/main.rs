//! `berth-agent`: runs the pods bound to this node.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "berth-agent", about = "berth node agent")]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Internal: supervise one container (started by the agent itself).
    Supervise {
        /// Container state directory.
        #[arg(long)]
        dir: PathBuf,
        /// OCI runtime binary.
        #[arg(long)]
        runtime: PathBuf,
        /// Log rotation size in bytes.
        #[arg(long, default_value_t = node_agent::runtime::linux::DEFAULT_LOG_MAX)]
        log_max: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Some(Mode::Supervise {
            dir,
            runtime,
            log_max,
        }) => {
            let code = node_agent::runtime::supervisor::run(
                node_agent::runtime::supervisor::SuperviseArgs {
                    dir,
                    runtime,
                    log_max,
                },
            );
            std::process::exit(code);
        }
        None => Ok(()),
    }
}
