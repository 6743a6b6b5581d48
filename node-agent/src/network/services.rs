//! Service load balancing in nftables, after kube-proxy's nftables mode: table `ip berth` with a dispatch map from
//! `ClusterIP . proto . port` (and `proto . nodePort` on local addresses) to a per-service-port chain that picks a
//! ready endpoint with `numgen random`, optional ClientIP affinity sets, masquerade marks for hairpin and
//! off-cluster sources, and rejects for services without endpoints. A change to one service is applied as one
//! `nft -f` transaction that rebuilds only that service's chains and map elements.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

use proto::agentpb::ServiceView;

use super::netlink::Netlink;
use super::{Error, HostPort, Ipv4Cidr, Result};

/// Name of berth's nftables table (family `ip`).
pub const TABLE: &str = "berth";
/// Packet mark bit that asks the postrouting chain to masquerade.
pub const MASQ_MARK: u32 = 0x4000;
/// ClientIP affinity timeout (Kubernetes' default `timeoutSeconds`).
pub const AFFINITY_TIMEOUT_SECS: u32 = 10800;

/// Node-wide settings of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Cluster pod CIDR (10.244.0.0/16): sources outside it are masqueraded when they reach a ClusterIP.
    pub cluster_cidr: Ipv4Cidr,
    /// This node's pod CIDR: pods from it leaving the cluster network are masqueraded.
    pub pod_cidr: Ipv4Cidr,
    /// The pod bridge, so pod-to-pod traffic on it is never masqueraded.
    pub bridge: String,
    /// Redirect the cluster DNS VIP (e.g. 10.96.0.10:53) to this node's DNS server, `(vip, local)`, unless a Service
    /// claims that IP.
    pub dns_redirect: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// Stable short hash (FNV-1a 64) for chain names that stay the same across agent restarts.
fn hash8(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h as u32)
}

fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

fn proto_of(p: &str) -> Option<&'static str> {
    match p.to_ascii_uppercase().as_str() {
        "" | "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        _ => None,
    }
}

/// Whether a service view is headless (DNS only, no proxying).
pub fn is_headless(s: &ServiceView) -> bool {
    s.r#type == "None" || s.cluster_ip.is_empty() || s.cluster_ip == "None"
}

/// The nft objects of one service (pure rendering of a [`ServiceView`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedService {
    /// Chain name -> its rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity set name -> its declaration body.
    pub sets: BTreeMap<String, String>,
    /// (map or set name, element key) -> element value (`": goto chain"` or empty for sets).
    pub elements: BTreeMap<(String, String), String>,
}

