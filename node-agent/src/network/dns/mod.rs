//! Node-local DNS for service names: the record table built from the network view, the pure resolver, the
//! resolv.conf pods get, and (in `server`) the UDP/TCP server on the bridge gateway.

mod server;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

use proto::agentpb::ServiceView;

pub use server::{bind_dns, DnsServer, SharedTable};

use wire::{Message, Question, RData, Record};

/// TTL of cluster answers; short because endpoints change often and the table is authoritative locally.
pub const TTL: u32 = 5;

/// The names of the cluster domain and their records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsTable {
    domain: String,
    /// Lower-case name -> records.
    records: BTreeMap<String, Vec<RData>>,
    /// Lower-case names that exist without records of their own (`default.svc.cluster.local`).
    interior: BTreeSet<String>,
}

/// What the resolver decided for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Authoritative answer (`NOERROR`), with additional A records for SRV targets.
    Answer {
        /// Records for the question.
        answers: Vec<Record>,
        /// Glue for SRV targets.
        additionals: Vec<Record>,
    },
    /// The name exists but has no record of that type (`NOERROR`, empty).
    NoData,
    /// The name is in the cluster domain and does not exist.
    NxDomain,
    /// The name is outside the cluster domain: forward upstream (or SERVFAIL when there is none).
    NotOurs,
}

impl DnsTable {
    /// An empty table for `domain` (e.g. `cluster.local`).
    pub fn new(domain: &str) -> Self {
        DnsTable {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            ..Default::default()
        }
    }

    /// Builds the table from the services of the network view.
    ///
    /// - `NAME.NS.svc.DOMAIN` A: the ClusterIP, or the ready endpoint IPs of a headless service;
    /// - `_PORT._PROTO.NAME.NS.svc.DOMAIN` SRV for named ports (headless: one per ready endpoint, target
    ///   `A-B-C-D.NAME.NS.svc.DOMAIN` which has its own A record);
    /// - `A-B-C-D.NS.pod.DOMAIN` A answers are synthesised by [`resolve`] without a table entry.
    pub fn from_services(domain: &str, services: &[ServiceView]) -> Self {
        let mut t = DnsTable::new(domain);
        for s in services {
            let ns = s.namespace.to_ascii_lowercase();
            let base = format!("{}.{ns}.svc.{}", s.name.to_ascii_lowercase(), t.domain);
            let headless = crate::network::services::is_headless(s);
            let mut ready: Vec<Ipv4Addr> = s
                .endpoints
                .iter()
                .filter(|e| e.ready)
                .filter_map(|e| e.ip.parse().ok())
                .collect();
            ready.sort();
            ready.dedup();
            if headless {
                for ip in &ready {
                    t.add(&base, RData::A(*ip));
                    t.add(&format!("{}.{base}", dashed(*ip)), RData::A(*ip));
                }
                t.interior.insert(base.clone());
            } else if let Ok(ip) = s.cluster_ip.parse::<Ipv4Addr>() {
                t.add(&base, RData::A(ip));
            }
            for p in s.ports.iter().filter(|p| !p.name.is_empty()) {
                let proto = if p.protocol.is_empty() {
                    "tcp".to_string()
                } else {
                    p.protocol.to_ascii_lowercase()
                };
                let srv = format!("_{}._{proto}.{base}", p.name.to_ascii_lowercase());
                if headless {
                    let port = if p.target_port == 0 {
                        p.port
                    } else {
                        p.target_port
                    };
                    for ip in &ready {
                        t.add(&srv, srv_to(port, format!("{}.{base}", dashed(*ip))));
                    }
                    t.interior.insert(srv);
                } else {
                    t.add(&srv, srv_to(p.port, base.clone()));
                }
            }
        }
        let names: Vec<String> = t.records.keys().chain(t.interior.iter()).cloned().collect();
        for n in names {
            let mut rest = n.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                t.interior.insert(parent.to_string());
                rest = parent;
            }
        }
        t.interior.insert(format!("svc.{}", t.domain));
        t.interior.insert(format!("pod.{}", t.domain));
        t
    }

    fn add(&mut self, name: &str, data: RData) {
        let v = self.records.entry(name.to_string()).or_default();
        if !v.contains(&data) {
            v.push(data);
        }
    }

    /// The cluster domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

