//! `agent-bench`: time from "pod bound" (handed to the pod manager) to Running, for 1 and for 30 pods,
//! next to `crun run --detach` of the same bundle, and `docker run` when a Docker engine answers.
//! Writes `bench-results/agent.md`. Needs root and crun.

use node_agent::dockerd::Dockerd;
use node_agent::images::ImageStore;
use node_agent::pod::{ClusterSettings, DesiredPod, PodManager, StoreImages};
use node_agent::runtime::linux::{oci_command, overlay_options, LinuxRuntime};
use node_agent::runtime::netns_basic::LoopbackOnly;
use node_agent::runtime::{bundle, ContainerConfig, ContainerRuntime};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

fn pods(n: usize, round: usize) -> Vec<DesiredPod> {
    (0..n)
        .map(|i| DesiredPod {
            pod: json!({"metadata": {"name": format!("b{round}-{i}"), "namespace": "bench", "uid": format!("bench{round}x{i}")},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "berth/busybox:latest",
                "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}),
            objects: vec![],
            service_account_token: String::new(),
        })
        .collect()
}

/// Seconds from handing `n` pods to the manager until every one reports Running.
fn agent_round(m: &mut PodManager, n: usize, round: usize) -> Duration {
    let t0 = Instant::now();
    m.set_desired(pods(n, round));
    let mut running = std::collections::BTreeSet::new();
    while running.len() < n {
        #[allow(clippy::disallowed_methods)]
        for r in m.sync(SystemTime::now()) {
            if r.status["phase"] == "Running" {
                running.insert(r.uid);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "pods did not start"
        );
    }
    let took = t0.elapsed();
    m.set_desired(vec![]);
    while !m.pod_uids().is_empty() {
        #[allow(clippy::disallowed_methods)]
        m.sync(SystemTime::now());
        std::thread::sleep(Duration::from_millis(20));
    }
    took
}

/// Seconds for `n` sequential `crun run --detach` of prepared bundles (rootfs already mounted).
fn crun_round(oci: &Path, dir: &Path, layers: &[PathBuf], n: usize) -> Duration {
    let mut bundles = vec![];
    for i in 0..n {
        let b = dir.join(format!("crun-{i}"));
        for d in ["rootfs", "upper", "work"] {
            std::fs::create_dir_all(b.join(d)).unwrap();
        }
        let opts = overlay_options(layers, &b);
        nix::mount::mount(
            Some("overlay"),
            &b.join("rootfs"),
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        let cfg = ContainerConfig {
            id: format!("crunbench{i}"),
            pod_uid: "crunbench".into(),
            args: vec!["sleep".into(), "3600".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            hostname: "bench".into(),
            ..Default::default()
        };
        bundle::build_spec(&cfg, &b.join("rootfs"))
            .save(b.join("config.json"))
            .unwrap();
        bundles.push((cfg.id, b));
    }
    let t0 = Instant::now();
    for (id, b) in &bundles {
        let st = oci_command(oci)
            .args(["run", "--detach", "--bundle"])
            .arg(b)
            .arg(id)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let took = t0.elapsed();
    for (id, b) in &bundles {
        let _ = oci_command(oci).args(["delete", "-f", id]).status();
        let _ = nix::mount::umount2(&b.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(b);
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join("berth/podcrunbench"));
        let _ = std::fs::remove_dir(h.path().join("berth"));
    }
    took
}

/// Seconds for `n` sequential `docker run -d` of the image (already loaded), then removes them.
fn docker_round(d: &Dockerd, n: usize) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    for _ in 0..n {
        let o = d.docker(&[
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            "berth-bench=1",
            "berth/busybox:latest",
            "sleep",
            "3600",
        ])?;
        anyhow::ensure!(
            o.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let took = t0.elapsed();
    let ids = d.docker(&["ps", "-aq", "--filter", "label=berth-bench=1"])?;
    let ids = String::from_utf8_lossy(&ids.stdout).to_string();
    let mut args = vec!["rm", "-f"];
    args.extend(ids.split_whitespace());
    if args.len() > 2 {
        let _ = d.docker(&args);
    }
    Ok(took)
}

fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::Uid::effective().is_root(),
        "agent-bench needs root"
    );
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = Command::new(ws.join("tests/images/build.sh"))
        .arg(ws.join("target/test-images"))
        .output()?;
    anyhow::ensure!(out.status.success(), "build.sh failed");
    let oci_tar = PathBuf::from(
        String::from_utf8(out.stdout)?
            .lines()
            .next()
            .unwrap_or_default(),
    );
    let data = tempfile::tempdir()?;
    let store = Arc::new(ImageStore::open(data.path())?);
    let rec = store.import_path(&oci_tar)?.remove(0);
    let layers = store.layer_dirs(&rec)?;
    let exe = std::env::current_exe()?
        .parent()
        .unwrap()
        .join("berth-agent");
    let rt = Arc::new(LinuxRuntime::new(data.path(), exe)?);
    let oci = rt.oci_runtime().to_path_buf();
    let tokio_rt = tokio::runtime::Runtime::new()?;
    let images = Arc::new(StoreImages {
        store: store.clone(),
        handle: tokio_rt.handle().clone(),
    });
    let rtd: Arc<dyn ContainerRuntime> = rt.clone();
    let mut m = PodManager::new(
        rtd,
        Arc::new(LoopbackOnly),
        images,
        data.path(),
        ClusterSettings::default(),
    );

    let docker_tar = ws.join("target/test-images/busybox-docker.tar");
    let dockerd = Dockerd::start().and_then(|d| {
        let o = d.docker(&["load", "-i", &docker_tar.display().to_string()])?;
        anyhow::ensure!(
            o.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Ok(d)
    });
    let docker_error = dockerd.as_ref().err().map(|e| format!("{e:#}"));
    let rounds = 3;
    let mut rows = vec![];
    for n in [1usize, 30] {
        let mut a = vec![];
        let mut c = vec![];
        let mut d = vec![];
        for r in 0..rounds {
            a.push(agent_round(&mut m, n, r * 100 + n));
            c.push(crun_round(&oci, data.path(), &layers, n));
            if let Ok(engine) = &dockerd {
                d.push(docker_round(engine, n)?);
            }
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v.get(v.len() / 2).copied()
        };
        rows.push((
            n,
            med(&mut a).unwrap_or_default(),
            med(&mut c).unwrap_or_default(),
            med(&mut d),
        ));
    }
    drop(dockerd);
    let mut md = String::from("# berth-agent: pod bound → Running\n\n");
    md.push_str(&format!(
        "Machine: {} CPUs, {} MiB RAM, OCI runtime `{}` (cgroup v1 hybrid host), {} build of the agent, \
         `--network none` pods (netns with loopback; no CNI), image `berth/busybox:latest` already imported.\n\
         Median of {rounds} rounds. \"berth-agent\" = from handing the pods to the pod manager until every pod \
         reports phase Running (netns + overlay rootfs + bundle + supervisor + `crun run`, sequential). \
         \"crun run\" = `crun run --detach` of prepared bundles (rootfs already mounted), sequential.\n\n",
        node_agent::agent::node_info::cpus(),
        node_agent::agent::node_info::mem_total_kib() / 1024,
        oci.display(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    ));
    md.push_str("| pods | berth-agent | crun run --detach | docker run -d | per pod (agent) | per pod (crun) | per pod (docker) | agent / docker |\n|---|---|---|---|---|---|---|---|\n");
    for (n, a, c, d) in &rows {
        let ms = |x: &Duration| x.as_secs_f64() * 1e3;
        let (dt, dp, ratio) = match d {
            Some(d) => (
                format!("{:.0} ms", ms(d)),
                format!("{:.1} ms", ms(d) / *n as f64),
                format!("{:.2}", ms(a) / ms(d)),
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        md.push_str(&format!(
            "| {n} | {:.0} ms | {:.0} ms | {dt} | {:.1} ms | {:.1} ms | {dp} | {ratio} |\n",
            ms(a),
            ms(c),
            ms(a) / *n as f64,
            ms(c) / *n as f64
        ));
    }
    match &docker_error {
        None => md.push_str("\nDocker: a private dockerd (Debian docker.io, own data root, `--bridge=none`), `docker run -d --network none` of the same image loaded from the docker-save tar, sequential.\n"),
        Some(e) => md.push_str(&format!("\nDocker: not measured ({e}).\n")),
    }
    std::fs::create_dir_all(ws.join("bench-results"))?;
    std::fs::write(ws.join("bench-results/agent.md"), &md)?;
    print!("{md}");
    Ok(())
}
