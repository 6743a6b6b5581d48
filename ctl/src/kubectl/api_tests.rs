//! The verbs against the real API server (`crate::test_server`): TLS, the admin certificate, the
//! in-memory store.

use serde_json::json;

use crate::compose::{SERVICE_LABEL, STACK_LABEL};
use crate::kubectl::delete::{self, DeleteOptions};
use crate::kubectl::get::{self, GetRequest, Output};
use crate::kubectl::{apply, scale};
use crate::manifest::parse_documents;
use crate::resources::Catalog;
use crate::test_server::Api;

pub(super) const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: NodePort, selector: {app: web}, ports: [{port: 80}]}
";

pub(super) async fn setup() -> (Api, crate::kubeconfig::Session, Catalog) {
    let f = Api::start().await;
    let s = f.session().await;
    let c = Catalog::discover(&s.client).await.unwrap();
    (f, s, c)
}

pub(super) async fn apply_all(
    s: &crate::kubeconfig::Session,
    c: &Catalog,
    text: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for d in parse_documents(text, "web.yaml").unwrap() {
        out.push(apply::apply_one(s, c, &d, false, false).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_created_unchanged_configured() {
    let (f, s, c) = setup().await;
    assert_eq!(
        apply_all(&s, &c, WEB).await,
        ["deployment.apps/web created", "service/web created"]
    );
    assert_eq!(
        apply_all(&s, &c, WEB).await,
        ["deployment.apps/web unchanged", "service/web unchanged"]
    );
    let changed = WEB.replace("replicas: 3", "replicas: 5");
    assert_eq!(
        apply_all(&s, &c, &changed).await,
        ["deployment.apps/web configured", "service/web unchanged"]
    );
    let stored = f
        .object("/apis/apps/v1/namespaces/default/deployments/web")
        .await
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 5);
}

/// A running pod with one ready container, as its agent would report it.
fn running_pod(name: &str, ns: &str, node: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion":"v1","kind":"Pod",
        "metadata":{"name":name,"namespace":ns,"labels":labels},
        "spec":{"nodeName":node,"containers":[{"name":"c","image":"busybox"}]},
        "status":{"phase":"Running","podIP":"10.0.0.1",
            "containerStatuses":[{"name":"c","ready":true,"restartCount":0,"state":{"running":{}}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_server_table() {
    let (f, s, c) = setup().await;
    f.put(running_pod("web-1", "default", "a1", json!({"app": "web"})))
        .await;
    f.put(running_pod("db-1", "default", "a2", json!({"app": "db"})))
        .await;
    f.put(running_pod("other", "kube-system", "a1", json!({})))
        .await;
    let run = |req: GetRequest| {
        let s = s.clone();
        let c = c.clone();
        async move {
            let mut buf = Vec::new();
            get::get(&s, &c, &req, &mut buf).await.unwrap();
            String::from_utf8(buf).unwrap()
        }
    };
    let req = |args: &[&str]| GetRequest {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(
        run(req(&["po"])).await,
        "NAME    READY   STATUS    RESTARTS   AGE\n\
         db-1    1/1     Running   0          <unknown>\n\
         web-1   1/1     Running   0          <unknown>\n"
    );
    assert_eq!(
        run(GetRequest {
            output: Output::Wide,
            selector: Some("app=web".into()),
            ..req(&["pods"])
        })
        .await,
"NAME    READY   STATUS    RESTARTS   AGE         IP         NODE   NOMINATED NODE   READINESS GATES\n\
         web-1   1/1     Running   0          <unknown>   10.0.0.1   a1     <none>           <none>\n"
    );
    assert_eq!(
        run(GetRequest {
            all_namespaces: true,
            ..req(&["po"])
        })
        .await,
        "NAMESPACE     NAME    READY   STATUS    RESTARTS   AGE\n\
         default       db-1    1/1     Running   0          <unknown>\n\
         default       web-1   1/1     Running   0          <unknown>\n\
         kube-system   other   1/1     Running   0          <unknown>\n"
    );
    assert_eq!(
        run(GetRequest {
            output: Output::Name,
            ..req(&["po", "web-1"])
        })
        .await,
        "pod/web-1\n"
    );
    let y = run(GetRequest {
        output: Output::Yaml,
        ..req(&["pod/web-1"])
    })
    .await;
    assert!(y.contains("name: web-1") && y.contains("kind: Pod"), "{y}");
    assert_eq!(
        run(GetRequest {
            output: "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"
                .parse()
                .unwrap(),
            ..req(&["po"])
        })
        .await,
        "db-1\nweb-1\n"
    );
    assert_eq!(
        run(GetRequest {
            output: "jsonpath={.metadata.name}".parse().unwrap(),
            ..req(&["po", "web-1"])
        })
        .await,
        "web-1"
    );
    assert!("jsonpath={.items[".parse::<Output>().is_err());
    let err = get::get(&s, &c, &req(&["deploy", "nope"]), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        crate::errors::render(&err, None),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_scale() {
    let (f, s, c) = setup().await;
    apply_all(&s, &c, WEB).await;
    assert_eq!(
        scale::scale(&s, &c, "deploy", "web", 7).await.unwrap(),
        "deployment.apps/web scaled"
    );
    let stored = f
        .object("/apis/apps/v1/namespaces/default/deployments/web")
        .await
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 7);
    let opts = DeleteOptions {
        ignore_not_found: false,
        wait: true,
        timeout: std::time::Duration::from_secs(5),
        grace_period: None,
    };
    let mut out = Vec::new();
    let docs = parse_documents(WEB, "web.yaml").unwrap();
    delete::delete_documents(&s, &c, &docs, &opts, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "service \"web\" deleted\ndeployment.apps \"web\" deleted\n"
    );
    let err = delete::delete_named(
        &s,
        &c,
        &["deploy".into(), "web".into()],
        &opts,
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        crate::errors::render(&err, None),
        "Error from server (NotFound): deployments.apps \"web\" not found"
    );
    let ignore = DeleteOptions {
        ignore_not_found: true,
        ..opts
    };
    delete::delete_named(&s, &c, &["deploy/web".into()], &ignore, &mut Vec::new())
        .await
        .unwrap();
}

/// A pod template's spec as the API server stores it (defaulted), so that the replica sets a
/// controller would have made from a deployment's template compare equal to it.
fn pod_spec(name: &str, image: &str) -> serde_json::Value {
    json!({"containers":[{"image":image,"imagePullPolicy":"Always","name":name,
            "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],
        "dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler",
        "securityContext":{},"terminationGracePeriodSeconds":30})
}

fn deployment(image: &str, rev: &str) -> serde_json::Value {
    json!({"apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"name":"web","namespace":"default","uid":"dep-uid","generation":2,
            "annotations":{"deployment.kubernetes.io/revision":rev}},
        "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web"}},"spec":pod_spec("web", image)}},
        "status":{"observedGeneration":2,"replicas":3,"updatedReplicas":3,"availableReplicas":3,"readyReplicas":3}})
}

fn replica_set(name: &str, image: &str, rev: &str) -> serde_json::Value {
    json!({"apiVersion":"apps/v1","kind":"ReplicaSet",
        "metadata":{"name":name,"namespace":"default","labels":{"app":"web","pod-template-hash":name},
            "annotations":{"deployment.kubernetes.io/revision":rev},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"dep-uid","controller":true}]},
        "spec":{"replicas":0,"selector":{"matchLabels":{"app":"web"}},
            "template":{"metadata":{"labels":{"app":"web","pod-template-hash":name}},"spec":pod_spec("web", image)}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_verbs() {
    use crate::kubectl::rollout::{self, Target};
    let (f, s, c) = setup().await;
    let web = Target::parse("deploy/web").unwrap();
    f.put(deployment("v2", "2")).await;
    f.put(replica_set("web-a", "v1", "1")).await;
    f.put(replica_set("web-b", "v2", "2")).await;
    let mut out = Vec::new();
    rollout::status(&s, &c, web, std::time::Duration::from_secs(5), &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "deployment \"web\" successfully rolled out\n"
    );
    assert_eq!(
        rollout::history(&s, &c, web, 0).await.unwrap(),
        "deployment.apps/web\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );
    assert_eq!(
        rollout::undo(&s, &c, web, 0).await.unwrap(),
        "deployment.apps/web rolled back"
    );
    let d = f
        .object("/apis/apps/v1/namespaces/default/deployments/web")
        .await
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "v1"
    );
    assert!(d["spec"]["template"]["metadata"]["labels"]
        .get("pod-template-hash")
        .is_none());
    assert_eq!(
        rollout::undo(&s, &c, web, 1).await.unwrap(),
        "deployment.apps/web skipped rollback (current template already matches revision 1)"
    );
    assert_eq!(
        rollout::restart(&s, &c, web).await.unwrap(),
        "deployment.apps/web restarted"
    );
    let d = f
        .object("/apis/apps/v1/namespaces/default/deployments/web")
        .await
        .unwrap();
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let err = rollout::history(&s, &c, Target::parse("nope").unwrap(), 0)
        .await
        .unwrap_err();
    assert_eq!(
        crate::errors::render(&err, None),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_includes_events_by_uid() {
    let (f, s, c) = setup().await;
    f.put(deployment("v2", "2")).await;
    f.put(replica_set("web-b", "v2", "2")).await;
    f.put(json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e1","namespace":"default"},
        "involvedObject":{"kind":"Deployment","name":"web","uid":"dep-uid"},"type":"Normal","reason":"ScalingReplicaSet",
        "message":"Scaled up replica set web-b to 3","source":{"component":"deployment-controller"},
        "lastTimestamp":"2024-01-01T00:00:00Z"})).await;
    f.put(json!({"apiVersion":"v1","kind":"Event","metadata":{"name":"e2","namespace":"default"},
        "involvedObject":{"kind":"Pod","name":"x","uid":"other"},"type":"Normal","reason":"Other","message":"not mine"})).await;
    let text = crate::kubectl::describe::describe(&s, &c, "deploy", "web")
        .await
        .unwrap();
    assert!(text.starts_with("Name:"), "{text}");
    assert!(
        text.contains("NewReplicaSet:    web-b (0/0 replicas created)\n"),
        "{text}"
    );
    assert!(
        text.contains("ScalingReplicaSet") && text.contains("deployment-controller"),
        "{text}"
    );
    assert!(!text.contains("not mine"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_cordon_and_drain() {
    use crate::kubectl::logs::{self, LogOptions};
    use crate::kubectl::node::{self, DrainOptions};
    let (f, s, c) = setup().await;
    let port = f.agent().await;
    f.put(
        json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"a1"},"spec":{},
        "status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}],
            "daemonEndpoints":{"kubeletEndpoint":{"Port":port}}}}),
    )
    .await;
    f.finish_pod_deletions();
    let owned = json!([{"kind":"ReplicaSet","name":"web-b","controller":true,"uid":"r"}]);
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","labels":{"app":"web"},"ownerReferences":owned,"uid":"p1"},
        "spec":{"nodeName":"a1","containers":[{"name":"web"}]},"status":{"phase":"Running"}})).await;
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-1","namespace":"default","ownerReferences":owned,"uid":"p2"},
        "spec":{"nodeName":"a2","containers":[{"name":"db"}]},"status":{"phase":"Running"}})).await;
    let mut out = Vec::new();
    logs::logs(&s, &c, "web-1", &LogOptions::default(), &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "log of web-1 container=web\n"
    );

    assert_eq!(
        node::set_unschedulable(&s, "a1", true).await.unwrap(),
        "node/a1 cordoned"
    );
    assert_eq!(
        node::set_unschedulable(&s, "a1", true).await.unwrap(),
        "node/a1 already cordoned"
    );
    assert_eq!(
        node::set_unschedulable(&s, "a1", false).await.unwrap(),
        "node/a1 uncordoned"
    );
    let opts = DrainOptions {
        force: false,
        ignore_daemonsets: false,
        delete_emptydir_data: false,
        timeout: std::time::Duration::from_secs(5),
    };
    let mut out = Vec::new();
    node::drain(&s, "a1", &opts, &mut out).await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "node/a1 cordoned\nevicting pod default/web-1\npod/web-1 evicted\nnode/a1 drained\n"
    );
    assert!(f
        .object("/api/v1/namespaces/default/pods/web-1")
        .await
        .is_none());
    assert!(f
        .object("/api/v1/namespaces/default/pods/db-1")
        .await
        .is_some());
    assert_eq!(
        f.object("/api/v1/nodes/a1").await.unwrap()["spec"]["unschedulable"],
        true
    );
}

