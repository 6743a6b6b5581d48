//! `DELETE` on an object: the options, the pure decider [`plan_delete`] (graceful pods, namespace
//! teardown, foreground and orphan finalizers, objects already carrying finalizers) and its write.

use std::time::{Duration, SystemTime};

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::rmw::{self, Commit, Decision, Read};
use super::update::has_finalizers;
use super::{is_terminating, without_version, Ctx};
use crate::api::alloc;
use crate::api::body::decode_object;
use crate::api::meta;
use crate::api::resources::ResourceInfo;
use crate::api::route::Query;
use crate::api::status::{json_response, success, ApiError, Result};
use crate::store::{self, Consistency, Object, Op, Precondition};

/// `DeleteOptions`, from the body and the query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `propagationPolicy`: Background, Foreground or Orphan.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads the options from a decoded `DeleteOptions` body and the query, the query winning.
    pub fn from_parts(body: Option<&Value>, query: &Query) -> Self {
        let b = |p: &str| body.and_then(|v| v.pointer(p)).cloned();
        let mut o = DeleteOptions {
            grace_period: b("/gracePeriodSeconds").and_then(|v| v.as_i64()),
            propagation: b("/propagationPolicy").and_then(|v| v.as_str().map(str::to_string)),
            uid: b("/preconditions/uid").and_then(|v| v.as_str().map(str::to_string)),
            resource_version: b("/preconditions/resourceVersion")
                .and_then(|v| v.as_str().map(str::to_string)),
        };
        if b("/orphanDependents").and_then(|v| v.as_bool()) == Some(true) {
            o.propagation.get_or_insert_with(|| "Orphan".into());
        }
        if let Some(g) = query.get("gracePeriodSeconds").and_then(|s| s.parse().ok()) {
            o.grace_period = Some(g);
        }
        if let Some(p) = query.non_empty("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if query.flag("orphanDependents") {
            o.propagation.get_or_insert_with(|| "Orphan".into());
        }
        o
    }
}

/// The options of a `DELETE` (body and query), with the propagation policy checked.
pub(super) fn parse_delete_options(ctx: &Ctx<'_>, body: &[u8]) -> Result<DeleteOptions> {
    let decoded = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(decode_object(&ctx.content_type, body)?)
    };
    let opts = DeleteOptions::from_parts(decoded.as_ref(), &ctx.query);
    if let Some(p) = &opts.propagation {
        if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(opts)
}

/// What a delete decides.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// Nothing to write: the deletion already goes on as asked; the object's state.
    Pending(Value),
    /// Store the object marked for deletion (a grace period, finalizers, a namespace's teardown);
    /// it is removed later by whoever finishes the deletion.
    Mark(Value),
    /// Remove the object now (its dependents are left to the garbage collector).
    Remove,
}

/// What a delete did.
pub(super) enum Deleted {
    /// The object is gone; its last state.
    Removed(Value),
    /// The object is being deleted (grace period, finalizers, namespace teardown); its state.
    Pending(Value),
}

/// A pod's grace period for this delete: the options', else the pod's own, else 30 s.
pub fn pod_grace(pod: &Value, opts: &DeleteOptions) -> i64 {
    let default_grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    opts.grace_period.unwrap_or(default_grace).max(0)
}

