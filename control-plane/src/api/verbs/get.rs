//! `GET` on an object, its `status`, or its `scale`.

use axum::response::Response;
use http::StatusCode;

use super::scale::scale_of;
use super::Ctx;
use crate::api::status::{json_response, Result};

/// The object (or its one-row Table).
///
/// # Errors
/// 404 when absent.
pub async fn get(ctx: &Ctx<'_>) -> Result<Response> {
    let obj = ctx.load_existing().await?;
    Ok(ctx.respond(StatusCode::OK, &obj.value))
}

/// The object's `autoscaling/v1 Scale`.
///
/// # Errors
/// 404 when absent.
pub async fn get_scale(ctx: &Ctx<'_>) -> Result<Response> {
    let obj = ctx.load_existing().await?;
    Ok(json_response(StatusCode::OK, &scale_of(&obj.value)))
}
