//! VXLAN overlay between nodes, after flannel's vxlan backend: one device `berth.1` (VNI 1, UDP 8472, nolearning)
//! whose MAC is derived from the node IP, and per peer node an FDB entry (peer VTEP MAC -> peer node IP), a permanent
//! neighbour (peer's `.0` overlay address -> VTEP MAC) and a route `PEER_CIDR via PEER.0 dev berth.1 onlink`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use proto::agentpb::NodeRoute;

use super::netlink::{FdbEntry, Neighbour, Netlink, Route, VxlanParams, VxlanSpec};
use super::{Ipv4Net, Result};

/// Name of the VXLAN device.
pub const VXLAN_DEV: &str = "berth.1";
/// VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// VXLAN UDP port (the Linux/flannel default, not IANA's 4789).
pub const VXLAN_PORT: u16 = 8472;
/// Bytes of VXLAN encapsulation (outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14) that pods must leave room for.
pub const VXLAN_OVERHEAD: u32 = 50;

/// The VTEP MAC of a node: `0e:be:` + the four bytes of its IP. Locally administered and unicast, and computable by
/// every peer from the node IP alone, so no MAC needs to travel in the network view.
pub fn vtep_mac(node_ip: Ipv4Addr) -> String {
    let o = node_ip.octets();
    format!("0e:be:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The entries the overlay device holds for a set of peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayState {
    /// Peer VTEP MAC -> peer node IP.
    pub fdb: BTreeSet<FdbEntry>,
    /// Peer `.0` address -> peer VTEP MAC.
    pub neigh: BTreeSet<Neighbour>,
    /// Peer pod CIDR via peer `.0`.
    pub routes: BTreeSet<Route>,
}

/// What [`Overlay::apply`] changed, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayChanges {
    /// Entries added or corrected.
    pub added: OverlayState,
    /// Stale entries removed.
    pub removed: OverlayState,
}

impl OverlayChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added == OverlayState::default() && self.removed == OverlayState::default()
    }
}

/// Desired overlay entries for `view` as seen from the node with `own_ip`/`own_cidr` (pure).
///
/// Peers are kept whether or not they are Ready: a NotReady node's pods may still be running (partition), and
/// endpoints, not routes, decide where service traffic goes. Entries that are malformed, duplicate a CIDR already
/// claimed, or overlap our own CIDR are skipped.
pub fn desired_state(own_ip: Ipv4Addr, own_cidr: Ipv4Net, view: &[NodeRoute]) -> OverlayState {
    let mut st = OverlayState::default();
    let mut seen_cidrs = BTreeSet::new();
    let mut peers: Vec<&NodeRoute> = view.iter().collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    for n in peers {
        let (Ok(ip), Ok(cidr)) = (
            n.node_ip.parse::<Ipv4Addr>(),
            super::parse_cidr(&n.pod_cidr),
        ) else {
            tracing::warn!(node = %n.name, ip = %n.node_ip, cidr = %n.pod_cidr, "skipping node with bad ip or pod cidr");
            continue;
        };
        let cidr = cidr.trunc();
        if ip == own_ip || cidr.contains(&own_cidr.network()) || own_cidr.contains(&cidr.network())
        {
            continue;
        }
        if !seen_cidrs.insert(cidr) {
            continue;
        }
        let mac = vtep_mac(ip);
        st.fdb.insert(FdbEntry {
            mac: mac.clone(),
            dst: ip,
        });
        st.neigh.insert(Neighbour {
            ip: cidr.network(),
            mac,
        });
        st.routes.insert(Route {
            dst: cidr,
            via: cidr.network(),
        });
    }
    st
}

/// The overlay of one node.
pub struct Overlay {
    netlink: Arc<dyn Netlink>,
    node_ip: Ipv4Addr,
    pod_cidr: Ipv4Net,
    mtu: u32,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("node_ip", &self.node_ip)
            .field("pod_cidr", &self.pod_cidr)
            .finish()
    }
}

impl Overlay {
    /// An overlay for the node at `node_ip` owning `pod_cidr`; `mtu` is the VXLAN device MTU (underlay − 50).
    pub fn new(netlink: Arc<dyn Netlink>, node_ip: Ipv4Addr, pod_cidr: Ipv4Net, mtu: u32) -> Self {
        Overlay {
            netlink,
            node_ip,
            pod_cidr: pod_cidr.trunc(),
            mtu,
        }
    }

