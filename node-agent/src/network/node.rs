//! The façade the agent drives: [`NodeNetwork::setup`] once after Join (bridge, overlay device, base nft table,
//! CNI config), [`NodeNetwork::apply_view`] on every network view, [`NodeNetwork::pod_network`] for the pod manager,
//! and [`NodeNetwork::dns_server`] to run the node-local DNS.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use proto::agentpb::{NetworkView, NodeRoute, ServiceView};

use super::cni::{CniBinaries, CniConfig, CniExec, CniPodNetwork, DEFAULT_CNI_BIN_DIR};
use super::dns::{self, DnsServer, DnsTable, SharedTable};
use super::netlink::{IpTool, Netlink};
use super::overlay::{Overlay, VXLAN_DEV, VXLAN_OVERHEAD};
use super::services::{ProxyConfig, ServiceProxy};
use super::{Error, Ipv4Net, PodNetwork, Result};

/// Name of the pod bridge.
pub const BRIDGE: &str = "berth0";

/// Settings of the node network, mostly from the Join response.
#[derive(Debug, Clone)]
pub struct NodeNetworkConfig {
    /// This node's name.
    pub node_name: String,
    /// Underlay address of this node (JoinRequest.node_ip): VXLAN local address, NodePort address.
    pub node_ip: Ipv4Addr,
    /// This node's pod CIDR (JoinResponse.pod_cidr), e.g. 10.244.3.0/24.
    pub pod_cidr: Ipv4Net,
    /// Cluster pod CIDR (JoinResponse.cluster_cidr), default 10.244.0.0/16.
    pub cluster_cidr: Ipv4Net,
    /// Service CIDR (JoinResponse.service_cidr), routed onto the bridge so the node itself (and host-network pods)
    /// can reach ClusterIPs even without a default route; DNAT rewrites the destination before it matters.
    pub service_cidr: Option<Ipv4Net>,
    /// DNS domain (JoinResponse.cluster_domain), default `cluster.local`.
    pub cluster_domain: String,
    /// Cluster DNS VIP (JoinResponse.cluster_dns, 10.96.0.10): redirected to this node's DNS server.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Agent data dir; CNI state goes to `{data_dir}/cni`.
    pub data_dir: PathBuf,
    /// Directory of the CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Whether to run the VXLAN overlay (false for a single-node cluster).
    pub overlay: bool,
    /// Underlay MTU; detected from the device carrying `node_ip` when `None` (1500 if not found).
    pub underlay_mtu: Option<u32>,
    /// Explicit upstream for non-cluster names (`--dns-upstream`); see [`dns::pick_upstream`].
    pub dns_upstream: Option<SocketAddr>,
}

impl NodeNetworkConfig {
    /// Defaults for everything but the node identity and data dir.
    pub fn new(
        node_name: &str,
        node_ip: Ipv4Addr,
        pod_cidr: Ipv4Net,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        NodeNetworkConfig {
            node_name: node_name.into(),
            node_ip,
            pod_cidr: pod_cidr.trunc(),
            cluster_cidr: Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16),
            service_cidr: Some(Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 16)),
            cluster_domain: "cluster.local".into(),
            cluster_dns: Some(Ipv4Addr::new(10, 96, 0, 10)),
            data_dir: data_dir.into(),
            cni_bin_dir: DEFAULT_CNI_BIN_DIR.into(),
            overlay: true,
            underlay_mtu: None,
            dns_upstream: None,
        }
    }

    /// The bridge gateway (`.1` of the pod CIDR), where the node's DNS server listens.
    pub fn gateway(&self) -> Ipv4Addr {
        super::nth(&self.pod_cidr, 1)
    }
}

