//! A namespaced lab for integration tests and the network benchmark: a "switch" netns with a bridge, N node
//! namespaces wired to it (underlay 172.31.77.0/24, no default route, so no packet can leave), each running a real
//! [`NodeNetwork`], and pods as namespaces attached through CNI. Every namespace, process and directory it creates is
//! removed by `Drop`, also on panic; namespaces left by a killed run are removed by the next one.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proto::agentpb::{NetworkView, NodeRoute, ServiceView};
use tokio_util::sync::CancellationToken;

use super::dns::{bind_dns, wire};
use super::netlink::{IpTool, Netlink as _};
use super::netns::{output, run};
use super::{
    create_netns, delete_netns, in_netns, netns_path, Error, Ipv4Net, NodeNetwork,
    NodeNetworkConfig, Result,
};

const PREFIX: &str = "btn";
static SEQ: AtomicU32 = AtomicU32::new(0);

/// One node of the lab.
#[derive(Debug)]
pub struct TestNode {
    /// Node name (`n1`, `n2`, ...).
    pub name: String,
    /// Its netns name.
    pub netns: String,
    /// Underlay IP on the lab switch.
    pub ip: Ipv4Addr,
    /// Pod CIDR (10.244.i.0/24).
    pub pod_cidr: Ipv4Net,
    /// The node network under test.
    pub net: NodeNetwork,
}

/// A pod (a netns with its CNI-assigned IP).
#[derive(Debug, Clone)]
pub struct TestPod {
    /// Pod name.
    pub name: String,
    /// Pod UID (used as CNI container ID).
    pub uid: String,
    /// Index of its node in [`Testbed::nodes`].
    pub node: usize,
    /// Netns name.
    pub netns: String,
    /// IP from the node's pod CIDR.
    pub ip: Ipv4Addr,
}

/// The lab. See the module docs.
pub struct Testbed {
    prefix: String,
    switch: String,
    /// The nodes, in order `n1..nN`.
    pub nodes: Vec<TestNode>,
    pods: Vec<TestPod>,
    procs: Vec<Child>,
    dir: PathBuf,
    rt: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("prefix", &self.prefix)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Whether the process can build a testbed (root).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

/// Deletes lab namespaces whose creating process is gone (a run killed before its `Drop`).
pub fn cleanup_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = delete_netns(&name);
        }
    }
}

