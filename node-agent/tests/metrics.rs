//! The metrics sampler over real containers: a busy loop under a CPU limit shows its CPU rate, a
//! sleeping one its memory. Needs root and crun (or runc); skips with a printed reason otherwise.

use node_agent::images::ImageStore;
use node_agent::metrics::{Host, LatestSummary, Sampler};
use node_agent::pod::{ContainerLookup, Lookup};
use node_agent::runtime::linux::LinuxRuntime;
use node_agent::runtime::{ContainerConfig, ContainerRuntime, RunState};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[macro_use]
mod common;

use common::skip_reason;

/// Kills and removes every container of the runtime, panicking test or not.
struct Reset(Arc<LinuxRuntime>);

impl Drop for Reset {
    fn drop(&mut self) {
        self.0.reset();
    }
}

#[test]
fn sampler_reports_a_busy_and_a_sleeping_container() {
    require_root!();
    let oci_tar = common::test_images()[0].clone();
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::open(data.path()).unwrap();
    let rec = store.import_path(&oci_tar).unwrap().remove(0);
    let layers = store.layer_dirs(&rec).unwrap();
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_berth-agent"));
    let rt = Arc::new(LinuxRuntime::new(data.path(), supervisor).unwrap());
    let _reset = Reset(rt.clone());
    let uid = format!("m{}", std::process::id());
    let cfg = |name: &str, script: &str, cpu_quota: Option<i64>| ContainerConfig {
        id: format!("{uid}-{name}-0"),
        pod_uid: uid.clone(),
        pod_namespace: "default".into(),
        pod_name: "load".into(),
        container_name: name.into(),
        image: "berth/busybox".into(),
        image_id: rec.config_digest.clone(),
        layers: layers.clone(),
        args: vec!["sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        hostname: "load".into(),
        memory_limit: Some(64 << 20),
        cpu_quota,
        log_path: data.path().join(format!("logs/{name}/0.log")),
        ..Default::default()
    };
    // 500m: a 50 ms quota per 100 ms period.
    let busy = cfg("busy", "while :; do :; done", Some(50_000));
    let idle = cfg("idle", "exec sleep 3600", None);
    for c in [&busy, &idle] {
        let st = rt.start(c).unwrap();
        assert_eq!(st.state, RunState::Running, "{st:?}");
    }
    let entry = |c: &ContainerConfig| ContainerLookup {
        name: c.container_name.clone(),
        pod_uid: uid.clone(),
        current: Some(c.id.clone()),
        log: None,
        previous_log: None,
    };
    let mut lookup = Lookup::new();
    lookup.insert(
        ("default".into(), "load".into()),
        vec![entry(&busy), entry(&idle)],
    );
    let latest = Arc::new(LatestSummary::new("n1"));
    let sampler = Sampler {
        host: Host::detect(),
        node_name: "n1".into(),
        lookup: Arc::new(Mutex::new(lookup)),
        latest: latest.clone(),
    };
    let tokio_rt = tokio::runtime::Runtime::new().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio_rt.spawn(sampler.run(Duration::from_millis(500), shutdown.clone()));

    let cpu_of = |s: &apimachinery::stats::Summary, name: &str| {
        s.pods
            .first()
            .and_then(|p| p.containers.iter().find(|c| c.name == name))
            .and_then(|c| c.cpu.as_ref())
            .map(|c| c.usage_nano_cores)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let s = latest.get();
        if cpu_of(&s, "busy").is_some_and(|n| n > 100_000_000) && cpu_of(&s, "idle").is_some() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no busy CPU rate within 20 s: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    shutdown.cancel();
    tokio_rt.block_on(task).unwrap();

    let pod = &summary.pods[0];
    assert_eq!(pod.pod_ref.uid, uid);
    assert_eq!(pod.pod_ref.namespace, "default");
    let idle_stats = pod.containers.iter().find(|c| c.name == "idle").unwrap();
    let idle_cpu = idle_stats.cpu.as_ref().unwrap();
    assert!(
        idle_cpu.usage_nano_cores < 50_000_000,
        "a sleeping container uses next to no CPU: {idle_cpu:?}"
    );
    let idle_mem = idle_stats.memory.as_ref().unwrap();
    assert!(idle_mem.working_set_bytes > 0, "{idle_mem:?}");
    assert!(idle_mem.usage_bytes >= idle_mem.working_set_bytes);
    let pod_cpu = pod.cpu.as_ref().unwrap();
    assert!(pod_cpu.usage_nano_cores >= cpu_of(&summary, "busy").unwrap());
    assert!(pod_cpu.window_nano_seconds > 0);
    assert!(summary.node.cpu.is_some() && summary.node.memory.is_some());

    for c in [&busy, &idle] {
        rt.signal(&c.id, 9).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&busy, &idle].iter().any(|c| {
        rt.status(&c.id)
            .is_some_and(|s| s.state != RunState::Exited)
    }) {
        assert!(Instant::now() < deadline, "containers did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in [&busy, &idle] {
        rt.remove(&c.id).unwrap();
    }
    rt.remove_sandbox(&uid).unwrap();
}
