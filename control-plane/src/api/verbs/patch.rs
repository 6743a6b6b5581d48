//! `PATCH` on an object or its `status` and `scale`: JSON, merge, strategic merge and server-side
//! apply, which also creates an absent object.

use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::create::create_object;
use super::rmw::{self, Decision, Read};
use super::scale::{scale_of, with_replicas};
use super::update::{answer, decide_write, stale_version};
use super::{check_kind, check_shape, name_mismatch, Ctx, Mode};
use crate::api::meta;
use crate::api::patch::{apply_patch, PatchType};
use crate::api::resources;
use crate::api::status::{ApiError, Result};

/// What a patch attempt produced before its write.
enum Patched {
    /// Server-side apply created the object.
    Created(serde_json::Value),
    /// The patched object was stored.
    Stored(serde_json::Value),
}

/// `PATCH` with the patch type of the request's content type.
///
/// # Errors
/// 415 for an unknown patch type, 400 for a malformed body, 404 when absent (except for apply),
/// 409 on a stale resourceVersion, 422 when the patch does not apply or the result is invalid.
pub async fn patch(ctx: &Ctx<'_>, body: &[u8], mode: Mode) -> Result<Response> {
    let ptype = PatchType::from_content_type(&ctx.content_type)?;
    let patch_body = ptype.parse_body(body)?;
    if ptype == PatchType::Apply && ctx.query.non_empty("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let read = Read::Key {
        key: ctx.key(),
        consistency: ctx.consistency(),
    };
    let patch_body = &patch_body;
    let outcome = rmw::run(
        ctx.store(),
        read,
        || ApiError::conflict(ctx.info, &ctx.name),
        move |cur| {
            Box::pin(async move {
                let Some(cur) = cur else {
                    if ptype == PatchType::Apply && mode == Mode::Main {
                        let obj = apply_patch(None, patch_body, ctx.info.kind)
                            .map_err(|e| ApiError::new(422, "Invalid", e))?;
                        check_kind(ctx.info, &obj, ctx.info.kind)?;
                        check_shape(ctx.served, &obj)?;
                        let obj = ctx.to_stored(obj)?;
                        let name = meta::name_of(&obj);
                        if !name.is_empty() && name != ctx.name {
                            return Err(name_mismatch(name, &ctx.name));
                        }
                        let mut obj = obj;
                        meta::metadata_mut(&mut obj).insert("name".into(), json!(ctx.name));
                        return match create_object(ctx, obj).await {
                            Ok(created) => Ok(Decision::Answer(Patched::Created(created))),
                            // Someone created it meanwhile: apply onto theirs.
                            Err(e) if e.reason == "AlreadyExists" => Ok(Decision::Retry),
                            Err(e) => Err(e),
                        };
                    }
                    return Err(ApiError::not_found(ctx.info, &ctx.name));
                };
                // A patch applies to the object at the version the client sees.
                let (mut target, kind) = match mode {
                    Mode::Scale => (scale_of(&cur.value), "Scale"),
                    _ => (
                        resources::to_served(ctx.served, cur.value.clone()),
                        ctx.info.kind,
                    ),
                };
                ptype.apply(&mut target, patch_body, kind)?;
                if mode != Mode::Scale {
                    check_shape(ctx.served, &target)?;
                    target = ctx.to_stored(target)?;
                }
                // A patch that names a resourceVersion is conditional on it.
                stale_version(ctx, meta::resource_version_str(&target), &cur)?;
                if meta::name_of(&target) != ctx.name {
                    return Err(name_mismatch(meta::name_of(&target), &ctx.name));
                }
                let candidate = if mode == Mode::Scale {
                    with_replicas(&cur.value, &target)?
                } else {
                    target
                };
                Ok(
                    match decide_write(ctx, &cur, candidate, mode, None).await? {
                        Decision::Answer(v) => Decision::Answer(Patched::Stored(v)),
                        Decision::Retry => Decision::Retry,
                        Decision::Commit(c) => Decision::Commit(rmw::Commit {
                            ops: c.ops,
                            then: Patched::Stored,
                            refuse: c.refuse,
                            otherwise: c.otherwise,
                        }),
                    },
                )
            })
        },
    )
    .await?;
    Ok(match outcome {
        Patched::Created(v) => ctx.respond(StatusCode::CREATED, &v),
        Patched::Stored(v) => answer(ctx, mode, &v),
    })
}
