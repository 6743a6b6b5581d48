//! Starting a pod: the sandbox (a pinned netns wired by the pod network), volumes, /etc/hosts and
//! resolv.conf, then each container in spec order, honouring back-off.

use super::{container_specs, spec, Ctr, PodManager};
use crate::images::PullPolicy;
use crate::network::{host_ports, network_mode, HostPort, NetworkMode};
use crate::runtime::{ContainerConfig, MountSpec};
use apimachinery::time::rfc3339;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::SystemTime;

impl PodManager {
    pub(super) fn start_pod(&mut self, uid: &str, now: SystemTime) {
        if self.pods[uid].netns.is_none() {
            if let Err(e) = self.create_sandbox(uid, now) {
                tracing::warn!(pod = uid, error = %e, "sandbox creation failed");
                self.pods.get_mut(uid).expect("pod").sandbox_error = Some(e);
                return;
            }
        }
        // Init containers run one at a time, in order, each to success, before any app container.
        for spec in super::init_specs(&self.pods[uid].pod) {
            let name = spec["name"].as_str().unwrap_or("").to_string();
            let c = self.pods[uid]
                .containers
                .get(&name)
                .cloned()
                .unwrap_or_default();
            if c.done && c.last.as_ref().and_then(|l| l.exit_code) == Some(0) {
                continue;
            }
            if !c.done && c.current.is_none() && c.not_before.is_none_or(|t| t <= now) {
                self.start_container(uid, &name, c, now);
            }
            return;
        }
        let names: Vec<String> = container_specs(&self.pods[uid].pod)
            .iter()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        for name in names {
            let c = self.pods[uid]
                .containers
                .get(&name)
                .cloned()
                .unwrap_or_default();
            if c.current.is_some() || c.done || c.not_before.is_some_and(|t| t > now) {
                continue;
            }
            self.start_container(uid, &name, c, now);
        }
    }

    fn create_sandbox(&mut self, uid: &str, now: SystemTime) -> Result<(), String> {
        let netns = self.rt.create_sandbox(uid).map_err(|e| e.to_string())?;
        let res = self.prepare_sandbox(uid, now, &netns);
        if res.is_err() {
            // Not recorded in the pod, so nothing else would remove it: a pod refused for a bad volume
            // must not leave a network namespace (and its addresses) behind at every retry.
            if let Err(e) = self.net.teardown(uid, &netns) {
                tracing::warn!(pod = uid, error = %e, "network teardown failed");
            }
            if let Err(e) = self.rt.remove_sandbox(uid) {
                tracing::warn!(pod = uid, error = %e, "sandbox removal failed");
            }
        }
        res
    }

