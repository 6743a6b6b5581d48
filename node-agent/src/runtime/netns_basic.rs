//! The pod manager's view of the pod network: [`NetworkHook`], implemented by [`Network`] over
//! `crate::network::PodNetwork`, and by [`LoopbackOnly`] (loopback only, no pod IP) for tests and benches.

use crate::network::{HostPort, NetworkMode, PodNetwork};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

/// What the pod manager needs from the pod network; the network module's `PodNetwork` is adapted to it.
pub trait NetworkHook: Send + Sync {
    /// Wires the pod's netns into the node network and returns its IP (`None` when it has none).
    ///
    /// # Errors
    /// A message describing why the network could not be set up.
    fn setup(
        &self,
        pod_uid: &str,
        pod_ns: &str,
        pod_name: &str,
        netns: &Path,
        mode: NetworkMode,
    ) -> Result<Option<Ipv4Addr>, String>;
    /// Forwards the node's `ports` to the pod at `ip` (its `hostPort`s); `teardown` withdraws them.
    ///
    /// # Errors
    /// A message describing why the ports could not be published.
    fn publish(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<(), String>;
    /// Undoes `setup`.
    ///
    /// # Errors
    /// A message describing why teardown failed.
    fn teardown(&self, pod_uid: &str, netns: &Path) -> Result<(), String>;
}

/// Loopback-only networking: the runtime already brings `lo` up when it creates the netns.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopbackOnly;

impl NetworkHook for LoopbackOnly {
    fn setup(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &Path,
        _: NetworkMode,
    ) -> Result<Option<Ipv4Addr>, String> {
        Ok(None)
    }
    fn publish(&self, _: &str, _: Ipv4Addr, ports: &[HostPort]) -> Result<(), String> {
        if ports.is_empty() {
            Ok(())
        } else {
            Err("hostPort needs the pod network".into())
        }
    }
    fn teardown(&self, _: &str, _: &Path) -> Result<(), String> {
        Ok(())
    }
}

/// The real pod network (`crate::network::PodNetwork`) seen as a [`NetworkHook`].
pub struct Network(pub Arc<dyn PodNetwork>);

impl NetworkHook for Network {
    fn setup(
        &self,
        pod_uid: &str,
        pod_ns: &str,
        pod_name: &str,
        netns: &Path,
        mode: NetworkMode,
    ) -> Result<Option<Ipv4Addr>, String> {
        match mode {
            NetworkMode::Isolated => self
                .0
                .setup_isolated(pod_uid, netns)
                .map(|_| None)
                .map_err(|e| e.to_string()),
            NetworkMode::Host => self
                .0
                .setup(pod_uid, pod_ns, pod_name, netns, true)
                .map(|ip| Some(ip.ip))
                .map_err(|e| e.to_string()),
            NetworkMode::Pod => self
                .0
                .setup(pod_uid, pod_ns, pod_name, netns, false)
                .map(|ip| Some(ip.ip))
                .map_err(|e| e.to_string()),
        }
    }
    fn publish(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<(), String> {
        self.0
            .publish(pod_uid, ip, ports)
            .map_err(|e| e.to_string())
    }
    fn teardown(&self, pod_uid: &str, netns: &Path) -> Result<(), String> {
        self.0.teardown(pod_uid, netns).map_err(|e| e.to_string())
    }
}
