//! `lab down`: remove everything a lab made, from `lab.json` and from name patterns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::host;
use super::plan::{self};
use super::state::{lab_dir, LabState, NodeRun, LABS_ROOT};

/// What `down` removed.
#[derive(Debug, Default, PartialEq)]
pub struct DownReport {
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces deleted.
    pub netns: Vec<String>,
    /// Links deleted.
    pub links: Vec<String>,
    /// Whether the lab directory was removed.
    pub removed_dir: bool,
}

/// Pod network namespaces and container ids the lab's agents recorded under `dir/<node>/pods` and
/// `dir/<node>/containers` (pod dirs are `{namespace}_{name}_{uid}`; the agent names a pod's namespace
/// `berth-` + the first 12 alphanumerics of its uid).
pub(super) fn agent_leftovers(dir: &Path) -> (Vec<String>, Vec<String>) {
    let entries = |p: PathBuf| -> Vec<String> {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut netns = Vec::new();
    let mut containers = Vec::new();
    for node in entries(dir.to_path_buf()) {
        for pod in entries(dir.join(&node).join("pods")) {
            if let Some((_, uid)) = pod.rsplit_once('_') {
                let short: String = uid
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(12)
                    .collect();
                netns.push(format!("berth-{short}"));
            }
        }
        containers.extend(entries(dir.join(&node).join("containers")));
    }
    netns.sort();
    netns.dedup();
    (netns, containers)
}

/// `lab down`: stops every lab process, deletes namespaces, veths and the bridge, unmounts and removes the lab
/// directory. Idempotent; works from `lab.json` and, for what a crash left unrecorded, from name patterns.
pub fn down(name: &str, dir: Option<&Path>) -> Result<DownReport> {
    if !host::is_root() {
        bail!("lab needs root (it deletes network namespaces and a bridge)");
    }
    plan::validate_name(name)?;
    let dir = lab_dir(name, dir);
    let state = LabState::load(&dir).ok().flatten();
    let mut report = DownReport::default();

    let mut netns: Vec<String> = host::netns_list()
        .into_iter()
        .filter(|n| plan::is_lab_netns(name, n))
        .collect();
    if let Some(s) = &state {
        for n in &s.plan.nodes {
            if !netns.contains(&n.netns) && host::netns_list().contains(&n.netns) {
                netns.push(n.netns.clone());
            }
        }
    }
    // Processes: recorded PIDs (checked against the binary, PIDs get reused), everything inside the node
    // namespaces, and anything still running out of the lab directory (container supervisors).
    let mut pids: Vec<u32> = Vec::new();
    if let Some(s) = &state {
        pids.extend(s.nodes.iter().filter_map(NodeRun::live_pid));
    }
    for n in &netns {
        pids.extend(host::netns_pids(n));
    }
    // Containers live in their pods' namespaces, not the node's: find them from the agents' records.
    let (pod_netns, container_ids) = agent_leftovers(&dir);
    for n in &pod_netns {
        pids.extend(host::netns_pids(n));
    }
    let d = dir.canonicalize().unwrap_or(dir.clone());
    let needle = format!("{}/", d.display().to_string().trim_end_matches('/'));
    if dir.exists() {
        pids.extend(host::pids_matching(&needle));
    }
    // Containers the agents lost track of (or whose records are gone): found by their rootfs mounts, and
    // their pod namespaces by the namespace they run in.
    let orphans = host::pids_with_root_under(&needle);
    let mut pod_netns = pod_netns;
    for &p in &orphans {
        if let Some(n) = host::netns_name_of(p) {
            if !netns.contains(&n) && !pod_netns.contains(&n) {
                pod_netns.push(n);
            }
        }
    }
    pids.extend(orphans);
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|&p| p != std::process::id());
    report.processes = pids.len();
    let left = host::terminate(&pids, Duration::from_secs(5));
    if !left.is_empty() {
        eprintln!("warning: processes still alive after SIGKILL: {left:?}");
    }

    for id in &container_ids {
        // The OCI runtime's state (and cgroups) outlive the killed processes until deleted.
        for rt in ["crun", "runc"] {
            host::run_quiet(&[rt, "delete", "--force", id]);
        }
    }
    for n in netns.iter().chain(&pod_netns) {
        // A pod namespace that still holds a process is not ours to remove (or not dead yet).
        let is_node = netns.contains(n);
        if !is_node && !host::netns_pids(n).is_empty() {
            eprintln!("warning: not deleting namespace {n}: processes still run in it");
            continue;
        }
        if host::netns_list().contains(n) && host::run_quiet(&["ip", "netns", "del", n]) {
            report.netns.push(n.clone());
        }
    }
    let bridge = plan::bridge_name(name);
    for l in host::link_list() {
        if (l == bridge || plan::is_lab_veth(name, &l))
            && host::run_quiet(&["ip", "link", "del", &l])
        {
            report.links.push(l);
        }
    }

    if dir.exists() {
        let remaining = host::unmount_all_under(&dir);
        if !remaining.is_empty() {
            bail!(
                "not removing {}: still mounted: {}",
                dir.display(),
                remaining.join(", ")
            );
        }
        // Only a directory that is recognisably a lab's is removed.
        let is_lab = LabState::path(&dir).exists() || dir.starts_with(LABS_ROOT) || state.is_some();
        if is_lab {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("failed to remove {}", dir.display()))?;
            report.removed_dir = true;
        }
    }
    Ok(report)
}
