//! `GET /berth/v1/watch?resources=pods:123,nodes`: several cluster-wide watches merged into one
//! chunked stream, each line tagged with its resource. A browser holds at most six HTTP/1.1
//! connections per host, so the web view cannot keep one long-lived watch per kind.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Method, Request};
use serde_json::json;

use super::authz::{self, Attributes, Authorizer, UserInfo};
use super::resources::{self, ResourceInfo};
use super::route::Query;
use super::state::ApiState;
use super::status::{ApiError, Result};
use super::watch::{self, Render, Selectors, WatchRequest};

/// The path it is served at.
pub use super::route::MULTIWATCH_PATH as PATH;

/// Most resources one request may merge: each is a store watch and a bookmark ticker, and the
/// web view needs nine.
pub const MAX_RESOURCES: usize = 16;

/// As a plain watch without `timeoutSeconds`: clients reconnect either way.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// One resource of the request and the revision to start after.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The kind, at its stored version (the plural names are unique across groups).
    pub info: &'static ResourceInfo,
    /// Revision to start after; `None` (absent or `0`) sends the current objects as ADDED first.
    pub from: Option<u64>,
}

/// Parses `resources`: comma-separated plurals (`pods`) or qualified names (`deployments.apps`),
/// each optionally with `:revision`. Pure.
///
/// # Errors
/// 400 when it is missing or empty, names an unknown or unwatchable resource, repeats one, has
/// more than [`MAX_RESOURCES`], or a revision is not a number.
pub fn parse_resources(raw: Option<&str>) -> Result<Vec<Wanted>> {
    let raw = raw.unwrap_or("").trim();
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "resources is required: a comma-separated list such as pods,nodes:123",
        ));
    }
    let mut out: Vec<Wanted> = Vec::new();
    for part in raw.split(',').map(str::trim) {
        let (name, rv) = part.split_once(':').unwrap_or((part, ""));
        let info = resources::all()
            .find(|r| r.resource == name || r.qualified() == name)
            .ok_or_else(|| {
                ApiError::bad_request(format!("the server doesn't have a resource type {name:?}"))
            })?;
        if !info.supports("watch") {
            return Err(ApiError::bad_request(format!(
                "{} cannot be watched",
                info.qualified()
            )));
        }
        if out.iter().any(|w| w.info == info) {
            return Err(ApiError::bad_request(format!(
                "{} is named twice",
                info.qualified()
            )));
        }
        let from = match rv {
            "" | "0" => None,
            s => Some(s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version for {name}: {s}"))
            })?),
        };
        out.push(Wanted { info, from });
    }
    if out.len() > MAX_RESOURCES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_RESOURCES} resources may be watched at once, not {}",
            out.len()
        )));
    }
    Ok(out)
}

