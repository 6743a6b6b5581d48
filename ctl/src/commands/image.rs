//! `berthctl image load FILE [--nodes a1,a2]`.

use anyhow::Result;
use clap::Subcommand;
use ctl::kubectl::image;

use super::Global;

/// Arguments of `image`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Load an image tar (OCI layout or docker save) onto the nodes, like `kind load image-archive`
    Load {
        /// The image tar
        file: String,
        /// Only these nodes (comma-separated; default: all)
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
}

/// Runs an image verb.
pub async fn run(g: &Global, a: Args) -> Result<()> {
    match a.verb {
        Verb::Load { file, nodes } => {
            let s = super::session(g).await?;
            image::load(&s, &file, &nodes, &mut std::io::stdout()).await
        }
    }
}
