//! Real-container tests of the defaults every container gets (seccomp, capabilities, no_new_privs, the pids
//! limit) and of the securityContext settings the runtime honours. Need root and crun; skip otherwise.

#[macro_use]
mod common;

use common::skip_reason;
use node_agent::images::ImageStore;
use node_agent::runtime::linux::LinuxRuntime;
use node_agent::runtime::{ContainerConfig, ContainerRuntime, MountSpec, RunState, SecurityConfig};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn image_tar() -> PathBuf {
    common::test_images()[0].clone()
}

/// One runtime in a temporary data directory; `Drop` removes whatever a failed test left behind.
struct Node {
    data: tempfile::TempDir,
    rt: LinuxRuntime,
    layers: Vec<PathBuf>,
    image_id: String,
    sandboxes: std::sync::Mutex<Vec<String>>,
}

impl Node {
    fn new() -> Node {
        let data = tempfile::tempdir().unwrap();
        let store = ImageStore::open(data.path()).unwrap();
        let rec = store.import_path(&image_tar()).unwrap().remove(0);
        let rt = LinuxRuntime::new(
            data.path(),
            PathBuf::from(env!("CARGO_BIN_EXE_berth-agent")),
        )
        .unwrap();
        Node {
            layers: store.layer_dirs(&rec).unwrap(),
            image_id: rec.config_digest.clone(),
            data,
            rt,
            sandboxes: Default::default(),
        }
    }

    /// Runs `script` under `sh -c` to its end (bounded), returning its exit code and output lines.
    fn run(
        &self,
        name: &str,
        script: &str,
        uid: u32,
        security: SecurityConfig,
        mounts: Vec<MountSpec>,
    ) -> (i32, Vec<String>) {
        let pod = format!("s{}{name}", std::process::id());
        let netns = self.rt.create_sandbox(&pod).unwrap();
        self.sandboxes.lock().unwrap().push(pod.clone());
        let cfg = ContainerConfig {
            id: format!("{pod}-c-0"),
            pod_uid: pod.clone(),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            container_name: "c".into(),
            image: "berth/busybox".into(),
            image_id: self.image_id.clone(),
            layers: self.layers.clone(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid,
            gid: uid,
            hostname: name.into(),
            netns: Some(netns),
            mounts,
            log_path: self.data.path().join(format!("logs/{name}.log")),
            security,
            ..Default::default()
        };
        let mut st = self
            .rt
            .start(&cfg)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while st.state != RunState::Exited {
            assert!(Instant::now() < deadline, "{name} did not finish: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
            st = self.rt.status(&cfg.id).unwrap();
        }
        let lines = node_agent::runtime::logs::read_lines(&cfg.log_path, None);
        self.rt.remove(&cfg.id).unwrap();
        (st.exit_code.unwrap_or(-1), lines)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.rt.reset();
        for s in self.sandboxes.lock().unwrap().drain(..) {
            let _ = self.rt.remove_sandbox(&s);
        }
    }
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l.trim() == want)
}

const PROBE: &str = "unshare -n true 2>/dev/null && echo unshare=ok || echo unshare=denied; \
    mkdir -p /mnt/x; mount -t tmpfs t /mnt/x 2>/dev/null && echo mount=ok || echo mount=denied; \
    grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status | tr -d ' \\t'";

#[test]
fn default_containers_cannot_unshare_or_mount_and_privileged_ones_can() {
    require_root!();
    let node = Node::new();
    let (code, out) = node.run("dflt", PROBE, 0, SecurityConfig::default(), vec![]);
    assert_eq!(code, 0, "{out:?}");
    for want in [
        "unshare=denied",
        "mount=denied",
        "NoNewPrivs:1",
        "Seccomp:2",
    ] {
        assert!(has(&out, want), "{want} in {out:?}");
    }
    // Docker's default set: no CAP_SYS_ADMIN (bit 21) in the effective set.
    let eff = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("CapEff:"))
        .unwrap();
    let eff = u64::from_str_radix(eff, 16).unwrap();
    assert_eq!(eff & (1 << 21), 0, "{out:?}");
    assert_ne!(eff, 0);

    // A non-root process holds no capabilities at all.
    let (_, out) = node.run("user", PROBE, 1000, SecurityConfig::default(), vec![]);
    assert!(has(&out, "CapEff:0000000000000000"), "{out:?}");

    let privileged = SecurityConfig {
        privileged: true,
        ..SecurityConfig::default()
    };
    let (code, out) = node.run("priv", PROBE, 0, privileged, vec![]);
    assert_eq!(code, 0, "{out:?}");
    for want in ["unshare=ok", "mount=ok", "NoNewPrivs:0", "Seccomp:0"] {
        assert!(has(&out, want), "{want} in {out:?}");
    }
}

#[test]
fn the_pids_limit_bounds_a_fork_bomb() {
    require_root!();
    let node = Node::new();
    let sec = SecurityConfig {
        pids_limit: 32,
        ..SecurityConfig::default()
    };
    // 200 sleepers wanted; the limit lets at most 32 tasks exist. Bounded: the loop ends either way and the
    // sleepers die with the container's pid namespace. The count uses only shell builtins: no fork is left.
    // A failed fork ends busybox sh, so the bomb runs in a subshell and the count in the shell that survives.
    let script =
        "(i=0; while [ $i -lt 200 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done) 2>/dev/null; \
        set -- /proc/[0-9]*; echo tasks=$#";
    let started = Instant::now();
    let (code, out) = node.run("bomb", script, 0, sec, vec![]);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "bounded in time"
    );
    let tasks: usize = out
        .iter()
        .find_map(|l| l.trim().strip_prefix("tasks="))
        .unwrap_or_else(|| panic!("exit {code}: {out:?}"))
        .parse()
        .unwrap();
    assert!(tasks <= 32, "{tasks} tasks under a limit of 32");
    assert!(tasks > 16, "the bomb ran: {tasks} tasks");
}

