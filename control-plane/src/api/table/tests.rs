use super::*;
use std::time::Duration;

use crate::api::kinds::common::columns::age;

fn now() -> SystemTime {
    parse_rfc3339("2026-11-25T12:00:00Z").unwrap()
}

fn cells(resource: &str, obj: Value) -> Vec<Value> {
    let t = table(resource, &[&obj], IncludeObject::Metadata, "42", now());
    t["rows"][0]["cells"].as_array().unwrap().clone()
}

fn column_names(resource: &str) -> Vec<(String, i64)> {
    let t = table(resource, &[], IncludeObject::None, "1", now());
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn rbac_and_service_account_rows() {
    let names = |r: &str| -> Vec<String> { column_names(r).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(names("clusterroles"), ["Name", "Created At"]);
    assert_eq!(
        names("rolebindings"),
        ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    );
    assert_eq!(
        column_names("clusterrolebindings")[3],
        ("Users".to_string(), 1)
    );
    assert_eq!(names("serviceaccounts"), ["Name", "Secrets", "Age"]);
    let created = json!({"name": "x", "creationTimestamp": "2026-11-25T11:00:00Z"});
    assert_eq!(
        cells("roles", json!({"metadata": created})),
        [json!("x"), json!("2026-11-25T11:00:00Z")]
    );
    let b = json!({"metadata": created,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"},
                     {"kind": "Group", "name": "g"},
                     {"kind": "ServiceAccount", "name": "s", "namespace": "default"}]});
    assert_eq!(
        cells("rolebindings", b),
        [
            json!("x"),
            json!("ClusterRole/view"),
            json!("60m"),
            json!("a, b"),
            json!("g"),
            json!("default/s")
        ]
    );
    assert_eq!(
        cells("serviceaccounts", json!({"metadata": created})),
        [json!("x"), json!(0), json!("60m")]
    );
}

#[test]
fn rfc3339_parsing() {
    let t = parse_rfc3339("1970-01-02T00:00:01Z").unwrap();
    assert_eq!(
        t.duration_since(std::time::UNIX_EPOCH).unwrap(),
        Duration::from_secs(86401)
    );
    let a = parse_rfc3339("2026-11-25T13:30:00.5+01:30").unwrap();
    let b = parse_rfc3339("2026-11-25T12:00:00.500Z").unwrap();
    assert_eq!(a, b);
    assert!(parse_rfc3339("2026-13-01T00:00:00Z").is_none());
    assert!(parse_rfc3339("yesterday").is_none());
    assert_eq!(age("", now()), "<unknown>");
}

#[test]
fn pod_columns_and_statuses() {
    assert_eq!(
        column_names("pods"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    let running = json!({"metadata": {"name": "web-1", "creationTimestamp": "2026-11-25T11:57:57Z"},
        "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 3, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-25T11:59:55Z"}}},
            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
    assert_eq!(
        cells("pods", running),
        [
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("3 (5s ago)"),
            json!("2m3s"),
            json!("10.244.1.5"),
            json!("node1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    let status = |statuses: Value, phase: &str| {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": phase, "containerStatuses": statuses}});
        cells("pods", pod)[2].as_str().unwrap().to_string()
    };
    assert_eq!(
        status(
            json!([{"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 4}]),
            "Running"
        ),
        "CrashLoopBackOff"
    );
    assert_eq!(
        status(
            json!([{"state": {"waiting": {"reason": "ContainerCreating"}}}]),
            "Pending"
        ),
        "ContainerCreating"
    );
    assert_eq!(
        status(
            json!([{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]),
            "Succeeded"
        ),
        "Completed"
    );
    assert_eq!(
        status(
            json!([{"state": {"terminated": {"exitCode": 2}}}]),
            "Failed"
        ),
        "ExitCode:2"
    );
    assert_eq!(
        status(
            json!([{"state": {"terminated": {"signal": 9, "exitCode": 137}}}]),
            "Failed"
        ),
        "Signal:9"
    );
    assert_eq!(status(json!([]), "Pending"), "Pending");
    let terminating = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-11-25T12:00:00Z"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": true, "state": {"running": {}}}]}});
    assert_eq!(cells("pods", terminating)[2], "Terminating");
    let init = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}],
            "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
    assert_eq!(cells("pods", init)[2], "Init:1/2");
    let t = table(
        "pods",
        &[&json!({"metadata": {"name": "x"}, "status": {"phase": "Succeeded"}})],
        IncludeObject::None,
        "1",
        now(),
    );
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
    assert!(t["rows"][0].get("object").is_none());
}

