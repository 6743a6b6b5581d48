//! Memory per running container: the workload, its supervisor (with the `crun run` it keeps in the
//! foreground) and the agent's share, as USS and PSS from `/proc/PID/smaps_rollup` (lab host only);
//! and density: the most pods a node holds before a limit.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::ctx::{pod_name, BenchCtx};
use super::report::{Comparison, Row, Stats};
use crate::rest;

/// Most pods the density probe creates, and how long it may take.
const DENSITY_MAX: usize = 110;
const DENSITY_TIME: Duration = Duration::from_secs(120);

/// USS (private clean + dirty) and PSS of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mem {
    /// Unique set size.
    pub uss: u64,
    /// Proportional set size.
    pub pss: u64,
}

/// Parses `/proc/PID/smaps_rollup`.
pub fn parse_smaps_rollup(text: &str) -> Mem {
    let mut m = Mem::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "Pss:" => m.pss = v,
            "Private_Clean:" | "Private_Dirty:" => m.uss += v,
            _ => {}
        }
    }
    m
}

fn mem_of(pid: u32) -> Option<Mem> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .map(|t| parse_smaps_rollup(&t))
}

/// Direct children of `pid` (from `/proc/*/stat`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// (workload PID, supervisor PID) of each running container of `namespace` in an agent's data dir.
fn containers(data: &Path, namespace: &str) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(b) = std::fs::read(e.path().join("state.json")) else {
            continue;
        };
        let Ok(st) = serde_json::from_slice::<Value>(&b) else {
            continue;
        };
        if st["config"]["pod_namespace"] != namespace {
            continue;
        }
        if let (Some(p), Some(s)) = (st["pid"].as_u64(), st["supervisor_pid"].as_u64()) {
            out.push((p as u32, s as u32));
        }
    }
    out
}

