//! One-line error messages in kubectl's words (`Error from server (NotFound): ...`, `error: ...`).

use kube::core::Status;

/// kubectl's reason for an HTTP status code when the body was not a `Status`.
fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// kube sets this reason when the error body was not a `Status` object.
const UNPARSED: &str = "Failed to parse error data";

/// Formats an API `Status` like kubectl.
pub fn status_message(s: &Status) -> String {
    if s.code == 401 {
        return "error: You must be logged in to the server (Unauthorized)".into();
    }
    if s.reason == "Invalid" {
        if let Some(d) = &s.details {
            if !d.causes.is_empty() {
                let causes: Vec<String> = d
                    .causes
                    .iter()
                    .map(|c| {
                        if c.field.is_empty() {
                            c.message.clone()
                        } else {
                            format!("{}: {}", c.field, c.message)
                        }
                    })
                    .collect();
                let kind = if d.kind.is_empty() { "object" } else { &d.kind };
                return format!(
                    "The {kind} \"{}\" is invalid: {}",
                    d.name,
                    causes.join(", ")
                );
            }
        }
    }
    if s.reason == UNPARSED {
        let reason = reason_for_code(s.code);
        let msg = match s.code {
            404 => "the server could not find the requested resource".to_string(),
            409 => "the server reported a conflict".to_string(),
            _ if s.message.is_empty() => format!("unknown (HTTP {})", s.code),
            _ => format!(
                "an error on the server (\"{}\") has prevented the request from succeeding",
                s.message
            ),
        };
        return if reason.is_empty() {
            format!("Error from server: {msg}")
        } else {
            format!("Error from server ({reason}): {msg}")
        };
    }
    if s.reason.is_empty() {
        format!("Error from server: {}", s.message)
    } else {
        format!("Error from server ({}): {}", s.reason, s.message)
    }
}

/// The API `Status` inside an error chain, if any.
pub fn api_status(err: &anyhow::Error) -> Option<&Status> {
    err.chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(s)) => Some(s.as_ref()),
            _ => None,
        })
}

/// Whether the error is an API 404.
pub fn is_not_found(err: &anyhow::Error) -> bool {
    api_status(err).is_some_and(|s| s.code == 404)
}

/// The TLS error inside an error chain, if any. rustls errors travel inside `io::Error`s (hyper-rustls
/// wraps tokio-rustls' one again), whose `source()` skips their payload, so those are unwrapped by hand.
pub fn tls_error(err: &anyhow::Error) -> Option<&rustls::Error> {
    err.chain().find_map(|e| {
        let mut e: &(dyn std::error::Error + 'static) = e;
        loop {
            if let Some(t) = e.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
        }
    })
}

/// A TLS failure in kubectl's words (`Unable to connect to the server: ...`), with Go's phrasing for the
/// cases people meet: an unknown CA, a certificate for another name, an expired one, a server that
/// refused our client certificate, and `https://` to a plain HTTP server.
pub fn tls_message(e: &rustls::Error) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let why = match e {
        E::InvalidCertificate(c) => {
            let x509 = match c {
                // A CA of the same name (every berth cluster's is alike) fails on the signature.
                C::UnknownIssuer | C::BadSignature => {
                    "certificate signed by unknown authority".to_string()
                }
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "certificate is not valid for the server's name or address".to_string()
                }
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => {
                    "certificate has expired or is not yet valid".to_string()
                }
                other => format!("{other:?}"),
            };
            format!("tls: failed to verify certificate: x509: {x509}")
        }
        E::AlertReceived(a) => {
            let what = match a {
                A::CertificateRequired => "certificate required".to_string(),
                A::BadCertificate => "bad certificate".to_string(),
                A::UnknownCA => "unknown certificate authority".to_string(),
                A::CertificateExpired => "expired certificate".to_string(),
                A::HandshakeFailure => "handshake failure".to_string(),
                other => format!("{other:?}"),
            };
            format!("remote error: tls: {what}")
        }
        E::InvalidMessage(_) => "http: server gave HTTP response to HTTPS client".to_string(),
        other => format!("tls: {other}"),
    };
    format!("Unable to connect to the server: {why}")
}