#[test]
fn table_envelope_and_objects() {
    let obj = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns1", "labels": {"a": "b"}}, "data": {"x": "1", "y": "2"}});
    let t = table("configmaps", &[&obj], IncludeObject::Metadata, "127", now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"]["resourceVersion"], "127");
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
    );
    assert_eq!(t["rows"][0]["cells"], json!(["c", 2, "<unknown>"]));
    let t = table("configmaps", &[&obj], IncludeObject::Object, "127", now());
    assert_eq!(t["rows"][0]["object"], obj);
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        IncludeObject::Object
    );
    assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
}

#[test]
fn workload_rows() {
    let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T09:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"tier": "f", "app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]}]},
          "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        cells("deployments", d.clone()),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3h"),
            json!("nginx,side"),
            json!("nginx:1.27,busybox"),
            json!("app=web,env in (a,b),tier=f")
        ]
    );
    assert_eq!(
        column_names("deployments")
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let rs = json!({"metadata": {"name": "web-abc", "creationTimestamp": "2026-11-23T09:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "n", "image": "i"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        cells("replicasets", rs),
        [
            json!("web-abc"),
            json!(3),
            json!(3),
            json!(1),
            json!("2d3h"),
            json!("n"),
            json!("i"),
            json!("app=web")
        ]
    );
}

#[test]
fn job_rows() {
    assert_eq!(
        column_names("jobs"),
        [
            ("Name".to_string(), 0),
            ("Status".to_string(), 0),
            ("Completions".to_string(), 0),
            ("Duration".to_string(), 0),
            ("Age".to_string(), 0),
            ("Containers".to_string(), 1),
            ("Images".to_string(), 1),
            ("Selector".to_string(), 1),
        ]
    );
    let base = json!({"metadata": {"name": "pi", "creationTimestamp": "2026-11-25T11:00:00Z"},
        "spec": {"completions": 3, "parallelism": 1,
          "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
          "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}}});
    // Not started yet: no duration.
    assert_eq!(
        cells("jobs", base.clone()),
        [
            json!("pi"),
            json!("Running"),
            json!("0/3"),
            json!(""),
            json!("60m"),
            json!("pi"),
            json!("perl:5.34"),
            json!("batch.kubernetes.io/controller-uid=u-1")
        ]
    );
    let with_status = |status: Value| {
        let mut j = base.clone();
        j["status"] = status;
        cells("jobs", j)
    };
    // Running: the duration runs until now.
    let running =
        with_status(json!({"startTime": "2026-11-25T11:58:30Z", "active": 1, "succeeded": 1}));
    assert_eq!(
        running[1..4],
        [json!("Running"), json!("1/3"), json!("90s")]
    );
    // Complete: completion minus start.
    let done = with_status(
        json!({"startTime": "2026-11-25T11:00:00Z", "completionTime": "2026-11-25T11:02:05Z",
        "succeeded": 3, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}),
    );
    assert_eq!(done[1..4], [json!("Complete"), json!("3/3"), json!("2m5s")]);
    for (conditions, want) in [
        (
            json!([{"type": "Failed", "status": "True"}, {"type": "FailureTarget", "status": "True"}]),
            "Failed",
        ),
        (
            json!([{"type": "Suspended", "status": "True"}]),
            "Suspended",
        ),
        (json!([{"type": "Suspended", "status": "False"}]), "Running"),
        (
            json!([{"type": "FailureTarget", "status": "True"}]),
            "FailureTarget",
        ),
        (
            json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
            "SuccessCriteriaMet",
        ),
        (json!([{"type": "Complete", "status": "False"}]), "Running"),
    ] {
        assert_eq!(
            with_status(json!({"conditions": conditions}))[1],
            json!(want),
            "{conditions}"
        );
    }
    let mut deleting = base.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-25T11:59:00Z");
    assert_eq!(cells("jobs", deleting)[1], json!("Terminating"));
    // Without completions: "n/1", or "n/1 of p" with parallelism above 1.
    let mut queue = base.clone();
    queue["spec"].as_object_mut().unwrap().remove("completions");
    assert_eq!(cells("jobs", queue.clone())[2], json!("0/1"));
    queue["spec"]["parallelism"] = json!(4);
    queue["status"] = json!({"succeeded": 2});
    assert_eq!(cells("jobs", queue)[2], json!("2/1 of 4"));
}

#[test]
fn service_and_endpoint_rows() {
    let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-25T11:50:00Z"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"], "selector": {"app": "web"},
                 "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    assert_eq!(
        cells("services", svc),
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.12"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("10m"),
            json!("app=web")
        ]
    );
    let headless = json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None"}});
    assert_eq!(
        cells("services", headless),
        [
            json!("db"),
            json!("ClusterIP"),
            json!("None"),
            json!("<none>"),
            json!("<none>"),
            json!("<unknown>"),
            json!("<none>")
        ]
    );
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}});
    assert_eq!(cells("services", lb)[3], "<pending>");
    let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.2"}, {"ip": "10.244.3.2"}, {"ip": "10.244.4.2"}], "ports": [{"port": 80}]}]});
    assert_eq!(
        cells("endpoints", ep)[1],
        "10.244.1.2:80,10.244.2.2:80,10.244.3.2:80 + 1 more..."
    );
    assert_eq!(
        cells("endpoints", json!({"metadata": {"name": "e"}}))[1],
        "<none>"
    );
}

