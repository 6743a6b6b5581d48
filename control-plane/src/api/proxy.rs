//! `pods/log`, `pods/exec` and `nodes/proxy` (image load): proxied to the node agent of the pod's
//! node. Logs stream through as chunked text; exec forwards the WebSocket upgrade and then copies bytes
//! both ways; an image tar streams through to the agent's `/images/load`.
//! How the agent is reached (address, TLS) is [`crate::kubelet_client`]'s.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{header, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::route::Query;
use super::state::ApiState;
use super::status::{ApiError, Result};
use crate::store::{self, Consistency};

/// The container a request names, or the pod's only container.
fn container<'a>(pod: &'a Value, asked: Option<&'a str>) -> Result<&'a str> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name")?.as_str()).collect())
        .unwrap_or_default();
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match asked {
        Some(c) if !c.is_empty() => {
            let init: Vec<&str> = pod
                .pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter_map(|c| c.get("name")?.as_str()).collect())
                .unwrap_or_default();
            if names.contains(&c) || init.contains(&c) {
                Ok(c)
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {pod_name}"
                )))
            }
        }
        _ if names.len() == 1 => Ok(names[0]),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// `host:port` of the agent on the pod's node: the node's InternalIP and its advertised daemon port.
async fn agent_address(state: &ApiState, pod: &Value, container: &str) -> Result<String> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
            ))
        })?;
    let node_obj = state
        .store
        .get(&store::key("", "nodes", "", node), Consistency::Local)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(|| ApiError::bad_request(format!("node {node} of pod {pod_name} is gone")))?;
    node_address(state, &node_obj.value)
}

/// `host:port` of a Node's agent.
fn node_address(state: &ApiState, node_obj: &Value) -> Result<String> {
    state
        .config
        .kubelet_client()
        .node_address(node_obj)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn unreachable_agent(addr: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        503,
        "ServiceUnavailable",
        format!("error trying to reach the node agent at {addr}: {e}"),
    )
}

/// Sends one HTTP/1.1 request to the agent at `addr` on a fresh connection.
async fn send(
    state: &ApiState,
    addr: &str,
    req: Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>> {
    state
        .config
        .kubelet_client()
        .send(addr, req)
        .await
        .map_err(|e| unreachable_agent(addr, e))
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn names(pod: &Value) -> (&str, &str) {
    (
        pod.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        pod.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// `GET pods/{name}/log`: streams `/containerLogs/{ns}/{pod}/{container}` from the agent.
///
/// # Errors
/// BadRequest when the pod is not on a node or the container is ambiguous; ServiceUnavailable when
/// the agent cannot be reached.
pub async fn logs(state: &Arc<ApiState>, pod: &Value, query: &Query) -> Result<Response> {
    let c = container(pod, query.get("container"))?;
    let addr = agent_address(state, pod, c).await?;
    let (ns, name) = names(pod);
    let mut params = Vec::new();
    for k in [
        "follow",
        "tailLines",
        "previous",
        "timestamps",
        "sinceSeconds",
        "limitBytes",
    ] {
        if let Some(v) = query.non_empty(k) {
            params.push(format!("{k}={}", encode_component(v)));
        }
    }
    let uri = format!(
        "/containerLogs/{}/{}/{}?{}",
        encode_component(ns),
        encode_component(name),
        encode_component(c),
        params.join("&")
    );
    let req = Request::get(&uri)
        .header(header::HOST, &addr)
        .body(Body::empty())
        .map_err(ApiError::internal)?;
    let resp = send(state, &addr, req).await?;
    let (parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&bytes).trim().to_string();
        let code = parts.status.as_u16();
        let reason = if code == 404 {
            "NotFound"
        } else {
            "BadRequest"
        };
        return Err(ApiError::new(
            if code == 404 { 404 } else { 400 },
            reason,
            msg,
        ));
    }
    // A followed log never ends by itself; shutdown must end it, or graceful shutdown would wait.
    let shutdown = state.shutdown.clone().cancelled_owned();
    let frames = http_body_util::BodyStream::new(body)
        .filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok::<_, std::io::Error>),
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        })
        .take_until(shutdown);
    let mut out = Response::new(Body::from_stream(frames));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// `pods/{name}/exec`: forwards the upgrade request to the agent's `/exec/{ns}/{pod}/{container}`
/// and, once the agent switched protocols, copies raw bytes both ways.
///
/// # Errors
/// BadRequest for a request that is not an upgrade, or when the agent refuses it.
pub async fn exec(state: &Arc<ApiState>, pod: &Value, mut req: Request<Body>) -> Result<Response> {
    let query = Query::parse(req.uri().query());
    let c = container(pod, query.get("container"))?;
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        // SPDY is not offered: kubectl speaks WebSocket (v5.channel.k8s.io) first.
        return Err(ApiError::bad_request(
            "exec requires a WebSocket upgrade (v5.channel.k8s.io)",
        ));
    }
    let addr = agent_address(state, pod, c).await?;
    let (ns, name) = names(pod);
    let path = format!(
        "/exec/{}/{}/{}?{}",
        encode_component(ns),
        encode_component(name),
        encode_component(c),
        req.uri().query().unwrap_or("")
    );
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in req.headers() {
        let forward = matches!(
            k.as_str(),
            "upgrade"
                | "connection"
                | "sec-websocket-key"
                | "sec-websocket-version"
                | "sec-websocket-protocol"
                | "sec-websocket-extensions"
                | "user-agent"
        );
        if forward {
            if let Ok(v) = v.to_str() {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
    }
    head.push_str("\r\n");
    let unreachable = |e: std::io::Error| unreachable_agent(&addr, e);
    let mut agent = state
        .config
        .kubelet_client()
        .dial(&addr)
        .await
        .map_err(unreachable)?;
    agent
        .write_all(head.as_bytes())
        .await
        .map_err(unreachable)?;
    // Read the agent's response head; anything after it already belongs to the upgraded stream.
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = agent.read(&mut chunk).await.map_err(unreachable)?;
        if n == 0 {
            return Err(ApiError::bad_request(
                "the node agent closed the exec connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(ApiError::bad_request(
                "the node agent sent an oversized response head",
            ));
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..end]).to_string();
    let leftover = buf[end..].to_vec();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    if code != 101 {
        let body = String::from_utf8_lossy(&leftover).trim().to_string();
        return Err(ApiError::bad_request(format!(
            "the node agent refused exec ({status_line}): {body}"
        )));
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for l in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            ) {
                resp.headers_mut().append(k, v);
            }
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(upgraded);
        if !leftover.is_empty() && client.write_all(&leftover).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut agent) => {}
            _ = shutdown.cancelled() => {}
        }
    });
    Ok(resp)
}