#[test]
fn a_read_only_root_filesystem_refuses_writes_but_volumes_stay_writable() {
    require_root!();
    let node = Node::new();
    let vol = tempfile::tempdir().unwrap();
    let mounts = vec![MountSpec {
        source: vol.path().to_path_buf(),
        destination: "/data".into(),
        read_only: false,
    }];
    let script = "touch /x 2>/dev/null && echo root=rw || echo root=ro; \
        echo hi > /data/f && echo data=rw || echo data=ro";
    let ro = SecurityConfig {
        read_only_rootfs: true,
        ..SecurityConfig::default()
    };
    let (_, out) = node.run("ro", script, 0, ro, mounts.clone());
    assert!(has(&out, "root=ro") && has(&out, "data=rw"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(vol.path().join("f")).unwrap(),
        "hi\n"
    );
    let (_, out) = node.run("rw", script, 0, SecurityConfig::default(), mounts);
    assert!(
        has(&out, "root=rw"),
        "the default root is writable: {out:?}"
    );
}

/// The whole pod manager over real containers: an init container plants `evil -> /` in the pod's emptyDir
/// (CVE-2017-1002101), and the app container that mounts `subPath: evil` is refused, as is one whose
/// `runAsNonRoot` the root image breaks, and a pod whose ConfigMap item path climbs out of its volume.
#[test]
fn the_agent_refuses_escapes_and_root_with_real_containers() {
    use node_agent::pod::{ClusterSettings, DesiredPod, PodManager, StoreImages};
    use serde_json::json;
    use std::sync::Arc;
    require_root!();
    let node = Node::new();
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let images = StoreImages {
        store: Arc::new(ImageStore::open(node.data.path()).unwrap()),
        handle: tokio_rt.handle().clone(),
    };
    let rt = Arc::new(
        LinuxRuntime::new(
            node.data.path(),
            PathBuf::from(env!("CARGO_BIN_EXE_berth-agent")),
        )
        .unwrap(),
    );
    let mut m = PodManager::new(
        rt,
        Arc::new(node_agent::runtime::netns_basic::LoopbackOnly),
        Arc::new(images),
        node.data.path(),
        ClusterSettings::default(),
    );
    let c = |name: &str, script: &str| {
        json!({"name": name, "image": "berth/busybox:latest",
        "imagePullPolicy": "Never", "command": ["sh", "-c", script]})
    };
    let uid = format!("e{}", std::process::id());
    let mut victim = c("victim", "sleep 300");
    victim["volumeMounts"] = json!([{"name": "data", "mountPath": "/host", "subPath": "evil"}]);
    let mut plant = c("plant", "ln -s / /data/evil");
    plant["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    let mut rootful = c("rootful", "sleep 300");
    rootful["securityContext"] = json!({"runAsNonRoot": true});
    let escape = DesiredPod {
        pod: json!({"metadata": {"name": "escape", "namespace": "default", "uid": uid},
            "spec": {"restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
                "volumes": [{"name": "data", "emptyDir": {}}],
                "initContainers": [plant], "containers": [victim, rootful]}}),
        objects: vec![],
        service_account_token: String::new(),
    };
    let items_uid = format!("i{}", std::process::id());
    let items = DesiredPod {
        pod: json!({"metadata": {"name": "items", "namespace": "default", "uid": items_uid},
            "spec": {"containers": [c("c", "sleep 300")],
                "volumes": [{"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "k", "path": "../../../../x"}]}}]}}),
        objects: vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "owned"}}),
        ],
        service_account_token: String::new(),
    };
    m.set_desired(vec![escape, items]);
    let mut status = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = |s: &serde_json::Value, n: usize| {
        s["containerStatuses"][n]["state"]["waiting"]["message"]
            .as_str()
            .map(String::from)
    };
    loop {
        for r in m.sync(std::time::SystemTime::now()) {
            status.insert(r.name.clone(), r.status);
        }
        let done = status
            .get("escape")
            .is_some_and(|s| waiting(s, 0).is_some() && waiting(s, 1).is_some())
            && status.contains_key("items");
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let escape = &status["escape"];
    assert_eq!(
        escape["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 0,
        "{escape}"
    );
    assert_eq!(
        escape["containerStatuses"][0]["state"]["waiting"]["reason"], "CreateContainerConfigError",
        "{escape}"
    );
    assert_eq!(
        waiting(escape, 0).unwrap(),
        "subPath \"evil\" resolves outside its volume"
    );
    assert_eq!(
        waiting(escape, 1).unwrap(),
        "container has runAsNonRoot and image will run as root"
    );
    let items = &status["items"];
    assert!(
        items["message"]
            .as_str()
            .unwrap_or("")
            .contains("must not contain '..'"),
        "{items}"
    );
    assert!(!node.data.path().join("x").exists() && !Path::new("/x").exists());
    let netns = Path::new("/run/netns").join(node_agent::network::netns_name(&items_uid));
    assert!(
        !netns.exists(),
        "a refused sandbox leaves no network namespace"
    );
    // Tear the pods down through the manager, as the agent does.
    m.remove(&uid);
    m.remove(&items_uid);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !m.pod_uids().is_empty() && Instant::now() < deadline {
        m.sync(std::time::SystemTime::now());
        std::thread::sleep(Duration::from_millis(100));
    }
}