/// The MAC of the pod bridge: `0a:58:` + the four bytes of the gateway address (as OVN-Kubernetes does).
/// Locally administered, unicast, and the same on every agent restart, so pods' ARP entries stay valid.
pub fn bridge_mac(gateway: Ipv4Addr) -> String {
    let o = gateway.octets();
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The network of one node.
pub struct NodeNetwork {
    cfg: NodeNetworkConfig,
    netlink: Arc<dyn Netlink>,
    overlay: Option<Overlay>,
    proxy: Arc<Mutex<ServiceProxy>>,
    dns: SharedTable,
    pods: Arc<CniPodNetwork>,
    mtu: u32,
}

impl std::fmt::Debug for NodeNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeNetwork")
            .field("cfg", &self.cfg)
            .field("mtu", &self.mtu)
            .finish()
    }
}

impl NodeNetwork {
    /// Sets up the node with the real tools, in the netns `tool` targets (`IpTool::host()` for the agent).
    ///
    /// # Errors
    /// See [`NodeNetwork::setup_with`].
    pub fn setup(cfg: NodeNetworkConfig, tool: IpTool) -> Result<Self> {
        let cni = CniBinaries::new(cfg.cni_bin_dir.clone(), tool.clone());
        Self::setup_with(cfg, Arc::new(tool), Box::new(cni))
    }

    /// Sets up the node through the given seams: enables forwarding, creates `berth0` with the gateway address,
    /// the VXLAN device, the base nft table (replacing leftovers), and writes the CNI config. Idempotent: an agent
    /// restart calls it again with the same config and running pods keep working.
    ///
    /// # Errors
    /// A kernel operation failed or the data dir is not writable.
    pub fn setup_with(
        cfg: NodeNetworkConfig,
        netlink: Arc<dyn Netlink>,
        cni: Box<dyn CniExec>,
    ) -> Result<Self> {
        if cfg.pod_cidr.prefix_len() > 30 || !cfg.cluster_cidr.contains(&cfg.pod_cidr.network()) {
            return Err(Error::InvalidConfig(format!(
                "pod cidr {} is not a subnet of cluster cidr {}",
                cfg.pod_cidr, cfg.cluster_cidr
            )));
        }
        let underlay = match cfg.underlay_mtu {
            Some(m) => m,
            None => netlink
                .link_of_addr(cfg.node_ip)?
                .map(|l| l.mtu)
                .unwrap_or(1500),
        };
        let mtu = if cfg.overlay {
            underlay - VXLAN_OVERHEAD
        } else {
            underlay
        };
        netlink.sysctl("net.ipv4.ip_forward", "1")?;
        // Same-node service traffic is bridged on the way back; conntrack must see it to undo the DNAT.
        if let Err(e) = netlink.sysctl("net.bridge.bridge-nf-call-iptables", "1") {
            tracing::warn!(error = %e, "br_netfilter unavailable; same-node service replies may bypass conntrack");
        }
        // A bridge without an address of its own takes the lowest MAC among its ports, so it changes whenever
        // a pod comes or goes. Pods that cached the old gateway MAC then lose DNS and every routed packet
        // until their ARP entry expires (seen as 30-60 s DNS outages after pod churn).
        netlink.add_bridge(BRIDGE, &bridge_mac(cfg.gateway()), mtu)?;
        // Service traffic is routed back out of the bridge it came in on; ICMP redirects for it would be wrong (the
        // pod cannot reach a ClusterIP directly) and eat the per-host ICMP budget that rejects need.
        for dev in ["all", BRIDGE] {
            if let Err(e) = netlink.sysctl(&format!("net.ipv4.conf.{dev}.send_redirects"), "0") {
                tracing::warn!(error = %e, "cannot disable icmp redirects");
            }
        }
        netlink.add_address(
            BRIDGE,
            Ipv4Net::new_assert(cfg.gateway(), cfg.pod_cidr.prefix_len()),
        )?;
        if let Some(svc) = cfg.service_cidr {
            netlink.route_replace_dev(BRIDGE, svc)?;
        }
        let overlay = if cfg.overlay {
            let o = Overlay::new(netlink.clone(), cfg.node_ip, cfg.pod_cidr, mtu);
            o.ensure_device()?;
            Some(o)
        } else {
            None
        };
        let mut proxy = ServiceProxy::new(
            netlink.clone(),
            ProxyConfig {
                cluster_cidr: cfg.cluster_cidr,
                pod_cidr: cfg.pod_cidr,
                bridge: BRIDGE.into(),
                dns_redirect: cfg.cluster_dns.map(|vip| (vip, cfg.gateway())),
            },
        );
        proxy.apply(&[])?;
        let proxy = Arc::new(Mutex::new(proxy));
        let pods = CniPodNetwork::new(
            CniConfig {
                bridge: BRIDGE.into(),
                pod_cidr: cfg.pod_cidr,
                mtu,
                state_dir: cfg.data_dir.join("cni"),
                node_ip: cfg.node_ip,
            },
            cni,
        )?
        .with_proxy(proxy.clone());
        let dns = Arc::new(RwLock::new(DnsTable::new(&cfg.cluster_domain)));
        tracing::info!(node = %cfg.node_name, pod_cidr = %cfg.pod_cidr, mtu, "node network ready");
        Ok(NodeNetwork {
            cfg,
            netlink,
            overlay,
            proxy,
            dns,
            pods: Arc::new(pods),
            mtu,
        })
    }

