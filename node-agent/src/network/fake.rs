//! Recording fakes of the network seams, for unit tests here and in the pod manager.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Error, PodIp, PodNetwork, Result};

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

    fn teardown(&self, pod_uid: &str, _netns_path: &Path) -> Result<()> {
        let mut st = self.state.lock().unwrap();
        st.calls.push(PodNetworkCall::Teardown {
            uid: pod_uid.into(),
        });
        st.ips.remove(pod_uid);
        Ok(())
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
