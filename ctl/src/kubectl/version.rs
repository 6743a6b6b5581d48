//! `version`: the client version and the server's `/version`.

use anyhow::Result;

use crate::kubeconfig::Session;

/// berthctl's own version.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Returns the server's `gitVersion`.
pub async fn server_version(session: &Session) -> Result<String> {
    let info = session.client.apiserver_version().await?;
    Ok(info.git_version)
}
