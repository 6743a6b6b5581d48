//! Pure lab planning: choosing a free /24 from the host's routes, node names, addresses, interface names, the
//! `ip` commands that build the network, the process arguments and environment, and the TLS kubeconfig.

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Raft entries between checkpoints on lab servers (the server default is 10,000).
pub const LAB_SNAPSHOT_EVERY: u64 = 1_000;

/// The environment variable that carries the cluster token to `berth-server` and `berth-agent`. Never
/// argv: a command line is readable by every user through `/proc/PID/cmdline`.
pub const TOKEN_ENV: &str = "BERTH_TOKEN";

/// Where a server writes its admin kubeconfig, relative to its data dir.
pub const ADMIN_KUBECONFIG: &str = "pki/admin.kubeconfig";

/// The admin credentials of a lab: the cluster CA and a `system:masters` client certificate, as
/// base64 of PEM (the kubeconfig `*-data` form), taken from a server's `admin.kubeconfig`.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredentials {
    /// `certificate-authority-data`.
    pub ca_data: String,
    /// `client-certificate-data`.
    pub cert_data: String,
    /// `client-key-data`.
    pub key_data: String,
}

impl fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs and panics.
        f.debug_struct("AdminCredentials")
            .field("ca_data", &self.ca_data)
            .field("cert_data", &self.cert_data)
            .finish_non_exhaustive()
    }
}

impl AdminCredentials {
    /// Takes the CA of the current context's cluster and the client certificate and key of its user from
    /// a server's `admin.kubeconfig`, checking that each decodes to PEM that parses.
    ///
    /// # Errors
    /// When the text is not a kubeconfig or lacks (or has unreadable) CA, certificate or key data.
    pub fn from_kubeconfig(text: &str) -> Result<AdminCredentials> {
        use base64::Engine as _;
        use secrecy::ExposeSecret as _;
        let kc = kube::config::Kubeconfig::from_yaml(text)
            .map_err(|e| anyhow::anyhow!("admin kubeconfig does not parse: {e}"))?;
        let ctx = kc
            .current_context
            .as_deref()
            .and_then(|c| kc.contexts.iter().find(|n| n.name == c))
            .and_then(|c| c.context.as_ref());
        let cluster = ctx
            .and_then(|c| kc.clusters.iter().find(|n| n.name == c.cluster))
            .or(kc.clusters.first())
            .and_then(|c| c.cluster.as_ref());
        let user = ctx
            .and_then(|c| c.user.as_deref())
            .and_then(|u| kc.auth_infos.iter().find(|n| n.name == u))
            .or(kc.auth_infos.first())
            .and_then(|u| u.auth_info.as_ref());
        let ca_data = cluster.and_then(|c| c.certificate_authority_data.clone());
        let cert_data = user.and_then(|u| u.client_certificate_data.clone());
        let key_data = user.and_then(|u| {
            u.client_key_data
                .as_ref()
                .map(|k| k.expose_secret().to_string())
        });
        let (Some(ca_data), Some(cert_data), Some(key_data)) = (ca_data, cert_data, key_data)
        else {
            bail!("admin kubeconfig lacks certificate-authority-data, client-certificate-data or client-key-data");
        };
        let pem = |what: &str, data: &str| -> Result<String> {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| anyhow::anyhow!("admin kubeconfig {what} is not base64: {e}"))?;
            String::from_utf8(raw)
                .map_err(|_| anyhow::anyhow!("admin kubeconfig {what} is not PEM"))
        };
        pki::parse_certs(&pem("certificate-authority-data", &ca_data)?)
            .map_err(|e| anyhow::anyhow!("admin kubeconfig CA: {e}"))?;
        pki::CertSource::from_pem(
            &pem("client-certificate-data", &cert_data)?,
            &pem("client-key-data", &key_data)?,
        )
        .map_err(|e| anyhow::anyhow!("admin kubeconfig client certificate: {e}"))?;
        Ok(AdminCredentials {
            ca_data: ca_data.trim().to_string(),
            cert_data: cert_data.trim().to_string(),
            key_data: key_data.trim().to_string(),
        })
    }
}