    /// Creates `berth.1` (or fixes its MAC/MTU, or recreates it if VNI/local/port differ) and gives it the node's
    /// `.0/32` overlay address, the source of traffic from this node to remote pods.
    ///
    /// # Errors
    /// An `ip` command failed.
    pub fn ensure_device(&self) -> Result<()> {
        let params = VxlanParams {
            vni: VXLAN_VNI,
            local: self.node_ip,
            port: VXLAN_PORT,
        };
        let mac = vtep_mac(self.node_ip);
        match self.netlink.link(VXLAN_DEV)? {
            Some(l) if l.vxlan.as_ref() == Some(&params) => {
                if l.mac != mac {
                    self.netlink.set_mac(VXLAN_DEV, &mac)?;
                }
                if l.mtu != self.mtu {
                    self.netlink.set_mtu(VXLAN_DEV, self.mtu)?;
                }
            }
            existing => {
                if existing.is_some() {
                    self.netlink.delete_link(VXLAN_DEV)?;
                }
                self.netlink.add_vxlan(&VxlanSpec {
                    name: VXLAN_DEV.into(),
                    params,
                    mac,
                    mtu: self.mtu,
                })?;
            }
        }
        self.netlink
            .add_address(VXLAN_DEV, Ipv4Net::new_assert(self.pod_cidr.network(), 32))
    }

    /// The entries currently on the device.
    ///
    /// # Errors
    /// Listing failed.
    pub fn current(&self) -> Result<OverlayState> {
        Ok(OverlayState {
            fdb: self.netlink.fdb(VXLAN_DEV)?.into_iter().collect(),
            neigh: self.netlink.neighbours(VXLAN_DEV)?.into_iter().collect(),
            routes: self.netlink.routes(VXLAN_DEV)?.into_iter().collect(),
        })
    }

