//! Disk: sequential and random I/O measured by the probe on the lab host (reference, a temp dir under
//! the node's data dir), in a container's rootfs (overlayfs upper dir) and in an emptyDir volume, on
//! the same node. The probe says per run whether reads bypassed the page cache (O_DIRECT) or not.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use super::pods::{self, num, PodOpts};
use super::report::{Comparison, Row, Stats};
use super::BenchCtx;

/// File size per run: large enough for sequential numbers to mean something, small enough for a lab.
const SIZE_MIB: u64 = 128;
/// Time bound of each of the probe's four phases.
const PHASE_SECONDS: u64 = 2;
/// Where the container subjects write: a directory in the rootfs, and the emptyDir mount.
const ROOTFS_DIR: &str = "/var/bench";
const VOLUME_DIR: &str = "/scratch";

/// Subjects, reference first.
pub const HOST: &str = "host";
/// The container's own filesystem.
pub const ROOTFS: &str = "container rootfs (overlayfs)";
/// The pod's emptyDir.
pub const VOLUME: &str = "volume (emptyDir)";

/// The four metrics: comparison id, title, unit, the probe's field.
const METRICS: [(&str, &str, &str, &str); 4] = [
    (
        "disk-seq-write",
        "Disk: sequential write (1 MiB, fsync timed)",
        "MiB/s",
        "seq_write_mib_s",
    ),
    (
        "disk-seq-read",
        "Disk: sequential read (1 MiB)",
        "MiB/s",
        "seq_read_mib_s",
    ),
    (
        "disk-rand-read",
        "Disk: random read (4 KiB)",
        "IOPS",
        "rand_read_iops",
    ),
    (
        "disk-rand-write",
        "Disk: random write (4 KiB, fsync timed)",
        "IOPS",
        "rand_write_iops",
    ),
];

