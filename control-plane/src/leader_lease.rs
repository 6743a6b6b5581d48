//! Publishes which member leads as the Lease `kube-system/berth-leader`, the way kube-controller-manager
//! advertises its leader, so `kubectl get lease -n kube-system` and `berthctl lab status` can tell.
//! Raft decides leadership; the Lease only reports it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::store::{key, Batch, Consistency, ObjectStore, Op, Precondition};

/// Name of the Lease object in `kube-system`.
pub const LEASE_NAME: &str = "berth-leader";

/// The Lease object for `holder` at `now`, keeping uid and creation time of `existing`.
pub fn lease_object(
    holder: &str,
    now: SystemTime,
    renew_every: Duration,
    existing: Option<&serde_json::Value>,
) -> serde_json::Value {
    let ts = apimachinery::time::rfc3339_micros(now);
    let meta = existing.map(|e| e["metadata"].clone());
    let uid = meta
        .as_ref()
        .and_then(|m| m["uid"].as_str().map(str::to_string))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let created = meta
        .as_ref()
        .and_then(|m| m["creationTimestamp"].as_str().map(str::to_string))
        .unwrap_or_else(|| apimachinery::time::rfc3339(now));
    let same_holder = existing.is_some_and(|e| e["spec"]["holderIdentity"] == holder);
    let acquired = existing
        .filter(|_| same_holder)
        .and_then(|e| e["spec"]["acquireTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| ts.clone());
    let transitions = existing
        .and_then(|e| e["spec"]["leaseTransitions"].as_i64())
        .unwrap_or(0)
        + i64::from(existing.is_some() && !same_holder);
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": LEASE_NAME,
            "namespace": "kube-system",
            "uid": uid,
            "creationTimestamp": created,
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": (renew_every.as_secs() * 3).max(1),
            "acquireTime": acquired,
            "renewTime": ts,
            "leaseTransitions": transitions,
        }
    })
}

/// Renews the Lease every `every` while this member leads (until `shutdown`, which the server cancels
/// when leadership is lost).
pub async fn run(
    store: Arc<dyn ObjectStore>,
    holder: String,
    every: Duration,
    shutdown: CancellationToken,
) {
    let k = key("coordination.k8s.io", "leases", "kube-system", LEASE_NAME);
    loop {
        let existing = store.get(&k, Consistency::Local).await.ok().flatten();
        let precondition = match &existing {
            Some(o) => Precondition::Revision(o.revision),
            None => Precondition::Absent,
        };
        #[allow(clippy::disallowed_methods)] // the edge: the lease reports wall-clock renew times
        let now = SystemTime::now();
        let value = lease_object(&holder, now, every, existing.as_ref().map(|o| &o.value));
        if let Err(e) = store
            .commit(Batch::one(Op::Put {
                key: k.clone(),
                value,
                precondition,
            }))
            .await
        {
            tracing::debug!(error = %e, "leader lease not renewed; retrying");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn takeover_counts_a_transition_and_keeps_identity() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = lease_object("s1", t0, Duration::from_secs(2), None);
        assert_eq!(first["spec"]["leaseTransitions"], 0);
        let renewed = lease_object(
            "s1",
            t0 + Duration::from_secs(2),
            Duration::from_secs(2),
            Some(&first),
        );
        assert_eq!(renewed["spec"]["acquireTime"], first["spec"]["acquireTime"]);
        assert_eq!(renewed["spec"]["leaseTransitions"], 0);
        let taken = lease_object(
            "s2",
            t0 + Duration::from_secs(9),
            Duration::from_secs(2),
            Some(&renewed),
        );
        assert_eq!(taken["spec"]["holderIdentity"], "s2");
        assert_eq!(taken["spec"]["leaseTransitions"], 1);
        assert_eq!(taken["metadata"]["uid"], first["metadata"]["uid"]);
        assert_ne!(taken["spec"]["acquireTime"], first["spec"]["acquireTime"]);
    }

    #[test]
    fn times_are_written_as_kubernetes_writes_them() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let lease = lease_object("s1", t0, Duration::from_secs(2), None);
        // MicroTime for renew and acquire times, whole seconds for the object's own timestamp.
        assert_eq!(lease["spec"]["renewTime"], "2027-01-15T08:00:00.123456Z");
        assert_eq!(lease["spec"]["acquireTime"], "2027-01-15T08:00:00.123456Z");
        assert_eq!(
            lease["metadata"]["creationTimestamp"],
            "2027-01-15T08:00:00Z"
        );
    }

    #[tokio::test]
    async fn run_publishes_the_holder_until_cancelled() {
        let store = Arc::new(MemStore::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            store.clone(),
            "s2".into(),
            Duration::from_millis(10),
            stop.clone(),
        ));
        let k = key("coordination.k8s.io", "leases", "kube-system", LEASE_NAME);
        let mut found = None;
        for _ in 0..100 {
            if let Some(o) = store.get(&k, Consistency::Local).await.unwrap() {
                found = Some(o);
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(
            found.expect("lease written").value["spec"]["holderIdentity"],
            "s2"
        );
    }
}
