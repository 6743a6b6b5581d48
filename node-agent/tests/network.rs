//! Real-kernel tests of berth's node networking: nodes and pods are network namespaces on a private switch
//! namespace (see `node_agent::network::testbed`), so nothing leaves the namespaces the test creates. Needs root,
//! iproute2, nftables, the CNI plugins in /usr/lib/cni and busybox; skipped with a message otherwise.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use node_agent::network::dns::wire::{self, RData};
use node_agent::network::overlay::vtep_mac;
use node_agent::network::testbed::{self, http_get, TestPod, Testbed};
use node_agent::network::{netns_path, HostPort};
use proto::agentpb::{Endpoint, ServicePort, ServiceView};

fn skip() -> bool {
    let missing: Vec<&str> = [
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/loopback",
        "/usr/sbin/nft",
    ]
    .into_iter()
    .filter(|p| !std::path::Path::new(p).exists())
    .collect();
    if !testbed::is_root() {
        eprintln!("skipping: network tests need root");
        return true;
    }
    if !missing.is_empty() {
        eprintln!("skipping: missing {missing:?}");
        return true;
    }
    false
}

fn endpoint(p: &TestPod, ready: bool) -> Endpoint {
    Endpoint {
        ip: p.ip.to_string(),
        pod_name: p.name.clone(),
        node_name: format!("n{}", p.node + 1),
        ready,
    }
}

