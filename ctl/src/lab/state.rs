//! `lab.json`: what a lab created, where it lives, and how to find it again.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::host;
use super::plan::{self, LabPlan, NodePlan};

/// Where labs live unless `--dir` says otherwise.
pub const LABS_ROOT: &str = "/var/lib/berth/labs";

/// A lab's directory: `--dir` or `/var/lib/berth/labs/{name}`.
pub fn lab_dir(name: &str, dir: Option<&Path>) -> PathBuf {
    dir.map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(LABS_ROOT).join(name))
}

/// A running node as recorded in `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeRun {
    /// Node name (`s1`).
    pub name: String,
    /// The binary started.
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// PID of the last start (None before the first start).
    pub pid: Option<u32>,
    /// stdout/stderr log.
    pub log: PathBuf,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Cut off the bridge by `lab partition`.
    #[serde(default)]
    pub partitioned: bool,
    /// Extra environment (`lab up --server-env`), kept here so `lab restart` starts the process the
    /// same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
}

/// Everything a lab made (`{dir}/lab.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabState {
    /// Names, addresses and links.
    pub plan: LabPlan,
    /// The lab directory.
    pub dir: PathBuf,
    /// The kubeconfig written for the host.
    pub kubeconfig: PathBuf,
    /// Per-node processes.
    pub nodes: Vec<NodeRun>,
}

impl NodeRun {
    /// The live PID of this node's process. The data dir in the command line guards against a reused PID.
    pub fn live_pid(&self) -> Option<u32> {
        self.pid
            .filter(|&p| host::alive(p, &self.data_dir.to_string_lossy()))
    }

    /// The binary's file name, for messages.
    pub fn binary_name(&self) -> String {
        self.binary
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl LabState {
    /// `{dir}/lab.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("lab.json")
    }

    /// `{dir}/token`: the cluster token (0600), kept out of `lab.json` and out of every command line.
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("token")
    }

    /// The cluster token from [`Self::token_path`].
    ///
    /// # Errors
    /// When the file is missing or does not hold a token.
    pub fn token(&self) -> Result<pki::Token> {
        let p = self.token_path();
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("failed to read the lab token {}", p.display()))?;
        pki::Token::parse(&text).with_context(|| format!("invalid lab token in {}", p.display()))
    }

    /// `{first server's data dir}/pki/admin.kubeconfig`, written by berth-server once it has its PKI.
    pub fn admin_kubeconfig_path(&self) -> Option<PathBuf> {
        let first = self.plan.servers().next()?;
        let run = self.nodes.iter().find(|n| n.name == first.name)?;
        Some(run.data_dir.join(plan::ADMIN_KUBECONFIG))
    }

    /// Writes the lab kubeconfig (0600) from the first server's admin kubeconfig. `Ok(false)` while the
    /// server has not written it yet.
    ///
    /// # Errors
    /// When the admin kubeconfig exists but is unusable, or the lab kubeconfig cannot be written.
    pub fn write_kubeconfig(&self) -> Result<bool> {
        let Some(admin) = self.admin_kubeconfig_path() else {
            bail!("lab {} has no server", self.plan.name);
        };
        let Some(text) = pki::read_if_exists(&admin)? else {
            return Ok(false);
        };
        // The server writes it atomically, so a partial file is a real error, not a race.
        let creds = plan::AdminCredentials::from_kubeconfig(&text)
            .with_context(|| format!("unusable {}", admin.display()))?;
        pki::write_private(&self.kubeconfig, self.plan.kubeconfig(&creds).as_bytes())?;
        Ok(true)
    }

    /// Reads `lab.json` (None when absent).
    pub fn load(dir: &Path) -> Result<Option<LabState>> {
        let p = Self::path(dir);
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("failed to read {}", p.display()))?;
        Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))?,
        ))
    }

    /// Writes `lab.json` atomically (a crash never leaves half a record).
    pub fn save(&self) -> Result<()> {
        let p = Self::path(&self.dir);
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }

    pub(super) fn node_mut(&mut self, name: &str) -> Result<(&NodePlan, &mut NodeRun)> {
        let Some(np) = self.plan.node(name) else {
            let names: Vec<_> = self.plan.nodes.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "lab {} has no node {name:?} (nodes: {})",
                self.plan.name,
                names.join(", ")
            );
        };
        let short = np.name.clone();
        let run = self
            .nodes
            .iter_mut()
            .find(|n| n.name == short)
            .context("lab.json has no process record for the node")?;
        let np = self
            .plan
            .nodes
            .iter()
            .find(|n| n.name == short)
            .context("node vanished")?;
        Ok((np, run))
    }
}

pub(super) fn load_required(name: &str, dir: Option<&Path>) -> Result<LabState> {
    let d = lab_dir(name, dir);
    LabState::load(&d)?
        .with_context(|| format!("no lab {name} (no {})", LabState::path(&d).display()))
}