/// Starts `count` sleep pods on the bench node and waits until `total` pods of the namespace run;
/// returns how many ran within `timeout`, and the
/// scheduler's (or agent's) reason when one did not.
async fn start_many(
    ctx: &BenchCtx,
    prefix: &str,
    count: usize,
    total: usize,
    timeout: Duration,
) -> Result<(usize, Option<String>)> {
    let node = ctx.node().name.clone();
    for i in 0..count {
        ctx.create_pod(&ctx.pod_spec(&pod_name(prefix, i), &node, &["sleep", "3600"]))
            .await?;
    }
    let start = Instant::now();
    loop {
        let list = rest::get(&ctx.client, &ctx.pod_path(None)).await?;
        let pods: Vec<&Value> = list["items"].as_array().into_iter().flatten().collect();
        let running = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        if running >= total || start.elapsed() > timeout {
            let reason = pods
                .iter()
                .find(|p| p["status"]["phase"] != "Running")
                .map(|p| {
                    let c = p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["status"] == "False");
                    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
                    let r = c
                        .and_then(|c| c["message"].as_str())
                        .or(w["message"].as_str())
                        .or(w["reason"].as_str());
                    format!(
                        "{} {}",
                        p["status"]["phase"].as_str().unwrap_or("Pending"),
                        r.unwrap_or("(no reason given)")
                    )
                });
            return Ok((running, reason));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn delete_all(ctx: &BenchCtx) {
    let _ = rest::delete(
        &ctx.client,
        &ctx.pod_path(None),
        &serde_json::json!({"gracePeriodSeconds": 0}),
    )
    .await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        match rest::get(&ctx.client, &ctx.pod_path(None)).await {
            Ok(l) if l["items"].as_array().is_some_and(|a| !a.is_empty()) => {
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            _ => return,
        }
    }
}

fn row(subject: &str, kib: &[f64], note: &str) -> Option<Row> {
    let mib: Vec<f64> = kib.iter().map(|k| k / 1024.0).collect();
    Some(Row {
        subject: subject.into(),
        stats: Stats::of(&mib)?,
        note: note.into(),
    })
}

/// Measures memory per container and density; see the module docs.
///
/// # Errors
/// When pods cannot be created.
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let node = ctx.node().name.clone();
    let mut mem = Comparison {
        id: "memory".into(),
        title: "Memory per running container".into(),
        unit: "MiB".into(),
        lower_is_better: true,
        rows: vec![],
        skipped: vec![],
    };
    let mut density = Comparison {
        id: "density".into(),
        title: format!("Pods {node} holds"),
        unit: "pods".into(),
        lower_is_better: false,
        rows: vec![],
        skipped: vec![],
    };
    let nodes = rest::get(
        &ctx.client,
        &format!("/api/v1/nodes/{}", rest::encode(&node)),
    )
    .await?;
    let allocatable = nodes["status"]["allocatable"]["pods"]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .or(nodes["status"]["allocatable"]["pods"].as_f64());
    if let Some(a) = allocatable {
        density.rows.push(Row {
            subject: "status.allocatable.pods (the node's claim)".into(),
            stats: Stats::of(&[a]).unwrap_or_default(),
            note: String::new(),
        });
    }
    let lab = match &ctx.lab {
        Some(l) => l,
        None => {
            mem.skipped
                .push("USS/PSS: not a lab host (needs /proc of the node)".into());
            density
                .skipped
                .push("measured density: not a lab host".into());
            return Ok(vec![mem, density]);
        }
    };
    let (data, agent) = (lab.data_dir(&node), lab.pid(&node));
    let n = ctx.samples;
    let (running, _) = start_many(ctx, "mem", n, n, Duration::from_secs(60)).await?;
    let ctrs = data
        .as_deref()
        .map(|d| containers(d, &ctx.namespace))
        .unwrap_or_default();
    let (mut wl_u, mut wl_p, mut sv_u, mut sv_p) = (vec![], vec![], vec![], vec![]);
    for (pid, sup) in &ctrs {
        if let Some(m) = mem_of(*pid) {
            wl_u.push(m.uss as f64);
            wl_p.push(m.pss as f64);
        }
        // The supervisor keeps `crun run` in the foreground: both are the per-container overhead.
        let mut s = mem_of(*sup).unwrap_or_default();
        for c in children(*sup).into_iter().filter(|c| c != pid) {
            let m = mem_of(c).unwrap_or_default();
            s.uss += m.uss;
            s.pss += m.pss;
        }
        sv_u.push(s.uss as f64);
        sv_p.push(s.pss as f64);
    }
    let on_node = data
        .as_deref()
        .map(|d| containers(d, &ctx.namespace).len())
        .unwrap_or(0)
        .max(1);
    let note = format!("{running} sleep pods on {node}");
    mem.rows.extend(row("workload (sleep) USS", &wl_u, &note));
    mem.rows.extend(row("workload (sleep) PSS", &wl_p, &note));
    mem.rows
        .extend(row("supervisor + crun run USS", &sv_u, &note));
    mem.rows
        .extend(row("supervisor + crun run PSS", &sv_p, &note));
    match agent.and_then(mem_of) {
        Some(a) => {
            let share = format!(
                "agent total USS {:.1} MiB / {on_node} pods",
                a.uss as f64 / 1024.0
            );
            mem.rows.extend(row(
                "agent share USS",
                &[a.uss as f64 / on_node as f64],
                &share,
            ));
            mem.rows.extend(row(
                "agent share PSS",
                &[a.pss as f64 / on_node as f64],
                &share,
            ));
        }
        None => mem.skipped.push(format!(
            "agent share: no live agent process for {node} in the lab state"
        )),
    }
    if ctrs.is_empty() {
        mem.skipped.push(
            "workload/supervisor: no container state found under the agent's data dir".into(),
        );
    }
    delete_all(ctx).await;
    // Density: batches of 10 until one stays pending, the bound, or the time is up.
    let start = Instant::now();
    let (mut held, mut reason) = (0, None);
    while held < DENSITY_MAX && start.elapsed() < DENSITY_TIME && reason.is_none() {
        let batch = 10.min(DENSITY_MAX - held);
        let left = DENSITY_TIME.saturating_sub(start.elapsed());
        let (r, why) = start_many_more(ctx, held, batch, left).await?;
        held = r;
        reason = why;
    }
    let rss = agent
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        });
    let limit = match &reason {
        Some(r) => format!("stopped by: {r}"),
        None if held >= DENSITY_MAX => format!("bound of {DENSITY_MAX} pods reached"),
        None => format!("{}s bound reached", DENSITY_TIME.as_secs()),
    };
    density.rows.push(Row {
        subject: "pods Running (measured, batches of 10)".into(),
        stats: Stats::of(&[held as f64]).unwrap_or_default(),
        note: format!(
            "{limit}; agent RSS {} at that density",
            rss.map_or("unknown".into(), |k| format!("{:.1} MiB", k / 1024.0))
        ),
    });
    delete_all(ctx).await;
    Ok(vec![mem, density])
}

/// Adds `batch` pods to the `have` already running; returns the new running count and a reason when
/// one did not run.
async fn start_many_more(
    ctx: &BenchCtx,
    have: usize,
    batch: usize,
    left: Duration,
) -> Result<(usize, Option<String>)> {
    let (running, reason) = start_many(
        ctx,
        &format!("dens{have}"),
        batch,
        have + batch,
        left.min(Duration::from_secs(60)),
    )
    .await?;
    // start_many counts every running pod of the namespace; the earlier batches are among them.
    Ok((running, if running < have + batch { reason } else { None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_to_uss_and_pss() {
        let text = "55d0c000-7ffd0000 ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:                1024 kB\nPss:                 300 kB\nPss_Anon:  100 kB\n\
                    Shared_Clean:        700 kB\nPrivate_Clean:        20 kB\nPrivate_Dirty:       104 kB\n";
        assert_eq!(parse_smaps_rollup(text), Mem { uss: 124, pss: 300 });
        assert_eq!(parse_smaps_rollup(""), Mem::default());
    }
}