    /// The [`PodNetwork`] the pod manager calls per pod.
    pub fn pod_network(&self) -> Arc<dyn PodNetwork> {
        self.pods.clone()
    }

    /// Applies a *complete* network view (the agent merges deltas into its copy first): overlay entries for every
    /// node, service rules, DNS records. Each part is applied even if another fails; the first error is returned
    /// and the next call retries (all parts are idempotent).
    ///
    /// # Errors
    /// An overlay or nft operation failed.
    pub fn apply_view(&self, view: &NetworkView) -> Result<()> {
        let a = self.apply_nodes(&view.nodes);
        let b = self.apply_services(&view.services);
        a.and(b)
    }

    /// Updates the overlay for the given full node list.
    ///
    /// # Errors
    /// An `ip`/`bridge` command failed.
    pub fn apply_nodes(&self, nodes: &[NodeRoute]) -> Result<()> {
        match &self.overlay {
            Some(o) => o.apply(nodes).map(drop),
            None => Ok(()),
        }
    }

    /// Updates service rules and DNS records for the given full service list.
    ///
    /// # Errors
    /// The nft transaction failed (DNS is updated regardless).
    pub fn apply_services(&self, services: &[ServiceView]) -> Result<()> {
        *self.dns.write().unwrap() = DnsTable::from_services(&self.cfg.cluster_domain, services);
        self.proxy.lock().unwrap().apply(services)
    }

    /// The DNS server of this node. Bind its sockets with [`dns::bind_dns`]`((gateway, 53))` and `run` it.
    /// `host_resolv_conf` is the text of the host's /etc/resolv.conf (used only for a loopback upstream).
    pub fn dns_server(&self, host_resolv_conf: &str) -> DnsServer {
        DnsServer::new(
            self.dns.clone(),
            dns::pick_upstream(self.cfg.dns_upstream, host_resolv_conf),
        )
    }

    /// The resolv.conf for a pod in `pod_ns` (nameserver = the bridge gateway).
    pub fn resolv_conf(&self, pod_ns: &str) -> String {
        dns::resolv_conf_in(pod_ns, self.cfg.gateway(), &self.cfg.cluster_domain)
    }

    /// Bridge gateway address (DNS server address for pods).
    pub fn gateway(&self) -> Ipv4Addr {
        self.cfg.gateway()
    }

    /// MTU of pod interfaces.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The configuration.
    pub fn config(&self) -> &NodeNetworkConfig {
        &self.cfg
    }

