//! `autoscale`, `get|describe hpa` and `top` against the real API server (`crate::test_server`).

use serde_json::json;

use super::api_tests::{apply_all, setup, WEB};
use crate::errors::render;
use crate::kubectl::autoscale::{self, DryRun, Request};
use crate::kubectl::get::{self, GetRequest};
use crate::kubectl::{describe, top};

fn web_request() -> Request {
    Request {
        kind: "deploy".into(),
        name: "web".into(),
        min: Some(1),
        max: 4,
        cpu_percent: Some(50),
        ..Request::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscale_creates_an_hpa_that_get_and_describe_show() {
    let (f, s, c) = setup().await;
    apply_all(&s, &c, WEB).await;
    assert_eq!(
        autoscale::autoscale(&s, &c, &web_request()).await.unwrap(),
        "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    );
    let hpa = f
        .object("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web")
        .await
        .expect("stored");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    );
    assert_eq!(
        (
            hpa["spec"]["minReplicas"].clone(),
            hpa["spec"]["maxReplicas"].clone()
        ),
        (1.into(), 4.into())
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"],
        json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}})
    );
    let err = autoscale::autoscale(&s, &c, &web_request())
        .await
        .unwrap_err();
    assert_eq!(
        render(&err, None),
        "Error from server (AlreadyExists): horizontalpodautoscalers.autoscaling \"web\" already exists"
    );
    for spelling in [
        "hpa",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler.autoscaling",
    ] {
        let mut out = Vec::new();
        let req = GetRequest {
            args: vec![spelling.into()],
            ..Default::default()
        };
        get::get(&s, &c, &req, &mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("NAME "), "{spelling}: {out}");
        assert!(out.contains("Deployment/web"), "{spelling}: {out}");
    }
    let text = describe::describe(&s, &c, "hpa", "web").await.unwrap();
    assert!(text.contains("Reference:"), "{text}");
    assert!(text.contains("(as a percentage of request):"), "{text}");
    assert!(text.contains("/ 50%\n"), "{text}");
    assert!(text.contains("Max replicas:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscale_checks_the_target_before_creating() {
    let (_f, s, c) = setup().await;
    apply_all(&s, &c, WEB).await;
    let svc = Request {
        kind: "svc".into(),
        ..web_request()
    };
    let err = autoscale::autoscale(&s, &c, &svc).await.unwrap_err();
    assert_eq!(
        render(&err, None),
        "error: cannot autoscale a Service: could not find scale subresource for services in discovery information"
    );
    let missing = Request {
        name: "nope".into(),
        ..web_request()
    };
    let err = autoscale::autoscale(&s, &c, &missing).await.unwrap_err();
    assert_eq!(
        render(&err, None),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
    let bad = Request {
        min: Some(5),
        ..web_request()
    };
    let err = autoscale::autoscale(&s, &c, &bad).await.unwrap_err();
    assert_eq!(
        render(&err, None),
        "error: --max=MAXPODS must be larger or equal to --min=MINPODS, max: 4, min: 5"
    );
    // A client dry run needs no HPA kind on the server: the object is only printed.
    let dry = Request {
        name: "web".into(),
        hpa_name: Some("web-hpa".into()),
        dry_run: DryRun::Client,
        output: Some("yaml".into()),
        ..web_request()
    };
    let yaml = autoscale::autoscale(&s, &c, &dry).await.unwrap();
    let obj: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(obj["apiVersion"], "autoscaling/v2");
    assert_eq!(obj["metadata"]["name"], "web-hpa");
    assert_eq!(obj["spec"]["scaleTargetRef"]["name"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_needs_the_metrics_api() {
    let (_f, s, _c) = setup().await;
    let served = crate::rest::get_opt(&s.client, "/apis/metrics.k8s.io/v1beta1")
        .await
        .unwrap()
        .is_some();
    let nodes = top::top_nodes(&s, &top::NodeRequest::default()).await;
    let pods = top::top_pods(&s, &top::PodRequest::default()).await;
    if served {
        // With the metrics group merged: no agents report here, so there is nothing to show yet.
        assert_eq!(
            render(&nodes.unwrap_err(), None),
            "error: metrics not available yet"
        );
        assert_eq!(pods.unwrap(), None);
    } else {
        assert_eq!(
            render(&nodes.unwrap_err(), None),
            "error: Metrics API not available"
        );
        assert_eq!(
            render(&pods.unwrap_err(), None),
            "error: Metrics API not available"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_autoscaled_service_keeps_the_replicas_the_hpa_set() {
    use crate::kubectl::stack;
    let (f, s, c) = setup().await;
    let yaml = "services:\n  web:\n    image: w\n    deploy:\n      replicas: 1\n      \
                resources: {reservations: {cpus: '0.1'}}\n    x-berth-autoscale: {min: 2, max: 6, cpu: 50}\n";
    let doc = serde_yaml::from_str(yaml).unwrap();
    let st = crate::compose::convert(&doc, "demo", std::path::Path::new("."), &|_| None).unwrap();
    let dep = "/apis/apps/v1/namespaces/demo/deployments/web";
    let hpa = "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/web";
    stack::deploy(&s, &c, &st, false, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(
        f.object(dep).await.unwrap()["spec"]["replicas"],
        2,
        "starts at min"
    );
    assert_eq!(f.object(hpa).await.unwrap()["spec"]["maxReplicas"], 6);
    // The autoscaler scales out; a redeploy of the same files must not undo it.
    f.edit(dep, |d| d["spec"]["replicas"] = json!(5)).await;
    stack::deploy(&s, &c, &st, true, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(f.object(dep).await.unwrap()["spec"]["replicas"], 5);
    assert!(
        f.object(hpa).await.is_some(),
        "prune keeps what the files define"
    );
    let lines = stack::services(&s, "demo").await.unwrap();
    assert!(lines[1].contains("demo_web"), "{lines:?}");
    // Dropping the extension removes the autoscaler on the next deploy.
    let plain = yaml.replace("    x-berth-autoscale: {min: 2, max: 6, cpu: 50}\n", "");
    let doc = serde_yaml::from_str(&plain).unwrap();
    let st = crate::compose::convert(&doc, "demo", std::path::Path::new("."), &|_| None).unwrap();
    stack::deploy(&s, &c, &st, false, &mut Vec::new())
        .await
        .unwrap();
    assert!(f.object(hpa).await.is_none());
    let doc = serde_yaml::from_str(yaml).unwrap();
    let st = crate::compose::convert(&doc, "demo", std::path::Path::new("."), &|_| None).unwrap();
    stack::deploy(&s, &c, &st, false, &mut Vec::new())
        .await
        .unwrap();
    assert!(stack::rm(&s, "demo", &mut Vec::new()).await.unwrap());
    assert!(
        f.object(hpa).await.is_none(),
        "stack rm removes the autoscaler"
    );
}
