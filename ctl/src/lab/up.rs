//! `lab up`: build the network, start the server and agent processes, wait until the cluster is ready.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::down::down;
use super::host;
use super::plan::{self, Cidr, LabPlan, Role};
use super::ready::wait_ready;
use super::state::{lab_dir, LabState, NodeRun};

/// Finds `berth-server` and `berth-agent`: `--bin-dir`, then next to berthctl, then `$PATH`.
pub fn find_binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = bin_dir {
        dirs.push(d.to_path_buf());
    } else {
        if let Some(d) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(d);
        }
        if let Some(p) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&p));
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "cannot find {name} (looked in {}); build it (cargo build) or pass --bin-dir",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Options of `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Lab name.
    pub name: String,
    /// Number of servers.
    pub servers: usize,
    /// Number of agents.
    pub agents: usize,
    /// Lab directory override.
    pub dir: Option<PathBuf>,
    /// Where the binaries are.
    pub bin_dir: Option<PathBuf>,
    /// Subnet override (refused if it overlaps a host route).
    pub subnet: Option<Cidr>,
    /// Bound on waiting for the API and Ready nodes.
    pub timeout: Duration,
    /// Extra environment for every server process (test hooks such as fault modes).
    pub server_env: Vec<(String, String)>,
}

/// Parses one `--server-env KEY=VALUE`. The cluster token is the lab's own and may not be replaced.
///
/// # Errors
/// When there is no `=`, the name is empty or not `[A-Za-z_][A-Za-z0-9_]*`, or it names the token.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        bail!("invalid --server-env {s:?}: expected KEY=VALUE");
    };
    let valid = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        bail!("invalid --server-env {s:?}: {k:?} is not an environment variable name");
    }
    if k == plan::TOKEN_ENV {
        bail!("--server-env may not set {k}: the lab makes its own token");
    }
    Ok((k.to_string(), v.to_string()))
}

/// `lab up`: builds the network, starts the processes, writes the kubeconfig, waits until ready.
pub async fn up(opts: &UpOptions) -> Result<LabState> {
    if !host::is_root() {
        bail!("lab needs root (it creates network namespaces and a bridge)");
    }
    plan::validate_name(&opts.name)?;
    let server_bin = find_binary(Role::Server.binary(), opts.bin_dir.as_deref())?;
    let agent_bin = find_binary(Role::Agent.binary(), opts.bin_dir.as_deref())?;
    let dir = lab_dir(&opts.name, opts.dir.as_deref());
    if LabState::path(&dir).exists() {
        bail!(
            "lab {} already exists ({}); run `berthctl lab down --name {}` first",
            opts.name,
            dir.display(),
            opts.name
        );
    }
    let bridge = plan::bridge_name(&opts.name);
    let leftovers: Vec<String> = host::netns_list()
        .into_iter()
        .filter(|n| plan::is_lab_netns(&opts.name, n))
        .chain(
            host::link_list()
                .into_iter()
                .filter(|l| *l == bridge || plan::is_lab_veth(&opts.name, l)),
        )
        .collect();
    if !leftovers.is_empty() {
        bail!(
            "leftovers of an earlier lab {} exist ({}); run `berthctl lab down --name {}` first",
            opts.name,
            leftovers.join(", "),
            opts.name
        );
    }
    // Two `lab up`s at once would pick the same free subnet: hold a host-wide lock until the bridge owns it.
    let lock = host::lock_file(Path::new("/run/berthctl-lab.lock"))?;
    let routes = plan::parse_routes(&host::host_routes()?);
    let subnet = match opts.subnet {
        Some(s) => {
            plan::check_subnet(&s, &routes)?;
            s
        }
        None => plan::pick_subnet(&routes)
            .context("no free 172.29.x.0/24 for the lab; pass --subnet")?,
    };
    let lab = plan::plan(&opts.name, opts.servers, opts.agents, subnet)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let token = pki::Token::generate().context("failed to make the lab token")?;
    pki::write_private(&dir.join("token"), format!("{token}\n").as_bytes())?;
    let nodes = lab
        .nodes
        .iter()
        .map(|n| {
            let data_dir = dir.join(&n.name);
            NodeRun {
                name: n.name.clone(),
                binary: match n.role {
                    Role::Server => server_bin.clone(),
                    Role::Agent => agent_bin.clone(),
                },
                args: lab.args(n, &data_dir.to_string_lossy()),
                pid: None,
                log: dir.join(format!("{}.log", n.name)),
                data_dir,
                partitioned: false,
                env: match n.role {
                    Role::Server => opts.server_env.clone(),
                    Role::Agent => vec![],
                },
            }
        })
        .collect();
    let mut state = LabState {
        kubeconfig: dir.join("kubeconfig"),
        plan: lab,
        dir: dir.clone(),
        nodes,
    };
    // Record intent before touching the host, so `down` can clean up after a crash part-way.
    state.save()?;
    let built = build_network(&state);
    drop(lock);
    if let Err(e) = built.and_then(|()| start_all(&mut state)) {
        eprintln!("lab up failed, cleaning up: {e:#}");
        let _ = down(&opts.name, Some(&dir));
        return Err(e);
    }
    println!(
        "lab {} on {} (bridge {}): {} servers, {} agents",
        state.plan.name,
        state.plan.subnet,
        state.plan.bridge,
        state.plan.servers().count(),
        state.plan.agents().count()
    );
    wait_ready(&state, opts.timeout).await?;
    println!("export KUBECONFIG={}", state.kubeconfig.display());
    Ok(state)
}

pub(super) fn build_network(state: &LabState) -> Result<()> {
    for c in state.plan.bridge_commands() {
        host::run(&c)?;
    }
    for n in &state.plan.nodes {
        for c in state.plan.node_commands(n) {
            host::run(&c)?;
        }
    }
    Ok(())
}

pub(super) fn start_node(plan: &LabPlan, token: &pki::Token, run: &mut NodeRun) -> Result<u32> {
    let np = plan.node(&run.name).context("unknown node")?;
    std::fs::create_dir_all(&run.data_dir)?;
    let token = token.to_string();
    let env: Vec<(&str, &str)> = std::iter::once((plan::TOKEN_ENV, token.as_str()))
        .chain(run.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let pid = host::spawn_in_netns(&np.netns, &run.binary, &run.args, &env, &run.log)?;
    run.pid = Some(pid);
    Ok(pid)
}

pub(super) fn start_all(state: &mut LabState) -> Result<()> {
    let token = state.token()?;
    // Servers first: agents retry their join, but there is no point in starting them before a server.
    for role in [Role::Server, Role::Agent] {
        for i in 0..state.nodes.len() {
            let is_role = state
                .plan
                .node(&state.nodes[i].name)
                .is_some_and(|n| n.role == role);
            if is_role {
                let plan = state.plan.clone();
                start_node(&plan, &token, &mut state.nodes[i])?;
                state.save()?;
            }
        }
    }
    Ok(())
}
