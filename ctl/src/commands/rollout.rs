//! `berthctl rollout status|history|undo|restart deploy/NAME` (`status` and `restart` also `ds/NAME`).

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use ctl::kubectl::rollout::{self, Target};

use super::Global;

/// Arguments of `rollout`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Watch a rollout until it completes
    Status {
        /// deploy/NAME or ds/NAME
        target: String,
        /// Give up after this long (0 = wait forever)
        #[arg(long, default_value = "0s")]
        timeout: humantime::Duration,
    },
    /// Show the revisions (ReplicaSets) of a deployment
    History {
        /// deploy/NAME
        target: String,
        /// Show this revision's pod template
        #[arg(long, default_value_t = 0)]
        revision: i64,
    },
    /// Roll back to the previous (or a given) revision
    Undo {
        /// deploy/NAME
        target: String,
        /// Revision to roll back to (0 = the previous one)
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Restart every pod of a deployment or daemon set with a rolling update
    Restart {
        /// deploy/NAME or ds/NAME
        target: String,
    },
}

/// Runs a rollout verb.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let (s, c) = super::session_and_catalog(g).await?;
    match a.verb {
        Verb::Status { target, timeout } => {
            rollout::status(
                &s,
                &c,
                Target::parse(&target)?,
                Duration::from(timeout),
                &mut std::io::stdout(),
            )
            .await?;
        }
        Verb::History { target, revision } => {
            print!(
                "{}",
                rollout::history(&s, &c, Target::parse(&target)?, revision).await?
            );
            println!();
        }
        Verb::Undo {
            target,
            to_revision,
        } => {
            println!(
                "{}",
                rollout::undo(&s, &c, Target::parse(&target)?, to_revision).await?
            );
        }
        Verb::Restart { target } => {
            println!(
                "{}",
                rollout::restart(&s, &c, Target::parse(&target)?).await?
            );
        }
    }
    Ok(())
}
