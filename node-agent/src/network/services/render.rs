//! The pure half of the service proxy: renders each Service into nftables chains, sets and map elements, and
//! diffs what the kernel holds against what is wanted into one `nft -f` transaction. No I/O here, so every
//! rule the proxy would write can be checked in a unit test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use proto::agentpb::ServiceView;

use crate::network::{HostPort, Ipv4Net};

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
    pub cluster_cidr: Ipv4Net,
    /// This node's pod CIDR: pods from it leaving the cluster network are masqueraded.
    pub pod_cidr: Ipv4Net,
    /// The pod bridge, so pod-to-pod traffic on it is never masqueraded.
    pub bridge: String,
    /// Redirect the cluster DNS VIP (e.g. 10.96.0.10:53) to this node's DNS server, `(vip, local)`, unless a Service
    /// claims that IP.
    pub dns_redirect: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// Stable short hash for chain names that stay the same across agent restarts: the low 32 bits of
/// FNV-1a 64 (not FNV-1a 32), because chains programmed by earlier agents carry these names.
pub(super) fn hash8(s: &str) -> String {
    format!("{:08x}", apimachinery::hash::fnv1a_64(s.as_bytes()) as u32)
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
        port = crate::network::overlay::VXLAN_PORT,
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
pub(super) fn render_update(script: &mut String, old: &RenderedService, new: &RenderedService) {
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

pub(super) fn key_of(s: &ServiceView) -> String {
    format!("{}/{}", s.namespace, s.name)
}

/// What the kernel holds, as last written (or what it should hold next).
#[derive(Debug, Default)]
pub(super) struct Programmed {
    services: BTreeMap<String, RenderedService>,
    /// `proto . port` -> `ip . port` elements of the `host-ports` map.
    host_ports: BTreeMap<String, String>,
    /// `ip . ip` elements of `host-port-hairpin`: a pod reaching its own host port comes back to itself and
    /// must not see its own address as the source (the kernel drops that as a martian).
    hairpin: BTreeSet<String>,
}

impl Programmed {
    /// What the kernel should hold for `services` and the published host ports (pod UID -> (IP, ports)).
    pub(super) fn wanted(
        cfg: &ProxyConfig,
        services: &[ServiceView],
        host_ports: &BTreeMap<String, (Ipv4Addr, Vec<HostPort>)>,
    ) -> Programmed {
        let services: BTreeMap<String, RenderedService> = services
            .iter()
            .map(|s| (key_of(s), render_service(cfg, s)))
            .collect();
        let hairpin = host_ports
            .values()
            .map(|(ip, _)| format!("{ip} . {ip}"))
            .collect();
        let host_ports: BTreeMap<String, String> = host_ports
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
        Programmed {
            services,
            host_ports,
            hairpin,
        }
    }
}

/// The `nft -f` script that turns `old` into `new`; with no `old` (first run, or the last write failed) it
/// replaces the whole table, which also clears leftovers of a previous agent run. Empty when nothing changed.
pub(super) fn transaction(cfg: &ProxyConfig, old: Option<&Programmed>, new: &Programmed) -> String {
    let mut script = String::new();
    let empty = RenderedService::default();
    let rebuilt = Programmed::default();
    let old = match old {
        None => {
            script.push_str(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"));
            script.push_str(&render_base(cfg));
            &rebuilt
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
    script
}
