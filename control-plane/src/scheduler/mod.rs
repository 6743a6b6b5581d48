//! The scheduler: a pure function from a [`ClusterView`] and a [`Pod`] to a node ([`Placement`]) or a
//! reason ([`Unschedulable`]). No I/O; the runner in `controllers::scheduling` feeds it and commits bindings.
//! Vocabulary and pipeline: `README.md` beside this file.

mod model;
mod view;

#[cfg(test)]
mod tests;

pub use model::{
    container_ports, node_ready, AntiAffinityTerm, Node, Placement, Pod, Resources, Taint,
    TaintEffect, Toleration, Unschedulable, PVC_NODE_ANNOTATION,
};
pub use view::ClusterView;

/// Picks a node for `pod`, or says why none fits. Filters (in order): cordon, taints, readiness, node
/// selector and required node affinity, resources, volume locality, free host ports, required pod anti-affinity.
/// Scores:
/// fewest replicas of the same owner, then fewest untolerated `PreferNoSchedule` taints, then least
/// allocated, then node name.
///
/// # Errors
/// [`Unschedulable`] with kube-scheduler's message when no node passes the filters.
pub fn schedule(view: &ClusterView, pod: &Pod) -> Result<Placement, Unschedulable> {
    view.schedule(pod)
}

/// Schedules `pods` in order against `view`, binding each placed pod in the view before the next is
/// considered, so a batch never over-commits a node.
pub fn schedule_batch(
    view: &mut ClusterView,
    pods: Vec<Pod>,
) -> Vec<(Pod, Result<Placement, Unschedulable>)> {
    pods.into_iter()
        .map(|pod| {
            let result = view.schedule(&pod);
            if let Ok(p) = &result {
                view.bind(&pod, &p.node);
            }
            (pod, result)
        })
        .collect()
}