/// An IPv4 prefix, kept as `{addr, len}` in lab state files; the arithmetic is ipnet's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Cidr {
    /// Builds a prefix, clearing host bits.
    pub fn new(addr: Ipv4Addr, len: u8) -> Cidr {
        Cidr::from(Ipv4Net::new_assert(addr, len.min(32)).trunc())
    }

    /// Parses `a.b.c.d/n` or a bare address (a /32).
    pub fn parse(s: &str) -> Option<Cidr> {
        let net = match s.parse::<Ipv4Net>() {
            Ok(net) => net,
            Err(_) => Ipv4Net::from(s.parse::<Ipv4Addr>().ok()?),
        };
        Some(Cidr::from(net.trunc()))
    }

    fn net(&self) -> Ipv4Net {
        Ipv4Net::new_assert(self.addr, self.len.min(32))
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let (a, b) = (self.net(), other.net());
        a.contains(&b.network()) || b.contains(&a.network())
    }

    /// The `n`th address in the prefix.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }
}

impl From<Ipv4Net> for Cidr {
    fn from(net: Ipv4Net) -> Cidr {
        Cidr {
            addr: net.network(),
            len: net.prefix_len(),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.net().fmt(f)
    }
}

/// Route types `ip route` may print before the destination.
const ROUTE_TYPES: &[&str] = &[
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
    "nat",
    "anycast",
];

/// Destinations of `ip -4 route show table all` output. Default routes are left out: they overlap everything
/// and say nothing about which addresses are in use.
pub fn parse_routes(text: &str) -> Vec<Cidr> {
    text.lines()
        .filter_map(|line| {
            let mut t = line.split_whitespace();
            let mut dest = t.next()?;
            if ROUTE_TYPES.contains(&dest) {
                dest = t.next()?;
            }
            if dest == "default" {
                return None;
            }
            Cidr::parse(dest)
        })
        .filter(|c| c.len > 0)
        .collect()
}

/// The first `172.29.k.0/24` that overlaps no route.
pub fn pick_subnet(routes: &[Cidr]) -> Option<Cidr> {
    (0..=255u32)
        .map(|k| Cidr::new(Ipv4Addr::new(172, 29, k as u8, 0), 24))
        .find(|c| check_subnet(c, routes).is_ok())
}

/// Refuses a subnet that overlaps a host route (a lab must never shadow a real network).
pub fn check_subnet(subnet: &Cidr, routes: &[Cidr]) -> Result<()> {
    if subnet.len > 28 {
        bail!("lab subnet {subnet} is too small (use a /24)");
    }
    if let Some(r) = routes.iter().find(|r| r.overlaps(subnet)) {
        bail!("lab subnet {subnet} overlaps the host route {r}; pick another with --subnet");
    }
    Ok(())
}

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `berth-server`.
    Server,
    /// `berth-agent`.
    Agent,
}

impl Role {
    /// The binary this role runs.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Server => "berth-server",
            Role::Agent => "berth-agent",
        }
    }
}

/// One node of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// Node name (`s1`, `a2`): the server member name / Kubernetes node name.
    pub name: String,
    /// Server or agent.
    pub role: Role,
    /// Network namespace (`{lab}-s1`).
    pub netns: String,
    /// Host end of the veth, a port of the lab bridge (`bl-{lab}-s1`).
    pub veth_host: String,
    /// Temporary name of the namespace end before it is renamed `eth0`.
    pub veth_peer: String,
    /// The node's address on the lab bridge.
    pub ip: Ipv4Addr,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    /// Lab name.
    pub name: String,
    /// The lab /24.
    pub subnet: Cidr,
    /// Bridge name (`berthlab-{name}`).
    pub bridge: String,
    /// Host address on the bridge (`.1`).
    pub gateway: Ipv4Addr,
    /// Servers first, then agents.
    pub nodes: Vec<NodePlan>,
}