/// Largest image tar `nodes/{node}/proxy/images/load` passes on.
pub const MAX_IMAGE_BYTES: u64 = 8 << 30;

/// `nodes/{name}/proxy/...`, Kubernetes' node proxy, for what berth's agents serve the API server:
/// `POST images/load` (an image tar, streamed through, at most [`MAX_IMAGE_BYTES`]) and `GET images`.
///
/// # Errors
/// NotFound for other paths; 413 for a larger body; ServiceUnavailable when the agent cannot be
/// reached; the agent's refusal as BadRequest.
pub async fn node_proxy(
    state: &Arc<ApiState>,
    node: &Value,
    req: Request<Body>,
) -> Result<Response> {
    let path = req.uri().path();
    let rest = path
        .split_once("/proxy/")
        .map(|(_, r)| r.trim_end_matches('/'))
        .unwrap_or("");
    let method = req.method().clone();
    let agent_path = match (&method, rest) {
        (&http::Method::POST, "images/load") => "/images/load",
        (&http::Method::GET, "images") => "/images",
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "the node proxy serves POST images/load and GET images, not {method} {rest:?}"
                ),
            ))
        }
    };
    let too_large = || {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("image tar larger than {MAX_IMAGE_BYTES} bytes"),
        )
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > MAX_IMAGE_BYTES) {
        return Err(too_large());
    }
    let addr = node_address(state, node)?;
    let mut out = Request::builder()
        .method(method)
        .uri(agent_path)
        .header(header::HOST, &addr);
    for h in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(v) = req.headers().get(&h) {
            out = out.header(h, v);
        }
    }
    // A chunked upload is cut off at the bound (the agent then sees a failed body).
    let body = Body::new(http_body_util::Limited::new(
        req.into_body(),
        MAX_IMAGE_BYTES as usize,
    ));
    let resp = send(state, &addr, out.body(body).map_err(ApiError::internal)?).await?;
    let (parts, body) = resp.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| unreachable_agent(&addr, e))?;
    if !parts.status.is_success() {
        let msg = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(ApiError::bad_request(format!(
            "the node agent at {addr} answered {}: {msg}",
            parts.status
        )));
    }
    let mut out = Response::new(Body::from(bytes));
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