#[test]
fn node_namespace_config_rows() {
    let node = json!({"metadata": {"name": "node1", "creationTimestamp": "2026-10-16T12:00:00Z", "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "berth://0.1"}}});
    assert_eq!(
        cells("nodes", node),
        [
            json!("node1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane"),
            json!("40d"),
            json!("v1.32.0"),
            json!("10.0.0.1"),
            json!("<none>"),
            json!("Debian"),
            json!("6.1"),
            json!("berth://0.1")
        ]
    );
    let down = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(cells("nodes", down)[1], "NotReady");
    assert_eq!(
        cells("nodes", json!({"metadata": {"name": "n3"}}))[1],
        "Unknown"
    );
    let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2026-11-25T11:59:55Z"}, "status": {"phase": "Active"}});
    assert_eq!(
        cells("namespaces", ns),
        [json!("default"), json!("Active"), json!("5s")]
    );
    let sec = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("secrets", sec),
        [
            json!("s"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("<unknown>")
        ]
    );
    assert_eq!(
        cells(
            "leases",
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node1"}})
        )[1],
        "node1"
    );
    assert_eq!(
        cells("widgets", json!({"metadata": {"name": "w"}})),
        [json!("w"), json!("<unknown>")]
    );
    let pvc = json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1", "storageClassName": "local"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(
        cells("persistentvolumeclaims", pvc),
        [
            json!("data"),
            json!("Bound"),
            json!("pv1"),
            json!("1Gi"),
            json!("RWO"),
            json!("local"),
            json!("<unset>"),
            json!("<unknown>"),
            json!("<unset>")
        ]
    );
}

#[test]
fn event_rows() {
    let ev = json!({"metadata": {"name": "web-1.abc"}, "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n",
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
        "source": {"component": "kubelet", "host": "node1"},
        "firstTimestamp": "2026-11-25T11:00:00Z", "lastTimestamp": "2026-11-25T11:59:30Z", "count": 7});
    assert_eq!(
        cells("events", ev),
        [
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{a}"),
            json!("kubelet, node1"),
            json!("Back-off restarting"),
            json!("60m"),
            json!(7),
            json!("web-1.abc")
        ]
    );
    assert_eq!(column_names("events")[0].0, "Last Seen");
}