/// Renders the chains, sets and dispatch elements of one service.
pub fn render_service(cfg: &ProxyConfig, svc: &ServiceView) -> RenderedService {
    let mut out = RenderedService::default();
    if is_headless(svc) {
        return out;
    }
    let Ok(cluster_ip) = svc.cluster_ip.parse::<Ipv4Addr>() else {
        tracing::warn!(ns = %svc.namespace, name = %svc.name, ip = %svc.cluster_ip, "service with bad cluster ip");
        return out;
    };
    let affinity = svc.session_affinity.eq_ignore_ascii_case("ClientIP");
    let node_port = matches!(svc.r#type.as_str(), "NodePort" | "LoadBalancer");
    let mut ready: Vec<Ipv4Addr> = svc
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| e.ip.parse().ok())
        .collect();
    ready.sort();
    ready.dedup();
    for port in &svc.ports {
        let Some(proto) = proto_of(&port.protocol) else {
            continue;
        };
        if port.port == 0 || port.port > 65535 {
            continue;
        }
        let pname = if port.name.is_empty() {
            port.port.to_string()
        } else {
            port.name.clone()
        };
        let id = format!("{}/{}/{}/{}", svc.namespace, svc.name, proto, pname);
        let readable = sanitize(&format!("{}-{}-{}", svc.namespace, svc.name, pname), 180);
        let svc_chain = format!("svc-{}-{}", hash8(&id), readable);
        let target = if port.target_port == 0 {
            port.port
        } else {
            port.target_port
        };
        let cip_key = format!("{cluster_ip} . {proto} . {}", port.port);
        let np_key =
            (node_port && port.node_port != 0).then(|| format!("{proto} . {}", port.node_port));
        if ready.is_empty() {
            out.elements
                .insert(("no-endpoint-services".into(), cip_key), String::new());
            if let Some(k) = np_key {
                out.elements
                    .insert(("no-endpoint-nodeports".into(), k), String::new());
            }
            continue;
        }
        let mut svc_rules = vec![format!(
            "ip daddr {cluster_ip} ip saddr != {} jump mark-for-masquerade",
            cfg.cluster_cidr.trunc()
        )];
        let mut vmap = Vec::new();
        for (i, ep) in ready.iter().enumerate() {
            let sep = format!(
                "sep-{}-{}-{}",
                hash8(&format!("{id}/{ep}:{target}")),
                sanitize(&ep.to_string(), 15),
                target
            );
            let mut rules = vec![format!("ip saddr {ep} jump mark-for-masquerade")];
            if affinity {
                let set = format!("aff-{}", &sep[4..]);
                out.sets.insert(
                    set.clone(),
                    format!(
                        "type ipv4_addr; flags dynamic,timeout; timeout {AFFINITY_TIMEOUT_SECS}s;"
                    ),
                );
                svc_rules.push(format!("ip saddr @{set} goto {sep}"));
                rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            rules.push(format!("meta l4proto {proto} dnat to {ep}:{target}"));
            out.chains.insert(sep.clone(), rules);
            vmap.push(format!("{i} : goto {sep}"));
        }
        svc_rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            ready.len(),
            vmap.join(", ")
        ));
        out.chains.insert(svc_chain.clone(), svc_rules);
        out.elements.insert(
            ("service-ips".into(), cip_key),
            format!(": goto {svc_chain}"),
        );
        if let Some(k) = np_key {
            let ext = format!("ext-{}", &svc_chain[4..]);
            out.chains.insert(
                ext.clone(),
                vec![
                    "jump mark-for-masquerade".into(),
                    format!("goto {svc_chain}"),
                ],
            );
            out.elements
                .insert(("service-nodeports".into(), k), format!(": goto {ext}"));
        }
    }
    out
}