fn service(name: &str, ip: &str, ty: &str, affinity: &str, eps: Vec<Endpoint>) -> ServiceView {
    ServiceView {
        namespace: "default".into(),
        name: name.into(),
        cluster_ip: ip.into(),
        r#type: ty.into(),
        session_affinity: affinity.into(),
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

/// Counts which pod answered each of `n` requests from `from` to `to`.
fn responders(from: &TestPod, to: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let body = http_get(&netns_path(&from.netns), to).unwrap_or_else(|| "<failed>".into());
        *seen.entry(body).or_default() += 1;
    }
    seen
}

/// Three nodes with two pods each, httpd on 8080 in every pod.
fn three_nodes() -> (Testbed, Vec<TestPod>) {
    let mut tb = Testbed::new(3).expect("testbed");
    let mut pods = Vec::new();
    for node in 0..3 {
        for k in ["a", "b"] {
            let p = tb.add_pod(node, &format!("{k}{}", node + 1)).expect("pod");
            pods.push(p);
        }
    }
    tb.apply(&[]).expect("apply view");
    for p in pods.clone() {
        tb.start_httpd(&p, 8080).expect("httpd");
    }
    (tb, pods)
}

#[test]
fn pods_reach_each_other_across_nodes_over_vxlan_and_nothing_leaks() {
    if skip() {
        return;
    }
    let prefix;
    {
        let (tb, pods) = three_nodes();
        prefix = tb.prefix().to_string();
        let (a1, b1, a3) = (&pods[0], &pods[1], &pods[4]);
        assert_eq!(a1.ip, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(a3.ip.octets()[..3], [10, 244, 3]);

        // Safety: no node, pod or switch namespace has a default route out of the lab.
        for n in &tb.nodes {
            let routes = testbed::routes_of(&n.netns).unwrap();
            assert!(
                !routes.contains("default"),
                "node {} has a default route:\n{routes}",
                n.name
            );
            assert!(
                routes.contains("10.244.3.0/24 via 10.244.3.0 dev berth.1") || n.name == "n3",
                "{routes}"
            );
        }

        // Overlay device state on node 1.
        let fdb = tb
            .exec(
                &tb.nodes[0].netns,
                &["bridge", "fdb", "show", "dev", "berth.1"],
            )
            .unwrap();
        let fdb = String::from_utf8_lossy(&fdb.stdout);
        assert!(
            fdb.contains(&format!("{} dst 172.31.77.13", vtep_mac(tb.nodes[2].ip))),
            "{fdb}"
        );

        // Same node, then across nodes (busybox wget from a1 to httpd in a3), and ICMP.
        assert_eq!(
            http_get(&netns_path(&a1.netns), SocketAddr::new(b1.ip.into(), 8080)).as_deref(),
            Some("b1")
        );
        let out = tb
            .exec(
                &a1.netns,
                &[
                    "timeout",
                    "5",
                    "busybox",
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    &format!("http://{}:8080/", a3.ip),
                ],
            )
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "a3",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ping = tb
            .exec(
                &a3.netns,
                &["busybox", "ping", "-c", "1", "-W", "2", &a1.ip.to_string()],
            )
            .unwrap();
        assert!(ping.status.success(), "ping a3 -> a1 failed");
        // Node host to a remote pod (source = node's overlay address).
        let host = netns_path(&tb.nodes[0].netns);
        assert_eq!(
            http_get(&host, SocketAddr::new(a3.ip.into(), 8080)).as_deref(),
            Some("a3")
        );

        // MTU: underlay 1500 minus VXLAN overhead inside the pod.
        let link = tb
            .exec(&a1.netns, &["ip", "-o", "link", "show", "eth0"])
            .unwrap();
        assert!(String::from_utf8_lossy(&link.stdout).contains("mtu 1450"));

        // Node 3 leaves: its routes disappear from node 1, and a3 becomes unreachable from a1.
        let view = tb.node_routes()[..2].to_vec();
        tb.nodes[0].net.apply_nodes(&view).unwrap();
        let routes = testbed::routes_of(&tb.nodes[0].netns).unwrap();
        assert!(!routes.contains("10.244.3.0/24"), "{routes}");
        assert_eq!(
            http_get(&netns_path(&a1.netns), SocketAddr::new(a3.ip.into(), 8080)),
            None
        );
    }
    assert_eq!(
        testbed::netns_with_prefix(&format!("{prefix}-")),
        Vec::<String>::new(),
        "namespaces leaked"
    );
}

#[test]
fn cluster_ip_spreads_over_ready_endpoints_and_node_ports_answer_everywhere() {
    if skip() {
        return;
    }
    let (tb, pods) = three_nodes();
    let client = &pods[1]; // b1 on node 1
    let backends = [&pods[0], &pods[2], &pods[4]]; // a1, a2, a3 on three nodes
    let vip = SocketAddr::new(Ipv4Addr::new(10, 96, 0, 50).into(), 80);
    let mut svc = service(
        "web",
        "10.96.0.50",
        "NodePort",
        "None",
        backends.iter().map(|p| endpoint(p, true)).collect(),
    );
    tb.apply(std::slice::from_ref(&svc)).unwrap();

    let seen = responders(client, vip, 60);
    let names: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec!["a1", "a2", "a3"],
        "60 requests must reach all three endpoints: {seen:?}"
    );

    // a2 becomes unready: only a1 and a3 answer from now on.
    svc.endpoints[1].ready = false;
    tb.apply(std::slice::from_ref(&svc)).unwrap();
    let seen = responders(client, vip, 40);
    assert!(
        !seen.contains_key("a2") && !seen.contains_key("<failed>"),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");

    // Hairpin: a backend reaching the service (and so possibly itself).
    let seen = responders(backends[0], vip, 20);
    assert!(!seen.contains_key("<failed>"), "hairpin failed: {seen:?}");

    // From a node's own netns (host-network pods) through the ClusterIP.
    let host = netns_path(&tb.nodes[1].netns);
    assert!(matches!(http_get(&host, vip).as_deref(), Some("a1" | "a3")));

    // NodePort 30080 on every node's IP, from another node and from a pod.
    for n in &tb.nodes {
        let np = SocketAddr::new(n.ip.into(), 30080);
        let from_node = http_get(&netns_path(&tb.nodes[0].netns), np);
        assert!(
            matches!(from_node.as_deref(), Some("a1" | "a3")),
            "nodeport on {} from n1: {from_node:?}",
            n.name
        );
        let from_pod = http_get(&netns_path(&pods[5].netns), np);
        assert!(
            matches!(from_pod.as_deref(), Some("a1" | "a3")),
            "nodeport on {} from b3: {from_pod:?}",
            n.name
        );
    }

    // No ready endpoint: connections are refused at once rather than hanging.
    for e in &mut svc.endpoints {
        e.ready = false;
    }
    tb.apply(std::slice::from_ref(&svc)).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(http_get(&netns_path(&client.netns), vip), None);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "reject, not drop"
    );
}

#[test]
fn client_ip_affinity_pins_a_client_to_one_endpoint() {
    if skip() {
        return;
    }
    let (tb, pods) = three_nodes();
    let backends = [&pods[0], &pods[2], &pods[4]];
    let svc = service(
        "sticky",
        "10.96.0.51",
        "ClusterIP",
        "ClientIP",
        backends.iter().map(|p| endpoint(p, true)).collect(),
    );
    tb.apply(&[svc]).unwrap();
    let vip = SocketAddr::new(Ipv4Addr::new(10, 96, 0, 51).into(), 80);
    for client in [&pods[1], &pods[3], &pods[5]] {
        let seen = responders(client, vip, 15);
        assert_eq!(seen.len(), 1, "client {} saw {seen:?}", client.name);
        assert!(!seen.contains_key("<failed>"));
    }
}

#[test]
fn dns_answers_a_srv_headless_and_refuses_foreign_names() {
    if skip() {
        return;
    }
    let mut tb = Testbed::new(2).expect("testbed");
    let a1 = tb.add_pod(0, "a1").unwrap();
    let a2 = tb.add_pod(1, "a2").unwrap();
    let web = service(
        "web",
        "10.96.0.60",
        "ClusterIP",
        "None",
        vec![endpoint(&a1, true), endpoint(&a2, true)],
    );
    let mut headless = service(
        "db",
        "None",
        "ClusterIP",
        "None",
        vec![endpoint(&a1, true), endpoint(&a2, false)],
    );
    headless.ports[0].name = "sql".into();
    tb.apply(&[web, headless]).unwrap();
    tb.start_dns().unwrap();
    let from = netns_path(&a1.netns);
    let gw = tb.nodes[0].net.gateway();
    assert_eq!(gw, Ipv4Addr::new(10, 244, 1, 1));

    let m = testbed::dns_query(&from, gw, "web.default.svc.cluster.local", wire::TYPE_A).unwrap();
    assert_eq!(m.rcode, wire::RCODE_NOERROR);
    assert_eq!(m.answers[0].data, RData::A(Ipv4Addr::new(10, 96, 0, 60)));

    let m = testbed::dns_query(
        &from,
        gw,
        "_http._tcp.web.default.svc.cluster.local",
        wire::TYPE_SRV,
    )
    .unwrap();
    assert_eq!(
        m.answers[0].data,
        RData::Srv {
            priority: 0,
            weight: 100,
            port: 80,
            target: "web.default.svc.cluster.local".into()
        }
    );

    let m = testbed::dns_query(&from, gw, "db.default.svc.cluster.local", wire::TYPE_A).unwrap();
    assert_eq!(
        m.answers.iter().map(|a| a.data.clone()).collect::<Vec<_>>(),
        vec![RData::A(a1.ip)],
        "ready pods only"
    );

    let m = testbed::dns_query(&from, gw, "nope.default.svc.cluster.local", wire::TYPE_A).unwrap();
    assert_eq!(m.rcode, wire::RCODE_NXDOMAIN);
    let m = testbed::dns_query(&from, gw, "example.com", wire::TYPE_A).unwrap();
    assert_eq!(
        m.rcode,
        wire::RCODE_SERVFAIL,
        "no upstream configured: never forwarded"
    );

    // The cluster DNS VIP 10.96.0.10 reaches the node-local server too, from a pod on the other node.
    let m = testbed::dns_query(
        &netns_path(&a2.netns),
        Ipv4Addr::new(10, 96, 0, 10),
        "web.default.svc.cluster.local",
        wire::TYPE_A,
    )
    .unwrap();
    assert_eq!(m.answers[0].data, RData::A(Ipv4Addr::new(10, 96, 0, 60)));

    // busybox resolves a short name through the resolv.conf berth generates for the pod.
    let rc = tb.nodes[0].net.resolv_conf("default");
    assert!(rc.contains("search default.svc.cluster.local svc.cluster.local cluster.local"));
    let out = tb
        .exec(
            &a1.netns,
            &[
                "timeout",
                "5",
                "busybox",
                "nslookup",
                "web.default.svc.cluster.local",
                &gw.to_string(),
            ],
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10.96.0.60"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn pod_teardown_releases_the_address_for_reuse() {
    if skip() {
        return;
    }
    let mut tb = Testbed::new(1).expect("testbed");
    let a = tb.add_pod(0, "a").unwrap();
    let b = tb.add_pod(0, "b").unwrap();
    assert_ne!(a.ip, b.ip);
    tb.remove_pod(&a).unwrap();
    let c = tb.add_pod(0, "c").unwrap();
    assert_ne!(c.ip, b.ip);
    let veths = tb
        .exec(
            &tb.nodes[0].netns,
            &["ip", "-o", "link", "show", "master", "berth0"],
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&veths.stdout).lines().count(),
        2,
        "a's veth is gone"
    );
}

/// A bridge without an address of its own takes the lowest MAC among its ports. Pod `x` joins with the lowest
/// possible MAC, `a` learns the gateway's MAC, then `x` leaves: `a`'s cached gateway MAC must still reach the
/// node (this was a 30-60 s DNS outage on lab nodes after pod churn).
#[test]
fn the_gateway_keeps_its_mac_as_pods_come_and_go() {
    if skip() {
        return;
    }
    let mut tb = Testbed::new(1).expect("testbed");
    let node = tb.nodes[0].netns.clone();
    let gw = tb.nodes[0].net.gateway();
    let x = tb.add_pod(0, "x").unwrap();
    let veths = tb
        .exec(&node, &["ip", "-o", "link", "show", "master", "berth0"])
        .unwrap();
    let veths = String::from_utf8_lossy(&veths.stdout).to_string();
    let x_veth = veths
        .split(": ")
        .nth(1)
        .and_then(|n| n.split('@').next())
        .expect("x's host-side veth")
        .to_string();
    let set = tb
        .exec(
            &node,
            &["ip", "link", "set", &x_veth, "address", "02:00:00:00:00:01"],
        )
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let a = tb.add_pod(0, "a").unwrap();
    tb.apply(&[]).unwrap();
    tb.start_dns().unwrap();
    let from = netns_path(&a.netns);
    let name = "kubernetes.default.svc.cluster.local";
    testbed::dns_query(&from, gw, name, wire::TYPE_A).expect("DNS before x leaves");
    tb.remove_pod(&x).unwrap();
    let bridge_mac = |tb: &Testbed| {
        let out = tb
            .exec(&node, &["cat", "/sys/class/net/berth0/address"])
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let cached = tb
        .exec(&a.netns, &["ip", "neigh", "show", &gw.to_string()])
        .unwrap();
    let cached = String::from_utf8_lossy(&cached.stdout).to_string();
    assert!(
        cached.contains(&bridge_mac(&tb)),
        "a caches {cached:?}, the bridge has {}",
        bridge_mac(&tb)
    );
    testbed::dns_query(&from, gw, name, wire::TYPE_A).expect("DNS after x left");
}

#[test]
fn every_incremental_transaction_is_accepted_by_real_nft() {
    if skip() {
        return;
    }
    use node_agent::network::netlink::{IpTool, Netlink};
    use node_agent::network::services::{ProxyConfig, ServiceProxy};
    let ns = format!("btn{}-nftcheck", std::process::id());
    node_agent::network::create_netns(&ns).unwrap();
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = node_agent::network::delete_netns(&self.0);
        }
    }
    let _g = Guard(ns.clone());
    let tool = IpTool::in_netns(&ns);
    let cfg = ProxyConfig {
        cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        pod_cidr: "10.244.1.0/24".parse().unwrap(),
        bridge: "berth0".into(),
        dns_redirect: Some(("10.96.0.10".parse().unwrap(), "10.244.1.1".parse().unwrap())),
    };
    let mut proxy = ServiceProxy::new(std::sync::Arc::new(tool.clone()), cfg);
    let ep = |ip: &str, ready| Endpoint {
        ip: ip.into(),
        pod_name: String::new(),
        node_name: String::new(),
        ready,
    };
    let a = service(
        "a",
        "10.96.0.20",
        "NodePort",
        "ClientIP",
        vec![ep("10.244.1.2", true), ep("10.244.2.2", true)],
    );
    let b = service(
        "b",
        "10.96.0.21",
        "ClusterIP",
        "None",
        vec![ep("10.244.1.3", false)],
    );
    let mut a2 = a.clone();
    a2.endpoints[1].ready = false;
    let mut b2 = b.clone();
    b2.endpoints[0].ready = true;
    let steps: Vec<Vec<ServiceView>> = vec![
        vec![a.clone(), b.clone()],
        vec![a2.clone(), b.clone()],
        vec![a2.clone(), b2.clone()],
        vec![b2.clone()],
        vec![],
        vec![a.clone(), b2.clone()],
    ];
    for (i, step) in steps.iter().enumerate() {
        proxy
            .apply(step)
            .unwrap_or_else(|e| panic!("step {i}: {e}"));
    }
    let listing = tool.nft_list(&["list", "table", "ip", "berth"]).unwrap();
    assert!(
        listing.contains("10.96.0.20 . tcp . 80 : goto svc-"),
        "{listing}"
    );
    assert!(
        listing.contains("10.96.0.21 . tcp . 80 : goto svc-"),
        "{listing}"
    );
    assert!(listing.contains("tcp . 30080 : goto ext-"), "{listing}");
    assert!(
        !listing.contains(
            "no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\telements"
        ),
        "{listing}"
    );
    proxy.remove().unwrap();
    assert!(tool
        .nft_list(&["list", "tables"])
        .unwrap()
        .trim()
        .is_empty());
}