/// One event line of a watch (`{"type",...}\n`) with `"resource":"<name>"` put first, so the client
/// knows which kind's cache it belongs to, ERROR and BOOKMARK lines included. Splices rather than
/// re-parses: [`watch::stream`] yields exactly one JSON object per chunk.
pub fn tag(resource: &str, line: &[u8]) -> Bytes {
    let name = serde_json::to_string(resource).unwrap_or_else(|_| "\"\"".into());
    let rest = line.strip_prefix(b"{").unwrap_or(line);
    let mut out = Vec::with_capacity(line.len() + name.len() + 14);
    out.extend_from_slice(b"{\"resource\":");
    out.extend_from_slice(name.as_bytes());
    // An empty object (`{}`) gets no comma; the stream never sends one, but the JSON stays valid.
    if !rest.starts_with(b"}") {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// Whether `user` may list and watch `info` across all namespaces. `None` without an authorizer
/// (the plain in-process API acts as a superuser); the 403 names the first refused verb.
async fn check(
    authorizer: Option<&Authorizer>,
    user: &UserInfo,
    info: &ResourceInfo,
) -> Result<()> {
    let Some(authorizer) = authorizer else {
        return Ok(());
    };
    // As the server's own check: the superuser group skips RBAC.
    if user.groups.iter().any(|g| g == pki::GROUP_MASTERS) {
        return Ok(());
    }
    for verb in ["watch", "list"] {
        let attrs = Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: info.group.into(),
            resource: info.resource.into(),
            path: PATH.into(),
            ..Default::default()
        };
        if authorizer.decide(user, &attrs).await.is_err() {
            return Err(ApiError {
                details: Some(json!({"name": "", "group": info.group, "kind": info.resource})),
                ..ApiError::forbidden(authz::forbidden_message(user, &attrs))
            });
        }
    }
    Ok(())
}

/// Answers the request: checks every resource, then streams the merged watches. The stream ends as
/// soon as one of them ends (timeout, shutdown, an ERROR line such as 410 Gone), after its last line,
/// so the client relists and reconnects all of them from a consistent point.
///
/// # Errors
/// 405 for anything but GET; 400 for a bad `resources`; 403 naming the first resource the caller
/// may not list or watch cluster-wide.
pub async fn serve(state: &Arc<ApiState>, req: Request<Body>) -> Result<Response> {
    // Only the head: the body is not `Sync`, and this future is held across the checks.
    let req = req.into_parts().0;
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(req.method.as_str(), None));
    }
    let query = Query::parse(req.uri.query());
    let wanted = parse_resources(query.get("resources"))?;
    let user = req
        .extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::anonymous);
    let authorizer = req.extensions.get::<Arc<Authorizer>>().cloned();
    for w in &wanted {
        check(authorizer.as_deref(), &user, w.info).await?;
    }
    let timeout = query
        .non_empty("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = query.flag("allowWatchBookmarks");
    let subs = wanted.into_iter().map(|w| {
        let req = WatchRequest {
            info: w.info,
            prefix: w.info.prefix(None),
            from: w.from,
            selectors: Selectors {
                label: None,
                field: None,
            },
            render: Render::Object,
            timeout,
            bookmarks,
        };
        let name = w.info.resource;
        // `None` marks the end of one watch, which ends them all.
        watch::stream(state.store.clone(), req, state.shutdown.clone())
            .map(move |chunk: std::result::Result<Bytes, Infallible>| {
                let Ok(line) = chunk;
                Some(tag(name, &line))
            })
            .chain(futures::stream::once(async { None }))
            .boxed()
    });
    let mut merged = futures::stream::select_all(subs);
    let stream = async_stream::stream! {
        while let Some(Some(line)) = merged.next().await {
            yield Ok::<_, Infallible>(line);
        }
    };
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn names(raw: &str) -> Result<Vec<(&'static str, Option<u64>)>> {
        parse_resources(Some(raw)).map(|v| v.iter().map(|w| (w.info.resource, w.from)).collect())
    }

    #[test]
    fn resources_with_and_without_revisions() {
        assert_eq!(
            names("pods:123,nodes, deployments.apps:0,leases:").unwrap(),
            vec![
                ("pods", Some(123)),
                ("nodes", None),
                ("deployments", None),
                ("leases", None)
            ]
        );
        let info = parse_resources(Some("jobs")).unwrap()[0].info;
        assert_eq!((info.group, info.version), ("batch", "v1"));
    }

    #[test]
    fn bad_resources_are_400() {
        for bad in [
            "",
            " ",
            "pods,",
            "gizmos",
            "pods:abc",
            "pods:-1",
            "pods,pods:3",
            "selfsubjectaccessreviews",
        ] {
            let e = names(bad).unwrap_err();
            assert_eq!(e.code, 400, "{bad:?}: {}", e.message);
        }
        assert_eq!(parse_resources(None).unwrap_err().code, 400);
        assert!(names("gizmos").unwrap_err().message.contains("gizmos"));
        let all: Vec<&str> = resources::all()
            .filter(|r| r.supports("watch"))
            .map(|r| r.resource)
            .collect();
        assert!(all.len() > MAX_RESOURCES, "the cap is reachable");
        let e = names(&all.join(",")).unwrap_err();
        assert!(e.message.contains("at most"), "{}", e.message);
    }

    #[test]
    fn lines_are_tagged_with_their_resource() {
        let line = br#"{"object":{"metadata":{"name":"a"}},"type":"ADDED"}"#;
        let tagged = tag("pods", line);
        let v: Value = serde_json::from_slice(&tagged).unwrap();
        assert_eq!(v["resource"], "pods");
        assert_eq!(v["type"], "ADDED");
        assert_eq!(v["object"]["metadata"]["name"], "a");
        // The newline that ends each chunk survives, so the client still splits on it.
        let tagged = tag("nodes", b"{\"type\":\"BOOKMARK\"}\n");
        assert!(tagged.ends_with(b"}\n"));
        let v: Value = serde_json::from_slice(tagged.trim_ascii_end()).unwrap();
        assert_eq!(
            (&v["resource"], &v["type"]),
            (&json!("nodes"), &json!("BOOKMARK"))
        );
        let v: Value = serde_json::from_slice(&tag("x", b"{}")).unwrap();
        assert_eq!(v, json!({"resource": "x"}));
    }
}
