//! Requests answered from the caller's identity and never stored: the self reviews, and
//! ServiceAccount `token` requests.

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;

use super::{check_kind, Ctx};
use crate::api::authz;
use crate::api::body::decode_object;
use crate::api::resources::ResourceInfo;
use crate::api::status::{json_response, Result};

/// Whether a kind is a review answered from the caller's identity and never stored
/// (`SelfSubjectAccessReview`, `SelfSubjectRulesReview`, `SelfSubjectReview`).
pub fn is_review(info: &ResourceInfo) -> bool {
    matches!(info.group, "authorization.k8s.io" | "authentication.k8s.io")
}

/// A review about the caller (`user`, from the request's extensions; anonymous when there is none).
/// Uses the request's `Arc<Authorizer>` extension when the server put one there, else reads the
/// RBAC objects from the store.
///
/// # Errors
/// 400/415 for a bad body; the authorizer's store errors.
pub async fn review(
    ctx: &Ctx<'_>,
    user: &authz::UserInfo,
    authorizer: Option<Arc<authz::Authorizer>>,
    body: &[u8],
) -> Result<Response> {
    let obj = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &obj, ctx.info.kind)?;
    let authorizer = authorizer.unwrap_or_else(|| authz::Authorizer::new(ctx.state.store.clone()));
    let answer = match ctx.info.resource {
        "selfsubjectaccessreviews" => {
            authz::review::access(&authorizer, ctx.info, user, &obj).await?
        }
        "selfsubjectrulesreviews" => authz::review::rules(&authorizer, user, &obj).await?,
        _ => authz::review::whoami(user),
    };
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// `POST serviceaccounts/{name}/token`: a signed token for an existing ServiceAccount.
///
/// # Errors
/// 400/415 for a bad body, 404 without the ServiceAccount.
pub async fn token_request(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let request = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &request, "TokenRequest")?;
    let sa = ctx.load_existing().await?;
    let key = ctx.state.config.pki.as_ref().map(|p| &p.sa_key);
    let answer = authz::token::answer(key, &sa.value, &request, ctx.now())?;
    Ok(json_response(StatusCode::CREATED, &answer))
}
