//! Authentication: who sent a request. In kube-apiserver's order: a client certificate verified by the
//! TLS layer (CN = user, O = group), then a bearer token (a ServiceAccount JWT, or a bootstrap token
//! `<id>.<secret>`). A request with none of these is anonymous, and only the health and version paths
//! take anonymous requests; a request with a bad token is refused even there, as Kubernetes does.

use std::sync::Arc;

use http::{header, HeaderMap};

use super::authz::UserInfo;
use super::status::ApiError;
use crate::security::ClusterPki;
use crate::store::{self, Consistency, ObjectStore};

/// Every authenticated user is in this group.
pub const AUTHENTICATED: &str = "system:authenticated";

/// Paths anyone may read without credentials (kube-apiserver's `system:public-info-viewer`), and
/// the web view's static assets: they hold no data, and the page must load before it can ask for a
/// token (kube-dashboard's login page is public for the same reason).
pub fn is_public_path(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    matches!(p, "/version" | "/healthz" | "/livez" | "/readyz" | "/ui")
        || ["/healthz/", "/livez/", "/readyz/", "/ui/"]
            .iter()
            .any(|pre| p.starts_with(pre))
}

/// 401 as kube-apiserver answers it.
pub fn unauthorized() -> ApiError {
    ApiError::new(401, "Unauthorized", "Unauthorized")
}

/// The user a verified client certificate names.
pub fn user_of_cert(id: &pki::Identity) -> UserInfo {
    let mut groups = id.groups.clone();
    groups.push(AUTHENTICATED.to_string());
    UserInfo {
        name: id.user.clone(),
        uid: String::new(),
        groups,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Authenticates a request: `Ok(Some(user))`, `Ok(None)` for an anonymous request (no credentials at
/// all), or 401 for credentials that do not check out.
///
/// # Errors
/// 401 for an invalid, expired or revoked token.
pub async fn authenticate(
    pki: &Arc<ClusterPki>,
    store: &dyn ObjectStore,
    cert: Option<&pki::Identity>,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    if let Some(id) = cert {
        return Ok(Some(user_of_cert(id)));
    }
    let Some(token) = bearer(headers) else {
        return Ok(None);
    };
    if let Ok(t) = pki::Token::parse(token) {
        return match crate::bootstrap::find_token(store, pki, &t.id).await {
            Some((known, _)) if known.matches(token) => Ok(Some(UserInfo {
                name: format!("system:bootstrap:{}", t.id),
                uid: String::new(),
                groups: vec!["system:bootstrappers".into(), AUTHENTICATED.into()],
            })),
            _ => Err(unauthorized()),
        };
    }
    let claims = pki
        .sa_key
        .verify(token, now_secs())
        .ok_or_else(unauthorized)?;
    let Some((ns, name)) = claims
        .sub
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    else {
        return Err(unauthorized());
    };
    // A token outlives neither its ServiceAccount nor a re-created one (checked by uid when the token
    // names one), as Kubernetes' legacy token validation does.
    let key = store::key("", "serviceaccounts", ns, name);
    let sa = store
        .get(&key, Consistency::Local)
        .await
        .map_err(ApiError::from_store)?
        .ok_or_else(unauthorized)?;
    if !claims.uid.is_empty() && sa.value["metadata"]["uid"].as_str() != Some(claims.uid.as_str()) {
        return Err(unauthorized());
    }
    Ok(Some(UserInfo {
        name: claims.sub.clone(),
        uid: claims.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            AUTHENTICATED.into(),
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{MemberIdentity, DEFAULT_VALIDITY};
    use crate::store::{Batch, MemStore, Op, Precondition};
    use serde_json::json;

    fn pki() -> (tempfile::TempDir, Arc<ClusterPki>) {
        let d = tempfile::tempdir().unwrap();
        let id = MemberIdentity {
            name: "s1".into(),
            sans: vec![],
            validity: DEFAULT_VALIDITY,
        };
        let p = ClusterPki::create(d.path(), &id, None).unwrap();
        (d, Arc::new(p))
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, auth.parse().unwrap());
        h
    }

    fn claims(sub: &str, uid: &str, exp: i64) -> pki::ServiceAccountClaims {
        pki::ServiceAccountClaims {
            iss: "berth".into(),
            sub: sub.into(),
            aud: vec![],
            iat: 0,
            exp,
            uid: uid.into(),
        }
    }

    #[tokio::test]
    async fn certificates_tokens_and_nothing() {
        let (_d, pki) = pki();
        let store = MemStore::new();
        store
            .commit(Batch::one(Op::Put {
                key: store::key("", "serviceaccounts", "default", "viewer"),
                value: json!({"metadata": {"name": "viewer", "namespace": "default", "uid": "u1"}}),
                precondition: Precondition::Absent,
            }))
            .await
            .unwrap();
        let cert = pki::Identity {
            user: "alice".into(),
            groups: vec!["dev".into()],
            not_after: std::time::SystemTime::now(),
        };
        let u = authenticate(&pki, &store, Some(&cert), &HeaderMap::new())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev".to_string(), AUTHENTICATED.to_string()]);

        assert_eq!(
            authenticate(&pki, &store, None, &HeaderMap::new())
                .await
                .unwrap(),
            None
        );

        let far = now_secs() + 3600;
        let good = pki
            .sa_key
            .sign(&claims("system:serviceaccount:default:viewer", "u1", far));
        let u = authenticate(&pki, &store, None, &headers(&format!("Bearer {good}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.name, "system:serviceaccount:default:viewer");
        assert!(u
            .groups
            .contains(&"system:serviceaccounts:default".to_string()));

        let cases = [
            // expired
            pki.sa_key
                .sign(&claims("system:serviceaccount:default:viewer", "u1", 1)),
            // a re-created account (other uid)
            pki.sa_key
                .sign(&claims("system:serviceaccount:default:viewer", "u2", far)),
            // an account that does not exist
            pki.sa_key
                .sign(&claims("system:serviceaccount:default:ghost", "", far)),
            // not a service account subject
            pki.sa_key.sign(&claims("admin", "", far)),
            // garbage, and a well-formed bootstrap token nobody issued
            "not-a-token".to_string(),
            "abcdef.0123456789abcdef".to_string(),
        ];
        for t in cases {
            let e = authenticate(&pki, &store, None, &headers(&format!("Bearer {t}")))
                .await
                .unwrap_err();
            assert_eq!(e.code, 401, "{t}");
        }

        let u = authenticate(
            &pki,
            &store,
            None,
            &headers(&format!("Bearer {}", pki.token)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(u.name, format!("system:bootstrap:{}", pki.token.id));
    }

    #[test]
    fn public_paths() {
        for p in [
            "/version",
            "/healthz",
            "/readyz",
            "/livez/ping",
            "/healthz/",
            "/ui",
            "/ui/",
            "/ui/app.js",
        ] {
            assert!(is_public_path(p), "{p}");
        }
        for p in [
            "/api",
            "/api/v1/secrets",
            "/versions",
            "/healthzz",
            "/uix",
            "/berth/v1/members",
        ] {
            assert!(!is_public_path(p), "{p}");
        }
    }
}
