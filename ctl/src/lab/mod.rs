//! `lab` verbs: local multi-node berth clusters made of network namespaces on a private bridge, and the fault
//! drills (`kill`, `restart`, `partition`, `heal`). Everything a lab creates is recorded in `{dir}/lab.json`;
//! `down` also finds leftovers by name pattern, so it works after a crash. A lab is TLS like any cluster:
//! its token is in `{dir}/token` (0600) and reaches the processes through their environment, and its
//! kubeconfig (0600) carries the CA and the admin client certificate the first server made.

pub mod host;
pub mod plan;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use plan::{Cidr, LabPlan, NodePlan, Role};

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

    fn node_mut(&mut self, name: &str) -> Result<(&NodePlan, &mut NodeRun)> {
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

fn build_network(state: &LabState) -> Result<()> {
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

fn start_node(plan: &LabPlan, token: &pki::Token, run: &mut NodeRun) -> Result<u32> {
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

fn start_all(state: &mut LabState) -> Result<()> {
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Node readiness as the API reports it: names of Ready nodes.
async fn ready_nodes(client: &kube::Client) -> Result<Vec<String>> {
    let list = crate::rest::get(client, "/api/v1/nodes").await?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

async fn lab_client(state: &LabState) -> Result<kube::Client> {
    let s = crate::kubeconfig::connect(&crate::kubeconfig::ConnectOptions {
        kubeconfig: Some(state.kubeconfig.clone()),
        ..Default::default()
    })
    .await?;
    Ok(s.client)
}

/// A client for the first server whose API answers (status must work while s1 is down).
async fn any_server_client(state: &LabState) -> Option<kube::Client> {
    for url in state.plan.api_urls() {
        let Ok(s) = crate::kubeconfig::connect(&crate::kubeconfig::ConnectOptions {
            kubeconfig: Some(state.kubeconfig.clone()),
            server: Some(url),
            ..Default::default()
        })
        .await
        else {
            continue;
        };
        let ok = tokio::time::timeout(Duration::from_secs(2), s.client.apiserver_version()).await;
        if matches!(ok, Ok(Ok(_))) {
            return Some(s.client);
        }
    }
    None
}

/// Waits (bounded) for the first server's admin credentials (then writes the lab kubeconfig), for the API
/// to answer over TLS and every agent to be Ready, showing progress on stderr. A node process that exits
/// meanwhile fails the wait with the end of its log.
pub async fn wait_ready(state: &LabState, timeout: Duration) -> Result<()> {
    // No client until the first server has made the CA and written its admin kubeconfig.
    let mut client: Option<kube::Client> = None;
    let agents: Vec<String> = state.plan.agents().map(|a| a.name.clone()).collect();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut last_line = String::new();
    let mut tick = 0usize;
    loop {
        for n in &state.nodes {
            let bin = n.binary_name();
            // Gone or a zombie: `/proc/PID/cmdline` is briefly empty while setsid and nsenter exec the
            // binary, so matching the command line here would report a starting node as exited.
            if n.pid.is_some_and(|p| host::cmdline(p).is_none()) {
                if tty {
                    eprintln!();
                }
                // `lab up` started it, so it is our child: its wait status says how it ended.
                let how = n
                    .pid
                    .and_then(|p| {
                        nix::sys::wait::waitpid(
                            nix::unistd::Pid::from_raw(p as i32),
                            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                        )
                        .ok()
                    })
                    .map(|s| format!(" ({s:?})"))
                    .unwrap_or_default();
                bail!(
                    "{} on node {} exited{how}; last lines of {}:\n{}\n(the lab is left as is: inspect it, then `berthctl lab down --name {}`)",
                    bin,
                    n.name,
                    n.log.display(),
                    tail(&n.log, 20),
                    state.plan.name
                );
            }
        }
        if client.is_none() && state.write_kubeconfig()? {
            client = Some(lab_client(state).await?);
        }
        let mut api = false;
        let mut ready = vec![];
        let mut bootstrapped = false;
        if let Some(client) = &client {
            api = tokio::time::timeout(Duration::from_secs(2), client.apiserver_version())
                .await
                .is_ok_and(|r| r.is_ok());
            if api {
                ready = tokio::time::timeout(Duration::from_secs(2), ready_nodes(client))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                // The leader creates the system namespaces; until then `apply` into `default` would fail.
                bootstrapped = tokio::time::timeout(
                    Duration::from_secs(2),
                    crate::rest::get(client, "/api/v1/namespaces/default"),
                )
                .await
                .is_ok_and(|r| r.is_ok());
            }
        }
        let n_ready = agents.iter().filter(|a| ready.contains(a)).count();
        let done = bootstrapped && n_ready == agents.len();
        let secs = start.elapsed().as_secs();
        let status = format!(
            "API {}  nodes Ready {n_ready}/{}",
            match (&client, api) {
                (None, _) => "waiting for the admin certificate",
                (Some(_), true) => "up (TLS)",
                (Some(_), false) => "waiting",
            },
            agents.len()
        );
        if tty {
            let mark = if done {
                '✓'
            } else {
                spinner[tick % spinner.len()]
            };
            eprint!("\r\x1b[K{mark} {secs:>3}s  {status}");
            let _ = std::io::stderr().flush();
        } else if status != last_line {
            eprintln!("[{secs:>3}s] {status}");
        }
        last_line = status;
        tick += 1;
        if done {
            if tty {
                eprintln!();
            }
            return Ok(());
        }
        if start.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            bail!(
                "lab {} not ready after {}s ({last_line}); logs are in {} (the lab is left running: \
                 `berthctl lab status`, then `berthctl lab down --name {}`)",
                state.plan.name,
                timeout.as_secs(),
                state.dir.display(),
                state.plan.name
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

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
fn agent_leftovers(dir: &Path) -> (Vec<String>, Vec<String>) {
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

fn load_required(name: &str, dir: Option<&Path>) -> Result<LabState> {
    let d = lab_dir(name, dir);
    LabState::load(&d)?
        .with_context(|| format!("no lab {name} (no {})", LabState::path(&d).display()))
}

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

/// The Raft leader as the servers publish it: the holder of a `kube-system` Lease whose name mentions the
/// leader (or the only lease there).
async fn leader(client: &kube::Client) -> Option<String> {
    let v = tokio::time::timeout(
        Duration::from_secs(3),
        crate::rest::get(
            client,
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
        ),
    )
    .await
    .ok()?
    .ok()?;
    let items = v["items"].as_array()?.clone();
    let pick = items
        .iter()
        .find(|l| {
            l["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.contains("leader"))
        })
        .or_else(|| (items.len() == 1).then(|| &items[0]))?;
    pick["spec"]["holderIdentity"].as_str().map(str::to_string)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_finds_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan::plan("t", 1, 2, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
        let nodes = p
            .nodes
            .iter()
            .map(|n| NodeRun {
                name: n.name.clone(),
                binary: PathBuf::from("/bin/x"),
                args: vec![],
                pid: Some(1),
                log: dir.path().join("x.log"),
                data_dir: dir.path().join(&n.name),
                partitioned: false,
                env: vec![],
            })
            .collect();
        let mut s = LabState {
            plan: p,
            dir: dir.path().to_path_buf(),
            kubeconfig: dir.path().join("kubeconfig"),
            nodes,
        };
        s.save().unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap().unwrap(), s);
        assert_eq!(s.node_mut("t-a2").unwrap().1.name, "a2");
        assert!(s.node_mut("a9").is_err());
        assert!(LabState::load(&dir.path().join("nope")).unwrap().is_none());
    }

    #[test]
    fn token_file_and_tls_kubeconfig_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = plan::plan("t", 2, 1, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
        let nodes = p
            .nodes
            .iter()
            .map(|n| NodeRun {
                name: n.name.clone(),
                binary: PathBuf::from("/bin/x"),
                args: p.args(n, &dir.path().join(&n.name).to_string_lossy()),
                pid: None,
                log: dir.path().join("x.log"),
                data_dir: dir.path().join(&n.name),
                partitioned: false,
                env: vec![],
            })
            .collect();
        let s = LabState {
            plan: p,
            dir: dir.path().to_path_buf(),
            kubeconfig: dir.path().join("kubeconfig"),
            nodes,
        };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert!(s.token().is_err());
        let t = pki::Token::generate().unwrap();
        pki::write_private(&s.token_path(), format!("{t}\n").as_bytes()).unwrap();
        assert_eq!(s.token().unwrap().to_string(), t.to_string());
        assert_eq!(mode(&s.token_path()), 0o600);
        s.save().unwrap();
        let json = std::fs::read_to_string(LabState::path(dir.path())).unwrap();
        assert!(!json.contains(&t.secret), "the token leaked into lab.json");

        // Not yet: the first server has not written its admin kubeconfig.
        assert!(!s.write_kubeconfig().unwrap());
        let admin = s.admin_kubeconfig_path().unwrap();
        assert_eq!(admin, dir.path().join("s1/pki/admin.kubeconfig"));
        std::fs::create_dir_all(admin.parent().unwrap()).unwrap();
        std::fs::write(&admin, plan::tests::admin_kubeconfig_fixture().0).unwrap();
        assert!(s.write_kubeconfig().unwrap());
        assert_eq!(mode(&s.kubeconfig), 0o600);
        let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).unwrap();
        assert_eq!(
            kc.clusters[1].cluster.as_ref().unwrap().server.as_deref(),
            Some("https://172.29.8.12:6443")
        );
    }

    #[test]
    fn server_env_parses_and_round_trips() {
        assert_eq!(
            parse_env("BERTH_TEST_X=1").unwrap(),
            ("BERTH_TEST_X".into(), "1".into())
        );
        assert_eq!(parse_env("A_b=x=y").unwrap(), ("A_b".into(), "x=y".into()));
        for bad in ["NOEQ", "=1", "1A=2", "A-B=1", "BERTH_TOKEN=abc.def"] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
        let p = plan::plan("t", 1, 0, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = LabState {
            nodes: vec![NodeRun {
                name: "s1".into(),
                binary: PathBuf::from("/bin/x"),
                args: vec![],
                pid: None,
                log: dir.path().join("x.log"),
                data_dir: dir.path().join("s1"),
                partitioned: false,
                env: vec![("BERTH_TEST_X".into(), "1".into())],
            }],
            plan: p,
            dir: dir.path().to_path_buf(),
            kubeconfig: dir.path().join("kubeconfig"),
        };
        s.save().unwrap();
        assert_eq!(LabState::load(dir.path()).unwrap().unwrap(), s);
        // A lab.json written before the field existed still loads.
        let old = std::fs::read_to_string(LabState::path(dir.path()))
            .unwrap()
            .replace("\"env\"", "\"unused\"");
        std::fs::write(LabState::path(dir.path()), old).unwrap();
        assert!(LabState::load(dir.path()).unwrap().unwrap().nodes[0]
            .env
            .is_empty());
    }

    #[test]
    fn default_dir_and_binary_search() {
        assert_eq!(lab_dir("x", None), PathBuf::from("/var/lib/berth/labs/x"));
        assert_eq!(
            lab_dir("x", Some(Path::new("/tmp/l"))),
            PathBuf::from("/tmp/l")
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("berth-server"), "").unwrap();
        assert_eq!(
            find_binary("berth-server", Some(d.path())).unwrap(),
            d.path().join("berth-server")
        );
        assert!(find_binary("berth-agent", Some(d.path())).is_err());
    }
}