/// The fixed part of the table: dispatch maps, hooks, masquerading and rejects.
pub fn render_base(cfg: &ProxyConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table ip {TABLE} {{");
    s.push_str(
        "  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }\n\
         \x20 map service-nodeports { type inet_proto . inet_service : verdict; }\n\
         \x20 map host-ports { type inet_proto . inet_service : ipv4_addr . inet_service; }\n\
         \x20 set host-port-hairpin { type ipv4_addr . ipv4_addr; }\n\
         \x20 set no-endpoint-services { type ipv4_addr . inet_proto . inet_service; }\n\
         \x20 set no-endpoint-nodeports { type inet_proto . inet_service; }\n",
    );
    let _ = writeln!(
        s,
        "  chain mark-for-masquerade {{ meta mark set meta mark | {MASQ_MARK:#x}; }}"
    );
    s.push_str("  chain services {\n");
    s.push_str("    ip daddr . meta l4proto . th dport vmap @service-ips\n");
    s.push_str("    fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports\n");
    s.push_str("    fib daddr type local ip daddr != 127.0.0.0/8 dnat to meta l4proto . th dport map @host-ports\n");
    if let Some((vip, local)) = cfg.dns_redirect {
        let _ = writeln!(
            s,
            "    ip daddr {vip} meta l4proto {{ tcp, udp }} th dport 53 dnat to {local}"
        );
    }
    s.push_str("  }\n");
    s.push_str("  chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }\n");
    s.push_str("  chain nat-output { type nat hook output priority -100; policy accept; jump services; }\n");
    let _ = writeln!(
        s,
        "  chain nat-postrouting {{ type nat hook postrouting priority 100; policy accept;\n\
         \x20   ct status dnat ip saddr . ip daddr @host-port-hairpin masquerade\n\
         \x20   ip saddr {pod} ip daddr != {cluster} oifname != \"{br}\" masquerade\n\
         \x20   meta mark & {MASQ_MARK:#x} == 0 return\n\
         \x20   meta mark set meta mark ^ {MASQ_MARK:#x}\n\
         \x20   masquerade fully-random\n  }}",
        pod = cfg.pod_cidr.trunc(),
        cluster = cfg.cluster_cidr.trunc(),
        br = cfg.bridge,
    );
    // VXLAN packets between nodes need no NAT and no state: skipping conntrack for them saves a
    // lookup on each node and every nat hook on the way (the inner packets are still tracked).
    let _ = writeln!(
        s,
        "  chain raw-prerouting {{ type filter hook prerouting priority raw; policy accept; udp dport {port} notrack; }}\n\
         \x20 chain raw-output {{ type filter hook output priority raw; policy accept; udp dport {port} notrack; }}",
        port = super::overlay::VXLAN_PORT,
    );
    // TCP gets a reset: ICMP errors to a pod are rate limited per host and may be dropped.
    s.push_str("  chain reject-chain { meta l4proto tcp reject with tcp reset; reject; }\n");
    s.push_str(
        "  chain endpoints-check {\n\
         \x20   ip daddr . meta l4proto . th dport @no-endpoint-services goto reject-chain\n\
         \x20   fib daddr type local meta l4proto . th dport @no-endpoint-nodeports goto reject-chain\n  }\n",
    );
    for hook in ["input", "forward", "output"] {
        let _ = writeln!(
            s,
            "  chain filter-{hook} {{ type filter hook {hook} priority -110; policy accept; ct state new jump endpoints-check; }}"
        );
    }
    s.push_str("}\n");
    s
}

/// Writes the statements that turn `old` into `new` for one service into `script` (one transaction together with
/// whatever else is in the script).
fn render_update(script: &mut String, old: &RenderedService, new: &RenderedService) {
    let t = TABLE;
    for (name, body) in &new.sets {
        if !old.sets.contains_key(name) {
            let _ = writeln!(script, "add set ip {t} {name} {{ {body} }}");
        }
    }
    for name in new.chains.keys() {
        let _ = writeln!(script, "add chain ip {t} {name}");
    }
    for (name, rules) in &new.chains {
        if old.chains.get(name) == Some(rules) {
            continue;
        }
        let _ = writeln!(script, "flush chain ip {t} {name}");
        for r in rules {
            let _ = writeln!(script, "add rule ip {t} {name} {r}");
        }
    }
    for ((set, key), val) in &old.elements {
        if new.elements.get(&(set.clone(), key.clone())) != Some(val) {
            let _ = writeln!(script, "delete element ip {t} {set} {{ {key} }}");
        }
    }
    for ((set, key), val) in &new.elements {
        if old.elements.get(&(set.clone(), key.clone())) != Some(val) {
            let _ = writeln!(script, "add element ip {t} {set} {{ {key} {val} }}");
        }
    }
    let stale: Vec<&String> = old
        .chains
        .keys()
        .filter(|c| !new.chains.contains_key(*c))
        .collect();
    for c in &stale {
        let _ = writeln!(script, "flush chain ip {t} {c}");
    }
    for c in &stale {
        let _ = writeln!(script, "delete chain ip {t} {c}");
    }
    for name in old.sets.keys() {
        if !new.sets.contains_key(name) {
            let _ = writeln!(script, "delete set ip {t} {name}");
        }
    }
}

fn key_of(s: &ServiceView) -> String {
    format!("{}/{}", s.namespace, s.name)
}

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

/// What the kernel holds, as last written.
#[derive(Debug, Default)]
struct Programmed {
    services: BTreeMap<String, RenderedService>,
    /// `proto . port` -> `ip . port` elements of the `host-ports` map.
    host_ports: BTreeMap<String, String>,
    /// `ip . ip` elements of `host-port-hairpin`: a pod reaching its own host port comes back to itself and
    /// must not see its own address as the source (the kernel drops that as a martian).
    hairpin: BTreeSet<String>,
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
        let services: BTreeMap<String, RenderedService> = self
            .services
            .iter()
            .map(|s| (key_of(s), render_service(&self.cfg, s)))
            .collect();
        let host_ports: BTreeMap<String, String> = self
            .host_ports
            .values()
            .flat_map(|(ip, ports)| {
                ports.iter().map(move |p| {
                    (
                        format!("{} . {}", p.protocol, p.host_port),
                        format!("{ip} . {}", p.container_port),
                    )
                })
            })
            .collect();
        let hairpin = self
            .host_ports
            .values()
            .map(|(ip, _)| format!("{ip} . {ip}"))
            .collect();
        let new = Programmed {
            services,
            host_ports,
            hairpin,
        };
        let mut script = String::new();
        let empty = RenderedService::default();
        // Taken, not copied: on success it is replaced by `new`, on failure it must be rebuilt anyway.
        let old = match self.programmed.take() {
            None => {
                script.push_str(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"));
                script.push_str(&render_base(&self.cfg));
                Programmed::default()
            }
            Some(old) => old,
        };
        let keys: BTreeSet<&String> = old.services.keys().chain(new.services.keys()).collect();
        for k in keys {
            let (o, n) = (
                old.services.get(k).unwrap_or(&empty),
                new.services.get(k).unwrap_or(&empty),
            );
            if o != n {
                render_update(&mut script, o, n);
            }
        }
        for (k, v) in &old.host_ports {
            if new.host_ports.get(k) != Some(v) {
                let _ = writeln!(script, "delete element ip {TABLE} host-ports {{ {k} }}");
            }
        }
        for (k, v) in &new.host_ports {
            if old.host_ports.get(k) != Some(v) {
                let _ = writeln!(script, "add element ip {TABLE} host-ports {{ {k} : {v} }}");
            }
        }
        for k in old.hairpin.difference(&new.hairpin) {
            let _ = writeln!(
                script,
                "delete element ip {TABLE} host-port-hairpin {{ {k} }}"
            );
        }
        for k in new.hairpin.difference(&old.hairpin) {
            let _ = writeln!(script, "add element ip {TABLE} host-port-hairpin {{ {k} }}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::fake::FakeNetlink;
    use proto::agentpb::{Endpoint, ServicePort};

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            bridge: "berth0".into(),
            dns_redirect: Some(("10.96.0.10".parse().unwrap(), "10.244.1.1".parse().unwrap())),
        }
    }

    fn ep(ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            ip: ip.into(),
            pod_name: format!("p-{ip}"),
            node_name: "n".into(),
            ready,
        }
    }

    fn svc(name: &str, ip: &str, ty: &str, eps: Vec<Endpoint>) -> ServiceView {
        ServiceView {
            namespace: "default".into(),
            name: name.into(),
            cluster_ip: ip.into(),
            r#type: ty.into(),
            session_affinity: "None".into(),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 80,
                node_port: 30080,
                target_port: 8080,
            }],
            endpoints: eps,
        }
    }

    #[test]
    fn clusterip_spreads_over_ready_endpoints_only() {
        let r = render_service(
            &cfg(),
            &svc(
                "web",
                "10.96.0.20",
                "ClusterIP",
                vec![
                    ep("10.244.1.2", true),
                    ep("10.244.2.2", false),
                    ep("10.244.3.2", true),
                ],
            ),
        );
        let (svc_chain, rules) = r
            .chains
            .iter()
            .find(|(k, _)| k.starts_with("svc-"))
            .unwrap();
        let last = rules.last().unwrap();
        assert!(last.starts_with("numgen random mod 2 vmap {"), "{last}");
        assert!(!rules.iter().any(|r| r.contains("10.244.2.2")));
        let seps: Vec<_> = r.chains.keys().filter(|k| k.starts_with("sep-")).collect();
        assert_eq!(seps.len(), 2);
        for s in &seps {
            assert!(last.contains(s.as_str()));
        }
        assert!(r
            .chains
            .values()
            .flatten()
            .any(|x| x == "meta l4proto tcp dnat to 10.244.3.2:8080"));
        assert!(
            r.chains
                .values()
                .flatten()
                .any(|x| x == "ip saddr 10.244.1.2 jump mark-for-masquerade"),
            "hairpin"
        );
        assert_eq!(
            r.elements
                .get(&("service-ips".into(), "10.96.0.20 . tcp . 80".into())),
            Some(&format!(": goto {svc_chain}"))
        );
        assert!(
            !r.elements.keys().any(|(m, _)| m == "service-nodeports"),
            "ClusterIP has no node port"
        );
        assert!(r.sets.is_empty());
    }

    #[test]
    fn nodeport_goes_through_masquerading_external_chain() {
        let r = render_service(
            &cfg(),
            &svc(
                "web",
                "10.96.0.20",
                "NodePort",
                vec![ep("10.244.1.2", true)],
            ),
        );
        let (_, val) = r
            .elements
            .iter()
            .find(|((m, _), _)| m == "service-nodeports")
            .unwrap();
        let ext = val.trim_start_matches(": goto ").to_string();
        assert!(ext.starts_with("ext-"));
        assert_eq!(r.chains[&ext][0], "jump mark-for-masquerade");
        assert!(r
            .elements
            .contains_key(&("service-nodeports".into(), "tcp . 30080".into())));
    }

    #[test]
    fn no_ready_endpoints_rejects_instead_of_dispatching() {
        let r = render_service(
            &cfg(),
            &svc(
                "web",
                "10.96.0.20",
                "NodePort",
                vec![ep("10.244.1.2", false)],
            ),
        );
        assert!(r.chains.is_empty());
        assert!(r.elements.contains_key(&(
            "no-endpoint-services".into(),
            "10.96.0.20 . tcp . 80".into()
        )));
        assert!(r
            .elements
            .contains_key(&("no-endpoint-nodeports".into(), "tcp . 30080".into())));
    }

    #[test]
    fn client_ip_affinity_uses_per_endpoint_timeout_sets() {
        let mut s = svc(
            "web",
            "10.96.0.20",
            "ClusterIP",
            vec![ep("10.244.1.2", true), ep("10.244.3.2", true)],
        );
        s.session_affinity = "ClientIP".into();
        let r = render_service(&cfg(), &s);
        assert_eq!(r.sets.len(), 2);
        assert!(r
            .sets
            .values()
            .all(|b| b.contains("timeout 10800s") && b.contains("dynamic")));
        let svc_rules = r
            .chains
            .iter()
            .find(|(k, _)| k.starts_with("svc-"))
            .unwrap()
            .1;
        for set in r.sets.keys() {
            assert!(svc_rules
                .iter()
                .any(|x| x.starts_with(&format!("ip saddr @{set} goto sep-"))));
            assert!(r
                .chains
                .values()
                .flatten()
                .any(|x| x == &format!("update @{set} {{ ip saddr }}")));
        }
    }

    #[test]
    fn headless_and_unsupported_protocols_render_nothing() {
        assert_eq!(
            render_service(
                &cfg(),
                &svc("h", "None", "ClusterIP", vec![ep("10.244.1.2", true)])
            ),
            RenderedService::default()
        );
        let mut s = svc("x", "10.96.0.30", "ClusterIP", vec![ep("10.244.1.2", true)]);
        s.ports[0].protocol = "SCTP".into();
        assert_eq!(render_service(&cfg(), &s), RenderedService::default());
    }

    #[test]
    fn base_table_has_hooks_masquerade_and_dns_redirect() {
        let b = render_base(&cfg());
        for needle in [
            "type nat hook prerouting priority -100",
            "type nat hook output priority -100",
            "type nat hook postrouting priority 100",
            "type filter hook prerouting priority raw; policy accept; udp dport 8472 notrack;",
            "ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 oifname != \"berth0\" masquerade",
            "ip daddr 10.96.0.10 meta l4proto { tcp, udp } th dport 53 dnat to 10.244.1.1",
            "type filter hook forward priority -110",
        ] {
            assert!(b.contains(needle), "missing {needle:?} in\n{b}");
        }
    }

    #[test]
    fn first_apply_replaces_table_then_updates_only_changed_services() {
        let fake = Arc::new(FakeNetlink::new());
        let mut p = ServiceProxy::new(fake.clone(), cfg());
        let a = svc(
            "a",
            "10.96.0.20",
            "ClusterIP",
            vec![ep("10.244.1.2", true), ep("10.244.2.2", true)],
        );
        let b = svc("b", "10.96.0.21", "ClusterIP", vec![ep("10.244.1.3", true)]);
        p.apply(&[a.clone(), b.clone()]).unwrap();
        let first = fake.nft_scripts()[0].clone();
        assert!(first.starts_with("add table ip berth\ndelete table ip berth\ntable ip berth {"));

        p.apply(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            fake.nft_scripts().len(),
            1,
            "unchanged view must not run nft"
        );

        let mut a2 = a.clone();
        a2.endpoints[1].ready = false;
        p.apply(&[a2, b.clone()]).unwrap();
        let upd = fake.nft_scripts()[1].clone();
        assert!(
            !upd.contains("table ip berth {"),
            "incremental update must not rebuild the table:\n{upd}"
        );
        assert!(!upd.contains("10.244.1.3"), "service b untouched:\n{upd}");
        assert!(upd.contains("numgen random mod 1"));
        let stale_sep = render_service(&cfg(), &a)
            .chains
            .into_keys()
            .find(|k| k.contains("10-244-2-2"))
            .unwrap();
        let flush = upd
            .find(&format!("flush chain ip berth {stale_sep}"))
            .unwrap();
        let del = upd
            .find(&format!("delete chain ip berth {stale_sep}"))
            .unwrap();
        assert!(flush < del);

        p.apply(std::slice::from_ref(&b)).unwrap();
        let rm = fake.nft_scripts()[2].clone();
        assert!(
            rm.contains("delete element ip berth service-ips { 10.96.0.20 . tcp . 80 }"),
            "{rm}"
        );
        assert!(rm.find("delete element").unwrap() < rm.find("delete chain").unwrap());
    }

    #[test]
    fn failed_transaction_forces_full_rebuild() {
        let fake = Arc::new(FakeNetlink::new());
        let mut p = ServiceProxy::new(fake.clone(), cfg());
        let a = svc("a", "10.96.0.20", "ClusterIP", vec![ep("10.244.1.2", true)]);
        p.apply(std::slice::from_ref(&a)).unwrap();
        fake.fail_nft(true);
        let mut a2 = a.clone();
        a2.endpoints[0].ready = false;
        assert!(p.apply(std::slice::from_ref(&a2)).is_err());
        fake.fail_nft(false);
        p.apply(std::slice::from_ref(&a2)).unwrap();
        assert!(fake
            .nft_scripts()
            .last()
            .unwrap()
            .starts_with("add table ip berth\ndelete table"));
    }

    #[test]
    fn chain_names_are_stable_and_bounded() {
        assert_eq!(hash8("x"), hash8("x"));
        assert_ne!(hash8("default/a/tcp/http"), hash8("default/b/tcp/http"));
        let long = "n".repeat(300);
        let r = render_service(
            &cfg(),
            &svc(
                &long,
                "10.96.0.20",
                "ClusterIP",
                vec![ep("10.244.1.2", true)],
            ),
        );
        assert!(r.chains.keys().all(|k| k.len() < 250));
    }

    #[test]
    fn host_ports_are_map_elements_held_by_one_pod_each() {
        let fake = Arc::new(FakeNetlink::new());
        let mut p = ServiceProxy::new(fake.clone(), cfg());
        p.apply(&[]).unwrap();
        let web = HostPort {
            protocol: "tcp",
            host_port: 8080,
            container_port: 80,
        };
        let ip: Ipv4Addr = "10.244.1.5".parse().unwrap();
        p.publish("u1", ip, std::slice::from_ref(&web)).unwrap();
        let last = fake.nft_scripts().last().cloned().unwrap();
        assert_eq!(
            last,
            "add element ip berth host-ports { tcp . 8080 : 10.244.1.5 . 80 }\n\
             add element ip berth host-port-hairpin { 10.244.1.5 . 10.244.1.5 }\n"
        );
        let n = fake.nft_scripts().len();
        let e = p
            .publish(
                "u2",
                "10.244.1.6".parse().unwrap(),
                std::slice::from_ref(&web),
            )
            .unwrap_err();
        assert!(e.to_string().contains("already published by pod u1"), "{e}");
        assert_eq!(
            fake.nft_scripts().len(),
            n,
            "a refused publish writes nothing"
        );
        // Services change: the host port is not rewritten.
        p.apply(&[svc(
            "web",
            "10.96.0.20",
            "ClusterIP",
            vec![ep("10.244.1.9", true)],
        )])
        .unwrap();
        assert!(!fake.nft_scripts().last().unwrap().contains("host-ports"));
        // A rebuild after a failure writes it again, with the base table.
        fake.fail_nft(true);
        assert!(p.apply(&[]).is_err());
        fake.fail_nft(false);
        p.apply(&[]).unwrap();
        assert!(fake
            .nft_scripts()
            .last()
            .unwrap()
            .contains("add element ip berth host-ports { tcp . 8080 : 10.244.1.5 . 80 }"));
        p.publish("u1", Ipv4Addr::UNSPECIFIED, &[]).unwrap();
        assert_eq!(
            fake.nft_scripts().last().unwrap(),
            "delete element ip berth host-ports { tcp . 8080 }\n\
             delete element ip berth host-port-hairpin { 10.244.1.5 . 10.244.1.5 }\n"
        );
        let n = fake.nft_scripts().len();
        p.publish("u1", Ipv4Addr::UNSPECIFIED, &[]).unwrap();
        assert_eq!(fake.nft_scripts().len(), n, "withdrawing twice is a no-op");
        p.publish("u2", "10.244.1.6".parse().unwrap(), &[web])
            .unwrap();
    }
}
