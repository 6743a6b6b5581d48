//! Recording fakes of the network seams, for unit tests here and in the pod manager.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::netlink::{FdbEntry, Link, Neighbour, Netlink, Route, VxlanSpec};
use super::{Error, HostPort, Ipv4Net, PodIp, PodNetwork, Result};

/// One call made on a [`FakePodNetwork`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodNetworkCall {
    /// `setup(...)`.
    Setup {
        /// Pod UID.
        uid: String,
        /// Pod namespace.
        ns: String,
        /// Pod name.
        name: String,
        /// Sandbox netns path.
        netns: PathBuf,
        /// `hostNetwork`.
        host_network: bool,
    },
    /// `setup_isolated(...)`.
    SetupIsolated {
        /// Pod UID.
        uid: String,
    },
    /// `publish(...)`.
    Publish {
        /// Pod UID.
        uid: String,
        /// Pod IP.
        ip: Ipv4Addr,
        /// The ports.
        ports: Vec<HostPort>,
    },
    /// `teardown(...)`.
    Teardown {
        /// Pod UID.
        uid: String,
    },
}

/// A [`PodNetwork`] that hands out `10.244.0.2, .3, ...`, returns `node_ip` for host-network pods, records every
/// call, and fails the next `setup` on request.
#[derive(Debug)]
pub struct FakePodNetwork {
    node_ip: Ipv4Addr,
    state: Mutex<FakePodState>,
}

#[derive(Debug, Default)]
struct FakePodState {
    calls: Vec<PodNetworkCall>,
    ips: BTreeMap<String, Ipv4Addr>,
    next: u32,
    fail_next_setup: Option<Error>,
}

impl FakePodNetwork {
    /// A fake for a node whose IP is `node_ip`.
    pub fn new(node_ip: Ipv4Addr) -> Self {
        FakePodNetwork {
            node_ip,
            state: Mutex::new(FakePodState {
                next: 2,
                ..Default::default()
            }),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<PodNetworkCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// UIDs of pods that currently hold an IP.
    pub fn attached(&self) -> Vec<String> {
        self.state.lock().unwrap().ips.keys().cloned().collect()
    }

    /// Makes the next `setup` return `err`.
    pub fn fail_next_setup(&self, err: Error) {
        self.state.lock().unwrap().fail_next_setup = Some(err);
    }
}

impl PodNetwork for FakePodNetwork {
    fn setup(
        &self,
        pod_uid: &str,
        pod_ns: &str,
        pod_name: &str,
        netns_path: &Path,
        host_network: bool,
    ) -> Result<PodIp> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(PodNetworkCall::Setup {
            uid: pod_uid.into(),
            ns: pod_ns.into(),
            name: pod_name.into(),
            netns: netns_path.into(),
            host_network,
        });
        if let Some(err) = st.fail_next_setup.take() {
            return Err(err);
        }
        if host_network {
            return Ok(PodIp { ip: self.node_ip });
        }
        if let Some(ip) = st.ips.get(pod_uid) {
            return Ok(PodIp { ip: *ip });
        }
        let ip = Ipv4Addr::new(10, 244, 0, st.next as u8);
        st.next += 1;
        st.ips.insert(pod_uid.into(), ip);
        Ok(PodIp { ip })
    }

    fn setup_isolated(&self, pod_uid: &str, _netns_path: &Path) -> Result<()> {
        self.state
            .lock()
            .unwrap()
            .calls
            .push(PodNetworkCall::SetupIsolated {
                uid: pod_uid.into(),
            });
        Ok(())
    }

    fn publish(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<()> {
        self.state
            .lock()
            .unwrap()
            .calls
            .push(PodNetworkCall::Publish {
                uid: pod_uid.into(),
                ip,
                ports: ports.to_vec(),
            });
        Ok(())
    }

    fn teardown(&self, pod_uid: &str, _netns_path: &Path) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(PodNetworkCall::Teardown {
            uid: pod_uid.into(),
        });
        st.ips.remove(pod_uid);
        Ok(())
    }
}

/// An in-memory kernel: a [`Netlink`] that keeps links, addresses, FDB, neighbours, routes, sysctls and the nft
/// scripts it was given, and logs every mutating call as a line (`"fdb_replace berth.1 0e:be:.. 172.31.0.3"`).
#[derive(Debug, Default)]
pub struct FakeNetlink {
    st: Mutex<FakeKernel>,
}

#[derive(Debug, Default)]
struct FakeKernel {
    calls: Vec<String>,
    links: BTreeMap<String, Link>,
    addrs: BTreeMap<String, Vec<Ipv4Net>>,
    fdb: BTreeMap<String, Vec<FdbEntry>>,
    neigh: BTreeMap<String, Vec<Neighbour>>,
    routes: BTreeMap<String, Vec<Route>>,
    sysctls: BTreeMap<String, String>,
    dev_routes: BTreeMap<Ipv4Net, String>,
    nft: Vec<String>,
    fail_nft: bool,
}

impl FakeNetlink {
    /// An empty kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an underlay device carrying `ip` with `mtu`, as a real host would have.
    pub fn with_underlay(self, dev: &str, ip: std::net::Ipv4Addr, mtu: u32) -> Self {
        {
            let mut st = self.st.lock().unwrap();
            st.links.insert(
                dev.into(),
                Link {
                    name: dev.into(),
                    mtu,
                    mac: "02:00:00:00:00:01".into(),
                    vxlan: None,
                },
            );
            st.addrs
                .insert(dev.into(), vec![Ipv4Net::new_assert(ip, 24)]);
        }
        self
    }

