//! The verbs against the in-process fake API (`crate::fake_api`).

use serde_json::json;

use crate::fake_api::Fake;
use crate::kubectl::delete::{self, DeleteOptions};
use crate::kubectl::get::{self, GetRequest, Output};
use crate::kubectl::{apply, scale};
use crate::manifest::parse_documents;
use crate::resources::Catalog;

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec: {replicas: 3}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {type: NodePort}
";

async fn setup() -> (Fake, crate::kubeconfig::Session, Catalog) {
    let f = Fake::start().await;
    let s = f.session().await;
    let c = Catalog::discover(&s.client).await.unwrap();
    (f, s, c)
}

async fn apply_all(s: &crate::kubeconfig::Session, c: &Catalog, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for d in parse_documents(text, "web.yaml").unwrap() {
        out.push(apply::apply_one(s, c, &d, false, false).await.unwrap());
    }
    out
}

#[tokio::test]
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
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 5);
    assert!(f.log().iter().any(|l| l.contains("fieldManager=berthctl")));
}

#[tokio::test]
async fn get_prints_the_server_table() {
    let (f, s, c) = setup().await;
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"default","labels":{"app":"web"}},"spec":{"nodeName":"a1"}}));
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-1","namespace":"default","labels":{"app":"db"}},"spec":{"nodeName":"a2"}}));
    f.put(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"other","namespace":"kube-system"},"spec":{}}));
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
        "NAME    READY\ndb-1    1/1\nweb-1   1/1\n"
    );
    assert_eq!(
        run(GetRequest {
            output: Output::Wide,
            selector: Some("app=web".into()),
            ..req(&["pods"])
        })
        .await,
        "NAME    READY   NODE\nweb-1   1/1     a1\n"
    );
    assert_eq!(
        run(GetRequest { all_namespaces: true, ..req(&["po"]) }).await,
        "NAMESPACE     NAME    READY\ndefault       db-1    1/1\ndefault       web-1   1/1\nkube-system   other   1/1\n"
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
    let err = get::get(&s, &c, &req(&["deploy", "nope"]), &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        crate::errors::render(&err, None),
        "Error from server (NotFound): deployments.apps \"nope\" not found"
    );
}

#[tokio::test]
async fn delete_and_scale() {
    let (f, s, c) = setup().await;
    apply_all(&s, &c, WEB).await;
    assert_eq!(
        scale::scale(&s, &c, "deploy", "web", 7).await.unwrap(),
        "deployment.apps/web scaled"
    );
    let stored = f
        .object("/apis/apps/v1/namespaces/default/deployments/web")
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
