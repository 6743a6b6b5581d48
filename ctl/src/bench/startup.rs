//! Instance start-up time: pod create → `Running` as the client sees it (a watch opened before the
//! create), warm (image unpacked on the node) and cold (an image whose layer the node has never
//! unpacked), against `crun run` of the same rootfs on the node (lab host only).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::json;

use super::ctx::{pod_name, BenchCtx};
use super::report::{Comparison, Row, Stats};
use super::{image, run};
use crate::rest;

const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates a `sleep` pod of `image` and returns create → Running in ms (watch-based), then deletes it.
async fn pod_start_ms(ctx: &BenchCtx, name: &str, image: &str) -> Result<f64> {
    let node = &ctx.node().name;
    let mut pod = ctx.pod_spec(name, node, &["sleep", "3600"]);
    pod["spec"]["containers"][0]["image"] = json!(image);
    let uri = rest::with_query(
        &ctx.pod_path(None),
        &[
            ("watch", "true".into()),
            ("fieldSelector", format!("metadata.name={name}")),
            ("timeoutSeconds", POD_TIMEOUT.as_secs().to_string()),
        ],
    );
    let mut events = rest::watch(&ctx.client, &uri, "application/json").await?;
    let start = Instant::now();
    let res = async {
        ctx.create_pod(&pod).await?;
        let end = tokio::time::timeout(POD_TIMEOUT, async {
            while let Some(ev) = events.next().await {
                if let kube::api::WatchEvent::Added(p) | kube::api::WatchEvent::Modified(p) = ev? {
                    match p["status"]["phase"].as_str() {
                        Some("Running") => return Ok(start.elapsed()),
                        Some("Failed" | "Succeeded") => bail!("pod {name} ended before running"),
                        _ => {}
                    }
                }
            }
            bail!("the watch of pod {name} ended before it ran")
        })
        .await
        .map_err(|_| {
            anyhow::anyhow!("pod {name} not running after {}s", POD_TIMEOUT.as_secs())
        })??;
        anyhow::Ok(end.as_secs_f64() * 1e3)
    }
    .await;
    ctx.delete_pod(name).await;
    res
}

/// `crun run` of `true` in a bundle of the bench image's busybox layer, on the node's host, in ms.
async fn crun_ms(ctx: &BenchCtx, samples: usize) -> Result<Vec<f64>> {
    let node = ctx.node().name.clone();
    let (inputs, _) = image::host_inputs()?;
    let built = image::build(
        "berth/bench:crun",
        &image::Inputs {
            extra: vec![],
            ..inputs
        },
    )?;
    let dir = tempfile::Builder::new()
        .prefix("berth-bench-crun-")
        .tempdir()?;
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    // The layout's first layer is the busybox rootfs; unpack it as the agent would.
    let mut layout = tar::Archive::new(built.tar.as_slice());
    let want = format!("blobs/sha256/{}", &built.layers[0][7..]);
    let mut layer = Vec::new();
    for e in layout.entries()? {
        let mut e = e?;
        if e.path()?.to_string_lossy() == want {
            std::io::Read::read_to_end(&mut e, &mut layer)?;
        }
    }
    tar::Archive::new(layer.as_slice()).unpack(&rootfs)?;
    let bundle = dir.path().to_string_lossy().into_owned();
    ctx.exec(
        &node,
        &["crun", "spec", "--bundle", &bundle],
        Duration::from_secs(10),
    )
    .await
    .context("crun spec failed (is crun installed on the host?)")?;
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(["/bin/true"]);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg)?)?;
    // As the agent's oci_command does: crun refuses a hybrid cgroup host whose unified hierarchy
    // has controllers, so it runs in a mount namespace without it (pods pay the same cost).
    let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|s| !s.trim().is_empty());
    let prefix: &[&str] = if hybrid {
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"",
        ]
    } else {
        &[]
    };
    let mut out = Vec::new();
    for i in 0..samples {
        let id = format!("berth-bench-crun-{}-{i}", std::process::id());
        let argv: Vec<&str> = prefix
            .iter()
            .copied()
            .chain(["crun", "run", "--bundle", &bundle, &id])
            .collect();
        let t = Instant::now();
        ctx.exec(&node, &argv, Duration::from_secs(30)).await?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = ctx
            .exec(
                &node,
                &["crun", "delete", "-f", &id],
                Duration::from_secs(10),
            )
            .await;
    }
    Ok(out)
}

fn row(subject: &str, samples: &[f64], note: String) -> Option<Row> {
    Some(Row {
        subject: subject.into(),
        stats: Stats::of(samples)?,
        note,
    })
}

/// Measures start-up time; see the module docs.
///
/// # Errors
/// Never for one subject: a subject that fails is listed as skipped with why.
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let n = ctx.samples;
    let node = ctx.node().name.clone();
    let mut c = Comparison {
        id: "startup".into(),
        title: "Instance start-up time".into(),
        unit: "ms".into(),
        lower_is_better: true,
        rows: vec![],
        skipped: vec![],
    };
    if ctx.lab.is_some() {
        match crun_ms(ctx, n).await {
            Ok(s) => c.rows.extend(row(
                "crun run (host, same rootfs)",
                &s,
                format!("`crun run` of /bin/true to exit, in {node}'s netns; no image, no API"),
            )),
            Err(e) => c.skipped.push(format!("crun run: {e:#}")),
        }
    } else {
        c.skipped
            .push("crun run: not a lab host (needs a shell on the node)".into());
    }
    // The first pod unpacks the shared image once, so the warm samples that follow measure only start.
    let _ = pod_start_ms(ctx, &pod_name("warmup", 0), &ctx.image).await;
    let mut warm = Vec::new();
    let mut errors = Vec::new();
    for i in 0..n {
        match pod_start_ms(ctx, &pod_name("warm", i), &ctx.image).await {
            Ok(ms) => warm.push(ms),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    match row(
        "berth pod, warm image",
        &warm,
        format!("create → Running on {node}, image unpacked"),
    ) {
        Some(r) => c.rows.push(r),
        None => c
            .skipped
            .push(format!("berth pod, warm: {}", errors.join("; "))),
    }
    let mut cold = Vec::new();
    errors.clear();
    let (inputs, _) = image::host_inputs()?;
    for i in 0..n {
        let tag = format!("{}{}-{i}", super::images::COLD_TAG, std::process::id());
        let res = async {
            // A nonce in the busybox layer makes it new to the node; loading is not timed.
            let built = image::build(
                &tag,
                &image::Inputs {
                    nonce: tag.clone(),
                    ..inputs.clone()
                },
            )?;
            run::load_image(ctx, &built.tar, &[ctx.node()]).await?;
            pod_start_ms(ctx, &pod_name("cold", i), &tag).await
        }
        .await;
        match res {
            Ok(ms) => cold.push(ms),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let note = format!(
        "create → Running on {node}; image loaded before (not timed) but its layer never unpacked: \
         the agent has no image removal, so cold = unpack + start, no registry pull"
    );
    match row("berth pod, cold image", &cold, note) {
        Some(r) => c.rows.push(r),
        None => c
            .skipped
            .push(format!("berth pod, cold: {}", errors.join("; "))),
    }
    Ok(vec![c])
}
