//! The fault drills: `kill`, `restart`, `partition` and `heal` a node.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::host;
use super::state::load_required;
use super::up::start_node;

/// `lab kill NODE`: SIGKILL the node's process (a crash, not a shutdown).
pub fn kill(name: &str, dir: Option<&Path>, node: &str) -> Result<String> {
    let mut state = load_required(name, dir)?;
    let (np, run) = state.node_mut(node)?;
    let bin = run.binary_name();
    let msg = match run.live_pid() {
        Some(p) => {
            host::signal(p, nix::sys::signal::Signal::SIGKILL);
            format!("node {} ({bin}, pid {p}) killed", np.name)
        }
        None => format!("node {} is not running", np.name),
    };
    state.save()?;
    Ok(msg)
}

/// `lab restart NODE`: stop the node's process if running and start it again with the same arguments.
pub fn restart(name: &str, dir: Option<&Path>, node: &str) -> Result<String> {
    let mut state = load_required(name, dir)?;
    let plan = state.plan.clone();
    let token = state.token()?;
    let (np, run) = state.node_mut(node)?;
    let node_name = np.name.clone();
    let bin = run.binary_name();
    if let Some(p) = run.live_pid() {
        host::terminate(&[p], Duration::from_secs(5));
    }
    let pid = start_node(&plan, &token, run)?;
    state.save()?;
    Ok(format!("node {node_name} restarted ({bin}, pid {pid})"))
}

/// `lab partition NODE`: cut the node off the bridge by setting its host-side veth down.
pub fn partition(name: &str, dir: Option<&Path>, node: &str) -> Result<String> {
    let mut state = load_required(name, dir)?;
    let (np, run) = state.node_mut(node)?;
    host::run(&[
        "ip".into(),
        "link".into(),
        "set".into(),
        np.veth_host.clone(),
        "down".into(),
    ])?;
    run.partitioned = true;
    let msg = format!("node {} partitioned ({} down)", np.name, np.veth_host);
    state.save()?;
    Ok(msg)
}

/// `lab heal [NODE]`: reconnect one or all partitioned nodes.
pub fn heal(name: &str, dir: Option<&Path>, node: Option<&str>) -> Result<Vec<String>> {
    let mut state = load_required(name, dir)?;
    let targets: Vec<String> = match node {
        Some(n) => vec![state.node_mut(n)?.0.name.clone()],
        None => state.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let mut out = Vec::new();
    for t in targets {
        let (np, run) = state.node_mut(&t)?;
        host::run(&[
            "ip".into(),
            "link".into(),
            "set".into(),
            np.veth_host.clone(),
            "up".into(),
        ])?;
        if run.partitioned {
            out.push(format!("node {} healed", np.name));
        }
        run.partitioned = false;
    }
    state.save()?;
    if out.is_empty() {
        out.push("no node was partitioned".into());
    }
    Ok(out)
}
