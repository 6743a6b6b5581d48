//! Real-container tests: need root, crun (or runc) and overlayfs. They skip with a printed reason otherwise.

use node_agent::images::{ImageStore, PullPolicy};
use node_agent::runtime::linux::LinuxRuntime;
use node_agent::runtime::{ContainerConfig, ContainerRuntime, RunState};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    if node_agent::runtime::linux::find_oci_runtime().is_none() {
        return Some("neither crun nor runc installed".into());
    }
    None
}

macro_rules! require_root {
    () => {
        if let Some(r) = skip_reason() {
            eprintln!("skipping: {r}");
            return;
        }
    };
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the test images once per process and returns (oci tar, oci dir, docker tar).
fn images() -> (PathBuf, PathBuf, PathBuf) {
    static ONCE: std::sync::OnceLock<(PathBuf, PathBuf, PathBuf)> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let out = workspace().join("target/test-images");
        let o = std::process::Command::new(workspace().join("tests/images/build.sh"))
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "build.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let s = String::from_utf8(o.stdout).unwrap();
        let p: Vec<PathBuf> = s.lines().map(PathBuf::from).collect();
        (p[0].clone(), p[1].clone(), p[2].clone())
    })
    .clone()
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
