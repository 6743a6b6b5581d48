//! `image load FILE`: send an image tar (OCI layout or `docker save`) to every node agent's
//! `POST http://{nodeIP}:10250/images/load`, like `kind load image-archive`.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::rest;

/// The address agents are reached at: the `InternalIP` of the Node, else its first address.
pub fn node_ip(node: &Value) -> Option<String> {
    let addrs = node["status"]["addresses"].as_array()?;
    addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addrs.first())
        .and_then(|a| a["address"].as_str())
        .map(str::to_string)
}

/// The agent URL for a node address (IPv6 in brackets).
pub fn load_url(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]:{port}/images/load")
    } else {
        format!("http://{ip}:{port}/images/load")
    }
}

/// Posts `data` to one agent; returns the agent's answer.
pub async fn post_image(url: &str, data: Bytes) -> Result<String> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/x-tar")
        .body(Full::new(data))
        .context("failed to build request")?;
    let resp = tokio::time::timeout(Duration::from_secs(300), client.request(req))
        .await
        .context("timed out")?
        .with_context(|| format!("failed to reach {url}"))?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    if !status.is_success() {
        bail!("{url} answered {status}: {text}");
    }
    Ok(text)
}

/// `image load FILE [--nodes a,b]`: loads onto every (or the named) node; reports each.
pub async fn load(
    session: &Session,
    file: &str,
    only: &[String],
    port: u16,
    out: &mut dyn Write,
) -> Result<()> {
    let data = Bytes::from(std::fs::read(file).with_context(|| format!("failed to read {file}"))?);
    let nodes = rest::get(&session.client, "/api/v1/nodes").await?;
    let nodes = nodes["items"].as_array().cloned().unwrap_or_default();
    let mut targets = Vec::new();
    for n in &nodes {
        let name = n["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        match node_ip(n) {
            Some(ip) => targets.push((name, ip)),
            None => eprintln!("warning: node {name} reports no address, skipped"),
        }
    }
    if targets.is_empty() {
        bail!("no nodes to load the image onto");
    }
    let mut failed = 0;
    for (name, ip) in &targets {
        match post_image(&load_url(ip, port), data.clone()).await {
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
        bail!("image load failed on {failed} of {} nodes", targets.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_addresses() {
        let n = json!({"status":{"addresses":[{"type":"Hostname","address":"a1"},{"type":"InternalIP","address":"172.29.0.101"}]}});
        assert_eq!(node_ip(&n).as_deref(), Some("172.29.0.101"));
        assert_eq!(node_ip(&json!({"status":{}})), None);
        assert_eq!(
            load_url("172.29.0.101", 10250),
            "http://172.29.0.101:10250/images/load"
        );
        assert_eq!(
            load_url("fd00::1", 10250),
            "http://[fd00::1]:10250/images/load"
        );
    }

    #[tokio::test]
    async fn posts_the_tar_to_each_agent() {
        use std::sync::{Arc, Mutex};
        let got: Arc<Mutex<Vec<usize>>> = Arc::default();
        let g = got.clone();
        let app = axum::Router::new().route(
            "/images/load",
            axum::routing::post(move |body: axum::body::Bytes| {
                let g = g.clone();
                async move {
                    g.lock().unwrap().push(body.len());
                    "loaded berth/busybox:latest"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let answer = post_image(
            &load_url("127.0.0.1", port),
            Bytes::from_static(b"tar-bytes"),
        )
        .await
        .unwrap();
        assert_eq!(answer, "loaded berth/busybox:latest");
        assert_eq!(*got.lock().unwrap(), vec![9]);
    }
}
