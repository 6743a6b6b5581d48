//! Pod manager tests over the fake runtime, with an explicit clock.

use super::*;
use crate::runtime::fake::{Call, FakeRuntime};
use crate::runtime::netns_basic::LoopbackOnly;
use crate::runtime::{ContainerConfig, RunState};
use serde_json::json;
use std::time::UNIX_EPOCH;

struct Images;
impl ImageSource for Images {
    fn ensure(&self, image: &str, _: PullPolicy) -> Result<ResolvedImage, String> {
        if image == "missing" {
            return Err("not found".into());
        }
        Ok(ResolvedImage {
            image_id: "sha256:img".into(),
            layers: vec!["/l".into()],
            config: Default::default(),
        })
    }
}

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn pod(uid: &str, policy: &str, containers: &[&str]) -> DesiredPod {
    let cs: Vec<Value> = containers
        .iter()
        .map(|n| json!({"name": n, "image": "busybox"}))
        .collect();
    DesiredPod {
        pod: json!({"metadata": {"name": format!("p-{uid}"), "namespace": "default", "uid": uid},
                    "spec": {"restartPolicy": policy, "containers": cs, "terminationGracePeriodSeconds": 5}}),
        objects: vec![],
        service_account_token: String::new(),
    }
}

fn manager(rt: Arc<FakeRuntime>, dir: &Path) -> PodManager {
    let mut m = PodManager::new(
        rt,
        Arc::new(LoopbackOnly),
        Arc::new(Images),
        dir,
        ClusterSettings::default(),
    );
    m.set_secrets_on_tmpfs(false);
    m
}

fn cstatus(reports: &[StatusReport], c: usize) -> &Value {
    &reports.last().expect("a report").status["containerStatuses"][c]
}

#[test]
fn start_creates_sandbox_then_containers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![pod("u1", "Always", &["a", "b"])]);
    let r = m.sync(t(0));
    assert_eq!(
        rt.calls(),
        vec![
            Call::CreateSandbox("u1".into()),
            Call::Start {
                name: "a".into(),
                attempt: 0
            },
            Call::Start {
                name: "b".into(),
                attempt: 0
            }
        ]
    );
    let s = &r[0].status;
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["containerStatuses"][0]["ready"], true);
    assert_eq!(
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"],
        "True"
    );
    assert!(s["containerStatuses"][1]["state"]["running"].is_object());
    assert!(dir.path().join("pods/default_p-u1_u1/resolv.conf").exists());
    // Nothing changed: nothing reported.
    assert!(m.sync(t(1)).is_empty());
}

