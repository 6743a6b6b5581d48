//! One short function per subcommand; the work happens in the `ctl` library.

pub mod apply;
pub mod autoscale;
pub mod bench;
pub mod delete;
pub mod describe;
pub mod get;
pub mod image;
pub mod lab;
pub mod logs;
pub mod node;
pub mod rollout;
pub mod scale;
pub mod stack;
pub mod token;
pub mod top;
pub mod version;

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Result;
use ctl::kubeconfig::{self, ConnectOptions, Session};
use ctl::resources::Catalog;

/// Flags every kubectl-like verb understands.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace scope for this request
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The address of the API server (https://host:port), overriding the kubeconfig
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Path to a CA certificate file (PEM) that verifies the API server
    #[arg(long, global = true, value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Do not verify the server's certificate (insecure: anyone on the path can read and change traffic)
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

static SERVER: OnceLock<String> = OnceLock::new();

/// The API server address of this run, for connection error messages.
pub fn server_for_errors() -> Option<String> {
    SERVER.get().cloned()
}

/// Connects with the global flags.
pub async fn session(g: &Global) -> Result<Session> {
    let s = kubeconfig::connect(&ConnectOptions {
        kubeconfig: g.kubeconfig.clone(),
        context: g.context.clone(),
        namespace: g.namespace.clone(),
        server: g.server.clone(),
        token: g.token.clone(),
        certificate_authority: g.certificate_authority.clone(),
        insecure_skip_tls_verify: g.insecure_skip_tls_verify,
    })
    .await?;
    let _ = SERVER.set(s.server.clone());
    Ok(s)
}

/// Connects and runs discovery.
pub async fn session_and_catalog(g: &Global) -> Result<(Session, Catalog)> {
    let s = session(g).await?;
    let c = Catalog::discover(&s.client).await?;
    Ok((s, c))
}
