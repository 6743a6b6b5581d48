//! A minimal pod network used until `crate::network` provides the real one: the sandbox netns gets
//! loopback only and no pod IP (Docker's `none` network). Same trait shape as `network::PodNetwork`.

use std::net::Ipv4Addr;
use std::path::Path;

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
        host_network: bool,
    ) -> Result<Option<Ipv4Addr>, String>;
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
        _: bool,
    ) -> Result<Option<Ipv4Addr>, String> {
        Ok(None)
    }
    fn teardown(&self, _: &str, _: &Path) -> Result<(), String> {
        Ok(())
    }
}