#[test]
fn crash_loop_backs_off_exponentially() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![pod("u1", "Always", &["c"])]);
    m.sync(t(0));
    rt.exit("c", 1);
    // First restart is immediate.
    let r = m.sync(t(1));
    assert_eq!(cstatus(&r, 0)["restartCount"], 1);
    assert_eq!(cstatus(&r, 0)["lastState"]["terminated"]["exitCode"], 1);
    assert!(cstatus(&r, 0)["state"]["running"].is_object());
    rt.exit("c", 1);
    let r = m.sync(t(2));
    assert_eq!(
        cstatus(&r, 0)["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
    assert!(cstatus(&r, 0)["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .starts_with("back-off 10s"));
    assert_eq!(r.last().unwrap().status["phase"], "Running");
    rt.clear_calls();
    m.sync(t(11));
    assert!(rt.calls().is_empty(), "still backing off at 9s");
    let r = m.sync(t(12));
    assert_eq!(
        rt.calls(),
        vec![Call::Start {
            name: "c".into(),
            attempt: 2
        }]
    );
    assert_eq!(cstatus(&r, 0)["restartCount"], 2);
    rt.exit("c", 1);
    let r = m.sync(t(13));
    assert!(cstatus(&r, 0)["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .starts_with("back-off 20s"));
    rt.clear_calls();
    m.sync(t(32));
    assert!(rt.calls().is_empty());
    m.sync(t(33));
    assert_eq!(
        rt.calls(),
        vec![Call::Start {
            name: "c".into(),
            attempt: 3
        }]
    );
}

#[test]
fn restart_policies_decide_phase() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![
        pod("ok", "OnFailure", &["ok"]),
        pod("bad", "Never", &["bad"]),
    ]);
    m.sync(t(0));
    rt.exit("ok", 0);
    rt.exit("bad", 3);
    let r = m.sync(t(1));
    let by = |uid: &str| r.iter().find(|x| x.uid == uid).unwrap().status.clone();
    assert_eq!(by("ok")["phase"], "Succeeded");
    assert_eq!(
        by("ok")["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(by("bad")["phase"], "Failed");
    assert_eq!(
        by("bad")["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    assert_eq!(by("bad")["containerStatuses"][0]["restartCount"], 0);
    rt.clear_calls();
    m.sync(t(100));
    assert!(
        !rt.calls().iter().any(|c| matches!(c, Call::Start { .. })),
        "no restarts"
    );
}

#[test]
fn graceful_stop_terms_then_kills_after_grace() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.set_ignore_sigterm(true);
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["a", "b"]);
    m.set_desired(vec![d.clone()]);
    m.sync(t(0));
    rt.clear_calls();
    d.pod["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    d.pod["metadata"]["deletionGracePeriodSeconds"] = json!(5);
    m.upsert(d);
    m.sync(t(1));
    assert_eq!(
        rt.calls(),
        vec![
            Call::Signal {
                name: "b".into(),
                signal: 15
            },
            Call::Signal {
                name: "a".into(),
                signal: 15
            }
        ],
        "SIGTERM in reverse order"
    );
    rt.clear_calls();
    m.sync(t(3));
    assert!(rt.calls().is_empty(), "no SIGKILL inside the grace period");
    m.sync(t(6));
    let calls = rt.calls();
    assert_eq!(
        &calls[..2],
        &[
            Call::Signal {
                name: "b".into(),
                signal: 9
            },
            Call::Signal {
                name: "a".into(),
                signal: 9
            }
        ]
    );
    let r = m.sync(t(7));
    assert!(rt.calls().contains(&Call::RemoveSandbox("u1".into())));
    let s = &r.last().unwrap().status;
    assert!(
        s["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"]["terminated"].is_object()),
        "{s}"
    );
    assert_eq!(m.pod_uids(), vec!["u1".to_string()]);
    m.remove("u1");
    m.sync(t(8));
    assert!(m.pod_uids().is_empty());
}

#[test]
fn adopted_containers_are_not_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let cfg = ContainerConfig {
        id: "u1-c-4".into(),
        pod_uid: "u1".into(),
        pod_namespace: "default".into(),
        pod_name: "p-u1".into(),
        container_name: "c".into(),
        attempt: 4,
        ..Default::default()
    };
    let mut st = crate::runtime::ContainerStatus::created(cfg);
    st.state = RunState::Running;
    st.pid = Some(4242);
    rt.adopt(st);
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![pod("u1", "Always", &["c"])]);
    let r = m.sync(t(0));
    assert!(
        !rt.calls().iter().any(|c| matches!(c, Call::Start { .. })),
        "{:?}",
        rt.calls()
    );
    assert_eq!(cstatus(&r, 0)["restartCount"], 4);
    assert_eq!(cstatus(&r, 0)["containerID"], "berth://u1-c-4");
}

#[test]
fn orphans_of_a_previous_agent_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let cfg = ContainerConfig {
        id: "gone-c-0".into(),
        pod_uid: "gone".into(),
        container_name: "c".into(),
        ..Default::default()
    };
    let mut st = crate::runtime::ContainerStatus::created(cfg);
    st.state = RunState::Running;
    rt.adopt(st);
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![]);
    m.sync(t(0));
    assert!(rt.calls().contains(&Call::Signal {
        name: "c".into(),
        signal: 15
    }));
}

#[test]
fn readiness_probe_failure_marks_not_ready_and_image_errors_wait() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.set_exec_exit_code(1);
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["c"]);
    d.pod["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1});
    let mut bad = pod("u2", "Always", &["x"]);
    bad.pod["spec"]["containers"][0]["image"] = json!("missing");
    m.set_desired(vec![d, bad]);
    let r = m.sync(t(0));
    let by = |uid: &str| r.iter().find(|x| x.uid == uid).unwrap().status.clone();
    assert_eq!(by("u1")["containerStatuses"][0]["ready"], false);
    assert_eq!(by("u1")["conditions"][2]["status"], "False");
    assert!(rt.calls().contains(&Call::Exec("c".into())));
    assert_eq!(
        by("u2")["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ErrImagePull"
    );
    assert_eq!(by("u2")["phase"], "Pending");
    rt.set_exec_exit_code(0);
    let r = m.sync(t(2));
    assert_eq!(
        r.iter().find(|x| x.uid == "u1").unwrap().status["containerStatuses"][0]["ready"],
        true
    );
}

#[test]
fn liveness_failure_restarts_container() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.set_exec_exit_code(1);
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["c"]);
    d.pod["spec"]["containers"][0]["livenessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2});
    m.set_desired(vec![d]);
    m.sync(t(0));
    m.sync(t(1));
    assert!(rt.calls().contains(&Call::Signal {
        name: "c".into(),
        signal: 15
    }));
    let r = m.sync(t(2));
    assert_eq!(cstatus(&r, 0)["restartCount"], 1);
}