/// The node whose agent a pod's graceful deletion waits for: none when the grace is 0, the pod
/// has finished, or it was never bound. Deletion is graceful only if that node still exists.
pub fn graceful_node(pod: &Value, grace: i64) -> Option<&str> {
    if grace == 0
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
    {
        return None;
    }
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// Decides a delete of `obj` (stored at `revision`), following Kubernetes. `node_present`: a pod's
/// [`graceful_node`] exists. Pure: the time comes in as `now`.
///
/// # Errors
/// 409 when a precondition fails; 403 for the system namespaces.
pub fn plan_delete(
    info: &ResourceInfo,
    obj: &Value,
    revision: u64,
    opts: &DeleteOptions,
    now: SystemTime,
    node_present: bool,
) -> Result<DeletePlan> {
    let name = meta::name_of(obj);
    if let Some(uid) = &opts.uid {
        let actual = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict_because(
                info,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        if *rv != revision.to_string() {
            return Err(ApiError::conflict_because(
                info,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"),
            ));
        }
    }
    let mark = |o: Value| DeletePlan::Mark(without_version(o));
    match info.kind {
        "Namespace" => {
            if matches!(name, "default" | "kube-system" | "kube-public") {
                return Err(ApiError {
                    details: Some(json!({"name": name, "group": "", "kind": "namespaces"})),
                    ..ApiError::forbidden(format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    ))
                });
            }
            if is_terminating(obj) {
                return Ok(DeletePlan::Pending(obj.clone()));
            }
            let mut n = obj.clone();
            mark_deleting(&mut n, now, 0);
            n["status"]["phase"] = json!("Terminating");
            return Ok(mark(n));
        }
        "Pod" => {
            let grace = pod_grace(obj, opts);
            if node_present && graceful_node(obj, grace).is_some() {
                let current = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                return Ok(match current {
                    Some(c) if c <= grace => DeletePlan::Pending(obj.clone()),
                    _ => {
                        let mut p = obj.clone();
                        mark_deleting(&mut p, now, grace);
                        mark(p)
                    }
                });
            }
        }
        _ => {}
    }
    let finalizer = match opts.propagation.as_deref() {
        Some("Foreground") => "foregroundDeletion",
        Some("Orphan") => "orphan",
        _ if has_finalizers(obj) => {
            if is_terminating(obj) {
                return Ok(DeletePlan::Pending(obj.clone()));
            }
            let mut o = obj.clone();
            mark_deleting(&mut o, now, 0);
            return Ok(mark(o));
        }
        _ => return Ok(DeletePlan::Remove),
    };
    let mut o = obj.clone();
    add_finalizer(&mut o, finalizer);
    if !is_terminating(&o) {
        mark_deleting(&mut o, now, 0);
    }
    Ok(if o != *obj {
        mark(o)
    } else {
        DeletePlan::Pending(obj.clone())
    })
}

fn add_finalizer(obj: &mut Value, name: &str) {
    let meta = meta::metadata_mut(obj);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let arr = list.as_array_mut().expect("array");
    if !arr.iter().any(|f| f == name) {
        arr.push(json!(name));
    }
}

fn mark_deleting(obj: &mut Value, now: SystemTime, grace: i64) {
    let meta = meta::metadata_mut(obj);
    // A grace period past the end of time ends at the far end of what a timestamp can say
    // (checked: a hostile DeleteOptions must not panic the handler, #13).
    let at = now
        .checked_add(Duration::from_secs(grace.max(0).unsigned_abs()))
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    meta.insert("deletionTimestamp".into(), json!(meta::rfc3339(at)));
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    meta.remove("resourceVersion");
}

/// Whether a pod's [`graceful_node`] exists; false for other kinds.
async fn node_present(ctx: &Ctx<'_>, obj: &Value, opts: &DeleteOptions) -> Result<bool> {
    if ctx.info.kind != "Pod" {
        return Ok(false);
    }
    let Some(node) = graceful_node(obj, pod_grace(obj, opts)) else {
        return Ok(false);
    };
    Ok(ctx
        .store()
        .get(&store::key("", "nodes", "", node), Consistency::Local)
        .await
        .map_err(ApiError::from_store)?
        .is_some())
}

/// Deletes one object already read (`cur`), re-reading it after a lost race.
pub(super) async fn delete_object(
    ctx: &Ctx<'_>,
    cur: Object,
    opts: &DeleteOptions,
) -> Result<Deleted> {
    let info = ctx.info;
    let name = meta::name_of(&cur.value).to_string();
    let name = &name;
    rmw::run(
        ctx.store(),
        Read::Given(cur),
        || ApiError::conflict(info, name),
        move |cur| {
            Box::pin(async move {
                let cur = cur.ok_or_else(|| ApiError::not_found(info, name))?;
                let present = node_present(ctx, &cur.value, opts).await?;
                let plan = plan_delete(info, &cur.value, cur.revision, opts, ctx.now(), present)?;
                let (ops, then): (Vec<Op>, fn(Value) -> Deleted) = match plan {
                    DeletePlan::Pending(v) => return Ok(Decision::Answer(Deleted::Pending(v))),
                    DeletePlan::Mark(o) if ctx.dry_run => {
                        return Ok(Decision::Answer(Deleted::Pending(o)))
                    }
                    DeletePlan::Remove if ctx.dry_run => {
                        return Ok(Decision::Answer(Deleted::Removed(cur.value)))
                    }
                    DeletePlan::Mark(o) => (
                        vec![Op::Put {
                            key: cur.key.clone(),
                            value: o,
                            precondition: Precondition::Revision(cur.revision),
                        }],
                        Deleted::Pending,
                    ),
                    DeletePlan::Remove => {
                        let mut ops = vec![Op::Delete {
                            key: cur.key.clone(),
                            precondition: Precondition::Revision(cur.revision),
                        }];
                        if info.kind == "Service" {
                            ops.extend(alloc::release(&cur.value));
                        }
                        (ops, Deleted::Removed)
                    }
                };
                Ok(Decision::Commit(Commit::retrying(ops, then)))
            })
        },
    )
    .await
}

fn deleted_answer(ctx: &Ctx<'_>, d: Deleted) -> Response {
    match d {
        Deleted::Pending(v) => ctx.respond(StatusCode::OK, &v),
        // Pods answer with the object, like the real registry; the rest with Status Success.
        Deleted::Removed(v) if ctx.info.kind == "Pod" => ctx.respond(StatusCode::OK, &v),
        Deleted::Removed(v) => json_response(
            StatusCode::OK,
            &success(
                ctx.info,
                meta::name_of(&v),
                v.pointer("/metadata/uid").and_then(Value::as_str),
            ),
        ),
    }
}

/// `DELETE` on an object.
///
/// # Errors
/// 400 for bad options, 404 when absent, 409 when a precondition fails, 403 for the system
/// namespaces.
pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let opts = parse_delete_options(ctx, body)?;
    let cur = ctx.load_existing().await?;
    let d = delete_object(ctx, cur, &opts).await?;
    Ok(deleted_answer(ctx, d))
}

#[cfg(test)]
mod tests;
