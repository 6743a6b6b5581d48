//! Liveness and readiness probes: exec through the runtime, httpGet and tcpSocket from a helper thread
//! that enters the pod's network namespace (so they work with or without a routable pod IP).

use super::{container_specs, PodManager, ProbeState};
use crate::runtime::{ContainerRuntime, RunState};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A probe's period or delay, at most int32 seconds as Kubernetes declares them: a larger number
/// would overflow the clock it is added to and kill the pod manager (#13).
fn secs(probe: &Value, key: &str, default: u64) -> Duration {
    let n = probe[key].as_u64().unwrap_or(default);
    Duration::from_secs(n.min(i32::MAX.unsigned_abs().into()))
}

/// Resolves a probe port: a number, or the name of one of the container's ports.
fn probe_port(port: &Value, container: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    container["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["containerPort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
}

/// Runs `f` on a thread inside the network namespace at `netns` (or the host's when `None`).
fn in_netns<T: Send + 'static>(
    netns: Option<PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        if let Some(path) = netns {
            let fd = std::fs::File::open(path).ok()?;
            nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        }
        Some(f())
    })
    .join()
    .ok()
    .flatten()
}

/// One probe attempt; true on success.
pub(super) fn run_probe(
    rt: &dyn ContainerRuntime,
    probe: &Value,
    container: &Value,
    id: &str,
    netns: Option<&Path>,
    ip: Option<std::net::Ipv4Addr>,
) -> bool {
    let timeout = secs(probe, "timeoutSeconds", 1).max(Duration::from_millis(100));
    if let Some(cmd) = probe["exec"]["command"].as_array() {
        let cmd: Vec<String> = cmd
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        return rt
            .exec(id, &cmd, timeout)
            .map(|o| o.exit_code == 0)
            .unwrap_or(false);
    }
    let (section, http) = if probe["httpGet"].is_object() {
        (&probe["httpGet"], true)
    } else if probe["tcpSocket"].is_object() {
        (&probe["tcpSocket"], false)
    } else {
        return true;
    };
    let Some(port) = probe_port(&section["port"], container) else {
        return false;
    };
    let host = section["host"]
        .as_str()
        .and_then(|h| h.parse().ok())
        .or(ip)
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let addr = SocketAddr::from((host, port));
    let path = section["path"].as_str().unwrap_or("/").to_string();
    in_netns(netns.map(Path::to_path_buf), move || {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else { return false };
        if !http {
            return true;
        }
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_write_timeout(Some(timeout));
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let line = String::from_utf8_lossy(&buf[..n]);
        // Success is any status from 200 to 399, as in the kubelet.
        line.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).is_some_and(|c| (200..400).contains(&c))
    })
    .unwrap_or(false)
}

fn step(state: &mut ProbeState, probe: &Value, ok: bool, now: SystemTime) {
    state.next_at = Some(now + secs(probe, "periodSeconds", 10).max(Duration::from_secs(1)));
    if ok {
        state.successes += 1;
        state.failures = 0;
        if state.successes >= probe["successThreshold"].as_u64().unwrap_or(1) as u32 {
            state.ok = true;
        }
    } else {
        state.failures += 1;
        state.successes = 0;
        if state.failures >= probe["failureThreshold"].as_u64().unwrap_or(3) as u32 {
            state.ok = false;
        }
    }
}

impl PodManager {
    pub(super) fn probe_pod(&mut self, uid: &str, now: SystemTime) {
        let rt = self.rt.clone();
        let p = self.pods.get_mut(uid).expect("pod");
        let grace = p.pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        let netns = if p.pod["spec"]["hostNetwork"].as_bool().unwrap_or(false) {
            None
        } else {
            p.netns.clone()
        };
        for cs in container_specs(&p.pod) {
            let name = cs["name"].as_str().unwrap_or("");
            let Some(c) = p.containers.get_mut(name) else {
                continue;
            };
            let (Some(id), Some(st)) = (c.current.clone(), c.status.clone()) else {
                continue;
            };
            if st.state != RunState::Running {
                continue;
            }
            let readiness = &cs["readinessProbe"];
            if readiness.is_object() {
                let due = *c
                    .readiness
                    .next_at
                    .get_or_insert(now + secs(readiness, "initialDelaySeconds", 0));
                if now >= due {
                    let ok = run_probe(rt.as_ref(), readiness, &cs, &id, netns.as_deref(), p.ip);
                    step(&mut c.readiness, readiness, ok, now);
                }
            } else {
                c.readiness.ok = true;
            }
            let liveness = &cs["livenessProbe"];
            if liveness.is_object() && c.kill_at.is_none() {
                let due = *c
                    .liveness
                    .next_at
                    .get_or_insert(now + secs(liveness, "initialDelaySeconds", 0));
                if now >= due {
                    let ok = run_probe(rt.as_ref(), liveness, &cs, &id, netns.as_deref(), p.ip);
                    let failures_before = c.liveness.failures;
                    step(&mut c.liveness, liveness, ok, now);
                    let threshold = liveness["failureThreshold"].as_u64().unwrap_or(3) as u32;
                    if !ok && failures_before + 1 >= threshold {
                        tracing::info!(
                            pod = uid,
                            container = name,
                            "liveness probe failed, killing container"
                        );
                        let _ = rt.signal(&id, 15);
                        c.kill_at = Some(now + super::pod_kill::grace_secs(grace));
                    }
                }
            }
            if c.kill_at.is_some_and(|t| now >= t) {
                let _ = rt.signal(&id, 9);
                c.kill_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_durations_are_bounded_so_the_clock_never_overflows() {
        let p = serde_json::json!({"periodSeconds": u64::MAX, "initialDelaySeconds": 5});
        let period = secs(&p, "periodSeconds", 10);
        assert_eq!(period, Duration::from_secs(2_147_483_647));
        assert!(std::time::Instant::now().checked_add(period).is_some());
        assert_eq!(secs(&p, "initialDelaySeconds", 0), Duration::from_secs(5));
        assert_eq!(secs(&p, "timeoutSeconds", 1), Duration::from_secs(1));
    }
}