/// Renders any error as the single line berthctl prints on stderr. `server` is the API address (for
/// connection errors).
pub fn render(err: &anyhow::Error, server: Option<&str>) -> String {
    if let Some(s) = api_status(err) {
        return status_message(s);
    }
    if let Some(e) = tls_error(err) {
        return tls_message(e);
    }
    let full = format!("{err:#}");
    if full.contains("Connection refused") || full.contains("connection refused") {
        let host = server
            .map(|s| {
                s.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .unwrap_or_else(|| "the server".into());
        return format!(
            "The connection to the server {host} was refused - did you specify the right host or port?"
        );
    }
    format!("error: {full}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: serde_json::Value) -> Status {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn not_found_like_kubectl() {
        let s = status(json!({"kind":"Status","apiVersion":"v1","status":"Failure",
            "message":"deployments.apps \"x\" not found","reason":"NotFound","code":404}));
        assert_eq!(
            status_message(&s),
            "Error from server (NotFound): deployments.apps \"x\" not found"
        );
        let e = anyhow::Error::new(kube::Error::Api(Box::new(s))).context("getting x");
        assert!(is_not_found(&e));
        assert_eq!(
            render(&e, None),
            "Error from server (NotFound): deployments.apps \"x\" not found"
        );
    }

    #[test]
    fn invalid_is_rebuilt_from_causes() {
        let s = status(
            json!({"status":"Failure","message":"x","reason":"Invalid","code":422,
            "details":{"name":"web","group":"apps","kind":"Deployment","causes":[
              {"reason":"FieldValueInvalid","message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]}}),
        );
        assert_eq!(
            status_message(&s),
            "The Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn bodies_that_are_not_status() {
        let s = Status::failure("", UNPARSED).with_code(404);
        assert_eq!(
            status_message(&s),
            "Error from server (NotFound): the server could not find the requested resource"
        );
        let s = Status::failure("oops", UNPARSED).with_code(500);
        assert_eq!(status_message(&s), "Error from server (InternalError): an error on the server (\"oops\") has prevented the request from succeeding");
        let s = Status::failure("m", "").with_code(404);
        assert_eq!(status_message(&s), "Error from server: m");
        let s = Status::failure("m", "Unauthorized").with_code(401);
        assert_eq!(
            status_message(&s),
            "error: You must be logged in to the server (Unauthorized)"
        );
    }

    #[test]
    fn tls_errors_read_like_kubectl() {
        use rustls::{AlertDescription, CertificateError};
        // As hyper hands them over: a rustls error inside an io::Error, under some context.
        let wrapped = |e: rustls::Error| {
            let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            anyhow::Error::new(std::io::Error::other(inner)).context("client error (Connect)")
        };
        assert_eq!(
            render(
                &wrapped(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )),
                None
            ),
            "Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
        assert_eq!(
            render(
                &wrapped(rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired
                )),
                None
            ),
            "Unable to connect to the server: remote error: tls: certificate required"
        );
        assert_eq!(
            render(
                &wrapped(rustls::Error::InvalidMessage(
                    rustls::InvalidMessage::InvalidContentType
                )),
                None
            ),
            "Unable to connect to the server: http: server gave HTTP response to HTTPS client"
        );
        assert!(tls_error(&anyhow::anyhow!("plain")).is_none());
    }

    #[test]
    fn forbidden_names_the_reason() {
        let s = status(json!({"kind":"Status","apiVersion":"v1","status":"Failure",
            "message":"secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"",
            "reason":"Forbidden","code":403}));
        assert_eq!(
            status_message(&s),
            "Error from server (Forbidden): secrets is forbidden: User \"bob\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn other_errors() {
        let e = anyhow::anyhow!("tcp connect error: Connection refused (os error 111)");
        assert_eq!(
            render(&e, Some("http://172.29.0.10:6443/")),
            "The connection to the server 172.29.0.10:6443 was refused - did you specify the right host or port?"
        );
        let e = anyhow::anyhow!("the server doesn't have a resource type \"foo\"");
        assert_eq!(
            render(&e, None),
            "error: the server doesn't have a resource type \"foo\""
        );
    }
}
