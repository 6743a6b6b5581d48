//! `/ui`: the web view's static assets (crate `ui`), public like kube-dashboard's login page because
//! they hold no data; everything the page shows it reads through the authenticated API.

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::status::{ApiError, Result};

/// Only files from this origin, and no inline script or style: a response injected into the page
/// (an object name, an event message) cannot run. `frame-ancestors 'none'` stops clickjacking of
/// the action buttons.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Serves `/ui` (redirected to `/ui/`, so the page's relative URLs resolve below it) and
/// `/ui/{path}`. `raw_path` is the request path as sent, `asset` the part below `/ui/`.
///
/// # Errors
/// 404 for an unknown asset, 405 for anything but GET and HEAD.
pub fn serve(
    method: &Method,
    raw_path: &str,
    asset: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed(method.as_str(), None));
    }
    if raw_path == "/ui" {
        let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
        return Ok(r);
    }
    let found = ui::asset(asset).ok_or_else(ApiError::no_route)?;
    // The bytes change only with the binary: an ETag lets a reload after an upgrade fetch the new
    // page while every other reload is a 304 (`no-cache` = revalidate, not "do not store").
    let etag = format!("\"{:016x}\"", apimachinery::hash::fnv1a_64(found.body));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(found.body))
    };
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_TYPE, found.content_type);
    set(h, header::CACHE_CONTROL, "no-cache");
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}
