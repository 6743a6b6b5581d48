use super::*;
use serde_json::json;

fn deploy(generation: i64, status: Value) -> Deployment {
    serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "u1", "generation": generation},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v2"}]}}},
            "status": status
        }))
        .unwrap()
}

#[test]
fn status_messages_follow_kubectl() {
    let cases = [
            (2, json!({"observedGeneration": 1}), "Waiting for deployment spec update to be observed...", false),
            (2, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1}),
             "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...", false),
            (2, json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}),
             "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...", false),
            (2, json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
             "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...", false),
            (2, json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
             "deployment \"web\" successfully rolled out", true),
        ];
    for (g, st, want, done) in cases {
        assert_eq!(
            status_message(&deploy(g, st)).unwrap(),
            (want.to_string(), done)
        );
    }
    let stuck = deploy(
        1,
        json!({"observedGeneration": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
    );
    assert_eq!(
        status_message(&stuck).unwrap_err().to_string(),
        "deployment \"web\" exceeded its progress deadline"
    );
}

fn rs(name: &str, rev: &str, owner: &str, image: &str) -> ReplicaSet {
    serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {REVISION_ANNOTATION: rev},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner, "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
}

#[test]
fn history_lists_owned_revisions_in_order() {
    let d = deploy(1, json!({}));
    let owned = owned_replica_sets(
        &d,
        vec![
            rs("b", "2", "u1", "v2"),
            rs("a", "1", "u1", "v1"),
            rs("x", "9", "other", "v9"),
        ],
    );
    assert_eq!(owned.len(), 2);
    assert_eq!(
        history_text("deployment.apps/web", &owned),
        "deployment.apps/web\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );
}

#[test]
fn rollback_picks_previous_or_named_revision() {
    let mut d = deploy(1, json!({}));
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("v3".into());
    let owned = vec![
        rs("a", "1", "u1", "v1"),
        rs("b", "2", "u1", "v2"),
        rs("c", "3", "u1", "v3"),
    ];
    match plan_rollback(&d, &owned, 0).unwrap() {
        Rollback::To(r, t) => {
            assert_eq!(r, 2);
            assert!(t["metadata"]["labels"].get("pod-template-hash").is_none());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        plan_rollback(&d, &owned, 1).unwrap(),
        Rollback::To(1, _)
    ));
    assert_eq!(
        plan_rollback(&d, &owned, 7).unwrap_err().to_string(),
        "unable to find specified revision 7 in history"
    );
    // The deployment runs v2 already: rolling back to revision 2 is a no-op.
    let d = deploy(1, json!({}));
    let on_v2 = vec![rs("b", "2", "u1", "v2"), rs("c", "3", "u1", "v3")];
    assert_eq!(plan_rollback(&d, &on_v2, 2).unwrap(), Rollback::Skip(2));
    assert!(plan_rollback(&d, &[], 0).is_err());
    assert!(plan_rollback(&d, &[rs("a", "1", "u1", "v1")], 0).is_err());
}

fn daemon_set(generation: i64, strategy: &str, status: Value) -> DaemonSet {
    serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": strategy},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "v2"}]}}},
            "status": status
        }))
        .unwrap()
}

#[test]
fn daemon_set_status_messages_follow_kubectl() {
    let st = |observed: i64, updated: i64, available: i64| {
        json!({"observedGeneration": observed, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                   "numberMisscheduled": 0, "numberReady": available, "updatedNumberScheduled": updated,
                   "numberAvailable": available})
    };
    let cases = [
            (2, st(1, 3, 3), "Waiting for daemon set spec update to be observed...", false),
            (2, st(2, 1, 1),
             "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated...", false),
            (2, st(2, 3, 2),
             "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available...", false),
            (2, st(2, 3, 3), "daemon set \"agent\" successfully rolled out", true),
            // An observed generation ahead of the object's counts as observed, as in kubectl.
            (2, st(3, 3, 3), "daemon set \"agent\" successfully rolled out", true),
        ];
    for (g, st, want, done) in cases {
        assert_eq!(
            daemon_set_status_message(&daemon_set(g, "RollingUpdate", st)).unwrap(),
            (want.to_string(), done)
        );
    }
    // Absent fields are zero: nothing scheduled yet is nothing to wait for.
    let empty = daemon_set(1, "RollingUpdate", json!({"observedGeneration": 1}));
    assert!(daemon_set_status_message(&empty).unwrap().1);
    let on_delete = daemon_set(1, "OnDelete", st(1, 0, 0));
    assert_eq!(
        daemon_set_status_message(&on_delete)
            .unwrap_err()
            .to_string(),
        "rollout status is only available for RollingUpdate strategy type"
    );
    // The API server's default strategy.
    let mut defaulted = daemon_set(1, "RollingUpdate", st(1, 3, 3));
    defaulted.spec.as_mut().unwrap().update_strategy = None;
    assert!(daemon_set_status_message(&defaulted).unwrap().1);
}

#[test]
fn names_and_restart_patch() {
    let t = |arg| Target::parse(arg).unwrap();
    for (arg, workload) in [
        ("deploy/web", Workload::Deployment),
        ("deployments.apps/web", Workload::Deployment),
        ("web", Workload::Deployment),
        ("ds/web", Workload::DaemonSet),
        ("daemonset/web", Workload::DaemonSet),
        ("daemonsets/web", Workload::DaemonSet),
        ("daemonsets.apps/web", Workload::DaemonSet),
    ] {
        assert_eq!(
            t(arg),
            Target {
                workload,
                name: "web"
            },
            "{arg}"
        );
    }
    assert_eq!(
        Target::parse("svc/web").unwrap_err().to_string(),
        "no status viewer has been implemented for svc"
    );
    assert_eq!(
        restart_patch("2024-01-01T00:00:00Z")["spec"]["template"]["metadata"]["annotations"]
            [RESTARTED_AT_ANNOTATION],
        "2024-01-01T00:00:00Z"
    );
}
