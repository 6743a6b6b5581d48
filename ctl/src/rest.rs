//! Thin raw-REST helpers over `kube::Client` (JSON in, JSON out), used where the typed `Api` is awkward: Tables,
//! subresources, patches with a chosen content type, and watches.

use anyhow::{Context, Result};
use futures::{Stream, StreamExt};
use http::Request;
use kube::core::WatchEvent;
use kube::Client;
use serde_json::Value;

use crate::table::{Table, TABLE_ACCEPT};

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `?k=v&...` (values encoded; empty list adds nothing).
pub fn with_query(path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{}", q.join("&"))
}

fn build(
    method: &str,
    uri: &str,
    body: Vec<u8>,
    content_type: Option<&str>,
) -> Result<Request<Vec<u8>>> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::ACCEPT, "application/json");
    if let Some(ct) = content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    b.body(body).context("failed to build request")
}

/// `GET path` as JSON.
pub async fn get(client: &Client, uri: &str) -> Result<Value> {
    Ok(client
        .request::<Value>(build("GET", uri, vec![], None)?)
        .await?)
}

/// `GET path`, `None` on 404.
pub async fn get_opt(client: &Client, uri: &str) -> Result<Option<Value>> {
    match client
        .request::<Value>(build("GET", uri, vec![], None)?)
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `GET path` as text (logs).
pub async fn get_text(client: &Client, uri: &str) -> Result<String> {
    let mut req = build("GET", uri, vec![], None)?;
    req.headers_mut()
        .insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    Ok(client.request_text(req).await?)
}

/// `GET path` streaming the body (followed logs).
pub async fn get_stream(client: &Client, uri: &str) -> Result<impl futures::AsyncBufRead + use<>> {
    let mut req = build("GET", uri, vec![], None)?;
    req.headers_mut()
        .insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    Ok(client.request_stream(req).await?)
}

/// `GET` asking for a server-side Table. A server that answers with a plain list (or one object) gets a
/// NAME/AGE table built client-side.
pub async fn get_table(client: &Client, uri: &str, now: i64) -> Result<Table> {
    let mut req = build("GET", uri, vec![], None)?;
    req.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(TABLE_ACCEPT),
    );
    let v: Value = client.request(req).await?;
    Ok(to_table(v, now))
}

/// Interprets a response as a Table, converting lists and single objects.
pub fn to_table(v: Value, now: i64) -> Table {
    if v["kind"] == "Table" {
        if let Ok(t) = serde_json::from_value::<Table>(v.clone()) {
            return t;
        }
    }
    if v["items"].is_array() {
        return crate::table::table_from_list(&v, now);
    }
    let list = serde_json::json!({"items": [v.clone()], "metadata": {"resourceVersion": v["metadata"]["resourceVersion"]}});
    crate::table::table_from_list(&list, now)
}

/// A request with a JSON body.
pub async fn send_json(
    client: &Client,
    method: &str,
    uri: &str,
    body: &Value,
    content_type: &str,
) -> Result<Value> {
    let req = build(method, uri, serde_json::to_vec(body)?, Some(content_type))?;
    Ok(client.request::<Value>(req).await?)
}

/// `PATCH` with the given patch content type.
pub async fn patch(client: &Client, uri: &str, body: &Value, content_type: &str) -> Result<Value> {
    send_json(client, "PATCH", uri, body, content_type).await
}

/// A strategic-merge patch, retried as a JSON merge patch when the server does not take strategic merge (both
/// mean the same for the map-only patches berthctl sends).
pub async fn patch_merge(client: &Client, uri: &str, body: &Value) -> Result<Value> {
    match patch(client, uri, body, "application/strategic-merge-patch+json").await {
        Err(e) if is_unsupported_media(&e) => {
            patch(client, uri, body, "application/merge-patch+json").await
        }
        r => r,
    }
}

/// Whether the server rejected the content type (415).
pub fn is_unsupported_media(e: &anyhow::Error) -> bool {
    crate::errors::api_status(e).is_some_and(|s| s.code == 415)
}

/// `POST` a JSON body.
pub async fn post(client: &Client, uri: &str, body: &Value) -> Result<Value> {
    send_json(client, "POST", uri, body, "application/json").await
}

/// `DELETE` with a `DeleteOptions` body.
pub async fn delete(client: &Client, uri: &str, body: &Value) -> Result<Value> {
    send_json(client, "DELETE", uri, body, "application/json").await
}

/// Watch `uri` (which must carry `watch=true`); `accept` picks Tables or objects.
pub async fn watch(
    client: &Client,
    uri: &str,
    accept: &str,
) -> Result<impl Stream<Item = Result<WatchEvent<Value>>> + use<>> {
    let mut req = build("GET", uri, vec![], None)?;
    req.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_str(accept).context("bad accept header")?,
    );
    let s = client.request_events::<Value>(req).await?;
    Ok(
        s.map(|r: Result<WatchEvent<Value>, kube::Error>| r.map_err(anyhow::Error::from))
            .boxed(),
    )
}

/// Seconds since the epoch (for AGE columns computed client-side).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode("app=web,tier in (a,b)"),
            "app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
        );
        assert_eq!(
            with_query(
                "/api/v1/pods",
                &[("labelSelector", "a=b".into()), ("limit", "500".into())]
            ),
            "/api/v1/pods?labelSelector=a%3Db&limit=500"
        );
        assert_eq!(
            with_query("/x?watch=true", &[("a", "b".into())]),
            "/x?watch=true&a=b"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }
}
