//! `POST` on a collection: prepare, validate, admit and store a new object. A generated name or a
//! dynamically picked ClusterIP/NodePort that loses a race is picked again.

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::admission::{allocate, check_escalation, check_namespace, check_pod_security};
use super::rmw::{self, Commit, Decision, Read};
use super::{check_kind, check_shape, validate, Ctx};
use crate::api::body::decode_object;
use crate::api::meta;
use crate::api::status::{ApiError, Result};
use crate::store::{Op, Precondition};

/// `POST .../{resource}`: creates the object in the body.
///
/// # Errors
/// 400/415 for a bad body, 422 when invalid, 403 by admission, 404 without its namespace, 409 when
/// the name is taken.
pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let obj = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &obj, ctx.info.kind)?;
    check_shape(ctx.served, &obj)?;
    let obj = ctx.to_stored(obj)?;
    let created = create_object(ctx, obj).await?;
    Ok(ctx.respond(StatusCode::CREATED, &created))
}

/// Stores `obj` as a new object; the stored object (or, on a dry run, what would be stored).
pub(super) async fn create_object(ctx: &Ctx<'_>, obj: Value) -> Result<Value> {
    let generated = meta::name_of(&obj).is_empty();
    let obj = &obj;
    rmw::run(
        ctx.store(),
        Read::Nothing,
        || ApiError::internal("could not create the object after repeated conflicts"),
        move |_| {
            Box::pin(async move {
                let mut o = obj.clone();
                meta::prepare_create(
                    ctx.info,
                    &mut o,
                    ctx.namespace.as_deref(),
                    &ctx.create_context(),
                )?;
                validate(ctx.info, &o)?;
                check_escalation(ctx, &o).await?;
                check_pod_security(ctx, None, &o).await?;
                let name = meta::name_of(&o).to_string();
                check_namespace(ctx, &name).await?;
                let key = ctx.info.key(ctx.ns(), &name);
                let (mut ops, mut refuse) = if ctx.info.kind == "Service" {
                    allocate(ctx, None, &mut o, &name).await?
                } else {
                    (vec![], vec![])
                };
                if ctx.dry_run {
                    return Ok(Decision::Answer(o));
                }
                // Someone else holding a chosen name is the client's problem; a generated one is
                // drawn again.
                if !generated {
                    refuse.push((key.clone(), ApiError::already_exists(ctx.info, &name)));
                }
                ops.insert(
                    0,
                    Op::Put {
                        key,
                        value: o,
                        precondition: Precondition::Absent,
                    },
                );
                Ok(Decision::Commit(Commit {
                    ops,
                    then: std::convert::identity,
                    refuse,
                    otherwise: None,
                }))
            })
        },
    )
    .await
}
