//! `berthctl stack deploy|ls|services|ps|rm`: Docker Swarm's stack verbs for Compose files.

use anyhow::Result;
use ctl::compose;
use ctl::kubectl::stack;

use super::Global;

/// Arguments of `stack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand, Debug)]
enum Verb {
    /// Deploy a new stack or update an existing stack
    #[command(alias = "up")]
    Deploy {
        /// Path to a Compose file (repeat to merge files; later ones override)
        #[arg(short = 'c', long = "compose-file", required = true)]
        compose_file: Vec<String>,
        /// Prune services that are no longer referenced
        #[arg(long)]
        prune: bool,
        /// Stack name (also its namespace)
        stack: String,
    },
    /// List stacks
    #[command(alias = "list")]
    Ls,
    /// List the services in the stack
    Services {
        /// Stack name
        stack: String,
    },
    /// List the tasks (pods) in the stack
    Ps {
        /// Stack name
        stack: String,
    },
    /// Remove one or more stacks
    #[command(aliases = ["remove", "down"])]
    Rm {
        /// Stack names
        #[arg(required = true)]
        stacks: Vec<String>,
    },
}

/// Runs one stack verb.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let mut out = std::io::stdout();
    match a.verb {
        Verb::Deploy {
            compose_file,
            prune,
            stack: name,
        } => {
            // Convert before connecting: a bad file fails the same way with or without a cluster.
            let st = compose::load(&compose_file, &name, &|k| std::env::var(k).ok())?;
            let (s, c) = super::session_and_catalog(g).await?;
            stack::deploy(&s, &c, &st, prune, &mut out).await
        }
        Verb::Ls => print(stack::ls(&super::session(g).await?).await?),
        Verb::Services { stack: name } => {
            let lines = stack::services(&super::session(g).await?, &name).await?;
            if lines.len() == 1 {
                eprintln!("Nothing found in stack: {name}");
            }
            print(lines)
        }
        Verb::Ps { stack: name } => {
            let lines = stack::ps(&super::session(g).await?, &name).await?;
            if lines.len() == 1 {
                anyhow::bail!("nothing found in stack: {name}");
            }
            print(lines)
        }
        Verb::Rm { stacks } => {
            let s = super::session(g).await?;
            for name in stacks {
                if !stack::rm(&s, &name, &mut out).await? {
                    eprintln!("Nothing found in stack: {name}");
                }
            }
            Ok(())
        }
    }
}

fn print(lines: Vec<String>) -> Result<()> {
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