#[test]
fn a_long_run_resets_the_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    m.set_desired(vec![pod("u1", "Always", &["c"])]);
    rt.set_now("2027-01-15T08:00:00Z");
    m.sync(t(0));
    rt.exit("c", 1);
    m.sync(t(1));
    rt.exit("c", 1);
    let r = m.sync(t(2));
    assert!(cstatus(&r, 0)["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .starts_with("back-off 10s"));
    m.sync(t(12));
    // This instance runs for an hour before crashing: the next restart is immediate again.
    rt.set_now("2027-01-15T09:00:00Z");
    rt.exit("c", 1);
    rt.clear_calls();
    let r = m.sync(t(3600));
    assert_eq!(
        rt.calls(),
        vec![
            Call::Remove("c".into()),
            Call::Start {
                name: "c".into(),
                attempt: 3
            }
        ]
    );
    assert_eq!(cstatus(&r, 0)["restartCount"], 3);
}

#[test]
fn init_containers_run_in_order_before_app_containers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["app"]);
    d.pod["spec"]["initContainers"] =
        json!([{"name": "i1", "image": "busybox"}, {"name": "i2", "image": "busybox"}]);
    m.set_desired(vec![d]);
    let r = m.sync(t(0));
    assert_eq!(
        rt.calls(),
        vec![
            Call::CreateSandbox("u1".into()),
            Call::Start {
                name: "i1".into(),
                attempt: 0
            }
        ]
    );
    let s = &r[0].status;
    assert_eq!(s["phase"], "Pending");
    assert_eq!(s["conditions"][1]["status"], "False");
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    rt.exit("i1", 1);
    m.sync(t(1));
    assert!(
        rt.calls().contains(&Call::Start {
            name: "i1".into(),
            attempt: 1
        }),
        "failed init container retried"
    );
    rt.exit("i1", 0);
    m.sync(t(2));
    assert!(rt.calls().contains(&Call::Start {
        name: "i2".into(),
        attempt: 0
    }));
    assert!(!rt
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Start { name, .. } if name == "app")));
    rt.exit("i2", 0);
    let r = m.sync(t(3));
    assert!(rt.calls().contains(&Call::Start {
        name: "app".into(),
        attempt: 0
    }));
    let s = &r.last().unwrap().status;
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["conditions"][1]["status"], "True");
    assert_eq!(
        s["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(s["initContainerStatuses"][0]["restartCount"], 1);
}

#[test]
fn failed_init_container_with_restart_never_fails_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Never", &["app"]);
    d.pod["spec"]["initContainers"] = json!([{"name": "i1", "image": "busybox"}]);
    m.set_desired(vec![d]);
    m.sync(t(0));
    rt.exit("i1", 2);
    let r = m.sync(t(1));
    assert_eq!(r.last().unwrap().status["phase"], "Failed");
    assert!(!rt
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Start { name, .. } if name == "app")));
}

