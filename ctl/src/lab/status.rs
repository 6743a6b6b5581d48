//! `lab status`: each node's process and network, and the API's view.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::plan::Role;
use super::ready::{any_server_client, leader, ready_nodes};
use super::state::load_required;

/// One line per node for `lab status`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Address.
    pub ip: String,
    /// Last PID.
    pub pid: Option<u32>,
    /// Process alive.
    pub running: bool,
    /// Cut off by `lab partition`.
    pub partitioned: bool,
}

/// `lab status`: process and network state of every node, plus the API's view (node Ready, leader).
pub async fn status(name: &str, dir: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let state = load_required(name, dir)?;
    writeln!(
        out,
        "lab {}  subnet {}  bridge {}  dir {}",
        state.plan.name,
        state.plan.subnet,
        state.plan.bridge,
        state.dir.display()
    )?;
    let client = any_server_client(&state).await;
    let ready = match &client {
        Some(c) => tokio::time::timeout(Duration::from_secs(3), ready_nodes(c))
            .await
            .ok()
            .and_then(Result::ok),
        None => None,
    };
    let mut grid = vec![vec![
        "NODE".to_string(),
        "ROLE".into(),
        "IP".into(),
        "PID".into(),
        "PROCESS".into(),
        "NETWORK".into(),
        "K8S".into(),
    ]];
    for n in &state.nodes {
        let np = state.plan.node(&n.name).context("node missing from plan")?;
        let running = n.live_pid().is_some();
        let k8s = match (np.role, &ready) {
            (Role::Server, _) => "-".to_string(),
            (Role::Agent, Some(r)) if r.contains(&n.name) => "Ready".into(),
            (Role::Agent, Some(_)) => "NotReady".into(),
            (Role::Agent, None) => "?".into(),
        };
        grid.push(vec![
            n.name.clone(),
            format!("{:?}", np.role).to_lowercase(),
            np.ip.to_string(),
            n.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            if running { "running" } else { "stopped" }.into(),
            if n.partitioned {
                "partitioned"
            } else {
                "connected"
            }
            .into(),
            k8s,
        ]);
    }
    for l in crate::table::align(&grid) {
        writeln!(out, "{l}")?;
    }
    let leader = match &client {
        Some(c) => leader(c).await,
        None => None,
    };
    writeln!(
        out,
        "leader: {}",
        leader.unwrap_or_else(|| "unknown (API unreachable or no leader lease)".into())
    )?;
    writeln!(out, "kubeconfig: {}", state.kubeconfig.display())?;
    Ok(())
}
