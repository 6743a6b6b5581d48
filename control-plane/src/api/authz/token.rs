//! `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: an `authentication.k8s.io/v1
//! TokenRequest` answered with a signed ServiceAccount token (`kubectl create token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::api::meta::rfc3339;
use crate::api::status::{ApiError, Result};

/// Issuer of ServiceAccount tokens, and the audience when a request names none.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Lifetime of a token when the request gives none (1 h).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a request may ask for (10 min).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a request may ask for (2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError {
        details: Some(json!({
            "name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        })),
        ..ApiError::new(
            422,
            "Invalid",
            format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: {field}: {message}"),
        )
    }
}

/// The validated spec of a request for ServiceAccount `name`: audiences (defaulted to
/// [`ISSUER`]) and lifetime in seconds.
///
/// # Errors
/// 422 with kube-apiserver's messages for a lifetime under 10 minutes or over 2^32 seconds.
pub fn spec(name: &str, request: &Value) -> Result<(Vec<String>, i64)> {
    let audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let audiences = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences
    };
    let seconds = match request.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(
                name,
                "spec.expirationSeconds",
                format!("Invalid value: {v}: must be an integer"),
            )
        })?,
    };
    if seconds < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            format!(
                "Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    Ok((audiences, seconds))
}

/// The claims of a token for ServiceAccount `sa` issued at `now` to `audiences` for `seconds`.
pub fn claims(
    sa: &Value,
    audiences: Vec<String>,
    seconds: i64,
    now: SystemTime,
) -> pki::ServiceAccountClaims {
    let meta = |f: &str| {
        sa.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    pki::ServiceAccountClaims {
        iss: ISSUER.into(),
        sub: super::service_account_user(&meta("namespace"), &meta("name")),
        aud: audiences,
        iat,
        exp: iat + seconds,
        uid: meta("uid"),
    }
}

/// Answers a TokenRequest for the stored ServiceAccount `sa` at `now`, signing with `key` (`None`
/// when the cluster has no PKI: 503).
///
/// # Errors
/// 422 for an invalid spec; 503 without a signing key.
pub fn answer(
    key: Option<&pki::SigningKey>,
    sa: &Value,
    request: &Value,
    now: SystemTime,
) -> Result<Value> {
    let name = sa
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let namespace = sa
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (audiences, seconds) = spec(name, request)?;
    let Some(key) = key else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "token signing is not configured on this server",
        ));
    };
    let c = claims(sa, audiences.clone(), seconds, now);
    let token = key.sign(&c);
    let expires = UNIX_EPOCH + Duration::from_secs(c.exp.max(0) as u64);
    let mut spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(seconds);
    if spec.get("boundObjectRef").is_none() {
        spec["boundObjectRef"] = Value::Null;
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(now)},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
    }))
}
