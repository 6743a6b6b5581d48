//! Real-container tests: need root, crun (or runc) and overlayfs. They skip with a printed reason otherwise.

use node_agent::images::{ImageStore, PullPolicy};
use node_agent::runtime::linux::LinuxRuntime;
use node_agent::runtime::{ContainerConfig, ContainerRuntime, RunState};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[macro_use]
mod common;

use common::skip_reason;

/// Builds the test images once per process and returns (oci tar, oci dir, docker tar).
fn images() -> (PathBuf, PathBuf, PathBuf) {
    let p = common::test_images();
    (p[0].clone(), p[1].clone(), p[2].clone())
}

/// Removes whatever a failed test left behind under `data`: containers (kill, delete, unmount), their
/// netns and cgroups. Runs from `Drop`, so panicking tests clean up too.
fn force_cleanup(data: &Path) {
    node_agent::pod::release_secret_mounts(data);
    let Some(oci) = node_agent::runtime::linux::find_oci_runtime() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(data.join("containers")) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let state: Option<Value> = std::fs::read(e.path().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let _ = node_agent::runtime::linux::oci_command(&oci)
            .args(["delete", "-f", &id])
            .output();
        if let Some(sup) = state.as_ref().and_then(|s| s["supervisor_pid"].as_i64()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sup as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = nix::mount::umount2(&e.path().join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        if let Some(uid) = state
            .as_ref()
            .and_then(|s| s["config"]["pod_uid"].as_str().map(String::from))
        {
            let name = node_agent::network::netns_name(&uid);
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &name])
                .output();
            for h in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_dir(h.path().join(format!("berth/pod{uid}/{id}")));
                let _ = std::fs::remove_dir(h.path().join(format!("berth/pod{uid}")));
            }
        }
    }
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        force_cleanup(&self.0);
    }
}

fn supervisor() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-agent"))
}

#[test]
fn import_oci_and_docker_archives_share_layers() {
    require_root!();
    let (oci_tar, oci_dir, docker_tar) = images();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let a = store.import_path(&oci_tar).unwrap();
    assert_eq!(a[0].name, "docker.io/berth/busybox:latest");
    let b = store.import_path(&docker_tar).unwrap();
    assert_eq!(b[0].name, "docker.io/berth/busybox:latest");
    let c = store.import_path(&oci_dir).unwrap();
    assert_eq!(
        a[0].layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        c[0].layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()
    );
    assert_eq!(a[0].config_digest, b[0].config_digest);
    let rec = store.resolve("berth/busybox").unwrap();
    let dirs = store.layer_dirs(&rec).unwrap();
    assert_eq!(
        std::fs::read_dir(data.path().join("layers"))
            .unwrap()
            .count(),
        2,
        "layers unpacked once and shared"
    );
    assert!(dirs[0].join("bin/busybox").exists());
    assert!(dirs[0]
        .join("bin/sh")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    // Layer 2's `.wh.motd-old` became an overlay whiteout (0:0 char device).
    use std::os::unix::fs::FileTypeExt;
    assert!(dirs[1]
        .join("etc/motd-old")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_char_device());
    let cfg = store.config(&rec).unwrap();
    assert_eq!(cfg.cmd, vec!["sh".to_string()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(rt
        .block_on(store.ensure("berth/busybox:latest", PullPolicy::Never))
        .is_ok());
    assert!(rt
        .block_on(store.ensure("berth/absent:1", PullPolicy::Never))
        .is_err());
}

#[test]
fn runtime_runs_httpd_in_own_namespaces() {
    require_root!();
    let (oci_tar, _, _) = images();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let rec = store.import_path(&oci_tar).unwrap().remove(0);
    let rt = LinuxRuntime::new(data.path(), supervisor()).unwrap();
    let _cleanup = Cleanup(data.path().to_path_buf());
    let uid = format!("t{}", std::process::id());
    let netns = rt.create_sandbox(&uid).unwrap();
    let cfg = ContainerConfig {
        id: format!("{uid}-web-0"),
        pod_uid: uid.clone(),
        pod_namespace: "default".into(),
        pod_name: "web".into(),
        container_name: "web".into(),
        image: "berth/busybox".into(),
        image_id: rec.config_digest.clone(),
        layers: store.layer_dirs(&rec).unwrap(),
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo started; exec httpd -f -p 8080 -h /var/www".into(),
        ],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: "web".into(),
        netns: Some(netns.clone()),
        memory_limit: Some(64 << 20),
        log_path: data.path().join("logs/web/0.log"),
        ..Default::default()
    };
    let st = rt.start(&cfg).unwrap();
    assert_eq!(st.state, RunState::Running, "{st:?}");
    let pid = st.pid.unwrap();
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let ctr = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_ne!(host, ctr, "container has its own {ns} namespace");
    }
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/pod{uid}/{}/memory.limit_in_bytes",
        cfg.id
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let out = rt
        .exec(
            &cfg.id,
            &[
                "wget".into(),
                "-qO-".into(),
                "http://127.0.0.1:8080/".into(),
            ],
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from berth busybox\n"
    );
    let hostname = rt
        .exec(&cfg.id, &["hostname".into()], Duration::from_secs(5))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hostname.stdout).trim(), "web");
    // httpd as pid 1 has no SIGTERM handler, so the kernel ignores SIGTERM: SIGKILL it.
    rt.signal(&cfg.id, 9).unwrap();
    let mut st = rt.status(&cfg.id).unwrap();
    for _ in 0..500 {
        if st.state == RunState::Exited {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        st = rt.status(&cfg.id).unwrap();
    }
    assert_eq!(st.state, RunState::Exited);
    let lines = node_agent::runtime::logs::read_lines(&cfg.log_path, None);
    assert_eq!(lines.first().map(String::as_str), Some("started"));
    rt.remove(&cfg.id).unwrap();
    rt.remove_sandbox(&uid).unwrap();
    assert!(!netns.exists());
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/berth/pod{uid}")).exists());
}