impl Testbed {
    /// Builds a lab with `n` nodes (at most 200), each with its node network set up.
    ///
    /// # Errors
    /// Any namespace, link or node setup failed (whatever was built is removed).
    pub fn new(n: usize) -> Result<Self> {
        cleanup_stale();
        let prefix = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create_dir", &dir, e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| Error::io("start runtime", &dir, e))?;
        let mut tb = Testbed {
            switch: format!("{prefix}-sw"),
            prefix,
            nodes: Vec::new(),
            pods: Vec::new(),
            procs: Vec::new(),
            dir,
            rt: Some(rt),
            stop: CancellationToken::new(),
        };
        create_netns(&tb.switch)?;
        let sw = tb.switch.clone();
        ip(&["-n", &sw, "link", "add", "sw0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "sw0", "up"])?;
        // The switch stands in for a physical L2 switch: with br_netfilter present (this host has it),
        // every frame it forwards would also run the IP netfilter hooks of the switch namespace.
        // Best effort: without br_netfilter the keys do not exist and there is nothing to turn off.
        let sw_tool = IpTool::in_netns(&sw);
        for table in ["iptables", "ip6tables", "arptables"] {
            let _ = sw_tool.sysctl(&format!("net.bridge.bridge-nf-call-{table}"), "0");
        }
        for i in 1..=n {
            let netns = format!("{}-n{i}", tb.prefix);
            create_netns(&netns)?;
            let port = format!("v{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "sw0", "up"])?;
            let node_ip = Ipv4Addr::new(172, 31, 77, 10 + i as u8);
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{node_ip}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            let pod_cidr = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, i as u8, 0), 24);
            let name = format!("n{i}");
            let cfg = NodeNetworkConfig::new(&name, node_ip, pod_cidr, tb.dir.join(&name));
            let net = NodeNetwork::setup(cfg, IpTool::in_netns(&netns))?;
            tb.nodes.push(TestNode {
                name,
                netns,
                ip: node_ip,
                pod_cidr,
                net,
            });
        }
        Ok(tb)
    }

    /// Replaces the switch of a 2-node lab with one veth pair between the nodes, the cheapest wire two
    /// namespaces can have. Benchmarks use it to measure the floor of a node-to-node path.
    ///
    /// # Errors
    /// The lab has other than 2 nodes, or a link operation failed.
    pub fn rewire_direct(&self) -> Result<()> {
        let [a, b] = &self.nodes[..] else {
            return Err(Error::InvalidConfig(format!(
                "a direct wire joins 2 nodes, the lab has {}",
                self.nodes.len()
            )));
        };
        // Deleting a switch port deletes its peer, the node's eth0.
        for port in ["v1", "v2"] {
            ip(&["-n", &self.switch, "link", "del", port])?;
        }
        ip(&[
            "-n", &a.netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b.netns,
        ])?;
        for n in [a, b] {
            let addr = format!("{}/24", n.ip);
            ip(&["-n", &n.netns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &n.netns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The lab's unique name prefix (all its namespaces start with it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The node list as the server would send it.
    pub fn node_routes(&self) -> Vec<NodeRoute> {
        self.nodes
            .iter()
            .map(|n| NodeRoute {
                name: n.name.clone(),
                node_ip: n.ip.to_string(),
                pod_cidr: n.pod_cidr.to_string(),
                ready: true,
            })
            .collect()
    }

    /// Applies the full network view (all nodes + `services`) on every node.
    ///
    /// # Errors
    /// A node failed to apply it.
    pub fn apply(&self, services: &[ServiceView]) -> Result<()> {
        let view = NetworkView {
            nodes: self.node_routes(),
            services: services.to_vec(),
        };
        for n in &self.nodes {
            n.net.apply_view(&view)?;
        }
        Ok(())
    }

    /// Creates a pod netns on node `node` and attaches it through CNI.
    ///
    /// # Errors
    /// Netns creation or CNI setup failed.
    pub fn add_pod(&mut self, node: usize, name: &str) -> Result<TestPod> {
        let netns = format!("{}-p{}{name}", self.prefix, node + 1);
        let uid = format!("{}-uid-{}-{name}", self.prefix, node + 1);
        let path = create_netns(&netns)?;
        let pod = TestPod {
            name: name.into(),
            uid: uid.clone(),
            node,
            netns,
            ip: Ipv4Addr::UNSPECIFIED,
        };
        self.pods.push(pod);
        let ip = self.nodes[node]
            .net
            .pod_network()
            .setup(&uid, "default", name, &path, false)?
            .ip;
        let last = self.pods.last_mut().expect("just pushed");
        last.ip = ip;
        Ok(last.clone())
    }

    /// Removes a pod (CNI teardown and netns deletion).
    ///
    /// # Errors
    /// Teardown failed.
    pub fn remove_pod(&mut self, pod: &TestPod) -> Result<()> {
        self.nodes[pod.node]
            .net
            .pod_network()
            .teardown(&pod.uid, &netns_path(&pod.netns))?;
        delete_netns(&pod.netns)?;
        self.pods.retain(|p| p.uid != pod.uid);
        Ok(())
    }

    /// Starts a background process in `netns` (`ip netns exec`); it is killed on drop. Returns its pid.
    ///
    /// # Errors
    /// The process could not be started.
    pub fn spawn(&mut self, netns: &str, args: &[&str]) -> Result<u32> {
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::SpawnFailed {
                cmd: args.join(" "),
                reason: e.to_string(),
            })?;
        let pid = child.id();
        self.procs.push(child);
        Ok(pid)
    }

    /// Runs a command in `netns` to completion.
    ///
    /// # Errors
    /// It could not be started (a non-zero exit is returned in the output, not as an error).
    pub fn exec(&self, netns: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .output()
            .map_err(|e| Error::SpawnFailed {
                cmd: args.join(" "),
                reason: e.to_string(),
            })
    }

    /// Serves `index.html` = the pod's name with busybox httpd on `port` in the pod, and waits until it answers.
    ///
    /// # Errors
    /// httpd did not start or did not answer within 5 s.
    pub fn start_httpd(&mut self, pod: &TestPod, port: u16) -> Result<()> {
        let www = self.dir.join("www").join(&pod.netns);
        std::fs::create_dir_all(&www).map_err(|e| Error::io("create_dir", &www, e))?;
        let index = www.join("index.html");
        std::fs::write(&index, &pod.name).map_err(|e| Error::io("write", &index, e))?;
        let p = port.to_string();
        self.spawn(
            &pod.netns,
            &[
                "busybox",
                "httpd",
                "-f",
                "-p",
                &p,
                "-h",
                &www.to_string_lossy(),
            ],
        )?;
        for _ in 0..50 {
            if http_get(
                &netns_path(&pod.netns),
                SocketAddr::new(pod.ip.into(), port),
            )
            .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::CommandFailed {
            cmd: format!("httpd in {}", pod.netns),
            stderr: "did not answer".into(),
        })
    }

    /// Starts the DNS server of every node on its bridge gateway (port 53, inside the node netns).
    ///
    /// # Errors
    /// Binding failed.
    pub fn start_dns(&mut self) -> Result<()> {
        let rt = self.rt.as_ref().expect("runtime lives until drop");
        for n in &self.nodes {
            let addr = SocketAddr::new(n.net.gateway().into(), 53);
            let (udp, tcp) = in_netns(&netns_path(&n.netns), move || bind_dns(addr))?
                .map_err(|e| Error::io("bind dns", addr.to_string(), e))?;
            // No host resolv.conf: the lab must never forward outside itself.
            let server = n.net.dns_server("");
            let stop = self.stop.clone();
            let _guard = rt.enter();
            let udp = tokio::net::UdpSocket::from_std(udp)
                .map_err(|e| Error::io("dns udp", addr.to_string(), e))?;
            let tcp = tokio::net::TcpListener::from_std(tcp)
                .map_err(|e| Error::io("dns tcp", addr.to_string(), e))?;
            rt.spawn(server.run(udp, tcp, stop));
        }
        Ok(())
    }
}

/// One HTTP/1.0 GET of `/` from inside the netns at `from`; returns the body, or `None` on any failure (2 s
/// timeouts).
pub fn http_get(from: &std::path::Path, to: SocketAddr) -> Option<String> {
    in_netns(from, move || -> Option<String> {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.trim().to_string())
    })
    .ok()
    .flatten()
}

/// One DNS query over UDP from inside the netns at `from` to `server:53`.
///
/// # Errors
/// No answer within 2 s or an unparsable answer.
pub fn dns_query(
    from: &std::path::Path,
    server: Ipv4Addr,
    name: &str,
    qtype: u16,
) -> Result<wire::Message> {
    let q = wire::query(0x4242, name, qtype);
    let raw = in_netns(from, move || -> std::io::Result<Vec<u8>> {
        let s = UdpSocket::bind(("0.0.0.0", 0))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.send_to(&q, (server, 53))?;
        let mut buf = vec![0u8; 4096];
        let n = s.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    })?
    .map_err(|e| Error::io("dns query", server.to_string(), e))?;
    wire::parse(&raw).map_err(|e| Error::ParseFailed {
        what: "dns answer".into(),
        detail: e.to_string(),
    })
}

/// Names of the namespaces that currently exist with `prefix` (for leak checks).
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The routes of a netns (`ip -n NS route`), for safety assertions.
///
/// # Errors
/// `ip` failed.
pub fn routes_of(netns: &str) -> Result<String> {
    output(Command::new("ip").args(["-n", netns, "-4", "route", "show", "table", "all"]))
}

impl Drop for Testbed {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in std::mem::take(&mut self.pods) {
            let _ = self.nodes[p.node]
                .net
                .pod_network()
                .teardown(&p.uid, &netns_path(&p.netns));
            let _ = delete_netns(&p.netns);
        }
        for n in &self.nodes {
            let _ = n.net.remove();
            let _ = delete_netns(&n.netns);
        }
        let _ = delete_netns(&self.switch);
        // Pods not registered (failed half-way) and nodes not yet pushed still carry the prefix.
        for ns in netns_with_prefix(&format!("{}-", self.prefix)) {
            let _ = delete_netns(&ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