fn srv_to(port: u32, target: String) -> RData {
    RData::Srv {
        priority: 0,
        weight: 100,
        port: port as u16,
        target,
    }
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// Resolves one question against the table (pure).
pub fn resolve(table: &DnsTable, q: &Question) -> Resolution {
    let name = q.name.trim_end_matches('.').to_ascii_lowercase();
    let domain = &table.domain;
    let in_domain = name == *domain || name.ends_with(&format!(".{domain}"));
    if !in_domain {
        return Resolution::NotOurs;
    }
    let rec = |data: &RData| Record {
        name: q.name.trim_end_matches('.').to_string(),
        ttl: TTL,
        data: data.clone(),
    };
    // NS.pod.DOMAIN names encode the IP: 10-244-1-2.default.pod.cluster.local.
    if let Some(prefix) = name.strip_suffix(&format!(".pod.{domain}")) {
        if let Some((ip, _ns)) = prefix.split_once('.') {
            if let Ok(ip) = ip.replace('-', ".").parse::<Ipv4Addr>() {
                return match q.qtype {
                    wire::TYPE_A | wire::TYPE_ANY => Resolution::Answer {
                        answers: vec![rec(&RData::A(ip))],
                        additionals: vec![],
                    },
                    _ => Resolution::NoData,
                };
            }
        }
    }
    let Some(data) = table.records.get(&name) else {
        return if table.interior.contains(&name) || name == *domain {
            Resolution::NoData
        } else {
            Resolution::NxDomain
        };
    };
    let answers: Vec<Record> = data
        .iter()
        .filter(|d| q.qtype == wire::TYPE_ANY || d.rtype() == q.qtype)
        .map(rec)
        .collect();
    if answers.is_empty() {
        return Resolution::NoData;
    }
    let mut additionals = Vec::new();
    for a in &answers {
        if let RData::Srv { target, .. } = &a.data {
            for d in table
                .records
                .get(target)
                .into_iter()
                .flatten()
                .filter(|d| matches!(d, RData::A(_)))
            {
                additionals.push(Record {
                    name: target.clone(),
                    ttl: TTL,
                    data: d.clone(),
                });
            }
        }
    }
    Resolution::Answer {
        answers,
        additionals,
    }
}

/// Builds the response to `query` for a resolution; `NotOurs` becomes SERVFAIL (the server forwards before that
/// when it has an upstream).
pub fn respond(query: &Message, res: &Resolution) -> Message {
    let mut m = Message {
        id: query.id,
        response: true,
        opcode: query.opcode,
        recursion_desired: query.recursion_desired,
        recursion_available: true,
        questions: query.questions.iter().take(1).cloned().collect(),
        edns_udp_size: query.edns_udp_size.map(|_| 1232),
        ..Default::default()
    };
    match res {
        Resolution::Answer {
            answers,
            additionals,
        } => {
            m.authoritative = true;
            m.answers = answers.clone();
            m.additionals = additionals.clone();
        }
        Resolution::NoData => m.authoritative = true,
        Resolution::NxDomain => {
            m.authoritative = true;
            m.rcode = wire::RCODE_NXDOMAIN;
        }
        Resolution::NotOurs => m.rcode = wire::RCODE_SERVFAIL,
    }
    m
}

/// The resolv.conf of a pod in namespace `pod_ns` whose DNS server is `dns_ip` (the node's bridge gateway).
pub fn resolv_conf(pod_ns: &str, dns_ip: Ipv4Addr) -> String {
    resolv_conf_in(pod_ns, dns_ip, "cluster.local")
}

/// [`resolv_conf`] for another cluster domain.
pub fn resolv_conf_in(pod_ns: &str, dns_ip: Ipv4Addr, domain: &str) -> String {
    format!("search {pod_ns}.svc.{domain} svc.{domain} {domain}\nnameserver {dns_ip}\noptions ndots:5\n")
}

/// The upstream for non-cluster names: the explicit `--dns-upstream` if given, otherwise the first `nameserver` of
/// the host's resolv.conf *only if* it is a loopback address (a local resolver such as systemd-resolved). Anything
/// else yields `None` and such names get SERVFAIL: the agent never sends queries off the machine on its own.
pub fn pick_upstream(explicit: Option<SocketAddr>, host_resolv_conf: &str) -> Option<SocketAddr> {
    if explicit.is_some() {
        return explicit;
    }
    host_resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<Ipv4Addr>().ok())
        .next()
        .filter(|ip| ip.is_loopback())
        .map(|ip| SocketAddr::new(ip.into(), 53))
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;
    use proto::agentpb::{Endpoint, ServicePort};

    fn ep(ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            ip: ip.into(),
            pod_name: "p".into(),
            node_name: "n".into(),
            ready,
        }
    }

    fn table() -> DnsTable {
        let port = |name: &str, port, target| ServicePort {
            name: name.into(),
            protocol: "TCP".into(),
            port,
            node_port: 0,
            target_port: target,
        };
        DnsTable::from_services(
            "cluster.local",
            &[
                ServiceView {
                    namespace: "default".into(),
                    name: "web".into(),
                    cluster_ip: "10.96.0.20".into(),
                    r#type: "ClusterIP".into(),
                    session_affinity: String::new(),
                    ports: vec![port("http", 80, 8080), port("", 81, 81)],
                    endpoints: vec![ep("10.244.1.2", true)],
                },
                ServiceView {
                    namespace: "db".into(),
                    name: "pg".into(),
                    cluster_ip: "None".into(),
                    r#type: "ClusterIP".into(),
                    session_affinity: String::new(),
                    ports: vec![port("sql", 5432, 5432)],
                    endpoints: vec![
                        ep("10.244.2.5", true),
                        ep("10.244.3.5", true),
                        ep("10.244.3.6", false),
                    ],
                },
            ],
        )
    }

    fn q(name: &str, qtype: u16) -> Question {
        Question {
            name: name.into(),
            qtype,
            qclass: CLASS_IN,
        }
    }

    fn ips(r: &Resolution) -> Vec<Ipv4Addr> {
        match r {
            Resolution::Answer { answers, .. } => answers
                .iter()
                .filter_map(|a| {
                    if let RData::A(ip) = a.data {
                        Some(ip)
                    } else {
                        None
                    }
                })
                .collect(),
            other => panic!("expected answer, got {other:?}"),
        }
    }

    #[test]
    fn service_name_resolves_to_cluster_ip_case_insensitively() {
        let t = table();
        assert_eq!(
            ips(&resolve(&t, &q("web.default.svc.cluster.local", TYPE_A))),
            vec![Ipv4Addr::new(10, 96, 0, 20)]
        );
        let r = resolve(&t, &q("WEB.Default.svc.cluster.local.", TYPE_A));
        assert_eq!(ips(&r), vec![Ipv4Addr::new(10, 96, 0, 20)]);
        if let Resolution::Answer { answers, .. } = r {
            assert_eq!(
                answers[0].name, "WEB.Default.svc.cluster.local",
                "owner echoes the question's case"
            );
        }
    }

    #[test]
    fn headless_service_resolves_to_ready_pods() {
        let t = table();
        let got = ips(&resolve(&t, &q("pg.db.svc.cluster.local", TYPE_A)));
        assert_eq!(
            got,
            vec![Ipv4Addr::new(10, 244, 2, 5), Ipv4Addr::new(10, 244, 3, 5)]
        );
        assert_eq!(
            ips(&resolve(
                &t,
                &q("10-244-3-5.pg.db.svc.cluster.local", TYPE_A)
            )),
            vec![Ipv4Addr::new(10, 244, 3, 5)]
        );
    }

    #[test]
    fn srv_for_named_ports_with_glue() {
        let t = table();
        let Resolution::Answer {
            answers,
            additionals,
        } = resolve(&t, &q("_http._tcp.web.default.svc.cluster.local", TYPE_SRV))
        else {
            panic!()
        };
        assert_eq!(answers.len(), 1);
        assert_eq!(
            answers[0].data,
            RData::Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.default.svc.cluster.local".into()
            }
        );
        assert_eq!(additionals[0].data, RData::A(Ipv4Addr::new(10, 96, 0, 20)));
        let Resolution::Answer {
            answers,
            additionals,
        } = resolve(&t, &q("_sql._tcp.pg.db.svc.cluster.local", TYPE_SRV))
        else {
            panic!()
        };
        assert_eq!(answers.len(), 2, "one SRV per ready pod");
        assert!(answers.iter().all(|a| matches!(&a.data, RData::Srv { port: 5432, target, .. } if target.ends_with(".pg.db.svc.cluster.local"))));
        assert_eq!(additionals.len(), 2);
    }

    #[test]
    fn nxdomain_nodata_and_foreign_names() {
        let t = table();
        assert_eq!(
            resolve(&t, &q("nope.default.svc.cluster.local", TYPE_A)),
            Resolution::NxDomain
        );
        assert_eq!(
            resolve(&t, &q("example.com.default.svc.cluster.local", TYPE_A)),
            Resolution::NxDomain
        );
        assert_eq!(
            resolve(&t, &q("web.default.svc.cluster.local", TYPE_AAAA)),
            Resolution::NoData
        );
        assert_eq!(
            resolve(&t, &q("default.svc.cluster.local", TYPE_A)),
            Resolution::NoData
        );
        assert_eq!(
            resolve(&t, &q("cluster.local", TYPE_SOA)),
            Resolution::NoData
        );
        assert_eq!(
            resolve(&t, &q("_x._tcp.web.default.svc.cluster.local", TYPE_SRV)),
            Resolution::NxDomain
        );
        assert_eq!(resolve(&t, &q("example.com", TYPE_A)), Resolution::NotOurs);
        assert_eq!(
            resolve(&t, &q("notcluster.local", TYPE_A)),
            Resolution::NotOurs
        );
        assert_eq!(
            ips(&resolve(
                &t,
                &q("10-244-1-9.default.pod.cluster.local", TYPE_A)
            )),
            vec![Ipv4Addr::new(10, 244, 1, 9)]
        );
    }

    #[test]
    fn respond_sets_codes_and_flags() {
        let query = parse(&wire::query(9, "nope.default.svc.cluster.local", TYPE_A)).unwrap();
        let r = respond(&query, &Resolution::NxDomain);
        assert!(r.response && r.authoritative && r.recursion_desired);
        assert_eq!((r.id, r.rcode), (9, RCODE_NXDOMAIN));
        assert_eq!(respond(&query, &Resolution::NotOurs).rcode, RCODE_SERVFAIL);
        let bytes = encode(&respond(&query, &resolve(&table(), &query.questions[0])));
        assert_eq!(parse(&bytes).unwrap().rcode, RCODE_NXDOMAIN);
    }

    #[test]
    fn resolv_conf_has_search_path_and_ndots() {
        assert_eq!(
            resolv_conf("shop", Ipv4Addr::new(10, 244, 1, 1)),
            "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.244.1.1\noptions ndots:5\n"
        );
    }

    #[test]
    fn upstream_only_from_loopback_or_explicit() {
        assert_eq!(pick_upstream(None, "nameserver 10.255.255.53\n"), None);
        assert_eq!(
            pick_upstream(None, "# x\nnameserver 127.0.0.53\noptions edns0\n"),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            pick_upstream(None, "nameserver 8.8.8.8\nnameserver 127.0.0.1\n"),
            None,
            "first entry decides"
        );
        let explicit = Some("192.0.2.53:53".parse().unwrap());
        assert_eq!(pick_upstream(explicit, "nameserver 8.8.8.8"), explicit);
    }
}
