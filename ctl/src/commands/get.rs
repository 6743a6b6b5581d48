//! `berthctl get TYPE [NAME] [-o wide|yaml|json|name] [-l SELECTOR] [-A] [-w]`.

use anyhow::Result;
use ctl::kubectl::get::{self, GetRequest, Output};

use super::Global;

/// Arguments of `get`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// TYPE[,TYPE] [NAME...] or TYPE/NAME...
    #[arg(required = true)]
    args: Vec<String>,
    /// Output format: wide, yaml, json or name
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Label selector (e.g. app=web)
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Field selector (e.g. spec.nodeName=a1)
    #[arg(long)]
    field_selector: Option<String>,
    /// List across all namespaces
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Watch for changes after listing
    #[arg(short = 'w', long)]
    watch: bool,
}

/// Prints the requested objects.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    let output = match a.output.as_deref() {
        None => Output::Table,
        Some(o) => o.parse()?,
    };
    let (s, c) = super::session_and_catalog(g).await?;
    let req = GetRequest {
        args: a.args,
        output,
        selector: a.selector,
        field_selector: a.field_selector,
        all_namespaces: a.all_namespaces,
        watch: a.watch,
    };
    get::get(&s, &c, &req, &mut std::io::stdout().lock()).await
}
