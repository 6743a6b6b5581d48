//! End-to-end autoscaling on a real lab (1 server, 2 agents, real containers): `kubectl top` reads the
//! agents' cgroup measurements through metrics.k8s.io, and real CPU load from `manifests/hpa.yaml`'s
//! load Job scales the web Deployment from 1 to at least 4 replicas, the Service spreads requests over
//! them, and the HPA scales back to 1 once the load is gone.

use std::time::Duration;

use anyhow::Result;
use berth_tests::{autoscale, skip_reason, wait_for, workspace, Lab};

#[test]
fn lab_autoscale() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipping lab_autoscale: {why}");
        return Ok(());
    }
    let image = berth_tests::busybox_oci_image()?;
    let lab = Lab::up("hpa", 1, 2)?;
    lab.berthctl(&["image", "load", &image])?;

    // Stock kubectl sees the metrics API; every node reports usage within a few sampling intervals.
    let nodes = wait_for(
        "kubectl top nodes to list both agents",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let out = lab.kubectl(&["top", "nodes"])?;
            Ok((out.lines().count() >= 3).then_some(out))
        },
    )?;
    assert!(nodes.starts_with("NAME"), "{nodes}");
    eprintln!("{nodes}");

    let outcome = autoscale::run(
        &lab,
        &workspace().join("manifests/hpa.yaml"),
        4,
        Duration::from_secs(120),
    )?;
    eprintln!("{outcome:#?}");
    assert!(outcome.peak_replicas >= 4, "{outcome:?}");
    assert!(
        outcome.answered_by.len() >= 2,
        "the Service answered from {:?} only",
        outcome.answered_by
    );
    assert!(
        outcome.top_pods.contains("CPU(cores)"),
        "{}",
        outcome.top_pods
    );
    assert!(outcome.get_hpa.contains("TARGETS"), "{}", outcome.get_hpa);
    assert!(
        outcome.get_hpa.contains("cpu: "),
        "no utilization in get hpa: {}",
        outcome.get_hpa
    );
    Ok(())
}