#[test]
fn agent_restart_re_setup_keeps_pods_and_services_working() {
    if skip() {
        return;
    }
    use node_agent::network::netlink::IpTool;
    use node_agent::network::NodeNetwork;
    let (tb, pods) = three_nodes();
    let svc = service(
        "web",
        "10.96.0.70",
        "ClusterIP",
        "None",
        vec![endpoint(&pods[4], true)],
    );
    tb.apply(std::slice::from_ref(&svc)).unwrap();
    let vip = SocketAddr::new(Ipv4Addr::new(10, 96, 0, 70).into(), 80);
    assert_eq!(
        http_get(&netns_path(&pods[0].netns), vip).as_deref(),
        Some("a3")
    );

    // A restarted agent sets the node up again from the same config and state dir.
    let node = &tb.nodes[0];
    let again =
        NodeNetwork::setup(node.net.config().clone(), IpTool::in_netns(&node.netns)).unwrap();
    let view = proto::agentpb::NetworkView {
        nodes: tb.node_routes(),
        services: vec![svc],
    };
    again.apply_view(&view).unwrap();
    let ip = again
        .pod_network()
        .setup(
            &pods[0].uid,
            "default",
            "a1",
            &netns_path(&pods[0].netns),
            false,
        )
        .unwrap();
    assert_eq!(
        ip.ip, pods[0].ip,
        "same pod keeps its address across restarts"
    );
    assert_eq!(
        http_get(&netns_path(&pods[0].netns), vip).as_deref(),
        Some("a3")
    );
    assert_eq!(
        http_get(
            &netns_path(&pods[0].netns),
            SocketAddr::new(pods[3].ip.into(), 8080)
        )
        .as_deref(),
        Some("b2")
    );
}

