use super::*;
use crate::api::resources::lookup;
use std::time::Duration;

fn ctx() -> CreateContext {
    CreateContext {
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        uid: "u-1".into(),
        name_suffix: "abcde".into(),
    }
}

#[test]
fn create_fills_metadata_and_deployment_defaults() {
    let info = lookup("apps", "v1", "deployments").unwrap();
    let mut d = json!({"metadata": {"name": "web", "resourceVersion": "9", "uid": "client"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}, {"name": "d", "image": "nginx:1.27"}]}}},
        "status": {"replicas": 7}});
    prepare_create(info, &mut d, Some("default"), &ctx()).unwrap();
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["apiVersion"], "apps/v1");
    assert_eq!(d["metadata"]["namespace"], "default");
    assert_eq!(d["metadata"]["uid"], "u-1");
    assert_eq!(d["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(d["metadata"]["generation"], 1);
    assert!(d["metadata"].get("resourceVersion").is_none());
    assert_eq!(d["status"], json!({}));
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
}

#[test]
fn create_generates_names_and_checks_namespace() {
    let info = lookup("", "v1", "configmaps").unwrap();
    let mut c = json!({"metadata": {"generateName": "cfg-"}});
    prepare_create(info, &mut c, Some("ns1"), &ctx()).unwrap();
    assert_eq!(c["metadata"]["name"], "cfg-abcde");
    assert_eq!(c["metadata"]["namespace"], "ns1");
    assert!(c["metadata"].get("generation").is_none());
    let mut bad = json!({"metadata": {"name": "x", "namespace": "other"}});
    assert_eq!(
        prepare_create(info, &mut bad, Some("ns1"), &ctx())
            .unwrap_err()
            .code,
        400
    );
    let mut anon = json!({"metadata": {}});
    let err = prepare_create(info, &mut anon, Some("ns1"), &ctx()).unwrap_err();
    assert_eq!(err.code, 422);
}

#[test]
fn namespace_and_pod_and_service_defaults() {
    let ns = lookup("", "v1", "namespaces").unwrap();
    let mut n = json!({"metadata": {"name": "foo", "namespace": "x"}});
    prepare_create(ns, &mut n, None, &ctx()).unwrap();
    assert_eq!(n["status"]["phase"], "Active");
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "foo"
    );
    assert!(n["metadata"].get("namespace").is_none());

    let pods = lookup("", "v1", "pods").unwrap();
    let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "reg:5000/busybox", "ports": [{"containerPort": 80}]}]}});
    prepare_create(pods, &mut p, None, &ctx()).unwrap();
    assert_eq!(p["metadata"]["namespace"], "default");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(p["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");

    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    let mut p = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "runner", "containers": []}});
    prepare_create(pods, &mut p, None, &ctx()).unwrap();
    assert_eq!(p["spec"]["serviceAccount"], "runner");
    let deploy = lookup("apps", "v1", "deployments").unwrap();
    let mut d =
        json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": []}}}});
    prepare_create(deploy, &mut d, None, &ctx()).unwrap();
    assert!(d["spec"]["template"]["spec"]
        .get("serviceAccountName")
        .is_none());

    let rb = lookup("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
    let mut b = json!({"metadata": {"name": "b"}, "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]});
    prepare_create(rb, &mut b, Some("default"), &ctx()).unwrap();
    assert_eq!(b["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(b["subjects"][1].get("apiGroup").is_none());

    let svc = lookup("", "v1", "services").unwrap();
    let mut s = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    prepare_create(svc, &mut s, Some("default"), &ctx()).unwrap();
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
}

#[test]
fn update_keeps_system_fields_and_bumps_generation_on_spec_change() {
    let info = lookup("apps", "v1", "deployments").unwrap();
    let mut old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}});
    prepare_create(info, &mut old, Some("default"), &ctx()).unwrap();
    old["status"] = json!({"replicas": 2});
    old["metadata"]["resourceVersion"] = json!("5");

    let mut same = old.clone();
    same["metadata"]["labels"] = json!({"a": "b"});
    same["metadata"]["uid"] = json!("forged");
    same["status"] = json!({"replicas": 99});
    prepare_update(info, &old, &mut same);
    assert_eq!(same["metadata"]["generation"], 1);
    assert_eq!(same["metadata"]["uid"], "u-1");
    assert_eq!(same["status"]["replicas"], 2);
    assert_eq!(same["metadata"]["labels"]["a"], "b");

    let mut changed = old.clone();
    changed["spec"]["replicas"] = json!(5);
    prepare_update(info, &old, &mut changed);
    assert_eq!(changed["metadata"]["generation"], 2);

    let st = prepare_status_update(
        &old,
        &json!({"spec": {"replicas": 100}, "status": {"replicas": 3}}),
    );
    assert_eq!(st["spec"]["replicas"], 2);
    assert_eq!(st["status"]["replicas"], 3);
}

#[test]
fn job_defaults_and_generated_selector() {
    let info = lookup("batch", "v1", "jobs").unwrap();
    // What `kubectl create job pi --image=perl -- perl -e 1` sends.
    let mut j = json!({"metadata": {"name": "pi", "uid": "forged"},
        "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34", "command": ["perl", "-e", "1"]}],
            "restartPolicy": "Never"}}},
        "status": {"succeeded": 3}});
    prepare_create(info, &mut j, Some("default"), &ctx()).unwrap();
    assert_eq!(j["apiVersion"], "batch/v1");
    assert_eq!(j["metadata"]["uid"], "u-1");
    assert_eq!(j["metadata"]["generation"], 1);
    assert_eq!(j["status"], json!({}));
    let generated = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u-1", "job-name": "pi"});
    assert_eq!(j["metadata"]["labels"], generated);
    let spec = &j["spec"];
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["manualSelector"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(spec["template"]["metadata"]["labels"], generated);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(spec["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(crate::api::validation::validate("jobs", &j).is_empty());

    // Defaulting again (every update does) changes nothing.
    let mut again = j.clone();
    apply_defaults(info, &mut again);
    assert_eq!(again, j);
}

#[test]
fn job_defaults_keep_what_the_user_set() {
    let info = lookup("batch", "v1", "jobs").unwrap();
    let mut j = json!({"metadata": {"name": "work", "labels": {"team": "a"}},
        "spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "completionMode": "Indexed",
          "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
          "template": {"metadata": {"labels": {"app": "work", "job-name": "mine"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}});
    prepare_create(info, &mut j, None, &ctx()).unwrap();
    let spec = &j["spec"];
    // Only parallelism was given: completions stays unset (a work queue).
    assert!(spec.get("completions").is_none());
    assert_eq!(spec["parallelism"], 3);
    assert_eq!(spec["backoffLimit"], i64::from(i32::MAX));
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    assert_eq!(
        spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    // User labels stay (validation then refuses the wrong job-name); the rest are generated.
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(labels["job-name"], "mine");
    assert_eq!(labels["batch.kubernetes.io/job-name"], "work");
    assert_eq!(labels["controller-uid"], "u-1");
    assert_eq!(labels["app"], "work");
    // The Job's own labels are kept.
    assert_eq!(j["metadata"]["labels"], json!({"team": "a"}));

    // manualSelector: true leaves the selector and labels alone.
    let mut m = json!({"metadata": {"name": "m"},
        "spec": {"manualSelector": true, "completions": 2, "selector": {"matchLabels": {"app": "m"}},
          "template": {"metadata": {"labels": {"app": "m"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}});
    prepare_create(info, &mut m, None, &ctx()).unwrap();
    assert_eq!(m["spec"]["selector"], json!({"matchLabels": {"app": "m"}}));
    assert_eq!(
        m["spec"]["template"]["metadata"]["labels"],
        json!({"app": "m"})
    );
    assert_eq!(m["spec"]["completions"], 2);
    assert_eq!(m["spec"]["parallelism"], 1);
    assert_eq!(m["metadata"]["labels"], json!({"app": "m"}));
    assert!(crate::api::validation::validate("jobs", &m).is_empty());
}

#[test]
fn job_update_keeps_the_generated_selector() {
    let info = lookup("batch", "v1", "jobs").unwrap();
    let mut old = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}});
    prepare_create(info, &mut old, Some("default"), &ctx()).unwrap();
    old["status"] = json!({"active": 1});
    let mut new = old.clone();
    new["spec"]["suspend"] = json!(true);
    new["status"] = json!({});
    prepare_update(info, &old, &mut new);
    assert_eq!(new["spec"]["selector"], old["spec"]["selector"]);
    assert_eq!(new["status"]["active"], 1);
    assert_eq!(new["metadata"]["generation"], 2);
}

#[test]
fn pull_policy_follows_the_tag() {
    assert_eq!(pull_policy("nginx"), "Always");
    assert_eq!(pull_policy("nginx:latest"), "Always");
    assert_eq!(pull_policy("nginx:1.27"), "IfNotPresent");
    assert_eq!(pull_policy("localhost:5000/app"), "Always");
    assert_eq!(pull_policy("localhost:5000/app:v1"), "IfNotPresent");
    assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
}
