//! `GET ...?watch=true`: the watch request from the query, streamed by [`crate::api::watch`].

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue};

use super::Ctx;
use crate::api::resources::ResourceInfo;
use crate::api::route::Query;
use crate::api::status::{ApiError, Result};
use crate::api::watch::{self, Render, Selectors, WatchRequest};

/// Without `timeoutSeconds` (or with 0) the real server picks 30-60 minutes; clients reconnect
/// either way.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The watch a query asks for. Pure.
///
/// # Errors
/// 400 for bad selectors or a non-numeric resourceVersion.
pub fn watch_request(
    info: &'static ResourceInfo,
    namespace: Option<&str>,
    query: &Query,
    render: Render,
) -> Result<WatchRequest> {
    let selectors = Selectors::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
    let from = match query.non_empty("resourceVersion") {
        None | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    let timeout = query
        .non_empty("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    Ok(WatchRequest {
        info,
        prefix: info.prefix(namespace),
        from,
        selectors,
        render,
        timeout,
        bookmarks: query.flag("allowWatchBookmarks"),
    })
}

/// Starts a watch stream.
///
/// # Errors
/// As [`watch_request`].
pub fn watch(ctx: &Ctx<'_>) -> Result<Response> {
    let req = watch_request(ctx.served, ctx.namespace.as_deref(), &ctx.query, ctx.render)?;
    let stream = watch::stream(ctx.state.store.clone(), req, ctx.state.shutdown.clone());
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