// ---- the whole agent against an in-process agents service ------------------------------------------------

use control_plane::store::{Batch, Consistency, MemStore, ObjectStore, Op, Precondition};
use serde_json::{json, Value};
use std::sync::Arc;

use common::serve_agents;
use control_plane::security::ClusterPki;

/// A loopback TCP proxy that can be killed (all its connections dropped), standing for a failed server.
struct Proxy {
    addr: std::net::SocketAddr,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let t = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                t.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Proxy { addr, tasks }
    }

    fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

struct Cluster {
    store: Arc<dyn ObjectStore>,
    pki: Arc<ClusterPki>,
    _pki_dir: tempfile::TempDir,
    /// `--server` value of the agent.
    servers: String,
    data: tempfile::TempDir,
    http: std::net::SocketAddr,
    agent: Option<std::process::Child>,
    _server: tokio::task::JoinHandle<()>,
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_agent();
        force_cleanup(self.data.path());
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
        let (dir, pki) = common::new_pki(Duration::from_secs(3600));
        let (grpc, server) = serve_agents(store.clone(), pki.clone()).await;
        Cluster::with(store, (dir, pki), grpc.to_string(), server)
    }

    fn with(
        store: Arc<dyn ObjectStore>,
        (pki_dir, pki): (tempfile::TempDir, Arc<ClusterPki>),
        servers: String,
        server: tokio::task::JoinHandle<()>,
    ) -> Cluster {
        let mut c = Cluster {
            store,
            pki,
            _pki_dir: pki_dir,
            servers,
            data: tempfile::tempdir().unwrap(),
            http: free_port(),
            agent: None,
            _server: server,
        };
        c.start_agent();
        c
    }

    fn start_agent(&mut self) {
        let child = std::process::Command::new(supervisor())
            .args(["--server", &self.servers, "--node-name", "n1"])
            .env("BERTH_TOKEN", self.pki.token.to_string())
            .arg("--data-dir")
            .arg(self.data.path())
            .args([
                "--node-ip",
                "127.0.0.1",
                "--network",
                "none",
                "--listen",
                &self.http.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    async fn get(&self, key: &str) -> Option<Value> {
        self.store
            .get(key, Consistency::Local)
            .await
            .unwrap()
            .map(|o| o.value)
    }

    async fn put(&self, key: &str, v: Value) {
        self.store
            .commit(Batch::one(Op::Put {
                key: key.into(),
                value: v,
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
    }

    async fn wait_for<T>(
        &self,
        what: &str,
        secs: u64,
        mut f: impl FnMut(Option<Value>) -> Option<T>,
        key: &str,
    ) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.get(key).await;
            if let Some(t) = f(v.clone()) {
                return t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; last {v:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A request to the agent's 10250 as the API server (the only caller it serves).
    async fn http(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let config = self.pki.agent_client_config().unwrap();
        common::https(self.http, config, method, path, body).await
    }

    async fn http_get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, b"").await.unwrap()
    }

    async fn load_image(&self) {
        let (oci_tar, _, _) = images();
        let body = std::fs::read(oci_tar).unwrap();
        for _ in 0..100 {
            if let Ok((code, resp)) = self.http("POST", "/images/load", &body).await {
                assert_eq!(code, 200, "{resp}");
                assert!(resp.contains("docker.io/berth/busybox:latest"), "{resp}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("agent https endpoint never came up");
    }

    /// Marks a pod deleted the way the API does, and waits until the agents service removed it.
    async fn delete_pod(&self, name: &str) {
        let key = format!("/core/pods/default/{name}");
        if let Some(mut p) = self.get(&key).await {
            p["metadata"]["deletionTimestamp"] = json!("2026-11-25T08:00:00Z");
            p["metadata"]["deletionGracePeriodSeconds"] = json!(2);
            self.put(&key, p).await;
            self.wait_for("pod removal", 30, |v| v.is_none().then_some(()), &key)
                .await;
        }
    }
}

/// Runs an exec over the agent's WebSocket endpoint (TLS, as the API server) and returns the
/// (channel, payload) frames.
async fn exec_ws(c: &Cluster, query: &str, stdin: Option<&[u8]>) -> Vec<(u8, String)> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let http = c.http;
    let mut req = format!("ws://{http}/exec/default/web/web?{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let tls = pki::net::connect(&http.to_string(), c.pki.agent_client_config().unwrap())
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "v5.channel.k8s.io"
    );
    if let Some(data) = stdin {
        let mut f = vec![0u8];
        f.extend_from_slice(data);
        ws.send(Message::Binary(f.into())).await.unwrap();
        ws.send(Message::Binary(vec![255u8, 0].into()))
            .await
            .unwrap();
    }
    let mut out = vec![];
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match m {
            Message::Binary(b) if !b.is_empty() => {
                out.push((b[0], String::from_utf8_lossy(&b[1..]).into_owned()))
            }
            Message::Close(frame) => {
                // kubectl reports anything but a normal closure as an exec error.
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(code, Some(1000), "exec must end with a normal close frame");
                out.push((255, "closed".into()));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        out.last().map(|o| o.0),
        Some(255),
        "no close frame: {out:?}"
    );
    out.pop();
    out
}

fn pod(name: &str, uid: &str, container: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": uid, "creationTimestamp": "2026-11-25T07:00:00Z"},
           "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 2, "containers": [container]}})
}

fn running(v: Option<Value>) -> Option<Value> {
    let v = v?;
    (v["status"]["containerStatuses"][0]["state"]["running"].is_object()).then_some(v)
}

fn state_of(data: &Path, container_id: &str) -> Value {
    let id = container_id.trim_start_matches("berth://");
    serde_json::from_slice(
        &std::fs::read(data.join("containers").join(id).join("state.json")).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_runs_restarts_adopts_and_keeps_volumes() {
    require_root!();
    let mut c = Cluster::start().await;
    c.load_image().await;
    c.wait_for(
        "node Ready",
        30,
        |v| {
            v.filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
        },
        "/core/nodes//n1",
    )
    .await;

    // 1. httpd with a memory limit: running, own namespaces, limit in its cgroup, logs served.
    let web = json!({"name": "web", "image": "berth/busybox:latest", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo serving; exec httpd -f -p 8080 -h /var/www"],
        "resources": {"limits": {"memory": "32Mi"}},
        "readinessProbe": {"httpGet": {"port": 8080, "path": "/"}, "periodSeconds": 1}});
    c.put("/core/pods/default/web", pod("web", "uid-web", web))
        .await;
    let p = c
        .wait_for(
            "web running and ready",
            60,
            |v| running(v).filter(|p| p["status"]["containerStatuses"][0]["ready"] == true),
            "/core/pods/default/web",
        )
        .await;
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["hostIP"], "127.0.0.1");
    assert!(p["status"]["startTime"].is_string());
    let cid = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    let st = state_of(c.data.path(), &cid);
    let pid = st["pid"].as_i64().unwrap();
    for ns in ["pid", "mnt"] {
        assert_ne!(
            std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
        );
    }
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/poduid-web/{}/memory.limit_in_bytes",
        cid.trim_start_matches("berth://")
    ))
    .unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    let (code, body) = c.http_get("/containerLogs/default/web/web").await;
    assert_eq!((code, body.as_str()), (200, "serving\n"));
    let (_, body) = c
        .http_get("/containerLogs/default/web/web?sinceSeconds=3600&limitBytes=4")
        .await;
    assert_eq!(body, "serv");
    let (_, body) = c
        .http_get("/containerLogs/default/web/web?timestamps=true")
        .await;
    assert!(
        body.ends_with("Z serving\n") && body.starts_with("20"),
        "{body}"
    );

    // Exec over WebSocket (v5.channel.k8s.io): stdout, stderr, exit code; then stdin with close.
    let frames = exec_ws(&c, "command=sh&command=-c&command=echo%20hi%3B%20echo%20err%201%3E%262%3B%20exit%203&stdout=true&stderr=true", None).await;
    assert!(
        frames.iter().any(|(ch, d)| *ch == 1 && d == "hi\n"),
        "{frames:?}"
    );
    assert!(
        frames.iter().any(|(ch, d)| *ch == 2 && d == "err\n"),
        "{frames:?}"
    );
    let status: Value =
        serde_json::from_str(&frames.iter().find(|(ch, _)| *ch == 3).unwrap().1).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    let frames = exec_ws(
        &c,
        "command=cat&stdin=true&stdout=true&stderr=true",
        Some(b"from stdin"),
    )
    .await;
    assert!(
        frames.iter().any(|(ch, d)| *ch == 1 && d == "from stdin"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|(ch, d)| *ch == 3 && d.contains("Success")),
        "{frames:?}"
    );

    // 2. A container exiting 1 restarts with back-off; CrashLoopBackOff; --previous serves the earlier log.
    let crash = json!({"name": "crash", "image": "berth/busybox:latest", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "echo attempt; exit 1"]});
    c.put("/core/pods/default/crash", pod("crash", "uid-crash", crash))
        .await;
    let p = c
        .wait_for(
            "CrashLoopBackOff",
            60,
            |v| {
                v.filter(|p| {
                    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                        == "CrashLoopBackOff"
                })
            },
            "/core/pods/default/crash",
        )
        .await;
    let cs = &p["status"]["containerStatuses"][0];
    assert!(cs["restartCount"].as_u64().unwrap() >= 1);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    let (code, body) = c
        .http_get("/containerLogs/default/crash/crash?previous=true")
        .await;
    assert_eq!((code, body.as_str()), (200, "attempt\n"));

    // 3. kill -9 the agent: the container keeps running; the new agent adopts it (same pid, same restarts).
    let before = c.get("/core/pods/default/web").await.unwrap();
    c.kill_agent();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "container survived the agent"
    );
    c.start_agent();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = c
        .wait_for("web still running", 30, running, "/core/pods/default/web")
        .await;
    assert_eq!(
        after["status"]["containerStatuses"][0]["restartCount"],
        before["status"]["containerStatuses"][0]["restartCount"]
    );
    assert_eq!(
        after["status"]["containerStatuses"][0]["containerID"],
        cid.as_str()
    );
    assert_eq!(state_of(c.data.path(), &cid)["pid"].as_i64().unwrap(), pid);
    let (code, body) = c
        .http_get("/containerLogs/default/web/web?tailLines=1")
        .await;
    assert_eq!((code, body.as_str()), (200, "serving\n"));

    // 4. A named volume (PVC) outlives the pod.
    let mut vpod = pod(
        "vol",
        "uid-vol-1",
        json!({"name": "w", "image": "berth/busybox:latest", "imagePullPolicy": "Never",
        "command": ["sh", "-c", "cat /data/note 2>/dev/null || echo first > /data/note; sleep 3600"],
        "volumeMounts": [{"name": "d", "mountPath": "/data"}]}),
    );
    vpod["spec"]["volumes"] =
        json!([{"name": "d", "persistentVolumeClaim": {"claimName": "claim1"}}]);
    c.put("/core/pods/default/vol", vpod.clone()).await;
    c.wait_for("vol running", 60, running, "/core/pods/default/vol")
        .await;
    let note = c.data.path().join("volumes/default/claim1/note");
    for _ in 0..50 {
        if note.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "first\n");
    c.delete_pod("vol").await;
    vpod["metadata"]["uid"] = json!("uid-vol-2");
    c.put("/core/pods/default/vol", vpod).await;
    c.wait_for("vol recreated", 60, running, "/core/pods/default/vol")
        .await;
    let mut body = String::new();
    for _ in 0..50 {
        body = c.http_get("/containerLogs/default/vol/w").await.1;
        if !body.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        body, "first\n",
        "the new pod read the file the old one wrote"
    );

    // Clean up: every pod deleted through the protocol, then the agent stops.
    for name in ["web", "crash", "vol"] {
        c.delete_pod(name).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.kill_agent();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "web container stopped"
    );
    let left: Vec<_> = std::fs::read_dir(c.data.path().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "containers left: {left:?}");
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains("uid"),
        "netns left"
    );
}

// ---- registry pull from a local docker-registry on 127.0.0.1 -------------------------------------------------

struct Registry(std::process::Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_local_registry_over_plain_http() {
    let reg = ["/usr/bin/docker-registry", "/usr/bin/skopeo"];
    if let Some(missing) = reg.iter().find(|p| !Path::new(p).exists()) {
        eprintln!("skipping: {missing} not installed (apt-get install docker-registry skopeo)");
        return;
    }
    let (_, oci_dir, _) = images();
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let _registry = Registry(
        std::process::Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let image = format!("{addr}/berth/busybox:1");
    let push = std::process::Command::new("/usr/bin/skopeo")
        .args(["copy", "--dest-tls-verify=false", "--quiet"])
        .arg(format!("oci:{}:latest", oci_dir.display()))
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "skopeo push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    assert!(
        store.ensure(&image, PullPolicy::Never).await.is_err(),
        "Never does not pull"
    );
    let rec = store
        .ensure(&image, PullPolicy::IfNotPresent)
        .await
        .unwrap();
    assert_eq!(rec.name, image);
    assert_eq!(rec.layers.len(), 2);
    let dirs = store.layer_dirs(&rec).unwrap();
    assert!(
        dirs[0].join("bin/busybox").exists(),
        "{rec:?} {:?}",
        std::fs::read_dir(&dirs[0]).map(|d| d.count())
    );
    assert_eq!(store.config(&rec).unwrap().cmd, vec!["sh".to_string()]);
    // Present now: IfNotPresent answers from the store, Always pulls again and gets the same image.
    assert_eq!(
        store
            .ensure(&image, PullPolicy::IfNotPresent)
            .await
            .unwrap(),
        rec
    );
    assert_eq!(
        store
            .ensure(&image, PullPolicy::Always)
            .await
            .unwrap()
            .config_digest,
        rec.config_digest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_fails_over_to_another_server() {
    require_root!();
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    let (dir, pki) = common::new_pki(Duration::from_secs(3600));
    let (a, _sa) = serve_agents(store.clone(), pki.clone()).await;
    let (b, sb) = serve_agents(store.clone(), pki.clone()).await;
    let proxy = Proxy::start(a).await;
    let c = Cluster::with(store, (dir, pki), format!("{},{b}", proxy.addr), sb);
    c.load_image().await;
    let pod_spec = |cmd: &str| json!({"name": "c", "image": "berth/busybox:latest", "imagePullPolicy": "Never", "command": ["sh", "-c", cmd]});
    c.put(
        "/core/pods/default/one",
        pod("one", "uid-one", pod_spec("sleep 3600")),
    )
    .await;
    c.wait_for("one running", 60, running, "/core/pods/default/one")
        .await;
    // Server A goes away: the agent moves to B, keeps heartbeating and takes new pods from it.
    proxy.kill();
    let beat = |v: &Value| {
        v["status"]["conditions"][0]["lastHeartbeatTime"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let before = beat(&c.get("/core/nodes//n1").await.unwrap());
    c.put(
        "/core/pods/default/two",
        pod("two", "uid-two", pod_spec("sleep 3600")),
    )
    .await;
    c.wait_for(
        "two running through server B",
        60,
        running,
        "/core/pods/default/two",
    )
    .await;
    c.wait_for(
        "a newer heartbeat",
        30,
        |v| v.filter(|n| beat(n) > before),
        "/core/nodes//n1",
    )
    .await;
    let one = c.get("/core/pods/default/one").await.unwrap();
    assert_eq!(
        one["status"]["containerStatuses"][0]["restartCount"], 0,
        "the failover restarted nothing"
    );
    c.delete_pod("one").await;
    c.delete_pod("two").await;
}
