//! `POST pods/{name}/eviction`: a delete with the Eviction's `deleteOptions`.

use axum::response::Response;
use serde_json::json;

use super::binding::created_status;
use super::delete::{delete_object, DeleteOptions};
use super::Ctx;
use crate::api::body::decode_object;
use crate::api::route::Query;
use crate::api::status::Result;

/// Evicts the pod: deletes it as a `DELETE` with the Eviction's options would.
///
/// # Errors
/// 400 for a bad body, 404 when absent, 409 when a precondition fails.
pub async fn evict(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let eviction = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_object(&ctx.content_type, body)?
    };
    let opts = DeleteOptions::from_parts(eviction.get("deleteOptions"), &Query::default());
    let cur = ctx.load_existing().await?;
    delete_object(ctx, cur, &opts).await?;
    Ok(created_status())
}
