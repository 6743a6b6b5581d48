//! The I/O half of the service proxy: remembers what it last programmed and hands the transaction that
//! `render` computes to `nft` through the [`Netlink`] seam.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use proto::agentpb::ServiceView;

use super::render::{transaction, Programmed, ProxyConfig, TABLE};
use crate::network::netlink::Netlink;
use crate::network::{Error, HostPort, Result};

/// kube-proxy for one node. Keeps what it last programmed per service so an update touches only services whose
/// rendering changed. The first `apply` (and the one after any failure) replaces the whole table atomically, which
/// also clears leftovers of a previous agent run.
pub struct ServiceProxy {
    netlink: Arc<dyn Netlink>,
    cfg: ProxyConfig,
    /// The services last asked for.
    services: Vec<ServiceView>,
    /// Pod UID -> (its IP, its host ports), as last published.
    host_ports: BTreeMap<String, (Ipv4Addr, Vec<HostPort>)>,
    programmed: Option<Programmed>,
}

impl std::fmt::Debug for ServiceProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceProxy")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl ServiceProxy {
    /// A proxy that has programmed nothing yet.
    pub fn new(netlink: Arc<dyn Netlink>, cfg: ProxyConfig) -> Self {
        ServiceProxy {
            netlink,
            cfg,
            services: Vec::new(),
            host_ports: BTreeMap::new(),
            programmed: None,
        }
    }

    /// Forwards the node's `ports` to the pod `pod_uid` at `ip`, replacing what it published before (`&[]`
    /// withdraws them).
    ///
    /// # Errors
    /// Another pod holds one of the ports (nothing changes), or `nft` failed.
    pub fn publish(&mut self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<()> {
        for p in ports {
            let holder = self.host_ports.iter().find(|(uid, (_, theirs))| {
                uid.as_str() != pod_uid
                    && theirs
                        .iter()
                        .any(|t| t.protocol == p.protocol && t.host_port == p.host_port)
            });
            if let Some((uid, _)) = holder {
                return Err(Error::InvalidConfig(format!(
                    "hostPort {}/{} is already published by pod {uid}",
                    p.host_port, p.protocol
                )));
            }
        }
        if ports.is_empty() {
            if self.host_ports.remove(pod_uid).is_none() {
                return Ok(());
            }
        } else {
            self.host_ports
                .insert(pod_uid.to_string(), (ip, ports.to_vec()));
        }
        self.sync()
    }

    /// Programs the complete set of services (the full list from the network view, not a delta). Services that
    /// disappeared are removed; unchanged services are not touched.
    ///
    /// # Errors
    /// `nft` rejected the transaction; nothing of it was applied, and the next call rebuilds the whole table.
    pub fn apply(&mut self, services: &[ServiceView]) -> Result<()> {
        self.services = services.to_vec();
        self.sync()
    }

    /// Writes the difference between what is programmed and what is asked for.
    fn sync(&mut self) -> Result<()> {
        let new = Programmed::wanted(&self.cfg, &self.services, &self.host_ports);
        // Taken, not copied: on success it is replaced by `new`, on failure it must be rebuilt anyway.
        let old = self.programmed.take();
        let script = transaction(&self.cfg, old.as_ref(), &new);
        if !script.is_empty() {
            // `programmed` stays None on failure, so the next call rebuilds the whole table.
            self.netlink.nft(&script)?;
        }
        self.programmed = Some(new);
        Ok(())
    }

    /// Removes the table (agent shutdown with `--cleanup`, tests).
    ///
    /// # Errors
    /// `nft` failed.
    pub fn remove(&mut self) -> Result<()> {
        self.programmed = None;
        self.netlink
            .nft(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"))
    }
}