#[test]
fn host_ports_are_published_with_the_pod_ip_and_go_with_the_pod() {
    use crate::network::fake::{FakePodNetwork, PodNetworkCall};
    use crate::network::HostPort;
    use crate::runtime::netns_basic::Network;
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let net = Arc::new(FakePodNetwork::new("172.31.0.5".parse().unwrap()));
    let mut m = PodManager::new(
        rt,
        Arc::new(Network(net.clone())),
        Arc::new(Images),
        dir.path(),
        ClusterSettings::default(),
    );
    m.set_secrets_on_tmpfs(false);
    let mut p = pod("u1", "Always", &["web"]);
    p.pod["spec"]["containers"][0]["ports"] = json!([
        {"containerPort": 8080, "hostPort": 80},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
        {"containerPort": 9000},
    ]);
    m.set_desired(vec![p]);
    m.sync(t(0));
    let published: Vec<_> = net
        .calls()
        .into_iter()
        .filter(|c| matches!(c, PodNetworkCall::Publish { .. }))
        .collect();
    assert_eq!(
        published,
        [PodNetworkCall::Publish {
            uid: "u1".into(),
            ip: "10.244.0.2".parse().unwrap(),
            ports: vec![
                HostPort {
                    protocol: "tcp",
                    host_port: 80,
                    container_port: 8080
                },
                HostPort {
                    protocol: "udp",
                    host_port: 5353,
                    container_port: 53
                },
            ],
        }]
    );
    // An SCTP host port cannot be published: the sandbox fails with a reason instead of running without it.
    let mut bad = pod("u2", "Always", &["x"]);
    bad.pod["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 1, "hostPort": 1, "protocol": "SCTP"}]);
    m.set_desired(vec![bad]);
    m.sync(t(1));
    let r = m.sync(t(40));
    assert!(
        net.calls()
            .iter()
            .any(|c| matches!(c, PodNetworkCall::Teardown { uid } if uid == "u1")),
        "the removed pod's network (and ports) were torn down"
    );
    let text = format!("{r:?}");
    assert!(text.contains("only TCP and UDP"), "{text}");
}

#[test]
fn secrets_and_the_service_account_token_live_on_a_tmpfs_and_go_with_the_pod() {
    use base64::Engine as _;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = PodManager::new(
        rt.clone(),
        Arc::new(LoopbackOnly),
        Arc::new(Images),
        dir.path(),
        ClusterSettings {
            ca_pem: "CA PEM".into(),
            ..ClusterSettings::default()
        },
    );
    // Mounting needs root; elsewhere the same files go in a plain 0700 directory.
    let root = nix::unistd::geteuid().is_root();
    m.set_secrets_on_tmpfs(root);
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["volumes"] =
        json!([{"name": "creds", "secret": {"secretName": "s", "defaultMode": 256}}]);
    d.pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "creds", "mountPath": "/creds"}]);
    let v = base64::engine::general_purpose::STANDARD.encode("hunter2");
    d.objects = vec![json!({"kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": v}})];
    d.service_account_token = "tok1".into();
    m.set_desired(vec![d.clone()]);
    m.sync(t(0));
    let pod_dir = dir.path().join("pods/default_p-u1_u1");
    let secrets = pod_dir.join("secrets");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
    assert_eq!(mode(&secrets), 0o700);
    assert_eq!(dev(&secrets) != dev(&pod_dir), root, "a tmpfs of its own");
    let pw = secrets.join("volumes/creds/pw");
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), "hunter2");
    assert_eq!(mode(&pw), 0o400, "defaultMode 256");
    let sa = secrets.join("serviceaccount");
    assert_eq!(std::fs::read_to_string(sa.join("token")).unwrap(), "tok1");
    assert_eq!(
        std::fs::read_to_string(sa.join("ca.crt")).unwrap(),
        "CA PEM"
    );
    assert_eq!(
        std::fs::read_to_string(sa.join("namespace")).unwrap(),
        "default"
    );
    assert_eq!(mode(&sa.join("token")), 0o644);
    // Both are mounted read-only into the container.
    let id = m.container_id("default", "p-u1", Some("a")).unwrap();
    let mounts = rt.status(&id).unwrap().config.mounts;
    let find = |dest: &str| mounts.iter().find(|m| m.destination == dest).cloned();
    let creds = find("/creds").unwrap();
    assert!(creds.read_only && creds.source.starts_with(&secrets));
    let sa_mount = find(pod_volumes::SERVICE_ACCOUNT_DIR).unwrap();
    assert!(sa_mount.read_only && sa_mount.source == sa);
    // A new token is written in place, without a restart.
    d.service_account_token = "tok2".into();
    m.upsert(d);
    m.sync(t(1));
    assert_eq!(std::fs::read_to_string(sa.join("token")).unwrap(), "tok2");
    assert_eq!(m.container_id("default", "p-u1", Some("a")), Some(id));
    // The pod goes: the tmpfs is unmounted and the directory removed.
    m.remove("u1");
    for s in 2..20 {
        m.sync(t(s * 10));
    }
    assert!(m.pod_uids().is_empty());
    assert!(!pod_dir.exists());
}

#[test]
fn grace_periods_past_the_end_of_the_clock_do_not_kill_the_pod_manager() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.set_ignore_sigterm(true);
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["terminationGracePeriodSeconds"] = json!(i64::MAX);
    m.set_desired(vec![d.clone()]);
    m.sync(t(0));
    rt.clear_calls();
    d.pod["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    d.pod["metadata"]["deletionGracePeriodSeconds"] = json!(i64::MAX);
    m.upsert(d);
    m.sync(t(1));
    assert_eq!(
        rt.calls(),
        vec![Call::Signal {
            name: "a".into(),
            signal: 15
        }]
    );
    rt.clear_calls();
    m.sync(t(1000));
    assert!(
        rt.calls().is_empty(),
        "no SIGKILL inside a (very long) grace period"
    );
}

