//! `DELETE` on a collection: every object the selectors match, each as a single delete.

use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::delete::{delete_object, parse_delete_options, Deleted};
use super::Ctx;
use crate::api::status::{json_response, ApiError, Result};
use crate::api::watch::Selectors;
use crate::store::Consistency;

/// `DELETE .../{resource}?labelSelector=…`: the list of what was deleted or is being deleted.
///
/// # Errors
/// 400 for bad options or selectors; the first failure of a single delete other than 404.
pub async fn delete_collection(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let opts = parse_delete_options(ctx, body)?;
    let selectors = Selectors::parse(
        ctx.query.get("labelSelector"),
        ctx.query.get("fieldSelector"),
    )?;
    let (objects, _) = ctx
        .store()
        .list(
            &ctx.info.prefix(ctx.namespace.as_deref()),
            Consistency::Linearizable,
        )
        .await
        .map_err(ApiError::from_store)?;
    let mut items = Vec::new();
    for o in objects.into_iter().filter(|o| selectors.matches(&o.value)) {
        match delete_object(ctx, o, &opts).await {
            Ok(Deleted::Removed(v) | Deleted::Pending(v)) => items.push(v),
            // Deleted by someone else meanwhile.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = ctx.store().revision().to_string();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", ctx.info.kind),
            "apiVersion": ctx.info.api_version(),
            "metadata": {"resourceVersion": rv},
            "items": items,
        }),
    ))
}
