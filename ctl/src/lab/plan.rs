//! Pure lab planning: choosing a free /24 from the host's routes, node names, addresses, interface names, the
//! `ip` commands that build the network, the process arguments and environment, and the TLS kubeconfig.

use std::fmt;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
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

/// An IPv4 prefix.
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
        let len = len.min(32);
        Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        }
    }

    /// Parses `a.b.c.d/n` or a bare address (a /32).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().ok()?),
            None => (s, 32),
        };
        if l > 32 {
            return None;
        }
        Some(Cidr::new(a.parse().ok()?, l))
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let m = mask(self.len.min(other.len));
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The `n`th address in the prefix.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + n)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
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
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROUTES: &str = "\
default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
172.29.0.0/24 dev docker0 proto kernel scope link src 172.29.0.1
172.29.1.0/25 dev x0 scope link
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
local 172.29.2.7 dev lo table local proto kernel scope host src 172.29.2.7
broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2
";

    #[test]
    fn routes_are_parsed_without_defaults() {
        let r = parse_routes(ROUTES);
        let s: Vec<String> = r.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            [
                "192.0.2.0/24",
                "172.29.0.0/24",
                "172.29.1.0/25",
                "127.0.0.0/8",
                "172.29.2.7/32",
                "192.0.2.255/32"
            ]
        );
    }

    #[test]
    fn picks_the_first_free_slash_24() {
        let r = parse_routes(ROUTES);
        assert_eq!(pick_subnet(&r).unwrap().to_string(), "172.29.3.0/24");
        assert_eq!(pick_subnet(&[]).unwrap().to_string(), "172.29.0.0/24");
        let all = [Cidr::parse("172.16.0.0/12").unwrap()];
        assert_eq!(pick_subnet(&all), None);
    }

    #[test]
    fn refuses_overlapping_subnets() {
        let r = parse_routes(ROUTES);
        let e = check_subnet(&Cidr::parse("192.0.2.0/24").unwrap(), &r).unwrap_err();
        assert!(e
            .to_string()
            .contains("overlaps the host route 192.0.2.0/24"));
        assert!(check_subnet(&Cidr::parse("10.50.0.0/24").unwrap(), &r).is_ok());
        assert!(check_subnet(
            &Cidr::parse("10.0.0.0/8").unwrap(),
            &[Cidr::parse("10.1.2.0/24").unwrap()]
        )
        .is_err());
    }

    #[test]
    fn names_addresses_and_args() {
        let p = plan("demo", 3, 2, Cidr::parse("172.29.5.0/24").unwrap()).unwrap();
        assert_eq!(p.bridge, "berthlab-demo");
        assert_eq!(p.gateway.to_string(), "172.29.5.1");
        let names: Vec<_> = p
            .nodes
            .iter()
            .map(|n| (n.netns.as_str(), n.veth_host.as_str(), n.ip.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("demo-s1", "bl-demo-s1", "172.29.5.11".to_string()),
                ("demo-s2", "bl-demo-s2", "172.29.5.12".to_string()),
                ("demo-s3", "bl-demo-s3", "172.29.5.13".to_string()),
                ("demo-a1", "bl-demo-a1", "172.29.5.101".to_string()),
                ("demo-a2", "bl-demo-a2", "172.29.5.102".to_string()),
            ]
        );
        assert_eq!(
            p.initial_cluster(),
            "s1=172.29.5.11:6444,s2=172.29.5.12:6444,s3=172.29.5.13:6444"
        );
        let a = p.args(p.node("a1").unwrap(), "/d/a1");
        assert_eq!(
            a.join(" "),
            "--server 172.29.5.11:6444,172.29.5.12:6444,172.29.5.13:6444 --node-name a1 \
             --data-dir /d/a1 --node-ip 172.29.5.101 --listen 0.0.0.0:10250"
        );
        let s = p.args(p.node("demo-s2").unwrap(), "/d/s2");
        assert_eq!(
            s.join(" "),
            "--name s2 --data-dir /d/s2 --listen-peer 172.29.5.12:6444 --listen-api 0.0.0.0:6443 \
             --initial-cluster s1=172.29.5.11:6444,s2=172.29.5.12:6444,s3=172.29.5.13:6444 \
             --snapshot-every 1000"
        );
        // The token travels in the environment only.
        assert!(!a.iter().chain(&s).any(|x| x.contains("token")));
        assert_eq!(p.api_url(), "https://172.29.5.11:6443");
        assert_eq!(
            p.api_urls(),
            [
                "https://172.29.5.11:6443",
                "https://172.29.5.12:6443",
                "https://172.29.5.13:6443"
            ]
        );
    }

    /// An `admin.kubeconfig` in the shape berth-server writes (control-plane `security::kubeconfig`).
    pub(crate) fn admin_kubeconfig_fixture() -> (String, pki::Ca, pki::Issued) {
        use base64::Engine as _;
        let ca = pki::Ca::generate("lab", std::time::Duration::from_secs(3600)).unwrap();
        let admin = ca
            .issue(&pki::CertRequest::client(
                "berth-admin",
                &[pki::GROUP_MASTERS],
                std::time::Duration::from_secs(3600),
            ))
            .unwrap();
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: https://172.29.5.11:6443\n    certificate-authority-data: {}\nusers:\n- name: berth-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: berth\n  context:\n    cluster: berth\n    user: berth-admin\ncurrent-context: berth\n",
            b(ca.cert_pem()),
            b(&admin.cert_pem),
            b(&admin.key_pem)
        );
        (text, ca, admin)
    }

    #[test]
    fn lab_kubeconfig_is_tls_with_the_admin_certificate() {
        use secrecy::ExposeSecret as _;
        let p = plan("demo", 2, 1, Cidr::parse("172.29.5.0/24").unwrap()).unwrap();
        let (admin_text, _, _) = admin_kubeconfig_fixture();
        let admin = AdminCredentials::from_kubeconfig(&admin_text).unwrap();
        assert!(!format!("{admin:?}").contains(&admin.key_data));
        let kc = kube::config::Kubeconfig::from_yaml(&p.kubeconfig(&admin)).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("berth-demo"));
        let servers: Vec<_> = kc
            .clusters
            .iter()
            .map(|c| {
                let c = c.cluster.as_ref().unwrap();
                assert_eq!(c.certificate_authority_data.as_ref(), Some(&admin.ca_data));
                c.server.clone().unwrap()
            })
            .collect();
        assert_eq!(
            servers,
            ["https://172.29.5.11:6443", "https://172.29.5.12:6443"]
        );
        let ctx: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(ctx, ["berth-demo", "berth-demo-s2"]);
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.client_certificate_data.as_ref(),
            Some(&admin.cert_data)
        );
        assert_eq!(
            user.client_key_data
                .as_ref()
                .map(|k| k.expose_secret().to_string()),
            Some(admin.key_data.clone())
        );
        assert!(user.token.is_none());
    }

    #[test]
    fn admin_kubeconfig_without_credentials_is_refused() {
        let (text, _, _) = admin_kubeconfig_fixture();
        let no_key: String = text
            .lines()
            .filter(|l| !l.contains("client-key-data"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = AdminCredentials::from_kubeconfig(&no_key).unwrap_err();
        assert!(e.to_string().contains("client-key-data"), "{e}");
        let garbled = text.replace(
            "certificate-authority-data: ",
            "certificate-authority-data: x",
        );
        assert!(AdminCredentials::from_kubeconfig(&garbled).is_err());
        assert!(AdminCredentials::from_kubeconfig("not: [yaml").is_err());
    }

    #[test]
    fn interface_names_fit_ifnamsiz_and_match_patterns() {
        let p = plan(
            "abcdef",
            MAX_SERVERS,
            MAX_AGENTS,
            Cidr::parse("172.29.9.0/24").unwrap(),
        )
        .unwrap();
        assert!(p.bridge.len() <= 15);
        for n in &p.nodes {
            assert!(n.veth_host.len() <= 15 && n.veth_peer.len() <= 15, "{n:?}");
            assert!(is_lab_netns("abcdef", &n.netns));
            assert!(is_lab_veth("abcdef", &n.veth_host));
        }
        assert_eq!(p.nodes.last().unwrap().ip.to_string(), "172.29.9.250");
        assert!(!is_lab_netns("abc", "abcdef-s1"));
        assert!(!is_lab_netns("abc", "abc-x1"));
        assert!(!is_lab_netns("abc", "abc-s"));
        assert!(!is_lab_veth("abc", "bl-abcd-s1"));
    }

    #[test]
    fn rejects_bad_names_and_sizes() {
        let s = Cidr::parse("172.29.9.0/24").unwrap();
        for bad in ["", "toolong", "Lab", "1ab", "a-b"] {
            assert!(plan(bad, 1, 1, s).is_err(), "{bad}");
        }
        assert!(plan("a", 0, 1, s).is_err());
        assert!(plan("a", 10, 1, s).is_err());
        assert!(plan("a", 1, 151, s).is_err());
        assert!(plan("a", 1, 0, s).is_ok());
    }

    #[test]
    fn commands_build_bridge_then_nodes() {
        let p = plan("t", 1, 1, Cidr::parse("172.29.7.0/24").unwrap()).unwrap();
        let b: Vec<String> = p.bridge_commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            b,
            [
                "ip link add berthlab-t type bridge",
                "ip addr add 172.29.7.1/24 dev berthlab-t",
                "ip link set berthlab-t up"
            ]
        );
        let n: Vec<String> = p
            .node_commands(&p.nodes[1])
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert!(n.contains(&"ip -n t-a1 addr add 172.29.7.101/24 dev eth0".to_string()));
        assert!(n.contains(&"ip link set bl-t-a1 master berthlab-t".to_string()));
        // Never a default route: the only route inside a node is the connected /24.
        assert!(!n.iter().any(|c| c.contains("route")));
    }

    proptest! {
        #[test]
        fn picked_subnet_never_overlaps_a_route(
            routes in proptest::collection::vec((any::<u32>(), 8u8..=32), 0..40)
        ) {
            let routes: Vec<Cidr> = routes.into_iter().map(|(a, l)| Cidr::new(Ipv4Addr::from(a), l)).collect();
            if let Some(s) = pick_subnet(&routes) {
                prop_assert!(routes.iter().all(|r| !r.overlaps(&s)));
                prop_assert_eq!(s.len, 24);
            }
        }

        #[test]
        fn overlap_is_symmetric(a in any::<u32>(), la in 0u8..=32, b in any::<u32>(), lb in 0u8..=32) {
            let x = Cidr::new(Ipv4Addr::from(a), la);
            let y = Cidr::new(Ipv4Addr::from(b), lb);
            prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
        }
    }
}
