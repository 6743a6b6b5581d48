//! Request bodies: the size cap, and decoding an object by content type (JSON, YAML, protobuf).

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;

use super::protobuf;
use super::status::{ApiError, Result};

/// Largest request body accepted (as the Kubernetes API server: 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Reads a request body, refusing more than [`MAX_BODY`] bytes.
///
/// # Errors
/// 413 when the body is too large; 400 when it cannot be read.
pub async fn read_body(body: Body) -> Result<Bytes> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

/// The media type of a `Content-Type` header, lower-cased, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body by content type: JSON (also when no type is given, as the Python client
/// sends), YAML, or Kubernetes protobuf.
///
/// # Errors
/// 400 for a malformed body, 415 for an unknown content type.
pub fn decode_object(content_type: &str, body: &[u8]) -> Result<Value> {
    let value = match media_type(content_type).as_str() {
        "" | "application/json" | "*/*" | "text/plain" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf: {e}")))?,
        _ => return Err(ApiError::unsupported_media_type(content_type)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_by_content_type() {
        assert!(decode_object("", b"{\"a\":1}").is_ok());
        assert!(decode_object("application/json; charset=utf-8", b"{}").is_ok());
        assert_eq!(
            decode_object("application/json", b"{").unwrap_err().code,
            400
        );
        assert_eq!(
            decode_object("application/xml", b"<a/>").unwrap_err().code,
            415
        );
        assert_eq!(
            decode_object("application/yaml", b"a: 1\n").unwrap()["a"],
            1
        );
        assert_eq!(decode_object("", b"[1]").unwrap_err().code, 400);
    }
}
