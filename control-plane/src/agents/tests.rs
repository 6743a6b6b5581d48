//! Agents service over a `MemStore`.

use super::sync::{heartbeat, pod_status, stream_desired};
use super::*;
use crate::store::MemStore;
use proto::agentpb::{Heartbeat, JoinRequest, PodStatus};
use serde_json::json;

fn svc(store: Arc<dyn ObjectStore>) -> AgentsService {
    AgentsService {
        store,
        config: AgentsConfig {
            token: "t0k".into(),
            ..Default::default()
        },
    }
}

fn join_req(name: &str) -> JoinRequest {
    JoinRequest {
        token: "t0k".into(),
        node_name: name.into(),
        node_ip: "10.0.0.7".into(),
        node_json: json!({"status": {"capacity": {"cpu": "2", "pods": "110"}}}).to_string(),
        csr_pem: String::new(),
    }
}

async fn put(store: &dyn ObjectStore, key: &str, v: Value) {
    store
        .commit(Batch::one(Op::Put {
            key: key.into(),
            value: v,
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn join_allocates_distinct_cidrs_and_is_idempotent() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    let s = svc(store.clone());
    let a = s.join(None, join_req("a")).await.unwrap();
    let b = s.join(None, join_req("b")).await.unwrap();
    assert_eq!(a.pod_cidr, "10.244.0.0/24");
    assert_eq!(b.pod_cidr, "10.244.1.0/24");
    assert_eq!(
        s.join(None, join_req("a")).await.unwrap().pod_cidr,
        a.pod_cidr,
        "rejoin keeps the CIDR"
    );
    let node = store
        .get("/core/nodes//a", Consistency::Local)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(node["spec"]["podCIDR"], "10.244.0.0/24");
    assert_eq!(
        node["status"]["addresses"][0],
        json!({"type": "InternalIP", "address": "10.0.0.7"})
    );
    assert_eq!(node["status"]["capacity"]["cpu"], "2");
    assert!(store
        .get("/core/podcidrs//10.244.1.0", Consistency::Local)
        .await
        .unwrap()
        .is_some());
    let mut bad = join_req("c");
    bad.token = "nope".into();
    assert_eq!(
        s.join(None, bad).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
}

#[tokio::test]
async fn concurrent_joins_never_share_a_cidr() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    let s = Arc::new(svc(store.clone()));
    let mut handles = vec![];
    for i in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.join(None, join_req(&format!("n{i}")))
                .await
                .unwrap()
                .pod_cidr
        }));
    }
    let mut cidrs = std::collections::BTreeSet::new();
    for h in handles {
        assert!(cidrs.insert(h.await.unwrap()));
    }
    assert_eq!(cidrs.len(), 8);
}

