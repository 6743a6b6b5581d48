//! `PUT` on an object or its `status`, `scale` and `finalize` subresources: the pure deciders
//! ([`plan_update`], [`plan_write`]) and the write both `update` and `patch` end in.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::admission::{allocate, check_escalation, check_pod_security};
use super::rmw::{self, Commit, Decision, Read};
use super::scale::{scale_of, with_replicas};
use super::{
    check_kind, check_shape, is_terminating, name_mismatch, validate, validate_update,
    without_version, Ctx, Mode,
};
use crate::api::alloc::release;
use crate::api::body::decode_object;
use crate::api::meta;
use crate::api::resources::ResourceInfo;
use crate::api::status::{json_response, ApiError, Result};
use crate::store::{Object, Op, Precondition};

/// What an update writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritePlan {
    /// Nothing: the new object equals the stored one but for its resourceVersion, so watchers see
    /// no event and a re-run `apply` is a true no-op (as Kubernetes).
    Unchanged,
    /// The object is being deleted and its last finalizer is gone: remove it.
    Remove,
    /// Store the new object.
    Put,
}

/// The object an update of `mode` stores over `cur`: the server-owned fields carried over, the
/// kind's defaults applied, validated. Pure.
///
/// # Errors
/// 400 when `metadata`, `spec` or `status` is not an object; 422 when invalid.
pub fn plan_update(info: &ResourceInfo, mode: Mode, cur: &Value, mut new: Value) -> Result<Value> {
    // Before the preparation below, which indexes into these fields.
    check_shape(info, &new)?;
    match mode {
        Mode::Main | Mode::Scale => meta::prepare_update(info, cur, &mut new),
        Mode::Status => new = meta::prepare_status_update(cur, &new),
        Mode::Finalize => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            new = cur.clone();
            new["spec"]["finalizers"] = finalizers;
            new = without_version(new);
        }
    }
    check_shape(info, &new)?;
    if mode == Mode::Main || mode == Mode::Scale {
        validate_update(info, cur, &new)?;
    } else {
        validate(info, &new)?;
    }
    Ok(new)
}

/// Whether `new` replaces `cur`, removes it, or changes nothing. Pure.
pub fn plan_write(info: &ResourceInfo, cur: &Value, new: &Value) -> WritePlan {
    if should_remove(info, new) {
        WritePlan::Remove
    } else if same_but_version(new, cur) {
        WritePlan::Unchanged
    } else {
        WritePlan::Put
    }
}

fn finalizers_empty(obj: &Value) -> bool {
    let empty = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    };
    empty("/metadata/finalizers") && empty("/spec/finalizers")
}

/// An object being deleted whose last finalizer is gone is removed, as Kubernetes does; a pod in
/// graceful termination stays until its node agent removes it.
pub(super) fn should_remove(info: &ResourceInfo, obj: &Value) -> bool {
    let grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    is_terminating(obj) && finalizers_empty(obj) && (grace == 0 || info.kind != "Pod")
}

pub(super) fn has_finalizers(obj: &Value) -> bool {
    !finalizers_empty(obj)
}

/// Whether two versions of an object differ only in `metadata.resourceVersion`.
fn same_but_version(a: &Value, b: &Value) -> bool {
    without_version(a.clone()) == without_version(b.clone())
}

/// Decides the write of `new` over `cur`: the pure plan, admission, the Service allocations.
/// `stale` answers a lost race instead of retrying (an update that named a resourceVersion).
pub(super) async fn decide_write(
    ctx: &Ctx<'_>,
    cur: &Object,
    new: Value,
    mode: Mode,
    stale: Option<ApiError>,
) -> Result<Decision<Value>> {
    let info = ctx.info;
    let mut new = plan_update(info, mode, &cur.value, new)?;
    if mode == Mode::Main || mode == Mode::Scale {
        check_escalation(ctx, &new).await?;
        if mode == Mode::Main {
            check_pod_security(ctx, Some(&cur.value), &new).await?;
        }
    }
    let mut refuse = vec![];
    let ops = match plan_write(info, &cur.value, &new) {
        WritePlan::Unchanged => return Ok(Decision::Answer(cur.value.clone())),
        WritePlan::Remove => {
            let mut ops = vec![Op::Delete {
                key: cur.key.clone(),
                precondition: Precondition::Revision(cur.revision),
            }];
            if info.kind == "Service" {
                ops.extend(release(&cur.value));
            }
            ops
        }
        WritePlan::Put => {
            let mut ops = vec![];
            if info.kind == "Service" && mode == Mode::Main {
                let (alloc_ops, explicit): (Vec<Op>, _) =
                    allocate(ctx, Some(&cur.value), &mut new, &ctx.name).await?;
                ops = alloc_ops;
                refuse = explicit;
            }
            ops.insert(
                0,
                Op::Put {
                    key: cur.key.clone(),
                    value: new.clone(),
                    precondition: Precondition::Revision(cur.revision),
                },
            );
            ops
        }
    };
    if ctx.dry_run {
        new["metadata"]["resourceVersion"] = json!(cur.revision.to_string());
        return Ok(Decision::Answer(new));
    }
    Ok(Decision::Commit(Commit {
        ops,
        then: std::convert::identity,
        refuse,
        otherwise: stale,
    }))
}