fn args(dir: &str) -> Vec<String> {
    [
        "disk",
        dir,
        "--size",
        &SIZE_MIB.to_string(),
        "--seconds",
        &PHASE_SECONDS.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// What a reader needs to trust a row: the filesystem, the cache mode of reads, the size.
fn note(results: &[Value], node: &str) -> String {
    let first = results.first();
    let s = |k: &str| first.and_then(|v| v[k].as_str()).unwrap_or("?").to_string();
    format!(
        "node {node}, {} MiB, fs {}, reads {}, writes {}",
        first.map(|v| num(v, "size_mib")).unwrap_or(f64::NAN),
        s("fs"),
        s("read_cache"),
        s("write_mode")
    )
}

/// The four disk comparisons from each subject's results (subjects in row order, reference first).
pub fn comparisons(subjects: &[(&str, Result<Vec<Value>, String>)], node: &str) -> Vec<Comparison> {
    METRICS
        .iter()
        .map(|(id, title, unit, field)| {
            let mut c = Comparison {
                id: (*id).into(),
                title: (*title).into(),
                unit: (*unit).into(),
                lower_is_better: false,
                rows: Vec::new(),
                skipped: Vec::new(),
            };
            for (subject, res) in subjects {
                match res {
                    Ok(results) => {
                        let samples: Vec<f64> = results.iter().map(|r| num(r, field)).collect();
                        match Stats::of(&samples) {
                            Some(stats) => c.rows.push(Row {
                                subject: (*subject).into(),
                                stats,
                                note: note(results, node),
                            }),
                            None => c
                                .skipped
                                .push(format!("{subject}: no {field} in the probe output")),
                        }
                    }
                    Err(e) => c.skipped.push(format!("{subject}: {e}")),
                }
            }
            c
        })
        .collect()
}

/// Splits the container pod's results by the directory each run used.
fn by_dir(results: Vec<Value>, dir: &str) -> Result<Vec<Value>, String> {
    let v: Vec<Value> = results.into_iter().filter(|r| r["dir"] == dir).collect();
    if v.is_empty() {
        Err(format!("no result for {dir}"))
    } else {
        Ok(v)
    }
}

/// Runs the disk measurement.
///
/// # Errors
/// Never for a failed subject (it is listed in `skipped`).
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let node = ctx.node().name.clone();
    let repeat = ctx.samples.clamp(1, 3);
    // Four phases per run, plus the fsyncs and a margin for pod start-up.
    let per_run = 4 * PHASE_SECONDS + 30;
    let timeout = Duration::from_secs(60 + 2 * per_run * repeat as u64);

    let host = match (&ctx.lab, ctx.lab.as_ref().and_then(|l| l.data_dir(&node))) {
        (Some(_), Some(data)) => {
            let dir = data.join(format!("bench-disk-{}", std::process::id()));
            let res = match std::fs::create_dir_all(&dir) {
                Ok(()) => {
                    pods::run_on_host(ctx, &node, &args(&dir.to_string_lossy()), repeat, timeout)
                        .await
                        .map_err(|e| format!("{e:#}"))
                }
                Err(e) => Err(format!("create {}: {e}", dir.display())),
            };
            let _ = std::fs::remove_dir_all(&dir);
            res
        }
        (Some(l), None) => Err(format!("lab {} has no data dir for {node}", l.name)),
        (None, _) => {
            Err("not a lab host (the host's disk is measured only where berthctl runs)".into())
        }
    };

    let (rootfs, volume) = match &ctx.probe {
        Ok(probe) => {
            let runs = [args(ROOTFS_DIR), args(VOLUME_DIR)];
            let script = pods::script(probe, &format!("mkdir -p {ROOTFS_DIR}"), &runs, repeat);
            let opts = PodOpts {
                scratch: true,
                ..PodOpts::default()
            };
            match pods::run_in_pod(ctx, "bench-disk", &node, &script, opts, timeout).await {
                Ok(results) => (
                    by_dir(results.clone(), ROOTFS_DIR),
                    by_dir(results, VOLUME_DIR),
                ),
                Err(e) => (Err(format!("{e:#}")), Err(format!("{e:#}"))),
            }
        }
        Err(why) => (Err(why.clone()), Err(why.clone())),
    };
    Ok(comparisons(
        &[(HOST, host), (ROOTFS, rootfs), (VOLUME, volume)],
        &node,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(dir: &str, fs: &str, w: f64) -> Value {
        serde_json::json!({"mode": "disk", "dir": dir, "fs": fs, "size_mib": 128, "seq_write_mib_s": w,
            "seq_read_mib_s": 2.0 * w, "rand_read_iops": 1000.0, "rand_write_iops": 900.0,
            "read_cache": "O_DIRECT", "write_mode": "O_DIRECT, fsync timed"})
    }

    #[test]
    fn four_comparisons_with_the_host_first() {
        let pod = vec![
            result(ROOTFS_DIR, "overlayfs", 100.0),
            result(VOLUME_DIR, "ext4", 200.0),
        ];
        let subjects = [
            (
                HOST,
                Ok(vec![
                    result("/lab/x", "ext4", 300.0),
                    result("/lab/x", "ext4", 310.0),
                ]),
            ),
            (ROOTFS, by_dir(pod.clone(), ROOTFS_DIR)),
            (VOLUME, by_dir(pod, VOLUME_DIR)),
        ];
        let cs = comparisons(&subjects, "a1");
        let ids: Vec<&str> = cs.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "disk-seq-write",
                "disk-seq-read",
                "disk-rand-read",
                "disk-rand-write"
            ]
        );
        let w = &cs[0];
        assert_eq!(w.unit, "MiB/s");
        assert!(!w.lower_is_better);
        let subj: Vec<&str> = w.rows.iter().map(|r| r.subject.as_str()).collect();
        assert_eq!(subj, [HOST, ROOTFS, VOLUME]);
        assert_eq!((w.rows[0].stats.samples, w.rows[0].stats.max), (2, 310.0));
        assert_eq!(w.rows[1].stats.p50, 100.0);
        assert!(
            w.rows[1].note.contains("fs overlayfs") && w.rows[1].note.contains("reads O_DIRECT")
        );
        assert_eq!(cs[1].rows[2].stats.p50, 400.0);
        assert_eq!(cs[2].unit, "IOPS");
    }

    #[test]
    fn a_remote_cluster_skips_the_host_with_why() {
        let subjects = [
            (HOST, Err("not a lab host".to_string())),
            (ROOTFS, Ok(vec![result(ROOTFS_DIR, "overlayfs", 1.0)])),
            (VOLUME, by_dir(vec![], VOLUME_DIR)),
        ];
        let cs = comparisons(&subjects, "a1");
        assert_eq!(cs[0].rows.len(), 1);
        assert_eq!(
            cs[0].skipped,
            [
                "host: not a lab host",
                "volume (emptyDir): no result for /scratch"
            ]
        );
    }
}
