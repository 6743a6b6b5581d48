use super::*;
use serde_json::json;

#[test]
fn pod_summary() {
    let p = json!({"metadata":{"name":"web-1","namespace":"default","labels":{"app":"web","pod-template-hash":"abc"},
                "ownerReferences":[{"kind":"ReplicaSet","name":"web-abc","controller":true,"uid":"r"}]},
            "spec":{"nodeName":"a1","containers":[{"name":"web","image":"berth/busybox:latest","ports":[{"containerPort":8080}],
                "command":["sh","-c","httpd"]}]},
            "status":{"phase":"Running","podIP":"10.244.1.5","hostIP":"172.29.0.101",
                "containerStatuses":[{"name":"web","ready":true,"restartCount":0,"state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}}}],
                "conditions":[{"type":"Ready","status":"True"}]}});
    let t = describe_pod(&p);
    assert!(
        t.starts_with(
            "Name:           web-1\nNamespace:      default\nNode:           a1/172.29.0.101\n"
        ),
        "{t}"
    );
    assert!(
        t.contains("Labels:         app=web\n                pod-template-hash=abc\n"),
        "{t}"
    );
    assert!(t.contains("Controlled By:  ReplicaSet/web-abc\n"), "{t}");
    assert!(t.contains("Containers:\n  web:\n    Container ID:  <none>\n    Image:         berth/busybox:latest\n    Port:          8080/TCP\n    Command:\n      sh\n"), "{t}");
    assert!(t.contains("    State:          Running\n      Started:      2024-01-01T00:00:00Z\n    Ready:          true\n"), "{t}");
    assert!(t.contains("Conditions:\n  Type           Status\n  ----           ------\n  Ready          True\n"), "{t}");
}

#[test]
fn deployment_summary_splits_replica_sets() {
    let d = json!({"metadata":{"name":"web","namespace":"default","uid":"u","annotations":{"deployment.kubernetes.io/revision":"2"}},
            "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"b"}]}}},
            "status":{"replicas":3,"updatedReplicas":3,"availableReplicas":2,"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}});
    let rs = |n: &str, rev: &str, r: i64| json!({"metadata":{"name":n,"annotations":{"deployment.kubernetes.io/revision":rev}},"spec":{"replicas":r},"status":{"replicas":r}});
    let t = describe_deployment(&d, &[rs("web-1", "1", 0), rs("web-2", "2", 3)]);
    assert!(t.contains("Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable\n"), "{t}");
    assert!(
        t.contains("NewReplicaSet:   web-2 (3/3 replicas created)\n"),
        "{t}"
    );
    assert!(t.contains("OldReplicaSets:  <none>\n"), "{t}");
    assert!(
        t.contains("  Available      True    MinimumReplicasAvailable\n"),
        "{t}"
    );
    assert!(
        t.contains("  Containers:\n   web:\n    Image:        b\n"),
        "{t}"
    );
}

#[test]
fn daemon_set_summary_counts_nodes_and_pods() {
    let ds = json!({"metadata":{"name":"agent","namespace":"demo","labels":{"app":"agent"}},
            "spec":{"selector":{"matchLabels":{"app":"agent"}},
                "template":{"metadata":{"labels":{"app":"agent"}},"spec":{"nodeSelector":{"disk":"ssd"},"containers":[{"name":"agent","image":"b"}]}}},
            "status":{"desiredNumberScheduled":3,"currentNumberScheduled":3,"numberMisscheduled":0,"numberReady":2,
                "updatedNumberScheduled":3,"numberAvailable":2}});
    let pod = |phase: &str| json!({"status":{"phase":phase}});
    let t = describe_daemon_set(&ds, &[pod("Running"), pod("Running"), pod("Pending")]);
    assert!(
            t.starts_with("Name:           agent\nNamespace:      demo\nSelector:       app=agent\nNode-Selector:  disk=ssd\nLabels:         app=agent\nAnnotations:    <none>\n"),
            "{t}"
        );
    assert!(
            t.contains("Desired Number of Nodes Scheduled: 3\nCurrent Number of Nodes Scheduled: 3\nNumber of Nodes Scheduled with Up-to-date Pods: 3\nNumber of Nodes Scheduled with Available Pods: 2\nNumber of Nodes Misscheduled: 0\nPods Status:  2 Running / 1 Waiting / 0 Succeeded / 0 Failed\nPod Template:\n  Labels:  app=agent\n"),
            "{t}"
        );
    assert!(
        t.contains("  Containers:\n   agent:\n    Image:        b\n"),
        "{t}"
    );
}

#[test]
fn service_summary_lists_endpoints() {
    let svc = json!({"metadata":{"name":"web","namespace":"default"},"spec":{"type":"NodePort","clusterIP":"10.96.0.20","selector":{"app":"web"},
            "ports":[{"port":80,"targetPort":8080,"nodePort":30080,"protocol":"TCP"}]}});
    let ep = json!({"subsets":[{"addresses":[{"ip":"10.244.1.5"},{"ip":"10.244.2.7"}],"ports":[{"port":8080}]}]});
    let t = describe_service(&svc, Some(&ep));
    assert!(
        t.contains("NodePort:           <unset>  30080/TCP\n"),
        "{t}"
    );
    assert!(
        t.contains("Endpoints:          10.244.1.5:8080,10.244.2.7:8080\n"),
        "{t}"
    );
}

#[test]
fn events_table_and_none() {
    assert_eq!(events_section(&[], 0), "Events:  <none>\n");
    let now = 1_704_067_200 + 40;
    let ev = json!({"type":"Normal","reason":"Scheduled","message":"Successfully assigned default/web-1 to a1",
            "source":{"component":"default-scheduler"},"lastTimestamp":"2024-01-01T00:00:30Z","firstTimestamp":"2024-01-01T00:00:30Z","count":1});
    assert_eq!(
            events_section(&[ev], now),
            "Events:\n  Type    Reason     Age   From               Message\n  ----    ------     ----  ----               -------\n  Normal  Scheduled  10s   default-scheduler  Successfully assigned default/web-1 to a1\n"
        );
}

#[test]
fn hpa_summary_follows_kubectl() {
    let h = json!({"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler",
        "metadata":{"name":"web","namespace":"default","creationTimestamp":"2024-01-01T00:00:00Z"},
        "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},
            "minReplicas":1,"maxReplicas":6,
            "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}},
                       {"type":"Resource","resource":{"name":"memory","target":{"type":"AverageValue","averageValue":"100Mi"}}}],
            "behavior":{"scaleDown":{"stabilizationWindowSeconds":15,"selectPolicy":"Max",
                "policies":[{"type":"Percent","value":100,"periodSeconds":15}]}}},
        "status":{"currentReplicas":1,"desiredReplicas":4,
            "currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageUtilization":45,"averageValue":"45m"}}}],
            "conditions":[{"type":"AbleToScale","status":"True","reason":"SucceededRescale","message":"the HPA controller was able to update the target scale to 4"}]}});
    let t = describe_hpa(&h);
    assert!(t.starts_with("Name:"), "{t}");
    assert!(t.contains("Reference:  "), "{t}");
    assert!(t.contains(" Deployment/web\n"), "{t}");
    let metric = t
        .lines()
        .find(|l| l.starts_with("  resource cpu on pods"))
        .unwrap();
    assert_eq!(
        metric.split(":  ").map(str::trim).collect::<Vec<_>>(),
        [
            "resource cpu on pods  (as a percentage of request)",
            "45% (45m) / 50%"
        ]
    );
    assert!(t.contains("  resource memory on pods:"), "{t}");
    assert!(t.contains("<unknown> / 100Mi\n"), "{t}");
    assert!(t.contains("Behavior:\n  Scale Down:\n    Stabilization Window: 15 seconds\n    Select Policy: Max\n    Policies:\n      - Type: Percent  Value: 100  Period: 15 seconds\n"), "{t}");
    // The Behavior lines end the tabwriter's block, so this line aligns on its own, as in kubectl.
    assert!(
        t.contains("Deployment pods:       1 current / 4 desired\n"),
        "{t}"
    );
    assert!(t.contains("  Type         Status  Reason            Message\n  ----         ------  ------            -------\n  AbleToScale  True    SucceededRescale  the HPA controller was able to update the target scale to 4\n"), "{t}");
    let v1 = json!({"metadata":{"name":"old","namespace":"default"},
        "spec":{"scaleTargetRef":{"kind":"ReplicaSet","name":"rs"},"maxReplicas":3,"targetCPUUtilizationPercentage":80},
        "status":{"currentReplicas":2,"desiredReplicas":2}});
    let t = describe_hpa(&v1);
    assert!(t.contains("(as a percentage of request):"), "{t}");
    assert!(t.contains("<unknown> / 80%\n"), "{t}");
    assert!(t.contains("<unset>\n"), "{t}");
    assert!(!t.contains("Behavior"), "{t}");
}