    /// Makes the device's entries match `view` (every node of the cluster; this node is skipped): adds what is
    /// missing, removes what belongs to nodes that left. Idempotent; a second call with the same view changes nothing.
    ///
    /// # Errors
    /// An `ip`/`bridge` command failed; entries applied before the failure stay, and the next call converges.
    pub fn apply(&self, view: &[NodeRoute]) -> Result<OverlayChanges> {
        let want = desired_state(self.node_ip, self.pod_cidr, view);
        let have = self.current()?;
        let ch = OverlayChanges {
            added: OverlayState {
                fdb: want.fdb.difference(&have.fdb).cloned().collect(),
                neigh: want.neigh.difference(&have.neigh).cloned().collect(),
                routes: want.routes.difference(&have.routes).cloned().collect(),
            },
            removed: OverlayState {
                fdb: have.fdb.difference(&want.fdb).cloned().collect(),
                neigh: have.neigh.difference(&want.neigh).cloned().collect(),
                routes: have.routes.difference(&want.routes).cloned().collect(),
            },
        };
        let nl = &self.netlink;
        // Removal first, routes before the entries they depend on; a changed entry is a removal plus an addition.
        for r in &ch.removed.routes {
            if !want.routes.iter().any(|w| w.dst == r.dst) {
                nl.route_delete(VXLAN_DEV, r)?;
            }
        }
        for n in &ch.removed.neigh {
            if !want.neigh.iter().any(|w| w.ip == n.ip) {
                nl.neigh_delete(VXLAN_DEV, n)?;
            }
        }
        for e in &ch.removed.fdb {
            nl.fdb_delete(VXLAN_DEV, e)?;
        }
        for e in &ch.added.fdb {
            nl.fdb_replace(VXLAN_DEV, e)?;
        }
        for n in &ch.added.neigh {
            nl.neigh_replace(VXLAN_DEV, n)?;
        }
        for r in &ch.added.routes {
            nl.route_replace(VXLAN_DEV, r)?;
        }
        if !ch.is_empty() {
            tracing::info!(
                added = ch.added.routes.len(),
                removed = ch.removed.routes.len(),
                "overlay routes updated"
            );
        }
        Ok(ch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::fake::FakeNetlink;

    fn node(name: &str, ip: &str, cidr: &str) -> NodeRoute {
        NodeRoute {
            name: name.into(),
            node_ip: ip.into(),
            pod_cidr: cidr.into(),
            ready: true,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn overlay(fake: Arc<FakeNetlink>) -> Overlay {
        Overlay::new(
            fake,
            ip("172.31.0.1"),
            "10.244.1.0/24".parse().unwrap(),
            1450,
        )
    }

    #[test]
    fn vtep_mac_is_deterministic_local_unicast() {
        assert_eq!(vtep_mac(ip("172.31.0.3")), "0e:be:ac:1f:00:03");
        let first = u8::from_str_radix(&vtep_mac(ip("10.0.0.1"))[..2], 16).unwrap();
        assert_eq!(first & 0b11, 0b10, "locally administered, unicast");
    }

    #[test]
    fn desired_state_skips_self_bad_and_duplicate_entries() {
        let view = vec![
            node("n1", "172.31.0.1", "10.244.1.0/24"),
            node("n2", "172.31.0.2", "10.244.2.0/24"),
            node("bad", "not-an-ip", "10.244.9.0/24"),
            node("z-dup", "172.31.0.9", "10.244.2.0/24"),
            node("overlap", "172.31.0.8", "10.244.0.0/16"),
        ];
        let st = desired_state(ip("172.31.0.1"), "10.244.1.0/24".parse().unwrap(), &view);
        assert_eq!(st.fdb.len(), 1);
        assert_eq!(
            st.fdb.iter().next().unwrap(),
            &FdbEntry {
                mac: vtep_mac(ip("172.31.0.2")),
                dst: ip("172.31.0.2")
            }
        );
        assert_eq!(
            st.neigh.iter().next().unwrap(),
            &Neighbour {
                ip: ip("10.244.2.0"),
                mac: vtep_mac(ip("172.31.0.2"))
            }
        );
        assert_eq!(
            st.routes.iter().next().unwrap(),
            &Route {
                dst: "10.244.2.0/24".parse().unwrap(),
                via: ip("10.244.2.0")
            }
        );
    }

    #[test]
    fn ensure_device_creates_then_reuses() {
        let fake = Arc::new(FakeNetlink::new());
        let o = overlay(fake.clone());
        o.ensure_device().unwrap();
        let l = fake.link(VXLAN_DEV).unwrap().unwrap();
        assert_eq!(l.mac, vtep_mac(ip("172.31.0.1")));
        assert_eq!(l.mtu, 1450);
        assert_eq!(
            fake.addresses(VXLAN_DEV).unwrap(),
            vec!["10.244.1.0/32".parse().unwrap()]
        );
        fake.clear_calls();
        o.ensure_device().unwrap();
        assert!(fake
            .calls()
            .iter()
            .all(|c| !c.starts_with("add_vxlan") && !c.starts_with("delete_link")));
        // A device left with another local address (node IP changed) is recreated.
        let moved = Overlay::new(
            fake.clone(),
            ip("172.31.0.7"),
            "10.244.1.0/24".parse().unwrap(),
            1450,
        );
        moved.ensure_device().unwrap();
        assert!(fake.calls().contains(&format!("delete_link {VXLAN_DEV}")));
        assert_eq!(
            fake.link(VXLAN_DEV).unwrap().unwrap().vxlan.unwrap().local,
            ip("172.31.0.7")
        );
    }

    #[test]
    fn apply_adds_on_join_removes_on_leave_and_is_idempotent() {
        let fake = Arc::new(FakeNetlink::new());
        let o = overlay(fake.clone());
        o.ensure_device().unwrap();
        let three = vec![
            node("n1", "172.31.0.1", "10.244.1.0/24"),
            node("n2", "172.31.0.2", "10.244.2.0/24"),
            node("n3", "172.31.0.3", "10.244.3.0/24"),
        ];
        let ch = o.apply(&three).unwrap();
        assert_eq!(ch.added.routes.len(), 2);
        assert_eq!(
            o.current().unwrap(),
            desired_state(ip("172.31.0.1"), "10.244.1.0/24".parse().unwrap(), &three)
        );

        fake.clear_calls();
        assert!(o.apply(&three).unwrap().is_empty());
        assert!(
            fake.calls().is_empty(),
            "no-op apply must not touch the kernel: {:?}",
            fake.calls()
        );

        let ch = o.apply(&three[..2]).unwrap();
        assert_eq!(ch.removed.routes.len(), 1);
        assert_eq!(ch.removed.fdb.iter().next().unwrap().dst, ip("172.31.0.3"));
        let cur = o.current().unwrap();
        assert_eq!(cur.routes.len(), 1);
        assert_eq!(cur.neigh.len(), 1);
        assert_eq!(cur.fdb.len(), 1);
        let calls = fake.calls();
        let pos = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap();
        assert!(
            pos("route_delete") < pos("neigh_delete") && pos("neigh_delete") < pos("fdb_delete"),
            "{calls:?}"
        );
    }

    #[test]
    fn apply_follows_a_node_that_changed_ip() {
        let fake = Arc::new(FakeNetlink::new());
        let o = overlay(fake.clone());
        o.apply(&[node("n2", "172.31.0.2", "10.244.2.0/24")])
            .unwrap();
        o.apply(&[node("n2", "172.31.0.22", "10.244.2.0/24")])
            .unwrap();
        let cur = o.current().unwrap();
        assert_eq!(
            cur.fdb.iter().map(|e| e.dst).collect::<Vec<_>>(),
            vec![ip("172.31.0.22")]
        );
        assert_eq!(
            cur.neigh.iter().next().unwrap().mac,
            vtep_mac(ip("172.31.0.22"))
        );
        assert_eq!(cur.routes.len(), 1);
    }
}
