//! Lab benchmark (not a test): time from `berthctl lab up` (3 servers, 3 agents) to every node Ready, and
//! from `apply` of a 60-replica Deployment to 60 pods Running, side by side with Docker Swarm
//! (`docker service create --replicas 60`) when a Docker engine can run here. Writes `bench-results/lab.md`.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_tests::{output, run, skip_reason, wait_for, workspace, Lab};

const REPLICAS: usize = 60;

fn main() -> Result<()> {
    if let Some(why) = skip_reason() {
        anyhow::bail!("cannot benchmark here: {why}");
    }
    let images = run(Command::new("bash").arg(workspace().join("tests/images/build.sh")))?;
    let oci = images
        .lines()
        .find(|l| l.ends_with("busybox-oci.tar"))
        .context("no OCI tar")?
        .to_string();
    let docker_tar = images
        .lines()
        .find(|l| l.ends_with("busybox-docker.tar"))
        .map(str::to_string);

    let mut report = String::from("# Lab benchmark\n\n");
    let _ = writeln!(
        report,
        "Machine: {} cores. One run; times are wall clock.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    let t = Instant::now();
    let lab = Lab::up("bench", 3, 3)?;
    let up = t.elapsed();
    lab.berthctl(&["image", "load", &oci])?;

    let manifest = format!(
        r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"many"}},"spec":{{"replicas":{REPLICAS},"selector":{{"matchLabels":{{"app":"many"}}}},"template":{{"metadata":{{"labels":{{"app":"many"}}}},"spec":{{"containers":[{{"name":"c","image":"berth/busybox:latest","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}}]}}}}}}}}"#
    );
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), manifest)?;
    let t = Instant::now();
    lab.berthctl(&["apply", "-f", file.path().to_str().unwrap()])?;
    wait_for(
        "60 pods Running",
        Duration::from_secs(300),
        Duration::from_millis(200),
        || {
            let list = lab.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dmany")?;
            let running = list["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                })
                .unwrap_or(0);
            Ok((running >= REPLICAS).then_some(()))
        },
    )?;
    let berth_apply = t.elapsed();
    drop(lab);

    let swarm = docker_tar
        .as_deref()
        .map(swarm_bench)
        .unwrap_or_else(|| Err(anyhow::anyhow!("no docker-save tar")));

    let _ = writeln!(
        report,
        "| measurement | berth (3 servers + 3 agents) | Docker Swarm (1 node) |"
    );
    let _ = writeln!(report, "|---|---|---|");
    let (s_up, s_apply) = match &swarm {
        Ok((u, a)) => (
            format!("{:.2} s", u.as_secs_f64()),
            format!("{:.2} s", a.as_secs_f64()),
        ),
        Err(e) => (format!("n/a ({e:#})"), "n/a".into()),
    };
    let _ = writeln!(
        report,
        "| cluster up to all nodes Ready | {:.2} s | {s_up} |",
        up.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "| apply {REPLICAS} replicas to all Running | {:.2} s | {s_apply} |",
        berth_apply.as_secs_f64()
    );
    if let Ok((_, a)) = &swarm {
        let _ = writeln!(
            report,
            "\nRatio (apply to all Running, berth / Swarm): {:.2}",
            berth_apply.as_secs_f64() / a.as_secs_f64()
        );
    }
    let dir = workspace().join("bench-results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("lab.md"), &report)?;
    print!("{report}");
    Ok(())
}

/// Docker Swarm on this machine: `swarm init` on a private dockerd, then a 60-replica service of the same
/// busybox image (loaded from the docker-save tar, never pulled). Returns (init time, service time).
fn swarm_bench(tar: &str) -> Result<(Duration, Duration)> {
    let gwbridge_existed = std::path::Path::new("/sys/class/net/docker_gwbridge").exists();
    let engine = node_agent::dockerd::Dockerd::start()?;
    let docker = |args: &[&str]| {
        run(Command::new("docker")
            .arg("-H")
            .arg(engine.host())
            .args(args))
    };
    let result = (|| {
        docker(&["load", "-i", tar])?;
        let t = Instant::now();
        docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            "127.0.0.1:2377",
        ])?;
        let init = t.elapsed();
        let t = Instant::now();
        docker(&[
            "service",
            "create",
            "--detach",
            "--name",
            "many",
            "--replicas",
            &REPLICAS.to_string(),
            "berth/busybox:latest",
            "sleep",
            "3600",
        ])?;
        wait_for(
            "60 Swarm tasks running",
            Duration::from_secs(300),
            Duration::from_millis(200),
            || {
                let out = docker(&["service", "ls", "--format", "{{.Replicas}}"])?;
                Ok((out.trim() == format!("{REPLICAS}/{REPLICAS}")).then_some(()))
            },
        )?;
        Ok((init, t.elapsed()))
    })();
    let _ = docker(&["service", "rm", "many"]);
    let _ = docker(&["swarm", "leave", "--force"]);
    drop(engine);
    // Swarm's gateway bridge outlives the engine; remove it unless it was there before.
    if !gwbridge_existed {
        let _ = output(Command::new("ip").args(["link", "del", "docker_gwbridge"]));
    }
    result
}
