//! ClusterIP and NodePort allocation for Services. An allocation is a key written in the same batch
//! as the Service with `Precondition::Absent`, so two Services can never get the same IP or port;
//! the keys are removed with the Service.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::Rng;
use serde_json::{json, Value};

use crate::store::{self, Op, Precondition};

/// The service CIDR (the one agents are told about in `agents`).
const SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 16);
/// First address of the service CIDR, as a number to add offsets to.
const SERVICE_NET: u32 = u32::from_be_bytes(SERVICE_CIDR.addr().octets());
/// Size of the service CIDR.
const SERVICE_SIZE: u32 = 1 << (32 - SERVICE_CIDR.prefix_len());
/// Addresses below this offset are left to Services that ask for a fixed IP (`kubernetes` = .1,
/// cluster DNS = .10), as Kubernetes keeps a static block at the bottom of the range.
const STATIC_BLOCK: u32 = 256;
/// NodePort range (inclusive).
pub const NODE_PORT_MIN: u16 = 30000;
/// NodePort range (inclusive).
pub const NODE_PORT_MAX: u16 = 32767;

/// Store prefix of ClusterIP allocations.
pub fn ip_prefix() -> String {
    store::prefix("core", "ipallocations", Some(""))
}

/// Store prefix of NodePort allocations.
pub fn port_prefix() -> String {
    store::prefix("core", "portallocations", Some(""))
}

/// Key of one ClusterIP allocation (`/core/ipallocations//10.96.0.12`).
pub fn ip_key(ip: Ipv4Addr) -> String {
    store::key("core", "ipallocations", "", &ip.to_string())
}

/// Key of one NodePort allocation (`/core/portallocations//30080`).
pub fn port_key(port: u16) -> String {
    store::key("core", "portallocations", "", &port.to_string())
}

/// Whether a key is an allocation key.
pub fn is_allocation_key(key: &str) -> bool {
    key.starts_with(&ip_prefix()) || key.starts_with(&port_prefix())
}

/// Whether an address is inside the service CIDR (and not its network or broadcast address).
pub fn in_service_cidr(ip: Ipv4Addr) -> bool {
    SERVICE_CIDR.contains(&ip) && ip != SERVICE_CIDR.network() && ip != SERVICE_CIDR.broadcast()
}

/// What is allocated already, read from the allocation keys.
#[derive(Debug, Default, Clone)]
pub struct Used {
    /// ClusterIPs in use.
    pub ips: HashSet<Ipv4Addr>,
    /// NodePorts in use.
    pub ports: HashSet<u16>,
}

impl Used {
    /// Builds the set from the keys under [`ip_prefix`] and [`port_prefix`].
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let mut used = Used::default();
        let (ipp, pp) = (ip_prefix(), port_prefix());
        for k in keys {
            if let Some(ip) = k.strip_prefix(&ipp).and_then(|s| s.parse().ok()) {
                used.ips.insert(ip);
            } else if let Some(p) = k.strip_prefix(&pp).and_then(|s| s.parse().ok()) {
                used.ports.insert(p);
            }
        }
        used
    }
}

/// A free dynamic ClusterIP, probing upward from offset `start` (taken modulo the dynamic range),
/// then the static block; `None` when the range is full.
pub fn pick_ip(used: &HashSet<Ipv4Addr>, start: u32) -> Option<Ipv4Addr> {
    let dyn_size = SERVICE_SIZE - 1 - STATIC_BLOCK;
    let dynamic = (0..dyn_size).map(|i| STATIC_BLOCK + (start.wrapping_add(i) % dyn_size));
    let fallback = (2..STATIC_BLOCK).filter(|o| *o != 10);
    dynamic
        .chain(fallback)
        .map(|o| Ipv4Addr::from(SERVICE_NET + o))
        .find(|ip| !used.contains(ip))
}

/// A free NodePort, probing upward from offset `start`; `None` when the range is full.
pub fn pick_port(used: &HashSet<u16>, start: u16) -> Option<u16> {
    let size = (NODE_PORT_MAX - NODE_PORT_MIN + 1) as u32;
    (0..size)
        .map(|i| NODE_PORT_MIN + ((start as u32 + i) % size) as u16)
        .find(|p| !used.contains(p))
}

/// A validation failure: field path and message (`Invalid value: …`).
pub type Failure = (String, String);

