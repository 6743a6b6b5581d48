//! The lab's view through its API: admin clients, Ready nodes, the Raft leader, and waiting until ready.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::host;
use super::state::LabState;

/// Node readiness as the API reports it: names of Ready nodes.
pub(super) async fn ready_nodes(client: &kube::Client) -> Result<Vec<String>> {
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

pub(super) async fn lab_client(state: &LabState) -> Result<kube::Client> {
    let s = crate::kubeconfig::connect(&crate::kubeconfig::ConnectOptions {
        kubeconfig: Some(state.kubeconfig.clone()),
        ..Default::default()
    })
    .await?;
    Ok(s.client)
}

/// A client for the first server whose API answers (status must work while s1 is down).
pub(super) async fn any_server_client(state: &LabState) -> Option<kube::Client> {
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

/// The Raft leader as the servers publish it: the holder of a `kube-system` Lease whose name mentions the
/// leader (or the only lease there).
pub(super) async fn leader(client: &kube::Client) -> Option<String> {
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

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
