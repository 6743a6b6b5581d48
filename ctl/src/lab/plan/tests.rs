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