/// Most servers a lab may have (addresses .11-.19).
pub const MAX_SERVERS: usize = 9;
/// Most agents a lab may have (addresses .101-.250).
pub const MAX_AGENTS: usize = 150;

/// Lab names end up in interface names (15 bytes max), so they are short: 1-6 of `[a-z0-9]`, starting
/// with a letter.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 6
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !ok {
        bail!("invalid lab name {name:?}: use 1-6 lower-case letters or digits, starting with a letter");
    }
    Ok(())
}

/// The bridge of lab `name`.
pub fn bridge_name(name: &str) -> String {
    format!("berthlab-{name}")
}

/// Whether `netns` looks like a node namespace of lab `name` (`{name}-s1`, `{name}-a12`).
pub fn is_lab_netns(name: &str, netns: &str) -> bool {
    netns
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(is_node_suffix)
}

/// Whether `link` is a host veth of lab `name` (`bl-{name}-s1`).
pub fn is_lab_veth(name: &str, link: &str) -> bool {
    link.strip_prefix("bl-")
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(is_node_suffix)
}

fn is_node_suffix(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('s' | 'a'))
        && !c.as_str().is_empty()
        && c.as_str().chars().all(|d| d.is_ascii_digit())
}

/// Plans a lab of `servers` servers and `agents` agents on `subnet`.
pub fn plan(name: &str, servers: usize, agents: usize, subnet: Cidr) -> Result<LabPlan> {
    validate_name(name)?;
    if servers == 0 || servers > MAX_SERVERS {
        bail!("--servers must be 1..={MAX_SERVERS}");
    }
    if agents > MAX_AGENTS {
        bail!("--agents must be at most {MAX_AGENTS}");
    }
    if subnet.len > 24 {
        bail!("lab subnet {subnet} is too small (use a /24)");
    }
    let node = |role: Role, i: usize| {
        let short = match role {
            Role::Server => format!("s{i}"),
            Role::Agent => format!("a{i}"),
        };
        let host = match role {
            Role::Server => 10 + i as u32,
            Role::Agent => 100 + i as u32,
        };
        NodePlan {
            netns: format!("{name}-{short}"),
            veth_host: format!("bl-{name}-{short}"),
            veth_peer: format!("bp-{name}-{short}"),
            ip: subnet.host(host),
            name: short,
            role,
        }
    };
    let nodes = (1..=servers)
        .map(|i| node(Role::Server, i))
        .chain((1..=agents).map(|i| node(Role::Agent, i)))
        .collect();
    Ok(LabPlan {
        name: name.to_string(),
        bridge: bridge_name(name),
        gateway: subnet.host(1),
        subnet,
        nodes,
    })
}

