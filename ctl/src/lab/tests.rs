use std::path::{Path, PathBuf};

use super::plan::Cidr;
use super::*;

#[test]
fn state_round_trips_and_finds_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan::plan("t", 1, 2, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
    let nodes = p
        .nodes
        .iter()
        .map(|n| NodeRun {
            name: n.name.clone(),
            binary: PathBuf::from("/bin/x"),
            args: vec![],
            pid: Some(1),
            log: dir.path().join("x.log"),
            data_dir: dir.path().join(&n.name),
            partitioned: false,
            env: vec![],
        })
        .collect();
    let mut s = LabState {
        plan: p,
        dir: dir.path().to_path_buf(),
        kubeconfig: dir.path().join("kubeconfig"),
        nodes,
    };
    s.save().unwrap();
    assert_eq!(LabState::load(dir.path()).unwrap().unwrap(), s);
    assert_eq!(s.node_mut("t-a2").unwrap().1.name, "a2");
    assert!(s.node_mut("a9").is_err());
    assert!(LabState::load(&dir.path().join("nope")).unwrap().is_none());
}

#[test]
fn token_file_and_tls_kubeconfig_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let p = plan::plan("t", 2, 1, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
    let nodes = p
        .nodes
        .iter()
        .map(|n| NodeRun {
            name: n.name.clone(),
            binary: PathBuf::from("/bin/x"),
            args: p.args(n, &dir.path().join(&n.name).to_string_lossy()),
            pid: None,
            log: dir.path().join("x.log"),
            data_dir: dir.path().join(&n.name),
            partitioned: false,
            env: vec![],
        })
        .collect();
    let s = LabState {
        plan: p,
        dir: dir.path().to_path_buf(),
        kubeconfig: dir.path().join("kubeconfig"),
        nodes,
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert!(s.token().is_err());
    let t = pki::Token::generate().unwrap();
    pki::write_private(&s.token_path(), format!("{t}\n").as_bytes()).unwrap();
    assert_eq!(s.token().unwrap().to_string(), t.to_string());
    assert_eq!(mode(&s.token_path()), 0o600);
    s.save().unwrap();
    let json = std::fs::read_to_string(LabState::path(dir.path())).unwrap();
    assert!(!json.contains(&t.secret), "the token leaked into lab.json");

    // Not yet: the first server has not written its admin kubeconfig.
    assert!(!s.write_kubeconfig().unwrap());
    let admin = s.admin_kubeconfig_path().unwrap();
    assert_eq!(admin, dir.path().join("s1/pki/admin.kubeconfig"));
    std::fs::create_dir_all(admin.parent().unwrap()).unwrap();
    std::fs::write(&admin, plan::tests::admin_kubeconfig_fixture().0).unwrap();
    assert!(s.write_kubeconfig().unwrap());
    assert_eq!(mode(&s.kubeconfig), 0o600);
    let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).unwrap();
    assert_eq!(
        kc.clusters[1].cluster.as_ref().unwrap().server.as_deref(),
        Some("https://172.29.8.12:6443")
    );
}

#[test]
fn server_env_parses_and_round_trips() {
    assert_eq!(
        parse_env("BERTH_TEST_X=1").unwrap(),
        ("BERTH_TEST_X".into(), "1".into())
    );
    assert_eq!(parse_env("A_b=x=y").unwrap(), ("A_b".into(), "x=y".into()));
    for bad in ["NOEQ", "=1", "1A=2", "A-B=1", "BERTH_TOKEN=abc.def"] {
        assert!(parse_env(bad).is_err(), "{bad}");
    }
    let p = plan::plan("t", 1, 0, Cidr::parse("172.29.8.0/24").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = LabState {
        nodes: vec![NodeRun {
            name: "s1".into(),
            binary: PathBuf::from("/bin/x"),
            args: vec![],
            pid: None,
            log: dir.path().join("x.log"),
            data_dir: dir.path().join("s1"),
            partitioned: false,
            env: vec![("BERTH_TEST_X".into(), "1".into())],
        }],
        plan: p,
        dir: dir.path().to_path_buf(),
        kubeconfig: dir.path().join("kubeconfig"),
    };
    s.save().unwrap();
    assert_eq!(LabState::load(dir.path()).unwrap().unwrap(), s);
    // A lab.json written before the field existed still loads.
    let old = std::fs::read_to_string(LabState::path(dir.path()))
        .unwrap()
        .replace("\"env\"", "\"unused\"");
    std::fs::write(LabState::path(dir.path()), old).unwrap();
    assert!(LabState::load(dir.path()).unwrap().unwrap().nodes[0]
        .env
        .is_empty());
}

#[test]
fn default_dir_and_binary_search() {
    assert_eq!(lab_dir("x", None), PathBuf::from("/var/lib/berth/labs/x"));
    assert_eq!(
        lab_dir("x", Some(Path::new("/tmp/l"))),
        PathBuf::from("/tmp/l")
    );
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("berth-server"), "").unwrap();
    assert_eq!(
        find_binary("berth-server", Some(d.path())).unwrap(),
        d.path().join("berth-server")
    );
    assert!(find_binary("berth-agent", Some(d.path())).is_err());
}
