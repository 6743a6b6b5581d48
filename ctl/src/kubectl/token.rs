//! `token create|list|delete`: bootstrap tokens as kubeadm keeps them, Secrets
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`. An agent joins with one.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::kubeconfig::Session;
use crate::rest;

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Namespace of bootstrap-token Secrets.
pub const NAMESPACE: &str = "kube-system";
/// Name prefix of bootstrap-token Secrets.
pub const NAME_PREFIX: &str = "bootstrap-token-";

/// What `token create` makes.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The token, or `None` for a new random one.
    pub token: Option<pki::Token>,
    /// Lifetime; zero means it never expires (kubeadm's `--ttl 0`).
    pub ttl: Duration,
    /// `usage-bootstrap-<u>` entries set to `"true"` (kubeadm's `--usages`).
    pub usages: Vec<String>,
    /// Human-readable description.
    pub description: Option<String>,
}

/// The Secret that stores `token` (pure; `now` is when it is made).
pub fn bootstrap_secret(token: &pki::Token, opts: &CreateOptions, now: SystemTime) -> Value {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), b(&token.id).into());
    data.insert("token-secret".into(), b(&token.secret).into());
    for u in &opts.usages {
        data.insert(format!("usage-bootstrap-{u}"), b("true").into());
    }
    if !opts.ttl.is_zero() {
        let exp = apimachinery::time::rfc3339(now + opts.ttl);
        data.insert("expiration".into(), b(&exp).into());
    }
    if let Some(d) = &opts.description {
        data.insert("description".into(), b(d).into());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{NAME_PREFIX}{}", token.id), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    })
}

fn data_field(secret: &Value, key: &str) -> Option<String> {
    let raw = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

/// kubectl's short duration (`23h`, `59m`, `6d`), as kubeadm prints TTLs.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `token list` rows, kubeadm's columns: TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION (pure).
pub fn list_rows(secrets: &[Value], now: SystemTime) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "TOKEN".to_string(),
        "TTL".into(),
        "EXPIRES".into(),
        "USAGES".into(),
        "DESCRIPTION".into(),
    ]];
    for s in secrets {
        if s["type"] != SECRET_TYPE {
            continue;
        }
        let (Some(id), Some(secret)) = (data_field(s, "token-id"), data_field(s, "token-secret"))
        else {
            continue;
        };
        let (ttl, expires) = match data_field(s, "expiration") {
            None => ("<forever>".to_string(), "<never>".to_string()),
            Some(exp) => match apimachinery::time::parse_rfc3339(&exp) {
                Some(t) => match t.duration_since(now) {
                    Ok(left) => (short_duration(left), exp),
                    Err(_) => ("<invalid>".to_string(), exp),
                },
                None => ("<invalid>".to_string(), exp),
            },
        };
        let mut usages: Vec<String> = s["data"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.strip_prefix("usage-bootstrap-").map(str::to_string))
            .filter(|u| data_field(s, &format!("usage-bootstrap-{u}")).as_deref() == Some("true"))
            .collect();
        usages.sort();
        rows.push(vec![
            format!("{id}.{secret}"),
            ttl,
            expires,
            if usages.is_empty() {
                "<none>".into()
            } else {
                usages.join(",")
            },
            data_field(s, "description").unwrap_or_else(|| "<none>".into()),
        ]);
    }
    rows
}

fn collection() -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets")
}

/// Creates the bootstrap-token Secret and returns the token (`<id>.<secret>`).
///
/// # Errors
/// When randomness is missing or the API refuses the Secret (e.g. the token id exists: 409).
pub async fn create(s: &Session, opts: &CreateOptions) -> Result<String> {
    let token = match &opts.token {
        Some(t) => t.clone(),
        None => pki::Token::generate().context("failed to make a token")?,
    };
    let secret = bootstrap_secret(&token, opts, SystemTime::now());
    rest::post(&s.client, &collection(), &secret).await?;
    Ok(token.to_string())
}

/// The bootstrap tokens, as `token list` prints them.
///
/// # Errors
/// When the API refuses the list.
pub async fn list(s: &Session) -> Result<Vec<String>> {
    let v = rest::get(&s.client, &collection()).await?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let rows = list_rows(&items, SystemTime::now());
    if rows.len() == 1 {
        return Ok(vec![]);
    }
    Ok(crate::table::align(&rows))
}

/// Deletes the tokens named by id or by the whole token; returns kubeadm's confirmation lines.
///
/// # Errors
/// When an argument is neither, or the API refuses the delete.
pub async fn delete(s: &Session, tokens: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in tokens {
        let id = match pki::Token::parse(t) {
            Ok(tok) => tok.id,
            Err(_) if t.len() == 6 && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                t.clone()
            }
            Err(_) => anyhow::bail!(
                "given token didn't match pattern \"[a-z0-9]{{6}}\" or \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
            ),
        };
        let uri = format!("{}/{NAME_PREFIX}{id}", collection());
        rest::delete(&s.client, &uri, &json!({})).await?;
        out.push(format!("bootstrap token \"{id}\" deleted"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(ttl: Duration) -> CreateOptions {
        CreateOptions {
            token: None,
            ttl,
            usages: vec!["authentication".into()],
            description: None,
        }
    }

    #[test]
    fn secret_has_kubeadm_fields() {
        let t = pki::Token::parse("abcdef.0123456789abcdef").unwrap();
        let now = apimachinery::time::parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
        let s = bootstrap_secret(&t, &opts(Duration::from_secs(86_400)), now);
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["metadata"]["namespace"], "kube-system");
        assert_eq!(s["type"], "bootstrap.kubernetes.io/token");
        assert_eq!(data_field(&s, "token-id").as_deref(), Some("abcdef"));
        assert_eq!(
            data_field(&s, "token-secret").as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(
            data_field(&s, "usage-bootstrap-authentication").as_deref(),
            Some("true")
        );
        assert_eq!(
            data_field(&s, "expiration").as_deref(),
            Some("2025-01-02T00:00:00Z")
        );
        let forever = bootstrap_secret(&t, &opts(Duration::ZERO), now);
        assert!(forever["data"].get("expiration").is_none());
    }

    #[test]
    fn list_shows_ttl_expiry_and_usages() {
        let now = apimachinery::time::parse_rfc3339("2025-01-01T00:00:00Z").unwrap();
        let a = bootstrap_secret(
            &pki::Token::parse("aaaaaa.0123456789abcdef").unwrap(),
            &opts(Duration::from_secs(86_400)),
            now,
        );
        let b = bootstrap_secret(
            &pki::Token::parse("bbbbbb.0123456789abcdef").unwrap(),
            &CreateOptions {
                description: Some("lab agents".into()),
                usages: vec!["signing".into(), "authentication".into()],
                ..opts(Duration::ZERO)
            },
            now,
        );
        let later = now + Duration::from_secs(3600);
        let other = json!({"type": "Opaque", "data": {}});
        let rows = list_rows(&[a.clone(), b, other], later);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[1],
            [
                "aaaaaa.0123456789abcdef",
                "23h",
                "2025-01-02T00:00:00Z",
                "authentication",
                "<none>"
            ]
        );
        assert_eq!(
            rows[2],
            [
                "bbbbbb.0123456789abcdef",
                "<forever>",
                "<never>",
                "authentication,signing",
                "lab agents"
            ]
        );
        let expired = list_rows(&[a], now + Duration::from_secs(2 * 86_400));
        assert_eq!(expired[1][1], "<invalid>");
    }
}