/// A resourceVersion the client named must be the stored one.
pub(super) fn stale_version(ctx: &Ctx<'_>, given: Option<&str>, cur: &Object) -> Result<()> {
    match given {
        Some(rv) if rv != cur.revision.to_string() => Err(ApiError::conflict(ctx.info, &ctx.name)),
        _ => Ok(()),
    }
}

/// `PUT` on an object or a subresource: replaces it with the body, conditional on the body's
/// resourceVersion when it names one.
///
/// # Errors
/// 400/415 for a bad body, 404 when absent, 409 on a stale resourceVersion, 422 when invalid.
pub async fn update(ctx: &Ctx<'_>, body: &[u8], mode: Mode) -> Result<Response> {
    let mut new = decode_object(&ctx.content_type, body)?;
    let expected_kind = if mode == Mode::Scale {
        "Scale"
    } else {
        ctx.info.kind
    };
    check_kind(ctx.info, &new, expected_kind)?;
    if mode != Mode::Scale {
        check_shape(ctx.served, &new)?;
        new = ctx.to_stored(new)?;
    }
    match meta::name_of(&new) {
        "" => {
            meta::metadata_mut(&mut new).insert("name".into(), json!(ctx.name));
        }
        n if n != ctx.name => return Err(name_mismatch(n, &ctx.name)),
        _ => {}
    }
    if ctx.info.namespaced {
        match meta::namespace_of(&new) {
            "" => {}
            n if n != ctx.ns() => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {}
        }
    }
    let given = meta::resource_version_str(&new).map(str::to_string);
    let read = Read::Key {
        key: ctx.key(),
        consistency: ctx.consistency(),
    };
    let (given, new) = (&given, &new);
    let stored = rmw::run(
        ctx.store(),
        read,
        || ApiError::conflict(ctx.info, &ctx.name),
        move |cur| {
            Box::pin(async move {
                let cur = cur.ok_or_else(|| ApiError::not_found(ctx.info, &ctx.name))?;
                stale_version(ctx, given.as_deref(), &cur)?;
                let candidate = if mode == Mode::Scale {
                    with_replicas(&cur.value, new)?
                } else {
                    (*new).clone()
                };
                // Without a resourceVersion the update is unconditional: a lost race re-reads and
                // writes again.
                let stale = given
                    .is_some()
                    .then(|| ApiError::conflict(ctx.info, &ctx.name));
                decide_write(ctx, &cur, candidate, mode, stale).await
            })
        },
    )
    .await?;
    Ok(answer(ctx, mode, &stored))
}

/// The answer to a write of `mode`: the object (or its Table), or its Scale.
pub(super) fn answer(ctx: &Ctx<'_>, mode: Mode, stored: &Value) -> Response {
    if mode == Mode::Scale {
        json_response(StatusCode::OK, &scale_of(stored))
    } else {
        ctx.respond(StatusCode::OK, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::lookup;

    #[test]
    fn finalizer_driven_removal() {
        let pods = lookup("", "v1", "pods").unwrap();
        let cms = lookup("", "v1", "configmaps").unwrap();
        let ns = lookup("", "v1", "namespaces").unwrap();
        let dt = json!({"metadata": {"deletionTimestamp": "t", "finalizers": []}});
        assert!(should_remove(cms, &dt));
        assert!(!should_remove(
            cms,
            &json!({"metadata": {"finalizers": []}})
        ));
        assert!(!should_remove(
            cms,
            &json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["x"]}})
        ));
        let graceful =
            json!({"metadata": {"deletionTimestamp": "t", "deletionGracePeriodSeconds": 30}});
        assert!(!should_remove(pods, &graceful));
        let terminating_ns =
            json!({"metadata": {"deletionTimestamp": "t"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(!should_remove(ns, &terminating_ns));
        assert!(should_remove(
            ns,
            &json!({"metadata": {"deletionTimestamp": "t"}, "spec": {"finalizers": []}})
        ));
    }

    #[test]
    fn writes_that_change_nothing_are_skipped() {
        let cms = lookup("", "v1", "configmaps").unwrap();
        let cur = json!({"metadata": {"name": "c", "resourceVersion": "5"}, "data": {"a": "1"}});
        let same = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        assert_eq!(plan_write(cms, &cur, &same), WritePlan::Unchanged);
        let changed = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        assert_eq!(plan_write(cms, &cur, &changed), WritePlan::Put);
        let done = json!({"metadata": {"name": "c", "deletionTimestamp": "t"}});
        assert_eq!(plan_write(cms, &cur, &done), WritePlan::Remove);
    }

    #[test]
    fn updates_keep_server_fields_and_touch_only_their_part() {
        let deploys = lookup("apps", "v1", "deployments").unwrap();
        let cur = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u1", "generation": 1, "resourceVersion": "3"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": {"replicas": 1}});
        let mut new = cur.clone();
        new["metadata"]["uid"] = json!("other");
        new["spec"]["replicas"] = json!(3);
        new["status"] = json!({"replicas": 99});
        let out = plan_update(deploys, Mode::Main, &cur, new).unwrap();
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 2);
        assert_eq!(
            out["status"],
            json!({"replicas": 1}),
            "status only through /status"
        );
        let status = plan_update(
            deploys,
            Mode::Status,
            &cur,
            json!({"status": {"replicas": 2}}),
        )
        .unwrap();
        assert_eq!(status["status"]["replicas"], 2);
        assert_eq!(status["spec"], cur["spec"]);
        let bad = plan_update(deploys, Mode::Main, &cur, json!({"spec": "x"})).unwrap_err();
        assert_eq!(bad.code, 400);
    }
}