#[tokio::test]
async fn heartbeat_marks_ready_and_pod_status_deletes_terminated_pods() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    svc(store.clone()).join(None, join_req("a")).await.unwrap();
    let rev0 = store.revision();
    heartbeat(
        store.as_ref(),
        "a",
        &Heartbeat {
            node_status_json: json!({"allocatable": {"pods": "110"}}).to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(store.revision(), rev0 + 1, "one write per heartbeat");
    let node = store
        .get("/core/nodes//a", Consistency::Local)
        .await
        .unwrap()
        .unwrap()
        .value;
    let ready = &node["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str()),
        (Some("Ready"), Some("True"))
    );
    assert!(ready["lastHeartbeatTime"].is_string());

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                     "spec": {"nodeName": "a", "containers": [{"name": "c", "image": "busybox"}]}});
    put(store.as_ref(), "/core/pods/default/p", pod.clone()).await;
    let running =
        json!({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}}]});
    let ps = |s: &Value| PodStatus {
        namespace: "default".into(),
        name: "p".into(),
        uid: "u1".into(),
        status_json: s.to_string(),
    };
    pod_status(store.as_ref(), "a", &ps(&running))
        .await
        .unwrap();
    let got = store
        .get("/core/pods/default/p", Consistency::Local)
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(got["status"]["phase"], "Running");
    // A status for another UID (an old incarnation) is ignored.
    let mut stale = ps(&json!({"phase": "Failed"}));
    stale.uid = "old".into();
    pod_status(store.as_ref(), "a", &stale).await.unwrap();
    assert_eq!(
        store
            .get("/core/pods/default/p", Consistency::Local)
            .await
            .unwrap()
            .unwrap()
            .value["status"]["phase"],
        "Running"
    );
    // Deleting: stays while a container runs, goes once all stopped.
    let mut deleting = got.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-25T08:00:00Z");
    put(store.as_ref(), "/core/pods/default/p", deleting).await;
    pod_status(store.as_ref(), "a", &ps(&running))
        .await
        .unwrap();
    assert!(store
        .get("/core/pods/default/p", Consistency::Local)
        .await
        .unwrap()
        .is_some());
    let stopped = json!({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 143}}}]});
    pod_status(store.as_ref(), "a", &ps(&stopped))
        .await
        .unwrap();
    assert!(store
        .get("/core/pods/default/p", Consistency::Local)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn desired_stream_sends_full_then_deltas_with_objects() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    svc(store.clone()).join(None, join_req("a")).await.unwrap();
    put(store.as_ref(), "/core/configmaps/default/cm", json!({"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v"}})).await;
    let pod = |name: &str, node: &str| {
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}})
    };
    put(store.as_ref(), "/core/pods/default/mine", pod("mine", "a")).await;
    put(
        store.as_ref(),
        "/core/pods/default/other",
        pod("other", "b"),
    )
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(stream_desired(store.clone(), None, "a".into(), tx, 0));
    let full = rx.recv().await.unwrap().unwrap();
    assert!(full.full);
    assert_eq!(full.pods.len(), 1);
    assert_eq!(full.pods[0].name, "mine");
    assert_eq!(full.pods[0].objects_json.len(), 1);
    let net = full.network.unwrap();
    assert_eq!(net.nodes[0].pod_cidr, "10.244.0.0/24");
    put(store.as_ref(), "/core/pods/default/new", pod("new", "a")).await;
    let d = rx.recv().await.unwrap().unwrap();
    assert!(!d.full);
    assert_eq!(d.pods[0].name, "new");
    assert!(d.revision > full.revision);
    store
        .commit(Batch::one(Op::Delete {
            key: "/core/pods/default/new".into(),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    let d = rx.recv().await.unwrap().unwrap();
    assert!(d.pods[0].deleted);
    put(store.as_ref(), "/core/configmaps/default/cm", json!({"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v2"}})).await;
    let d = rx.recv().await.unwrap().unwrap();
    assert_eq!(d.pods[0].name, "mine");
    assert!(d.pods[0].objects_json[0].contains("v2"));
    put(
        store.as_ref(),
        "/core/services/default/web",
        json!({"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await;
    let d = rx.recv().await.unwrap().unwrap();
    let svc = &d.network.unwrap().services[0];
    assert_eq!(
        (svc.cluster_ip.as_str(), svc.ports[0].target_port),
        ("10.96.0.20", 8080)
    );
    drop(rx);
    task.abort();
}

#[tokio::test]
async fn a_resuming_agent_gets_only_the_changes_it_missed() {
    let store: Arc<dyn ObjectStore> = Arc::new(MemStore::new());
    svc(store.clone()).join(None, join_req("a")).await.unwrap();
    let pod = |name: &str| {
        json!({"kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"nodeName": "a", "containers": [{"name": "c", "image": "busybox"}]}})
    };
    put(store.as_ref(), "/core/pods/default/old", pod("old")).await;
    put(store.as_ref(), "/core/pods/default/gone", pod("gone")).await;
    let seen = store.revision();
    put(store.as_ref(), "/core/pods/default/missed", pod("missed")).await;
    store
        .commit(Batch::one(Op::Delete {
            key: "/core/pods/default/gone".into(),
            precondition: Precondition::None,
        }))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(stream_desired(store.clone(), None, "a".into(), tx, seen));
    let mut names = vec![];
    while names.len() < 2 {
        let m = rx.recv().await.unwrap().unwrap();
        assert!(!m.full, "no full state for a resumable agent");
        names.extend(m.pods.iter().map(|p| (p.name.clone(), p.deleted)));
    }
    assert_eq!(
        names,
        vec![("missed".to_string(), false), ("gone".to_string(), true)]
    );
    drop(rx);
    task.abort();
    // Resuming from before the window (or from the future) falls back to a full state.
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let task = tokio::spawn(stream_desired(
        store.clone(),
        None,
        "a".into(),
        tx,
        store.revision() + 100,
    ));
    assert!(rx.recv().await.unwrap().unwrap().full);
    task.abort();
}

#[test]
fn pods_get_service_account_tokens_unless_they_opt_out() {
    let d = tempfile::tempdir().unwrap();
    let id = crate::security::MemberIdentity {
        name: "s1".into(),
        sans: vec!["127.0.0.1".into()],
        validity: std::time::Duration::from_secs(3600),
    };
    let pki = crate::security::ClusterPki::create(d.path(), &id, None).unwrap();
    let now = 1_800_000_000;
    let pod = json!({"metadata": {"namespace": "web", "name": "p"}, "spec": {"serviceAccountName": "builder"}});
    let jwt = super::sync::service_account_token(&pki, &pod, now).unwrap();
    let claims = pki.sa_key.verify(&jwt, now + 60).unwrap();
    assert_eq!(claims.sub, "system:serviceaccount:web:builder");
    assert_eq!(claims.exp, now + 24 * 3600);
    let default_sa = json!({"metadata": {"namespace": "web", "name": "p"}, "spec": {}});
    let jwt = super::sync::service_account_token(&pki, &default_sa, now).unwrap();
    assert_eq!(
        pki.sa_key.verify(&jwt, now).unwrap().sub,
        "system:serviceaccount:web:default"
    );
    let opted_out =
        json!({"metadata": {"namespace": "web"}, "spec": {"automountServiceAccountToken": false}});
    assert_eq!(
        super::sync::service_account_token(&pki, &opted_out, now),
        None
    );
}

#[test]
fn node_subnets_are_the_24s_of_the_cluster_cidr() {
    use super::join::subnets;
    let all: Vec<String> = subnets("10.244.0.0/16").collect();
    assert_eq!(all.len(), 256);
    assert_eq!(all[0], "10.244.0.0/24");
    assert_eq!(all[255], "10.244.255.0/24");
    // Host bits are ignored and a bare address is its /16, as before.
    assert_eq!(subnets("10.50.7.1/16").next().unwrap(), "10.50.0.0/24");
    assert_eq!(subnets("10.50.0.0").nth(3).unwrap(), "10.50.3.0/24");
    assert_eq!(subnets("172.16.4.0/22").collect::<Vec<_>>().len(), 4);
    for bad in ["", "garbage", "10.244.0.0/33", "10.244.0.0/28"] {
        assert_eq!(subnets(bad).next().unwrap(), "10.244.0.0/24", "{bad:?}");
        assert_eq!(subnets(bad).count(), 256, "{bad:?}");
    }
}

#[test]
fn heartbeat_times_are_rfc3339_seconds() {
    let t = super::now_rfc3339();
    assert_eq!(t.len(), "2026-01-01T00:00:00Z".len(), "{t}");
    assert!(t.ends_with('Z'));
}