/// The allocation writes to commit with a Service.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Puts (`Precondition::Absent`) of new allocations and deletes of released ones.
    pub ops: Vec<Op>,
    /// Keys the client asked for explicitly; a conflict on them is the client's error, not a race.
    pub explicit: Vec<(String, String)>,
}

fn owner_of(svc: &Value) -> String {
    format!(
        "{}/{}",
        svc.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        svc.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

fn reservation(key: &str, what: &str, owner: &str) -> Op {
    let name = key.rsplit('/').next().unwrap_or("");
    Op::Put {
        key: key.to_string(),
        value: json!({"kind": what, "metadata": {"name": name}, "spec": {"service": owner}}),
        precondition: Precondition::Absent,
    }
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(
        svc.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

fn cluster_ip(svc: &Value) -> Option<&str> {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Fills `spec.clusterIP`/`clusterIPs` and NodePorts of `svc` (created, or updated from `old`) and
/// returns the allocation writes. `rng` picks where to start probing, so concurrent creates rarely
/// collide; a collision fails the batch and the caller retries with fresh `used`.
///
/// # Errors
/// The field and message of an invalid request (IP outside the range, changed ClusterIP, port
/// outside the range, range exhausted).
pub fn plan(
    old: Option<&Value>,
    svc: &mut Value,
    used: &Used,
    rng: &mut impl Rng,
) -> Result<Plan, Failure> {
    let mut plan = Plan::default();
    let owner = owner_of(svc);
    if svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        release_into(old, &mut plan.ops);
        return Ok(plan);
    }
    // ClusterIP: immutable once set.
    let old_ip = old.and_then(cluster_ip).map(str::to_string);
    match (old_ip.as_deref(), cluster_ip(svc).map(str::to_string)) {
        (Some(o), None) => set_ip(svc, o),
        (Some(o), Some(n)) if o != n => {
            return Err((
                "spec.clusterIPs[0]".into(),
                format!("Invalid value: []string{{\"{n}\"}}: may not change once set"),
            ))
        }
        (Some(_), Some(_)) => {}
        (None, Some(n)) if n == "None" => set_ip(svc, "None"),
        (None, Some(n)) => {
            let ip: Ipv4Addr = n.parse().map_err(|_| {
                (
                    "spec.clusterIPs[0]".to_string(),
                    format!("Invalid value: \"{n}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
                )
            })?;
            if !in_service_cidr(ip) {
                return Err((
                    "spec.clusterIPs".into(),
                    format!("Invalid value: []string{{\"{n}\"}}: failed to allocate IP {n}: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16"),
                ));
            }
            let key = ip_key(ip);
            plan.ops.push(reservation(&key, "IPAddress", &owner));
            plan.explicit.push((
                key,
                format!("spec.clusterIPs: Invalid value: []string{{\"{n}\"}}: failed to allocate IP {n}: provided IP is already allocated"),
            ));
            set_ip(svc, &n);
        }
        (None, None) => {
            let ip = pick_ip(&used.ips, rng.gen()).ok_or_else(|| {
                (
                    "spec.clusterIPs".to_string(),
                    "Internal error: range is full".to_string(),
                )
            })?;
            plan.ops.push(reservation(&ip_key(ip), "IPAddress", &owner));
            set_ip(svc, &ip.to_string());
        }
    }
    // NodePorts: keep those of ports that had one, allocate for the rest, release what is dropped.
    let old_ports: Vec<u16> = old
        .filter(|o| needs_node_ports(o))
        .map(node_ports)
        .unwrap_or_default();
    let mut kept = HashSet::new();
    if needs_node_ports(svc) {
        let mut taken: HashSet<u16> = used.ports.clone();
        let old_list = old
            .and_then(|o| o.pointer("/spec/ports"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(ports)) = svc.pointer_mut("/spec/ports") {
            for (i, p) in ports.iter_mut().enumerate() {
                let requested = p.get("nodePort").and_then(Value::as_u64);
                let port = match requested {
                    Some(n) => {
                        let Some(n) = u16::try_from(n)
                            .ok()
                            .filter(|n| (NODE_PORT_MIN..=NODE_PORT_MAX).contains(n))
                        else {
                            return Err((
                                format!("spec.ports[{i}].nodePort"),
                                format!("Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                            ));
                        };
                        if !old_ports.contains(&n) && !kept.contains(&n) {
                            let key = port_key(n);
                            plan.ops.push(reservation(&key, "PortAllocation", &owner));
                            plan.explicit.push((
                                key,
                                format!("spec.ports[{i}].nodePort: Invalid value: {n}: provided port is already allocated"),
                            ));
                        }
                        n
                    }
                    None => {
                        // Same service port as before: keep its NodePort (kubectl apply drops it).
                        let previous = old_list
                            .iter()
                            .find(|o| {
                                o.get("port") == p.get("port")
                                    && o.get("protocol") == p.get("protocol")
                            })
                            .and_then(|o| o.get("nodePort"))
                            .and_then(Value::as_u64)
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|n| old_ports.contains(n) && !kept.contains(n));
                        match previous {
                            Some(n) => n,
                            None => {
                                let n = pick_port(&taken, rng.gen()).ok_or_else(|| {
                                    (
                                        format!("spec.ports[{i}].nodePort"),
                                        "Internal error: range is full".to_string(),
                                    )
                                })?;
                                plan.ops
                                    .push(reservation(&port_key(n), "PortAllocation", &owner));
                                n
                            }
                        }
                    }
                };
                taken.insert(port);
                kept.insert(port);
                p["nodePort"] = json!(port);
            }
        }
    } else if let Some(Value::Array(ports)) = svc.pointer_mut("/spec/ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
    for p in old_ports {
        if !kept.contains(&p) {
            plan.ops.push(Op::Delete {
                key: port_key(p),
                precondition: Precondition::None,
            });
        }
    }
    Ok(plan)
}

fn set_ip(svc: &mut Value, ip: &str) {
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
}

fn release_into(svc: Option<&Value>, ops: &mut Vec<Op>) {
    let Some(svc) = svc else { return };
    if let Some(ip) = cluster_ip(svc).and_then(|s| s.parse::<Ipv4Addr>().ok()) {
        ops.push(Op::Delete {
            key: ip_key(ip),
            precondition: Precondition::None,
        });
    }
    for p in node_ports(svc) {
        ops.push(Op::Delete {
            key: port_key(p),
            precondition: Precondition::None,
        });
    }
}

/// The deletes that free a Service's allocations, to commit with its deletion.
pub fn release(svc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    release_into(Some(svc), &mut ops);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    proptest::proptest! {
        /// Whatever is in use and wherever probing starts, a pick is free, inside the range, and
        /// never one of the addresses kept for fixed Services.
        #[test]
        fn picks_are_free_and_in_range(
            used_ips in proptest::collection::hash_set(0u32..SERVICE_SIZE, 0..200),
            used_ports in proptest::collection::hash_set(NODE_PORT_MIN..=NODE_PORT_MAX, 0..200),
            start in proptest::prelude::any::<u32>(),
            port_start in proptest::prelude::any::<u16>(),
        ) {
            let ips: HashSet<Ipv4Addr> = used_ips.iter().map(|o| Ipv4Addr::from(SERVICE_NET + o)).collect();
            let ip = pick_ip(&ips, start).unwrap();
            proptest::prop_assert!(!ips.contains(&ip));
            proptest::prop_assert!(in_service_cidr(ip));
            proptest::prop_assert!(u32::from(ip) - SERVICE_NET >= STATIC_BLOCK);
            let port = pick_port(&used_ports, port_start).unwrap();
            proptest::prop_assert!(!used_ports.contains(&port));
            proptest::prop_assert!((NODE_PORT_MIN..=NODE_PORT_MAX).contains(&port));
        }
    }

    #[test]
    fn picks_skip_used_and_reserved() {
        let mut used = HashSet::new();
        let first = pick_ip(&used, 0).unwrap();
        assert_eq!(first, Ipv4Addr::new(10, 96, 1, 0));
        used.insert(first);
        assert_eq!(pick_ip(&used, 0).unwrap(), Ipv4Addr::new(10, 96, 1, 1));
        // Wraps past the end of the range, never to the broadcast address.
        let last = pick_ip(&HashSet::new(), SERVICE_SIZE - 2 - STATIC_BLOCK).unwrap();
        assert_eq!(last, Ipv4Addr::new(10, 96, 255, 254));
        let mut ports = HashSet::new();
        ports.insert(30000);
        assert_eq!(pick_port(&ports, 0), Some(30001));
        assert_eq!(pick_port(&HashSet::new(), 2767), Some(32767));
        assert_eq!(pick_port(&HashSet::new(), 2768), Some(30000));
    }

    #[test]
    fn full_port_range_is_reported() {
        let all: HashSet<u16> = (NODE_PORT_MIN..=NODE_PORT_MAX).collect();
        assert_eq!(pick_port(&all, 5), None);
        let mut svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let used = Used {
            ips: HashSet::new(),
            ports: all,
        };
        assert!(plan(None, &mut svc, &used, &mut rng()).is_err());
    }

    #[test]
    fn create_allocates_ip_and_node_ports() {
        let mut svc = json!({"metadata": {"name": "s", "namespace": "d"},
            "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}});
        let p = plan(None, &mut svc, &Used::default(), &mut rng()).unwrap();
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(in_service_cidr(ip));
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip.to_string()]));
        let np = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
        assert!((NODE_PORT_MIN..=NODE_PORT_MAX).contains(&np) && np != 30080);
        assert_eq!(svc["spec"]["ports"][1]["nodePort"], 30080);
        let keys: Vec<&str> = p.ops.iter().map(Op::key).collect();
        assert_eq!(keys.len(), 3);
        assert!(keys.contains(&ip_key(ip).as_str()));
        assert!(keys.contains(&"/core/portallocations//30080"));
        assert!(p.ops.iter().all(|o| matches!(
            o,
            Op::Put {
                precondition: Precondition::Absent,
                ..
            }
        )));
        assert_eq!(p.explicit.len(), 1);
        assert_eq!(release(&svc).len(), 3);
    }

    #[test]
    fn used_addresses_are_never_picked() {
        let used = Used::from_keys([
            "/core/ipallocations//10.96.1.0",
            "/core/portallocations//30000",
        ]);
        assert!(used.ips.contains(&Ipv4Addr::new(10, 96, 1, 0)));
        for seed in 0..50u64 {
            let mut r = rand::rngs::StdRng::seed_from_u64(seed);
            let mut svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 1}]}});
            plan(None, &mut svc, &used, &mut r).unwrap();
            assert_ne!(svc["spec"]["clusterIP"], "10.96.1.0");
            assert_ne!(svc["spec"]["ports"][0]["nodePort"], 30000);
        }
    }

    #[test]
    fn headless_fixed_and_invalid_ips() {
        let mut h = json!({"spec": {"clusterIP": "None", "ports": []}});
        let p = plan(None, &mut h, &Used::default(), &mut rng()).unwrap();
        assert!(p.ops.is_empty());
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut f = json!({"spec": {"clusterIP": "10.96.0.10"}});
        let p = plan(None, &mut f, &Used::default(), &mut rng()).unwrap();
        assert_eq!(p.explicit[0].0, "/core/ipallocations//10.96.0.10");
        let mut out = json!({"spec": {"clusterIP": "10.0.0.1"}});
        assert!(plan(None, &mut out, &Used::default(), &mut rng()).is_err());
    }

    #[test]
    fn update_keeps_ip_and_ports_and_releases_dropped() {
        let mut old = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}});
        plan(None, &mut old, &Used::default(), &mut rng()).unwrap();
        let ip = old["spec"]["clusterIP"].clone();
        let kept = old["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
        let dropped = old["spec"]["ports"][1]["nodePort"].as_u64().unwrap() as u16;
        // What kubectl apply sends: no clusterIP, no nodePort.
        let mut new = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let p = plan(Some(&old), &mut new, &Used::default(), &mut rng()).unwrap();
        assert_eq!(new["spec"]["clusterIP"], ip);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], kept);
        assert_eq!(
            p.ops,
            vec![Op::Delete {
                key: port_key(dropped),
                precondition: Precondition::None
            }]
        );
        let mut changed = new.clone();
        changed["spec"]["clusterIP"] = json!("10.96.3.3");
        assert!(plan(Some(&old), &mut changed, &Used::default(), &mut rng()).is_err());
        // Back to ClusterIP: every NodePort is released.
        let mut cip =
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": kept}]}});
        let p = plan(Some(&new), &mut cip, &Used::default(), &mut rng()).unwrap();
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(p.ops.len(), 1);
    }
}
