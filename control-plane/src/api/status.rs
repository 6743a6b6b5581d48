//! `metav1.Status` errors with the exact messages kubectl prints, and the mapping from store errors.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::resources::ResourceInfo;
use crate::store;

/// An API error, answered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason` (`NotFound`, `Conflict` …).
    pub reason: &'static str,
    /// Human-readable message kubectl prints.
    pub message: String,
    /// `details` (name, group, kind, causes, retryAfterSeconds).
    pub details: Option<Value>,
}

/// Result type of the API handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

fn details(info: &ResourceInfo, name: &str) -> Value {
    json!({"name": name, "group": info.group, "kind": info.resource})
}

impl ApiError {
    /// A bare error.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 `deployments.apps "x" not found`.
    pub fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", info.qualified()),
            )
        }
    }

    /// 404 for a path that names nothing served.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `deployments.apps "x" already exists`.
    pub fn already_exists(info: &ResourceInfo, name: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", info.qualified()),
            )
        }
    }

    /// 409 Conflict on a stale `resourceVersion`.
    pub fn conflict(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict_because(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a specific reason text.
    pub fn conflict_because(info: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(details(info, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    info.qualified()
                ),
            )
        }
    }

    /// 422 Invalid with `details.causes`; the message is rebuilt by kubectl from the causes, but we
    /// write it the way the real server does too.
    pub fn invalid(info: &ResourceInfo, name: &str, causes: &[(String, String, String)]) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|(_, field, message)| {
                if field.is_empty() {
                    message.clone()
                } else {
                    format!("{field}: {message}")
                }
            })
            .collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(reason, field, message)| json!({"reason": reason, "message": message, "field": field}))
            .collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {joined}", info.kind),
            details: Some(
                json!({"name": name, "group": info.group, "kind": info.kind, "causes": causes}),
            ),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(method: &str, info: Option<&ResourceInfo>) -> Self {
        let what = info
            .map(|i| i.qualified())
            .unwrap_or_else(|| "this resource".into());
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {what}"),
        )
    }

    /// 413 for bodies over the limit.
    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    /// 415 for a content type we cannot decode.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"),
        )
    }

    /// 500 InternalError.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// 410 Expired for a watch or continue token older than the window.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// Maps a store failure. Precondition failures are translated by the caller, which knows what
    /// they mean; reaching this with one is a conflict.
    pub fn from_store(err: store::Error) -> Self {
        match err {
            store::Error::NoLeader | store::Error::Unavailable(_) | store::Error::Dropped(_) => {
                ApiError {
                    details: Some(json!({"retryAfterSeconds": 1})),
                    ..Self::new(503, "ServiceUnavailable", format!("the server is currently unable to handle the request: {err}"))
                }
            }
            store::Error::Timeout => ApiError {
                details: Some(json!({"retryAfterSeconds": 1})),
                ..Self::new(504, "Timeout", format!("Timeout: request did not complete: {err}"))
            },
            store::Error::Gone { requested, oldest } => Self::gone(format!(
                "too old resource version: {requested} ({oldest})"
            )),
            store::Error::PreconditionFailed { .. } => Self::new(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            store::Error::Invalid(m) => Self::bad_request(m),
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = matches!(self.code, 503 | 504 | 429);
        let mut resp = json_response(code, &self.to_status());
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A JSON response with a status code.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (code, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The `Status` Success answer to a delete that removed the object at once.
pub fn success(info: &ResourceInfo, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(info, name);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::lookup;

    #[test]
    fn messages_match_kubectl() {
        let d = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            ApiError::not_found(d, "nosuch").message,
            "deployments.apps \"nosuch\" not found"
        );
        assert_eq!(
            ApiError::conflict(d, "web").message,
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let inv = ApiError::invalid(
            d,
            "web",
            &[(
                "FieldValueInvalid".into(),
                "spec.replicas".into(),
                "Invalid value: -1: must be greater than or equal to 0".into(),
            )],
        );
        assert_eq!(inv.code, 422);
        let s = inv.to_status();
        assert_eq!(s["details"]["kind"], "Deployment");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(
            s["message"],
            "Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let nf = ApiError::not_found(lookup("", "v1", "pods").unwrap(), "x").to_status();
        assert_eq!(nf["details"]["group"], "");
        assert_eq!(nf["kind"], "Status");
    }

    #[test]
    fn store_errors_map_to_retryable_codes() {
        assert_eq!(ApiError::from_store(store::Error::NoLeader).code, 503);
        assert_eq!(ApiError::from_store(store::Error::Timeout).code, 504);
        assert_eq!(
            ApiError::from_store(store::Error::Gone {
                requested: 1,
                oldest: 5
            })
            .code,
            410
        );
    }
}
