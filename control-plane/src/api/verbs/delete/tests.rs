use super::*;
use crate::api::resources::lookup;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn info(resource: &str) -> &'static ResourceInfo {
    lookup("", "v1", resource).unwrap()
}

#[test]
fn a_grace_period_past_the_end_of_time_does_not_panic() {
    let mut pod = json!({"metadata": {"name": "p"}});
    mark_deleting(&mut pod, SystemTime::now(), i64::MAX);
    assert_eq!(pod["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], i64::MAX);
}

#[test]
fn delete_options_from_body_and_query() {
    let q = Query::parse(Some("gracePeriodSeconds=0"));
    let o = DeleteOptions::from_parts(
        Some(&json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5})),
        &q,
    );
    assert_eq!(o.grace_period, Some(0));
    assert_eq!(o.propagation.as_deref(), Some("Foreground"));
    let o = DeleteOptions::from_parts(Some(&json!({"orphanDependents": true})), &Query::default());
    assert_eq!(o.propagation.as_deref(), Some("Orphan"));
}

#[test]
fn plain_objects_are_removed_at_once() {
    let cm = json!({"metadata": {"name": "c", "resourceVersion": "4"}});
    let plan = plan_delete(
        info("configmaps"),
        &cm,
        4,
        &DeleteOptions::default(),
        at(0),
        false,
    );
    assert_eq!(plan.unwrap(), DeletePlan::Remove);
}

#[test]
fn preconditions_must_hold() {
    let cm = json!({"metadata": {"name": "c", "uid": "u1"}});
    let uid = DeleteOptions {
        uid: Some("u2".into()),
        ..DeleteOptions::default()
    };
    let err = plan_delete(info("configmaps"), &cm, 4, &uid, at(0), false).unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("UID in precondition: u2"),
        "{}",
        err.message
    );
    let rv = DeleteOptions {
        resource_version: Some("3".into()),
        ..DeleteOptions::default()
    };
    let err = plan_delete(info("configmaps"), &cm, 4, &rv, at(0), false).unwrap_err();
    assert!(
        err.message.contains("ResourceVersion in object meta: 4"),
        "{}",
        err.message
    );
}

#[test]
fn a_bound_pod_on_a_live_node_terminates_gracefully() {
    let pod = json!({"metadata": {"name": "p", "resourceVersion": "9"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 20}, "status": {"phase": "Running"}});
    let opts = DeleteOptions::default();
    assert_eq!(graceful_node(&pod, pod_grace(&pod, &opts)), Some("n1"));
    let DeletePlan::Mark(marked) =
        plan_delete(info("pods"), &pod, 9, &opts, at(100), true).unwrap()
    else {
        panic!("a graceful pod is marked, not removed");
    };
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 20);
    assert_eq!(
        marked["metadata"]["deletionTimestamp"],
        "1970-01-01T00:02:00Z"
    );
    assert!(marked["metadata"].get("resourceVersion").is_none());
    // A second delete asking no shorter grace changes nothing.
    assert_eq!(
        plan_delete(info("pods"), &marked, 10, &opts, at(101), true).unwrap(),
        DeletePlan::Pending(marked.clone())
    );
    // One asking a shorter grace shortens it.
    let now = DeleteOptions {
        grace_period: Some(0),
        ..DeleteOptions::default()
    };
    assert_eq!(
        plan_delete(info("pods"), &marked, 10, &now, at(101), true).unwrap(),
        DeletePlan::Remove
    );
    // Without its node (or finished), nobody would finish the deletion: removed at once.
    assert_eq!(
        plan_delete(info("pods"), &pod, 9, &opts, at(100), false).unwrap(),
        DeletePlan::Remove
    );
    let done = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
    assert_eq!(graceful_node(&done, 30), None);
}

#[test]
fn namespaces_are_torn_down_and_system_ones_kept() {
    let ns = json!({"metadata": {"name": "team"}, "spec": {"finalizers": ["kubernetes"]}});
    let DeletePlan::Mark(marked) = plan_delete(
        info("namespaces"),
        &ns,
        2,
        &DeleteOptions::default(),
        at(0),
        false,
    )
    .unwrap() else {
        panic!("a namespace is marked");
    };
    assert_eq!(marked["status"]["phase"], "Terminating");
    assert_eq!(
        plan_delete(
            info("namespaces"),
            &marked,
            3,
            &DeleteOptions::default(),
            at(1),
            false
        )
        .unwrap(),
        DeletePlan::Pending(marked.clone())
    );
    let system = json!({"metadata": {"name": "kube-system"}});
    let err = plan_delete(
        info("namespaces"),
        &system,
        1,
        &DeleteOptions::default(),
        at(0),
        false,
    )
    .unwrap_err();
    assert_eq!(err.code, 403);
}

#[test]
fn propagation_policies_add_their_finalizer() {
    let cm = json!({"metadata": {"name": "c"}});
    for (policy, finalizer) in [("Foreground", "foregroundDeletion"), ("Orphan", "orphan")] {
        let opts = DeleteOptions {
            propagation: Some(policy.into()),
            ..DeleteOptions::default()
        };
        let DeletePlan::Mark(marked) =
            plan_delete(info("configmaps"), &cm, 1, &opts, at(0), false).unwrap()
        else {
            panic!("{policy} marks");
        };
        assert_eq!(marked["metadata"]["finalizers"], json!([finalizer]));
        assert!(marked["metadata"].get("deletionTimestamp").is_some());
        // Asked again: already so.
        assert_eq!(
            plan_delete(info("configmaps"), &marked, 2, &opts, at(5), false).unwrap(),
            DeletePlan::Pending(marked.clone())
        );
    }
    let with_finalizer = json!({"metadata": {"name": "c", "finalizers": ["x"]}});
    let plan = plan_delete(
        info("configmaps"),
        &with_finalizer,
        1,
        &DeleteOptions::default(),
        at(0),
        false,
    )
    .unwrap();
    assert!(matches!(plan, DeletePlan::Mark(_)));
}
