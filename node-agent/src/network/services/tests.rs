//! Unit tests of the service proxy: rendering, diffing and the transactions it hands to a fake netlink.

use std::net::Ipv4Addr;
use std::sync::Arc;

use proto::agentpb::{Endpoint, ServicePort, ServiceView};

use super::render::{hash8, transaction, Programmed};
use super::*;
use crate::network::fake::FakeNetlink;
use crate::network::HostPort;

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

#[test]
fn the_transaction_is_pure_full_on_first_run_and_empty_when_nothing_changed() {
    let web = svc(
        "web",
        "10.96.0.20",
        "ClusterIP",
        vec![ep("10.244.1.2", true)],
    );
    let ports = std::collections::BTreeMap::from([(
        "u1".to_string(),
        (
            "10.244.1.5".parse::<Ipv4Addr>().unwrap(),
            vec![HostPort {
                protocol: "tcp",
                host_port: 8080,
                container_port: 80,
            }],
        ),
    )]);
    let want = Programmed::wanted(&cfg(), std::slice::from_ref(&web), &ports);
    let first = transaction(&cfg(), None, &want);
    assert!(first.starts_with("add table ip berth\ndelete table ip berth\ntable ip berth {"));
    assert!(first.contains("add element ip berth host-ports { tcp . 8080 : 10.244.1.5 . 80 }"));
    assert!(first.contains("add element ip berth host-port-hairpin { 10.244.1.5 . 10.244.1.5 }"));
    assert_eq!(transaction(&cfg(), Some(&want), &want), "");
    let gone = Programmed::wanted(&cfg(), &[], &Default::default());
    let teardown = transaction(&cfg(), Some(&want), &gone);
    assert!(!teardown.contains("add table"));
    assert!(teardown.contains("delete element ip berth host-ports { tcp . 8080 }"));
}