fn daemon_set(name: &str, strategy: &str) -> serde_json::Value {
    json!({"apiVersion":"apps/v1","kind":"DaemonSet",
        "metadata":{"name":name,"namespace":"default","uid":format!("{name}-uid"),"generation":1},
        "spec":{"selector":{"matchLabels":{"app":name}},"updateStrategy":{"type":strategy},
            "template":{"metadata":{"labels":{"app":name}},"spec":{"containers":[{"name":name,"image":"v1"}]}}},
        "status":{"observedGeneration":1,"desiredNumberScheduled":2,"currentNumberScheduled":2,"numberMisscheduled":0,
            "numberReady":2,"updatedNumberScheduled":2,"numberAvailable":2}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_sets_get_describe_roll_out_and_delete() {
    use crate::kubectl::rollout::{self, Target};
    let (f, s, c) = setup().await;
    f.put(daemon_set("agent", "RollingUpdate")).await;
    f.put(daemon_set("legacy", "OnDelete")).await;
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"agent-x","namespace":"default","labels":{"app":"agent"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"agent","uid":"agent-uid","controller":true}]},
        "spec":{"nodeName":"a1","containers":[{"name":"agent"}]},"status":{"phase":"Running"}})).await;
    for kind in ["ds", "daemonsets", "daemonset.apps"] {
        let mut out = Vec::new();
        let req = GetRequest {
            args: vec![kind.into()],
            output: Output::Name,
            ..Default::default()
        };
        get::get(&s, &c, &req, &mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "daemonset.apps/agent\ndaemonset.apps/legacy\n",
            "{kind}"
        );
    }
    let text = crate::kubectl::describe::describe(&s, &c, "ds", "agent")
        .await
        .unwrap();
    assert!(
        text.contains("Desired Number of Nodes Scheduled: 2\n")
            && text.contains("Pods Status:  1 Running / 0 Waiting / 0 Succeeded / 0 Failed\n"),
        "{text}"
    );

    let mut out = Vec::new();
    let agent = Target::parse("ds/agent").unwrap();
    rollout::status(&s, &c, agent, std::time::Duration::from_secs(5), &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "daemon set \"agent\" successfully rolled out\n"
    );
    let legacy = Target::parse("daemonset/legacy").unwrap();
    let err = rollout::status(
        &s,
        &c,
        legacy,
        std::time::Duration::from_secs(5),
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "rollout status is only available for RollingUpdate strategy type"
    );
    assert_eq!(
        rollout::restart(&s, &c, agent).await.unwrap(),
        "daemonset.apps/agent restarted"
    );
    let ds = f
        .object("/apis/apps/v1/namespaces/default/daemonsets/agent")
        .await
        .unwrap();
    assert!(
        ds["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    for err in [
        rollout::history(&s, &c, agent, 0).await.unwrap_err(),
        rollout::undo(&s, &c, agent, 0).await.unwrap_err(),
    ] {
        let e = err.to_string();
        assert!(
            e.starts_with("rollout ") && e.contains("not available for daemon sets"),
            "{e}"
        );
    }

    let opts = DeleteOptions {
        ignore_not_found: false,
        wait: true,
        timeout: std::time::Duration::from_secs(5),
        grace_period: None,
    };
    let mut out = Vec::new();
    delete::delete_named(&s, &c, &["ds".into(), "agent".into()], &opts, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "daemonset.apps \"agent\" deleted\n"
    );
    assert!(f
        .object("/apis/apps/v1/namespaces/default/daemonsets/agent")
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_services_switch_between_replicated_and_global() {
    use crate::kubectl::stack;
    let (f, s, c) = setup().await;
    let stack_of = |yaml: &str| {
        let doc = serde_yaml::from_str(yaml).unwrap();
        crate::compose::convert(&doc, "demo", std::path::Path::new("."), &|_| None).unwrap()
    };
    let deploy = |st: crate::compose::Stack, prune: bool| {
        let (s, c) = (s.clone(), c.clone());
        async move {
            let mut out = Vec::new();
            stack::deploy(&s, &c, &st, prune, &mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        }
    };
    let ds = |name: &'static str| {
        f.object_at(format!("/apis/apps/v1/namespaces/demo/daemonsets/{name}"))
    };
    let dep = |name: &'static str| {
        f.object_at(format!("/apis/apps/v1/namespaces/demo/deployments/{name}"))
    };

    let first =
        "services:\n  agent:\n    image: a\n    deploy: {mode: global}\n  web:\n    image: w\n";
    assert_eq!(
        deploy(stack_of(first), false).await,
        "Creating namespace demo\nCreating service demo_agent\nCreating service demo_web\n"
    );
    assert!(ds("agent").await.is_some() && dep("agent").await.is_none());
    f.edit("/apis/apps/v1/namespaces/demo/daemonsets/agent", |ds| {
        ds["status"] = json!({"desiredNumberScheduled": 2, "numberReady": 2});
    })
    .await;
    let lines = stack::services(&s, "demo").await.unwrap();
    let cells: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().skip(1).take(4).collect())
        .collect();
    assert_eq!(
        cells[1..],
        [
            ["demo_agent", "global", "2/2", "a"],
            ["demo_web", "replicated", "0/1", "w"]
        ]
    );
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"agent-x","namespace":"demo",
        "labels":{STACK_LABEL:"demo",SERVICE_LABEL:"agent"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"DaemonSet","name":"agent","uid":"uid-agent","controller":true}]},
        "spec":{"nodeName":"a1","containers":[{"name":"agent","image":"a"}]},"status":{"phase":"Running"}})).await;
    let ps = stack::ps(&s, "demo").await.unwrap();
    assert!(ps.len() == 2 && ps[1].contains("demo_agent-x"), "{ps:?}");

    // Each service changes mode: the object of the old kind goes, the new one is created.
    let swapped =
        "services:\n  agent:\n    image: a\n  web:\n    image: w\n    deploy: {mode: global}\n";
    assert_eq!(
        deploy(stack_of(swapped), false).await,
        "Creating service demo_agent\nCreating service demo_web\n"
    );
    assert!(ds("agent").await.is_none() && dep("agent").await.is_some());
    assert!(ds("web").await.is_some() && dep("web").await.is_none());
    assert_eq!(
        stack::ls(&s).await.unwrap(),
        ["NAME   SERVICES", "demo   2"]
    );

    let web_only = "services:\n  web:\n    image: w\n    deploy: {mode: global}\n";
    assert_eq!(
        deploy(stack_of(web_only), true).await,
        "Updating service demo_web\nRemoving service demo_agent\n"
    );
    assert!(dep("agent").await.is_none() && ds("web").await.is_some());
    assert!(f
        .object("/api/v1/namespaces/demo/services/agent")
        .await
        .is_none());

    let mut out = Vec::new();
    assert!(stack::rm(&s, "demo", &mut out).await.unwrap());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Removing service demo_web\n"
    );
    assert!(ds("web").await.is_none());
    assert!(!stack::rm(&s, "demo", &mut Vec::new()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_lists_the_category_with_kind_prefixes() {
    let (f, s, c) = setup().await;
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default"},"spec":{}})).await;
    apply_all(&s, &c, WEB).await;
    let mut buf = Vec::new();
    let req = GetRequest {
        args: vec!["all".into()],
        ..Default::default()
    };
    get::get(&s, &c, &req, &mut buf).await.unwrap();
    let out = String::from_utf8(buf).unwrap();
    let pod = out.find("pod/web-1").expect(&out);
    let svc = out.find("service/web").expect(&out);
    let deploy = out.find("deployment.apps/web").expect(&out);
    assert!(pod < svc && svc < deploy, "kubectl's order: {out}");
    assert!(out.contains("\n\nNAME"), "one table per type: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_create_list_delete() {
    use crate::kubectl::token;
    let f = Api::start().await;
    let s = f.session().await;
    let t = token::create(
        &s,
        &token::CreateOptions {
            token: None,
            ttl: std::time::Duration::from_secs(86_400),
            usages: vec!["authentication".into()],
            description: None,
        },
    )
    .await
    .unwrap();
    let parsed = pki::Token::parse(&t).unwrap();
    let stored = f
        .object(&format!(
            "/api/v1/namespaces/kube-system/secrets/bootstrap-token-{}",
            parsed.id
        ))
        .await
        .expect("secret stored");
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token");
    let lines = token::list(&s).await.unwrap();
    assert!(lines[0].starts_with("TOKEN"), "{lines:?}");
    assert!(
        lines[1].starts_with(&t) && lines[1].contains("authentication"),
        "{lines:?}"
    );
    let out = token::delete(&s, std::slice::from_ref(&parsed.id))
        .await
        .unwrap();
    assert_eq!(out, [format!("bootstrap token \"{}\" deleted", parsed.id)]);
    assert!(token::list(&s).await.unwrap().is_empty());
}