    /// Removes everything `setup` created on the node (nft table, VXLAN device, bridge). Pods must be torn down
    /// first. For `lab down` and tests; the agent does *not* call this on a normal restart.
    ///
    /// # Errors
    /// A kernel operation failed.
    pub fn remove(&self) -> Result<()> {
        let r = self.proxy.lock().unwrap().remove();
        self.netlink.delete_link(VXLAN_DEV)?;
        self.netlink.delete_link(BRIDGE)?;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::cni::FakeCni;
    use crate::network::fake::FakeNetlink;
    use proto::agentpb::{Endpoint, ServicePort};

    fn setup(dir: &std::path::Path) -> (NodeNetwork, Arc<FakeNetlink>) {
        let fake =
            Arc::new(FakeNetlink::new().with_underlay("eth0", Ipv4Addr::new(172, 31, 0, 1), 9000));
        let cfg = NodeNetworkConfig::new(
            "n1",
            Ipv4Addr::new(172, 31, 0, 1),
            "10.244.1.0/24".parse().unwrap(),
            dir,
        );
        (
            NodeNetwork::setup_with(cfg, fake.clone(), Box::new(FakeCni::new())).unwrap(),
            fake,
        )
    }

    #[test]
    fn setup_builds_bridge_overlay_and_table_with_overlay_mtu() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = setup(dir.path());
        assert_eq!(n.mtu(), 8950, "underlay 9000 minus VXLAN overhead");
        let bridge = fake.link(BRIDGE).unwrap().unwrap();
        assert_eq!(bridge.mtu, 8950);
        assert_eq!(
            bridge.mac, "0a:58:0a:f4:01:01",
            "the bridge's own MAC, derived from the gateway 10.244.1.1"
        );
        assert_eq!(
            fake.addresses(BRIDGE).unwrap(),
            vec!["10.244.1.1/24".parse().unwrap()]
        );
        assert_eq!(fake.link(VXLAN_DEV).unwrap().unwrap().mtu, 8950);
        assert_eq!(
            fake.sysctl_value("net.ipv4.ip_forward").as_deref(),
            Some("1")
        );
        assert!(fake.nft_scripts()[0].contains("table ip berth {"));
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        assert!(n.resolv_conf("default").contains("nameserver 10.244.1.1"));
    }

    #[test]
    fn rejects_pod_cidr_outside_cluster_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeNetlink::new());
        let cfg = NodeNetworkConfig::new(
            "n1",
            Ipv4Addr::new(172, 31, 0, 1),
            "10.9.1.0/24".parse().unwrap(),
            dir.path(),
        );
        assert!(matches!(
            NodeNetwork::setup_with(cfg, fake, Box::new(FakeCni::new())),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn apply_view_programs_overlay_services_and_dns() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = setup(dir.path());
        let view = NetworkView {
            nodes: vec![
                NodeRoute {
                    name: "n1".into(),
                    node_ip: "172.31.0.1".into(),
                    pod_cidr: "10.244.1.0/24".into(),
                    ready: true,
                },
                NodeRoute {
                    name: "n2".into(),
                    node_ip: "172.31.0.2".into(),
                    pod_cidr: "10.244.2.0/24".into(),
                    ready: true,
                },
            ],
            services: vec![ServiceView {
                namespace: "default".into(),
                name: "web".into(),
                cluster_ip: "10.96.0.20".into(),
                r#type: "ClusterIP".into(),
                session_affinity: String::new(),
                ports: vec![ServicePort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 80,
                    node_port: 0,
                    target_port: 80,
                }],
                endpoints: vec![Endpoint {
                    ip: "10.244.2.2".into(),
                    pod_name: "w".into(),
                    node_name: "n2".into(),
                    ready: true,
                }],
            }],
        };
        n.apply_view(&view).unwrap();
        assert_eq!(fake.routes(VXLAN_DEV).unwrap().len(), 1);
        assert!(fake
            .nft_scripts()
            .last()
            .unwrap()
            .contains("dnat to 10.244.2.2:80"));
        let table = n.dns.read().unwrap().clone();
        let q = dns::wire::Question {
            name: "web.default.svc.cluster.local".into(),
            qtype: dns::wire::TYPE_A,
            qclass: 1,
        };
        assert!(matches!(
            dns::resolve(&table, &q),
            dns::Resolution::Answer { .. }
        ));
    }
}
