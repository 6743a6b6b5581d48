//! `berthctl describe TYPE NAME` (or `TYPE/NAME`).

use anyhow::{bail, Result};
use ctl::kubectl::describe;
use ctl::resources::split_type_name;

use super::Global;

/// Arguments of `describe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TYPE NAME, or TYPE/NAME
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
}

/// Prints the summary and events.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let (kind, name) = match a.target.as_slice() {
        [one] => match split_type_name(one) {
            (k, Some(n)) => (k.to_string(), n.to_string()),
            _ => bail!("describing every object of a type is not supported; name one (TYPE NAME)"),
        },
        [k, n] => (k.clone(), n.clone()),
        _ => bail!("expected TYPE NAME"),
    };
    let (s, c) = super::session_and_catalog(g).await?;
    print!("{}", describe::describe(&s, &c, &kind, &name).await?);
    Ok(())
}
