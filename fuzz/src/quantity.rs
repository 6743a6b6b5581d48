//! Resource quantities (`500m`, `1.5Gi`, `1e3`) as the scheduler and the node agent read them.

use apimachinery::quantity;
use control_plane::scheduler::{self, ClusterView, Pod};
use serde_json::{json, Value};

/// The input is one quantity string. It is parsed by both readers, then used as a node's
/// allocatable and as several pods' requests, which the scheduler places in a batch.
///
/// Invariant: never panics (no overflow while summing requests); a batch never over-commits a node
/// whose allocatable is non-negative.
pub fn quantity(input: &[u8]) {
    let q = String::from_utf8_lossy(input);
    let s = Value::String(q.to_string());
    let _ = quantity::parse(&q);
    let _ = quantity::millis(&s);
    let _ = quantity::units(&s);
    let _ = node_agent::pod::spec::quantity(&q, 1.0);
    let _ = node_agent::pod::spec::quantity(&q, 1000.0);
    let container = json!({"name": "c", "image": "x", "resources": {"requests": {"cpu": s, "memory": s}, "limits": {"cpu": s, "memory": s}}});
    let _ = node_agent::pod::spec::resources(&container);

    let mut view = ClusterView::new();
    view.upsert_node_json(&json!({
        "metadata": {"name": "n"},
        "status": {
            "allocatable": {"cpu": s, "memory": s, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }));
    let pods = (0..3)
        .map(|i| {
            Pod::from_json(&json!({
                "metadata": {"name": format!("p{i}"), "namespace": "default"},
                "spec": {
                    "containers": [container, container],
                    "initContainers": [container],
                },
            }))
        })
        .collect();
    let results = scheduler::schedule_batch(&mut view, pods);
    let placed = results.iter().filter(|(_, r)| r.is_ok()).count();
    let (Some(node), Some(used)) = (view.node("n"), view.requested("n")) else {
        return;
    };
    let alloc = node.allocatable;
    if placed > 0 && alloc.cpu >= 0 && alloc.memory >= 0 {
        assert!(
            used.cpu <= alloc.cpu && used.memory <= alloc.memory,
            "over-committed: {used:?} on {alloc:?} from {q:?}"
        );
    }
}