    /// Mutating calls so far, one line each.
    pub fn calls(&self) -> Vec<String> {
        self.st.lock().unwrap().calls.clone()
    }

    /// Forgets the call log (state is kept).
    pub fn clear_calls(&self) {
        self.st.lock().unwrap().calls.clear();
    }

    /// nft scripts applied so far.
    pub fn nft_scripts(&self) -> Vec<String> {
        self.st.lock().unwrap().nft.clone()
    }

    /// Makes every later `nft` call fail (to test error paths).
    pub fn fail_nft(&self, fail: bool) {
        self.st.lock().unwrap().fail_nft = fail;
    }

    /// The device a direct route to `dst` points at.
    pub fn dev_route(&self, dst: Ipv4Net) -> Option<String> {
        self.st.lock().unwrap().dev_routes.get(&dst).cloned()
    }

    /// The value written to a sysctl.
    pub fn sysctl_value(&self, key: &str) -> Option<String> {
        self.st.lock().unwrap().sysctls.get(key).cloned()
    }

    fn log(&self, line: String) -> std::sync::MutexGuard<'_, FakeKernel> {
        let mut st = self.st.lock().unwrap();
        st.calls.push(line);
        st
    }
}

fn missing(dev: &str) -> Error {
    Error::CommandFailed {
        cmd: format!("fake {dev}"),
        stderr: format!("cannot find device {dev:?}"),
    }
}

