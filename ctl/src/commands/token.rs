//! `berthctl token create|list|delete` (kubeadm's `token` verbs): bootstrap tokens agents join with.

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use ctl::kubectl::token::{self, CreateOptions};

use super::Global;

/// Arguments of `token`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Create a bootstrap token on the server and print it
    Create {
        /// The token to create (`[a-z0-9]{6}.[a-z0-9]{16}`; default: a new random one)
        #[arg(value_name = "TOKEN")]
        new_token: Option<String>,
        /// How long the token is valid (0: never expires)
        #[arg(long, default_value = "24h")]
        ttl: humantime::Duration,
        /// What the token may be used for
        #[arg(long, value_delimiter = ',', default_value = "signing,authentication")]
        usages: Vec<String>,
        /// A human-friendly description of the token
        #[arg(long)]
        description: Option<String>,
    },
    /// List bootstrap tokens on the server
    List,
    /// Delete bootstrap tokens on the server (by id or whole token)
    Delete {
        /// Token ids (`abcdef`) or tokens (`abcdef.0123456789abcdef`)
        #[arg(required = true)]
        tokens: Vec<String>,
    },
}

/// Runs a token verb.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let s = super::session(g).await?;
    match a.verb {
        Verb::Create {
            new_token,
            ttl,
            usages,
            description,
        } => {
            let token = new_token.map(|t| pki::Token::parse(&t)).transpose()?;
            let t = token::create(
                &s,
                &CreateOptions {
                    token,
                    ttl: Duration::from(ttl),
                    usages,
                    description,
                },
            )
            .await?;
            println!("{t}");
        }
        Verb::List => {
            for l in token::list(&s).await? {
                println!("{l}");
            }
        }
        Verb::Delete { tokens } => {
            for l in token::delete(&s, &tokens).await? {
                println!("{l}");
            }
        }
    }
    Ok(())
}