fn waiting(r: &[StatusReport], c: usize) -> (String, String) {
    let w = &cstatus(r, c)["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

fn started(rt: &FakeRuntime) -> bool {
    rt.calls().iter().any(|c| matches!(c, Call::Start { .. }))
}

#[test]
fn volume_items_outside_their_volume_are_refused_at_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    // As if the API had been bypassed: nothing validated this pod.
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "cm",
        "items": [{"key": "k", "path": "../../../escaped"}]}}]);
    d.objects = vec![json!({"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}})];
    m.set_desired(vec![d]);
    let r = m.sync(t(0));
    let status = &r.last().unwrap().status;
    assert_eq!(status["reason"], "SandboxError", "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("must not contain '..'"),
        "{status}"
    );
    assert!(!started(&rt));
    assert!(
        rt.calls().contains(&Call::RemoveSandbox("u1".into())),
        "the refused sandbox is removed, not leaked: {:?}",
        rt.calls()
    );
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().join("pods/escaped").exists());
}

#[test]
fn a_claim_name_that_is_a_path_is_refused_at_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "../../../etc"}}]);
    m.set_desired(vec![d]);
    let r = m.sync(t(0));
    let status = &r.last().unwrap().status;
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .contains("is not a valid DNS-1123 subdomain"),
        "{status}"
    );
    assert!(!started(&rt));
}

#[test]
fn a_sub_path_symlink_out_of_its_volume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    // What a container could have left in its emptyDir for the next one (CVE-2017-1002101).
    let vol = dir.path().join("pods/default_p-u1_u1/volumes/data");
    std::fs::create_dir_all(&vol).unwrap();
    std::os::unix::fs::symlink("/", vol.join("evil")).unwrap();
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    d.pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/host", "subPath": "evil/etc"}]);
    m.set_desired(vec![d]);
    let r = m.sync(t(0));
    let (reason, message) = waiting(&r, 0);
    assert_eq!(reason, "CreateContainerConfigError");
    assert_eq!(message, "subPath \"evil/etc\" resolves outside its volume");
    assert!(!started(&rt));
}

#[test]
fn a_sub_path_inside_its_volume_is_pinned_and_released_with_the_pod() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: pinning a subPath needs root (a bind mount)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    d.pod["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/d", "subPath": "app/db"}]);
    m.set_desired(vec![d]);
    m.sync(t(0));
    let id = m.container_id("default", "p-u1", Some("a")).unwrap();
    let mount = rt.status(&id).unwrap().config.mounts[0].clone();
    let pod_dir = dir.path().join("pods/default_p-u1_u1");
    assert_eq!(mount.source, pod_dir.join("subpaths/a/0"));
    std::fs::write(mount.source.join("f"), "x").unwrap();
    assert_eq!(
        std::fs::read_to_string(pod_dir.join("volumes/data/app/db/f")).unwrap(),
        "x",
        "the pin is the subPath itself"
    );
    m.remove("u1");
    for s in 2..20 {
        m.sync(t(s * 10));
    }
    assert!(!pod_dir.exists(), "unpinned, then removed");
}

#[test]
fn run_as_non_root_refuses_a_root_container() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let mut m = manager(rt.clone(), dir.path());
    let mut d = pod("u1", "Always", &["a"]);
    d.pod["spec"]["securityContext"] = json!({"runAsNonRoot": true});
    m.set_desired(vec![d]);
    let r = m.sync(t(0));
    assert_eq!(
        waiting(&r, 0),
        (
            "CreateContainerConfigError".to_string(),
            "container has runAsNonRoot and image will run as root".to_string()
        )
    );
    assert!(!started(&rt));
}

#[test]
fn mount_options_the_node_cannot_honour_are_refused() {
    for (k, v) in [
        ("subPathExpr", "$(POD_NAME)"),
        ("mountPropagation", "Bidirectional"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rt = Arc::new(FakeRuntime::new());
        let mut m = manager(rt.clone(), dir.path());
        let mut d = pod("u1", "Always", &["a"]);
        d.pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        d.pod["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/d", k: v}]);
        m.set_desired(vec![d]);
        let r = m.sync(t(0));
        let (reason, message) = waiting(&r, 0);
        assert_eq!(reason, "CreateContainerConfigError");
        assert!(message.contains(k), "{message}");
        assert!(!started(&rt));
    }
}