fn cmd(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

impl LabPlan {
    /// The servers.
    pub fn servers(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.role == Role::Server)
    }

    /// The agents.
    pub fn agents(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.role == Role::Agent)
    }

    /// Finds a node by short name (`s1`) or namespace name (`lab-s1`).
    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes
            .iter()
            .find(|n| n.name == name || n.netns == name)
    }

    /// The bridge: an address for the host (so the API is reachable from it) and nothing else: no NAT, no
    /// forwarding, so lab traffic cannot leave the machine.
    pub fn bridge_commands(&self) -> Vec<Vec<String>> {
        let addr = format!("{}/{}", self.gateway, self.subnet.len);
        vec![
            cmd(&["ip", "link", "add", &self.bridge, "type", "bridge"]),
            cmd(&["ip", "addr", "add", &addr, "dev", &self.bridge]),
            cmd(&["ip", "link", "set", &self.bridge, "up"]),
        ]
    }

    /// One node's namespace and veth: loopback up, `eth0` on the bridge, only the connected route (no
    /// default route), IP forwarding on inside (pods route through the node).
    pub fn node_commands(&self, n: &NodePlan) -> Vec<Vec<String>> {
        let addr = format!("{}/{}", n.ip, self.subnet.len);
        vec![
            cmd(&["ip", "netns", "add", &n.netns]),
            cmd(&[
                "ip",
                "link",
                "add",
                &n.veth_host,
                "type",
                "veth",
                "peer",
                "name",
                &n.veth_peer,
            ]),
            cmd(&["ip", "link", "set", &n.veth_host, "master", &self.bridge]),
            cmd(&["ip", "link", "set", &n.veth_host, "up"]),
            cmd(&["ip", "link", "set", &n.veth_peer, "netns", &n.netns]),
            cmd(&[
                "ip",
                "-n",
                &n.netns,
                "link",
                "set",
                &n.veth_peer,
                "name",
                "eth0",
            ]),
            cmd(&["ip", "-n", &n.netns, "addr", "add", &addr, "dev", "eth0"]),
            cmd(&["ip", "-n", &n.netns, "link", "set", "eth0", "up"]),
            cmd(&["ip", "-n", &n.netns, "link", "set", "lo", "up"]),
            cmd(&[
                "ip",
                "netns",
                "exec",
                &n.netns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]),
        ]
    }

    /// `--initial-cluster s1=IP:6444,s2=IP:6444`.
    pub fn initial_cluster(&self) -> String {
        self.servers()
            .map(|s| format!("{}={}:6444", s.name, s.ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The arguments of a node's process (without the binary). The cluster token is not among them: it
    /// goes in the environment ([`TOKEN_ENV`]).
    pub fn args(&self, n: &NodePlan, data_dir: &str) -> Vec<String> {
        match n.role {
            Role::Server => vec![
                "--name".into(),
                n.name.clone(),
                "--data-dir".into(),
                data_dir.into(),
                "--listen-peer".into(),
                format!("{}:6444", n.ip),
                "--listen-api".into(),
                "0.0.0.0:6443".into(),
                "--initial-cluster".into(),
                self.initial_cluster(),
                // A lab writes a few thousand entries in minutes: checkpoint often enough that
                // kills and restarts in a lab replay a compacted log over checkpointed objects.
                "--snapshot-every".into(),
                LAB_SNAPSHOT_EVERY.to_string(),
            ],
            Role::Agent => vec![
                "--server".into(),
                self.servers()
                    .map(|s| format!("{}:6444", s.ip))
                    .collect::<Vec<_>>()
                    .join(","),
                "--node-name".into(),
                n.name.clone(),
                "--data-dir".into(),
                data_dir.into(),
                "--node-ip".into(),
                n.ip.to_string(),
                "--listen".into(),
                "0.0.0.0:10250".into(),
            ],
        }
    }

    /// The API URL the host uses (the first server, through the bridge).
    pub fn api_url(&self) -> String {
        let ip = self.servers().next().map(|s| s.ip).unwrap_or(self.gateway);
        format!("https://{ip}:6443")
    }

    /// A kubeconfig for the lab: context `berth-{name}` talks to the first server; `berth-{name}-s2`... to
    /// each other server (for drills that kill s1). Every cluster is `https://` and trusts the lab's CA;
    /// the one user authenticates with the admin client certificate.
    pub fn kubeconfig(&self, admin: &AdminCredentials) -> String {
        let n = format!("berth-{}", self.name);
        let mut clusters = String::new();
        let mut contexts = String::new();
        for (i, s) in self.servers().enumerate() {
            let cn = if i == 0 {
                n.clone()
            } else {
                format!("{n}-{}", s.name)
            };
            clusters.push_str(&format!(
                "- name: {cn}\n  cluster:\n    server: https://{}:6443\n    certificate-authority-data: {}\n",
                s.ip, admin.ca_data
            ));
            contexts.push_str(&format!(
                "- name: {cn}\n  context:\n    cluster: {cn}\n    user: {n}\n    namespace: default\n"
            ));
        }
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n- name: {n}\n  user:\n    \
             client-certificate-data: {}\n    client-key-data: {}\n\
             contexts:\n{contexts}current-context: {n}\n",
            admin.cert_data, admin.key_data
        )
    }

    /// The API URL of every server.
    pub fn api_urls(&self) -> Vec<String> {
        self.servers()
            .map(|s| format!("https://{}:6443", s.ip))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