#[test]
fn network_mode_none_gives_loopback_only() {
    if skip() {
        return;
    }
    let tb = Testbed::new(1).expect("testbed");
    let ns = format!("{}-iso", tb.prefix());
    let path = node_agent::network::create_netns(&ns).unwrap();
    let pn = tb.nodes[0].net.pod_network();
    pn.setup_isolated("iso-uid", &path).unwrap();
    let links = tb.exec(&ns, &["ip", "-o", "link"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout).to_string();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    pn.teardown("iso-uid", &path).unwrap();
    // The testbed's Drop removes every namespace with its prefix, this one included.
}

#[test]
fn host_ports_answer_on_their_node_only_and_go_with_the_pod() {
    if skip() {
        return;
    }
    let (mut tb, pods) = three_nodes();
    let (a2, b2, b3) = (&pods[2], &pods[3], &pods[5]);
    let web = HostPort {
        protocol: "tcp",
        host_port: 8081,
        container_port: 8080,
    };
    let net2 = tb.nodes[1].net.pod_network();
    net2.publish(&a2.uid, a2.ip, std::slice::from_ref(&web))
        .unwrap();
    // Services change after the port is published: the incremental update keeps it.
    tb.apply(&[service(
        "web",
        "10.96.0.60",
        "ClusterIP",
        "None",
        vec![endpoint(b3, true)],
    )])
    .unwrap();
    let ips: Vec<Ipv4Addr> = tb.nodes.iter().map(|n| n.ip).collect();
    let on = |n: usize| SocketAddr::new(ips[n].into(), 8081);
    for (from, what) in [
        (netns_path(&tb.nodes[0].netns), "another node"),
        (netns_path(&tb.nodes[1].netns), "its own node"),
        (netns_path(&b3.netns), "a pod on another node"),
        (netns_path(&b2.netns), "a pod on the same node"),
        (netns_path(&a2.netns), "the pod itself (hairpin)"),
    ] {
        assert_eq!(
            http_get(&from, on(1)).as_deref(),
            Some("a2"),
            "hostPort from {what}"
        );
    }
    assert_eq!(
        http_get(&netns_path(&tb.nodes[0].netns), on(0)),
        None,
        "published on node 2 only"
    );
    let taken = net2.publish(&b2.uid, b2.ip, std::slice::from_ref(&web));
    assert!(
        format!("{:?}", taken.unwrap_err()).contains("already published"),
        "one pod per host port"
    );
    tb.remove_pod(a2).unwrap();
    assert_eq!(
        http_get(&netns_path(&tb.nodes[0].netns), on(1)),
        None,
        "teardown withdraws the port"
    );
    // Now free for another pod.
    net2.publish(&b2.uid, b2.ip, std::slice::from_ref(&web))
        .unwrap();
    assert_eq!(
        http_get(&netns_path(&tb.nodes[0].netns), on(1)).as_deref(),
        Some("b2")
    );
}