impl Netlink for FakeNetlink {
    fn link(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.st.lock().unwrap().links.get(name).cloned())
    }

    fn link_of_addr(&self, ip: std::net::Ipv4Addr) -> Result<Option<Link>> {
        let st = self.st.lock().unwrap();
        Ok(st
            .addrs
            .iter()
            .find(|(_, a)| a.iter().any(|c| c.addr() == ip))
            .and_then(|(d, _)| st.links.get(d).cloned()))
    }

    fn add_bridge(&self, name: &str, mac: &str, mtu: u32) -> Result<()> {
        let mut st = self.log(format!("add_bridge {name} {mac} {mtu}"));
        let l = st.links.entry(name.into()).or_insert(Link {
            name: name.into(),
            mtu,
            mac: mac.into(),
            vxlan: None,
        });
        l.mtu = mtu;
        l.mac = mac.into();
        Ok(())
    }

    fn add_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        let mut st = self.log(format!(
            "add_vxlan {} {} {} {}",
            spec.name, spec.params.vni, spec.params.local, spec.mac
        ));
        if st.links.contains_key(&spec.name) {
            return Err(Error::CommandFailed {
                cmd: "fake add_vxlan".into(),
                stderr: "file exists".into(),
            });
        }
        st.links.insert(
            spec.name.clone(),
            Link {
                name: spec.name.clone(),
                mtu: spec.mtu,
                mac: spec.mac.clone(),
                vxlan: Some(spec.params.clone()),
            },
        );
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        let mut st = self.log(format!("delete_link {name}"));
        st.links.remove(name);
        st.addrs.remove(name);
        st.fdb.remove(name);
        st.neigh.remove(name);
        st.routes.remove(name);
        Ok(())
    }

    fn set_mac(&self, name: &str, mac: &str) -> Result<()> {
        let mut st = self.log(format!("set_mac {name} {mac}"));
        st.links.get_mut(name).ok_or_else(|| missing(name))?.mac = mac.into();
        Ok(())
    }

    fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        let mut st = self.log(format!("set_mtu {name} {mtu}"));
        st.links.get_mut(name).ok_or_else(|| missing(name))?.mtu = mtu;
        Ok(())
    }

    fn addresses(&self, dev: &str) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .st
            .lock()
            .unwrap()
            .addrs
            .get(dev)
            .cloned()
            .unwrap_or_default())
    }

    fn add_address(&self, dev: &str, addr: Ipv4Net) -> Result<()> {
        let mut st = self.log(format!("add_address {dev} {addr}"));
        let v = st.addrs.entry(dev.into()).or_default();
        if !v.contains(&addr) {
            v.push(addr);
        }
        Ok(())
    }

    fn fdb(&self, dev: &str) -> Result<Vec<FdbEntry>> {
        Ok(self
            .st
            .lock()
            .unwrap()
            .fdb
            .get(dev)
            .cloned()
            .unwrap_or_default())
    }

    fn fdb_replace(&self, dev: &str, e: &FdbEntry) -> Result<()> {
        let mut st = self.log(format!("fdb_replace {dev} {} {}", e.mac, e.dst));
        let v = st.fdb.entry(dev.into()).or_default();
        v.retain(|x| x.mac != e.mac);
        v.push(e.clone());
        Ok(())
    }

    fn fdb_delete(&self, dev: &str, e: &FdbEntry) -> Result<()> {
        let mut st = self.log(format!("fdb_delete {dev} {} {}", e.mac, e.dst));
        st.fdb.entry(dev.into()).or_default().retain(|x| x != e);
        Ok(())
    }

    fn neighbours(&self, dev: &str) -> Result<Vec<Neighbour>> {
        Ok(self
            .st
            .lock()
            .unwrap()
            .neigh
            .get(dev)
            .cloned()
            .unwrap_or_default())
    }

    fn neigh_replace(&self, dev: &str, n: &Neighbour) -> Result<()> {
        let mut st = self.log(format!("neigh_replace {dev} {} {}", n.ip, n.mac));
        let v = st.neigh.entry(dev.into()).or_default();
        v.retain(|x| x.ip != n.ip);
        v.push(n.clone());
        Ok(())
    }

    fn neigh_delete(&self, dev: &str, n: &Neighbour) -> Result<()> {
        let mut st = self.log(format!("neigh_delete {dev} {}", n.ip));
        st.neigh
            .entry(dev.into())
            .or_default()
            .retain(|x| x.ip != n.ip);
        Ok(())
    }

    fn routes(&self, dev: &str) -> Result<Vec<Route>> {
        Ok(self
            .st
            .lock()
            .unwrap()
            .routes
            .get(dev)
            .cloned()
            .unwrap_or_default())
    }

    fn route_replace(&self, dev: &str, r: &Route) -> Result<()> {
        let mut st = self.log(format!("route_replace {dev} {} via {}", r.dst, r.via));
        let v = st.routes.entry(dev.into()).or_default();
        v.retain(|x| x.dst != r.dst);
        v.push(r.clone());
        Ok(())
    }

    fn route_delete(&self, dev: &str, r: &Route) -> Result<()> {
        let mut st = self.log(format!("route_delete {dev} {}", r.dst));
        st.routes
            .entry(dev.into())
            .or_default()
            .retain(|x| x.dst != r.dst);
        Ok(())
    }

    fn route_replace_dev(&self, dev: &str, dst: Ipv4Net) -> Result<()> {
        let mut st = self.log(format!("route_replace_dev {dev} {dst}"));
        st.dev_routes.insert(dst.trunc(), dev.into());
        Ok(())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let mut st = self.log(format!("sysctl {key}={value}"));
        st.sysctls.insert(key.into(), value.into());
        Ok(())
    }

    fn nft(&self, script: &str) -> Result<()> {
        let mut st = self.log("nft".to_string());
        if st.fail_nft {
            return Err(Error::CommandFailed {
                cmd: "fake nft".into(),
                stderr: "injected failure".into(),
            });
        }
        st.nft.push(script.into());
        Ok(())
    }

    fn nft_list(&self, _args: &[&str]) -> Result<String> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_pod_network_is_idempotent_and_records() {
        let f = FakePodNetwork::new(Ipv4Addr::new(172, 31, 0, 1));
        let p = Path::new("/run/netns/x");
        let a = f.setup("u1", "default", "a", p, false).unwrap();
        assert_eq!(f.setup("u1", "default", "a", p, false).unwrap(), a);
        let b = f.setup("u2", "default", "b", p, false).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            f.setup("u3", "default", "h", p, true).unwrap().ip,
            Ipv4Addr::new(172, 31, 0, 1)
        );
        f.teardown("u1", p).unwrap();
        assert_eq!(f.attached(), vec!["u2".to_string()]);
        assert_eq!(f.calls().len(), 5);
        f.fail_next_setup(Error::InvalidConfig("x".into()));
        assert!(f.setup("u4", "default", "c", p, false).is_err());
    }
}
