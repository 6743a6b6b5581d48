//! `image load FILE`: send an image tar (OCI layout or `docker save`) to every node through the API
//! server's node proxy, `POST /api/v1/nodes/{node}/proxy/images/load`, like `kind load image-archive`.
//! The API server forwards it to the node's agent over mutual TLS; agents accept no one else.

use std::io::Write;

use anyhow::{bail, Context, Result};
use kube::Client;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::rest;

/// Largest image tar sent (the API server's bound on the node proxy too).
pub const MAX_IMAGE_BYTES: u64 = 8 << 30;

/// The API path that loads an image onto `node`.
pub fn load_path(node: &str) -> String {
    format!("/api/v1/nodes/{}/proxy/images/load", rest::encode(node))
}

/// Posts `data` to one node through the API server; returns the agent's answer.
pub async fn post_image(client: &Client, node: &str, data: Vec<u8>) -> Result<String> {
    let req = http::Request::post(load_path(node))
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .header(http::header::ACCEPT, "application/json")
        .body(data)
        .context("failed to build request")?;
    let text = client
        .request_text(req)
        .await
        .with_context(|| format!("failed to load the image onto node {node:?}"))?;
    Ok(text.trim().to_string())
}

/// `image load FILE [--nodes a,b]`: loads onto every (or the named) node; reports each.
pub async fn load(
    session: &Session,
    file: &str,
    only: &[String],
    out: &mut dyn Write,
) -> Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("failed to read {file}"))?
        .len();
    if size > MAX_IMAGE_BYTES {
        bail!("{file} is {size} bytes; image load takes at most {MAX_IMAGE_BYTES}");
    }
    let data = std::fs::read(file).with_context(|| format!("failed to read {file}"))?;
    let nodes = rest::get(&session.client, "/api/v1/nodes").await?;
    let nodes = nodes["items"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = nodes
        .iter()
        .filter_map(|n: &Value| n["metadata"]["name"].as_str().map(str::to_string))
        .filter(|name| only.is_empty() || only.contains(name))
        .collect();
    for missing in only.iter().filter(|n| !names.contains(n)) {
        eprintln!("warning: node {missing:?} not found, skipped");
    }
    if names.is_empty() {
        bail!("no nodes to load the image onto");
    }
    let mut failed = 0;
    for name in &names {
        match post_image(&session.client, name, data.clone()).await {
            Ok(answer) => {
                let detail = if answer.is_empty() {
                    String::new()
                } else {
                    format!(": {answer}")
                };
                writeln!(out, "image {file:?} loaded on node {name:?}{detail}")?;
            }
            Err(e) => {
                eprintln!("error: loading {file:?} on node {name:?}: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("image load failed on {failed} of {} nodes", names.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_goes_through_the_node_proxy() {
        assert_eq!(load_path("a1"), "/api/v1/nodes/a1/proxy/images/load");
        assert_eq!(load_path("a b"), "/api/v1/nodes/a%20b/proxy/images/load");
    }

    #[tokio::test]
    async fn posts_the_tar_through_the_api_server() {
        use std::sync::{Arc, Mutex};
        let got: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/api/v1/nodes/{node}/proxy/images/load",
            axum::routing::post(
                move |axum::extract::Path(node): axum::extract::Path<String>,
                      body: axum::body::Bytes| {
                    let g = g.clone();
                    async move {
                        g.lock().unwrap().push((node, body.len()));
                        r#"{"images":["berth/busybox:latest"]}"#
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let answer = post_image(&client, "n1", b"tar-bytes".to_vec())
            .await
            .unwrap();
        assert_eq!(answer, r#"{"images":["berth/busybox:latest"]}"#);
        assert_eq!(*got.lock().unwrap(), vec![("n1".to_string(), 9)]);
    }
}