    fn prepare_sandbox(
        &mut self,
        uid: &str,
        now: SystemTime,
        netns: &std::path::Path,
    ) -> Result<(), String> {
        let pod = self.pods[uid].pod.clone();
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let mode = pod_network_mode(&pod);
        let host_ports = host_ports_for(&pod, mode)?;
        let ip = self.net.setup(uid, ns, name, netns, mode)?;
        if let (Some(ip), NetworkMode::Pod) = (ip, mode) {
            self.net.publish(uid, ip, &host_ports)?;
        }
        let dir = self.pod_dir(&pod);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        self.write_etc_files(&pod, ip)
            .map_err(|e| format!("pod files: {e}"))?;
        self.prepare_volumes(uid)?;
        let p = self.pods.get_mut(uid).expect("pod");
        p.netns = Some(netns.to_path_buf());
        p.ip = ip;
        p.start_time.get_or_insert(now);
        p.sandbox_error = None;
        let rec = json!({"netns": netns, "ip": ip.map(|i| i.to_string()), "startTime": rfc3339(p.start_time.unwrap_or(now))});
        std::fs::write(dir.join("sandbox.json"), rec.to_string()).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The sandbox record a previous agent wrote: netns path, pod IP, start time.
    pub(super) fn read_sandbox(
        &self,
        pod: &Value,
    ) -> Option<(PathBuf, Option<Ipv4Addr>, Option<SystemTime>)> {
        let b = std::fs::read(self.pod_dir(pod).join("sandbox.json")).ok()?;
        let v: Value = serde_json::from_slice(&b).ok()?;
        let netns = PathBuf::from(v["netns"].as_str()?);
        let ip = v["ip"].as_str().and_then(|s| s.parse().ok());
        let t = v["startTime"]
            .as_str()
            .and_then(apimachinery::time::parse_rfc3339);
        Some((netns, ip, t))
    }

    fn write_etc_files(&self, pod: &Value, ip: Option<Ipv4Addr>) -> std::io::Result<()> {
        let dir = self.pod_dir(pod);
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if let Some(ip) = ip {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        std::fs::write(dir.join("hosts"), hosts)?;
        std::fs::write(dir.join("hostname"), format!("{name}\n"))?;
        let host_network = pod["spec"]["hostNetwork"].as_bool().unwrap_or(false);
        let policy = pod["spec"]["dnsPolicy"].as_str().unwrap_or("ClusterFirst");
        let resolv = if (host_network && policy != "ClusterFirstWithHostNet") || policy == "Default"
        {
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
        } else {
            let d = &self.settings.cluster_domain;
            format!(
                "search {ns}.svc.{d} svc.{d} {d}\nnameserver {}\noptions ndots:5\n",
                self.settings.cluster_dns
            )
        };
        std::fs::write(dir.join("resolv.conf"), resolv)
    }

    /// Leaves a container waiting with `reason` until `not_before` (a failed pull or a bad config).
    fn wait(
        &mut self,
        uid: &str,
        name: &str,
        mut c: Ctr,
        reason: &str,
        message: String,
        not_before: SystemTime,
    ) {
        c.waiting = Some((reason.into(), message));
        c.not_before = Some(not_before);
        if let Some(p) = self.pods.get_mut(uid) {
            p.containers.insert(name.to_string(), c);
        }
    }

    fn start_container(&mut self, uid: &str, name: &str, mut c: Ctr, now: SystemTime) {
        let p = &self.pods[uid];
        let pod = p.pod.clone();
        let Some(cspec) = super::init_specs(&pod)
            .into_iter()
            .chain(container_specs(&pod))
            .find(|c| c["name"] == name)
        else {
            return;
        };
        let image = cspec["image"].as_str().unwrap_or("").to_string();
        let policy = PullPolicy::from_spec(cspec["imagePullPolicy"].as_str(), &image);
        let resolved = match self.images.ensure(&image, policy) {
            Ok(r) => r,
            Err(e) => {
                let reason = if policy == PullPolicy::Never {
                    "ErrImageNeverPull"
                } else {
                    "ErrImagePull"
                };
                let delay = super::restart_delay(c.restart_count.max(1));
                return self.wait(uid, name, c, reason, e, now + delay);
            }
        };
        let attempt = if c.last.is_some() {
            c.restart_count + 1
        } else {
            c.restart_count
        };
        let ip = p.ip.map(|i| i.to_string());
        let (memory_limit, cpu_shares, cpu_quota) = spec::resources(&cspec);
        let (uid_n, gid_n) = match spec::user(&cspec, &pod, &resolved.config) {
            Ok(ids) => ids,
            Err(e) => {
                let at = now + super::restart_delay(1);
                return self.wait(uid, name, c, "CreateContainerConfigError", e, at);
            }
        };
        let security = match spec::security(&cspec, &pod, uid_n, &resolved.config.user) {
            Ok(s) => s,
            Err(e) => {
                let at = now + super::restart_delay(1);
                return self.wait(uid, name, c, "CreateContainerConfigError", e, at);
            }
        };
        let dir = self.pod_dir(&pod);
        let mut mounts = match self.volume_mounts(uid, &cspec) {
            Ok(m) => m,
            Err(e) => {
                let at = now + super::restart_delay(1);
                return self.wait(uid, name, c, "CreateContainerConfigError", e, at);
            }
        };
        for f in ["hosts", "hostname", "resolv.conf"] {
            if !mounts.iter().any(|m| m.destination == format!("/etc/{f}")) {
                mounts.push(MountSpec {
                    source: dir.join(f),
                    destination: format!("/etc/{f}"),
                    read_only: false,
                });
            }
        }
        let cwd = cspec["workingDir"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| resolved.config.working_dir.clone());
        let cfg = ContainerConfig {
            id: format!("{uid}-{name}-{attempt}"),
            pod_uid: uid.to_string(),
            pod_namespace: pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string(),
            pod_name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
            container_name: name.to_string(),
            attempt,
            image: image.clone(),
            image_id: resolved.image_id.clone(),
            layers: resolved.layers.clone(),
            args: spec::argv(&cspec, &resolved.config),
            env: spec::env(
                &cspec,
                &resolved.config,
                &pod,
                ip.as_deref(),
                &p.objects,
                &self.services,
            ),
            cwd: if cwd.is_empty() { "/".into() } else { cwd },
            uid: uid_n,
            gid: gid_n,
            hostname: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
            netns: if pod["spec"]["hostNetwork"].as_bool().unwrap_or(false) {
                None
            } else {
                p.netns.clone()
            },
            mounts,
            memory_limit,
            cpu_shares,
            cpu_quota,
            log_path: dir.join(name).join(format!("{attempt}.log")),
            spec_hash: String::new(),
            security,
        };
        // A leftover instance with the same ID (crash between start and record) is replaced.
        if self.rt.status(&cfg.id).is_some() {
            let _ = self.rt.remove(&cfg.id);
        }
        match self.rt.start(&cfg) {
            Ok(st) => {
                c.current = Some(cfg.id.clone());
                c.status = Some(st);
                c.restart_count = attempt;
                c.waiting = None;
                c.not_before = None;
                c.liveness = Default::default();
                c.readiness = Default::default();
            }
            Err(e) => {
                tracing::warn!(pod = uid, container = name, error = %e, "container start failed");
                let _ = self.rt.remove(&cfg.id);
                c.restart_count = attempt;
                c.last = Some({
                    let mut st = crate::runtime::ContainerStatus::created(cfg);
                    st.state = crate::runtime::RunState::Exited;
                    st.exit_code = Some(128);
                    st.reason = Some("StartError".into());
                    st.message = Some(e.to_string());
                    st.started_at = Some(rfc3339(now));
                    st.finished_at = Some(rfc3339(now));
                    st
                });
                c.waiting = Some(("RunContainerError".into(), e.to_string()));
                c.not_before = Some(now + super::restart_delay(attempt.max(1)));
            }
        }
        self.pods
            .get_mut(uid)
            .expect("pod")
            .containers
            .insert(name.to_string(), c);
    }
}

/// The pod's network mode, from `hostNetwork` and its annotations.
pub(super) fn pod_network_mode(pod: &Value) -> NetworkMode {
    let annotations = pod["metadata"]["annotations"].as_object();
    network_mode(
        pod["spec"]["hostNetwork"].as_bool().unwrap_or(false),
        annotations
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))),
    )
}

/// The hostPorts `pod` publishes in `mode`: none with hostNetwork (its container ports already are the node's
/// ports), and an error with network none, which has no address to forward to.
pub(super) fn host_ports_for(pod: &Value, mode: NetworkMode) -> Result<Vec<HostPort>, String> {
    let ports = host_ports(&pod["spec"])?;
    match mode {
        NetworkMode::Pod => Ok(ports),
        NetworkMode::Host => Ok(Vec::new()),
        NetworkMode::Isolated if ports.is_empty() => Ok(ports),
        NetworkMode::Isolated => {
            Err("hostPort needs the pod network (the pod asks for network none)".into())
        }
    }
}
